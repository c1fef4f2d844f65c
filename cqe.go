package rio

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/gorio/rio/internal/shortcall"
	"github.com/gorio/rio/internal/uring"
)

// reaper drains the CQ whenever the kernel signals the eventfd. It never
// reads the eventfd's counter: the runtime's poller registers fds
// edge-triggered, and every signal is a new edge, so waiting for
// readability is enough, and a wake-up costs no read system call.
func (r *Ring) reaper() {
	defer close(r.reaperDone)
	rc, err := r.efd.SyscallConn()
	if err != nil {
		return
	}
	// Read calls the function, and waits for the next edge whenever it
	// returns false, until Close closes the eventfd.
	_ = rc.Read(func(uintptr) bool {
		r.reap()
		return false
	})
}

// spin polls for up to r.spinFor for s to be pending or woken, without
// parking (WithWaitSpin); it reports whether s is.
func (r *Ring) spin(s *streamCore) bool {
	if r.armed.Load() != 0 || runtime.GOMAXPROCS(0) < 2 || !r.spinning.CompareAndSwap(false, true) {
		return false
	}
	ok := false
	for end := time.Now().Add(r.spinFor); ; {
		if ok = s.tryTake(); ok {
			break
		}
		r.reap()
		if ok = s.pending(); ok || time.Now().After(end) {
			break
		}
		shortcall.Yield()
	}
	r.spinning.Store(false)
	return ok
}

// cqHolds reports whether one of the first completions in the CQ, not yet
// reaped, has user_data ud. It looks only while holding the CQ lock: a
// drain running meanwhile would release the entries it reads to the
// kernel, which may then write them again (the race detector saw that
// with the simulated kernel, in rionet's TestSimConnEAGAIN). If another
// goroutine is draining, it reports false; that goroutine completes the
// operation, and its waiter is woken as usual.
func (r *Ring) cqHolds(ud uint64) bool {
	if !r.cqMu.TryLock() {
		return false
	}
	found := false
	if !r.dead {
		rg := r.rings
		head := r.cqHead
		tail := uring.LoadAcquire(rg.CQTail)
		for i := 0; head != tail && i < 64; head, i = head+1, i+1 {
			if rg.CQEs[head&rg.CQMask].UserData == ud {
				found = true
				break
			}
		}
	}
	r.cqMu.Unlock()
	r.drainAsked() // a drain refused while this held the lock
	return found
}

// arm makes the kernel signal the eventfd for new completions, for as long
// as at least one goroutine waits. It returns false if the ring is torn
// down.
//
// Only the transitions between nobody and somebody waiting take armMu and
// touch the CQ flags; the goroutine that arms the eventfd then reaps what
// was posted while it was disarmed. The flag is set from the count read
// under the lock, so concurrent transitions cannot leave it disarmed while
// somebody waits.
func (r *Ring) arm() bool {
	if r.deadA.Load() {
		return false
	}
	if r.armed.Add(1) != 1 || r.alwaysArmed {
		return true
	}
	r.armMu.Lock()
	if r.dead {
		r.armMu.Unlock()
		r.armed.Add(-1)
		return false
	}
	if r.armed.Load() > 0 {
		atomic.AndUint32(r.rings.CQFlags, ^uint32(uring.CQEventfdDisabled))
	}
	r.armMu.Unlock()
	r.reap()
	return true
}

func (r *Ring) disarm() {
	if r.armed.Add(-1) != 0 || r.alwaysArmed {
		return
	}
	r.armMu.Lock()
	if !r.dead && r.armed.Load() == 0 {
		atomic.OrUint32(r.rings.CQFlags, uring.CQEventfdDisabled)
	}
	r.armMu.Unlock()
}

// reap drains the CQ, then submits the queued operations that the freed
// slots let through. It must not be called with mu held.
func (r *Ring) reap() {
	if r.unflushed.Load() {
		r.flush() // what waits for a flush may be what the caller waits for
	}
	r.drain()
	if r.table.hasReady.Load() {
		r.pump()
	}
}

// drain drains the CQ unless another goroutine is draining it, in which
// case that goroutine drains again before it stops: a goroutine that finds
// the lock held sets reapReq, then tries once more, and whoever holds the
// lock looks at reapReq after it lets go. Uncontended, it costs the lock
// and two plain loads.
func (r *Ring) drain() {
	for {
		if !r.cqMu.TryLock() {
			r.reapReq.Store(true)
			if !r.cqMu.TryLock() {
				return // the holder drains again
			}
		}
		if r.reapReq.Load() {
			r.reapReq.Store(false)
		}
		if !r.dead {
			r.drainLocked()
		}
		r.cqMu.Unlock()
		if !r.reapReq.Load() {
			return
		}
	}
}

// drainLocked reaps every CQE in the CQ. It completes the ops of a batch
// of CQEs, then releases the CQ entries to the kernel, and only then frees
// the ops' slots: the slots in use never outnumber the free CQ entries.
func (r *Ring) drainLocked() {
	// freed is the Ring's rather than a local array (see "Stack depth"
	// in sqe.go).
	freed := &r.freed
	rg := r.rings
	for {
		tail := uring.LoadAcquire(rg.CQTail)
		if tail == r.cqHead {
			if uring.LoadAcquire(rg.SQFlags)&uring.SQCQOverflow != 0 {
				// Completions wait in the kernel's overflow list: have
				// them moved into the CQ.
				r.k.Enter(0, 0, uring.EnterGetEvents)
				r.stats.enters.Add(1)
				if uring.LoadAcquire(rg.CQTail) != r.cqHead {
					continue
				}
			}
			return
		}
		n, nfreed := 0, 0
		var now int64
		for ; r.cqHead != tail && nfreed < len(freed); n++ {
			c := &rg.CQEs[r.cqHead&rg.CQMask]
			r.cqHead++
			if o := r.table.vacateCommon(c.UserData); o != nil {
				// complete, for the common op
				o.res = c.Res
				o.finish()
				freed[nfreed] = uint32(c.UserData)
				nfreed++
				continue
			}
			if idx, ok := r.complete(c, &now); ok {
				freed[nfreed] = idx
				nfreed++
			}
		}
		uring.StoreRelease(rg.CQHead, r.cqHead)
		if nfreed > 0 {
			r.table.release(freed[:nfreed]...)
		}
		r.reaped += uint64(n)
	}
}

// complete hands one CQE to its op and empties the op's slot, which the
// caller releases. now caches the time for the latency histogram.
// drainLocked completes the common op (vacateCommon) itself, inline: a
// change of what completing an op means must be made there too (the call
// here cost 14 instructions per batched NOP, bench/instr.sh).
func (r *Ring) complete(c *uring.CQE, now *int64) (uint32, bool) {
	t := &r.table
	o, idx := t.lookup(c.UserData)
	if o == nil {
		r.stats.unknown.Add(1)
		return 0, false
	}
	res := c.Res
	if h := o.hook(); h != nil {
		// Every CQE goes to the hook; the op keeps its slot (and the
		// kernel its memory) until the CQE without IORING_CQE_F_MORE.
		res, _ = h.cqe(res, c.Flags)
		if c.Flags&uring.CQEFMore != 0 {
			return 0, false
		}
	}
	if _, start := t.vacate(idx); start != 0 {
		if *now == 0 {
			*now = t.now()
		}
		r.stats.latency[fineBucket(*now-start)].Add(1)
	}
	o.res = res
	o.finish()
	return idx, true
}

// reapWait is reap, except that if another goroutine is draining the CQ it
// waits for that goroutine rather than leaving the rest to it.
func (r *Ring) reapWait() {
	r.flush()
	r.cqMu.Lock()
	if !r.dead {
		r.drainLocked()
	}
	r.cqMu.Unlock()
	r.drainAsked()
}

// drainAsked drains if a goroutine asked for it (reapReq, see drain) while
// the caller held the CQ lock for something else: every holder of cqMu
// looks at reapReq after it lets go.
func (r *Ring) drainAsked() {
	if r.reapReq.Load() {
		r.drain()
	}
}
