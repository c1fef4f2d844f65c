package rionet

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

func sockaddrToAddr(network string, sa unix.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4, *unix.SockaddrInet6:
		var a sockAddr
		a.setSockaddr(sa)
		return a.addr(network)
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: unixNet(network)}
	}
	return nil
}

// unixNet is the Net of a *net.UnixAddr on network.
func unixNet(network string) string {
	if network == "unixgram" {
		return network
	}
	return "unix"
}

func zeroAddr(network string) net.Addr {
	switch {
	case isUnix(network):
		return &net.UnixAddr{Net: unixNet(network)}
	case isUDP(network):
		return &net.UDPAddr{}
	}
	return &net.TCPAddr{}
}

func isTCP(network string) bool {
	return network == "tcp" || network == "tcp4" || network == "tcp6"
}

func isUDP(network string) bool {
	return network == "udp" || network == "udp4" || network == "udp6"
}

func isUnix(network string) bool { return network == "unix" || network == "unixgram" }

// inetSockaddr converts an address to the sockaddr that a socket of family
// needs. An IPv4 address on an AF_INET6 socket is mapped (::ffff:a.b.c.d).
func inetSockaddr(family int, ip netip.Addr, port int, zone string) unix.Sockaddr {
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

// ipVersion is '4' or '6' for networks that name one ("tcp4", "udp6"), 0
// for the others.
func ipVersion(network string) byte {
	switch network[len(network)-1] {
	case '4', '6':
		return network[len(network)-1]
	}
	return 0
}

// resolveInet resolves address for an IP network (tcp or udp) into
// candidate addresses, IPv4 first as package net orders them.
func resolveInet(ctx context.Context, network, address string, listen bool) ([]netip.AddrPort, error) {
	host, service, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	port, err := net.DefaultResolver.LookupPort(ctx, network, service)
	if err != nil {
		return nil, err
	}
	v := ipVersion(network)
	if host == "" {
		if !listen {
			host = "localhost" // as package net dials ":port"
		} else if v == '4' {
			return []netip.AddrPort{netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(port))}, nil
		} else {
			return []netip.AddrPort{netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(port))}, nil
		}
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		ipnet := "ip"
		if v != 0 {
			ipnet += string(v)
		}
		if ips, err = net.DefaultResolver.LookupNetIP(ctx, ipnet, host); err != nil {
			return nil, err
		}
	}
	var v4, v6 []netip.AddrPort
	for _, ip := range ips {
		ap := netip.AddrPortFrom(ip, uint16(port))
		if ip.Unmap().Is4() {
			if v != '6' || ip.Is4In6() {
				v4 = append(v4, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
			}
		} else if v != '4' {
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
// "tcp4" or "tcp" (and the udp twins), AF_INET6 otherwise (dual-stack for a
// wildcard).
func familyFor(network string, ap netip.AddrPort) int {
	v := ipVersion(network)
	if v == '6' {
		return unix.AF_INET6
	}
	if ap.Addr().Unmap().Is4() && !ap.Addr().IsUnspecified() || v == '4' {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// inetAddrOf returns ap as network's net.Addr: a *net.UDPAddr or a
// *net.TCPAddr.
func inetAddrOf(network string, ap netip.AddrPort) net.Addr {
	if isUDP(network) {
		return &net.UDPAddr{IP: ap.Addr().AsSlice(), Port: int(ap.Port()), Zone: ap.Addr().Zone()}
	}
	return &net.TCPAddr{IP: ap.Addr().AsSlice(), Port: int(ap.Port()), Zone: ap.Addr().Zone()}
}

// newSocket creates a blocking socket of type sotype (unix.SOCK_STREAM,
// SOCK_DGRAM): io_uring waits for readiness itself, and on kernels that
// honour O_NONBLOCK in its operations a non-blocking socket would make them
// fail with EAGAIN instead.
func newSocket(family, sotype int) (int, error) {
	fd, err := unix.Socket(family, sotype|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	return fd, nil
}

// setTCPOptions applies what package net applies to a new TCP connection:
// no Nagle delay, and keep-alives as net.Dialer and net.ListenConfig
// configure them (KeepAlive, KeepAliveConfig).
func setTCPOptions(fd int, keepAlive time.Duration, cfg net.KeepAliveConfig) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	if !cfg.Enable && keepAlive >= 0 {
		cfg = net.KeepAliveConfig{Enable: true, Idle: keepAlive}
	}
	if !cfg.Enable {
		return nil
	}
	return setKeepAliveConfig(fd, cfg)
}

// setKeepAliveConfig is (*net.TCPConn).SetKeepAliveConfig: zero durations
// and counts mean package net's defaults (15 s, 15 s, 9), negative ones
// leave the option alone.
func setKeepAliveConfig(fd int, cfg net.KeepAliveConfig) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, boolint(cfg.Enable)); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	if err := setKeepAliveSecs(fd, unix.TCP_KEEPIDLE, cfg.Idle); err != nil {
		return err
	}
	if err := setKeepAliveSecs(fd, unix.TCP_KEEPINTVL, cfg.Interval); err != nil {
		return err
	}
	n := cfg.Count
	if n == 0 {
		n = defaultKeepAliveCount
	}
	if n > 0 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, n); err != nil {
			return os.NewSyscallError("setsockopt", err)
		}
	}
	return nil
}

// Package net's keep-alive defaults.
const (
	defaultKeepAlive      = 15 * time.Second
	defaultKeepAliveCount = 9
)

// setKeepAliveSecs sets TCP_KEEPIDLE or TCP_KEEPINTVL to d rounded up to
// whole seconds: zero means the default, negative leaves it alone.
func setKeepAliveSecs(fd, opt int, d time.Duration) error {
	if d < 0 {
		return nil
	}
	if d == 0 {
		d = defaultKeepAlive
	}
	secs := int((d + time.Second - 1) / time.Second)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, opt, secs); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	return nil
}
