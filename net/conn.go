package rionet

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/shortcall"
	"golang.org/x/sys/unix"
)

// Conn is a stream connection (TCP or Unix) whose reads and writes go
// through an io_uring Ring. It is safe for concurrent use, like the
// standard library's *net.TCPConn: Reads are serialized with each other,
// as are Writes, and a Read and a Write can be in progress at once.
//
// Received data arrives in buffers shared by every connection on the ring
// (a multishot receive into a provided buffer ring), and Read copies it
// out; a Conn holds such buffers only while its data waits to be read, at
// most about 64 KiB of it on Linux 6.17 and later. The Conn owns its socket
// descriptor and closes it in Close, once the ring has finished every
// operation that used it.
type Conn struct {
	fd *netFD
}

var (
	_ net.Conn                        = (*Conn)(nil)
	_ syscall.Conn                    = (*Conn)(nil)
	_ io.WriterTo                     = (*Conn)(nil)
	_ interface{ CloseWrite() error } = (*Conn)(nil)
)

// newConn makes the Conn of fd. A Conn dropped unclosed is closed when the
// garbage collector finds it unreachable, as package net's are.
func newConn(fd *netFD) *Conn {
	c := &Conn{fd: fd}
	runtime.AddCleanup(c, dropped, fd)
	return c
}

// Read reads up to len(p) bytes into p. It returns data already received
// without a system call when there is some, and otherwise blocks until data
// arrives, the read deadline passes (an error wrapping
// os.ErrDeadlineExceeded), the peer closes its side (io.EOF) or c is closed
// (an error wrapping net.ErrClosed). A zero-length Read returns 0, nil at
// once. p is not retained after Read returns.
func (c *Conn) Read(p []byte) (int, error) {
	fd := c.fd
	if !fd.incref() {
		return 0, fd.opError("read", net.ErrClosed)
	}
	// No defers: they would make this frame larger, and a goroutine parked
	// in Read keeps the stack its deepest call needed. The receive is
	// submitted, and the wait for data made, from this frame rather than
	// deeper in read (see fill).
	fd.rmu.Lock()
	n, err := 0, error(nil)
	if len(p) > 0 {
		if fd.stream.Load() == nil {
			fd.armFirst()
		}
		for {
			n, err = fd.read(p)
			if err != errWait {
				break
			}
			fd.stream.Load().Wait()
		}
	}
	if err != nil {
		err = fd.readErr(err)
	}
	fd.rmu.Unlock()
	fd.decref()
	if err != nil {
		return n, fd.opError("read", err)
	}
	return n, nil
}

// armFirst submits the multishot receive if fill would, from a frame near
// the top of the goroutine's stack: the submission is the deepest call a
// Read makes (see fill). Called with rmu held.
func (fd *netFD) armFirst() {
	if fd.hasCur || fd.eof || fd.pendErr != nil || fd.direct || fd.e.noMultishot.Load() || fd.waitErr(true) != nil {
		return
	}
	fd.stream.Store(fd.e.submitRecv(fd.sysfd))
}

// read is Read with rmu held; errors are not yet wrapped.
func (fd *netFD) read(p []byte) (int, error) {
	if fd.expired(true) {
		return 0, os.ErrDeadlineExceeded
	}
	n := 0
	for {
		if fd.hasCur {
			b := fd.e.br.Bytes(fd.cur.ID, fd.cur.N)
			k := copy(p[n:], b[fd.curOff:])
			n += k
			fd.curOff += int32(k)
			if int(fd.curOff) == fd.cur.N {
				fd.e.br.Release(fd.cur.ID)
				fd.hasCur = false
			}
			if n == len(p) {
				return n, nil
			}
		}
		if n > 0 {
			// Take more that has already arrived, without blocking.
			s := fd.stream.Load()
			if s == nil || s.Buffered() == 0 {
				return n, nil
			}
			b, err := s.Next()
			if err := fd.took(b, err); err != nil && err != io.EOF {
				fd.pendErr = err // reported by the next Read
			}
			continue
		}
		err := fd.fill()
		if err == errDirect {
			fd.direct = false
			return fd.recvDirect(p)
		}
		if err != nil {
			return 0, err
		}
	}
}

func (e *engine) submitRecv(sysfd int) *rio.Stream[rio.Buffer] {
	limit := uint32(recvLimit)
	if e.noLimit.Load() {
		limit = 0 // RecvMultishot
	}
	return e.ring.RecvMultishotLimit(sysfd, e.br, 0, limit)
}

// took handles one result of the receive stream. It returns an error only
// for what Read must report now; other ends of the stream make the next
// iteration re-arm it.
func (fd *netFD) took(b rio.Buffer, err error) error {
	switch {
	case err == nil && b.N > 0:
		fd.cur, fd.curOff, fd.hasCur = b, 0, true
		return nil
	case err == nil: // the peer closed its side
		fd.eof = true
		fd.stream.Store(nil)
		return io.EOF
	case err == io.EOF: // the kernel ended the stream (limit reached): re-arm
		fd.stream.Store(nil)
		return nil
	}
	fd.noteSockErr(err)
	fd.endStream()
	switch errnoOf(err) {
	case syscall.ENOBUFS:
		fd.direct = true // the shared buffers are all in use
		return nil
	case syscall.ECANCELED, syscall.EINTR, syscall.EAGAIN:
		return fd.waitErr(true) // nil: re-arm
	case syscall.EINVAL:
		if !fd.e.noLimit.Load() {
			fd.e.noLimit.Store(true) // before Linux 6.17
			return nil
		}
		if !fd.e.noMultishot.Load() {
			fd.e.noMultishot.Store(true) // before Linux 6.0
			return nil
		}
	}
	return err
}

// endStream forgets a stream whose last result was an error, after taking
// anything that followed.
func (fd *netFD) endStream() {
	if s := fd.stream.Load(); s != nil && !(s.Ended() && s.Buffered() == 0) {
		s.Cancel()
		drainRecv(fd.e, s)
	}
	fd.stream.Store(nil)
}

// recvDirect receives into p with a plain receive: used when the shared
// buffers have run dry, and on kernels without multishot receive.
func (fd *netFD) recvDirect(p []byte) (int, error) {
	for {
		wc := fd.deadlines().rd.ctx()
		if err := fd.waitErr(true); err != nil {
			return 0, err
		}
		op := fd.e.ring.Recv(fd.sysfd, p, 0)
		n, err := op.WaitContext(wc)
		if err == errWake {
			n, err = op.Wait()
		}
		if err == nil {
			if n == 0 {
				fd.eof = true
				return 0, io.EOF
			}
			return n, nil
		}
		if errnoOf(err) != syscall.ECANCELED && !isTransient(err) {
			return 0, err
		}
		if err := fd.waitErr(true); err != nil {
			return 0, err
		}
	}
}

// Write writes p, blocking until all of it has been handed to the kernel,
// the write deadline passes (an error wrapping os.ErrDeadlineExceeded) or c
// is closed (net.ErrClosed); it returns the number of bytes written. The
// kernel reads p until Write returns; p is not retained afterwards.
func (c *Conn) Write(p []byte) (int, error) {
	fd := c.fd
	if !fd.incref() {
		return 0, fd.opError("write", net.ErrClosed)
	}
	defer fd.decref()
	fd.wmu.Lock()
	defer fd.wmu.Unlock()
	n, err := fd.write(p)
	if err != nil {
		err = fd.writeErr(err)
	}
	return n, fd.opError("write", err)
}

func (fd *netFD) write(p []byte) (int, error) {
	nn := 0
	for {
		if err := fd.waitErr(false); err != nil {
			return nn, err
		}
		if nn == len(p) {
			return nn, nil
		}
		if !ringSends {
			// Try a non-blocking send first: when the socket has room, as
			// it does in request-response traffic, it is one system call
			// and nothing else. Only a full socket waits on the ring.
			n, err := sendNow(fd.sysfd, p[nn:])
			if n > 0 {
				nn += n
				continue
			}
			if err != syscall.EAGAIN {
				return nn, err
			}
		}
		wc := fd.deadlines().wd.ctx()
		if err := fd.waitErr(false); err != nil {
			return nn, err
		}
		op := fd.e.ring.Send(fd.sysfd, p[nn:], unix.MSG_NOSIGNAL)
		n, err := op.WaitContext(wc)
		if err == errWake {
			n, err = op.Wait()
		}
		if n > 0 {
			nn += n
		}
		// ECANCELED: a deadline or Close woke us (waitErr says which);
		// EINTR, EAGAIN: try again.
		if err != nil && errnoOf(err) != syscall.ECANCELED && !isTransient(err) {
			return nn, err
		}
	}
}

// ringSends makes every Write a send on the ring, for comparison in
// benchmarks (RIONET_SEND=ring).
var ringSends = os.Getenv("RIONET_SEND") == "ring"

// sendNow sends what fits into the socket's buffer without waiting. It
// returns syscall.EAGAIN (bare) when nothing fits.
func sendNow(fd int, p []byte) (int, error) {
	if len(p) > maxIO {
		p = p[:maxIO]
	}
	for {
		// Raw when small (see package shortcall): otherwise the sender,
		// descheduled when the send wakes a peer on its CPU, may lose its
		// P and sleep, two thread switches per message.
		n, e := shortcall.Syscall6(len(p), unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)),
			unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			return int(n), nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, syscall.EAGAIN
		}
		return 0, os.NewSyscallError("write", e)
	}
}

// maxIO caps one system call's bytes, as package net does.
const maxIO = 1 << 30

// Close closes the connection. Blocked Reads and Writes return an error
// wrapping net.ErrClosed; Close returns once they have, every operation of
// the ring on the socket has completed, and the descriptor is closed. Data
// received and not read is discarded. Closing twice returns net.ErrClosed.
func (c *Conn) Close() error {
	if !c.fd.close() {
		return c.fd.opError("close", net.ErrClosed)
	}
	return nil
}

// LocalAddr returns the local address: a *net.TCPAddr or *net.UnixAddr.
func (c *Conn) LocalAddr() net.Addr {
	l, _ := c.fd.addrs()
	if l == nil {
		return zeroAddr(c.fd.net)
	}
	return l
}

// RemoteAddr returns the peer's address: a *net.TCPAddr or *net.UnixAddr.
func (c *Conn) RemoteAddr() net.Addr {
	_, r := c.fd.addrs()
	if r == nil {
		return zeroAddr(c.fd.net)
	}
	return r
}

// SetDeadline sets the read and write deadlines, as SetReadDeadline and
// SetWriteDeadline do.
func (c *Conn) SetDeadline(t time.Time) error {
	if c.fd.isClosing() {
		return c.fd.setError(net.ErrClosed)
	}
	c.fd.setDeadline(t, true, true)
	return nil
}

// SetReadDeadline sets the time after which Read fails with an error
// wrapping os.ErrDeadlineExceeded, including a Read already blocked. The
// zero time clears it. It may be called concurrently with Read; after a
// timeout, a later deadline makes the connection readable again, with no
// data lost.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.fd.isClosing() {
		return c.fd.setError(net.ErrClosed)
	}
	c.fd.setDeadline(t, true, false)
	return nil
}

// SetWriteDeadline sets the time after which Write fails with an error
// wrapping os.ErrDeadlineExceeded, including a Write already blocked; the
// Write returns how many bytes it did write. The zero time clears it.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.fd.isClosing() {
		return c.fd.setError(net.ErrClosed)
	}
	c.fd.setDeadline(t, false, true)
	return nil
}

// CloseRead shuts down the reading side of the connection: later Reads
// return io.EOF once the data already received is consumed.
func (c *Conn) CloseRead() error { return c.shutdown(unix.SHUT_RD) }

// CloseWrite shuts down the writing side of the connection: the peer reads
// io.EOF after the data already written.
func (c *Conn) CloseWrite() error { return c.shutdown(unix.SHUT_WR) }

func (c *Conn) shutdown(how int) error {
	fd := c.fd
	if !fd.incref() {
		return fd.opError("close", net.ErrClosed)
	}
	defer fd.decref()
	if how != unix.SHUT_RD {
		fd.noteShutWR()
	}
	if err := unix.Shutdown(fd.sysfd, how); err != nil {
		return fd.opError("close", os.NewSyscallError("shutdown", err))
	}
	return nil
}

// SetNoDelay controls Nagle's algorithm on a TCP connection (TCP_NODELAY).
// Like package net, this package disables Nagle's algorithm by default.
func (c *Conn) SetNoDelay(noDelay bool) error {
	return c.setsockopt("set", unix.IPPROTO_TCP, unix.TCP_NODELAY, boolint(noDelay))
}

// SetKeepAlive turns TCP keep-alive probes on or off (SO_KEEPALIVE).
func (c *Conn) SetKeepAlive(keepalive bool) error {
	return c.setsockopt("set", unix.SOL_SOCKET, unix.SO_KEEPALIVE, boolint(keepalive))
}

// SetKeepAlivePeriod sets the idle time before the first keep-alive probe
// (TCP_KEEPIDLE), as (*net.TCPConn).SetKeepAlivePeriod does: zero means
// 15 seconds, negative leaves it unchanged.
func (c *Conn) SetKeepAlivePeriod(d time.Duration) error {
	fd := c.fd
	if !fd.incref() {
		return fd.opError("set", net.ErrClosed)
	}
	defer fd.decref()
	if err := setKeepAliveSecs(fd.sysfd, unix.TCP_KEEPIDLE, d); err != nil {
		return fd.opError("set", err)
	}
	return nil
}

// SetLinger sets SO_LINGER as (*net.TCPConn).SetLinger does.
func (c *Conn) SetLinger(sec int) error {
	fd := c.fd
	if !fd.incref() {
		return fd.opError("set", net.ErrClosed)
	}
	defer fd.decref()
	l := &unix.Linger{}
	if sec >= 0 {
		l.Onoff, l.Linger = 1, int32(sec)
	}
	if err := unix.SetsockoptLinger(fd.sysfd, unix.SOL_SOCKET, unix.SO_LINGER, l); err != nil {
		return fd.opError("set", os.NewSyscallError("setsockopt", err))
	}
	return nil
}

func (c *Conn) setsockopt(op string, level, opt, v int) error {
	fd := c.fd
	if !fd.incref() {
		return fd.opError(op, net.ErrClosed)
	}
	defer fd.decref()
	if err := unix.SetsockoptInt(fd.sysfd, level, opt, v); err != nil {
		return fd.opError(op, os.NewSyscallError("setsockopt", err))
	}
	return nil
}

func boolint(b bool) int {
	if b {
		return 1
	}
	return 0
}

// SyscallConn returns a raw connection for socket options and the like.
// Its Read and Write wait for readiness with a ring poll; note that data
// Conn.Read has already received is not visible to them.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	if c.fd.isClosing() {
		return nil, syscall.EINVAL
	}
	return &rawConn{fd: c.fd, owner: c}, nil
}

// File returns a copy of the socket descriptor as an *os.File in blocking
// mode, which the caller owns and must close. Closing c does not affect it.
func (c *Conn) File() (*os.File, error) { return c.fd.file() }

// WriteTo writes the data received on c to w until EOF or an error,
// handing w the shared receive buffers directly rather than copying them
// into a buffer of its own. It implements io.WriterTo, which io.Copy uses.
// The read deadline applies to the waits for data.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	fd := c.fd
	if !fd.incref() {
		return 0, fd.opError("read", net.ErrClosed)
	}
	defer fd.decref()
	fd.rmu.Lock()
	defer fd.rmu.Unlock()
	if fd.expired(true) {
		return 0, fd.opError("read", os.ErrDeadlineExceeded)
	}
	var (
		total int64
		buf   []byte
	)
	for {
		if !fd.hasCur {
			err := fd.fill()
			if err == errWait {
				fd.stream.Load().Wait()
				continue
			}
			if err == errDirect {
				// No shared buffers to be had: receive into our own.
				fd.direct = false
				if buf == nil {
					buf = make([]byte, 32<<10)
				}
				var n int
				if n, err = fd.recvDirect(buf); n > 0 {
					m, werr := w.Write(buf[:n])
					total += int64(m)
					if werr == nil && m < n {
						werr = io.ErrShortWrite
					}
					if werr != nil {
						return total, werr
					}
				}
			}
			if err != nil {
				err = fd.readErr(err)
			}
			if err == io.EOF {
				return total, nil
			}
			if err != nil {
				return total, fd.opError("read", err)
			}
			continue
		}
		b := fd.e.br.Bytes(fd.cur.ID, fd.cur.N)[fd.curOff:]
		n, err := w.Write(b)
		total += int64(n)
		fd.curOff += int32(n)
		if int(fd.curOff) >= fd.cur.N {
			fd.e.br.Release(fd.cur.ID)
			fd.hasCur = false
		}
		if err == nil && n < len(b) {
			err = io.ErrShortWrite
		}
		if err != nil {
			return total, err
		}
	}
}

// errDirect tells WriteTo that no shared buffer can be had and it must
// receive into a buffer of its own.
var errDirect = errors.New("rionet: receive directly")

// errWait tells the caller of fill to wait on the receive stream
// (fd.stream.Load().Wait()) and call it again.
var errWait = errors.New("rionet: wait for the stream")

// fill makes fd.cur hold received data, for read and WriteTo. When there is
// none yet, it returns errWait, and the caller waits on the stream and calls
// fill again.
//
// A goroutine parked on an idle connection keeps the stack that the deepest
// call it made needed, as does one that grew it for a moment while it
// submitted the receive or waited. Those calls are made from Conn.Read's
// frame (armFirst, Stream.Wait) rather than from here, so that the
// goroutine stays within the minimum stack as one parked in package net's
// Read does (TestParkedReadStack).
func (fd *netFD) fill() error {
	if err := fd.pendErr; err != nil {
		fd.pendErr = nil
		return err
	}
	for !fd.hasCur {
		s := fd.stream.Load()
		if s != nil && (s.Buffered() > 0 || s.Ended()) {
			b, err := s.Next()
			if err := fd.took(b, err); err != nil {
				return err
			}
			continue
		}
		if fd.eof {
			return io.EOF
		}
		if err := fd.waitErr(true); err != nil {
			return err
		}
		if fd.direct || fd.e.noMultishot.Load() {
			return errDirect
		}
		if s == nil {
			// From here on, the read deadline and Close wake the
			// stream's Wait: look at waitErr again before waiting.
			fd.stream.Store(fd.e.submitRecv(fd.sysfd))
			continue
		}
		return errWait
	}
	return nil
}
