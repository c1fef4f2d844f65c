package sim

import (
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

// Socket operations and provided buffers. Sends and receives use
// MSG_DONTWAIT and wait for readiness in the worker, as the kernel's
// internal poll does; accept polls before it accepts.

func netSpecs() {
	data := fIOPrio | fAddr | fLen | fOpFlags | fBufIndex
	specs[uring.OpSend] = opSpec{exec: execSend, fields: data | fOff | fFileIndex, needsFile: true}
	specs[uring.OpSendZC] = opSpec{exec: execSend, fields: data | fOff | fFileIndex, needsFile: true}
	specs[uring.OpRecv] = opSpec{exec: execRecv, fields: data | fFileIndex, needsFile: true, bufSelect: true}
	specs[uring.OpSendmsg] = opSpec{exec: execMsg, fields: data, needsFile: true}
	specs[uring.OpRecvmsg] = opSpec{exec: execMsg, fields: data, needsFile: true}
	specs[uring.OpAccept] = opSpec{exec: execAccept, fields: fAddr | fOff | fOpFlags | fIOPrio, needsFile: true}
	specs[uring.OpConnect] = opSpec{exec: execConnect, fields: fAddr | fOff, needsFile: true}
	specs[uring.OpShutdown] = opSpec{exec: execShutdown, fields: fLen, needsFile: true}
	specs[uring.OpSocket] = opSpec{exec: execSocket, fields: fOff | fLen}
	specs[uring.OpProvideBuffers] = opSpec{exec: execProvide, fields: fAddr | fLen | fOff | fBufIndex}
	specs[uring.OpRemoveBuffers] = opSpec{exec: execRemove, fields: fBufIndex}
}

// pbuf is a provided buffer.
type pbuf struct {
	addr uint64
	len  uint32
	bid  uint16
}

// bufGroup is a group of provided buffers: a legacy list (PROVIDE_BUFFERS)
// or a ring registered with IORING_REGISTER_PBUF_RING.
type bufGroup struct {
	list    []pbuf // legacy: taken from the end
	ring    uint64 // ring address, 0 for a legacy group
	entries uint32
	head    uint16
}

// selectBuf picks the next provided buffer of r's group without taking it.
func (k *Kernel) selectBuf(r *req) (*pbuf, int32) {
	if r.noBufs {
		r.noBufs = false
		k.stats.NoBufs++
		return nil, errno(syscall.ENOBUFS)
	}
	g := k.pbufs[r.sqe.BufIndex]
	if g == nil {
		return nil, errno(syscall.ENOBUFS)
	}
	if g.ring == 0 {
		if len(g.list) == 0 {
			return nil, errno(syscall.ENOBUFS)
		}
		b := g.list[len(g.list)-1]
		return &b, 0
	}
	// struct io_uring_buf is 16 bytes; the ring's tail is the resv field
	// (offset 14) of entry 0, written by the application.
	tail := atomic.LoadUint32((*uint32)(ptr(g.ring+12))) >> 16
	if uint16(tail) == g.head {
		return nil, errno(syscall.ENOBUFS)
	}
	e := g.ring + 16*uint64(uint32(g.head)&(g.entries-1))
	b := pbuf{
		addr: *(*uint64)(ptr(e)),
		len:  *(*uint32)(ptr(e + 8)),
		bid:  *(*uint16)(ptr(e + 12)),
	}
	return &b, 0
}

// consumeBuf takes the buffer selectBuf picked and returns the CQE flags
// that name it.
func (k *Kernel) consumeBuf(b *pbuf, n int) uint32 {
	for _, g := range k.pbufs {
		if g.ring != 0 {
			continue
		}
		if l := len(g.list); l > 0 && g.list[l-1] == *b {
			g.list = g.list[:l-1]
			return uring.CQEFBuffer | uint32(b.bid)<<uring.CQEBufferShift
		}
	}
	for _, g := range k.pbufs {
		if g.ring != 0 {
			e := g.ring + 16*uint64(uint32(g.head)&(g.entries-1))
			if *(*uint64)(ptr(e)) == b.addr && *(*uint16)(ptr(e + 12)) == b.bid {
				g.head++
				break
			}
		}
	}
	return uring.CQEFBuffer | uint32(b.bid)<<uring.CQEBufferShift
}

func execProvide(k *Kernel, r *req) (int32, uint32, bool) {
	s := &r.sqe
	n := int(s.Fd)
	if n <= 0 || n > 1<<16 || s.Len == 0 || s.Off > 0xffff {
		return errno(syscall.EINVAL), 0, false
	}
	if k.pbufs == nil {
		k.pbufs = make(map[uint16]*bufGroup)
	}
	g := k.pbufs[s.BufIndex]
	if g == nil {
		g = &bufGroup{}
		k.pbufs[s.BufIndex] = g
	} else if g.ring != 0 {
		return errno(syscall.EINVAL), 0, false
	}
	for i := 0; i < n; i++ {
		g.list = append(g.list, pbuf{addr: s.Addr + uint64(i)*uint64(s.Len), len: s.Len, bid: uint16(s.Off) + uint16(i)})
	}
	return 0, 0, false
}

func execRemove(k *Kernel, r *req) (int32, uint32, bool) {
	s := &r.sqe
	n := int(s.Fd)
	g := k.pbufs[s.BufIndex]
	if n <= 0 {
		return errno(syscall.EINVAL), 0, false
	}
	if g == nil || g.ring != 0 {
		return errno(syscall.ENOENT), 0, false
	}
	n = min(n, len(g.list))
	g.list = g.list[:len(g.list)-n]
	return int32(n), 0, false
}

func (k *Kernel) registerPbufRing(arg unsafe.Pointer, nr uint32) (int, error) {
	fail := func(e syscall.Errno) (int, error) { return -1, os.NewSyscallError("io_uring_register", e) }
	if nr != 1 || arg == nil {
		return fail(syscall.EINVAL)
	}
	reg := (*uring.BufReg)(arg)
	if reg.RingAddr == 0 || reg.RingEntries == 0 || reg.RingEntries&(reg.RingEntries-1) != 0 || reg.RingEntries > 32768 || reg.Flags != 0 {
		return fail(syscall.EINVAL)
	}
	if k.pbufs == nil {
		k.pbufs = make(map[uint16]*bufGroup)
	}
	if k.pbufs[reg.Bgid] != nil {
		return fail(syscall.EEXIST)
	}
	k.pbufs[reg.Bgid] = &bufGroup{ring: reg.RingAddr, entries: reg.RingEntries}
	return 0, nil
}

func (k *Kernel) unregisterPbufRing(arg unsafe.Pointer, nr uint32) (int, error) {
	if nr != 1 || arg == nil {
		return -1, os.NewSyscallError("io_uring_register", syscall.EINVAL)
	}
	reg := (*uring.BufReg)(arg)
	g := k.pbufs[reg.Bgid]
	if g == nil || g.ring == 0 {
		return -1, os.NewSyscallError("io_uring_register", syscall.EINVAL)
	}
	delete(k.pbufs, reg.Bgid)
	return 0, nil
}

func execSend(k *Kernel, r *req) (int32, uint32, bool) {
	s := &r.sqe
	fd, e := k.file(r)
	if e != 0 {
		return errno(e), 0, false
	}
	n := k.shorten(r, int(s.Len))
	v, _, en := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(s.Addr), uintptr(n),
		uintptr(s.OpFlags|unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL), uintptr(s.Off), uintptr(s.FileIndex&0xffff))
	if en == syscall.EAGAIN || en == syscall.EINTR {
		return r.block(fd, unix.POLLOUT)
	}
	if en != 0 {
		return errno(en), 0, false
	}
	if s.Opcode == uring.OpSendZC {
		// The result, then the notification that the buffer is free.
		k.post(r, int32(v), uring.CQEFMore)
		return 0, uring.CQEFNotif, false
	}
	return int32(v), 0, false
}

func execRecv(k *Kernel, r *req) (int32, uint32, bool) {
	s := &r.sqe
	fd, e := k.file(r)
	if e != 0 {
		return errno(e), 0, false
	}
	multi := s.IOPrio&uring.RecvMultishot != 0
	if multi && s.Flags&uring.SQEBufferSelect == 0 {
		return errno(syscall.EINVAL), 0, false
	}
	// A multishot receive may cap the bytes it receives in all (its
	// limit shares the file_index slot, Linux 6.17).
	limit := int64(s.FileIndex)
	if limit != 0 && !multi {
		return errno(syscall.EINVAL), 0, false
	}
	for {
		addr, n := s.Addr, s.Len
		var sel *pbuf
		if s.Flags&uring.SQEBufferSelect != 0 {
			if !ready(fd, unix.POLLIN) {
				return r.block(fd, unix.POLLIN)
			}
			b, res := k.selectBuf(r)
			if res < 0 {
				return res, 0, false
			}
			sel, addr = b, b.addr
			if n == 0 || b.len < n {
				n = b.len
			}
		}
		if limit > 0 {
			n = uint32(min(int64(n), limit-r.received))
		}
		m := k.shorten(r, int(n))
		v, _, en := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(addr), uintptr(m),
			uintptr(s.OpFlags|unix.MSG_DONTWAIT), 0, 0)
		if en == syscall.EAGAIN || en == syscall.EINTR {
			return r.block(fd, unix.POLLIN)
		}
		if en != 0 {
			return errno(en), 0, false
		}
		var flags uint32
		if sel != nil && v > 0 {
			flags = k.consumeBuf(sel, int(v))
		}
		r.received += int64(v)
		if !multi || v == 0 || (limit > 0 && r.received >= limit) {
			return int32(v), flags, false
		}
		// Multishot: post this one and keep receiving.
		k.post(r, int32(v), flags|uring.CQEFMore)
	}
}

// execMsg runs sendmsg and recvmsg. A short transfer is made by trimming a
// copy of the message's iovec array.
func execMsg(k *Kernel, r *req) (int32, uint32, bool) {
	s := &r.sqe
	fd, e := k.file(r)
	if e != 0 {
		return errno(e), 0, false
	}
	if s.Addr == 0 {
		return errno(syscall.EFAULT), 0, false
	}
	msg := *(*unix.Msghdr)(ptr(s.Addr))
	var iov []unix.Iovec
	if msg.Iovlen > 0 && msg.Iov != nil {
		if msg.Iovlen > 1024 {
			return errno(syscall.EMSGSIZE), 0, false
		}
		iov = append(iov, unsafe.Slice(msg.Iov, msg.Iovlen)...)
		total := 0
		for _, v := range iov {
			total += int(v.Len)
		}
		left := k.shorten(r, total)
		for i := range iov {
			if int(iov[i].Len) > left {
				iov[i].Len = uint64(left)
			}
			left -= int(iov[i].Len)
		}
		msg.Iov = &iov[0]
	}
	nr, ev := uintptr(unix.SYS_SENDMSG), int16(unix.POLLOUT)
	flags := s.OpFlags | unix.MSG_DONTWAIT
	if s.Opcode == uring.OpRecvmsg {
		nr, ev = unix.SYS_RECVMSG, unix.POLLIN
	} else {
		flags |= unix.MSG_NOSIGNAL
	}
	v, _, en := unix.Syscall(nr, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	if en == syscall.EAGAIN || en == syscall.EINTR {
		return r.block(fd, ev)
	}
	if en != 0 {
		return errno(en), 0, false
	}
	if s.Opcode == uring.OpRecvmsg {
		// Report what the kernel wrote back into the header.
		out := (*unix.Msghdr)(ptr(s.Addr))
		out.Namelen, out.Controllen, out.Flags = msg.Namelen, msg.Controllen, msg.Flags
	}
	return int32(v), 0, false
}

func execAccept(k *Kernel, r *req) (int32, uint32, bool) {
	s := &r.sqe
	fd, e := k.file(r)
	if e != 0 {
		return errno(e), 0, false
	}
	multi := s.IOPrio&uring.AcceptMultishot != 0
	if s.IOPrio&^uring.AcceptMultishot != 0 {
		return errno(syscall.EINVAL), 0, false
	}
	for {
		if !ready(fd, unix.POLLIN) {
			return r.block(fd, unix.POLLIN)
		}
		v, _, en := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(s.Addr), uintptr(s.Off), uintptr(s.OpFlags), 0, 0)
		if en == syscall.EAGAIN || en == syscall.EINTR {
			return r.block(fd, unix.POLLIN)
		}
		if en != 0 {
			return errno(en), 0, false
		}
		if !multi {
			return int32(v), 0, false
		}
		k.post(r, int32(v), uring.CQEFMore)
	}
}

func execConnect(k *Kernel, r *req) (int32, uint32, bool) {
	s := &r.sqe
	fd, e := k.file(r)
	if e != 0 {
		return errno(e), 0, false
	}
	if r.pollEv == unix.POLLOUT {
		// A non-blocking connect in progress: ready means done.
		v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return errRes(err), 0, false
		}
		return errno(syscall.Errno(v)), 0, false
	}
	_, _, en := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(s.Addr), uintptr(s.Off))
	switch en {
	case 0:
		return 0, 0, false
	case syscall.EINPROGRESS, syscall.EAGAIN:
		return r.block(fd, unix.POLLOUT)
	}
	return errno(en), 0, false
}

func execShutdown(k *Kernel, r *req) (int32, uint32, bool) {
	fd, e := k.file(r)
	if e != 0 {
		return errno(e), 0, false
	}
	if err := unix.Shutdown(fd, int(r.sqe.Len)); err != nil {
		return errRes(err), 0, false
	}
	return 0, 0, false
}

func execSocket(k *Kernel, r *req) (int32, uint32, bool) {
	s := &r.sqe
	return sys(unix.SYS_SOCKET, uintptr(int(s.Fd)), uintptr(s.Off), uintptr(s.Len))
}
