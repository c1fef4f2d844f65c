package rio

import (
	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

// The Batch twins of the socket operations (socket.go) and of the
// multishot ones (stream.go), so that they can be linked: a Recv after a
// Send, either limited by LinkTimeout, say. Each queues what the Ring
// method of the same name submits, with the same arguments, results and
// buffer rules.

// Accept queues an Accept.
func (b *Batch) Accept(fd int, flags int) *Completion[int] {
	c := b.ints.next()
	prepAccept(&c.op, b.sqe(), fd, flags)
	return add(b, c)
}

// Connect queues a Connect.
func (b *Batch) Connect(fd int, sa unix.Sockaddr) *Completion[struct{}] {
	return add(b, prepConnect(b.none.next(), b.sqe(), fd, sa))
}

// Send queues a Send.
func (b *Batch) Send(fd int, p []byte, flags int) *Completion[int] {
	return add(b, prepSendRecv(b.ints.next(), b.sqe(), uring.OpSend, fd, p, flags))
}

// Recv queues a Recv.
func (b *Batch) Recv(fd int, p []byte, flags int) *Completion[int] {
	return add(b, prepSendRecv(b.ints.next(), b.sqe(), uring.OpRecv, fd, p, flags))
}

// SendZC queues a SendZC.
func (b *Batch) SendZC(fd int, p []byte, flags int) *Completion[int] {
	return add(b, prepSendZC(b.ints.next(), b.sqe(), fd, p, flags))
}

// Sendmsg queues a Sendmsg.
func (b *Batch) Sendmsg(fd int, p, oob []byte, to unix.Sockaddr, flags int) *Completion[int] {
	return add(b, prepSendmsg(b.ints.next(), b.sqe(), fd, p, oob, to, flags))
}

// Recvmsg queues a Recvmsg. Its Completion is allocated on its own rather
// than from the Batch's groups of 64.
func (b *Batch) Recvmsg(fd int, p, oob []byte, flags int) *Completion[Msg] {
	return add(b, prepRecvmsg(new(Completion[Msg]), b.sqe(), fd, p, oob, flags))
}

// Shutdown queues a Shutdown.
func (b *Batch) Shutdown(fd int, how int) *Completion[struct{}] {
	return add(b, prepShutdown(b.none.next(), b.sqe(), fd, how))
}

// CancelFd queues a CancelFd.
func (b *Batch) CancelFd(fd int) *Completion[int] {
	return add(b, prepCancelFd(b.ints.next(), b.sqe(), fd))
}

// AcceptMultishot queues an AcceptMultishot.
func (b *Batch) AcceptMultishot(fd int, flags int) *Stream[int] {
	st := prepAcceptMultishot(b.sqe(), fd, flags)
	addStream(b, &st.streamCore)
	return st
}

// RecvMultishot queues a RecvMultishot.
func (b *Batch) RecvMultishot(fd int, br *BufferRing, flags int) *Stream[Buffer] {
	return b.RecvMultishotLimit(fd, br, flags, 0)
}

// RecvMultishotLimit queues a RecvMultishotLimit.
func (b *Batch) RecvMultishotLimit(fd int, br *BufferRing, flags int, limit uint32) *Stream[Buffer] {
	st := newStream(bufferResult)
	prepRecvMultishot(&st.streamCore, b.sqe(), fd, br, flags, limit)
	addStream(b, &st.streamCore)
	return st
}

// addStream is add for a multishot operation.
func addStream(b *Batch, s *streamCore) {
	s.op.ring = b.r
	b.ops = append(b.ops, &s.op)
}
