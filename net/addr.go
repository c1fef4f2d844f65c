package rionet

import (
	"net"
	"net/netip"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockAddr is an IP socket address in the compact form that a netFD
// records when it is accepted or connected (see recordAddrs): no pointers
// and nothing allocated, so that recording costs an idle connection
// nothing but its size. The zero value is "none".
type sockAddr struct {
	ip     [16]byte // IPv4: the first 4 bytes
	zone   uint32   // IPv6 scope ID
	port   uint16
	family uint8 // 0, unix.AF_INET or unix.AF_INET6
}

// setRaw fills a from a kernel sockaddr of n bytes; it reports false for
// anything but IPv4 and IPv6.
func (a *sockAddr) setRaw(rsa *unix.RawSockaddrAny, n uint32) bool {
	switch {
	case rsa.Addr.Family == unix.AF_INET && n >= unix.SizeofSockaddrInet4:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		*a = sockAddr{family: unix.AF_INET, port: ntohs(p.Port)}
		copy(a.ip[:4], p.Addr[:])
		return true
	case rsa.Addr.Family == unix.AF_INET6 && n >= unix.SizeofSockaddrInet6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		*a = sockAddr{family: unix.AF_INET6, port: ntohs(p.Port), ip: p.Addr, zone: p.Scope_id}
		return true
	}
	return false
}

// setSockaddr fills a from sa, an IPv4 or IPv6 address.
func (a *sockAddr) setSockaddr(sa unix.Sockaddr) {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		*a = sockAddr{family: unix.AF_INET, port: uint16(sa.Port)}
		copy(a.ip[:4], sa.Addr[:])
	case *unix.SockaddrInet6:
		*a = sockAddr{family: unix.AF_INET6, port: uint16(sa.Port), ip: sa.Addr, zone: sa.ZoneId}
	}
}

func (a *sockAddr) valid() bool { return a.family != 0 }

// ipSlice returns the address as package net represents it: 4 bytes for
// an AF_INET socket's, 16 for an AF_INET6 socket's (IPv4-mapped included).
func (a *sockAddr) ipSlice() net.IP {
	if a.family == unix.AF_INET {
		return net.IP(append([]byte(nil), a.ip[:4]...))
	}
	return net.IP(append([]byte(nil), a.ip[:]...))
}

// addr returns a as the net.Addr of network: a *net.UDPAddr for the UDP
// networks, a *net.TCPAddr otherwise; nil if a is none.
func (a *sockAddr) addr(network string) net.Addr {
	if !a.valid() {
		return nil
	}
	if isUDP(network) {
		return &net.UDPAddr{IP: a.ipSlice(), Port: int(a.port), Zone: zoneName(a.zone)}
	}
	return &net.TCPAddr{IP: a.ipSlice(), Port: int(a.port), Zone: zoneName(a.zone)}
}

// addrPort returns a as a netip.AddrPort, as package net's AddrPort
// methods do (IPv4-mapped addresses stay mapped); invalid if a is none.
func (a *sockAddr) addrPort() netip.AddrPort {
	switch a.family {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(a.ip[:4])), a.port)
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.ip).WithZone(zoneName(a.zone)), a.port)
	}
	return netip.AddrPort{}
}

// zoneName names an IPv6 scope ID as package net does: the interface's
// name, or the number if there is no such interface.
func zoneName(id uint32) string {
	if id == 0 {
		return ""
	}
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		return ifi.Name
	}
	return strconv.Itoa(int(id))
}

func ntohs(p uint16) uint16 { return p<<8 | p>>8 }

// rawName asks the kernel for a socket's local (getsockname) or peer
// (getpeername) address into a. Both calls never wait; they are made raw,
// without allocating.
func rawName(trap uintptr, s int, a *sockAddr) bool {
	var rsa unix.RawSockaddrAny
	n := uint32(unsafe.Sizeof(rsa))
	_, _, e := unix.RawSyscall(trap, uintptr(s), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)))
	return e == 0 && a.setRaw(&rsa, n)
}

// recordAddrs records the addresses of a socket just accepted or
// connected, as package net does, so that LocalAddr, RemoteAddr and error
// messages have them also after a reset or Close. raddr, if not nil, is the
// peer's address as the caller already knows it (the one it connected to);
// laddr likewise for the local one (a Unix listener's). IP addresses are
// kept in compact form and made into net.Addrs when first asked for.
func (fd *netFD) recordAddrs(laddr net.Addr, raddr unix.Sockaddr) {
	if fd.family != unix.AF_UNIX {
		rawName(unix.SYS_GETSOCKNAME, fd.sysfd, &fd.la)
		if raddr != nil {
			fd.ra.setSockaddr(raddr)
		} else {
			rawName(unix.SYS_GETPEERNAME, fd.sysfd, &fd.ra)
		}
		return
	}
	fd.laddr = laddr
	if laddr == nil {
		if sa, err := unix.Getsockname(fd.sysfd); err == nil {
			fd.laddr = sockaddrToAddr(fd.net, sa)
		}
	}
	if raddr != nil {
		fd.raddr = sockaddrToAddr(fd.net, raddr)
	} else if sa, err := unix.Getpeername(fd.sysfd); err == nil {
		fd.raddr = sockaddrToAddr(fd.net, sa)
	}
}
