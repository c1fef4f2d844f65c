package rio

import (
	"fmt"
	"syscall"

	"github.com/gorio/rio/internal/uring"
)

// spliceFdInFixed is SPLICE_F_FD_IN_FIXED: fd_in is a registered file.
const spliceFdInFixed = 1 << 31

// Splice moves up to n bytes from fdIn to fdOut without copying them
// through user space, like splice(2) with flags (unix.SPLICE_F_*); one of
// the two must be a pipe (Linux 5.7). offIn and offOut are the offsets to
// read and write at, or -1 for the file's current position (which then
// advances), as a pipe requires. The result is the number of bytes moved,
// 0 at the end of fdIn. The kernel runs a splice from a worker thread of
// its own, so each costs a thread hand-off: it pays for large transfers.
func (r *Ring) Splice(fdIn int, offIn int64, fdOut int, offOut int64, n int, flags int) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepSplice(newCompletion[int](r), &s, fdIn, offIn, fdOut, offOut, n, flags), &s)
}

// Splice queues a Splice.
func (b *Batch) Splice(fdIn int, offIn int64, fdOut int, offOut int64, n int, flags int) *Completion[int] {
	return add(b, prepSplice(b.ints.next(), b.sqe(), fdIn, offIn, fdOut, offOut, n, flags))
}

func prepSplice(c *Completion[int], s *uring.SQE, fdIn int, offIn int64, fdOut int, offOut int64, n int, flags int) *Completion[int] {
	initOp(c, s, uring.OpSplice, fdOut)
	if offIn < -1 || offOut < -1 || n < 0 {
		c.setErr(argError("splice", fmt.Errorf("offsets %d, %d, length %d: %w", offIn, offOut, n, syscall.EINVAL)))
	}
	n = min(n, maxRW)
	s.Off = uint64(offOut)
	s.Addr = uint64(offIn) // splice_off_in
	s.Len = uint32(n)
	s.OpFlags = uint32(flags)
	if fdIn <= fixedTag {
		s.FileIndex = uint32(fixedTag - fdIn) // splice_fd_in
		s.OpFlags |= spliceFdInFixed
	} else {
		s.FileIndex = uint32(int32(fdIn))
	}
	return c
}
