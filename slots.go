package rio

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/gorio/rio/internal/uring"
)

// The in-flight table. Every submitted operation occupies one slot from
// submission until its CQE is reaped; the slot's index and generation form
// the SQE's user_data. The slot references the op, and through it every
// piece of memory the kernel may touch, and pins that memory.
//
// There is one slot per CQ entry, so the completions of all operations in
// flight always fit in the CQ. An eighth of the slots (at least one) is
// kept for internal operations (cancellations), so that a cancellation can
// be submitted even when user operations fill the ring.
//
// An operation that finds no free slot does not block its submitter: it
// waits in a queue, in submission order, and is submitted when slots free
// (see pump). Its Completion or Stream is pending meanwhile, so whatever
// ends a wait for a result (a context, Cancel, Close) also ends its wait
// for a slot, and a cancellation withdraws it from the queue without
// reaching the kernel. Internal operations have a queue of their own, for
// the reserved slots, so they never wait behind user operations; nothing
// ever blocks in acquire (the reaper itself submits what it lets through).
type slotTable struct {
	slots []slot

	mu    sync.Mutex
	user  []uint32 // free user slots, a stack
	sys   []uint32 // free internal slots
	nuser int      // user slots in all

	queue  []*queued // user submissions waiting for slots, oldest first
	squeue []*queued // internal ones
	nqueue int       // operations in queue
	limit  int       // most operations queue may hold; -1: no limit
	ready  []*queued // popped from a queue with their slots, for pump to submit
}

// queued is a submission waiting for slots: one operation, or the
// operations of a Batch, which are submitted together.
type queued struct {
	ops   []*op
	sqes  []uring.SQE
	idx   []uint32 // the slots, once popped
	state uint8    // qWaiting, qPopped, qSubmitted
	sys   bool     // an internal operation, for the reserved slots
	// cancel: a cancellation arrived while pump was submitting; pump
	// fails the operations, or cancels them once they are published.
	cancel bool
	one    [1]*op
	oneSQE [1]uring.SQE
}

const (
	qWaiting   = iota // in the queue
	qPopped           // has its slots; pump is submitting it
	qSubmitted        // published: a cancellation goes to the kernel
)

type slot struct {
	op     atomic.Pointer[op]
	gen    uint32
	pinned bool
	start  int64 // submission time, if sampled for the latency histogram
	pin    runtime.Pinner
}

func (t *slotTable) init(n, reserve uint32, limit int) {
	t.slots = make([]slot, n)
	t.nuser = int(n - reserve)
	t.limit = limit
	t.user = make([]uint32, 0, t.nuser)
	t.sys = make([]uint32, 0, reserve)
	for i := int(n) - 1; i >= 0; i-- {
		if i < t.nuser {
			t.user = append(t.user, uint32(i))
		} else {
			t.sys = append(t.sys, uint32(i))
		}
	}
}

// errQueued says that acquire queued the submission: its operations are
// pending and pump will submit them.
var errQueued = errors.New("rio: queued")

// acquire appends n free slots to dst: user slots, or the reserved ones
// for internal operations (cancellations). It never blocks. If the slots
// are not free, or others already wait for them, it queues the submission
// (ops and their SQEs, copied) and returns errQueued; on a closed ring, or
// past the queue limit, it fails with ErrClosed or ErrRingFull.
func (r *Ring) acquire(dst []uint32, n int, internal bool, ops []*op, sqes []uring.SQE) ([]uint32, error) {
	t := &r.table
	t.mu.Lock()
	free, queue := &t.user, t.queue
	if internal {
		free, queue = &t.sys, t.squeue
	}
	if k := len(*free); k >= n && len(queue) == 0 {
		dst = append(dst, (*free)[k-n:]...)
		*free = (*free)[:k-n]
		t.mu.Unlock()
		r.inflight.Add(int64(n))
		return dst, nil
	}
	t.mu.Unlock()
	return dst, r.enqueue(n, internal, ops, sqes)
}

// enqueue queues a submission that found no free slots. The queue holds
// the ring armed (the reaper must free slots for it) while the submission
// waits; arming comes first, since arm reaps, and reaping may free the
// slots, in which case the submission goes ahead at once.
func (r *Ring) enqueue(n int, internal bool, ops []*op, sqes []uring.SQE) error {
	t := &r.table
	if !internal && r.closedA.Load() {
		return r.closedErr()
	}
	if !r.arm() {
		return r.closedErr()
	}
	q := &queued{sys: internal}
	if len(ops) == 1 {
		q.one[0], q.oneSQE[0] = ops[0], sqes[0]
		q.ops, q.sqes = q.one[:], q.oneSQE[:]
	} else {
		q.ops, q.sqes = slices.Clone(ops), slices.Clone(sqes)
	}
	t.mu.Lock()
	if r.deadA.Load() || (!internal && r.closedA.Load()) {
		t.mu.Unlock()
		r.disarm()
		return r.closedErr()
	}
	if !internal && t.limit >= 0 && t.nqueue+n > t.limit {
		inUse, waiting := t.nuser-len(t.user), t.nqueue
		t.mu.Unlock()
		r.disarm()
		return fmt.Errorf("%w: %d operations in flight, %d waiting, queue limit %d", ErrRingFull, inUse, waiting, t.limit)
	}
	for _, o := range ops {
		o.extra().q = q
		o.state.Store(statePending)
	}
	if internal {
		t.squeue = append(t.squeue, q)
	} else {
		t.queue = append(t.queue, q)
		t.nqueue += n
	}
	r.popLocked()
	pump := len(t.ready) > 0
	t.mu.Unlock()
	if pump {
		r.pump()
	}
	return errQueued
}

// popLocked moves the queue's head submissions that now fit into the free
// user slots to ready, with their slots. Called with t.mu held after slots
// are freed or a queued submission left: the queue is never left waiting
// behind slots it could use.
func (r *Ring) popLocked() {
	t := &r.table
	t.squeue = r.popFrom(t.squeue, &t.sys)
	t.queue = r.popFrom(t.queue, &t.user)
}

// popFrom pops the head submissions of queue that fit into free to ready,
// and returns what is left of queue.
func (r *Ring) popFrom(queue []*queued, free *[]uint32) []*queued {
	t := &r.table
	for len(queue) > 0 {
		q := queue[0]
		n, k := len(q.ops), len(*free)
		if k < n {
			break
		}
		q.idx = append(q.idx[:0], (*free)[k-n:]...)
		*free = (*free)[:k-n]
		r.inflight.Add(int64(n))
		q.state = qPopped
		queue[0] = nil
		queue = queue[1:]
		if !q.sys {
			t.nqueue -= n
		}
		t.ready = append(t.ready, q)
		r.queuedReady.Store(true)
	}
	return queue
}

// pump submits the queued submissions that have their slots. It is called
// after slots are freed, outside the CQ lock and mu (reap, flushLocked),
// and by whoever made the queue move. One goroutine pumps at a time; one
// that finds another pumping leaves the work to it, which looks again
// after it stops.
func (r *Ring) pump() {
	for r.queuedReady.Load() {
		if !r.pumpMu.TryLock() {
			return
		}
		r.pumpLocked()
		r.pumpMu.Unlock()
	}
}

func (r *Ring) pumpLocked() {
	t := &r.table
	for {
		t.mu.Lock()
		if len(t.ready) == 0 {
			r.queuedReady.Store(false)
			t.mu.Unlock()
			return
		}
		qs := t.ready
		t.ready = nil
		t.mu.Unlock()
		r.submitQueued(qs)
	}
}

// submitQueued publishes popped submissions and enters them, with one
// io_uring_enter for all of them if the SQ holds them.
func (r *Ring) submitQueued(qs []*queued) {
	t := &r.table
	var now int64
	// Those withdrawn while they waited for pump were never submitted.
	t.mu.Lock()
	live := qs[:0]
	var dropped []*queued
	for _, q := range qs {
		if q.cancel {
			q.state = qSubmitted
			dropped = append(dropped, q)
		} else {
			live = append(live, q)
		}
	}
	t.mu.Unlock()
	for _, q := range dropped {
		r.release(q.idx...)
		withdrawAll(q.ops)
		r.disarm()
	}
	if len(live) == 0 {
		return
	}
	for _, q := range live {
		for i, o := range q.ops {
			r.claim(q.idx[i], o, &now)
			q.sqes[i].UserData = o.userData
		}
	}
	var refused []*queued
	n := 0
	r.mu.Lock()
	for _, q := range live {
		if r.refusesLocked(q.sys) {
			refused = append(refused, q)
			continue
		}
		r.waitSQSpace(uint32(len(q.ops)))
		for i, o := range q.ops {
			r.rings.SQEs[r.sqTail&r.rings.SQMask] = q.sqes[i]
			r.sqTail++
			r.heavy = r.heavy || heavyOp(o)
		}
		// Publish each submission whole: waitSQSpace may enter.
		uring.StoreRelease(r.rings.SQTail, r.sqTail)
		n += len(q.ops)
	}
	if n > 0 {
		r.stats.submitted.Add(uint64(n))
		r.flushLocked(false)
	} else {
		r.mu.Unlock()
	}
	for _, q := range refused {
		for _, i := range q.idx {
			r.unclaim(i)
		}
		r.release(q.idx...)
		for _, o := range q.ops {
			failQueued(o, r.closedErr())
		}
	}
	var cancel []*op
	t.mu.Lock()
	for _, q := range live {
		q.state = qSubmitted
		if q.cancel {
			cancel = append(cancel, q.ops...)
		}
	}
	t.mu.Unlock()
	for range live {
		r.disarm()
	}
	for _, o := range cancel {
		r.cancelOp(o) // never blocks: at worst it is queued
	}
}

// withdraw takes o's queued submission out of the queue, if it is still
// waiting there, and completes its operations with ECANCELED, as the
// kernel would have. It reports false if the submission is already
// published, in which case the caller cancels it through the kernel.
func (r *Ring) withdraw(q *queued) bool {
	t := &r.table
	t.mu.Lock()
	switch q.state {
	case qSubmitted:
		t.mu.Unlock()
		return false
	case qPopped:
		q.cancel = true // pump fails it, or cancels it once published
		t.mu.Unlock()
		return true
	}
	queue := &t.queue
	if q.sys {
		queue = &t.squeue
	}
	i := slices.Index(*queue, q)
	if i < 0 {
		t.mu.Unlock()
		return true // failed by Close meanwhile
	}
	*queue = slices.Delete(*queue, i, i+1)
	if !q.sys {
		t.nqueue -= len(q.ops)
	}
	q.state = qSubmitted
	r.popLocked()
	pump := len(t.ready) > 0
	t.mu.Unlock()
	withdrawAll(q.ops)
	r.disarm()
	if pump {
		r.pump()
	}
	return true
}

// withdrawQueuedFd withdraws every queued submission that has an operation
// on fd (FixedFile(i) for a registered file), for CancelFd. It returns how
// many operations it withdrew.
func (r *Ring) withdrawQueuedFd(fd int) int {
	t := &r.table
	var s uring.SQE
	setFd(&s, fd)
	fixed := s.Flags & uring.SQEFixedFile
	var hit []*queued
	t.mu.Lock()
	for _, q := range t.queue {
		for i := range q.sqes {
			if q.sqes[i].Fd == s.Fd && q.sqes[i].Flags&uring.SQEFixedFile == fixed && q.ops[i].opcode != uring.OpAsyncCancel {
				hit = append(hit, q)
				break
			}
		}
	}
	t.mu.Unlock()
	n := 0
	for _, q := range hit {
		if r.withdraw(q) {
			n += len(q.ops)
		}
	}
	return n
}

// failQueue fails every user submission still waiting in the queue (and
// with sys, the internal ones too) with err, for Close. Popped ones are
// failed by pump, which sees the ring closed.
func (r *Ring) failQueue(err error, sys bool) {
	t := &r.table
	t.mu.Lock()
	qs := t.queue
	t.queue, t.nqueue = nil, 0
	if sys {
		qs = append(qs, t.squeue...)
		t.squeue = nil
	}
	for _, q := range qs {
		q.state = qSubmitted
	}
	t.mu.Unlock()
	for _, q := range qs {
		for _, o := range q.ops {
			failQueued(o, err)
		}
		r.disarm()
	}
}

// withdrawAll completes operations taken out of the queue with ECANCELED.
func withdrawAll(ops []*op) {
	for _, o := range ops {
		o.finishRes(-int32(syscall.ECANCELED), 0)
	}
}

// failQueued fails an operation that waited in the queue and will never be
// submitted.
func failQueued(o *op, err error) {
	if o.stream {
		s := streamOf(o)
		s.failed()
		o.fail(err)
		s.wake()
		return
	}
	o.fail(err)
}

// queuedOps returns the number of operations waiting for a slot.
func (r *Ring) queuedOps() int {
	r.table.mu.Lock()
	n := r.table.nqueue
	r.table.mu.Unlock()
	return n
}

// release returns slots to the free lists, and moves queued submissions
// that now fit to ready (the caller, or reap after it, pumps them).
func (r *Ring) release(idx ...uint32) {
	t := &r.table
	t.mu.Lock()
	for _, i := range idx {
		if int(i) < t.nuser {
			t.user = append(t.user, i)
		} else {
			t.sys = append(t.sys, i)
		}
	}
	if len(t.queue) > 0 || len(t.squeue) > 0 {
		r.popLocked()
	}
	t.mu.Unlock()
	if r.inflight.Add(-int64(len(idx))) == 0 && r.closedA.Load() {
		select {
		case r.idle <- struct{}{}:
		default:
		}
	}
}

// sampleMask selects the operations whose latency Stats records: one use
// of a slot in 8. Reading the clock twice per operation would cost more
// than a NOP's round trip through the ring.
const sampleMask = 7

// claim puts o into slot idx: from here on, the in-flight table keeps its
// memory reachable and pinned until its CQE is reaped. now caches the time
// for the latency histogram.
func (r *Ring) claim(idx uint32, o *op, now *int64) {
	s := &r.table.slots[idx]
	s.gen++
	o.userData = uint64(idx) | uint64(s.gen)<<32
	s.start = 0
	if s.gen&sampleMask == 0 {
		if *now == 0 {
			*now = r.now()
		}
		s.start = *now
	}
	if len(o.buf) > 0 {
		s.pin.Pin(unsafe.SliceData(o.buf))
		s.pinned = true
	}
	if o.obj != nil {
		s.pin.Pin(o.obj)
		s.pinned = true
	}
	if x := o.x; x != nil {
		for _, b := range x.bufs {
			if len(b) > 0 {
				s.pin.Pin(unsafe.SliceData(b))
				s.pinned = true
			}
		}
		if x.obj2 != nil {
			s.pin.Pin(x.obj2)
			s.pinned = true
		}
	}
	o.state.Store(statePending)
	raceSubmit(o)
	s.op.Store(o)
}

// unclaim empties slot idx, returning its op; the caller releases the slot.
func (r *Ring) unclaim(idx uint32) *op {
	s := &r.table.slots[idx]
	o := s.op.Swap(nil)
	if s.pinned {
		s.pin.Unpin()
		s.pinned = false
	}
	if o != nil {
		raceComplete(o)
	}
	return o
}
