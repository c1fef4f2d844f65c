package rionet

import (
	"io"
	"io/fs"
	"net"
	"os"
	"syscall"

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

// sendFileChunk is the most one sendfile(2) is asked to move.
const sendFileChunk = maxIO

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
		written, err, handled = fd.sendFile(int(src), remain)
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
//
// Splicing through a pipe on the ring (IORING_OP_SPLICE, file to pipe
// linked to pipe to socket) was measured too: no faster (docs/net.md), and
// a splice that waits for room in the socket runs on a kernel worker
// thread that cancellation did not interrupt here, so a deadline or Close
// would have waited for the peer to read.
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

var _ io.ReaderFrom = (*Conn)(nil)
