package rio

import (
	"fmt"
	"syscall"
	"unsafe"

	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

// Socket operations. Buffer ownership is as for file operations: the kernel
// owns a buffer from submission until the operation's completion has been
// reaped (for SendZC, until the kernel's notification that it is done with
// the pages), and the ring keeps it pinned until then.

// Accept accepts a connection on the listening socket fd, like accept4(2)
// with flags (unix.SOCK_NONBLOCK); SOCK_CLOEXEC is always added. The result
// is the new socket, which the caller owns.
func (r *Ring) Accept(fd int, flags int) *Completion[int] {
	var s uring.SQE
	c := newCompletion[int](r)
	prepAccept(&c.op, &s, fd, flags)
	return submit1(r, c, &s)
}

// AcceptMultishot keeps accepting connections on fd with one submission
// (Linux 5.19): each accepted socket is one result of the Stream. The
// Stream ends when the kernel stops it (an error, or the CQ running full),
// after which it must be submitted again.
func (r *Ring) AcceptMultishot(fd int, flags int) *Stream[int] {
	var sqe uring.SQE
	st := prepAcceptMultishot(&sqe, fd, flags)
	submitStream(r, &st.streamCore, &sqe)
	return st
}

func prepAcceptMultishot(sqe *uring.SQE, fd int, flags int) *Stream[int] {
	st := newStream(intResult)
	prepAccept(&st.op, sqe, fd, flags)
	sqe.IOPrio |= uring.AcceptMultishot
	return st
}

func intResult(res int32, _ uint32) int { return int(res) }

func prepAccept(o *op, s *uring.SQE, fd int, flags int) {
	initSQE(o, s, uring.OpAccept, fd)
	s.OpFlags = uint32(flags | unix.SOCK_CLOEXEC)
}

// Connect connects socket fd to sa, like connect(2). The ring holds its own
// copy of the address.
func (r *Ring) Connect(fd int, sa unix.Sockaddr) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepConnect(newCompletion[struct{}](r), &s, fd, sa), &s)
}

func prepConnect(c *Completion[struct{}], s *uring.SQE, fd int, sa unix.Sockaddr) *Completion[struct{}] {
	initOp(c, s, uring.OpConnect, fd)
	p, n, err := rawSockaddr(sa)
	if err != nil {
		c.setErr(argError("connect", err))
	} else {
		c.obj = p
		s.Addr = uring.Addr(p)
		s.Off = uint64(n) // addrlen goes in off
	}
	return c
}

// Send sends b on socket fd, like send(2) with flags (unix.MSG_*). The
// result is the number of bytes sent, which may be fewer than len(b).
func (r *Ring) Send(fd int, b []byte, flags int) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepSendRecv(newCompletion[int](r), &s, uring.OpSend, fd, b, flags), &s)
}

// Recv receives into b from socket fd, like recv(2) with flags. A result
// of 0 with a non-empty b means the peer closed its side.
func (r *Ring) Recv(fd int, b []byte, flags int) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepSendRecv(newCompletion[int](r), &s, uring.OpRecv, fd, b, flags), &s)
}

// SendZC sends b without copying it into the kernel (Linux 6.0): the
// network stack transmits from b's pages. Wait returns once the kernel has
// notified that it no longer uses them, so b is borrowed until then: after
// the peer acknowledged the data, and on loopback only once the receiver
// has read it. It pays for large buffers only.
func (r *Ring) SendZC(fd int, b []byte, flags int) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepSendZC(newCompletion[int](r), &s, fd, b, flags), &s)
}

func prepSendZC(c *Completion[int], s *uring.SQE, fd int, b []byte, flags int) *Completion[int] {
	prepSendRecv(c, s, uring.OpSendZC, fd, b, flags)
	var result int32
	var got bool
	c.extra().hook = cqeFunc(func(res int32, f uint32) (int32, uint32) {
		if !got {
			// The first CQE has the result; with IORING_CQE_F_MORE, a
			// notification follows when the buffer is released.
			result, got = res, true
		}
		return result, f
	})
	return c
}

func prepSendRecv(c *Completion[int], s *uring.SQE, opcode uring.Op, fd int, b []byte, flags int) *Completion[int] {
	initOp(c, s, opcode, fd)
	setBuf(c, s, b)
	s.OpFlags = uint32(flags)
	c.kernelWrites = opcode == uring.OpRecv
	return c
}

// Shutdown shuts down part of a full-duplex connection, like shutdown(2)
// with how unix.SHUT_RD, SHUT_WR or SHUT_RDWR (Linux 5.11).
func (r *Ring) Shutdown(fd int, how int) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepShutdown(newCompletion[struct{}](r), &s, fd, how), &s)
}

func prepShutdown(c *Completion[struct{}], s *uring.SQE, fd int, how int) *Completion[struct{}] {
	initOp(c, s, uring.OpShutdown, fd)
	s.Len = uint32(how)
	return c
}

// Msg is the result of Recvmsg.
type Msg struct {
	N     int           // bytes received into the data buffer
	OOBN  int           // bytes of ancillary data received
	Flags int           // unix.MSG_TRUNC, MSG_CTRUNC, ...
	From  unix.Sockaddr // the sender, for unconnected sockets; nil if none
}

// msgState is what Sendmsg and Recvmsg hand to the kernel: the msghdr, its
// one iovec and the address buffer, in one pinned object.
type msgState struct {
	hdr  unix.Msghdr
	iov  unix.Iovec
	name unix.RawSockaddrAny
}

// Sendmsg sends p and the ancillary data oob on socket fd, to address to
// if it is not nil, like sendmsg(2).
func (r *Ring) Sendmsg(fd int, p, oob []byte, to unix.Sockaddr, flags int) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepSendmsg(newCompletion[int](r), &s, fd, p, oob, to, flags), &s)
}

func prepSendmsg(c *Completion[int], s *uring.SQE, fd int, p, oob []byte, to unix.Sockaddr, flags int) *Completion[int] {
	initOp(c, s, uring.OpSendmsg, fd)
	m := newMsg(c, s, p, oob)
	if to != nil {
		ptr, n, err := rawSockaddr(to)
		if err != nil {
			c.setErr(argError("sendmsg", err))
		} else {
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&m.name)), n), unsafe.Slice((*byte)(ptr), n))
			m.hdr.Name = (*byte)(unsafe.Pointer(&m.name))
			m.hdr.Namelen = uint32(n)
		}
	}
	s.OpFlags = uint32(flags)
	return c
}

// Recvmsg receives into p and ancillary data into oob from socket fd, like
// recvmsg(2). The kernel writes p and oob until the operation completes.
func (r *Ring) Recvmsg(fd int, p, oob []byte, flags int) *Completion[Msg] {
	var s uring.SQE
	return submit1(r, prepRecvmsg(newCompletion[Msg](r), &s, fd, p, oob, flags), &s)
}

func prepRecvmsg(c *Completion[Msg], s *uring.SQE, fd int, p, oob []byte, flags int) *Completion[Msg] {
	initOp(c, s, uring.OpRecvmsg, fd)
	m := newMsg(c, s, p, oob)
	m.hdr.Name = (*byte)(unsafe.Pointer(&m.name))
	m.hdr.Namelen = uint32(unsafe.Sizeof(m.name))
	s.OpFlags = uint32(flags)
	c.kernelWrites = true
	return c
}

func newMsg[T any](c *Completion[T], s *uring.SQE, p, oob []byte) *msgState {
	m := new(msgState)
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	if len(p) > 0 {
		m.iov.Base = unsafe.SliceData(p)
		m.iov.SetLen(len(p))
	}
	m.hdr.Iov = &m.iov
	m.hdr.SetIovlen(1)
	if len(oob) > 0 {
		m.hdr.Control = unsafe.SliceData(oob)
		m.hdr.SetControllen(len(oob))
	}
	c.setBuf(p)
	if len(oob) > 0 {
		c.extra().bufs = [][]byte{oob}
	}
	c.obj = unsafe.Pointer(m)
	s.Addr = uring.Addr(c.obj)
	s.Len = 1
	return m
}

// msgResult reads Recvmsg's result out of its msghdr.
func msgResult(o *op) Msg {
	m := (*msgState)(o.obj)
	msg := Msg{N: int(o.res), OOBN: int(m.hdr.Controllen), Flags: int(m.hdr.Flags)}
	if m.hdr.Namelen > 0 {
		msg.From = parseSockaddr(&m.name)
	}
	return msg
}

// rawSockaddr encodes sa in kernel form, in memory of its own.
func rawSockaddr(sa unix.Sockaddr) (unsafe.Pointer, int, error) {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		raw := &unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: sa.Addr}
		raw.Port = htons(sa.Port)
		return unsafe.Pointer(raw), unix.SizeofSockaddrInet4, nil
	case *unix.SockaddrInet6:
		raw := &unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: sa.Addr, Scope_id: sa.ZoneId}
		raw.Port = htons(sa.Port)
		return unsafe.Pointer(raw), unix.SizeofSockaddrInet6, nil
	case *unix.SockaddrUnix:
		raw := &unix.RawSockaddrUnix{Family: unix.AF_UNIX}
		name := sa.Name
		if len(name) >= len(raw.Path) {
			return nil, 0, fmt.Errorf("unix socket path too long (%d bytes): %w", len(name), syscall.EINVAL)
		}
		for i := 0; i < len(name); i++ {
			raw.Path[i] = int8(name[i])
		}
		n := 2 + len(name)
		if len(name) > 0 && name[0] == '@' { // abstract socket
			raw.Path[0] = 0
		} else if len(name) > 0 {
			n++ // NUL terminator
		}
		return unsafe.Pointer(raw), n, nil
	case nil:
		return nil, 0, fmt.Errorf("nil address: %w", syscall.EINVAL)
	}
	return nil, 0, fmt.Errorf("unsupported address type %T: %w", sa, syscall.EAFNOSUPPORT)
}

func parseSockaddr(raw *unix.RawSockaddrAny) unix.Sockaddr {
	switch raw.Addr.Family {
	case unix.AF_INET:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(raw))
		return &unix.SockaddrInet4{Port: int(htons(int(p.Port))), Addr: p.Addr}
	case unix.AF_INET6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(raw))
		return &unix.SockaddrInet6{Port: int(htons(int(p.Port))), Addr: p.Addr, ZoneId: p.Scope_id}
	case unix.AF_UNIX:
		p := (*unix.RawSockaddrUnix)(unsafe.Pointer(raw))
		n := 0
		for n < len(p.Path) && p.Path[n] != 0 {
			n++
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(p.Path[i])
		}
		return &unix.SockaddrUnix{Name: string(b)}
	}
	return nil
}

// htons converts a port between host and network byte order (both ways).
func htons(port int) uint16 {
	p := uint16(port)
	return p<<8 | p>>8
}
