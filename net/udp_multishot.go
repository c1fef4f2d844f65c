package rionet

import (
	"io"
	"sync"
	"syscall"
	"unsafe"

	"github.com/gorio/rio"
	"golang.org/x/sys/unix"
)

// Datagram receives with one multishot recvmsg per PacketConn: the kernel
// receives each datagram, when it arrives, into a buffer it picks from a
// ring of buffers shared by the engine's PacketConns, and a receive takes
// it from there without a system call, as a Conn's Read does. The buffers
// are large enough for any UDP datagram (64 KiB of payload), so nothing is
// truncated that package net would not truncate; Unix datagram sockets,
// whose datagrams can be larger, receive one datagram per recvmsg.

// DatagramBufferGroup is the provided-buffer group ID of the datagram
// buffers this package registers on a ring whose PacketConns receive with
// a multishot recvmsg. As for BufferGroup, a caller's Ring must not use it.
const DatagramBufferGroup = BufferGroup + 1

// The datagram buffers: dgramCount buffers, each with room for the
// kernel's header, the sender's address, dgramOOB bytes of ancillary data
// and a datagram of dgramPayload bytes.
const (
	dgramCount   = 256
	dgramName    = unix.SizeofSockaddrAny
	dgramOOB     = 256
	dgramPayload = 64 << 10
	dgramSize    = 16 + dgramName + dgramOOB + dgramPayload
)

// udpMultishot makes UDP PacketConns receive with a multishot recvmsg; see
// docs/net.md for why it is not the default. Only tests and BenchmarkUDPEcho
// set it (SetUDPMultishotForTest).
var udpMultishot bool

// dgramState is what an engine has for multishot datagram receives.
type dgramState struct {
	mu  sync.Mutex
	br  *rio.BufferRing
	err error // the ring refused the buffers, or multishot recvmsg
}

var dgrams sync.Map // *engine -> *dgramState

func dgramOf(e *engine) *dgramState {
	v, _ := dgrams.LoadOrStore(e, &dgramState{})
	return v.(*dgramState)
}

// dgramRing returns the engine's datagram buffers, registering them on
// first use; nil if the ring cannot have them.
func (e *engine) dgramRing() *rio.BufferRing {
	d := dgramOf(e)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.br == nil && d.err == nil {
		d.br, d.err = e.ring.NewBufferRing(DatagramBufferGroup, dgramCount, dgramSize)
	}
	return d.br
}

// noMultishot notes that the kernel refused a multishot recvmsg.
func (e *engine) noDgramMultishot() {
	d := dgramOf(e)
	d.mu.Lock()
	if d.err == nil {
		d.err = syscall.EINVAL
	}
	d.mu.Unlock()
}

// releaseDgram unregisters the engine's datagram buffers, for Release.
func releaseDgram(e *engine) error {
	v, ok := dgrams.LoadAndDelete(e)
	if !ok {
		return nil
	}
	d := v.(*dgramState)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.br == nil {
		return nil
	}
	return d.br.Close()
}

// drainDgram takes the remaining results of a cancelled datagram stream,
// giving back their buffers.
func drainDgram(e *engine, s *rio.Stream[rio.Buffer]) {
	br := dgramOf(e).br
	for !(s.Ended() && s.Buffered() == 0) {
		b, err := s.Next()
		if err == io.EOF {
			return
		}
		if err == nil && br != nil {
			br.Release(b.ID)
		}
	}
}

// recvMultishot is recv through the multishot recvmsg, with rmu held. ok
// is false when it cannot be used (a Unix socket, no kernel support, the
// shared buffers dry for now: the next receive re-arms it, more ancillary
// data wanted than it keeps room for), for recv's one-shot path.
func (c *PacketConn) recvMultishot(p, oob []byte, f *from) (n, oobn, flags int, err error, ok bool) {
	fd := c.fd
	if !udpMultishot || !isUDP(fd.net) || len(oob) > dgramOOB {
		return 0, 0, 0, nil, false
	}
	e := fd.e
	for {
		if err := fd.waitErr(true); err != nil {
			return 0, 0, 0, err, true
		}
		s := fd.stream.Load()
		if s == nil {
			br := e.dgramRing()
			if br == nil || dgramOf(e).err != nil {
				return 0, 0, 0, nil, false
			}
			// MSG_TRUNC: the kernel reports a datagram's full length.
			fd.stream.Store(e.ring.RecvmsgMultishot(fd.sysfd, br, dgramName, dgramOOB, unix.MSG_TRUNC))
			continue
		}
		if s.Buffered() == 0 && !s.Ended() {
			s.Wait()
			continue
		}
		b, err := s.Next()
		if err == io.EOF { // ended after its last datagram: re-arm
			fd.stream.Store(nil)
			continue
		}
		if err != nil {
			fd.stream.Store(nil)
			switch errnoOf(err) {
			case syscall.ENOBUFS:
				return 0, 0, 0, nil, false
			case syscall.ECANCELED, syscall.EINTR, syscall.EAGAIN:
				continue
			case syscall.EINVAL:
				e.noDgramMultishot() // before Linux 6.0
				return 0, 0, 0, nil, false
			}
			return 0, 0, 0, err, true // a socket error (ECONNREFUSED)
		}
		br := dgramOf(e).br
		out, perr := rio.ParseRecvmsg(br.Bytes(b.ID, b.N), dgramName, dgramOOB)
		if perr == nil {
			n = copy(p, out.Payload)
			flags = out.Flags
			if out.PayloadLen > n {
				flags |= unix.MSG_TRUNC
			}
			var ctrunc bool
			if oobn, ctrunc = copyCmsgs(oob, out.OOB); ctrunc {
				flags |= unix.MSG_CTRUNC
			}
			if f != nil && len(out.Name) > 0 {
				f.setRaw((*unix.RawSockaddrAny)(unsafe.Pointer(&out.Name[0])), uint32(len(out.Name)))
			}
		}
		br.Release(b.ID)
		return n, oobn, flags, perr, true
	}
}

// copyCmsgs copies the control messages of src into dst as the kernel
// would have written them into a buffer of len(dst): whole messages while
// they fit, then as much of the next as fits if its header does (its
// length cut), and reports whether anything was cut.
func copyCmsgs(dst, src []byte) (n int, trunc bool) {
	for len(src) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&src[0]))
		clen := int(h.Len)
		if clen < unix.SizeofCmsghdr || clen > len(src) {
			return n, trunc // malformed: the kernel never writes that
		}
		room := len(dst) - n
		if room < unix.SizeofCmsghdr {
			return n, true
		}
		if room < clen {
			copy(dst[n:], src[:room])
			(*unix.Cmsghdr)(unsafe.Pointer(&dst[n])).Len = uint64(room)
			return n + room, true
		}
		copy(dst[n:], src[:clen])
		space := min(unix.CmsgSpace(clen-unix.SizeofCmsghdr), len(src))
		n += min(space, room)
		src = src[space:]
	}
	return n, trunc
}
