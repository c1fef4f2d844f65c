package file

import (
	"io"
	"io/fs"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// copyChunk bounds one copy_file_range call, so that Close of either file
// stops a long copy within one chunk.
const copyChunk = 64 << 20

// ReadFrom copies from r until io.EOF into the file at its position, as
// os.File.ReadFrom does; io.Copy uses it. When r is a *File (or an
// *io.LimitedReader of one) of this package or the os package, and this
// file is not in O_APPEND mode, the kernel copies the data itself
// (copy_file_range), without passing it through user memory; otherwise the
// data goes through Read and Write. Errors from r are returned unchanged;
// errors writing are *fs.PathError with Op "write".
func (f *File) ReadFrom(r io.Reader) (int64, error) {
	if f == nil {
		return 0, fs.ErrInvalid
	}
	if f.osf != nil {
		return f.osf.ReadFrom(unwrapFallback(r))
	}
	if !f.acquire() {
		return 0, f.closedErr("write")
	}
	defer f.release()
	if !f.append {
		if n, handled, err := f.copyFrom(r); handled {
			return n, err
		}
	}
	return io.Copy(writerOnly{f}, r)
}

// WriteTo copies the file from its position to end of file into w, as
// os.File.WriteTo does; io.Copy uses it. When w is a *File of this package
// or the os package, the kernel copies the data itself, as in ReadFrom.
// Errors reading are *fs.PathError with Op "read"; errors from w are
// returned unchanged.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	if f == nil {
		return 0, fs.ErrInvalid
	}
	if f.osf != nil {
		if dst, ok := w.(*File); ok && dst.osf == nil {
			// A fallback File into a ring File: let the ring File copy.
			return dst.ReadFrom(readerOnly{f})
		}
		return f.osf.WriteTo(unwrapFallbackW(w))
	}
	if !f.acquire() {
		return 0, f.closedErr("read")
	}
	defer f.release()
	if dst, ok := w.(*File); ok {
		return dst.ReadFrom(readerOnly{f})
	}
	if dst, ok := w.(*os.File); ok {
		if n, handled, err := f.copyToOS(dst); handled {
			return n, err
		}
	}
	return io.Copy(w, readerOnly{f})
}

// readerOnly hides every method of a *File but Read, so that io.Copy does
// not recurse into WriteTo, while copyFrom still finds the File.
type readerOnly struct{ f *File }

func (r readerOnly) Read(b []byte) (int, error) { return r.f.Read(b) }

// writerOnly hides every method of a *File but Write, so that io.Copy does
// not recurse into ReadFrom.
type writerOnly struct{ f *File }

func (w writerOnly) Write(b []byte) (int, error) { return w.f.Write(b) }

func unwrapFallback(r io.Reader) io.Reader {
	switch v := r.(type) {
	case *File:
		if v.osf != nil {
			return v.osf
		}
	case readerOnly:
		if v.f.osf != nil {
			return v.f.osf
		}
	}
	return r
}

func unwrapFallbackW(w io.Writer) io.Writer {
	if v, ok := w.(*File); ok && v.osf != nil {
		return v.osf
	}
	return w
}

// copyFrom copies from a file source with copy_file_range. handled is
// false if r is not a file, or if the kernel cannot copy between the two
// files before anything was copied; the caller then copies through memory.
func (f *File) copyFrom(r io.Reader) (written int64, handled bool, err error) {
	remain := int64(1<<63 - 1)
	lr, _ := r.(*io.LimitedReader)
	if lr != nil {
		r, remain = lr.R, lr.N
		if remain <= 0 {
			return 0, true, nil
		}
	}
	if ro, ok := r.(readerOnly); ok {
		r = ro.f
	}
	switch src := r.(type) {
	case *File:
		if src.osf != nil {
			return f.copyFromOS(src.osf, lr, remain)
		}
		if src == f || !src.acquire() {
			return 0, false, nil
		}
		defer src.release()
		unlock := lockPair(f, src)
		defer unlock()
		written, handled, err = copyFileRange(f.fd, f.posPtr(), src.fd, src.posPtr(), remain, f.closing, src.closing)
	case *os.File:
		return f.copyFromOS(src, lr, remain)
	default:
		return 0, false, nil
	}
	if lr != nil {
		lr.N -= written
	}
	return written, handled, f.copyErr("write", err)
}

// copyFromOS copies from an *os.File, whose position its own descriptor
// holds; the *os.File's SyscallConn keeps the descriptor open meanwhile.
func (f *File) copyFromOS(src *os.File, lr *io.LimitedReader, remain int64) (written int64, handled bool, err error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	f.posMu.Lock()
	defer f.posMu.Unlock()
	cerr := rc.Read(func(fd uintptr) bool {
		written, handled, err = copyFileRange(f.fd, f.posPtr(), int(fd), nil, remain, f.closing, nil)
		return true
	})
	if cerr != nil {
		return 0, false, nil // src is closed: let the generic copy report it
	}
	if lr != nil {
		lr.N -= written
	}
	return written, handled, f.copyErr("write", err)
}

// copyToOS copies the file from its position to an *os.File.
func (f *File) copyToOS(dst *os.File) (written int64, handled bool, err error) {
	rc, err := dst.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	if st, err := dst.Stat(); err != nil || !st.Mode().IsRegular() {
		return 0, false, nil
	}
	f.posMu.Lock()
	defer f.posMu.Unlock()
	cerr := rc.Write(func(fd uintptr) bool {
		// copy_file_range refuses a destination in append mode.
		if fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0); err != nil || fl&unix.O_APPEND != 0 {
			return true
		}
		written, handled, err = copyFileRange(int(fd), nil, f.fd, f.posPtr(), 1<<63-1, f.closing, nil)
		return true
	})
	if cerr != nil {
		return 0, false, nil
	}
	return written, handled, f.copyErr("read", err)
}

func (f *File) copyErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if err == fs.ErrClosed {
		return f.closedErr(op)
	}
	return &fs.PathError{Op: op, Path: f.name, Err: os.NewSyscallError("copy_file_range", err)}
}

// lockPair locks the position mutexes of two distinct Files in a fixed
// order, so that copies in opposite directions cannot deadlock.
func lockPair(a, b *File) func() {
	if uintptr(unsafe.Pointer(a)) > uintptr(unsafe.Pointer(b)) {
		a, b = b, a
	}
	a.posMu.Lock()
	b.posMu.Lock()
	return func() {
		b.posMu.Unlock()
		a.posMu.Unlock()
	}
}

// posPtr returns the position copy_file_range should use and advance for
// the File: its own, or nil (the descriptor's) for a stream. posMu is held.
func (f *File) posPtr() *int64 {
	if f.stream {
		return nil
	}
	return &f.pos
}

// copyFileRange copies up to remain bytes from srcFd at *srcOff to dstFd
// at *dstOff, advancing both (a nil offset means the descriptor's own
// position), in chunks, stopping with fs.ErrClosed when either stop
// function reports the File closing. handled is false, with nothing
// copied, where the kernel cannot copy between these files.
func copyFileRange(dstFd int, dstOff *int64, srcFd int, srcOff *int64, remain int64, stop1, stop2 func() bool) (written int64, handled bool, err error) {
	for remain > 0 {
		if stop1() || (stop2 != nil && stop2()) {
			return written, true, fs.ErrClosed
		}
		n, err := unix.CopyFileRange(srcFd, srcOff, dstFd, dstOff, int(min(remain, copyChunk)), 0)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			if written == 0 {
				switch err {
				case syscall.ENOSYS, syscall.EXDEV, syscall.EINVAL, syscall.EIO, syscall.EOPNOTSUPP, syscall.EPERM, syscall.EBADF:
					return 0, false, nil
				}
			}
			return written, true, err
		}
		if n == 0 {
			if written == 0 {
				// Files such as those of /proc report no size: let
				// the caller copy through memory.
				return 0, false, nil
			}
			break
		}
		written += int64(n)
		remain -= int64(n)
	}
	return written, true, nil
}
