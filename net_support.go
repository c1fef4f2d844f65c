package rio

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/gorio/rio/internal/uring"
)

// Additions for the net adapter (package github.com/gorio/rio/net). This
// file only adds functions; it changes nothing that exists.

// RecvMultishotLimit is RecvMultishot with a cap on the bytes the stream
// receives in all (Linux 6.17): once limit bytes have arrived, the kernel
// ends the stream with its last result, and the rest of the data waits in
// the socket until the stream is submitted again. That bounds how many
// buffers of br one connection can hold while its reader is not reading.
// A limit of 0 is RecvMultishot. Kernels before 6.17 refuse a non-zero limit:
// the stream ends at once with EINVAL.
func (r *Ring) RecvMultishotLimit(fd int, br *BufferRing, flags int, limit uint32) *Stream[Buffer] {
	var s uring.SQE
	c := initOp(new(Completion[int]), &s, uring.OpRecv, fd)
	s.IOPrio |= uring.RecvMultishot
	s.Flags |= uring.SQEBufferSelect
	s.BufIndex = br.group
	s.OpFlags = uint32(flags)
	s.FileIndex = limit // sqe->optlen shares the file_index slot
	var onEnd func()
	br.mu.Lock()
	if br.closed {
		c.setErr(argError("RecvMultishotLimit", fmt.Errorf("buffer ring closed: %w", syscall.EINVAL)))
	} else {
		br.active++
		onEnd = func() {
			br.mu.Lock()
			br.active--
			br.mu.Unlock()
		}
	}
	br.mu.Unlock()
	return submitStream(r, &c.op, &s, func(res int32, f uint32) Buffer {
		if f&uring.CQEFBuffer == 0 {
			return Buffer{N: int(res)}
		}
		return Buffer{ID: uint16(f >> uring.CQEBufferShift), N: int(res)}
	}, onEnd)
}

// WithCoopTaskrun sets up the ring with IORING_SETUP_COOP_TASKRUN (Linux
// 5.19): the kernel no longer interrupts the thread that submitted an
// operation to complete it (an inter-processor interrupt), but lets it do
// so at its next transition into the kernel. Go's threads enter the kernel
// often, and a sleeping thread is still woken. Before 5.19 New fails with
// an error matching ErrNotSupported.
func WithCoopTaskrun() Option {
	return func(c *config) error {
		inner := c.newKernel
		c.newKernel = func(entries uint32, p *uring.Params) (kernel, error) {
			p.Flags |= uring.SetupCoopTaskrun
			k, err := inner(entries, p)
			if err != nil && (errnoIs(err, syscall.EINVAL) || errnoIs(errors.Unwrap(err), syscall.EINVAL)) {
				return nil, &FeatureError{Feature: "IORING_SETUP_COOP_TASKRUN", MinKernel: "5.19", Err: err}
			}
			return k, err
		}
		return nil
	}
}
