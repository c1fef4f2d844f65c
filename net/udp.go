package rionet

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/shortcall"
	"golang.org/x/sys/unix"
)

// PacketConn is a datagram socket, UDP or Unix ("unixgram"), whose
// receives and sends go through an io_uring Ring when they have to wait.
// It has the methods of *net.UDPConn (and the Unix ones of *net.UnixConn):
// it is a net.PacketConn, and a net.Conn once connected (Dial). It is safe
// for concurrent use: receives are serialized with each other, as are
// sends.
//
// A receive first tries recvmsg(2) without waiting; only when no datagram
// is queued does it submit a recvmsg to the ring and wait for it. A
// datagram larger than the buffer is truncated, the rest of it discarded,
// as package net does (ReadMsgUDP reports unix.MSG_TRUNC). Sends likewise
// try sendmsg(2) first and wait on the ring when the socket is full.
//
// The PacketConn owns its socket and closes it in Close, once the ring has
// finished every operation that used it. The buffers passed to its methods
// are not retained after they return.
type PacketConn struct {
	fd        *netFD
	connected bool // made by Dial: WriteTo is refused, as on *net.UDPConn

	rm msgBuf // the direct receive's msghdr, guarded by fd.rmu
	wm msgBuf // the direct send's, guarded by fd.wmu
}

var (
	_ net.Conn       = (*PacketConn)(nil)
	_ net.PacketConn = (*PacketConn)(nil)
	_ syscall.Conn   = (*PacketConn)(nil)
)

// msgBuf is a msghdr with room for its one iovec and an address, kept in
// the PacketConn so that a direct recvmsg or sendmsg allocates nothing.
type msgBuf struct {
	hdr  unix.Msghdr
	iov  unix.Iovec
	name unix.RawSockaddrAny
}

// setBufs points m at p and oob, and at its own name buffer of n bytes
// (0: no address); forget drops the pointers to p and oob afterwards, so
// that the PacketConn does not keep the caller's buffers alive.
func (m *msgBuf) setBufs(p, oob []byte, n uint32) {
	m.iov = unix.Iovec{}
	if len(p) > 0 {
		m.iov.Base = unsafe.SliceData(p)
		m.iov.SetLen(len(p))
	}
	m.hdr = unix.Msghdr{Iov: &m.iov}
	m.hdr.SetIovlen(1)
	if len(oob) > 0 {
		m.hdr.Control = unsafe.SliceData(oob)
		m.hdr.SetControllen(len(oob))
	}
	if n > 0 {
		m.hdr.Name = (*byte)(unsafe.Pointer(&m.name))
		m.hdr.Namelen = n
	}
}

// udpRingOnly makes every receive and send of a PacketConn an operation on
// the ring, without the direct attempt first, for comparison in
// BenchmarkUDPEcho; only tests set it (SetUDPRingOnlyForTest).
var udpRingOnly bool

func (m *msgBuf) forget() {
	m.iov.Base = nil
	m.hdr.Control = nil
}

// Errors package net returns for misused datagram sockets.
var (
	errMissingAddress = errors.New("missing address")
	errWrongAddress   = syscall.EINVAL
)

// ListenPacket announces on the local network address, like
// net.ListenPacket, for networks "udp", "udp4", "udp6" and "unixgram". The
// result is a *PacketConn, or package net's where io_uring is unavailable
// (see the package documentation on fallback).
func ListenPacket(network, address string) (net.PacketConn, error) {
	var lc ListenConfig
	return lc.ListenPacket(context.Background(), network, address)
}

// ListenPacket announces on the local network address; see the package
// function ListenPacket. Control, if set, is called before the socket is
// bound. ctx bounds name resolution.
func (lc *ListenConfig) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	switch network {
	case "udp", "udp4", "udp6", "unixgram":
	default:
		return nil, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	e, err := pickEngine(lc.Ring, lc.NoFallback)
	if err == nil && e != nil {
		err = e.packetSupported()
		if err != nil && !lc.NoFallback && !noFallbackEnv() {
			e = nil
			err = nil
		}
	}
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	if e == nil {
		return lc.std().ListenPacket(ctx, network, address)
	}
	b, err := bindAddr(ctx, network, address)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: b.laddr, Err: err}
	}
	s, err := openSocket(ctx, b.family, unix.SOCK_DGRAM, network, true, lc.ctrl(), b.laddr.String(), b.sa)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: b.laddr, Err: err}
	}
	return newPacketConn(e, s, b.family, network, false, nil), nil
}

// packetSupported reports whether the ring has what a PacketConn needs.
func (e *engine) packetSupported() error {
	for _, op := range []string{"RECVMSG", "SENDMSG"} {
		if err := e.ring.Supported(op); err != nil {
			return err
		}
	}
	return nil
}

// newPacketConn makes a PacketConn of the datagram socket s, which it owns
// from then on; raddr is the peer's address if s is connected.
func newPacketConn(e *engine, s, family int, network string, connected bool, raddr unix.Sockaddr) *PacketConn {
	fd := newNetFD(e, s, family, network)
	fd.unconnected = !connected
	fd.datagram = true
	if family == unix.AF_UNIX {
		if sa, err := unix.Getsockname(s); err == nil {
			fd.laddr = sockaddrToAddr(network, sa)
		}
		if raddr != nil {
			fd.raddr = sockaddrToAddr(network, raddr)
		}
	} else {
		rawName(unix.SYS_GETSOCKNAME, s, &fd.la)
		if raddr != nil {
			fd.ra.setSockaddr(raddr)
		}
	}
	c := &PacketConn{fd: fd, connected: connected}
	runtime.AddCleanup(c, dropped, fd)
	return c
}

// dialPacket creates a datagram socket and connects it to sa (which does
// not wait: it only sets the peer).
func (d *Dialer) dialPacket(ctx context.Context, e *engine, network string, family int, sa unix.Sockaddr, ctrlAddr string) (*PacketConn, error) {
	if err := e.packetSupported(); err != nil {
		return nil, err
	}
	s, err := d.socket(ctx, network, family, unix.SOCK_DGRAM, ctrlAddr)
	if err != nil {
		return nil, err
	}
	if err := unix.Connect(s, sa); err != nil {
		unix.Close(s)
		return nil, os.NewSyscallError("connect", err)
	}
	return newPacketConn(e, s, family, network, true, sa), nil
}

// from is the sender of a received datagram: an IP address, or a Unix
// socket's name (empty if the sender is unnamed).
type from struct {
	ip    sockAddr
	uname string
	unix  bool
}

func (f *from) setRaw(rsa *unix.RawSockaddrAny, n uint32) {
	if n == 0 {
		return
	}
	if rsa.Addr.Family == unix.AF_UNIX {
		f.unix = true
		p := (*unix.RawSockaddrUnix)(unsafe.Pointer(rsa))
		path := unsafe.Slice((*byte)(unsafe.Pointer(&p.Path[0])), len(p.Path))
		k := min(int(n)-2, len(path))
		if k > 0 && path[0] == 0 {
			path[0] = '@' // abstract
		}
		for i := 0; i < k; i++ {
			if path[i] == 0 {
				k = i
				break
			}
		}
		if k > 0 {
			f.uname = string(path[:k])
		}
		return
	}
	f.ip.setRaw(rsa, n)
}

func (f *from) setSockaddr(sa unix.Sockaddr) {
	switch sa := sa.(type) {
	case *unix.SockaddrUnix:
		f.unix, f.uname = true, sa.Name
	case nil:
	default:
		f.ip.setSockaddr(sa)
	}
}

// addr returns the sender as package net's ReadFrom does: a *net.UDPAddr,
// a *net.UnixAddr, or nil (an unnamed Unix sender).
func (f *from) addr(network string) net.Addr {
	if f.unix {
		if f.uname == "" {
			return nil
		}
		return &net.UnixAddr{Name: f.uname, Net: network}
	}
	return f.ip.addr(network)
}

// recv receives one datagram into p and oob, with rmu held: without
// waiting first, then on the ring. call names the system call package net
// would have made, for errors.
func (c *PacketConn) recv(p, oob []byte, f *from, call string) (n, oobn, flags int, err error) {
	fd := c.fd
	if n, oobn, flags, err, ok := c.recvMultishot(p, oob, f); ok {
		if err != nil {
			err = renameErr(err, call)
		}
		return n, oobn, flags, err
	}
	for {
		if err := fd.waitErr(true); err != nil {
			return 0, 0, 0, err
		}
		m := &c.rm
		m.setBufs(p, oob, uint32(unsafe.Sizeof(m.name)))
		r, e := uintptr(0), syscall.EAGAIN
		if !udpRingOnly {
			r, e = shortcall.Syscall6(len(p), unix.SYS_RECVMSG, uintptr(fd.sysfd), uintptr(unsafe.Pointer(&m.hdr)), unix.MSG_DONTWAIT, 0, 0, 0)
		}
		m.forget()
		switch e {
		case 0:
			if f != nil {
				f.setRaw(&m.name, m.hdr.Namelen)
			}
			return int(r), int(m.hdr.Controllen), int(m.hdr.Flags), nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
		default:
			return 0, 0, 0, os.NewSyscallError(call, e)
		}
		// Nothing queued: wait on the ring.
		wc := fd.deadlines().rd.ctx()
		if err := fd.waitErr(true); err != nil {
			return 0, 0, 0, err
		}
		op := fd.e.ring.Recvmsg(fd.sysfd, p, oob, 0)
		msg, err := op.WaitContext(wc)
		if err == errWake {
			msg, err = op.Wait() // it may have received before the cancellation
		}
		if err == nil {
			if f != nil {
				f.setSockaddr(msg.From)
			}
			return msg.N, msg.OOBN, msg.Flags, nil
		}
		if errnoOf(err) != syscall.ECANCELED && !isTransient(err) {
			return 0, 0, 0, renameErr(err, call)
		}
	}
}

// renameErr renames the *os.SyscallError of a ring operation after the
// system call package net would have made.
func renameErr(err error, call string) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return &os.SyscallError{Syscall: call, Err: se.Err}
	}
	return err
}

// dest is where a send goes: an address encoded in msgBuf form.
type dest struct {
	raw unix.RawSockaddrAny
	n   uint32 // 0: no address (connected)
}

// setIP encodes a for a socket of family, as package net converts it
// (IPv4 mapped on an IPv6 socket; an IPv6 address refused on an IPv4 one).
func (d *dest) setIP(family int, ip netip.Addr, port uint16) error {
	if family == unix.AF_INET {
		if !ip.Is4() && !ip.Is4In6() {
			return &net.AddrError{Err: "non-IPv4 address", Addr: ip.String()}
		}
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(&d.raw))
		*p = unix.RawSockaddrInet4{Family: unix.AF_INET, Port: ntohs(port), Addr: ip.As4()}
		d.n = unix.SizeofSockaddrInet4
		return nil
	}
	p := (*unix.RawSockaddrInet6)(unsafe.Pointer(&d.raw))
	*p = unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: ntohs(port), Addr: ip.As16()}
	if z := ip.Zone(); z != "" {
		if sa, ok := inetSockaddr(unix.AF_INET6, ip, int(port), z).(*unix.SockaddrInet6); ok {
			p.Scope_id = sa.ZoneId
		}
	}
	d.n = unix.SizeofSockaddrInet6
	return nil
}

// setUDPAddr encodes a *net.UDPAddr as package net does (a nil or empty
// IP is the wildcard).
func (d *dest) setUDPAddr(family int, a *net.UDPAddr) error {
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		if len(a.IP) != 0 {
			return &net.AddrError{Err: "non-IPv4 address", Addr: a.IP.String()}
		}
		ip = netip.IPv4Unspecified()
		if family == unix.AF_INET6 {
			ip = netip.IPv6Unspecified()
		}
	}
	if family == unix.AF_INET6 && ip == netip.IPv4Unspecified() {
		ip = netip.IPv6Unspecified()
	}
	return d.setIP(family, ip.WithZone(a.Zone), uint16(a.Port))
}

func (d *dest) setUnix(name string) error {
	p := (*unix.RawSockaddrUnix)(unsafe.Pointer(&d.raw))
	*p = unix.RawSockaddrUnix{Family: unix.AF_UNIX}
	if len(name) >= len(p.Path) {
		return syscall.EINVAL
	}
	for i := 0; i < len(name); i++ {
		p.Path[i] = int8(name[i])
	}
	d.n = uint32(2 + len(name))
	if len(name) > 0 && name[0] == '@' {
		p.Path[0] = 0
	} else if len(name) > 0 {
		d.n++
	}
	return nil
}

// sockaddr returns d as a unix.Sockaddr, for the ring's Sendmsg.
func (d *dest) sockaddr() unix.Sockaddr {
	if d.n == 0 {
		return nil
	}
	var f from
	f.setRaw(&d.raw, d.n)
	switch {
	case f.unix:
		return &unix.SockaddrUnix{Name: f.uname}
	case f.ip.family == unix.AF_INET:
		return &unix.SockaddrInet4{Port: int(f.ip.port), Addr: [4]byte(f.ip.ip[:4])}
	default:
		return &unix.SockaddrInet6{Port: int(f.ip.port), Addr: f.ip.ip, ZoneId: f.ip.zone}
	}
}

// send sends one datagram of p and oob to d, with wmu held: without waiting
// first, then on the ring when the socket is full.
func (c *PacketConn) send(p, oob []byte, d *dest, call string) (int, error) {
	fd := c.fd
	for {
		if err := fd.waitErr(false); err != nil {
			return 0, err
		}
		m := &c.wm
		m.setBufs(p, oob, d.n)
		if d.n > 0 {
			m.name = d.raw
		}
		r, e := uintptr(0), syscall.EAGAIN
		if !udpRingOnly {
			r, e = shortcall.Syscall6(len(p), unix.SYS_SENDMSG, uintptr(fd.sysfd), uintptr(unsafe.Pointer(&m.hdr)), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0, 0)
		}
		m.forget()
		switch e {
		case 0:
			return int(r), nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
		default:
			return 0, os.NewSyscallError(call, e)
		}
		wc := fd.deadlines().wd.ctx()
		if err := fd.waitErr(false); err != nil {
			return 0, err
		}
		op := fd.e.ring.Sendmsg(fd.sysfd, p, oob, d.sockaddr(), unix.MSG_NOSIGNAL)
		n, err := op.WaitContext(wc)
		if err == errWake {
			n, err = op.Wait()
		}
		if err == nil {
			return n, nil
		}
		if errnoOf(err) != syscall.ECANCELED && !isTransient(err) {
			return 0, renameErr(err, call)
		}
	}
}

// readMsg is the common part of every receive method: references, the
// read lock, and the error package net would return.
func (c *PacketConn) readMsg(p, oob []byte, f *from, call string) (n, oobn, flags int, err error) {
	fd := c.fd
	if !fd.incref() {
		return 0, 0, 0, fd.opError("read", net.ErrClosed)
	}
	fd.rmu.Lock()
	n, oobn, flags, err = c.recv(p, oob, f, call)
	fd.rmu.Unlock()
	fd.decref()
	if err != nil {
		return n, oobn, flags, fd.opError("read", err)
	}
	return n, oobn, flags, nil
}

// writeMsg is the common part of every send method. to is the address the
// error reports.
func (c *PacketConn) writeMsg(p, oob []byte, d *dest, call string, to net.Addr) (int, error) {
	fd := c.fd
	if !fd.incref() {
		return 0, c.writeErr(net.ErrClosed, to)
	}
	fd.wmu.Lock()
	n, err := c.send(p, oob, d, call)
	fd.wmu.Unlock()
	fd.decref()
	if err != nil {
		return n, c.writeErr(err, to)
	}
	return n, nil
}

// writeErr is a send's error as package net shapes it: the target address
// as Addr (the peer's for a connected Write).
func (c *PacketConn) writeErr(err error, to net.Addr) error {
	l, r := c.fd.addrs()
	if to == nil {
		to = r
	}
	return &net.OpError{Op: "write", Net: c.fd.net, Source: l, Addr: to, Err: err}
}

// Read reads one datagram into p, like (*net.UDPConn).Read; on a connected
// PacketConn it comes from the peer. A datagram larger than p is
// truncated. A zero-length Read returns 0, nil at once, as package net's
// does. Read blocks until a datagram arrives, the read deadline passes or
// c is closed.
func (c *PacketConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		if c.fd.isClosing() {
			return 0, c.fd.opError("read", net.ErrClosed)
		}
		return 0, nil
	}
	n, _, _, err := c.readMsg(p, nil, nil, "read")
	return n, err
}

// ReadFrom reads one datagram into p and returns its size (at most len(p):
// a larger datagram is truncated) and sender, a *net.UDPAddr or
// *net.UnixAddr (nil for an unnamed Unix socket).
func (c *PacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	var f from
	n, _, _, err := c.readMsg(p, nil, &f, "recvfrom")
	if err != nil {
		return n, nil, err
	}
	return n, f.addr(c.fd.net), nil
}

// ReadFromUDP is ReadFrom returning a *net.UDPAddr.
func (c *PacketConn) ReadFromUDP(p []byte) (int, *net.UDPAddr, error) {
	var f from
	n, _, _, err := c.readMsg(p, nil, &f, "recvfrom")
	if err != nil {
		return n, nil, err
	}
	a, _ := f.ip.addr(c.fd.net).(*net.UDPAddr)
	return n, a, nil
}

// ReadFromUDPAddrPort is ReadFrom returning a netip.AddrPort, without
// allocating. On an IPv6 socket, IPv4 senders come as IPv4-mapped
// addresses, as from package net.
func (c *PacketConn) ReadFromUDPAddrPort(p []byte) (int, netip.AddrPort, error) {
	var f from
	n, _, _, err := c.readMsg(p, nil, &f, "recvfrom")
	return n, f.ip.addrPort(), err
}

// ReadMsgUDP reads one datagram into p and its ancillary data into oob,
// like (*net.UDPConn).ReadMsgUDP: flags are the recvmsg flags
// (unix.MSG_TRUNC for a datagram larger than p, MSG_CTRUNC for ancillary
// data larger than oob).
func (c *PacketConn) ReadMsgUDP(p, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	var f from
	n, oobn, flags, err = c.readMsg(p, oob, &f, "recvmsg")
	if err == nil {
		addr, _ = f.ip.addr(c.fd.net).(*net.UDPAddr)
	}
	return n, oobn, flags, addr, err
}

// ReadMsgUDPAddrPort is ReadMsgUDP returning a netip.AddrPort.
func (c *PacketConn) ReadMsgUDPAddrPort(p, oob []byte) (n, oobn, flags int, addr netip.AddrPort, err error) {
	var f from
	n, oobn, flags, err = c.readMsg(p, oob, &f, "recvmsg")
	return n, oobn, flags, f.ip.addrPort(), err
}

// ReadFromUnix is ReadFrom for a Unix datagram socket.
func (c *PacketConn) ReadFromUnix(p []byte) (int, *net.UnixAddr, error) {
	n, a, err := c.ReadFrom(p)
	ua, _ := a.(*net.UnixAddr)
	return n, ua, err
}

// ReadMsgUnix is ReadMsgUDP for a Unix datagram socket: oob receives
// ancillary data such as SCM_RIGHTS.
func (c *PacketConn) ReadMsgUnix(p, oob []byte) (n, oobn, flags int, addr *net.UnixAddr, err error) {
	var f from
	n, oobn, flags, err = c.readMsg(p, oob, &f, "recvmsg")
	if err == nil {
		addr, _ = f.addr(c.fd.net).(*net.UnixAddr)
	}
	return n, oobn, flags, addr, err
}

// Write sends p as one datagram to the peer of a connected PacketConn
// (Dial); on an unconnected one it fails with EDESTADDRREQ, as package
// net's does.
func (c *PacketConn) Write(p []byte) (int, error) {
	var d dest
	return c.writeMsg(p, nil, &d, "write", nil)
}

// WriteTo sends p as one datagram to addr, a *net.UDPAddr or a
// *net.UnixAddr. It fails with net.ErrWriteToConnected on a connected
// PacketConn.
func (c *PacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	var d dest
	if err := c.destOf(&d, addr); err != nil {
		return 0, c.writeErr(err, addr)
	}
	return c.writeMsg(p, nil, &d, "sendto", addr)
}

// destOf encodes addr for WriteTo and WriteMsg*: nil only where connected.
func (c *PacketConn) destOf(d *dest, addr net.Addr) error {
	if c.connected {
		if addr != nil {
			return net.ErrWriteToConnected
		}
		return nil
	}
	switch a := addr.(type) {
	case *net.UDPAddr:
		if a == nil {
			return errMissingAddress
		}
		if isUDP(c.fd.net) {
			return d.setUDPAddr(c.fd.family, a)
		}
	case *net.UnixAddr:
		if a == nil {
			return errMissingAddress
		}
		if isUnix(c.fd.net) {
			return d.setUnix(a.Name)
		}
	}
	return errWrongAddress // a nil net.Addr included, as in package net
}

// WriteToUDP is WriteTo with a *net.UDPAddr.
func (c *PacketConn) WriteToUDP(p []byte, addr *net.UDPAddr) (int, error) {
	if addr == nil {
		return 0, c.writeErr(c.missing(), nil)
	}
	return c.WriteTo(p, addr)
}

// missing is the error of a send without an address.
func (c *PacketConn) missing() error {
	if c.connected {
		return net.ErrWriteToConnected
	}
	return errMissingAddress
}

// WriteToUDPAddrPort is WriteTo with a netip.AddrPort, without allocating.
func (c *PacketConn) WriteToUDPAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	var d dest
	if err := c.destOfAddrPort(&d, addr); err != nil {
		return 0, c.writeErr(err, udpAddrPortAddr(addr))
	}
	return c.writeMsg(p, nil, &d, "sendto", udpAddrPortAddr(addr))
}

func (c *PacketConn) destOfAddrPort(d *dest, addr netip.AddrPort) error {
	switch {
	case c.connected && addr.IsValid():
		return net.ErrWriteToConnected
	case c.connected:
		return nil
	case !addr.IsValid():
		return errMissingAddress
	case !isUDP(c.fd.net):
		return errWrongAddress
	}
	return d.setIP(c.fd.family, addr.Addr(), addr.Port())
}

// udpAddrPortAddr is the address a send to addr reports in errors, as
// package net reports it (also when addr is invalid).
func udpAddrPortAddr(addr netip.AddrPort) net.Addr { return addrPortUDPAddr{addr} }

// addrPortUDPAddr is a netip.AddrPort as a net.Addr.
type addrPortUDPAddr struct{ netip.AddrPort }

func (addrPortUDPAddr) Network() string { return "udp" }

// WriteMsgUDP sends p and the ancillary data oob as one datagram to addr,
// like (*net.UDPConn).WriteMsgUDP: addr must be nil on a connected
// PacketConn and set on an unconnected one.
func (c *PacketConn) WriteMsgUDP(p, oob []byte, addr *net.UDPAddr) (n, oobn int, err error) {
	if addr == nil {
		return c.writeMsgTo(p, oob, nil)
	}
	return c.writeMsgTo(p, oob, addr)
}

// writeMsgTo is WriteMsgUDP and WriteMsgUnix; to is nil for no address.
func (c *PacketConn) writeMsgTo(p, oob []byte, to net.Addr) (n, oobn int, err error) {
	var d dest
	switch {
	case to == nil && !c.connected:
		return 0, 0, c.writeErr(errMissingAddress, nil)
	case to != nil:
		if err := c.destOf(&d, to); err != nil {
			return 0, 0, c.writeErr(err, to)
		}
	}
	n, err = c.writeMsg(p, oob, &d, "sendmsg", to)
	return msgSent(n, err, oob)
}

// msgSent is the result of a WriteMsg method: all of oob goes with the
// datagram, or nothing does.
func msgSent(n int, err error, oob []byte) (int, int, error) {
	if err != nil {
		return n, 0, err
	}
	return n, len(oob), nil
}

// WriteMsgUDPAddrPort is WriteMsgUDP with a netip.AddrPort (the zero value
// for none).
func (c *PacketConn) WriteMsgUDPAddrPort(p, oob []byte, addr netip.AddrPort) (n, oobn int, err error) {
	var d dest
	if err := c.destOfAddrPort(&d, addr); err != nil {
		return 0, 0, c.writeErr(err, udpAddrPortAddr(addr))
	}
	n, err = c.writeMsg(p, oob, &d, "sendmsg", udpAddrPortAddr(addr))
	return msgSent(n, err, oob)
}

// WriteToUnix is WriteTo with a *net.UnixAddr.
func (c *PacketConn) WriteToUnix(p []byte, addr *net.UnixAddr) (int, error) {
	if addr == nil {
		return 0, c.writeErr(c.missing(), nil)
	}
	return c.WriteTo(p, addr)
}

// WriteMsgUnix is WriteMsgUDP for a Unix datagram socket: oob carries
// ancillary data such as SCM_RIGHTS.
func (c *PacketConn) WriteMsgUnix(p, oob []byte, addr *net.UnixAddr) (n, oobn int, err error) {
	if addr == nil {
		return c.writeMsgTo(p, oob, nil)
	}
	return c.writeMsgTo(p, oob, addr)
}

// Close closes the socket. Blocked receives and sends return an error
// wrapping net.ErrClosed; Close returns once they have and the descriptor
// is closed. Closing twice returns net.ErrClosed.
func (c *PacketConn) Close() error {
	if !c.fd.close() {
		return c.fd.opError("close", net.ErrClosed)
	}
	return nil
}

// LocalAddr returns the local address: a *net.UDPAddr or *net.UnixAddr.
func (c *PacketConn) LocalAddr() net.Addr {
	l, _ := c.fd.addrs()
	if l == nil {
		return zeroAddr(c.fd.net)
	}
	return l
}

// RemoteAddr returns the peer's address for a connected PacketConn, and
// nil for an unconnected one (as package net does).
func (c *PacketConn) RemoteAddr() net.Addr {
	_, r := c.fd.addrs()
	return r
}

// SetDeadline sets the read and write deadlines.
func (c *PacketConn) SetDeadline(t time.Time) error {
	return c.setDeadline(t, true, true)
}

// SetReadDeadline sets the time after which a receive fails with an error
// wrapping os.ErrDeadlineExceeded, including one already blocked; the zero
// time clears it.
func (c *PacketConn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(t, true, false)
}

// SetWriteDeadline sets the time after which a send fails with an error
// wrapping os.ErrDeadlineExceeded; the zero time clears it.
func (c *PacketConn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(t, false, true)
}

func (c *PacketConn) setDeadline(t time.Time, read, write bool) error {
	if c.fd.isClosing() {
		return c.fd.setError(net.ErrClosed)
	}
	c.fd.setDeadline(t, read, write)
	return nil
}

// SetReadBuffer sets the size of the socket's receive buffer (SO_RCVBUF).
func (c *PacketConn) SetReadBuffer(bytes int) error {
	return c.fd.setIntOpt(unix.SOL_SOCKET, unix.SO_RCVBUF, bytes)
}

// SetWriteBuffer sets the size of the socket's send buffer (SO_SNDBUF).
func (c *PacketConn) SetWriteBuffer(bytes int) error {
	return c.fd.setIntOpt(unix.SOL_SOCKET, unix.SO_SNDBUF, bytes)
}

// SyscallConn returns a raw connection to the socket; see Conn.SyscallConn.
func (c *PacketConn) SyscallConn() (syscall.RawConn, error) {
	if c.fd.isClosing() {
		return nil, syscall.EINVAL
	}
	return &rawConn{fd: c.fd, owner: c}, nil
}

// File returns a copy of the socket's descriptor as an *os.File, which the
// caller owns and must close; closing c does not affect it.
func (c *PacketConn) File() (*os.File, error) { return c.fd.file() }

// ring is for RingOf.
func (c *PacketConn) ring() *rio.Ring { return c.fd.e.ring }
