package rio

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/gorio/rio/internal/uring"
)

// Operation states.
const (
	stateNew     uint32 = iota // prepared in a Batch, not yet submitted
	statePending               // owned by the ring: in its in-flight table
	stateDone                  // result published; the kernel holds nothing
	// stateSettled: done, and the goroutine that finished the op no
	// longer touches it, so its memory may be reused (Recycle, Release).
	stateSettled
	stateReleased // handed back for reuse: Wait returns errReleased
	// stateWaited: pending, and a waiter or a Collector is registered in
	// wake, so finish must look there (see finish).
	stateWaited
)

// opState is an op's state word.
type opState struct{ atomic.Uint32 }

// raw returns the word for a plain store, for an op no other goroutine
// can see (a Completion being made, or being recycled by its owner).
func (s *opState) raw() *uint32 { return (*uint32)(unsafe.Pointer(&s.Uint32)) }

// inFlight reports whether o is owned by the ring: submitted (or queued
// for a slot) and not yet done.
func (o *op) inFlight() bool {
	s := o.state.Load()
	return s == statePending || s == stateWaited
}

// submitted makes a new op pending. A Collector may have registered in
// wake while it was new (a Batch's op, added before Submit): then it is
// waited. The store comes before the load, and markWaited's store before
// its load, so one of the two sees the other.
func (o *op) submitted() {
	o.state.Store(statePending)
	if o.wake.Load() != nil {
		o.markWaited()
	}
}

// markWaited tells finish that o.wake, installed by the caller, must be
// looked at. It reports false if o is done already (or was never
// submitted), in which case finish may not have seen the waiter.
func (o *op) markWaited() bool {
	for {
		switch o.state.Load() {
		case stateWaited:
			return true
		case statePending:
			if o.state.CompareAndSwap(statePending, stateWaited) {
				return true
			}
		case stateNew:
			// Not submitted yet: submitted will see the waiter.
			return true
		default:
			return false
		}
	}
}

// done reports whether o's result is published.
func (o *op) done() bool {
	s := o.state.Load()
	return s == stateDone || s == stateSettled
}

// settle waits until o is settled, if it is done, and reports whether it
// is: a finisher between its two stores (finish) is never long.
func (o *op) settle() bool {
	for {
		switch o.state.Load() {
		case stateSettled:
			return true
		case stateDone:
			runtime.Gosched()
		default:
			return false
		}
	}
}

// op is the untyped part of every operation: the SQE to submit, the
// references that keep its memory alive while the kernel owns it, and the
// result. The in-flight table points at the op from submission until its CQE
// has been reaped, which is what keeps the memory reachable and pinned even
// when the caller drops the Completion.
type op struct {
	ring *Ring

	// Memory the kernel reads or writes. Every non-nil pointer here and in
	// x is pinned at submission and unpinned when the CQE is reaped.
	bufp *byte          // data buffer (see buf)
	obj  unsafe.Pointer // iovec array, path, timespec, ...
	x    *opExtra       // what few operations need; nil for most

	userData uint64 // slot index | generation<<32, once submitted
	wake     atomic.Pointer[waiter]
	state    opState
	res      int32
	blen     uint32   // len(buf), at most maxRW
	opcode   uring.Op // IORING_OP_*
	// kernelWrites says whether the kernel writes buf (reads) or only reads
	// it (writes); the race detector hooks model the kernel's access.
	kernelWrites bool
	// stream says that the op is the first field of a streamCore, which
	// is its cqeHook (see hook). It costs the op no size (padding), and
	// spares a Stream an opExtra: a server keeps one Stream per idle
	// connection.
	stream bool
	// pooled: a Ring method's Completion, which Release may recycle.
	pooled bool
}

// buf returns the op's data buffer. The op keeps its pointer and length
// rather than a slice, which keeps the op, allocated once per operation,
// in a smaller size class.
func (o *op) buf() []byte {
	if o.bufp == nil {
		return nil
	}
	return unsafe.Slice(o.bufp, o.blen)
}

// setBuf records b as the op's data buffer.
func (o *op) setBuf(b []byte) {
	o.bufp, o.blen = unsafe.SliceData(b), uint32(len(b))
	if len(b) == 0 {
		o.bufp = nil
	}
}

// cqeHook is the one mechanism for operations whose CQEs need more than
// storing the result: multishot operations (a Stream queues every CQE),
// zero-copy sends (a notification follows the result) and a CancelFd that
// also withdrew queued operations (it adds them to the kernel's count).
// The ring keeps such an op in its slot until the CQE without
// IORING_CQE_F_MORE.
type cqeHook interface {
	// cqe takes one CQE of the op, from the goroutine that reaps, or the
	// ECANCELED the op completes with when it is withdrawn from the queue.
	// It returns the result the op completes with if the CQE is the last.
	cqe(res int32, flags uint32) (int32, uint32)
	// noCQE says that the op failed before reaching the kernel: no CQE
	// will come. It is called once the op's error is set, before the op
	// is finished.
	noCQE()
}

// cqeFunc is a cqeHook for an op that only adjusts its result.
type cqeFunc func(res int32, flags uint32) (int32, uint32)

func (f cqeFunc) cqe(res int32, flags uint32) (int32, uint32) { return f(res, flags) }
func (f cqeFunc) noCQE()                                      {}

// opExtra holds the fields of op that most operations leave empty, which
// keeps the common op, allocated once per operation, small.
type opExtra struct {
	err      error            // failure before submission: closed ring, unsupported op, bad argument
	bufs     [][]byte         // vectored data buffers
	obj2     unsafe.Pointer   // second object (the new path of a rename, a statx buffer)
	okErrno  [2]syscall.Errno // negative results that mean success (ETIME for timeouts)
	raceDone chan struct{}    // race builds: the simulated kernel access is recorded
	q        *queued          // the queued submission, if the op waited for a slot
	// hook, if set, sees every CQE of the op (see cqeHook). It lives here
	// rather than in op, which keeps the op of every operation in the
	// 64-byte size class. A Stream's op does not use it (op.stream).
	hook cqeHook
}

// hook returns the op's cqeHook, or nil.
func (o *op) hook() cqeHook {
	if o.stream {
		// o is the first field of its streamCore, so the two share an
		// address.
		return (*streamCore)(unsafe.Pointer(o))
	}
	if o.x == nil {
		return nil
	}
	return o.x.hook
}

func (o *op) extra() *opExtra {
	if o.x == nil {
		o.x = new(opExtra)
	}
	return o.x
}

// setErr records a failure found while preparing the op; the first wins.
func (o *op) setErr(err error) {
	if x := o.extra(); x.err == nil {
		x.err = err
	}
}

func (o *op) prepErr() error {
	if o.x == nil {
		return nil
	}
	return o.x.err
}

type waiter struct {
	ch chan struct{}
	in atomic.Pointer[collected] // the op's Collector, if any (collect.go)
}

// finish publishes the result and wakes any waiter, and tells the op's
// Collector, if it has one. It is called exactly once per op, by whichever
// goroutine reaped its CQE or failed its submission.
//
// An op nobody waits for (no markWaited) is finished with one atomic
// operation: pending becomes settled at once. Otherwise the state says
// waited, and a waiter registered before it said so; finish stores done,
// then wakes it.
func (o *op) finish() {
	if !o.state.CompareAndSwap(statePending, stateSettled) {
		o.finishWaited()
	}
}

// finishWaited is finish for an op that is waited (or was never
// submitted).
func (o *op) finishWaited() {
	o.state.Store(stateDone)
	if w := o.wake.Load(); w != nil {
		close(w.ch)
		w.in.Load().fire()
	}
	// The last touch: from here on, the op's memory may be reused.
	o.state.Store(stateSettled)
}

// finishRes completes o with a result the kernel did not post: o was
// withdrawn from the queue before it reached the kernel.
func (o *op) finishRes(res int32, flags uint32) {
	if h := o.hook(); h != nil {
		res, _ = h.cqe(res, flags)
	}
	o.res = res
	o.finish()
}

// fail completes an op that never reached the kernel.
func (o *op) fail(err error) {
	o.extra().err = err
	if h := o.hook(); h != nil {
		h.noCQE()
	}
	o.finish()
}

// wait blocks until the op is done or ctx is done. It returns ctx.Err() in
// the latter case, after asking the kernel to cancel the op.
func (o *op) wait(ctx context.Context) error {
	switch o.state.Load() {
	case stateDone, stateSettled:
		return nil
	case stateNew:
		return errNotSubmitted
	case stateReleased:
		return errReleased
	}
	r := o.ring
	// The CQE may already be in the completion queue: reap it here rather
	// than park and be woken by the reaper.
	r.reap()
	if o.done() {
		return nil
	}
	w := o.waiterOf()
	// The waiter is installed; markWaited makes finish look for it. If
	// finish ran before, the state says done, and it may not have seen
	// the waiter.
	if !o.markWaited() {
		return nil
	}
	if !r.arm() {
		// Torn down: every op has been reaped (or failed), and finish,
		// having seen our waiter, closes its channel.
		<-w.ch
		return nil
	}
	defer r.disarm()
	if o.done() {
		return nil
	}
	if ctx == nil {
		<-w.ch
		return nil
	}
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		select {
		case <-w.ch:
			return nil // completed meanwhile: report the real result
		default:
		}
		r.cancelOp(o)
		return ctx.Err()
	}
}

func (o *op) error() error {
	if o.x == nil {
		if o.res < 0 {
			return cqeError(opName(o.opcode), o.res)
		}
		return nil
	}
	if o.x.err != nil {
		return o.x.err
	}
	if e := syscall.Errno(-o.res); o.res < 0 && e != o.x.okErrno[0] && e != o.x.okErrno[1] {
		return cqeError(opName(o.opcode), o.res)
	}
	return nil
}

// Completion is the handle of one submitted operation. It borrows the memory
// the operation was given (buffers, paths, result structs) on the kernel's
// behalf: that memory belongs to the kernel from the moment the operation is
// submitted until its completion has been reaped, which Wait and WaitContext
// observe. The ring keeps the memory referenced and pinned for that whole
// time, whether or not anyone waits, so dropping a Completion is safe: the
// operation still runs to completion and its result is discarded.
//
// A Completion may be waited on any number of times, from any number of
// goroutines; every call returns the same result.
type Completion[T any] struct {
	op
}

// Wait blocks until the operation has completed and returns its result.
// A failed operation returns an *os.SyscallError wrapping the errno (use
// errors.Is(err, syscall.ECANCELED) and the like), ErrClosed if the ring was
// closed before the operation was submitted, or an error matching
// ErrNotSupported if the kernel lacks the operation.
//
// Once Wait has returned, the kernel holds no reference to the operation's
// memory and the caller may reuse it.
func (c *Completion[T]) Wait() (T, error) {
	if c.state.Load() == stateSettled {
		return c.result()
	}
	if err := c.op.wait(nil); err != nil {
		var zero T
		return zero, err
	}
	return c.result()
}

// WaitContext is Wait, with cancellation. If ctx is done before the
// operation completes, WaitContext asks the kernel to cancel the operation
// (IORING_OP_ASYNC_CANCEL) and returns ctx.Err() at once.
//
// In that case the operation's memory stays borrowed: the kernel may still
// be using it until the cancelled operation's completion is reaped, which a
// later Wait observes. The operation may also have completed before the
// cancellation reached it (a read may have consumed data); Wait then returns
// its real result.
func (c *Completion[T]) WaitContext(ctx context.Context) (T, error) {
	if err := c.op.wait(ctx); err != nil {
		var zero T
		return zero, err
	}
	return c.result()
}

// Cancel asks the kernel to cancel the operation if it is still in flight.
// It does not wait: the operation completes, usually with ECANCELED, and its
// memory is borrowed, until Wait returns.
func (c *Completion[T]) Cancel() {
	if c.inFlight() {
		c.ring.cancelOp(&c.op)
	}
}

// Done reports whether the operation has completed, without blocking. It
// reaps completions that are ready, so polling Done makes progress.
func (c *Completion[T]) Done() bool {
	switch c.state.Load() {
	case stateDone, stateSettled, stateReleased:
		return true // a released one: Wait says so
	case stateNew:
		return false
	}
	c.ring.reap()
	return c.done()
}

// Release hands c back to its Ring for reuse by a later operation of one
// of the Ring's methods, which then takes c's memory instead of
// allocating. It is optional: a Completion never released is garbage
// collected as usual. Release does nothing unless the operation has
// completed (the kernel holds nothing of it then), nor for a nil
// Completion, one of a Batch (see Batch.Recycle) or a second time.
//
// The caller must be done with c: every Wait, WaitContext and Done on it
// returned, and no other goroutine uses it. From Release on, c must not be
// used. Until another operation reuses it, Wait and WaitContext on it
// return an error matching syscall.EINVAL and Done reports true; once
// reused, c is that other operation's Completion, and a stale Wait waits
// for that operation and returns its result, which Release cannot detect.
// Release therefore suits a loop that owns each Completion from the call
// that returned it to its last Wait, such as r.Nop().Wait() in a loop.
func (c *Completion[T]) Release() {
	if c == nil || !c.pooled || c.ring == nil || !c.state.CompareAndSwap(stateSettled, stateReleased) && (!c.settle() || !c.state.CompareAndSwap(stateSettled, stateReleased)) {
		return
	}
	c.ring.free.put(&c.op)
}

// drop clears the references of a released op, so that its memory
// keeps nothing of the caller's reachable while it waits for reuse.
// It stores only where there is something to clear, which saves the
// write barriers of a NOP's few fields.
func (o *op) drop() {
	if o.bufp != nil {
		o.bufp = nil
	}
	if o.obj != nil {
		o.obj = nil
	}
	if o.x != nil {
		o.x = nil
	}
	if o.wake.Load() != nil {
		o.wake.Store(nil)
	}
}

// freeOps is a Ring's list of released Completions. Every Completion[T]
// is an op and nothing else, whatever T, so one list serves all result
// types. Its count lets a program that never releases pay one atomic load
// per operation and no lock.
//
// A released op goes to one if it is empty, and get takes from one
// first, with one atomic operation each: a loop that releases each
// Completion before its next operation (r.Nop().Wait() and Release) never
// takes the lock. The others wait in ops; n says whether ops is empty,
// and is stored only when that changes.
type freeOps struct {
	one atomic.Pointer[op]
	n   atomic.Int32
	mu  sync.Mutex
	ops []*op
}

// maxFree bounds a Ring's released Completions (64 KB of them).
const maxFree = 1024

func (f *freeOps) put(o *op) {
	if o.bufp != nil || o.obj != nil || o.x != nil || o.wake.Load() != nil {
		o.drop()
	}
	o.ring = nil
	if f.one.Load() == nil && f.one.CompareAndSwap(nil, o) {
		return
	}
	f.mu.Lock()
	if len(f.ops) < maxFree {
		f.ops = append(f.ops, o)
		if len(f.ops) == 1 {
			f.n.Store(1)
		}
	}
	f.mu.Unlock()
}

func (f *freeOps) get() *op {
	if f.one.Load() != nil {
		if o := f.one.Swap(nil); o != nil {
			return o
		}
	}
	if f.n.Load() == 0 {
		return nil
	}
	f.mu.Lock()
	var o *op
	if k := len(f.ops); k > 0 {
		o = f.ops[k-1]
		f.ops[k-1] = nil
		f.ops = f.ops[:k-1]
		if k == 1 {
			f.n.Store(0)
		}
	}
	f.mu.Unlock()
	return o
}

// The layout that the two unsafe conversions in this file rely on, checked
// at compile time: a streamCore starts with its op (op.hook), and a
// Completion is its op and nothing else, whatever T (newCompletion reuses
// a released op as any Completion[T]). A change that breaks either makes
// an array length nonzero and the build fails here.
var (
	_ [0]struct{} = [unsafe.Offsetof(streamCore{}.op)]struct{}{}
	_ [0]struct{} = [unsafe.Sizeof(Completion[int]{}) - unsafe.Sizeof(op{})]struct{}{}
	_ [0]struct{} = [unsafe.Sizeof(Completion[[64]byte]{}) - unsafe.Sizeof(op{})]struct{}{}
	// opState.raw: the word is the atomic's only field.
	_ [0]struct{} = [unsafe.Sizeof(opState{}) - unsafe.Sizeof(uint32(0))]struct{}{}
)

// newCompletion returns a zeroed Completion for one of r's methods: a
// released one if r has one, or a new one.
func newCompletion[T any](r *Ring) *Completion[T] {
	var c *Completion[T]
	if r != nil {
		if o := r.free.get(); o != nil {
			// Completion[T] is op alone: same size and layout for all T.
			c = (*Completion[T])(unsafe.Pointer(o))
			*c = Completion[T]{}
		}
	}
	if c == nil {
		c = new(Completion[T])
	}
	c.pooled = true
	// Pending already, with a plain store: no other goroutine has c yet,
	// and submission then has no state to store (claim). A failure
	// before submission finishes it as usual.
	*c.state.raw() = statePending
	return c
}

func (c *Completion[T]) result() (T, error) {
	var v T
	if c.x != nil || c.res < 0 {
		if err := c.op.error(); err != nil {
			return v, err
		}
	}
	if unsafe.Sizeof(v) == 0 {
		return v, nil // struct{}: nothing to convert
	}
	switch p := any(&v).(type) {
	case *int:
		*p = int(c.res)
	case *uint32:
		*p = uint32(c.res)
	case *bool: // LinkTimeout: did it fire?
		*p = c.res == -int32(syscall.ETIME)
	case *Msg:
		*p = msgResult(&c.op)
	}
	return v, nil
}
