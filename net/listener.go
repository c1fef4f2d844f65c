package rionet

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/gorio/rio"
	"golang.org/x/sys/unix"
)

// Listener is a TCP or Unix stream listener that accepts connections with
// one multishot accept on an io_uring Ring. It is safe for concurrent use.
// It owns its socket (and, for a Unix socket it created, the socket file)
// until Close; the connections it accepts are owned by the caller.
type Listener struct {
	fd           *netFD
	addr         net.Addr
	keepAlive    time.Duration
	keepAliveCfg net.KeepAliveConfig

	amu    sync.Mutex       // serializes Accept
	stream *rio.Stream[int] // the multishot accept, if armed
}

var (
	_ net.Listener = (*Listener)(nil)
	_ syscall.Conn = (*Listener)(nil)
)

// Accept waits for and returns the next connection, a *Conn. It fails with
// an error wrapping net.ErrClosed once the listener is closed, also when
// it was blocked at the time, and with os.ErrDeadlineExceeded after the
// deadline set with SetDeadline.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptConn()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptConn is Accept returning the concrete type.
func (l *Listener) AcceptConn() (*Conn, error) {
	fd := l.fd
	if !fd.incref() {
		return nil, l.opError(net.ErrClosed)
	}
	defer fd.decref()
	l.amu.Lock()
	defer l.amu.Unlock()
	for {
		if err := fd.waitErr(true); err != nil {
			return nil, l.opError(err)
		}
		nfd, err := l.accept()
		if err == errWake || err == io.EOF {
			continue
		}
		if err != nil {
			switch errnoOf(err) {
			case syscall.ECANCELED, syscall.EINTR, syscall.EAGAIN, syscall.ECONNABORTED:
				continue
			}
			return nil, l.opError(err)
		}
		if isTCP(fd.net) {
			if err := setTCPOptions(nfd, l.keepAlive, l.keepAliveCfg); err != nil {
				unix.Close(nfd)
				return nil, l.opError(err)
			}
		}
		cfd := newNetFD(fd.e, nfd, fd.family, fd.net)
		cfd.recordAddrs(l.addr, nil)
		return newConn(cfd), nil
	}
}

// accept returns one accepted socket, or errWake when woken by the
// deadline or Close, or io.EOF when the multishot accept ended.
func (l *Listener) accept() (int, error) {
	fd := l.fd
	wc := fd.deadlines().rd.ctx()
	if err := fd.waitErr(true); err != nil {
		return -1, err
	}
	if fd.e.noAcceptMS.Load() {
		op := fd.e.ring.Accept(fd.sysfd, 0)
		nfd, err := op.WaitContext(wc)
		if err == errWake {
			if nfd, err = op.Wait(); err == nil {
				return nfd, nil // accepted before the cancellation
			}
			return -1, errWake
		}
		return nfd, err
	}
	if l.stream == nil {
		l.stream = fd.e.ring.AcceptMultishot(fd.sysfd, 0)
	}
	nfd, err := l.stream.NextContext(wc)
	if err == io.EOF || err != nil && l.stream.Ended() && l.stream.Buffered() == 0 {
		l.stream = nil
	}
	if errnoOf(err) == syscall.EINVAL && !fd.e.noAcceptMS.Load() {
		fd.e.noAcceptMS.Store(true) // before Linux 5.19
		return -1, io.EOF
	}
	return nfd, err
}

// drain ends the multishot accept and closes the sockets it accepted that
// nobody took; it runs once nothing uses the listener.
func (l *Listener) drain() {
	s := l.stream
	if s == nil {
		return
	}
	s.Cancel()
	for !(s.Ended() && s.Buffered() == 0) {
		nfd, err := s.Next()
		if err == io.EOF {
			break
		}
		if err == nil {
			unix.Close(nfd)
		}
	}
	l.stream = nil
}

func (l *Listener) opError(err error) error {
	return &net.OpError{Op: "accept", Net: l.fd.net, Addr: l.addr, Err: err}
}

// Close stops listening. A blocked Accept returns an error wrapping
// net.ErrClosed. Close returns once the ring has finished with the socket
// and it is closed; a Unix socket file the listener created is removed.
func (l *Listener) Close() error {
	if !l.fd.close() {
		return &net.OpError{Op: "close", Net: l.fd.net, Addr: l.addr, Err: net.ErrClosed}
	}
	return nil
}

// Addr returns the address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.addr }

// SetDeadline sets the time after which Accept fails with an error
// wrapping os.ErrDeadlineExceeded; the zero time clears it.
func (l *Listener) SetDeadline(t time.Time) error {
	if l.fd.isClosing() {
		return &net.OpError{Op: "set", Net: l.fd.net, Addr: l.addr, Err: net.ErrClosed}
	}
	l.fd.setDeadline(t, true, false)
	return nil
}

// SyscallConn returns a raw connection to the listening socket.
func (l *Listener) SyscallConn() (syscall.RawConn, error) {
	if l.fd.isClosing() {
		return nil, syscall.EINVAL
	}
	return &rawConn{fd: l.fd}, nil
}

// File returns a copy of the listening socket's descriptor, which the
// caller owns and must close.
func (l *Listener) File() (*os.File, error) {
	fd := l.fd
	if !fd.incref() {
		return nil, &net.OpError{Op: "file", Net: fd.net, Addr: l.addr, Err: net.ErrClosed}
	}
	defer fd.decref()
	nfd, err := unix.FcntlInt(uintptr(fd.sysfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, &net.OpError{Op: "file", Net: fd.net, Addr: l.addr, Err: os.NewSyscallError("fcntl", err)}
	}
	return os.NewFile(uintptr(nfd), fd.net+":"+l.addr.String()), nil
}
