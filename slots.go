package rio

import (
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
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
type slotTable struct {
	slots []slot

	mu      sync.Mutex
	cond    sync.Cond // signalled when slots are released or the ring closes
	user    []uint32  // free user slots, a stack
	sys     []uint32  // free internal slots
	nuser   int       // user slots in all
	waiters int       // goroutines blocked in acquire
}

type slot struct {
	op     atomic.Pointer[op]
	gen    uint32
	pinned bool
	start  int64 // submission time, if sampled for the latency histogram
	pin    runtime.Pinner
}

func (t *slotTable) init(n, reserve uint32) {
	t.slots = make([]slot, n)
	t.cond.L = &t.mu
	t.nuser = int(n - reserve)
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

// acquire appends n free slots to dst, blocking (parked) while fewer are
// free. User operations fail with ErrClosed once the ring is closing;
// internal ones keep waiting, since slots free as completions are reaped.
func (r *Ring) acquire(dst []uint32, n int, internal bool) ([]uint32, error) {
	t := &r.table
	armed := false
	t.mu.Lock()
	for {
		free := &t.user
		if internal {
			free = &t.sys
		}
		if k := len(*free); k >= n {
			dst = append(dst, (*free)[k-n:]...)
			*free = (*free)[:k-n]
			t.mu.Unlock()
			r.inflight.Add(int64(n))
			if armed {
				r.disarm()
			}
			return dst, nil
		}
		if (!internal && r.closedA.Load()) || r.deadA.Load() {
			t.mu.Unlock()
			if armed {
				r.disarm()
			}
			return dst, ErrClosed
		}
		if !armed {
			// Slots free only as completions are reaped: make sure the
			// reaper is woken for them, then look again.
			t.mu.Unlock()
			if !r.arm() {
				return dst, ErrClosed
			}
			armed = true
			t.mu.Lock()
			continue
		}
		t.waiters++
		t.cond.Wait()
		t.waiters--
	}
}

// release returns slots to the free lists.
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
	if t.waiters > 0 {
		t.cond.Broadcast()
	}
	t.mu.Unlock()
	if r.inflight.Add(-int64(len(idx))) == 0 && r.closedA.Load() {
		select {
		case r.idle <- struct{}{}:
		default:
		}
	}
}

// wakeAcquirers wakes goroutines blocked in acquire, for Close.
func (r *Ring) wakeAcquirers() {
	r.table.mu.Lock()
	r.table.cond.Broadcast()
	r.table.mu.Unlock()
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
