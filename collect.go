package rio

import (
	"context"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"syscall"
)

// Operation is an operation whose completion a Collector can report. Every
// *Completion[T] is one, whatever T.
type Operation interface {
	operation() *op
}

func (c *Completion[T]) operation() *op {
	if c == nil {
		return nil
	}
	return &c.op
}

// errCollected is returned by Collector.Add for an operation that is
// already in a Collector.
var errCollected = fmt.Errorf("rio: operation already added to a Collector: %w", syscall.EINVAL)

// errNilOperation is returned by Collector.Add for a nil operation.
var errNilOperation = fmt.Errorf("rio: nil operation added to a Collector: %w", syscall.EINVAL)

// Collector hands back operations in the order in which they complete, so
// that one goroutine can keep many in flight and handle each as soon as it
// is done, instead of waiting for them in the order it started them or
// polling Done.
//
// Add registers an operation with a key of the caller's choosing (the
// Completion itself, an index into the caller's buffers, a struct); Next,
// TryNext and All return the keys of completed operations, each once, in
// completion order. An operation's result is then ready: Wait on it returns
// at once, and its memory is the caller's again once Wait has returned.
//
// The zero Collector is empty and ready to use. A Collector is safe for
// concurrent use; it must not be copied after first use. It holds a
// reference to each key until it is returned. Operations of different
// Rings may share a Collector.
type Collector[K any] struct {
	mu      sync.Mutex
	ready   []K // completed, not yet returned: ready[head:]
	head    int
	pending int           // added, not yet completed
	rings   []*Ring       // the rings of the operations added, for reaping and arming
	signal  chan struct{} // capacity 1: something became ready
}

// collected is an operation's membership of a Collector. It hangs off the
// op's waiter (op.finish calls fire) and is embedded in the Collector's
// typed entry, which it points back to through e.
type collected struct {
	fired atomic.Bool
	e     interface{ push() }
}

// fire reports the operation complete to its Collector, once.
func (m *collected) fire() {
	if m != nil && m.fired.CompareAndSwap(false, true) {
		m.e.push()
	}
}

type collectEntry[K any] struct {
	collected
	q   *Collector[K]
	key K
}

func (e *collectEntry[K]) push() { e.q.push(e.key) }

// waiterOf returns the op's waiter, installing one if there is none.
func (o *op) waiterOf() *waiter {
	if w := o.wake.Load(); w != nil {
		return w
	}
	nw := &waiter{ch: make(chan struct{})}
	if o.wake.CompareAndSwap(nil, nw) {
		return nw
	}
	return o.wake.Load()
}

// Add registers op, which key will stand for. The operation may be in
// flight, already complete (Next then returns key at once), or queued in a
// Batch not yet submitted: it counts as pending until the Batch is
// submitted and it completes (or the Batch fails to submit, which completes
// it with the error). An operation can be in one Collector only, once; Add
// fails for one added before, and for a nil op, with an error matching
// syscall.EINVAL. Waiting on the operation
// directly stays possible.
func (q *Collector[K]) Add(op Operation, key K) error {
	if op == nil {
		return errNilOperation
	}
	o := op.operation()
	if o == nil {
		return errNilOperation
	}
	if o.state.Load() == stateReleased {
		return errReleased
	}
	e := &collectEntry[K]{q: q, key: key}
	e.collected.e = e
	w := o.waiterOf()
	q.mu.Lock()
	if !w.in.CompareAndSwap(nil, &e.collected) {
		q.mu.Unlock()
		return errCollected
	}
	q.pending++
	if o.ring != nil && !containsRing(q.rings, o.ring) {
		q.rings = append(q.rings, o.ring)
	}
	q.mu.Unlock()
	// op.finish looks for the membership once the state says waited;
	// this stored the membership before marking it. If the op finished
	// before, fire reports the completion here; it reports it once.
	if !o.markWaited() && o.done() {
		e.fire()
	}
	return nil
}

func containsRing(rs []*Ring, r *Ring) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

func (q *Collector[K]) push(key K) {
	q.mu.Lock()
	q.ready = append(q.ready, key)
	q.pending--
	sig := q.signalLocked()
	q.mu.Unlock()
	select {
	case sig <- struct{}{}:
	default:
	}
}

func (q *Collector[K]) signalLocked() chan struct{} {
	if q.signal == nil {
		q.signal = make(chan struct{}, 1)
	}
	return q.signal
}

// popLocked takes the oldest ready key. more reports whether others remain.
func (q *Collector[K]) popLocked() (key K, ok, more bool) {
	if q.head == len(q.ready) {
		return key, false, false
	}
	key = q.ready[q.head]
	var zero K
	q.ready[q.head] = zero
	q.head++
	if q.head == len(q.ready) {
		q.ready, q.head = q.ready[:0], 0
	} else if q.head > 64 && q.head*2 > len(q.ready) {
		n := copy(q.ready, q.ready[q.head:])
		clear(q.ready[n:])
		q.ready, q.head = q.ready[:n], 0
	}
	return key, true, q.head < len(q.ready)
}

// take pops a ready key, passing the signal on to another waiter if more
// are ready.
func (q *Collector[K]) take() (key K, ok bool, pending int, rings []*Ring, sig chan struct{}) {
	q.mu.Lock()
	key, ok, more := q.popLocked()
	pending, rings, sig = q.pending, q.rings, q.signalLocked()
	q.mu.Unlock()
	// With the last key taken, another Next may be parked for a completion
	// that will never come: wake it to find nothing pending.
	if more || (ok && pending == 0) {
		select {
		case sig <- struct{}{}:
		default:
		}
	}
	return key, ok, pending, rings, sig
}

// Len returns the number of operations added and not yet returned: those
// still pending and those complete but not yet taken.
func (q *Collector[K]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pending + len(q.ready) - q.head
}

// Next returns the key of the next operation to complete, blocking until
// one does. It returns false if no operation is pending or ready. It does
// not hold an OS thread while it waits.
func (q *Collector[K]) Next() (K, bool) {
	key, ok, _ := q.next(nil, true)
	return key, ok
}

// NextContext is Next, except that it gives up when ctx is done and returns
// ctx.Err(). The operations stay in the Collector, and in flight: it cancels
// none of them.
func (q *Collector[K]) NextContext(ctx context.Context) (K, bool, error) {
	return q.next(ctx, true)
}

// TryNext returns the key of an operation that has completed, without
// blocking (it reaps completions that are ready), or false if none has.
func (q *Collector[K]) TryNext() (K, bool) {
	key, ok, _ := q.next(nil, false)
	return key, ok
}

// All returns an iterator over the keys of the operations as they complete,
// blocking between them, until none is pending or ready; operations added
// meanwhile are included. Stopping the loop early leaves the rest in the
// Collector.
func (q *Collector[K]) All() iter.Seq[K] {
	return func(yield func(K) bool) {
		for {
			key, ok := q.Next()
			if !ok || !yield(key) {
				return
			}
		}
	}
}

func (q *Collector[K]) next(ctx context.Context, block bool) (K, bool, error) {
	var zero K
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	for {
		key, ok, pending, rings, sig := q.take()
		if ok {
			return key, true, nil
		}
		if pending == 0 {
			// Pass the wake-up on to the next parked Next, if any.
			select {
			case sig <- struct{}{}:
			default:
			}
			return zero, false, nil
		}
		if ctx != nil && ctx.Err() != nil {
			return zero, false, ctx.Err()
		}
		// The completions may be in a completion queue already.
		for _, r := range rings {
			r.reap()
		}
		if key, ok, _, _, _ := q.take(); ok {
			return key, true, nil
		}
		if !block {
			return zero, false, nil
		}
		// Park until a completion is pushed. The rings signal their
		// eventfd only while somebody waits: arm them (which reaps once
		// more), and check again before parking.
		var armed [4]*Ring
		am := armed[:0]
		for _, r := range rings {
			if r.arm() {
				am = append(am, r)
			}
		}
		key, ok, _, _, _ = q.take()
		if !ok {
			select {
			case <-sig:
			case <-done:
			}
		}
		for _, r := range am {
			r.disarm()
		}
		if ok {
			return key, true, nil
		}
	}
}
