package rionet

import (
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Sockets that come from elsewhere: systemd's socket activation, a parent
// process in a graceful restart, a library that made its own.

// FileListener returns a listener for a copy of the listening socket f, as
// net.FileListener does: f stays the caller's, to close when it likes,
// and closing the listener does not affect it. f must be a TCP or Unix
// stream socket that is listening; anything else fails with EINVAL. The
// socket is put in blocking mode, which rionet's operations need (see the
// package documentation); f shares that mode, being the same open socket.
// The result is a *Listener, or package net's listener where io_uring is
// unavailable.
func FileListener(f *os.File) (net.Listener, error) {
	e, err := pickEngine(nil, false)
	if err != nil {
		return nil, fileError(f, err)
	}
	if e == nil {
		return net.FileListener(f)
	}
	s, family, network, err := fileSocket(f, unix.SOCK_STREAM, true)
	if err != nil {
		return nil, fileError(f, err)
	}
	l, err := newListener(e, s, family, network, nil, "", nil)
	if err != nil {
		return nil, fileError(f, err)
	}
	return l, nil
}

// FileConn returns a connection for a copy of the connected socket f, as
// net.FileConn does: a *Conn for a TCP or Unix stream socket, a
// *PacketConn for a UDP or Unix datagram socket; f stays the caller's. A
// TCP connection gets package net's defaults (no Nagle delay, keep-alives
// every 15 s). The socket is put in blocking mode, as for FileListener.
// Where io_uring is unavailable, the result is package net's.
func FileConn(f *os.File) (net.Conn, error) {
	e, err := pickEngine(nil, false)
	if err != nil {
		return nil, fileError(f, err)
	}
	if e == nil {
		return net.FileConn(f)
	}
	s, family, network, err := fileSocket(f, -1, false)
	if err != nil {
		return nil, fileError(f, err)
	}
	if !isTCP(network) && network != "unix" {
		return filePacket(e, s, family, network), nil
	}
	if isTCP(network) {
		if err := setTCPOptions(s, 0, net.KeepAliveConfig{}); err != nil {
			unix.Close(s)
			return nil, fileError(f, err)
		}
	}
	fd := newNetFD(e, s, family, network)
	fd.recordAddrs(nil, nil)
	return newConn(fd), nil
}

// FilePacketConn returns a PacketConn for a copy of the datagram socket f
// (UDP or Unix), as net.FilePacketConn does; f stays the caller's. Where
// io_uring is unavailable, the result is package net's.
func FilePacketConn(f *os.File) (net.PacketConn, error) {
	e, err := pickEngine(nil, false)
	if err == nil && e != nil {
		if e.packetSupported() != nil && !noFallbackEnv() {
			e = nil
		}
	}
	if err != nil {
		return nil, fileError(f, err)
	}
	if e == nil {
		return net.FilePacketConn(f)
	}
	s, family, network, err := fileSocket(f, unix.SOCK_DGRAM, false)
	if err != nil {
		return nil, fileError(f, err)
	}
	return filePacket(e, s, family, network), nil
}

// filePacket makes a PacketConn of an inherited datagram socket, connected
// if it has a peer.
func filePacket(e *engine, s, family int, network string) *PacketConn {
	raddr, err := unix.Getpeername(s)
	if err != nil {
		raddr = nil
	}
	return newPacketConn(e, s, family, network, raddr != nil, raddr)
}

// fileError shapes an error of the File functions as package net does.
func fileError(f *os.File, err error) error {
	return &net.OpError{Op: "file", Net: "file+net", Addr: fileAddr(f.Name()), Err: err}
}

// fileAddr is the net.Addr of a file's name, for errors.
type fileAddr string

func (fileAddr) Network() string  { return "file+net" }
func (f fileAddr) String() string { return string(f) }

// fileSocket duplicates f's descriptor, checks that it is a socket of type
// sotype (-1: stream or datagram), listening or not as listening says, of
// family IPv4, IPv6 or Unix, and puts the copy in blocking mode. It
// returns the copy, its family and the network it belongs to.
func fileSocket(f *os.File, sotype int, listening bool) (s, family int, network string, err error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return -1, 0, "", err
	}
	s = -1
	cerr := sc.Control(func(fd uintptr) {
		s, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	})
	if cerr != nil {
		return -1, 0, "", cerr
	}
	if err != nil {
		return -1, 0, "", os.NewSyscallError("fcntl", err)
	}
	fail := func(err error) (int, int, string, error) {
		unix.Close(s)
		return -1, 0, "", err
	}
	typ, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fail(os.NewSyscallError("getsockopt", err))
	}
	family, err = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return fail(os.NewSyscallError("getsockopt", err))
	}
	acc, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return fail(os.NewSyscallError("getsockopt", err))
	}
	switch {
	case sotype >= 0 && typ != sotype,
		typ != unix.SOCK_STREAM && typ != unix.SOCK_DGRAM,
		(acc != 0) != listening:
		return fail(syscall.EINVAL)
	}
	switch family {
	case unix.AF_INET, unix.AF_INET6:
		network = "tcp"
		if typ == unix.SOCK_DGRAM {
			network = "udp"
		}
	case unix.AF_UNIX:
		network = "unix"
		if typ == unix.SOCK_DGRAM {
			network = "unixgram"
		}
	default:
		return fail(syscall.EPROTONOSUPPORT)
	}
	if err := unix.SetNonblock(s, false); err != nil {
		return fail(os.NewSyscallError("setnonblock", err))
	}
	return s, family, network, nil
}

// file is the File method of Conn, Listener and PacketConn: a copy of the
// descriptor, named as package net names it.
func (fd *netFD) file() (*os.File, error) {
	if !fd.incref() {
		return nil, fd.opError("file", net.ErrClosed)
	}
	defer fd.decref()
	nfd, err := unix.FcntlInt(uintptr(fd.sysfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fd.opError("file", os.NewSyscallError("fcntl", err))
	}
	l, r := fd.addrs()
	name := fd.net
	if l != nil {
		name += ":" + l.String()
	}
	if r != nil {
		name += "->" + r.String()
	}
	return os.NewFile(uintptr(nfd), name), nil
}
