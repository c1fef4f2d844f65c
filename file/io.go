package file

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/gorio/rio"
	"golang.org/x/sys/unix"
)

// Read reads up to len(b) bytes from the file position, which it advances,
// and returns the number of bytes read. At end of file it returns 0, io.EOF.
// A zero-length b reads nothing and returns 0, nil. The kernel writes b
// only until Read returns.
func (f *File) Read(b []byte) (int, error) {
	if f == nil {
		return 0, fs.ErrInvalid
	}
	if f.osf != nil {
		return f.osf.Read(b)
	}
	if !f.acquire() {
		return 0, f.closedErr("read")
	}
	defer f.release()
	if len(b) == 0 {
		return 0, nil
	}
	mu := f.ioLock(false)
	mu.Lock()
	defer mu.Unlock()
	if f.direct {
		if err := f.checkDirect(b, f.pos, !f.stream, false); err != nil {
			return 0, &fs.PathError{Op: "read", Path: f.name, Err: err}
		}
	}
	if !f.noNowait.Load() {
		n, ok := f.readNowait(b, f.pos)
		if ok && n == 0 {
			return 0, io.EOF
		}
		if ok && n == len(b) {
			f.pos += int64(n)
			return n, nil
		}
		if ok {
			// Part was cached. Read the rest through the ring, so that a
			// Read returns as much as os.File's would; an error there
			// will show on the next Read.
			m, err := run(f, func(r *rio.Ring) *rio.Completion[int] { return r.ReadAt(f.fd, b[n:], f.pos+int64(n)) })
			if err == nil {
				n += m
			}
			f.pos += int64(n)
			return n, nil
		}
	}
	var n int
	var err error
	for {
		if f.stream {
			if f.pastDeadline(false) {
				return 0, f.wrapErr("read", os.ErrDeadlineExceeded)
			}
			n, err = runDeadline(f, false, func(r *rio.Ring) *rio.Completion[int] { return r.Read(f.fd, b) })
		} else {
			n, err = run(f, func(r *rio.Ring) *rio.Completion[int] { return r.ReadAt(f.fd, b, f.pos) })
		}
		if err == nil || !f.again(err, unix.POLLIN) {
			break
		}
	}
	if err != nil {
		return 0, f.wrapErr("read", err)
	}
	if n == 0 {
		return 0, io.EOF
	}
	if !f.stream { // a stream's position is the kernel's
		f.pos += int64(n)
	}
	return n, nil
}

// Write writes len(b) bytes at the file position (at the end of the file
// with O_APPEND), which it advances. It returns the number of bytes
// written, and an error if that is less than len(b), such as ENOSPC inside
// an *fs.PathError. The kernel reads b only until Write returns.
func (f *File) Write(b []byte) (int, error) {
	if f == nil {
		return 0, fs.ErrInvalid
	}
	if f.osf != nil {
		return f.osf.Write(b)
	}
	if !f.acquire() {
		return 0, f.closedErr("write")
	}
	defer f.release()
	mu := f.ioLock(true)
	mu.Lock()
	defer mu.Unlock()
	if f.direct {
		if err := f.checkDirect(b, f.pos, !f.stream && !f.append, true); err != nil {
			return 0, &fs.PathError{Op: "write", Path: f.name, Err: err}
		}
	}
	return f.writeCur(b)
}

// writeCur writes all of b at the file position; posMu is held.
func (f *File) writeCur(b []byte) (int, error) {
	if len(b) == 0 {
		// As os, write nothing, which reports a file not open for
		// writing.
		for {
			_, err := run(f, func(r *rio.Ring) *rio.Completion[int] { return r.Write(f.fd, nil) })
			if err == nil || !f.again(err, unix.POLLOUT) {
				return 0, f.wrapErr("write", err)
			}
		}
	}
	nn := 0
	defer func() {
		if f.append && nn > 0 {
			// The kernel wrote at the end of the file, which it alone
			// knows: the position follows it there, as with os.
			if end, err := unix.Seek(f.fd, 0, io.SeekEnd); err == nil {
				f.pos = end
			}
		}
	}()
	for nn < len(b) {
		if f.closing() {
			return nn, f.closedErr("write")
		}
		var n int
		var err error
		if f.stream && f.pastDeadline(true) {
			return nn, f.wrapErr("write", os.ErrDeadlineExceeded)
		}
		if f.stream || f.append {
			n, err = runDeadline(f, true, func(r *rio.Ring) *rio.Completion[int] { return r.Write(f.fd, b[nn:]) })
		} else {
			n, err = run(f, func(r *rio.Ring) *rio.Completion[int] { return r.WriteAt(f.fd, b[nn:], f.pos) })
		}
		if err != nil {
			if f.again(err, unix.POLLOUT) {
				continue
			}
			return nn, f.wrapErr("write", err)
		}
		if n == 0 {
			return nn, f.wrapErr("write", io.ErrUnexpectedEOF)
		}
		nn += n
		if !f.append && !f.stream {
			f.pos += int64(n)
		}
	}
	return nn, nil
}

// ReadAt reads len(b) bytes from offset off, without using or moving the
// file position. Like os.File.ReadAt, it returns fewer bytes only with an
// error, io.EOF if the file ends first. A negative off is an error. Any
// number of ReadAt and WriteAt calls may run in parallel. The kernel writes
// b only until ReadAt returns.
func (f *File) ReadAt(b []byte, off int64) (int, error) {
	if f == nil {
		return 0, fs.ErrInvalid
	}
	if f.osf != nil {
		return f.osf.ReadAt(b, off)
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "readat", Path: f.name, Err: errNegativeOffset}
	}
	if len(b) == 0 {
		return 0, nil
	}
	if !f.acquire() {
		return 0, f.closedErr("read")
	}
	defer f.release()
	if f.direct {
		if err := f.checkDirect(b, off, true, false); err != nil {
			return 0, &fs.PathError{Op: "read", Path: f.name, Err: err}
		}
	}
	n := 0
	for len(b) > 0 {
		if !f.noNowait.Load() {
			if m, ok := f.readNowait(b, off); ok {
				if m == 0 {
					return n, io.EOF
				}
				n += m
				b = b[m:]
				off += int64(m)
				continue
			}
		}
		m, err := run(f, func(r *rio.Ring) *rio.Completion[int] { return r.ReadAt(f.fd, b, off) })
		if err != nil {
			if f.again(err, unix.POLLIN) {
				continue
			}
			if n > 0 && f.direct && errors.Is(err, syscall.EINVAL) {
				// The previous read stopped at an unaligned end of file,
				// where O_DIRECT cannot continue.
				return n, io.EOF
			}
			return n, f.wrapErr("read", err)
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
		b = b[m:]
		off += int64(m)
		if len(b) > 0 && f.closing() {
			return n, f.closedErr("read")
		}
	}
	return n, nil
}

// WriteAt writes len(b) bytes at offset off, without using or moving the
// file position. It returns fewer bytes only with an error. Like
// os.File.WriteAt, it fails on a file opened with O_APPEND, and for a
// negative off. The kernel reads b only until WriteAt returns.
func (f *File) WriteAt(b []byte, off int64) (int, error) {
	if f == nil {
		return 0, fs.ErrInvalid
	}
	if f.osf != nil {
		return f.osf.WriteAt(b, off)
	}
	if f.append {
		return 0, errWriteAtInAppendMode
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "writeat", Path: f.name, Err: errNegativeOffset}
	}
	if len(b) == 0 {
		return 0, nil
	}
	if !f.acquire() {
		return 0, f.closedErr("write")
	}
	defer f.release()
	if f.direct {
		if err := f.checkDirect(b, off, true, true); err != nil {
			return 0, &fs.PathError{Op: "write", Path: f.name, Err: err}
		}
	}
	n := 0
	for len(b) > 0 {
		m, err := run(f, func(r *rio.Ring) *rio.Completion[int] { return r.WriteAt(f.fd, b, off) })
		if err != nil {
			if f.again(err, unix.POLLOUT) {
				continue
			}
			return n, f.wrapErr("write", err)
		}
		if m == 0 {
			return n, f.wrapErr("write", io.ErrUnexpectedEOF)
		}
		n += m
		b = b[m:]
		off += int64(m)
		if len(b) > 0 && f.closing() {
			return n, f.closedErr("write")
		}
	}
	return n, nil
}

// Seek sets the file position for the next Read or Write to offset,
// interpreted according to whence (io.SeekStart, io.SeekCurrent,
// io.SeekEnd), and returns the new position, as os.File.Seek does.
func (f *File) Seek(offset int64, whence int) (int64, error) {
	if f == nil {
		return 0, fs.ErrInvalid
	}
	if f.osf != nil {
		return f.osf.Seek(offset, whence)
	}
	if !f.acquire() {
		return 0, f.closedErr("seek")
	}
	defer f.release()
	f.posMu.Lock()
	defer f.posMu.Unlock()
	abs, whenceK := offset, whence
	// A directory being read keeps its offset in the kernel, as a stream.
	if wasDir := f.dropDir(); !f.stream && !wasDir && whence == io.SeekCurrent {
		// The kernel's offset is not the File's: make it absolute.
		abs, whenceK = f.pos+offset, io.SeekStart
		if (offset > 0 && abs < f.pos) || (offset < 0 && abs > f.pos) {
			return 0, f.wrapErr("seek", syscall.EINVAL) // overflow
		}
	}
	r, err := unix.Seek(f.fd, abs, whenceK)
	if err != nil {
		return 0, f.wrapErr("seek", err)
	}
	f.pos = r
	return r, nil
}

// again reports whether an operation that failed with err should be tried
// again: after EINTR always, and after EAGAIN too (which the ring reports
// for a stream opened O_NONBLOCK that is not ready), once a stream is ready
// for events.
func (f *File) again(err error, events uint32) bool {
	switch {
	case errors.Is(err, syscall.EINTR):
		return true
	case errors.Is(err, syscall.EAGAIN):
		if f.stream {
			_, perr := runDeadline(f, events == unix.POLLOUT, func(r *rio.Ring) *rio.Completion[uint32] { return r.Poll(f.fd, events) })
			return perr == nil || errors.Is(perr, syscall.EINTR)
		}
		return true
	}
	return false
}
