// Package rio is an io_uring library for Go that is safe to use.
//
// A Ring owns one io_uring instance: its submission queue (SQ), its
// completion queue (CQ) and the in-flight table that holds every operation
// between submission and completion. Each operation method returns a typed
// *Completion whose Wait returns the result.
//
// # Ownership
//
// Memory handed to an operation (a buffer, an iovec array, a path, a statx
// buffer) is borrowed by the kernel from submission until the operation's
// completion has been reaped. The in-flight table references and pins
// (runtime.Pinner) it for that whole time, whether or not anybody calls Wait,
// after a WaitContext has given up, and while the ring is closing. The caller
// may touch the memory again once Wait has returned. In builds with -race,
// touching it earlier is reported by the race detector.
//
// # Capacity
//
// The number of operations in flight is capped below the CQ's capacity, so
// the kernel never has to drop or overflow a completion. Past the cap, an
// operation method does not block: the operation waits in the ring's queue,
// in submission order, and is submitted when a slot frees. Its Completion
// (or Stream) is pending meanwhile, so WaitContext's context, Cancel and
// Close end that wait as they end any other: a cancelled operation leaves
// the queue without reaching the kernel and completes with ECANCELED.
// WithQueueLimit bounds the queue. Cancellations never wait behind user
// operations: they have slots of their own.
//
// # Concurrency
//
// A Ring is safe for concurrent use. Submissions from concurrent goroutines
// are combined into few io_uring_enter calls; completions are reaped by the
// goroutine that submits or waits when they are already there, and otherwise
// by a reaper goroutine woken through an eventfd in Go's network poller, so
// a waiting goroutine never holds an OS thread.
package rio

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gorio/rio/internal/hooks"
	"github.com/gorio/rio/internal/shortcall"
	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

// Ring is an io_uring instance. Create one with New and release it with
// Close. A nil or zero Ring is not usable: its methods return (or their
// operations fail with) an error matching syscall.EINVAL, as an *os.File's
// do for a nil one, and Stats returns zero counters.
type Ring struct {
	k      kernel
	rings  *uring.Rings
	probe  *uring.Probe
	epoch  time.Time
	sqpoll bool
	short  shortEnterer // k, if it has a cheaper enter for short calls

	// Submission side, guarded by mu.
	mu         sync.Mutex
	sqTail     uint32 // our copy of the SQ tail
	submitting bool   // a goroutine is in the enter loop
	again      bool   // SQEs were published while it was in enter
	heavy      bool   // an unsubmitted SQE moves much data inline (see heavyOp)
	closed     bool   // Close has begun: no new user operations
	quiet      bool   // Close is done cancelling: no new internal operations either
	dead       bool   // torn down: no operations at all

	// Completion side.
	cqMu    sync.Mutex // held while draining the CQ
	cqHead  uint32     // our copy of the CQ head, guarded by cqMu
	freed   [64]uint32 // drainLocked's slots to release, guarded by cqMu
	reapReq atomic.Bool

	// queuedReady: queued submissions have their slots and wait for pump.
	queuedReady atomic.Bool
	pumpMu      sync.Mutex // held by the goroutine that pumps

	table    slotTable
	inflight atomic.Int64 // slots in use

	// Waking: the kernel signals efd when it posts a CQE, unless the CQ's
	// EVENTFD_DISABLED flag is set, which it is while nobody waits.
	efd         *os.File
	armMu       sync.Mutex
	armed       atomic.Int32 // goroutines waiting
	alwaysArmed bool
	reaperDone  chan struct{}

	// WithWaitSpin.
	spinFor  time.Duration
	spinning atomic.Bool // a goroutine spins in Stream.Wait

	closedA atomic.Bool // closed, readable without mu
	// closeReq is set as Close begins, before it takes mu: an enter loop
	// retrying a transient error (possibly with mu held) gives up on it.
	closeReq atomic.Bool
	deadA    atomic.Bool // dead, readable without mu
	// brokenA: io_uring_enter failed in a way that cannot clear (see
	// breakRing); brokenErr, written once before brokenA is set, is that
	// failure, which every operation the kernel never saw returns.
	brokenA   atomic.Bool
	brokenErr error
	breakOnce sync.Once
	idle      chan struct{} // signalled when inflight drops to 0 while closing
	closeDone chan struct{}
	closeErr  error

	// Registered buffers and open BufferRings, guarded by regMu.
	regMu    sync.Mutex
	regBufs  [][]byte
	regPin   runtime.Pinner
	bufRings map[*BufferRing]struct{}

	stats stats
}

// kernel is what a Ring needs from an io_uring instance: the running
// kernel's, or a simulated one (package riotest).
type kernel = uring.Kernel

func init() {
	hooks.WithKernel = func(newKernel func(uint32, *uring.Params) (uring.Kernel, error)) any {
		return Option(func(c *config) error { c.newKernel = newKernel; return nil })
	}
}

// Option configures New.
type Option func(*config) error

type config struct {
	maxWorkers *[2]uint32
	spin       time.Duration
	entries    uint32
	cqEntries  uint32
	sqpoll     bool
	sqIdle     time.Duration
	coop       bool
	alwaysArm  bool
	queueLimit int
	newKernel  func(entries uint32, p *uring.Params) (kernel, error)
}

// WithEntries sets the size of the submission queue, a power of two from 1
// to 32768 (default 256). The completion queue is twice as large unless
// WithCQEntries says otherwise.
func WithEntries(n uint32) Option {
	return func(c *config) error {
		if n == 0 || n > 32768 || n&(n-1) != 0 {
			return argError("WithEntries", fmt.Errorf("%d entries: not a power of two from 1 to 32768: %w", n, syscall.EINVAL))
		}
		c.entries = n
		return nil
	}
}

// WithCQEntries sets the size of the completion queue, a power of two at
// least as large as the submission queue. It bounds how many operations can
// be in flight at once.
func WithCQEntries(n uint32) Option {
	return func(c *config) error {
		if n < 2 || n > 65536 || n&(n-1) != 0 {
			return argError("WithCQEntries", fmt.Errorf("%d entries: not a power of two from 2 to 65536: %w", n, syscall.EINVAL))
		}
		c.cqEntries = n
		return nil
	}
}

// WithSQPoll makes the kernel poll the submission queue from a thread of its
// own (IORING_SETUP_SQPOLL), which sleeps after idle without work.
// Submissions then cost no system call while the thread is awake, at the
// price of a CPU spent polling. It needs Linux 5.11 without privileges.
func WithSQPoll(idle time.Duration) Option {
	return func(c *config) error {
		if idle < 0 {
			return argError("WithSQPoll", fmt.Errorf("negative idle time %v: %w", idle, syscall.EINVAL))
		}
		c.sqpoll = true
		c.sqIdle = idle
		return nil
	}
}

// WithCoopTaskrun sets up the ring with IORING_SETUP_COOP_TASKRUN (Linux
// 5.19): the kernel no longer interrupts the thread that submitted an
// operation to run its completion work (an inter-processor interrupt), but
// lets the thread do it at its next transition into the kernel. Go's
// threads enter the kernel often, and a sleeping thread is still woken, so
// completions are not lost, only sometimes later. It pays for servers with
// many completions arriving from the network.
func WithCoopTaskrun() Option {
	return func(c *config) error { c.coop = true; return nil }
}

// WithMaxWorkers caps the kernel's io-wq worker threads for this ring:
// bounded workers serve operations on regular files and block devices,
// unbounded ones everything else (Linux 5.15). Operations the kernel cannot
// complete without blocking are handed to these workers, and each OS
// thread that submits gets its own pool, so without a cap a Go program
// can end up with many of them. 0 leaves a limit unchanged.
func WithMaxWorkers(bounded, unbounded uint32) Option {
	return func(c *config) error {
		c.maxWorkers = &[2]uint32{bounded, unbounded}
		return nil
	}
}

// WithWaitSpin makes Stream.Wait poll for up to d before it parks, when no
// other goroutine waits on the ring and GOMAXPROCS is at least 2: the
// goroutine keeps its thread, reaps the completion queue, and makes a
// non-waiting system call (sched_yield) between polls, so that its thread
// runs the receive work the kernel queued for it. A request-response peer
// on another CPU often answers within microseconds, and a goroutine that
// parks costs a thread wake-up when the answer comes (on a virtual
// machine, waking an idle virtual CPU). One goroutine spins at a time,
// and the CPU time it spins is spent for nothing when no answer comes. It
// is a trade-off: rionet's default ring spins for 20 µs, which took one
// connection's echo from 0.6× to 0.85-0.96× of package net's requests per
// second in the issue 10 measurements (docs/net.md). 0, the default,
// never spins.
func WithWaitSpin(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return argError("WithWaitSpin", fmt.Errorf("negative duration %v: %w", d, syscall.EINVAL))
		}
		c.spin = d
		return nil
	}
}

// WithQueueLimit bounds the operations that wait for a free slot of the
// ring's in-flight table. By default an operation submitted while the table
// is full waits in a queue, in submission order, for as long as it takes,
// and its Completion or Stream is pending meanwhile. With a limit, an
// operation that would make more than n wait fails at once, with an error
// matching ErrRingFull, and never reaches the kernel; with n == 0, nothing
// waits: a full ring refuses. A caller that spreads work over several rings
// uses it to find a ring with room (package file does).
func WithQueueLimit(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return argError("WithQueueLimit", fmt.Errorf("negative limit %d: %w", n, syscall.EINVAL))
		}
		c.queueLimit = n
		return nil
	}
}

// withAlwaysArmed keeps the eventfd notification on even when nobody waits;
// benchmarks compare it with the default.
func withAlwaysArmed() Option {
	return func(c *config) error { c.alwaysArm = true; return nil }
}

// New creates a Ring. Every setup failure is classified:
//
//   - io_uring missing, disabled or blocked (ENOSYS, EPERM or EACCES from
//     io_uring_setup, io_uring_register or io_uring_enter, as a seccomp
//     profile or kernel.io_uring_disabled cause), or a setup flag the
//     kernel lacks: a *FeatureError matching ErrNotSupported, naming what
//     is missing and the kernel that brought it;
//   - a resource limit (ENOMEM from RLIMIT_MEMLOCK, which counts the
//     memory of the rings, or EMFILE): a *LimitError matching
//     ErrResourceLimit, which a smaller ring (WithEntries, WithCQEntries)
//     may avoid;
//   - an invalid option: an error matching syscall.EINVAL;
//   - anything else: the *os.SyscallError.
//
// All of them wrap the errno the kernel returned.
func New(opts ...Option) (*Ring, error) {
	cfg := config{entries: 256, queueLimit: -1, newKernel: newRealKernel}
	for _, o := range opts {
		if o == nil {
			return nil, argError("New", fmt.Errorf("nil Option: %w", syscall.EINVAL))
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.cqEntries == 0 {
		cfg.cqEntries = 2 * cfg.entries
	}
	if cfg.cqEntries < cfg.entries {
		return nil, argError("WithCQEntries", fmt.Errorf("completion queue (%d) smaller than submission queue (%d): %w", cfg.cqEntries, cfg.entries, syscall.EINVAL))
	}
	p := uring.Params{Flags: uring.SetupCQSize | uring.SetupClamp, CQEntries: cfg.cqEntries}
	if cfg.sqpoll {
		p.Flags |= uring.SetupSQPoll
		p.SQThreadIdle = uint32(cfg.sqIdle / time.Millisecond)
	}
	if cfg.coop {
		p.Flags |= uring.SetupCoopTaskrun
	}
	k, err := cfg.newKernel(cfg.entries, &p)
	if err != nil {
		return nil, err
	}
	r, err := newRing(k, &cfg)
	if err != nil {
		k.Close()
		return nil, err
	}
	return r, nil
}

func newRing(k kernel, cfg *config) (*Ring, error) {
	rg := k.Rings()
	p := k.Params()
	r := &Ring{
		k:           k,
		rings:       rg,
		epoch:       time.Now(),
		sqpoll:      p.Flags&uring.SetupSQPoll != 0,
		alwaysArmed: cfg.alwaysArm || rg.CQFlags == nil,
		idle:        make(chan struct{}, 1),
		closeDone:   make(chan struct{}),
		reaperDone:  make(chan struct{}),
		spinFor:     cfg.spin,
	}
	r.short, _ = k.(shortEnterer)
	r.sqTail = *rg.SQTail
	r.cqHead = *rg.CQHead

	// The in-flight table has one slot per CQ entry: all of them together
	// can never overflow the CQ. An eighth (at least one, at most 64) is
	// kept for cancellations, which complete promptly.
	n := rg.CQEntries
	reserve := min(max(n/8, 1), 64)
	if reserve >= n {
		return nil, argError("New", fmt.Errorf("completion queue of %d entries too small: %w", n, syscall.EINVAL))
	}
	r.table.init(n, reserve, cfg.queueLimit)

	// Probe which operations the kernel knows (Linux 5.6). On older
	// kernels, assume the 5.1 set.
	r.probe = new(uring.Probe)
	if _, err := k.Register(uring.RegisterProbe, unsafe.Pointer(r.probe), 256); err != nil {
		if !errnoIs(err, syscall.EINVAL) {
			// Not an old kernel: registering is blocked, or failed.
			return nil, registerError("io_uring_register", "5.1", err)
		}
		r.probe.LastOp = uring.OpPollRemove
		r.probe.OpsLen = uring.OpPollRemove + 1
		for i := 0; i <= uring.OpPollRemove; i++ {
			r.probe.Ops[i].Flags = uring.OpSupported
		}
	}

	// The eventfd through which the kernel wakes the reaper. It is
	// non-blocking, so os.NewFile puts it in the runtime's network poller
	// and the reaper parks there instead of holding a thread.
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		err = os.NewSyscallError("eventfd", err)
		if lerr := limitError("eventfd", err); lerr != nil {
			return nil, lerr
		}
		return nil, err
	}
	fd32 := int32(efd)
	if _, err := k.Register(uring.RegisterEventfd, unsafe.Pointer(&fd32), 1); err != nil {
		unix.Close(efd)
		return nil, registerError("io_uring_register", "5.1", err)
	}
	// An io_uring_enter that does nothing: a seccomp profile may let
	// io_uring_setup and io_uring_register through and block this one, and
	// then no operation could ever be submitted.
	if _, errno := k.Enter(0, 0, 0); errno != 0 && errno != syscall.EINTR {
		unix.Close(efd)
		err := os.NewSyscallError("io_uring_enter", errno)
		if unavailable(errno) {
			return nil, &FeatureError{Feature: "io_uring_enter", MinKernel: "5.1", Err: err}
		}
		return nil, err
	}
	if cfg.maxWorkers != nil {
		limits := *cfg.maxWorkers
		if _, err := k.Register(uring.RegisterIOWQMaxWorkers, unsafe.Pointer(&limits), 2); err != nil {
			unix.Close(efd)
			if errnoIs(err, syscall.EINVAL) {
				return nil, &FeatureError{Feature: "IORING_REGISTER_IOWQ_MAX_WORKERS", MinKernel: "5.15", Err: err}
			}
			return nil, registerError("IORING_REGISTER_IOWQ_MAX_WORKERS", "5.15", err)
		}
	}
	r.efd = os.NewFile(uintptr(efd), "rio-eventfd")
	if !r.alwaysArmed {
		atomic.OrUint32(rg.CQFlags, uring.CQEventfdDisabled)
	}
	go r.reaper()
	return r, nil
}

// Supported reports whether the kernel supports an io_uring operation,
// named as in the kernel's enum without its prefix ("READ", "FTRUNCATE").
// If not, the error matches ErrNotSupported and says which kernel brought
// the operation.
func (r *Ring) Supported(opname string) error {
	if !r.usable() {
		return errBadRing
	}
	if code, ok := opCodes[opname]; ok {
		if !r.probe.Supported(code) {
			return opFeatureError(code)
		}
		return nil
	}
	return argError("Supported", fmt.Errorf("unknown operation %q: %w", opname, syscall.EINVAL))
}

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
		select {
		case <-s.ready:
			ok = true
		default:
		}
		if ok {
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

// reapIfHolds reaps the CQ if one of its first completions not yet
// reaped has user_data ud. It looks under cqMu, where no other goroutine
// can consume those entries (and the kernel reuse their slots) while it
// reads them; if another goroutine holds cqMu, that one is reaping and
// delivers ud's completion, if there is one. A reap requested while it
// held cqMu (reap's TryLock failed) is made here.
func (r *Ring) reapIfHolds(ud uint64) {
	if !r.cqMu.TryLock() {
		return
	}
	found := false
	if !r.dead {
		rg := r.rings
		tail := uring.LoadAcquire(rg.CQTail)
		for h, i := r.cqHead, 0; h != tail && i < 64; h, i = h+1, i+1 {
			if rg.CQEs[h&rg.CQMask].UserData == ud {
				found = true
				break
			}
		}
	}
	r.cqMu.Unlock()
	if found || r.reapReq.Load() {
		r.reap()
	}
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

// submit submits one operation. Failures before submission complete the op
// with an error; submit itself never fails.
func (r *Ring) submit(o *op, s *uring.SQE, internal bool) {
	if !r.usable() {
		o.fail(errBadRing)
		return
	}
	if err := o.prepErr(); err != nil {
		o.fail(err)
		return
	}
	if !r.probe.Supported(o.opcode) {
		o.fail(opFeatureError(o.opcode))
		return
	}
	idx, ok := r.acquire1(o, s, internal)
	if !ok {
		return // failed, or queued: pump submits it when slots free
	}
	r.claim1(idx, o)
	r.mu.Lock()
	if r.refusesLocked(internal) {
		r.mu.Unlock()
		r.unsubmit(idx, o)
		return
	}
	if !r.waitSQSpace(1) {
		r.mu.Unlock()
		r.unsubmit(idx, o)
		return
	}
	s.UserData = o.userData
	r.rings.SQEs[r.sqTail&r.rings.SQMask] = *s
	r.sqTail++
	uring.StoreRelease(r.rings.SQTail, r.sqTail)
	r.heavy = r.heavy || heavyOp(o)
	r.stats.submitted.Add(1)
	// A multishot operation's results come later: its submitter does not
	// reap, which keeps its stack small (a server's reader goroutine
	// submits one, then parks on an idle connection).
	r.flushLocked(!o.stream)
}

// refusesLocked reports whether the ring, with mu held, refuses to
// publish a user operation (or an internal one): user ones from the
// moment Close begins, internal ones once Close has no more use for them.
func (r *Ring) refusesLocked(internal bool) bool {
	if r.brokenA.Load() {
		return true
	}
	if internal {
		return r.quiet || r.dead
	}
	return r.closed || r.dead
}

// The helpers of submit below keep its frame small: it is on the stack of
// every first Read of a rionet connection (see enterSubmit).

// acquire1 acquires one slot for o. It reports false if o failed, or if
// it was queued to wait for a slot.
func (r *Ring) acquire1(o *op, s *uring.SQE, internal bool) (uint32, bool) {
	var buf [1]uint32
	ops := [1]*op{o}
	idx, err := r.acquire(buf[:0], 1, internal, ops[:], unsafe.Slice(s, 1))
	if err != nil {
		if err != errQueued {
			o.fail(err)
		}
		return 0, false
	}
	return idx[0], true
}

// claim1 is claim for one op.
func (r *Ring) claim1(idx uint32, o *op) {
	var now int64
	r.claim(idx, o, &now)
}

// unsubmit empties and releases slot idx, and fails its op o: the ring
// closed between claim and publication.
func (r *Ring) unsubmit(idx uint32, o *op) {
	r.unclaim(idx)
	r.release(idx)
	o.fail(r.closedErr())
	r.pump()
}

// flushLocked makes sure the published SQEs reach the kernel. Called with mu
// held; returns with it released. If another goroutine is already in the
// enter loop, it will pick our SQEs up (flat combining); otherwise this
// goroutine becomes the one, and afterwards, if reap is set, reaps what
// completed inline.
func (r *Ring) flushLocked(reap bool) {
	if r.submitting {
		r.again = true
		r.mu.Unlock()
		return
	}
	r.submitting = true
	for {
		short := !r.heavy
		r.heavy = false
		r.mu.Unlock()
		r.enterSubmit(short)
		r.mu.Lock()
		if r.brokenA.Load() {
			// No more enters: fail what the kernel never saw, whoever
			// published it.
			r.failUnconsumedLocked()
			r.again = false
		}
		if !r.again {
			r.submitting = false
			r.mu.Unlock()
			break
		}
		r.again = false
	}
	if reap {
		r.reap()
	} else if r.queuedReady.Load() {
		r.pump()
	}
}

// enterSubmit is enter(0, 0, short), with its common case (a short enter
// of which the kernel takes every SQE) in one shallow frame: a goroutine
// that submits and then parks keeps the stack it grew, and a server's
// reader goroutine does that on each idle connection.
func (r *Ring) enterSubmit(short bool) {
	if short && r.short != nil && !r.sqpoll {
		_, errno := r.short.EnterShort(r.rings.SQEntries, 0, 0)
		r.stats.enters.Add(1)
		if errno == 0 && uring.LoadAcquire(r.rings.SQHead) == uring.LoadAcquire(r.rings.SQTail) {
			return
		}
		switch errno {
		case 0, syscall.EINTR, syscall.EAGAIN, syscall.EBUSY:
		case syscall.ENOMEM:
			r.stats.enterErrors.Add(1)
		default:
			r.stats.enterErrors.Add(1)
			r.breakRing(errno)
			return
		}
		// Let enter retry or back off.
	}
	r.enter(0, 0, short)
}

// heavyOp reports whether o may take long to submit, because the kernel
// copies much data while issuing it: such a submission goes through the
// scheduler's blocking-syscall path so that the P is handed off.
func heavyOp(o *op) bool {
	const limit = shortcall.Max
	n := len(o.buf)
	if o.x != nil {
		for _, b := range o.x.bufs {
			n += len(b)
		}
	}
	return n > limit
}

// waitSQSpace makes room for n SQEs, called with mu held. The kernel
// consumes SQEs during enter, so a full SQ is flushed here. It reports
// false if the ring broke (see breakRing): the caller must not publish.
func (r *Ring) waitSQSpace(n uint32) bool {
	for r.sqTail-uring.LoadAcquire(r.rings.SQHead)+n > r.rings.SQEntries {
		if r.brokenA.Load() {
			r.failUnconsumedLocked()
			return false
		}
		if r.sqpoll {
			r.enterFlags(0, 0, uring.EnterSQWait, false)
		} else {
			short := !r.heavy
			r.heavy = false
			r.enter(0, 0, short)
		}
	}
	return !r.brokenA.Load()
}

// breakRing records that io_uring_enter failed with errno, which cannot
// clear: the ring fd was closed behind the ring's back (EBADF), its number
// now names another file (EOPNOTSUPP), or a seccomp filter installed
// after New blocks the call (EPERM, ENOSYS). From then on the ring never
// enters again; operations the kernel never saw fail with the error (see
// failUnconsumedLocked), and so does every new one. Operations the kernel
// already has go on: their completions still reach the mapped CQ and the
// eventfd, so they complete as usual.
func (r *Ring) breakRing(errno syscall.Errno) {
	r.breakOnce.Do(func() {
		r.brokenErr = os.NewSyscallError("io_uring_enter", errno)
		r.brokenA.Store(true)
	})
}

// failUnconsumedLocked fails, with mu held, the operations whose SQEs are
// published but were never consumed by the kernel, and takes them out of
// the SQ, once the ring is broken. Without SQPOLL the kernel reads SQEs
// only inside io_uring_enter, which the ring no longer calls, so their
// memory is the caller's again. With SQPOLL the kernel's thread might
// still read them, so they stay pending until it does (or forever). The
// operations waiting for a slot fail too.
func (r *Ring) failUnconsumedLocked() {
	err := r.brokenErr
	r.failQueue(err, true)
	if r.sqpoll {
		return
	}
	rg := r.rings
	head := uring.LoadAcquire(rg.SQHead)
	var idx []uint32
	var ops []*op
	for i := head; i != r.sqTail; i++ {
		ud := rg.SQEs[i&rg.SQMask].UserData
		j := uint32(ud)
		if j >= uint32(len(r.table.slots)) {
			continue
		}
		if o := r.table.slots[j].op.Load(); o != nil && o.userData == ud {
			r.unclaim(j)
			idx = append(idx, j)
			ops = append(ops, o)
		}
	}
	r.sqTail = head
	uring.StoreRelease(rg.SQTail, head)
	if len(idx) > 0 {
		r.release(idx...)
	}
	for _, o := range ops {
		failQueued(o, err)
	}
}

// enter submits every published SQE. short says that none of them moves
// much data inline.
func (r *Ring) enter(minComplete, flags uint32, short bool) {
	if r.sqpoll {
		if uring.LoadAcquire(r.rings.SQFlags)&uring.SQNeedWakeup == 0 && flags == 0 {
			return
		}
		flags |= uring.EnterSQWakeup
	}
	r.enterFlags(r.rings.SQEntries, minComplete, flags, short)
}

// backoff reaps, to free what the kernel may be waiting on, and gives way
// before attempt number attempt of an enter: a yield at first, then sleeps
// growing to 1 ms.
func (r *Ring) backoff(attempt int) {
	r.drain() // not reap: the caller may hold mu, which pump takes
	if attempt < 10 {
		runtime.Gosched()
		return
	}
	time.Sleep(time.Duration(min(attempt, 100)) * 10 * time.Microsecond)
}

// shortEnterer is implemented by kernels with a cheaper io_uring_enter for
// calls that neither wait nor do much work inline.
type shortEnterer interface {
	EnterShort(toSubmit, minComplete, flags uint32) (int, syscall.Errno)
}

// enterGiveUp is how many attempts enterFlags makes at a transient error
// once Close has begun: about a second of backoff (see backoff).
const enterGiveUp = 1100

func (r *Ring) enterFlags(toSubmit, minComplete, flags uint32, short bool) {
	for attempt := 0; ; attempt++ {
		var errno syscall.Errno
		if r.short != nil && short && flags&(uring.EnterGetEvents|uring.EnterSQWait) == 0 {
			_, errno = r.short.EnterShort(toSubmit, minComplete, flags)
		} else {
			_, errno = r.k.Enter(toSubmit, minComplete, flags)
		}
		r.stats.enters.Add(1)
		switch errno {
		case 0:
			// The kernel may submit fewer SQEs than offered, without an
			// error (io_submit_sqes stops when it cannot allocate a
			// request). Nobody else enters while this goroutine is in the
			// enter loop, so it must not leave published SQEs behind.
			// Found by the simulated kernel (internal/sim).
			if toSubmit == 0 || r.sqpoll || uring.LoadAcquire(r.rings.SQHead) == uring.LoadAcquire(r.rings.SQTail) {
				return
			}
			if attempt == 8 {
				// Still nothing taken: the fd number may have been closed
				// behind the ring's back and reused by another io_uring
				// instance, whose own SQ this enter submitted.
				if v, ok := r.k.(verifier); ok && !v.Verify() {
					r.stats.enterErrors.Add(1)
					r.breakRing(syscall.EBADF)
					return
				}
			}
			r.backoff(attempt)
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN, syscall.EBUSY, syscall.ENOMEM:
			// The kernel is short of memory (ENOMEM counted), or has
			// completions it could not post: it clears, so retry. But
			// Close waits for this loop, so once Close has begun an
			// error that has not cleared after a second or so of
			// retries breaks the ring, as an error that cannot clear
			// does, and the operations the kernel never saw fail with
			// it (TestEnterRetryEndsOnClose).
			if errno == syscall.ENOMEM {
				r.stats.enterErrors.Add(1)
			}
			if attempt >= enterGiveUp && r.closeReq.Load() {
				r.breakRing(errno)
				return
			}
			r.backoff(attempt)
			continue
		default:
			// EBADF, EOPNOTSUPP, EPERM, ENOSYS, EFAULT, EINVAL...: it will
			// not clear, and SQEs left queued would wait for ever.
			r.stats.enterErrors.Add(1)
			r.breakRing(errno)
			return
		}
	}
}

// reap drains the CQ, then submits the queued operations that the freed
// slots let through. It must not be called with mu held.
func (r *Ring) reap() {
	r.drain()
	if r.queuedReady.Load() {
		r.pump()
	}
}

// drain drains the CQ unless another goroutine is draining it, in which
// case that goroutine drains again before it stops.
func (r *Ring) drain() {
	r.reapReq.Store(true)
	for r.reapReq.Load() {
		if !r.cqMu.TryLock() {
			return
		}
		r.reapReq.Store(false)
		if !r.dead {
			r.drainLocked()
		}
		r.cqMu.Unlock()
	}
}

// drainLocked reaps every CQE in the CQ. It completes the ops of a batch
// of CQEs, then releases the CQ entries to the kernel, and only then frees
// the ops' slots: the slots in use never outnumber the free CQ entries.
func (r *Ring) drainLocked() {
	// freed is the Ring's rather than a local array: a goroutine that
	// reaps then parks (a reader of an idle connection) keeps the
	// stack it grew.
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
			if idx, ok := r.complete(&rg.CQEs[r.cqHead&rg.CQMask], &now); ok {
				freed[nfreed] = idx
				nfreed++
			}
			r.cqHead++
		}
		uring.StoreRelease(rg.CQHead, r.cqHead)
		if nfreed > 0 {
			r.release(freed[:nfreed]...)
		}
		r.stats.completed.Add(uint64(n))
	}
}

// complete hands one CQE to its op and empties the op's slot, which the
// caller releases. now caches the time for the latency histogram.
func (r *Ring) complete(c *uring.CQE, now *int64) (uint32, bool) {
	idx := uint32(c.UserData)
	t := &r.table
	if idx >= uint32(len(t.slots)) {
		r.stats.unknown.Add(1)
		return 0, false
	}
	s := &t.slots[idx]
	o := s.op.Load()
	if o == nil || o.userData != c.UserData {
		r.stats.unknown.Add(1)
		return 0, false
	}
	res, flags := c.Res, c.Flags
	if o.stream {
		// A multishot operation: every CQE is queued in its Stream, and
		// the op keeps its slot until the CQE without IORING_CQE_F_MORE.
		streamOf(o).onCQE(res, flags)
		if c.Flags&uring.CQEFMore != 0 {
			return 0, false
		}
	} else if x := o.x; x != nil && x.onCQE != nil {
		// A zero-copy send: every CQE goes to the handler, and the op keeps its slot (and the kernel its
		// memory) until the CQE without IORING_CQE_F_MORE.
		res, flags = x.onCQE(res, flags)
		if c.Flags&uring.CQEFMore != 0 {
			return 0, false
		}
	}
	s.op.Store(nil)
	if s.pinned {
		s.pin.Unpin()
		s.pinned = false
	}
	if s.start != 0 {
		if *now == 0 {
			*now = r.now()
		}
		r.stats.latency[bucket(*now-s.start)].Add(1)
	}
	raceComplete(o)
	o.res = res
	o.cflags = flags
	o.finish()
	return idx, true
}

// cancelOp asks the kernel to cancel o, if it is still in flight. An
// operation still waiting for a slot is withdrawn instead: it completes
// with ECANCELED without reaching the kernel.
func (r *Ring) cancelOp(o *op) {
	if o.state.Load() != statePending {
		return
	}
	if x := o.x; x != nil && x.q != nil && r.withdraw(x.q) {
		return
	}
	c := &Completion[int]{}
	c.ring = r
	c.opcode = uring.OpAsyncCancel
	r.submit(&c.op, &uring.SQE{Opcode: uring.OpAsyncCancel, Fd: -1, Addr: o.userData}, true)
}

// usable reports whether r is a Ring made by New, rather than nil or a
// zero Ring.
func (r *Ring) usable() bool { return r != nil && r.k != nil }

// closedErr is the error of an operation refused by a closed ring.
func (r *Ring) closedErr() error {
	if r.brokenA.Load() {
		return r.brokenErr
	}
	return ErrClosed
}

// now returns the time since the ring was created, never 0.
func (r *Ring) now() int64 { return int64(time.Since(r.epoch)) | 1 }

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
	r.mu.Unlock()
	r.failQueue(ErrClosed, false)

	r.arm()
	cancelAny := r.probe.Supported(uring.OpAsyncCancel)
	var t *time.Timer
	for r.inflight.Load() > 0 && !r.brokenA.Load() {
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
			for i := range r.table.slots {
				if o := r.table.slots[i].op.Load(); o != nil && o.opcode != uring.OpAsyncCancel {
					r.cancelOp(o)
				}
			}
		}
		if r.inflight.Load() == 0 {
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
		case <-r.idle:
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
		if r.inflight.Load() == 0 {
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
	for r.inflight.Load() > 0 {
		if t == nil {
			t = time.NewTimer(period)
		} else {
			t.Reset(period)
		}
		select {
		case <-r.idle:
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

// verifier is implemented by kernels that can tell whether their fd number
// still names their io_uring instance.
type verifier interface{ Verify() bool }

// realKernel is an io_uring instance of the running kernel.
//
// Its fd number can be closed behind its back (a double close elsewhere in
// the program) and then reused by any open. Once it knows that, it never
// uses the number again: not for io_uring_enter or io_uring_register,
// which would reach another file, and not for close, which would close
// someone else's. It knows when the kernel answers EBADF (the number is
// free) or EOPNOTSUPP (it names a file that is not an io_uring), and when
// the number no longer names the inode it had at setup, which Register and
// Close check first and a ring whose enters make no progress asks (see
// Verify). The mappings hold the instance itself alive, so operations the
// kernel already has still complete into them.
type realKernel struct {
	fd   int
	p    uring.Params
	rg   *uring.Rings
	dev  uint64
	ino  uint64
	lost atomic.Bool // fd no longer names this instance
}

func newRealKernel(entries uint32, p *uring.Params) (kernel, error) {
	want := *p
	p.Flags |= uring.SetupSubmitAll
	fd, err := uring.Setup(entries, p)
	if errors.Is(err, syscall.EINVAL) {
		// IORING_SETUP_SUBMIT_ALL came with Linux 5.18; retry without.
		*p = want
		fd, err = uring.Setup(entries, p)
	}
	if err != nil {
		if want.Flags&(uring.SetupSQPoll|uring.SetupCoopTaskrun) != 0 && (errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL)) {
			if fd, perr := uring.Setup(1, &uring.Params{}); perr == nil {
				unix.Close(fd)
				if want.Flags&uring.SetupCoopTaskrun != 0 {
					return nil, &FeatureError{Feature: "IORING_SETUP_COOP_TASKRUN", MinKernel: "5.19", Err: err}
				}
				return nil, &FeatureError{Feature: "IORING_SETUP_SQPOLL", MinKernel: "5.11", Err: err}
			}
		}
		return nil, setupError(err)
	}
	k := &realKernel{fd: fd, p: *p}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err == nil {
		k.dev, k.ino = st.Dev, st.Ino
	}
	if k.p.Features&uring.FeatNoDrop == 0 {
		unix.Close(fd)
		return nil, &FeatureError{Feature: "IORING_FEAT_NODROP", MinKernel: "5.5"}
	}
	k.rg, err = uring.Map(fd, &k.p)
	if err != nil {
		unix.Close(fd)
		if lerr := limitError("mmap of the io_uring rings", err); lerr != nil {
			return nil, lerr
		}
		return nil, err
	}
	return k, nil
}

func (k *realKernel) Rings() *uring.Rings   { return k.rg }
func (k *realKernel) Params() *uring.Params { return &k.p }

func (k *realKernel) Enter(toSubmit, minComplete, flags uint32) (int, syscall.Errno) {
	if k.lost.Load() {
		return 0, syscall.EBADF
	}
	n, errno := uring.Enter(k.fd, toSubmit, minComplete, flags)
	k.check(errno)
	return n, errno
}

// EnterShort implements shortEnterer.
func (k *realKernel) EnterShort(toSubmit, minComplete, flags uint32) (int, syscall.Errno) {
	if k.lost.Load() {
		return 0, syscall.EBADF
	}
	n, errno := uring.EnterShort(k.fd, toSubmit, minComplete, flags)
	if errno != 0 {
		k.check(errno)
	}
	return n, errno
}

// check marks the fd lost after an answer that says it no longer names
// this instance.
func (k *realKernel) check(errno syscall.Errno) {
	if errno == syscall.EBADF || errno == syscall.EOPNOTSUPP {
		k.lost.Store(true)
	}
}

// Verify reports whether the fd number still names this instance, and
// marks it lost if not. It costs an fstat.
func (k *realKernel) Verify() bool {
	if k.lost.Load() {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(k.fd, &st); err != nil || st.Dev != k.dev || st.Ino != k.ino {
		k.lost.Store(true)
		return false
	}
	return true
}

func (k *realKernel) Register(opcode uint32, arg unsafe.Pointer, nr uint32) (int, error) {
	if !k.Verify() {
		return -1, os.NewSyscallError("io_uring_register", syscall.EBADF)
	}
	n, err := uring.Register(k.fd, opcode, arg, nr)
	if errnoIs(err, syscall.EBADF) || errnoIs(err, syscall.EOPNOTSUPP) {
		k.lost.Store(true)
	}
	return n, err
}

func (k *realKernel) Close() error {
	k.rg.Unmap()
	if !k.Verify() {
		// Closed behind our back: the number is someone else's now, or
		// nobody's. Unmapping released the instance.
		return nil
	}
	if err := unix.Close(k.fd); err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}
