// Package rionet provides a net.Listener and net.Conn whose I/O goes
// through io_uring (package github.com/gorio/rio) instead of Go's epoll
// network poller. A server switches with one line:
//
//	ln, err := rionet.Listen("tcp", ":8080")
//
// # How it works
//
// A Listener accepts as package net does, with accept4 when Go's network
// poller says the socket is readable. Each Conn receives with one
// multishot receive into a ring of buffers shared by all connections of the
// Ring: data that arrives while nobody reads lands in a shared buffer, and
// the next Read copies it out without a system call. A Conn that is not
// read holds at most about 64 KiB of shared buffers (on Linux 6.17 and
// later, which can cap a multishot receive); then its receive stops until
// a Read re-arms it, and the data waits in the socket. If the shared
// buffers run dry, Reads fall back to receiving directly into the caller's
// buffer. A Write is a non-blocking send(2) first, and a send on the ring
// only when the socket is full.
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
// so a Ring bounds the connections that read at once (about 65,000). The
// package's own rings are a pool: past 32,768 listeners and connections on
// one, new ones go to another ring of the package's, made when needed and
// closed when its last connection closes, so that their number is not
// bounded. A caller's Ring is not pooled.
//
// # Fallback
//
// Where io_uring is unavailable (an old kernel, a seccomp profile that
// blocks it, kernel.io_uring_disabled), Listen and Dial return the standard
// library's listener and connection instead. Set ListenConfig.NoFallback or
// Dialer.NoFallback, or the environment variable RIONET_NOFALLBACK=1, to
// get the error (matching rio.ErrNotSupported) instead. The same holds for
// ListenPacket, FileListener, FileConn and FilePacketConn. RingOf tells
// whether a Listener, Conn or PacketConn runs on io_uring, and Available
// why a Ring would not be used (the reason for a fallback).
//
// # Datagrams
//
// ListenPacket and Dial with "udp", "udp4", "udp6" and "unixgram" return a
// *PacketConn, which is a net.PacketConn and, connected, a net.Conn, with
// the methods of *net.UDPConn. Its receives and sends are recvmsg and
// sendmsg, tried without waiting first and submitted to the ring when the
// socket is not ready.
//
// # Environment
//
// Three variables change the package's behaviour; the last two exist for
// comparisons in benchmarks (bench/net, bench/loop), not for production:
//
//   - RIONET_NOFALLBACK=1: report the error instead of falling back to
//     package net (see Fallback).
//   - RIONET_SEND=ring: every Write is a send on the ring, without the
//     direct send first.
//   - RIONET_LOOP_WAIT=block or spinK (K a number): a LoopServer's loop
//     hands its P off before waiting in io_uring_enter (block), or makes K
//     non-waiting enters before each wait (spinK).
//
// Each is read once, when the package (RIONET_SEND) or a loop
// (RIONET_LOOP_WAIT) starts, or when a Listener or Conn is made
// (RIONET_NOFALLBACK).
package rionet

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/gorio/rio"
	"golang.org/x/sys/unix"
)

// noFallbackEnv reports whether RIONET_NOFALLBACK=1 is set.
func noFallbackEnv() bool { return os.Getenv("RIONET_NOFALLBACK") == "1" }

// pickEngine returns the engine of r (nil: the default Ring); nil and no
// error when the caller is to fall back to package net; or the error that
// stops it, when fallback is switched off.
func pickEngine(r *rio.Ring, noFallback bool) (*engine, error) {
	e, err := engineFor(r)
	if err == nil {
		return e, nil
	}
	// No io_uring, or too little of it for a ring at all (a resource
	// limit): package net, unless the caller wants the error.
	if (errors.Is(err, rio.ErrNotSupported) || errors.Is(err, rio.ErrResourceLimit)) && !noFallback && !noFallbackEnv() {
		return nil, nil
	}
	return nil, err
}

// Listen announces on the local network address, like net.Listen, for
// networks "tcp", "tcp4", "tcp6" and "unix". The result is a *Listener, or
// a listener of package net where io_uring is unavailable (see the package
// documentation on fallback).
func Listen(network, address string) (net.Listener, error) {
	var lc ListenConfig
	return lc.Listen(context.Background(), network, address)
}

// Dial connects to the address on the named network, like net.Dial, for
// networks "tcp", "tcp4", "tcp6" and "unix" (a *Conn), and "udp", "udp4",
// "udp6" and "unixgram" (a *PacketConn). Where io_uring is unavailable the
// result is a connection of package net.
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

	// Control, if not nil, is called after the socket is created and
	// package net's default options are set on it, and before it is bound,
	// as in net.ListenConfig: network is "tcp4", "tcp6", "udp4", "udp6",
	// "unix" or "unixgram", address the address to bind to, and c the
	// socket (its Control method gives the descriptor, which Control must
	// not keep). An error from it fails the Listen, wrapped in a
	// *net.OpError.
	Control func(network, address string, c syscall.RawConn) error

	// KeepAlive is the keep-alive period for accepted TCP connections, as
	// in net.ListenConfig: zero means 15 seconds, negative disables them.
	// It is ignored if KeepAliveConfig.Enable is true.
	KeepAlive time.Duration

	// KeepAliveConfig is the keep-alive configuration of accepted TCP
	// connections, as in net.ListenConfig: if Enable is true, it is
	// applied as (*net.TCPConn).SetKeepAliveConfig applies it; if Enable is
	// false and KeepAlive is negative, keep-alives are off.
	KeepAliveConfig net.KeepAliveConfig

	// NoFallback makes Listen and ListenPacket fail where io_uring is
	// unavailable rather than return a listener of package net.
	NoFallback bool
}

// std is lc for package net, for the fallback.
func (lc *ListenConfig) std() *net.ListenConfig {
	return &net.ListenConfig{Control: lc.Control, KeepAlive: lc.KeepAlive, KeepAliveConfig: lc.KeepAliveConfig}
}

// ctrl returns lc.Control in the form the socket helpers take.
func (lc *ListenConfig) ctrl() ctrlFunc {
	if lc.Control == nil {
		return nil
	}
	return func(_ context.Context, network, address string, c syscall.RawConn) error {
		return lc.Control(network, address, c)
	}
}

// Listen announces on the local network address; see the package function
// Listen. ctx bounds name resolution.
func (lc *ListenConfig) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return nil, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	e, err := pickEngine(lc.Ring, lc.NoFallback)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	if e == nil {
		return lc.std().Listen(ctx, network, address)
	}
	l, err := listen(ctx, lc, e, network, address)
	if err != nil {
		return nil, err
	}
	return l, nil
}

func listen(ctx context.Context, lc *ListenConfig, e *engine, network, address string) (*Listener, error) {
	b, err := bindAddr(ctx, network, address)
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: network, Addr: b.laddr, Err: err}
	}
	if err != nil {
		return nil, opErr(err)
	}
	s, err := openSocket(ctx, b.family, unix.SOCK_STREAM, network, true, lc.ctrl(), b.laddr.String(), b.sa)
	if err != nil {
		return nil, opErr(err)
	}
	if err := unix.Listen(s, listenBacklog()); err != nil {
		unix.Close(s)
		b.unlink()
		return nil, opErr(os.NewSyscallError("listen", err))
	}
	return newListener(e, s, b.family, network, b.laddr, b.unlinkPath, lc)
}

// newListener makes a Listener of the listening socket s, which it owns
// from then on. unlink, if not empty, is the socket file Close removes.
func newListener(e *engine, s, family int, network string, laddr net.Addr, unlink string, lc *ListenConfig) (*Listener, error) {
	fd := newNetFD(e, s, family, network)
	if lsa, err := unix.Getsockname(s); err == nil && (!isUnix(network) || laddr == nil) {
		laddr = sockaddrToAddr(network, lsa)
	}
	fd.laddr = laddr
	l, err := pollListener(fd, laddr, unlink)
	if err != nil {
		unix.Close(s)
		if unlink != "" {
			os.Remove(unlink)
		}
		return nil, &net.OpError{Op: "listen", Net: network, Addr: laddr, Err: err}
	}
	if lc != nil {
		l.keepAlive, l.keepAliveCfg = lc.KeepAlive, lc.KeepAliveConfig
	}
	runtime.AddCleanup(l, dropped, fd)
	return l, nil
}

// bound is where a socket is to be bound: its family, sockaddr, the
// address as package net reports it (and passes to Control), and the
// socket file a listener it creates removes when it closes.
type bound struct {
	family     int
	sa         unix.Sockaddr
	laddr      net.Addr
	unlinkPath string
}

func (b *bound) unlink() {
	if b.unlinkPath != "" {
		os.Remove(b.unlinkPath)
	}
}

// bindAddr resolves an address to listen on.
func bindAddr(ctx context.Context, network, address string) (bound, error) {
	if isUnix(network) {
		b := bound{family: unix.AF_UNIX, sa: &unix.SockaddrUnix{Name: address}, laddr: &net.UnixAddr{Name: address, Net: network}}
		if network == "unix" && address != "" && address[0] != '@' {
			b.unlinkPath = address
		}
		return b, nil
	}
	aps, err := resolveInet(ctx, network, address, true)
	if err != nil {
		return bound{}, err
	}
	ap := aps[0]
	family := familyFor(network, ap)
	b := bound{family: family, sa: inetSockaddr(family, ap.Addr(), int(ap.Port()), ap.Addr().Zone()), laddr: inetAddrOf(network, ap)}
	if host, _, _ := net.SplitHostPort(address); host == "" {
		// As package net reports a wildcard address before it is bound
		// (":port"), to Control and in errors.
		b.laddr = inetAddrOf(network, netip.AddrPortFrom(netip.Addr{}, ap.Port()))
	}
	return b, nil
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

	// LocalAddr is the local address to bind to (a *net.TCPAddr,
	// *net.UDPAddr or *net.UnixAddr), or nil to let the kernel choose.
	LocalAddr net.Addr

	// KeepAlive is the keep-alive period of TCP connections, as in
	// net.Dialer: zero means 15 seconds, negative disables them. It is
	// ignored if KeepAliveConfig.Enable is true.
	KeepAlive time.Duration

	// KeepAliveConfig is the keep-alive configuration of TCP connections,
	// as in net.Dialer (see ListenConfig.KeepAliveConfig).
	KeepAliveConfig net.KeepAliveConfig

	// Control, if not nil, is called after the socket is created and
	// before it is bound (LocalAddr) and connected, as in net.Dialer:
	// network is "tcp4", "tcp6", "udp4", "udp6", "unix" or "unixgram",
	// address the address to connect to. An error from it fails the Dial,
	// wrapped in a *net.OpError.
	Control func(network, address string, c syscall.RawConn) error

	// ControlContext is Control with the Dial's context; if it is not
	// nil, Control is ignored.
	ControlContext func(ctx context.Context, network, address string, c syscall.RawConn) error

	// NoFallback makes Dial fail where io_uring is unavailable rather than
	// return a connection of package net.
	NoFallback bool
}

// std is d for package net, for the fallback.
func (d *Dialer) std() *net.Dialer {
	return &net.Dialer{Timeout: d.Timeout, Deadline: d.Deadline, LocalAddr: d.LocalAddr,
		KeepAlive: d.KeepAlive, KeepAliveConfig: d.KeepAliveConfig, Control: d.Control, ControlContext: d.ControlContext}
}

// ctrl returns d's control function in the form the socket helpers take.
func (d *Dialer) ctrl() ctrlFunc {
	if d.ControlContext != nil {
		return d.ControlContext
	}
	if d.Control == nil {
		return nil
	}
	return func(_ context.Context, network, address string, c syscall.RawConn) error {
		return d.Control(network, address, c)
	}
}

// Dial connects to address on network; see the package function Dial.
func (d *Dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// DialContext connects to address on network. ctx bounds the attempt
// (name resolution and connecting); once connected, it no longer matters.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "unix", "udp", "udp4", "udp6", "unixgram":
	default:
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	e, err := pickEngine(d.Ring, d.NoFallback)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	if e == nil {
		return d.std().DialContext(ctx, network, address)
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
	if isUnix(network) {
		raddr := &net.UnixAddr{Name: address, Net: network}
		c, err := d.dialOne(ctx, e, network, unix.AF_UNIX, &unix.SockaddrUnix{Name: address}, address)
		if err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Source: d.LocalAddr, Addr: raddr, Err: err}
		}
		return c, nil
	}
	aps, err := resolveInet(ctx, network, address, false)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Source: d.LocalAddr, Err: err}
	}
	var first error
	for _, ap := range aps {
		family := familyFor(network, ap)
		sa := inetSockaddr(family, ap.Addr(), int(ap.Port()), ap.Addr().Zone())
		raddr := inetAddrOf(network, ap)
		c, err := d.dialOne(ctx, e, network, family, sa, raddr.String())
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = &net.OpError{Op: "dial", Net: network, Source: d.LocalAddr, Addr: raddr, Err: err}
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// dialOne connects to one address. ctrlAddr is what Control is told.
func (d *Dialer) dialOne(ctx context.Context, e *engine, network string, family int, sa unix.Sockaddr, ctrlAddr string) (net.Conn, error) {
	if !isTCP(network) && network != "unix" {
		return d.dialPacket(ctx, e, network, family, sa, ctrlAddr)
	}
	c, err := d.connect(ctx, e, network, family, sa, ctrlAddr)
	if err != nil {
		return nil, err
	}
	if isTCP(network) {
		if err := setTCPOptions(c.fd.sysfd, d.KeepAlive, d.KeepAliveConfig); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// connect creates a stream socket and connects it to sa through the ring.
func (d *Dialer) connect(ctx context.Context, e *engine, network string, family int, sa unix.Sockaddr, ctrlAddr string) (*Conn, error) {
	s, err := d.socket(ctx, network, family, unix.SOCK_STREAM, ctrlAddr)
	if err != nil {
		return nil, err
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
	fd.recordAddrs(nil, sa)
	return newConn(fd), nil
}

// socket creates a socket to connect from: package net's default options,
// Control, and the bind to LocalAddr, in package net's order.
func (d *Dialer) socket(ctx context.Context, network string, family, sotype int, ctrlAddr string) (int, error) {
	var lsa unix.Sockaddr
	if d.LocalAddr != nil {
		var err error
		if lsa, err = localSockaddr(family, d.LocalAddr); err != nil {
			return -1, err
		}
	}
	return openSocket(ctx, family, sotype, network, false, d.ctrl(), ctrlAddr, lsa)
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

// localSockaddr converts a Dialer's LocalAddr for a socket of family.
func localSockaddr(family int, a net.Addr) (unix.Sockaddr, error) {
	var (
		ip   net.IP
		port int
		zone string
	)
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, port, zone = a.IP, a.Port, a.Zone
	case *net.UDPAddr:
		ip, port, zone = a.IP, a.Port, a.Zone
	case *net.UnixAddr:
		return &unix.SockaddrUnix{Name: a.Name}, nil
	default:
		return nil, &net.AddrError{Err: "unexpected local address type", Addr: a.String()}
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		addr = netip.IPv4Unspecified()
		if family == unix.AF_INET6 {
			addr = netip.IPv6Unspecified()
		}
	}
	return inetSockaddr(family, addr, port, zone), nil
}
