package rionet

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// ctrlFunc is a ListenConfig's or Dialer's Control, with a context.
type ctrlFunc func(ctx context.Context, network, address string, c syscall.RawConn) error

// openSocket creates a socket of family and sotype for network, as package
// net does before it binds or connects one: the default options
// (IPV6_V6ONLY as the network asks, SO_REUSEADDR on stream listeners,
// SO_BROADCAST on UDP sockets), then ctrl with ctrlAddr, then the bind to
// sa if it is not nil. The caller owns the socket returned.
func openSocket(ctx context.Context, family, sotype int, network string, listener bool, ctrl ctrlFunc, ctrlAddr string, sa unix.Sockaddr) (int, error) {
	s, err := newSocket(family, sotype)
	if err != nil {
		return -1, err
	}
	fail := func(err error) (int, error) {
		unix.Close(s)
		return -1, err
	}
	if family == unix.AF_INET6 {
		unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, boolint(ipVersion(network) == '6'))
	}
	if family != unix.AF_UNIX {
		if sotype == unix.SOCK_DGRAM {
			if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_BROADCAST, 1); err != nil {
				return fail(os.NewSyscallError("setsockopt", err))
			}
		} else if listener {
			if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
				return fail(os.NewSyscallError("setsockopt", err))
			}
		}
	}
	if ctrl != nil {
		if err := ctrl(ctx, ctrlNetwork(network, family), ctrlAddr, ctrlConn{s}); err != nil {
			return fail(err)
		}
	}
	if sa != nil {
		if err := unix.Bind(s, sa); err != nil {
			return fail(os.NewSyscallError("bind", err))
		}
	}
	return s, nil
}

// ctrlNetwork is the network Control is told, as package net tells it: the
// IP version spelled out ("tcp4", "udp6").
func ctrlNetwork(network string, family int) string {
	if isUnix(network) || ipVersion(network) != 0 {
		return network
	}
	if family == unix.AF_INET {
		return network + "4"
	}
	return network + "6"
}

// ctrlConn is the syscall.RawConn handed to Control: a socket not yet
// bound or connected, and not yet the package's. Control gives its
// descriptor; Read and Write call f once, as package net's do for a socket
// it cannot wait on yet.
type ctrlConn struct{ s int }

var errCannotWait = errors.New("rionet: cannot wait on a socket before it is bound or connected")

func (c ctrlConn) Control(f func(fd uintptr)) error { f(uintptr(c.s)); return nil }

func (c ctrlConn) Read(f func(fd uintptr) bool) error {
	if f(uintptr(c.s)) {
		return nil
	}
	return errCannotWait
}

func (c ctrlConn) Write(f func(fd uintptr) bool) error { return c.Read(f) }

// setIntOpt sets an integer socket option on fd for SetReadBuffer and
// SetWriteBuffer, with package net's error (see setError) wrapping an
// *os.SyscallError named setsockopt.
func (fd *netFD) setIntOpt(level, opt, v int) error {
	if !fd.incref() {
		return fd.setError(net.ErrClosed)
	}
	defer fd.decref()
	if err := unix.SetsockoptInt(fd.sysfd, level, opt, v); err != nil {
		return fd.setError(os.NewSyscallError("setsockopt", err))
	}
	return nil
}

// setError is the error of the setters package net has on every
// connection (deadlines, buffers): unlike the others, it names the local
// address as Addr and no Source.
func (fd *netFD) setError(err error) error {
	l, _ := fd.addrs()
	return &net.OpError{Op: "set", Net: fd.net, Addr: l, Err: err}
}

// SetReadBuffer sets the size of the socket's receive buffer (SO_RCVBUF),
// as (*net.TCPConn).SetReadBuffer does; the kernel doubles it and applies
// its own limits.
func (c *Conn) SetReadBuffer(bytes int) error {
	return c.fd.setIntOpt(unix.SOL_SOCKET, unix.SO_RCVBUF, bytes)
}

// SetWriteBuffer sets the size of the socket's send buffer (SO_SNDBUF).
func (c *Conn) SetWriteBuffer(bytes int) error {
	return c.fd.setIntOpt(unix.SOL_SOCKET, unix.SO_SNDBUF, bytes)
}

// SetKeepAliveConfig configures TCP keep-alive probes as
// (*net.TCPConn).SetKeepAliveConfig does: zero fields mean package net's
// defaults (15 s idle, 15 s between probes, 9 probes), negative ones leave
// the option as it is.
func (c *Conn) SetKeepAliveConfig(config net.KeepAliveConfig) error {
	fd := c.fd
	if !fd.incref() {
		return fd.opError("set", net.ErrClosed)
	}
	defer fd.decref()
	if err := setKeepAliveConfig(fd.sysfd, config); err != nil {
		return fd.opError("set", err)
	}
	return nil
}
