package rio

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/gorio/rio/internal/uring"
)

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
	for i, o := range ops {
		r.claim(idx[i], o, &now)
		sqes[i].UserData = o.userData
	}
	r.mu.Lock()
	if r.closed || r.dead {
		r.mu.Unlock()
		for _, i := range idx {
			r.unclaim(i)
		}
		r.release(idx...)
		err := r.closedErr()
		failAll(ops, err)
		r.pump()
		return err
	}
	r.waitSQSpace(uint32(len(ops)))
	for i, o := range ops {
		r.rings.SQEs[r.sqTail&r.rings.SQMask] = sqes[i]
		r.sqTail++
		r.heavy = r.heavy || heavyOp(o)
	}
	uring.StoreRelease(r.rings.SQTail, r.sqTail)
	r.stats.submitted.Add(uint64(len(ops)))
	r.flushLocked(true)
	return nil
}

func (r *Ring) checkBatch(ops []*op, sqes []uring.SQE) error {
	for _, o := range ops {
		if err := o.prepErr(); err != nil {
			return err
		}
		if !r.probe.Supported(o.opcode) {
			return opFeatureError(o.opcode)
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
		if o.stream {
			streamOf(o).failed() // no CQE will come
		}
	}
}

// reset empties the batch, keeping its storage.
func (b *Batch) reset() {
	clear(b.ops)
	b.ops, b.sqes, b.err = b.ops[:0], b.sqes[:0], nil
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
