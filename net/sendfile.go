package rionet

import (
	"io"
	"io/fs"
	"net"
	"os"
	"syscall"

	"github.com/gorio/rio"
	"golang.org/x/sys/unix"
)

// ReadFrom implements io.ReaderFrom, which io.Copy(c, r) uses. When r is a
// regular file (an *os.File, what os.File.WriteTo hands on, or an
// *io.LimitedReader of one, as http.ServeContent copies a range), the data
// goes from the page cache to the socket without passing through user
// space: sendfile(2), as package net's *net.TCPConn does, from the file's
// current position, which advances by what was sent. Other readers are
// copied with c.Write. The write deadline applies to the waits for room in
// the socket, and Close ends them. Errors are package net's: a *net.OpError
// with Op "readfrom".
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	fd := c.fd
	if !fd.incref() {
		return 0, fd.opError("readfrom", net.ErrClosed)
	}
	defer fd.decref()
	n, err, handled := c.sendFile(r)
	if !handled {
		var m int64
		m, err = io.Copy(writerOnly{c}, r)
		n += m
	}
	if err == nil || err == io.EOF {
		return n, err
	}
	if name, ok := fromFileWriteTo(r); ok && handled {
		// With package net, os.File.WriteTo sends the file itself and
		// reports its errors as the file's.
		return n, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return n, fd.opError("readfrom", err)
}

// fromFileWriteTo reports whether r is what os.File.WriteTo passes to
// io.Copy (the file, without its WriteTo method), and the file's name.
// Package net's connections never see it for a regular file: os sends it
// with sendfile(2) before.
func fromFileWriteTo(r io.Reader) (string, bool) {
	if _, ok := r.(*os.File); ok {
		return "", false
	}
	f, ok := r.(interface {
		syscall.Conn
		Name() string
	})
	if !ok {
		return "", false
	}
	return f.Name(), true
}

// writerOnly hides Conn.ReadFrom from io.Copy, which would recurse.
type writerOnly struct{ io.Writer }

// sendFileChunk is the most one sendfile(2) moves, as in package net.
const sendFileChunk = 4 << 20

// sendFile sends r with sendfile(2) if r is a regular file. handled is
// false if it is not, or if the kernel cannot send from it and nothing was
// sent, for the caller to copy instead.
func (c *Conn) sendFile(r io.Reader) (written int64, err error, handled bool) {
	remain := int64(-1) // to the end of the file
	lr, _ := r.(*io.LimitedReader)
	if lr != nil {
		remain, r = lr.N, lr.R
		if remain <= 0 {
			return 0, nil, true
		}
	}
	// An *os.File, or the wrapper os.File.WriteTo passes on: both are
	// syscall.Conns with Stat.
	f, ok := r.(interface {
		syscall.Conn
		Stat() (os.FileInfo, error)
	})
	if !ok {
		return 0, nil, false
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return 0, nil, false
	}
	sc, err := f.SyscallConn()
	if err != nil {
		return 0, nil, false
	}
	fd := c.fd
	fd.wmu.Lock()
	defer fd.wmu.Unlock()
	cerr := sc.Control(func(src uintptr) {
		if useSpliceRing {
			written, err, handled = fd.spliceFile(int(src), remain)
		} else {
			written, err, handled = fd.sendFile(int(src), remain)
		}
	})
	if cerr != nil && written == 0 {
		return 0, nil, false
	}
	if lr != nil {
		lr.N -= written
	}
	if testHookSendFile != nil && handled {
		testHookSendFile(written)
	}
	return written, err, handled
}

// testHookSendFile, set by tests, sees what each ReadFrom sent without
// copying.
var testHookSendFile func(written int64)

// sendFile sends up to remain bytes (-1: all) of the regular file src with
// sendfile(2), wmu held. The socket is switched to non-blocking mode for
// the duration (as for a RawConn callback, see rawConn): in blocking mode
// sendfile would wait for room in the socket in the kernel, deaf to the
// write deadline and Close; this way it returns EAGAIN and the wait is a
// ring poll, as package net waits in its poller.
func (fd *netFD) sendFile(src int, remain int64) (written int64, err error, handled bool) {
	if err := fd.setNonblock(true); err != nil {
		return 0, err, true
	}
	defer fd.setNonblock(false)
	for remain != 0 {
		if err := fd.waitErr(false); err != nil {
			return written, err, true
		}
		chunk := sendFileChunk
		if remain > 0 && remain < int64(chunk) {
			chunk = int(remain)
		}
		n, err := unix.Sendfile(fd.sysfd, src, nil, chunk)
		if n > 0 {
			written += int64(n)
			if remain > 0 {
				remain -= int64(n)
			}
		}
		switch err {
		case nil:
			if n == 0 {
				return written, nil, true // end of the file
			}
		case syscall.EINTR:
		case syscall.EAGAIN:
			if err := fd.waitReady(false, unix.POLLOUT); err != nil {
				return written, err, true
			}
		case syscall.ENOSYS, syscall.EOPNOTSUPP, syscall.EINVAL:
			return written, os.NewSyscallError("sendfile", err), written > 0
		default:
			return written, fd.writeErr(os.NewSyscallError("sendfile", err)), true
		}
	}
	return written, nil, true
}

// useSpliceRing makes ReadFrom splice files through the ring instead of
// sendfile(2), for comparison (RIONET_SENDFILE=splice); it was slower
// here (docs/net.md).
var useSpliceRing = os.Getenv("RIONET_SENDFILE") == "splice"

// splicePipe is the size of the pipe spliceFile moves data through.
const splicePipe = 1 << 20

// spliceFile is sendFile through the ring: for each chunk, one batch of a
// splice from the file into a pipe linked to a splice from the pipe into
// the socket (IORING_OP_SPLICE, which the kernel runs on its worker
// threads). The file is read at explicit offsets, and its position set to
// what was sent at the end, as sendfile leaves it.
func (fd *netFD) spliceFile(src int, remain int64) (written int64, err error, handled bool) {
	pos, err := unix.Seek(src, 0, io.SeekCurrent)
	if err != nil {
		return 0, nil, false
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, nil, false
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	size, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, splicePipe)
	if err != nil {
		size = 64 << 10
	}
	defer func() {
		if written > 0 {
			unix.Seek(src, pos+written, io.SeekStart)
		}
	}()
	var read, inPipe int64 // bytes read from the file; bytes in the pipe
	eof := false
	for remain != 0 && !(eof && inPipe == 0) {
		if err := fd.waitErr(false); err != nil {
			return written, err, true
		}
		b := fd.e.ring.NewBatch()
		// Refill only an empty pipe, with half of what it holds: data at
		// an offset that is not page-aligned takes one more page of the
		// pipe than its size says, and a splice into a full pipe would
		// wait for the one out of it, which is linked behind it.
		var chunk int64
		if inPipe == 0 && !eof {
			chunk = int64(size / 2)
			if remain > 0 {
				chunk = min(chunk, remain)
			}
		}
		var in *rio.Completion[int]
		if !eof && chunk > 0 {
			in = b.Splice(src, pos+read, p[1], -1, int(chunk), unix.SPLICE_F_MOVE)
			b.Link()
		}
		out := b.Splice(p[0], -1, fd.sysfd, -1, int(inPipe+chunk), unix.SPLICE_F_MOVE)
		wc := fd.deadlines().wd.ctx()
		if err := b.Submit(); err != nil {
			return written, err, written > 0
		}
		n2, err2 := out.WaitContext(wc)
		if err2 == errWake {
			n2, err2 = out.Wait()
		}
		if in != nil {
			n1, err1 := in.Wait()
			if err1 != nil {
				if written == 0 && read == 0 {
					return 0, nil, false
				}
				return written, err1, true
			}
			if n1 == 0 {
				eof = true
			}
			read += int64(n1)
			inPipe += int64(n1)
		}
		if n2 > 0 {
			written += int64(n2)
			inPipe -= int64(n2)
			if remain > 0 {
				remain -= int64(n2)
			}
		}
		if err2 != nil && errnoOf(err2) != syscall.ECANCELED && !isTransient(err2) {
			return written, fd.writeErr(renameErr(err2, "splice")), true
		}
	}
	return written, nil, true
}

var _ io.ReaderFrom = (*Conn)(nil)
