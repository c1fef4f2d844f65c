package rionet

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Listener is a TCP or Unix stream listener. It waits for connections
// through Go's network poller and accepts them with accept4, as package net
// does, rather than on the ring: a server's Accept is blocked nearly all
// the time, and a waiter on the ring would make every completion on it
// wake somebody (see docs/net.md). The connections it accepts use the ring.
// It is safe for concurrent use. It owns its socket (and, for a Unix
// socket it created, the socket file) until Close; the connections it
// accepts are owned by the caller.
type Listener struct {
	fd           *netFD
	addr         net.Addr
	keepAlive    time.Duration
	keepAliveCfg net.KeepAliveConfig

	amu sync.Mutex     // serializes Accept
	ls  *listenerState // also the netFD's: it must not point back at the Listener
}

// listenerState is the part of a Listener that its netFD uses too: to wake
// a blocked Accept, and when it is destroyed. It must not point back at
// the Listener, whose cleanup takes the netFD.
type listenerState struct {
	poll   *os.File        // a descriptor of the socket in the network poller
	prc    syscall.RawConn // poll's
	unlink string          // the Unix socket file to remove, if any
}

// drain closes the poller's descriptor; it runs once nothing uses the
// listener.
func (ls *listenerState) drain() { ls.poll.Close() }

// kick wakes a blocked Accept through the poller's own deadline (a
// deadline that passed, or Close); Accept then looks at waitErr.
func (ls *listenerState) kick() { ls.poll.SetReadDeadline(time.Unix(1, 0)) }

var (
	_ net.Listener = (*Listener)(nil)
	_ syscall.Conn = (*Listener)(nil)
)

// pollListener makes the Listener of fd, a listening socket, whose address
// is laddr. The socket becomes non-blocking (the descriptors share it), as
// the network poller needs; the sockets it accepts are in blocking mode,
// as the ring needs.
func pollListener(fd *netFD, laddr net.Addr, unlink string) (*Listener, error) {
	pfd, err := unix.FcntlInt(uintptr(fd.sysfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	if err := unix.SetNonblock(pfd, true); err != nil {
		unix.Close(pfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	ls := &listenerState{poll: os.NewFile(uintptr(pfd), "rionet-listener"), unlink: unlink}
	if ls.prc, err = ls.poll.SyscallConn(); err != nil {
		ls.poll.Close()
		return nil, err
	}
	fd.nonblock = true
	fd.lis = ls
	return &Listener{fd: fd, addr: laddr, ls: ls}, nil
}

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
		if err == errWake {
			continue
		}
		if err != nil {
			switch errnoOf(err) {
			case syscall.EINTR, syscall.ECONNABORTED:
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

// accept returns one accepted socket, waiting in the network poller until
// there is one, or errWake when the poller's deadline woke it (a deadline
// or Close: the caller looks at waitErr).
func (l *Listener) accept() (int, error) {
	var (
		nfd  = -1
		aerr error
	)
	err := l.ls.prc.Read(func(s uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_ACCEPT4, s, 0, 0, unix.SOCK_CLOEXEC, 0, 0)
		if e == unix.EAGAIN {
			return false // wait for the socket to become readable
		}
		if e != 0 {
			aerr = os.NewSyscallError("accept", e)
		} else {
			nfd = int(r)
		}
		return true
	})
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			l.ls.poll.SetReadDeadline(time.Time{})
			return -1, errWake
		}
		if l.fd.isClosing() {
			return -1, errWake
		}
		return -1, err
	}
	return nfd, aerr
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
	return &rawConn{fd: l.fd, owner: l}, nil
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
