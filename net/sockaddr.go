package rionet

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func sockaddrToAddr(network string, sa unix.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(append([]byte(nil), sa.Addr[:]...)), Port: sa.Port}
	case *unix.SockaddrInet6:
		a := &net.TCPAddr{IP: net.IP(append([]byte(nil), sa.Addr[:]...)), Port: sa.Port}
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				a.Zone = ifi.Name
			} else {
				a.Zone = strconv.Itoa(int(sa.ZoneId))
			}
		}
		return a
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: network}
	}
	return nil
}

func zeroAddr(network string) net.Addr {
	if network == "unix" {
		return &net.UnixAddr{Net: network}
	}
	return &net.TCPAddr{}
}

func isTCP(network string) bool {
	return network == "tcp" || network == "tcp4" || network == "tcp6"
}

// tcpSockaddr converts an address to the socket family and sockaddr that
// a socket of network needs. An IPv4 address on an AF_INET6 socket is
// mapped (::ffff:a.b.c.d).
func tcpSockaddr(family int, ip netip.Addr, port int, zone string) unix.Sockaddr {
	if family == unix.AF_INET {
		return &unix.SockaddrInet4{Port: port, Addr: ip.Unmap().As4()}
	}
	sa := &unix.SockaddrInet6{Port: port, Addr: ip.As16()}
	if zone != "" {
		if ifi, err := net.InterfaceByName(zone); err == nil {
			sa.ZoneId = uint32(ifi.Index)
		} else if n, err := strconv.Atoi(zone); err == nil {
			sa.ZoneId = uint32(n)
		}
	}
	return sa
}

// resolveTCP resolves address for network into candidate addresses, IPv4
// first as package net orders them for "tcp".
func resolveTCP(ctx context.Context, network, address string, listen bool) ([]netip.AddrPort, error) {
	host, service, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	port, err := net.DefaultResolver.LookupPort(ctx, network, service)
	if err != nil {
		return nil, err
	}
	if host == "" {
		if !listen {
			host = "localhost" // as package net dials ":port"
		} else {
			switch network {
			case "tcp4":
				return []netip.AddrPort{netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(port))}, nil
			default:
				return []netip.AddrPort{netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(port))}, nil
			}
		}
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		ipnet := "ip"
		if network == "tcp4" {
			ipnet = "ip4"
		} else if network == "tcp6" {
			ipnet = "ip6"
		}
		if ips, err = net.DefaultResolver.LookupNetIP(ctx, ipnet, host); err != nil {
			return nil, err
		}
	}
	var v4, v6 []netip.AddrPort
	for _, ip := range ips {
		ap := netip.AddrPortFrom(ip, uint16(port))
		if ip.Unmap().Is4() {
			if network != "tcp6" || ip.Is4In6() {
				v4 = append(v4, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
			}
		} else if network != "tcp4" {
			v6 = append(v6, ap)
		}
	}
	all := append(v4, v6...)
	if len(all) == 0 {
		return nil, &net.AddrError{Err: "no suitable address found", Addr: host}
	}
	return all, nil
}

// familyFor picks the socket family for an address: AF_INET for IPv4 on
// "tcp4" or "tcp", AF_INET6 otherwise (dual-stack for a "tcp" wildcard).
func familyFor(network string, ap netip.AddrPort) int {
	if network == "tcp6" {
		return unix.AF_INET6
	}
	if ap.Addr().Unmap().Is4() && !ap.Addr().IsUnspecified() || network == "tcp4" {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func tcpAddrOf(ap netip.AddrPort) *net.TCPAddr {
	return &net.TCPAddr{IP: ap.Addr().AsSlice(), Port: int(ap.Port()), Zone: ap.Addr().Zone()}
}

// newSocket creates a blocking stream socket: io_uring waits for readiness
// itself, and a non-blocking socket would make it fail with EAGAIN instead.
func newSocket(family int) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	return fd, nil
}

// setTCPOptions applies what package net applies to a new TCP connection:
// no Nagle delay, and keep-alives unless keepAlive is negative.
func setTCPOptions(fd int, keepAlive time.Duration) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	if keepAlive < 0 {
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	if keepAlive == 0 {
		keepAlive = 15 * time.Second
	}
	return setKeepAlivePeriod(fd, keepAlive)
}

func setKeepAlivePeriod(fd int, d time.Duration) error {
	secs := int((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	return nil
}

// rawConn is the syscall.RawConn of a Conn or Listener.
type rawConn struct{ fd *netFD }

var _ syscall.RawConn = (*rawConn)(nil)

func (c *rawConn) Control(f func(fd uintptr)) error {
	if !c.fd.incref() {
		return c.fd.opError("raw-control", net.ErrClosed)
	}
	defer c.fd.decref()
	f(uintptr(c.fd.sysfd))
	return nil
}

func (c *rawConn) Read(f func(fd uintptr) bool) error {
	return c.wait("raw-read", true, unix.POLLIN, f)
}

func (c *rawConn) Write(f func(fd uintptr) bool) error {
	return c.wait("raw-write", false, unix.POLLOUT, f)
}

// wait calls f until it returns true, waiting for the socket to become
// ready for events in between. read says which deadline applies.
func (c *rawConn) wait(op string, read bool, events uint32, f func(fd uintptr) bool) error {
	fd := c.fd
	if !fd.incref() {
		return fd.opError(op, net.ErrClosed)
	}
	defer fd.decref()
	for {
		if f(uintptr(fd.sysfd)) {
			return nil
		}
		d := &fd.deadlines().wd
		if read {
			d = &fd.deadlines().rd
		}
		wc := d.ctx()
		if err := fd.waitErr(read); err != nil {
			return fd.opError(op, err)
		}
		p := fd.e.ring.Poll(fd.sysfd, events)
		if _, err := p.WaitContext(wc); err == errWake {
			p.Wait()
		} else if err != nil && errnoOf(err) != syscall.ECANCELED {
			return fd.opError(op, err)
		}
	}
}
