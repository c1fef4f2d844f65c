// Package rionet provides a net.Listener and net.Conn whose I/O goes
// through io_uring (package github.com/gorio/rio) instead of Go's epoll
// network poller. A server switches with one line:
//
//	ln, err := rionet.Listen("tcp", ":8080")
//
// # How it works
//
// A Listener accepts with one multishot accept. Each Conn receives with one
// multishot receive into a ring of buffers shared by all connections of the
// Ring: data that arrives while nobody reads lands in a shared buffer, and
// the next Read copies it out without a system call. A Conn that is not
// read holds at most about 64 KiB of shared buffers (on Linux 6.17 and
// later, which can cap a multishot receive); then its receive stops until
// a Read re-arms it, and the data waits in the socket. If the shared
// buffers run dry, Reads fall back to receiving directly into the caller's
// buffer. Writes are sends on the ring, combined with other goroutines'
// submissions into few io_uring_enter calls.
//
// The semantics are package net's: errors are *net.OpError wrapping
// *os.SyscallError, io.EOF is returned bare, deadlines report
// os.ErrDeadlineExceeded, and operations on or blocked in a closed Conn or
// Listener report net.ErrClosed. Deadlines can be set and moved at any time,
// also while a Read or Write is blocked, and a Conn stays usable after a
// timeout.
//
// # Rings
//
// By default every Listener and Conn uses one Ring of the package's own,
// created on first use and kept until the process exits. A ListenConfig or
// Dialer can name another Ring; the package then registers its receive
// buffers on it (buffer group BufferGroup), and Release undoes that. Every
// Conn with a Read outstanding holds a completion queue entry of its Ring,
// so a Ring bounds the connections that read at once (the default one:
// about 65,000).
//
// # Fallback
//
// Where io_uring is unavailable (an old kernel, a seccomp profile that
// blocks it, kernel.io_uring_disabled), Listen and Dial return the standard
// library's listener and connection instead. Set ListenConfig.NoFallback or
// Dialer.NoFallback, or the environment variable RIONET_NOFALLBACK=1, to
// get the error (matching rio.ErrNotSupported) instead.
package rionet

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/gorio/rio"
	"golang.org/x/sys/unix"
)

// noFallbackEnv reports whether RIONET_NOFALLBACK=1 is set.
func noFallbackEnv() bool { return os.Getenv("RIONET_NOFALLBACK") == "1" }

// Listen announces on the local network address, like net.Listen, for
// networks "tcp", "tcp4", "tcp6" and "unix". The result is a *Listener, or
// a listener of package net where io_uring is unavailable (see the package
// documentation on fallback).
func Listen(network, address string) (net.Listener, error) {
	var lc ListenConfig
	return lc.Listen(context.Background(), network, address)
}

// Dial connects to the address on the named network, like net.Dial, for
// networks "tcp", "tcp4", "tcp6" and "unix". The result is a *Conn, or a
// connection of package net where io_uring is unavailable.
func Dial(network, address string) (net.Conn, error) {
	var d Dialer
	return d.DialContext(context.Background(), network, address)
}

// DialContext is Dial with a context that bounds the connection attempt;
// once connected, the context no longer matters.
func DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var d Dialer
	return d.DialContext(ctx, network, address)
}

// ListenConfig holds options for listening, like net.ListenConfig. The
// zero value uses the package's default Ring.
type ListenConfig struct {
	// Ring is the io_uring instance the listener and the connections it
	// accepts use; nil means the package's default Ring. The Ring must
	// stay open until they are all closed.
	Ring *rio.Ring

	// KeepAlive is the keep-alive period for accepted TCP connections, as
	// in net.ListenConfig: zero means 15 seconds, negative disables them.
	KeepAlive time.Duration

	// NoFallback makes Listen fail where io_uring is unavailable rather
	// than return a listener of package net.
	NoFallback bool
}

// Listen announces on the local network address; see the package function
// Listen. ctx bounds name resolution only.
func (lc *ListenConfig) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return nil, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	e, err := engineFor(lc.Ring)
	if err != nil {
		if errors.Is(err, rio.ErrNotSupported) && !lc.NoFallback && !noFallbackEnv() {
			var std net.ListenConfig
			std.KeepAlive = lc.KeepAlive
			return std.Listen(ctx, network, address)
		}
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	l, err := listen(ctx, e, network, address)
	if err != nil {
		return nil, err
	}
	l.keepAlive = lc.KeepAlive
	return l, nil
}

func listen(ctx context.Context, e *engine, network, address string) (*Listener, error) {
	var (
		family int
		sa     unix.Sockaddr
		unlink string
		laddr  net.Addr
	)
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: network, Addr: laddr, Err: err}
	}
	if network == "unix" {
		family = unix.AF_UNIX
		sa = &unix.SockaddrUnix{Name: address}
		laddr = &net.UnixAddr{Name: address, Net: network}
		if address != "" && address[0] != '@' {
			unlink = address
		}
	} else {
		aps, err := resolveTCP(ctx, network, address, true)
		if err != nil {
			return nil, opErr(err)
		}
		ap := aps[0]
		laddr = tcpAddrOf(ap)
		family = familyFor(network, ap)
		sa = tcpSockaddr(family, ap.Addr(), int(ap.Port()), ap.Addr().Zone())
	}
	s, err := newSocket(family)
	if err != nil {
		return nil, opErr(err)
	}
	if family != unix.AF_UNIX {
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			unix.Close(s)
			return nil, opErr(os.NewSyscallError("setsockopt", err))
		}
		if family == unix.AF_INET6 {
			v6only := 0
			if network == "tcp6" {
				v6only = 1
			}
			unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only)
		}
	}
	if err := unix.Bind(s, sa); err != nil {
		unix.Close(s)
		return nil, opErr(os.NewSyscallError("bind", err))
	}
	if err := unix.Listen(s, listenBacklog()); err != nil {
		unix.Close(s)
		if unlink != "" {
			os.Remove(unlink)
		}
		return nil, opErr(os.NewSyscallError("listen", err))
	}
	fd := newNetFD(e, s, family, network)
	if lsa, err := unix.Getsockname(s); err == nil && network != "unix" {
		laddr = sockaddrToAddr(network, lsa)
	}
	fd.laddr = laddr
	l := &Listener{fd: fd, addr: laddr}
	fd.drain = l.drain
	if unlink != "" {
		fd.onDestroy = func() { os.Remove(unlink) }
	}
	return l, nil
}

// listenBacklog is the kernel's somaxconn, as package net uses.
func listenBacklog() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err == nil {
		var n int
		for _, c := range strings.TrimSpace(string(b)) {
			if c < '0' || c > '9' {
				n = 0
				break
			}
			n = n*10 + int(c-'0')
		}
		if n > 0 {
			return min(n, 1<<16-1)
		}
	}
	return unix.SOMAXCONN
}

// Dialer holds options for connecting, like net.Dialer. The zero value
// uses the package's default Ring.
type Dialer struct {
	// Ring is the io_uring instance the connection uses; nil means the
	// package's default Ring. It must stay open until the connection is
	// closed.
	Ring *rio.Ring

	// Timeout and Deadline bound the connection attempt, as in net.Dialer.
	Timeout  time.Duration
	Deadline time.Time

	// LocalAddr is the local address to bind to (a *net.TCPAddr or
	// *net.UnixAddr), or nil to let the kernel choose.
	LocalAddr net.Addr

	// KeepAlive is the keep-alive period of TCP connections, as in
	// net.Dialer: zero means 15 seconds, negative disables them.
	KeepAlive time.Duration

	// NoFallback makes Dial fail where io_uring is unavailable rather than
	// return a connection of package net.
	NoFallback bool
}

// Dial connects to address on network; see the package function Dial.
func (d *Dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// DialContext connects to address on network. ctx bounds the attempt
// (name resolution and connecting); once connected, it no longer matters.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	e, err := engineFor(d.Ring)
	if err != nil {
		if errors.Is(err, rio.ErrNotSupported) && !d.NoFallback && !noFallbackEnv() {
			std := net.Dialer{Timeout: d.Timeout, Deadline: d.Deadline, LocalAddr: d.LocalAddr, KeepAlive: d.KeepAlive}
			return std.DialContext(ctx, network, address)
		}
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Source: d.LocalAddr, Err: mapCtxErr(err)}
	}
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	if !d.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Deadline)
		defer cancel()
	}
	if network == "unix" {
		raddr := &net.UnixAddr{Name: address, Net: network}
		c, err := d.connect(ctx, e, network, unix.AF_UNIX, &unix.SockaddrUnix{Name: address})
		if err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Source: d.LocalAddr, Addr: raddr, Err: err}
		}
		return c, nil
	}
	aps, err := resolveTCP(ctx, network, address, false)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Source: d.LocalAddr, Err: err}
	}
	var first error
	for _, ap := range aps {
		family := familyFor(network, ap)
		sa := tcpSockaddr(family, ap.Addr(), int(ap.Port()), ap.Addr().Zone())
		c, err := d.connect(ctx, e, network, family, sa)
		if err == nil {
			if err := setTCPOptions(c.fd.sysfd, d.KeepAlive); err != nil {
				c.Close()
				return nil, &net.OpError{Op: "dial", Net: network, Source: d.LocalAddr, Addr: tcpAddrOf(ap), Err: err}
			}
			return c, nil
		}
		if first == nil {
			first = &net.OpError{Op: "dial", Net: network, Source: d.LocalAddr, Addr: tcpAddrOf(ap), Err: err}
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// connect creates a socket and connects it to sa through the ring.
func (d *Dialer) connect(ctx context.Context, e *engine, network string, family int, sa unix.Sockaddr) (*Conn, error) {
	s, err := newSocket(family)
	if err != nil {
		return nil, err
	}
	if d.LocalAddr != nil {
		if err := bindLocal(s, family, d.LocalAddr); err != nil {
			unix.Close(s)
			return nil, err
		}
	}
	err = connectWait(ctx, e.ring.Connect(s, sa))
	// An interrupted connect goes on in the kernel; asking again tells
	// how it went (EISCONN: done; EALREADY: still in progress).
	for retries := 0; err != nil && isTransient(err) && retries < 100; retries++ {
		err = connectWait(ctx, e.ring.Connect(s, sa))
		switch errnoOf(err) {
		case syscall.EISCONN:
			err = nil
		case syscall.EALREADY:
			err = waitConnected(ctx, e, s)
		}
	}
	if err != nil {
		unix.Close(s)
		return nil, err
	}
	fd := newNetFD(e, s, family, network)
	return newConn(fd), nil
}

// connectWait waits for a connect, giving up when ctx is done.
func connectWait(ctx context.Context, op *rio.Completion[struct{}]) error {
	_, err := op.WaitContext(ctx)
	if err != nil && ctx.Err() != nil && err == ctx.Err() {
		if _, err2 := op.Wait(); err2 == nil {
			return nil // connected before the cancellation took
		}
		return mapCtxErr(ctx.Err())
	}
	return err
}

// waitConnected waits until the connection attempt in progress on s ends,
// and returns its outcome (SO_ERROR).
func waitConnected(ctx context.Context, e *engine, s int) error {
	for {
		p := e.ring.Poll(s, unix.POLLOUT)
		if _, err := p.WaitContext(ctx); err != nil {
			if ctx.Err() != nil && err == ctx.Err() {
				p.Wait()
				return mapCtxErr(ctx.Err())
			}
			if isTransient(err) || errnoOf(err) == syscall.ECANCELED {
				continue
			}
			return err
		}
		soerr, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return os.NewSyscallError("getsockopt", err)
		}
		if soerr != 0 {
			return os.NewSyscallError("connect", syscall.Errno(soerr))
		}
		return nil
	}
}

// isTransient reports whether err is an EINTR or EAGAIN that the
// operation should simply be tried again for.
func isTransient(err error) bool {
	e := errnoOf(err)
	return e == syscall.EINTR || e == syscall.EAGAIN
}

// mapCtxErr turns a context's error into what package net reports for a
// dial it ended.
func mapCtxErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return os.ErrDeadlineExceeded
	}
	return err
}

func bindLocal(s, family int, a net.Addr) error {
	var sa unix.Sockaddr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			ip = netip.IPv4Unspecified()
			if family == unix.AF_INET6 {
				ip = netip.IPv6Unspecified()
			}
		}
		sa = tcpSockaddr(family, ip, a.Port, a.Zone)
	case *net.UnixAddr:
		sa = &unix.SockaddrUnix{Name: a.Name}
	default:
		return &net.AddrError{Err: "unexpected local address type", Addr: a.String()}
	}
	if err := unix.Bind(s, sa); err != nil {
		return os.NewSyscallError("bind", err)
	}
	return nil
}
