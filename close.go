package rio

import (
	"errors"
	"syscall"
	"time"

	"github.com/gorio/rio/internal/uring"
)

// Close cancels every operation in flight, waits until the kernel has
// completed all of them and their completions have been reaped, then unmaps
// the rings and closes the io_uring fd. When Close returns, the kernel holds
// no memory of the caller's, and no goroutine or fd of the Ring remains.
//
// Cancellation is what the kernel makes of it: an operation that already
// started (a write being copied, a read that found data) completes
// normally, others complete with ECANCELED. Wait for writes whose outcome
// matters before closing.
//
// Operations waiting for a slot, and operations started after Close has
// begun, fail with ErrClosed. Close is idempotent and safe to call
// concurrently with anything else; every call returns once the ring is
// closed.
func (r *Ring) Close() error {
	if !r.usable() {
		return errBadRing
	}
	r.closeReq.Store(true)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.closeDone
		return r.closeErr
	}
	r.closed = true
	r.closedA.Store(true)
	r.table.closing.Store(true)
	r.mu.Unlock()
	r.failQueue(ErrClosed, false)

	r.arm()
	cancelAny := r.probe.Supported(uring.OpAsyncCancel)
	var t *time.Timer
	for r.table.inFlight() > 0 && !r.brokenA.Load() {
		if cancelAny {
			c := &Completion[int]{}
			c.ring = r
			c.opcode = uring.OpAsyncCancel
			r.submit(&c.op, &uring.SQE{Opcode: uring.OpAsyncCancel, Fd: -1, OpFlags: uring.AsyncCancelAny | uring.AsyncCancelAll}, true)
			if _, err := c.Wait(); errors.Is(err, syscall.EINVAL) {
				cancelAny = false // before Linux 5.19
			}
		}
		if !cancelAny {
			r.table.each(func(o *op) {
				if o.opcode != uring.OpAsyncCancel {
					r.cancelOp(o)
				}
			})
		}
		if r.table.inFlight() == 0 {
			break
		}
		// Some operations could not be cancelled yet (they are running in
		// an io-wq worker); wait for them, asking again from time to time.
		if t == nil {
			t = time.NewTimer(20 * time.Millisecond)
		} else {
			t.Reset(20 * time.Millisecond)
		}
		select {
		case <-r.table.idle:
		case <-t.C:
		}
		r.reap()
	}
	if r.brokenA.Load() {
		// Nothing can be cancelled. What the kernel never saw has failed;
		// what it has keeps its memory borrowed until it completes.
		r.mu.Lock()
		r.failUnconsumedLocked()
		r.mu.Unlock()
		if t != nil {
			t.Stop()
		}
		r.closeErr = r.brokenErr
		if r.table.inFlight() == 0 {
			r.disarm()
			r.teardown()
		} else {
			go r.closeBroken()
		}
		close(r.closeDone)
		return r.closeErr
	}
	// From here on, internal operations (a WaitContext's cancellation
	// racing Close) are refused too; wait for any that got in before.
	r.mu.Lock()
	r.quiet = true
	r.mu.Unlock()
	r.waitIdle(20 * time.Millisecond)
	r.disarm()
	r.closeErr = r.teardown()
	close(r.closeDone)
	return r.closeErr
}

// closeBroken finishes closing a broken ring once the operations the
// kernel had when it broke have completed: the ring stays mapped (and the
// reaper running) until then, so that their memory stays borrowed and
// their completions reach them.
func (r *Ring) closeBroken() {
	r.waitIdle(time.Second)
	r.disarm()
	r.teardown()
}

// waitIdle waits until no operation is in flight, reaping every period in
// case a completion's wake-up was missed.
func (r *Ring) waitIdle(period time.Duration) {
	var t *time.Timer
	for r.table.inFlight() > 0 {
		if t == nil {
			t = time.NewTimer(period)
		} else {
			t.Reset(period)
		}
		select {
		case <-r.table.idle:
		case <-t.C:
		}
		r.reap()
	}
	if t != nil {
		t.Stop()
	}
}

// teardown releases the kernel resources once nothing is in flight.
func (r *Ring) teardown() error {
	// Stop the reaper: closing the eventfd wakes its Read with an error.
	err := r.efd.Close()
	<-r.reaperDone

	// Wait for a goroutine still in the enter loop to leave it; with the
	// ring closed, nothing can publish new SQEs.
	r.mu.Lock()
	for r.submitting {
		r.mu.Unlock()
		time.Sleep(10 * time.Microsecond)
		r.mu.Lock()
	}
	r.cqMu.Lock()
	r.armMu.Lock()
	r.dead = true
	r.deadA.Store(true)
	r.flushTimer.Stop() // a flush that runs anyway finds the ring dead
	r.armMu.Unlock()
	r.cqMu.Unlock()
	r.mu.Unlock()

	r.failQueue(ErrClosed, true) // nothing is left there: no slot is taken

	r.regMu.Lock()
	if kerr := r.k.Close(); err == nil {
		err = kerr
	}
	r.regBufs = nil
	r.regPin.Unpin()
	r.closeBufferRingsLocked()
	r.regMu.Unlock()
	return err
}
