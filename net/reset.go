package rionet

import (
	"io"
	"os"
	"syscall"
)

// Errors after a peer's reset, as package net reports them.
//
// When a TCP peer resets the connection, the kernel sets the socket's
// error (ECONNRESET) and shuts it down both ways. The first system call
// to look takes the error; later sends fail with EPIPE and later receives
// return 0, the end of the stream. With package net, that first call is
// the application's: a Write after the reset returns ECONNRESET and the
// next Read io.EOF, or a Read returns ECONNRESET and the next Write EPIPE.
//
// rionet keeps a multishot receive armed, which may take the error before
// the application asks: the Write would then see EPIPE, and the Read
// (after any data received before the reset) ECONNRESET. So the receive
// stream's error is recorded (in netFD.rst) when the reader takes it, and
// whichever of Read and Write reports it first claims it: a
// Write that gets EPIPE, not having shut down its side itself, reports the
// error the receive took instead, if no Read has reported it yet; a Read
// whose error the Write has claimed reports io.EOF.

// The bits of netFD.rst.
const (
	rstErrno   = 0xff   // the socket error the receive stream took
	claimRead  = 1 << 8 // a Read reported the socket error
	claimWrite = 2 << 8 // a Write reported it
	claimMask  = 3 << 8
	rstShutWR  = 1 << 10 // CloseWrite was called: an EPIPE is ours
)

// setRst sets bits in fd.rst if cond holds for its value; it reports
// whether it did.
func (fd *netFD) setRst(bits uint32, cond func(uint32) bool) bool {
	for {
		v := fd.rst.Load()
		if !cond(v) {
			return false
		}
		if fd.rst.CompareAndSwap(v, v|bits) {
			return true
		}
	}
}

// noteSockErr records the socket error a receive stream ended with, for a
// Write that gets EPIPE. The reader calls it before it forgets the stream.
func (fd *netFD) noteSockErr(err error) {
	if e := errnoOf(err); isSocketErr(e) && e <= rstErrno {
		fd.setRst(uint32(e), func(v uint32) bool { return v&rstErrno == 0 })
	}
}

// claim makes who (claimRead or claimWrite) the one that reports the
// socket error, unless the other already is; it reports whether who is.
func (fd *netFD) claim(who uint32) bool {
	fd.setRst(who, func(v uint32) bool { return v&claimMask == 0 })
	return fd.rst.Load()&claimMask == who
}

// noteShutWR records that the write side was shut down by us.
func (fd *netFD) noteShutWR() { fd.setRst(rstShutWR, func(uint32) bool { return true }) }

// isSocketErr reports whether e is an error of the socket, rather than one
// of the ring's (a cancellation, the shared buffers running dry, a retry,
// a kernel without some feature).
func isSocketErr(e syscall.Errno) bool {
	switch e {
	case 0, syscall.ECANCELED, syscall.ENOBUFS, syscall.EINTR, syscall.EAGAIN, syscall.EINVAL:
		return false
	}
	return true
}

// readErr is what a Read reports for err, with rmu held: err, unless it is
// a socket error that a Write has already reported in its stead, in which
// case it is the end of the stream, as package net's Read would return.
func (fd *netFD) readErr(err error) error {
	if !isSocketErr(errnoOf(err)) || !isTCP(fd.net) {
		return err
	}
	if fd.claim(claimRead) {
		return err
	}
	fd.eof = true
	return io.EOF
}

// writeErr is what a Write reports for err: the socket error the receive
// stream took, if err is the EPIPE that follows it and no Read has
// reported that error yet.
func (fd *netFD) writeErr(err error) error {
	if errnoOf(err) != syscall.EPIPE || !isTCP(fd.net) || fd.rst.Load()&rstShutWR != 0 {
		return err
	}
	e := fd.consumedErr()
	if e == 0 || fd.rst.Load()&claimMask != 0 || !fd.claim(claimWrite) {
		return err
	}
	call := "write"
	if se, ok := err.(*os.SyscallError); ok {
		call = se.Syscall
	}
	return &os.SyscallError{Syscall: call, Err: e}
}

// consumedErr returns the socket error the receive took: from the armed
// stream if it has ended with one (Err reaps what is ready first), else
// what the reader recorded when it took it. The stream is looked at first:
// the reader records the error before it forgets the stream.
func (fd *netFD) consumedErr() syscall.Errno {
	if s := fd.stream.Load(); s != nil {
		if e := errnoOf(s.Err()); isSocketErr(e) {
			return e
		}
	}
	return syscall.Errno(fd.rst.Load() & rstErrno)
}
