package rio

import (
	"fmt"
	"syscall"
	"unsafe"

	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

// RecvmsgMultishot keeps receiving messages (datagrams) from socket fd
// with one submission (Linux 6.0), each into a buffer the kernel picks
// from br, with room in it for a sender address of up to nameLen bytes and
// ancillary data of up to oobLen bytes. Each result of the Stream is one
// message: parse its buffer with ParseRecvmsg(br.Bytes(b.ID, b.N),
// nameLen, oobLen), and Release the buffer when done with it. A message
// larger than what is left of the buffer is truncated (MSG_TRUNC). The
// Stream ends as RecvMultishot's does (an error, ENOBUFS when br runs
// dry, Cancel), and also after a message with an empty payload, whose
// result comes last (Linux 6.18 does that, as for the end of a byte
// stream); submit it again to go on receiving.
func (r *Ring) RecvmsgMultishot(fd int, br *BufferRing, nameLen, oobLen int, flags int) *Stream[Buffer] {
	var sqe uring.SQE
	st := prepRecvmsgMultishot(&sqe, fd, br, nameLen, oobLen, flags)
	submitStream(r, &st.streamCore, &sqe)
	return st
}

// RecvmsgMultishot queues a RecvmsgMultishot.
func (b *Batch) RecvmsgMultishot(fd int, br *BufferRing, nameLen, oobLen int, flags int) *Stream[Buffer] {
	st := prepRecvmsgMultishot(b.sqe(), fd, br, nameLen, oobLen, flags)
	addStream(b, &st.streamCore)
	return st
}

func prepRecvmsgMultishot(sqe *uring.SQE, fd int, br *BufferRing, nameLen, oobLen int, flags int) *Stream[Buffer] {
	st := newStream(bufferResult)
	s := &st.streamCore
	initSQE(&s.op, sqe, uring.OpRecvmsg, fd)
	if br == nil {
		s.op.setErr(errNilBufferRing("RecvmsgMultishot"))
		return st
	}
	if nameLen < 0 || oobLen < 0 || int64(recvmsgOutSize)+int64(nameLen)+int64(oobLen) > int64(br.ring.Size()) {
		s.op.setErr(argError("RecvmsgMultishot", fmt.Errorf("name %d and control %d bytes do not fit buffers of %d: %w", nameLen, oobLen, br.ring.Size(), syscall.EINVAL)))
	}
	// The kernel reads the lengths of the name and control areas from
	// the msghdr when it prepares the operation; no iovec: the data goes
	// into the buffer after them.
	m := new(unix.Msghdr)
	m.Namelen = uint32(nameLen)
	m.SetControllen(oobLen)
	s.op.obj = unsafe.Pointer(m)
	sqe.Addr = uring.Addr(s.op.obj)
	sqe.Len = 1
	sqe.IOPrio |= uring.RecvMultishot
	sqe.Flags |= uring.SQEBufferSelect
	sqe.BufIndex = br.ring.Group()
	sqe.OpFlags = uint32(flags)
	br.attach(s)
	return st
}

const recvmsgOutSize = int(unsafe.Sizeof(uring.RecvmsgOut{}))

// RecvmsgOut is one message of RecvmsgMultishot, parsed out of the buffer
// the kernel filled. Its slices point into that buffer: they are valid
// until the buffer is released.
type RecvmsgOut struct {
	// Name is the sender's address as the kernel wrote it (a struct
	// sockaddr), cut to the room there was; NameLen is its full length.
	Name    []byte
	NameLen int
	// OOB is the ancillary data received.
	OOB []byte
	// Payload is the message, or as much of it as the buffer held.
	// PayloadLen is its full length if the stream was submitted with
	// flags unix.MSG_TRUNC (for datagram sockets), else len(Payload).
	Payload    []byte
	PayloadLen int
	// Flags are the message's recvmsg flags: unix.MSG_TRUNC if the
	// payload was cut, MSG_CTRUNC if the ancillary data was.
	Flags int
}

// ParseRecvmsg parses a buffer that RecvmsgMultishot filled, with the
// nameLen and oobLen it was submitted with.
func ParseRecvmsg(b []byte, nameLen, oobLen int) (RecvmsgOut, error) {
	if len(b) < recvmsgOutSize+nameLen+oobLen {
		return RecvmsgOut{}, argError("ParseRecvmsg", fmt.Errorf("%d bytes hold no message with %d+%d bytes of name and control: %w", len(b), nameLen, oobLen, syscall.EINVAL))
	}
	h := (*uring.RecvmsgOut)(unsafe.Pointer(&b[0]))
	out := RecvmsgOut{NameLen: int(h.Namelen), PayloadLen: int(h.Payloadlen), Flags: int(h.Flags)}
	b = b[recvmsgOutSize:]
	out.Name = b[:min(int(h.Namelen), nameLen)]
	out.OOB = b[nameLen : nameLen+min(int(h.Controllen), oobLen)]
	out.Payload = b[nameLen+oobLen:]
	out.Payload = out.Payload[:min(len(out.Payload), int(h.Payloadlen))]
	return out, nil
}
