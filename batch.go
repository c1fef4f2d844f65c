package rio

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

// Batch queues operations to submit together, with one io_uring_enter, and
// links them into chains. A Batch's operations enter the submission queue
// together: no other goroutine's operation lands between them, so a linked
// chain is never broken up. A Batch is not safe for concurrent use; it can
// be reused after Submit.
//
// The operations' memory belongs to the kernel from Submit on, as for the
// Ring's methods. Waiting on an operation of a Batch that was not submitted
// returns an error matching syscall.EINVAL.
//
// A Batch allocates its Completions 64 at a time, which makes each cheaper;
// keeping one Completion referenced keeps its group of 64 (about 4 KB)
// alive. A Batch whose operations have all completed can be recycled
// (Recycle): the operations queued after it reuse the memory of the
// earlier ones and allocate no Completion at all.
type Batch struct {
	r    *Ring
	ops  []*op
	sqes []uring.SQE // one per op
	idx  []uint32
	err  error

	// Completions are allocated 64 at a time, one slab per result type:
	// a slab stays alive while any of its Completions is referenced.
	none  slab[struct{}]
	ints  slab[int]
	u32s  slab[uint32]
	bools slab[bool]
}

// NewBatch returns an empty Batch for r.
func (r *Ring) NewBatch() *Batch { return &Batch{r: r} }

// Len returns the number of queued operations.
func (b *Batch) Len() int { return len(b.ops) }

// sqe returns a zeroed SQE for the next op; add must follow.
func (b *Batch) sqe() *uring.SQE {
	b.sqes = append(b.sqes, uring.SQE{})
	return &b.sqes[len(b.sqes)-1]
}

func add[T any](b *Batch, c *Completion[T]) *Completion[T] {
	c.ring = b.r
	b.ops = append(b.ops, &c.op)
	return c
}

func (b *Batch) setLast(flag uint8, name string) {
	if len(b.ops) == 0 {
		if b.err == nil {
			b.err = argError("Batch."+name, errNoPrevious)
		}
		return
	}
	b.sqes[len(b.sqes)-1].Flags |= flag
}

// Link makes the operation queued last a predecessor of the next one: the
// next starts only once it has completed successfully, and is cancelled
// (ECANCELED) if it fails or completes short. Successive Links form a chain.
func (b *Batch) Link() { b.setLast(uring.SQEIOLink, "Link") }

// HardLink is Link, except that the next operation starts even if this one
// fails.
func (b *Batch) HardLink() { b.setLast(uring.SQEIOHardlink, "HardLink") }

// Drain makes the operation queued last wait until every operation
// submitted before it has completed, and delays those submitted after it
// until it has completed.
func (b *Batch) Drain() { b.setLast(uring.SQEIODrain, "Drain") }

// LinkTimeout limits the operation queued last to d: it is linked to a
// timeout, and cancelled (ECANCELED) if it has not completed after d. The
// returned Completion reports whether the timeout fired.
func (b *Batch) LinkTimeout(d time.Duration) *Completion[bool] {
	b.Link()
	return add(b, prepLinkTimeout(b.bools.next(), b.sqe(), d))
}

// Nop queues a Nop.
func (b *Batch) Nop() *Completion[struct{}] {
	return add(b, prepNop(b.none.next(), b.sqe()))
}

// Read queues a Read.
func (b *Batch) Read(fd int, p []byte) *Completion[int] {
	return add(b, prepRW(b.ints.next(), b.sqe(), uring.OpRead, fd, p, -1))
}

// Write queues a Write.
func (b *Batch) Write(fd int, p []byte) *Completion[int] {
	return add(b, prepRW(b.ints.next(), b.sqe(), uring.OpWrite, fd, p, -1))
}

// ReadAt queues a ReadAt.
func (b *Batch) ReadAt(fd int, p []byte, off int64) *Completion[int] {
	return add(b, prepRWAt(b.ints.next(), b.sqe(), uring.OpRead, fd, p, off))
}

// WriteAt queues a WriteAt.
func (b *Batch) WriteAt(fd int, p []byte, off int64) *Completion[int] {
	return add(b, prepRWAt(b.ints.next(), b.sqe(), uring.OpWrite, fd, p, off))
}

// ReadvAt queues a ReadvAt.
func (b *Batch) ReadvAt(fd int, bufs [][]byte, off int64) *Completion[int] {
	return add(b, prepRWV(b.ints.next(), b.sqe(), uring.OpReadv, fd, bufs, off))
}

// WritevAt queues a WritevAt.
func (b *Batch) WritevAt(fd int, bufs [][]byte, off int64) *Completion[int] {
	return add(b, prepRWV(b.ints.next(), b.sqe(), uring.OpWritev, fd, bufs, off))
}

// ReadFixedAt queues a ReadFixedAt.
func (b *Batch) ReadFixedAt(fd int, p []byte, off int64, index int) *Completion[int] {
	return add(b, prepRWFixed(b.ints.next(), b.sqe(), b.r, uring.OpReadFixed, fd, p, off, index))
}

// WriteFixedAt queues a WriteFixedAt.
func (b *Batch) WriteFixedAt(fd int, p []byte, off int64, index int) *Completion[int] {
	return add(b, prepRWFixed(b.ints.next(), b.sqe(), b.r, uring.OpWriteFixed, fd, p, off, index))
}

// Fsync queues an Fsync.
func (b *Batch) Fsync(fd int) *Completion[struct{}] {
	return add(b, prepFsync(b.none.next(), b.sqe(), fd, 0))
}

// Fdatasync queues an Fdatasync.
func (b *Batch) Fdatasync(fd int) *Completion[struct{}] {
	return add(b, prepFsync(b.none.next(), b.sqe(), fd, uring.FsyncDatasync))
}

// SyncFileRange queues a SyncFileRange.
func (b *Batch) SyncFileRange(fd int, off int64, n uint32, flags int) *Completion[struct{}] {
	return add(b, prepSyncFileRange(b.none.next(), b.sqe(), fd, off, n, flags))
}

// Fallocate queues a Fallocate.
func (b *Batch) Fallocate(fd int, mode uint32, off, length int64) *Completion[struct{}] {
	return add(b, prepFallocate(b.none.next(), b.sqe(), fd, mode, off, length))
}

// Ftruncate queues an Ftruncate.
func (b *Batch) Ftruncate(fd int, length int64) *Completion[struct{}] {
	return add(b, prepFtruncate(b.none.next(), b.sqe(), fd, length))
}

// Openat queues an Openat.
func (b *Batch) Openat(dirfd int, path string, flags int, mode uint32) *Completion[int] {
	return add(b, prepOpenat(b.ints.next(), b.sqe(), dirfd, path, flags, mode))
}

// CloseFd queues a CloseFd.
func (b *Batch) CloseFd(fd int) *Completion[struct{}] {
	return add(b, prepClose(b.none.next(), b.sqe(), fd))
}

// Statx queues a Statx.
func (b *Batch) Statx(dirfd int, path string, flags int, mask uint32, st *unix.Statx_t) *Completion[struct{}] {
	return add(b, prepStatx(b.none.next(), b.sqe(), dirfd, path, flags, mask, st))
}

// Renameat queues a Renameat.
func (b *Batch) Renameat(olddirfd int, oldpath string, newdirfd int, newpath string, flags int) *Completion[struct{}] {
	return add(b, prepRenameat(b.none.next(), b.sqe(), olddirfd, oldpath, newdirfd, newpath, flags))
}

// Unlinkat queues an Unlinkat.
func (b *Batch) Unlinkat(dirfd int, path string, flags int) *Completion[struct{}] {
	return add(b, prepUnlinkat(b.none.next(), b.sqe(), dirfd, path, flags))
}

// Mkdirat queues a Mkdirat.
func (b *Batch) Mkdirat(dirfd int, path string, mode uint32) *Completion[struct{}] {
	return add(b, prepMkdirat(b.none.next(), b.sqe(), dirfd, path, mode))
}

// Timeout queues a Timeout.
func (b *Batch) Timeout(d time.Duration) *Completion[struct{}] {
	return add(b, prepTimeout(b.none.next(), b.sqe(), d))
}

// Poll queues a Poll.
func (b *Batch) Poll(fd int, events uint32) *Completion[uint32] {
	return add(b, prepPoll(b.u32s.next(), b.sqe(), fd, events))
}

// slab hands out a Batch's Completions of one result type, 64 per chunk.
// It remembers the chunks it handed out from since the last Recycle (at
// most maxTracked; older ones are left to the garbage collector), so that
// Recycle can reuse them.
type slab[T any] struct {
	free  []Completion[T]   // the current chunk
	n     int               // how many of free are handed out
	used  [][]Completion[T] // handed out from since the last Recycle, current last
	spare [][]Completion[T] // recycled (zeroed but for the released state), for later chunks
}

// maxTracked bounds the chunks a slab remembers for Recycle: a Batch that
// is never recycled keeps at most this many (about 20 KB) alive.
const maxTracked = 4

func (s *slab[T]) next() *Completion[T] {
	if s.n == len(s.free) {
		s.grow()
	}
	s.n++
	c := &s.free[s.n-1]
	*c.state.raw() = stateNew // zero already, but for a recycled one's state
	return c
}

func (s *slab[T]) grow() {
	var chunk []Completion[T]
	if n := len(s.spare); n > 0 {
		chunk, s.spare = s.spare[n-1], s.spare[:n-1]
	} else {
		chunk = make([]Completion[T], 64)
	}
	if len(s.used) == maxTracked {
		// Forget the oldest: its Completions live on as plain heap
		// memory, and Recycle leaves them alone.
		copy(s.used, s.used[1:])
		s.used[len(s.used)-1] = nil
		s.used = s.used[:len(s.used)-1]
	}
	s.used = append(s.used, chunk)
	s.free, s.n = chunk, 0
}

// handedOut returns the chunks handed out from since the last Recycle,
// among those remembered, and how much of the last one was handed out.
func (s *slab[T]) handedOut() ([][]Completion[T], int) {
	if len(s.used) == 0 {
		return nil, 0
	}
	return s.used, s.n
}

// settled reports whether every Completion handed out is settled.
func (s *slab[T]) settled() bool {
	chunks, last := s.handedOut()
	for i, chunk := range chunks {
		if i == len(chunks)-1 {
			chunk = chunk[:last]
		}
		for j := range chunk {
			if chunk[j].state.Load() != stateSettled && !chunk[j].settle() {
				return false
			}
		}
	}
	return true
}

// recycle zeroes the Completions handed out, which drops their
// references, marks them released, and keeps their chunks for reuse.
func (s *slab[T]) recycle() {
	chunks, last := s.handedOut()
	for i, chunk := range chunks {
		if i == len(chunks)-1 {
			chunk = chunk[:last]
		}
		for j := range chunk {
			// Plain stores: the finisher's last touch (finish) happened
			// before settled's load, and the caller uses none of them
			// any more.
			c := &chunk[j]
			*c = Completion[T]{}
			*c.state.raw() = stateReleased
		}
	}
	s.spare = append(s.spare, s.used...)
	clear(s.used)
	s.used, s.free, s.n = s.used[:0], nil, 0
}

var errNoPrevious = fmt.Errorf("no operation queued before it: %w", syscall.EINVAL)

// Submit submits every queued operation with one io_uring_enter, in order
// and contiguously, and empties the Batch for reuse. If the ring has fewer
// free slots than the Batch has operations, the Batch waits in the ring's
// queue as one submission and Submit returns nil at once; its operations
// are pending meanwhile. Cancelling any of them (Cancel, WaitContext, or
// CancelFd on one's descriptor) before they are submitted withdraws the
// whole Batch: every operation completes with ECANCELED.
//
// Submit is all or nothing: if it returns an error, no operation was
// submitted, and each one's Wait returns the error. That happens when the
// ring is closed (ErrClosed), when an operation is unsupported (matching
// ErrNotSupported) or has a bad argument, when the last operation is linked
// to nothing, when the Batch is larger than the submission queue or than
// the ring's capacity, and when the ring's queue is at its limit
// (ErrRingFull).
func (b *Batch) Submit() error {
	ops, sqes, err := b.ops, b.sqes, b.err
	defer b.reset()
	r := b.r
	if err == nil && !r.usable() {
		err = errBadRing
	}
	if len(ops) == 0 {
		return err
	}
	if err == nil {
		err = r.checkBatch(ops, sqes)
	}
	if err != nil {
		failAll(ops, err)
		return err
	}

	// Take every slot at once, so that two batches can never each hold
	// part of what the other needs. If they are not free, the Batch waits
	// in the queue as one submission.
	idx, err := r.acquire(b.idx[:0], len(ops), false, ops, sqes)
	b.idx = idx
	if err == errQueued {
		return nil
	}
	if err != nil {
		failAll(ops, err)
		return err
	}

	var now int64
	r.table.claimAll(idx, ops, &now)
	r.mu.Lock()
	if !r.publishLocked(ops, sqes, false) {
		r.mu.Unlock()
		r.unsubmit(idx, ops, true)
		return r.closedErr()
	}
	r.flushLocked(true)
	return nil
}

func (r *Ring) checkBatch(ops []*op, sqes []uring.SQE) error {
	for _, o := range ops {
		if r.plainOp(o) {
			continue
		}
		if err := r.checkOp(o); err != nil {
			return err
		}
	}
	if sqes[len(sqes)-1].Flags&(uring.SQEIOLink|uring.SQEIOHardlink) != 0 {
		return argError("Batch.Submit", fmt.Errorf("the last operation is linked to nothing: %w", syscall.EINVAL))
	}
	if n := len(ops); n > int(r.rings.SQEntries) || n > r.table.nuser {
		return argError("Batch.Submit", fmt.Errorf("%d operations exceed the submission queue (%d) or the ring's capacity (%d): %w",
			n, r.rings.SQEntries, r.table.nuser, syscall.EINVAL))
	}
	return nil
}

func failAll(ops []*op, err error) {
	for _, o := range ops {
		if perr := o.prepErr(); perr != nil && !errors.Is(err, perr) {
			o.fail(perr)
		} else {
			o.fail(err)
		}
	}
}

// reset empties the batch, keeping its storage.
func (b *Batch) reset() {
	clear(b.ops)
	b.ops, b.sqes, b.err = b.ops[:0], b.sqes[:0], nil
}

// errRecycleQueued and errRecyclePending are Recycle's refusals.
var (
	errRecycleQueued  = fmt.Errorf("rio: Batch.Recycle: operations queued and not submitted: %w", syscall.EBUSY)
	errRecyclePending = fmt.Errorf("rio: Batch.Recycle: an operation has not completed: %w", syscall.EBUSY)
)

// Recycle lets the Batch reuse the memory of the Completions it returned
// since NewBatch or the previous Recycle, so that the operations queued
// after it allocate nothing. It is optional: a Batch never recycled
// allocates its Completions as described above.
//
// Recycle requires every one of those operations to have completed; if
// one has not (it is in flight, or was queued and not submitted), Recycle
// returns an error matching syscall.EBUSY and recycles nothing, so the
// kernel never writes memory that has been reused. The caller must be done
// with those Completions: every Wait, WaitContext and Done on them
// returned, and no other goroutine, Collector key or data structure will
// use them again. From Recycle on, they must not be used: until the Batch
// reuses one, Wait on it returns an error matching syscall.EINVAL and Done
// reports true; once reused, it is the new operation's Completion, and a
// stale Wait waits for that operation and returns its result, which
// Recycle cannot detect.
//
// The Batch remembers the Completions of its last 256 operations of each
// result type for Recycle; older ones are left to the garbage collector.
// A Batch of a nil or zero Ring returns an error matching syscall.EINVAL.
func (b *Batch) Recycle() error {
	if !b.r.usable() {
		return errBadRing
	}
	if len(b.ops) > 0 {
		return errRecycleQueued
	}
	if !b.none.settled() || !b.ints.settled() || !b.u32s.settled() || !b.bools.settled() {
		return errRecyclePending
	}
	b.none.recycle()
	b.ints.recycle()
	b.u32s.recycle()
	b.bools.recycle()
	return nil
}

// Cap returns the most operations one Submit accepts: the smaller of the
// submission queue's size and the number of operations the ring keeps in
// flight. A caller with more independent operations submits them in
// groups of Cap. A Batch of a nil or zero Ring has no capacity.
func (b *Batch) Cap() int {
	if !b.r.usable() {
		return 0
	}
	return min(int(b.r.rings.SQEntries), b.r.table.nuser)
}
