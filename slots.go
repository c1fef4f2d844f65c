package rio

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gorio/rio/internal/uring"
)

// The in-flight table, and the invariant everything else rests on: every
// submitted operation occupies one slot from the moment its SQE may be
// seen by the kernel until its CQE is reaped. The slot's index and
// generation form the SQE's user_data. The slot references the op, and
// through it every piece of memory the kernel may touch, and pins that
// memory; so the memory stays reachable and unmoved for the kernel whether
// or not anybody still holds the Completion.
//
// There is one slot per CQ entry, so the completions of all operations in
// flight always fit in the CQ. An eighth of the slots (at least one, at
// most 64) is kept for internal operations (cancellations), so that a
// cancellation can be submitted even when user operations fill the ring.
//
// An operation that finds no free slot does not block its submitter: it
// waits in a queue, in submission order, and is submitted when slots free
// (see Ring.pump). Its Completion or Stream is pending meanwhile, so
// whatever ends a wait for a result (a context, Cancel, Close) also ends
// its wait for a slot, and a cancellation withdraws it from the queue
// without reaching the kernel. Internal operations have a queue of their
// own, for the reserved slots, so they never wait behind user operations;
// nothing ever blocks in acquire.
//
// Only the methods below touch the table's fields. The ring calls claim
// before it publishes an SQE, unclaim if it takes the SQE back unsubmitted,
// and vacate when it reaps the CQE; release returns the slots afterwards.
type slotTable struct {
	slots []slot
	epoch time.Time // the origin of the latency samples' clock

	// closing: the ring is closing, and wants a token in idle when the
	// last slot in use is released.
	closing atomic.Bool
	idle    chan struct{}
	// hasReady: popped submissions have their slots and wait in ready for
	// the ring's pump.
	hasReady atomic.Bool

	mu       sync.Mutex
	inflight int      // slots in use
	user     []uint32 // free user slots, a stack
	// fresh user slots, nuser-fresh to nuser-1, have never been used and
	// are not in user yet: user is filled from them as it runs short
	// (refill), so that a ring of 65,536 slots does not write a 256 KiB
	// free list at creation (resident memory, docs/net.md "RSS").
	fresh int
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
	t.epoch = time.Now()
	t.idle = make(chan struct{}, 1)
	t.nuser = int(n - reserve)
	t.limit = limit
	t.user = make([]uint32, 0, t.nuser)
	t.fresh = t.nuser
	t.sys = make([]uint32, 0, reserve)
	for i := int(n) - 1; i >= t.nuser; i-- {
		t.sys = append(t.sys, uint32(i))
	}
}

// refillGrain is how many fresh slots refill moves to the free list at
// least: a few pages of it at a time.
const refillGrain = 256

// refill makes the free user list hold at least n slots if there are that
// many free, from the fresh ones, lowest index on top. Called with mu
// held.
func (t *slotTable) refill(n int) {
	if len(t.user) >= n || t.fresh == 0 {
		return
	}
	k := min(t.fresh, max(n-len(t.user), refillGrain))
	first := t.nuser - t.fresh // the lowest fresh index
	for i := first + k - 1; i >= first; i-- {
		t.user = append(t.user, uint32(i))
	}
	t.fresh -= k
}

// freeUser is the number of free user slots. Called with mu held.
func (t *slotTable) freeUser() int { return len(t.user) + t.fresh }

// now returns the time since the table was made, never 0.
func (t *slotTable) now() int64 { return int64(time.Since(t.epoch)) | 1 }

// acquire appends n free slots to dst: user slots, or the reserved ones
// for internal operations (cancellations). It never blocks: it reports
// false if the slots are not free or others already wait for them, and the
// caller queues the submission (see enqueue).
func (t *slotTable) acquire(dst []uint32, n int, internal bool) ([]uint32, bool) {
	t.mu.Lock()
	free := t.freeLocked(n, internal)
	if free == nil {
		t.mu.Unlock()
		return dst, false
	}
	k := len(*free)
	dst = append(dst, (*free)[k-n:]...)
	*free = (*free)[:k-n]
	t.inflight += n
	t.mu.Unlock()
	return dst, true
}

// acquire1 is acquire for one slot, without a slice.
func (t *slotTable) acquire1(internal bool) (uint32, bool) {
	t.mu.Lock()
	if k := len(t.user) - 1; !internal && k >= 0 && len(t.queue) == 0 {
		// freeLocked's answer for a user op when the list has a slot
		idx := t.user[k]
		t.user = t.user[:k]
		t.inflight++
		t.mu.Unlock()
		return idx, true
	}
	free := t.freeLocked(1, internal)
	if free == nil {
		t.mu.Unlock()
		return 0, false
	}
	k := len(*free) - 1
	idx := (*free)[k]
	*free = (*free)[:k]
	t.inflight++
	t.mu.Unlock()
	return idx, true
}

// freeLocked returns the free list that n slots for a user (or internal)
// operation come from, or nil if it has fewer or others wait for it.
func (t *slotTable) freeLocked(n int, internal bool) *[]uint32 {
	free, queue := &t.user, t.queue
	if internal {
		free, queue = &t.sys, t.squeue
	} else if len(t.user) < n && t.fresh > 0 {
		t.refill(n)
	}
	if len(*free) < n || len(queue) > 0 {
		return nil
	}
	return free
}

// newQueued makes the queued submission of ops and their SQEs, which it
// copies.
func newQueued(internal bool, ops []*op, sqes []uring.SQE) *queued {
	q := &queued{sys: internal}
	if len(ops) == 1 {
		q.one[0], q.oneSQE[0] = ops[0], sqes[0]
		q.ops, q.sqes = q.one[:], q.oneSQE[:]
	} else {
		q.ops, q.sqes = slices.Clone(ops), slices.Clone(sqes)
	}
	return q
}

// enqueue appends q to its queue, unless refuse (checked under the lock)
// says the ring no longer takes it or the queue is at its limit, and pops
// what fits. It reports whether ready has submissions for the pump.
func (t *slotTable) enqueue(q *queued, refuse func() error) (pump bool, err error) {
	n := len(q.ops)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := refuse(); err != nil {
		return false, err
	}
	if !q.sys && t.limit >= 0 && t.nqueue+n > t.limit {
		return false, fmt.Errorf("%w: %d operations in flight, %d waiting, queue limit %d", ErrRingFull, t.nuser-t.freeUser(), t.nqueue, t.limit)
	}
	for _, o := range q.ops {
		o.extra().q = q
		o.submitted()
	}
	if q.sys {
		t.squeue = append(t.squeue, q)
	} else {
		t.queue = append(t.queue, q)
		t.nqueue += n
	}
	t.popLocked()
	return len(t.ready) > 0, nil
}

// popLocked moves the queues' head submissions that now fit into the free
// slots to ready, with their slots. Called with t.mu held after slots are
// freed or a queued submission left: the queue is never left waiting
// behind slots it could use.
func (t *slotTable) popLocked() {
	t.squeue = t.popFrom(t.squeue, &t.sys)
	t.queue = t.popFrom(t.queue, &t.user)
}

// popFrom pops the head submissions of queue that fit into free to ready,
// and returns what is left of queue.
func (t *slotTable) popFrom(queue []*queued, free *[]uint32) []*queued {
	for len(queue) > 0 {
		q := queue[0]
		if free == &t.user && len(t.user) < len(q.ops) && t.fresh > 0 {
			t.refill(len(q.ops))
		}
		n, k := len(q.ops), len(*free)
		if k < n {
			break
		}
		q.idx = append(q.idx[:0], (*free)[k-n:]...)
		*free = (*free)[:k-n]
		t.inflight += n
		q.state = qPopped
		queue[0] = nil
		queue = queue[1:]
		if !q.sys {
			t.nqueue -= n
		}
		t.ready = append(t.ready, q)
		t.hasReady.Store(true)
	}
	return queue
}

// takeReady returns the popped submissions, those withdrawn meanwhile
// apart (marked submitted, for the caller to release and complete), or
// nil if there are none left.
func (t *slotTable) takeReady() (live, dropped []*queued) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.ready) == 0 {
		t.hasReady.Store(false)
		return nil, nil
	}
	qs := t.ready
	t.ready = nil
	live = qs[:0]
	for _, q := range qs {
		if q.cancel {
			q.state = qSubmitted
			dropped = append(dropped, q)
		} else {
			live = append(live, q)
		}
	}
	return live, dropped
}

// submitted marks popped submissions published, and returns the
// operations of those a cancellation reached meanwhile.
func (t *slotTable) submitted(qs []*queued) (cancel []*op) {
	t.mu.Lock()
	for _, q := range qs {
		q.state = qSubmitted
		if q.cancel {
			cancel = append(cancel, q.ops...)
		}
	}
	t.mu.Unlock()
	return cancel
}

// withdraw takes q out of its queue if it is still waiting there. It
// reports whether the caller completes q's operations with ECANCELED
// (false: q is published, and the caller cancels it through the kernel,
// or q was failed by Close meanwhile), whether q was in the queue (and the
// caller drops the arming it held), and whether ready now has
// submissions for the pump.
func (t *slotTable) withdraw(q *queued) (withdrawn, wasQueued, pump bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch q.state {
	case qSubmitted:
		return false, false, false
	case qPopped:
		q.cancel = true // pump fails it, or cancels it once published
		return true, false, false
	}
	queue := &t.queue
	if q.sys {
		queue = &t.squeue
	}
	i := slices.Index(*queue, q)
	if i < 0 {
		return true, false, false // failed by Close meanwhile
	}
	*queue = slices.Delete(*queue, i, i+1)
	if !q.sys {
		t.nqueue -= len(q.ops)
	}
	q.state = qSubmitted
	t.popLocked()
	return true, true, len(t.ready) > 0
}

// queuedOnFd returns the user submissions waiting in the queue that have
// an operation on fd (FixedFile(i) for a registered file).
func (t *slotTable) queuedOnFd(fd int) []*queued {
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
	return hit
}

// takeQueue empties the user queue (and with sys, the internal one too),
// marking its submissions submitted, and returns them for the caller to
// fail. Popped ones are failed by pump, which sees the ring closed.
func (t *slotTable) takeQueue(sys bool) []*queued {
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
	return qs
}

// inFlight returns the number of slots in use.
func (t *slotTable) inFlight() int {
	t.mu.Lock()
	n := t.inflight
	t.mu.Unlock()
	return n
}

// queuedOps returns the number of operations waiting for a slot.
func (t *slotTable) queuedOps() int {
	t.mu.Lock()
	n := t.nqueue
	t.mu.Unlock()
	return n
}

// release returns slots to the free lists, and moves queued submissions
// that now fit to ready (the caller, or reap after it, pumps them).
func (t *slotTable) release(idx ...uint32) {
	t.mu.Lock()
	for _, i := range idx {
		if int(i) < t.nuser {
			t.user = append(t.user, i)
		} else {
			t.sys = append(t.sys, i)
		}
	}
	t.inflight -= len(idx)
	if len(t.queue) > 0 || len(t.squeue) > 0 {
		t.popLocked()
	}
	idle := t.inflight == 0
	t.mu.Unlock()
	if idle && t.closing.Load() {
		select {
		case t.idle <- struct{}{}:
		default:
		}
	}
}

// sampleMask selects the operations whose latency Stats records: one use
// of a slot in 16. Reading the clock twice per operation would cost more
// than a NOP's round trip through the ring; at one in 8, the clock reads
// were 3% of the CPU time of NOPs issued one by one.
const sampleMask = 15

// claim puts o into slot idx: from here on, the in-flight table keeps its
// memory reachable and pinned until vacate or unclaim. now caches the time
// for the latency histogram.
func (t *slotTable) claim(idx uint32, o *op, now *int64) {
	s := &t.slots[idx]
	s.gen++
	o.userData = uint64(idx) | uint64(s.gen)<<32
	s.start = 0
	if s.gen&sampleMask == 0 {
		if *now == 0 {
			*now = t.now()
		}
		s.start = *now
	}
	if o.bufp != nil || o.obj != nil || o.x != nil {
		s.pinOp(o)
	}
	if o.state.Load() == stateNew {
		// Not for a queued op: it is pending already, and may be waited.
		o.submitted()
	}
	raceSubmit(o)
	s.op.Store(o)
}

// claimAll is claim for ops[i] into slot idx[i], every i.
func (t *slotTable) claimAll(idx []uint32, ops []*op, now *int64) {
	for i, o := range ops {
		t.claim(idx[i], o, now)
	}
}

// pinOp pins the memory of o that the kernel may touch.
func (s *slot) pinOp(o *op) {
	if o.bufp != nil {
		s.pin.Pin(o.bufp)
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
}

// lookup returns the op in the slot that user_data ud names, or nil if the
// slot is empty or holds a later use.
func (t *slotTable) lookup(ud uint64) (*op, uint32) {
	idx := uint32(ud)
	if idx >= uint32(len(t.slots)) {
		return nil, 0
	}
	if o := t.slots[idx].op.Load(); o != nil && o.userData == ud {
		return o, idx
	}
	return nil, 0
}

// vacateCommon is lookup and vacate in one, for the common op: one
// without a hook, nothing pinned, its latency not sampled. It returns
// nil, leaving the slot alone, for any other (and for an unknown ud); the
// caller then takes the general path.
func (t *slotTable) vacateCommon(ud uint64) *op {
	idx := uint32(ud)
	if raceEnabled || idx >= uint32(len(t.slots)) {
		return nil
	}
	s := &t.slots[idx]
	o := s.op.Load()
	if o == nil || o.userData != ud || o.stream || o.x != nil || s.pinned || s.start != 0 {
		return nil
	}
	s.op.Store(nil)
	return o
}

// unclaim empties slot idx, whose SQE the kernel never saw, and returns its
// op; the caller releases the slot.
func (t *slotTable) unclaim(idx uint32) *op {
	o, _ := t.vacate(idx)
	return o
}

// vacate empties slot idx, returning its op and, if the slot's use was
// sampled, its submission time; the caller releases the slot. After it,
// the table no longer keeps the op's memory pinned.
func (t *slotTable) vacate(idx uint32) (*op, int64) {
	s := &t.slots[idx]
	o := s.op.Swap(nil)
	if s.pinned {
		s.pin.Unpin()
		s.pinned = false
	}
	if o != nil {
		raceComplete(o)
	}
	return o, s.start
}

// each calls f for every op in flight.
func (t *slotTable) each(f func(*op)) {
	for i := range t.slots {
		if o := t.slots[i].op.Load(); o != nil {
			f(o)
		}
	}
}
