// Package sim is a simulated io_uring kernel. It implements uring.Kernel:
// package rio drives it through the same shared-memory protocol as the
// running kernel's io_uring (SQEs and the SQ tail written into Rings,
// io_uring_enter, CQEs read back, an eventfd signalled on completions), and
// its submission, reaping, backpressure and Close logic run unchanged on top.
//
// The simulated kernel executes the operations itself, mostly with the
// corresponding system calls on the caller's descriptors and memory, and
// completes them in a seeded random order with seeded faults: short reads
// and writes, EINTR and EAGAIN results, EINTR, EAGAIN and EBUSY from enter,
// short submissions, CQ overflow, cancellations that lose the race with a
// running operation. Package riotest is its exported face.
//
// # Determinism
//
// Every decision the simulated kernel makes about an operation (its delay,
// whether it fails, completes short, overflows the CQ, loses a cancellation
// race) comes from a random stream seeded by the Config's seed and the
// operation's submission number; every decision about an io_uring_enter call
// from the seed and the call's number. Delays are counted in ticks of a
// virtual clock that advances by one for every SQE consumed, and, when the
// program is blocked waiting for a completion, jumps to the next deadline.
// So a program that submits from one goroutine sees the same completions, in
// the same order, with the same faults, every time it runs with the same
// seed. Concurrent submitters, real descriptors that become ready (pipes,
// sockets) and wall-clock timeouts add the nondeterminism they have on the
// real kernel.
package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

// Faults says which faults the simulated kernel injects and how often.
// Probabilities are per operation (or per io_uring_enter call for the Enter
// faults), from 0 (never) to 1 (always). The zero value injects nothing and
// completes every operation inline, in submission order.
type Faults struct {
	// MaxDelay is the largest delay, in virtual ticks, before an operation
	// completes; each operation's delay is drawn uniformly from 0 to
	// MaxDelay. Delays reorder completions. 0 completes every operation
	// during the io_uring_enter that submits it.
	MaxDelay int

	// ShortIO makes reads, writes, sends and receives transfer fewer bytes
	// than asked (at least one).
	ShortIO float64

	// OpEINTR and OpEAGAIN make data operations (read, write and their
	// vectored and fixed forms, send, recv, sendmsg, recvmsg, accept,
	// connect) fail with EINTR or EAGAIN without having transferred
	// anything.
	OpEINTR, OpEAGAIN float64

	// EnterEINTR, EnterEAGAIN and EnterEBUSY make an io_uring_enter call
	// that has SQEs to submit fail with that errno without consuming any.
	EnterEINTR, EnterEAGAIN, EnterEBUSY float64

	// ShortSubmit makes an io_uring_enter call consume only some of the
	// SQEs it could (at least one; never splitting a linked chain), as the
	// kernel does when it runs short of memory.
	ShortSubmit float64

	// Overflow puts a completion into the kernel's overflow list instead of
	// the CQ, as if the CQ were full: the SQ flag IORING_SQ_CQ_OVERFLOW is
	// raised and the completion appears in the CQ only after an
	// io_uring_enter with IORING_ENTER_GETEVENTS.
	Overflow float64

	// CancelRace makes an operation that has been queued with a delay be
	// "already running" when a cancellation reaches it: the cancellation
	// fails with EALREADY (or is not counted) and the operation completes
	// normally, or, if it would have to wait (for a descriptor to become
	// ready), with EINTR, as when io-wq interrupts a blocked worker.
	CancelRace float64

	// NoBufs makes an operation that selects a provided buffer
	// (IOSQE_BUFFER_SELECT) fail with ENOBUFS even though buffers are
	// available.
	NoBufs float64
}

// Config configures a simulated kernel.
type Config struct {
	// Seed seeds every random decision.
	Seed uint64
	// Faults selects the injected faults.
	Faults Faults
	// StartIndex is the initial value of the SQ and CQ head and tail
	// indices; a value near 2^32 exercises their wrap-around.
	StartIndex uint32
	// Disable lists opcodes that the probe reports as unsupported and that
	// fail with EINVAL if submitted anyway.
	Disable []uint8
	// Record keeps a copy of every SQE consumed and every CQE posted, for
	// SQEs and Completions.
	Record bool
	// BeforeExec, if set, is called with every SQE just before the
	// simulated kernel executes it (touches its memory), from the
	// goroutine that executes it and with the kernel's lock held: it must
	// not call into the ring.
	BeforeExec func(uring.SQE)
	// OnSubmit, if set, is called with every SQE as the kernel consumes
	// it, with the kernel's lock held, while the memory it points to is
	// certainly borrowed: it must not call into the ring.
	OnSubmit func(uring.SQE)
	// Override, if set, is called after BeforeExec, under the same
	// conditions; if it returns true, the operation completes with res
	// instead of being executed (its fields are validated first, as
	// always). It lets a test dictate results, or submit operations whose
	// effects it does not want.
	Override func(uring.SQE) (res int32, ok bool)
}

// Stats counts what a simulated kernel did, per fault class.
type Stats struct {
	SQEs        uint64 // SQEs consumed
	CQEs        uint64 // completions posted
	Enters      uint64 // io_uring_enter calls
	EnterErrors uint64 // injected EINTR, EAGAIN and EBUSY from enter
	ShortSubmit uint64 // enter calls that consumed fewer SQEs than they could
	ShortIO     uint64 // short reads, writes, sends, receives
	OpErrors    uint64 // injected EINTR and EAGAIN results
	Overflows   uint64 // completions that went to the overflow list
	LinkCancels uint64 // ECANCELED posted for the rest of a broken chain
	Cancelled   uint64 // operations cancelled by ASYNC_CANCEL or a link timeout
	CancelRaces uint64 // cancellations that found the operation running
	NoBufs      uint64 // injected ENOBUFS
	Delayed     uint64 // operations that did not complete inline
	CQFull      uint64 // completions that found the CQ really full
	MaxInFlight int    // most operations in flight at once
}

// Op states.
const (
	stWaiting = iota // not issued: behind a chain predecessor or a drain
	stTimed          // issued, completes when the virtual clock reaches deadline
	stBlocked        // waits for its descriptor to become ready
	stTimer          // a timeout: completes at a wall-clock deadline
	stArmedLT        // a link timeout whose target is running
	stDone
)

// req is one operation inside the simulated kernel.
type req struct {
	sqe      uring.SQE
	seq      uint64
	state    int
	deadline uint64    // virtual tick, stTimed
	wall     time.Time // stTimer, stArmedLT

	// Fault decisions, drawn at submission from the op's own stream.
	delay      uint64
	errno      syscall.Errno
	short      float64 // fraction of the length to transfer, 0: all
	cancelRace bool
	interrupt  bool // a cancellation found it running: it must not block
	overflow   bool
	noBufs     bool

	// Chains.
	next     *req // next member of the linked chain
	lt       *req // link timeout guarding this op
	ltTarget *req // for a link timeout: the op it guards
	drain    bool // chain head must wait for everything before it
	failed   bool // completed with an error or short: breaks a soft link
	res      int32
	want     int64 // bytes a read or write asked for, -1 for other ops

	// Blocked ops.
	received int64 // bytes a multishot receive has delivered
	pollFd   int32
	pollEv   int16
}

// Kernel is a simulated io_uring instance. Create it with New; package rio
// drives it through the uring.Kernel methods.
type Kernel struct {
	cfg   Config
	p     uring.Params
	rg    *uring.Rings
	probe map[uring.Op]bool

	mu        sync.Mutex
	cond      sync.Cond // broadcast when CQEs are posted
	seq       uint64    // SQEs consumed
	clock     uint64    // virtual ticks
	enterN    uint64
	live      []*req // every op not yet completed, in submission order
	nlive     int
	byUD      map[uint64]*req
	deferq    []*req // chain heads held back by a drain
	drainNxt  bool
	runq      []*req // issued ops due now
	overflow  []uring.CQE
	efd       int // dup of the registered eventfd, or -1
	wakeFd    int // eventfd that wakes the worker
	bufs      []unix.Iovec
	files     []int // registered files (dups), -1 for empty
	pbufs     map[uint16]*bufGroup
	violate   []string
	stats     Stats
	log       []uring.SQE
	cqeLog    []Completion
	lastAct   time.Time
	lastHead  uint32 // CQ head and armed state the worker saw last
	lastArmed bool
	waiters   int // enter calls blocked for min_complete
	closed    bool
	done      chan struct{}
}

// New returns a simulated kernel for a ring of entries SQEs set up with p,
// as io_uring_setup would: it fills in p's sizes, features and offsets. It
// starts a worker goroutine, which Close stops.
func New(cfg Config, entries uint32, p *uring.Params) (*Kernel, error) {
	if entries == 0 {
		return nil, os.NewSyscallError("io_uring_setup", syscall.EINVAL)
	}
	// Task-running modes only change when the kernel runs completion work,
	// which the simulated kernel does in its worker anyway.
	const known = uring.SetupCQSize | uring.SetupClamp | uring.SetupSQPoll | uring.SetupSubmitAll |
		uring.SetupCoopTaskrun | uring.SetupTaskrunFlag | uring.SetupSingleIssuer | uring.SetupDeferTaskrun
	if p.Flags&^known != 0 {
		return nil, os.NewSyscallError("io_uring_setup", syscall.EINVAL)
	}
	if entries > 32768 {
		if p.Flags&uring.SetupClamp == 0 {
			return nil, os.NewSyscallError("io_uring_setup", syscall.EINVAL)
		}
		entries = 32768
	}
	sq := roundPow2(entries)
	cq := 2 * sq
	if p.Flags&uring.SetupCQSize != 0 {
		if p.CQEntries == 0 {
			return nil, os.NewSyscallError("io_uring_setup", syscall.EINVAL)
		}
		cq = p.CQEntries
		if cq > 65536 {
			if p.Flags&uring.SetupClamp == 0 {
				return nil, os.NewSyscallError("io_uring_setup", syscall.EINVAL)
			}
			cq = 65536
		}
		cq = roundPow2(cq)
		if cq < sq {
			return nil, os.NewSyscallError("io_uring_setup", syscall.EINVAL)
		}
	}
	p.SQEntries, p.CQEntries = sq, cq
	p.Features = uring.FeatSingleMmap | uring.FeatNoDrop | uring.FeatSubmitStable | uring.FeatRWCurPos |
		uring.FeatFastPoll | uring.FeatPoll32Bits | uring.FeatExtArg | uring.FeatNativeWorkers
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("eventfd", err)
	}
	k := &Kernel{
		cfg:     cfg,
		p:       *p,
		byUD:    make(map[uint64]*req),
		efd:     -1,
		wakeFd:  wake,
		lastAct: time.Now(),
		done:    make(chan struct{}),
		probe:   make(map[uring.Op]bool),
	}
	k.cond.L = &k.mu
	k.rg = uring.NewRings(&k.p)
	p.SQOff, p.CQOff = k.p.SQOff, k.p.CQOff
	for _, ix := range []*uint32{k.rg.SQHead, k.rg.SQTail, k.rg.CQHead, k.rg.CQTail} {
		*ix = cfg.StartIndex
	}
	for op := range execTable {
		if execTable[op] != nil {
			k.probe[uring.Op(op)] = true
		}
	}
	for _, op := range cfg.Disable {
		delete(k.probe, uring.Op(op))
	}
	if k.p.Flags&uring.SetupSQPoll != 0 {
		// The simulated SQ thread is always asleep: every submission
		// needs an io_uring_enter with IORING_ENTER_SQ_WAKEUP.
		atomic.OrUint32(k.rg.SQFlags, uring.SQNeedWakeup)
	}
	go k.worker()
	return k, nil
}

func roundPow2(n uint32) uint32 {
	p := uint32(1)
	for p < n {
		p <<= 1
	}
	return p
}

// Rings returns the simulated rings.
func (k *Kernel) Rings() *uring.Rings { return k.rg }

// Params returns the parameters the kernel was set up with.
func (k *Kernel) Params() *uring.Params { return &k.p }

// Stats returns what the kernel did so far.
func (k *Kernel) Stats() Stats {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stats
}

// SetFaults changes the faults injected from now on.
func (k *Kernel) SetFaults(f Faults) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.cfg.Faults = f
}

// SQEs returns a copy of every SQE consumed so far, if Config.Record is set.
func (k *Kernel) SQEs() []uring.SQE {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]uring.SQE(nil), k.log...)
}

// Completion is a posted CQE, as recorded with Config.Record.
type Completion struct {
	Seq    uint64 // the operation's submission number, from 1
	Opcode uint8
	Res    int32
	Flags  uint32
}

// Completions returns the CQEs posted so far, in order, with the opcode of
// their operation, if Config.Record is set. Unlike user_data, which the
// ring chooses, these are the same in every run of a seed by one goroutine.
func (k *Kernel) Completions() []Completion {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Completion(nil), k.cqeLog...)
}

// Violations returns the protocol violations seen so far: things the
// kernel's user did that a real kernel would silently punish (a user_data
// reused while its operation is in flight, an SQ index out of range, Close
// with operations in flight or completions not reaped).
func (k *Kernel) Violations() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.violate...)
}

func (k *Kernel) violation(format string, args ...any) {
	k.violate = append(k.violate, fmt.Sprintf(format, args...))
}

// opRand returns the random stream of the op with submission number seq.
func (k *Kernel) opRand(seq uint64) *rand.Rand {
	return rand.New(rand.NewPCG(k.cfg.Seed, seq*0x9e3779b97f4a7c15+1))
}

func chance(r *rand.Rand, p float64) bool { return p > 0 && r.Float64() < p }

// Enter is io_uring_enter(2).
func (k *Kernel) Enter(toSubmit, minComplete, flags uint32) (int, syscall.Errno) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return 0, syscall.EBADF
	}
	k.enterN++
	k.stats.Enters++
	k.lastAct = time.Now()
	rg := k.rg
	head := atomic.LoadUint32(rg.SQHead)
	avail := atomic.LoadUint32(rg.SQTail) - head
	if avail > rg.SQEntries {
		k.violation("SQ tail %d is %d entries past head %d, more than the SQ holds", head+avail, avail, head)
		avail = rg.SQEntries
	}
	n := min(toSubmit, avail)
	if k.p.Flags&uring.SetupSQPoll != 0 {
		n = avail // the SQ thread takes whatever is there
	}
	f := &k.cfg.Faults
	if n > 0 {
		er := rand.New(rand.NewPCG(k.cfg.Seed^0x5eed, k.enterN))
		x := er.Float64()
		for _, e := range []struct {
			p     float64
			errno syscall.Errno
		}{{f.EnterEINTR, syscall.EINTR}, {f.EnterEAGAIN, syscall.EAGAIN}, {f.EnterEBUSY, syscall.EBUSY}} {
			if x < e.p {
				k.stats.EnterErrors++
				return 0, e.errno
			}
			x -= e.p
		}
		if n > 1 && chance(er, f.ShortSubmit) {
			if m := k.chainBoundary(head, 1+uint32(er.IntN(int(n-1)))); m < n {
				n = m
				k.stats.ShortSubmit++
			}
		}
	}
	k.consume(head, n)
	k.run()
	// Like the kernel, an enter that submitted fewer SQEs than it was
	// asked to (short of memory, or fewer were published) returns at
	// once instead of waiting for completions.
	if flags&uring.EnterGetEvents != 0 && (n == toSubmit || minComplete == 0) {
		k.flushOverflow()
		for minComplete > 0 && !k.closed && atomic.LoadUint32(rg.CQTail)-atomic.LoadUint32(rg.CQHead) < minComplete {
			k.waiters++
			k.poke()
			k.cond.Wait()
			k.waiters--
			k.flushOverflow()
		}
	}
	return int(n), 0
}

// chainBoundary returns the smallest count >= want of SQEs from head that
// ends a linked chain.
func (k *Kernel) chainBoundary(head, want uint32) uint32 {
	rg := k.rg
	avail := atomic.LoadUint32(rg.SQTail) - head
	m := uint32(0)
	for m < avail {
		s := k.sqeAt(head + m)
		m++
		if s == nil || s.Flags&(uring.SQEIOLink|uring.SQEIOHardlink) == 0 {
			if m >= want {
				return m
			}
		}
	}
	return avail
}

func (k *Kernel) sqeAt(i uint32) *uring.SQE {
	rg := k.rg
	idx := i & rg.SQMask
	if rg.SQArray != nil {
		idx = rg.SQArray[idx]
	}
	if idx >= rg.SQEntries {
		return nil
	}
	return &rg.SQEs[idx]
}

// consume takes n SQEs from the SQ, forms their chains and issues them.
func (k *Kernel) consume(head, n uint32) {
	if n == 0 {
		return
	}
	var heads []*req
	var prev *req // last member of an open chain
	for i := uint32(0); i < n; i++ {
		s := k.sqeAt(head + i)
		if s == nil {
			k.violation("SQ array entry %d out of range", head+i)
			atomic.AddUint32(k.rg.SQDropped, 1)
			continue
		}
		r := k.accept(*s)
		if prev != nil {
			if r.sqe.Opcode == uring.OpLinkTimeout && prev.lt == nil && prev.ltTarget == nil {
				prev.lt = r
				r.ltTarget = prev
			}
			prev.next = r
			if r.sqe.Flags&uring.SQEIODrain != 0 && len(heads) > 0 {
				heads[len(heads)-1].drain = true
			}
		} else {
			heads = append(heads, r)
		}
		if r.sqe.Flags&(uring.SQEIOLink|uring.SQEIOHardlink) != 0 {
			prev = r
		} else {
			prev = nil
		}
	}
	atomic.StoreUint32(k.rg.SQHead, head+n)
	for _, h := range heads {
		if h.sqe.Opcode == uring.OpLinkTimeout {
			// A link timeout must follow the operation it guards.
			k.failChain(h, -int32(syscall.EINVAL))
			continue
		}
		if h.sqe.Flags&uring.SQEIODrain != 0 {
			h.drain = true
		}
		if k.drainNxt {
			h.drain = true
			k.drainNxt = false
		}
		if h.drain {
			k.drainNxt = true
		}
		if h.drain || len(k.deferq) > 0 {
			k.deferq = append(k.deferq, h)
			continue
		}
		k.issue(h)
	}
	k.processDefer()
}

// accept records one SQE as an op and draws its faults.
func (k *Kernel) accept(s uring.SQE) *req {
	k.seq++
	k.clock++
	k.stats.SQEs++
	if k.cfg.Record {
		k.log = append(k.log, s)
	}
	if k.cfg.OnSubmit != nil {
		k.cfg.OnSubmit(s)
	}
	r := &req{sqe: s, seq: k.seq, state: stWaiting, want: -1}
	rnd := k.opRand(r.seq)
	f := &k.cfg.Faults
	if f.MaxDelay > 0 {
		r.delay = uint64(rnd.IntN(f.MaxDelay + 1))
	}
	x := rnd.Float64()
	switch {
	case x < f.OpEINTR:
		r.errno = syscall.EINTR
	case x < f.OpEINTR+f.OpEAGAIN:
		r.errno = syscall.EAGAIN
	}
	if chance(rnd, f.ShortIO) {
		r.short = rnd.Float64()
	}
	r.cancelRace = chance(rnd, f.CancelRace)
	r.overflow = chance(rnd, f.Overflow)
	r.noBufs = chance(rnd, f.NoBufs)
	if old, ok := k.byUD[s.UserData]; ok && old.state != stDone {
		k.violation("user_data %#x reused while op %d (opcode %d) is in flight", s.UserData, old.seq, old.sqe.Opcode)
	}
	k.byUD[s.UserData] = r
	k.live = append(k.live, r)
	k.nlive++
	k.stats.MaxInFlight = max(k.stats.MaxInFlight, k.nlive)
	return r
}

// issue starts an op whose predecessors are done.
func (k *Kernel) issue(r *req) {
	if lt := r.lt; lt != nil {
		ts, err := k.timespec(lt)
		if err != 0 {
			lt.state = stArmedLT
			lt.wall = time.Now()
		} else {
			lt.state = stArmedLT
			lt.wall = time.Now().Add(ts)
		}
	}
	switch r.sqe.Opcode {
	case uring.OpTimeout:
		ts, err := k.timespec(r)
		if err != 0 || r.sqe.Off != 0 || r.sqe.OpFlags&^uring.TimeoutETimeSuccess != 0 {
			r.state = stTimed
			r.deadline = k.clock
			k.runq = append(k.runq, r)
			return
		}
		r.state = stTimer
		r.wall = time.Now().Add(ts)
		k.poke()
		return
	}
	r.state = stTimed
	r.deadline = k.clock + r.delay
	if r.delay == 0 {
		k.runq = append(k.runq, r)
	} else {
		k.stats.Delayed++
		k.poke()
	}
}

// run executes the ops due now, and what their completions make due.
func (k *Kernel) run() {
	for len(k.runq) > 0 {
		r := k.runq[0]
		k.runq = k.runq[1:]
		if r.state == stTimed {
			k.execute(r)
		}
	}
	k.runq = nil
}

// execute runs an op whose delay has passed.
func (k *Kernel) execute(r *req) {
	if r.errno != 0 && retryable[r.sqe.Opcode] {
		k.stats.OpErrors++
		k.complete(r, -int32(r.errno), 0)
		return
	}
	if k.cfg.BeforeExec != nil {
		k.cfg.BeforeExec(r.sqe)
	}
	res, flags, block := k.exec(r)
	if block && r.interrupt {
		// Cancelled while running: the kernel interrupts the worker
		// running it, as io-wq does with a signal.
		k.complete(r, errno(syscall.EINTR), 0)
		return
	}
	if block {
		r.state = stBlocked
		k.poke()
		return
	}
	k.complete(r, res, flags)
}

// retryable lists the opcodes that OpEINTR and OpEAGAIN apply to.
var retryable = map[uring.Op]bool{
	uring.OpRead: true, uring.OpWrite: true, uring.OpReadv: true, uring.OpWritev: true,
	uring.OpReadFixed: true, uring.OpWriteFixed: true, uring.OpSend: true, uring.OpRecv: true,
	uring.OpSendmsg: true, uring.OpRecvmsg: true, uring.OpAccept: true, uring.OpConnect: true,
}

// complete posts r's CQE and moves its chain on.
func (k *Kernel) complete(r *req, res int32, flags uint32) {
	if r.state == stDone {
		return
	}
	r.state = stDone
	r.res = res
	k.nlive--
	k.post(r, res, flags)
	switch {
	case res == -int32(syscall.ETIME) && r.sqe.Opcode == uring.OpTimeout && r.sqe.OpFlags&uring.TimeoutETimeSuccess != 0:
	case res < 0:
		r.failed = true
	case r.want >= 0 && int64(res) < r.want:
		// A short read or write breaks a soft link, as in the kernel.
		r.failed = true
	}
	nxt := r.next
	if lt := r.lt; lt != nil {
		if lt.state != stDone {
			// The op finished first: the timeout is removed.
			lt.state = stDone
			k.nlive--
			k.post(lt, -int32(syscall.ECANCELED), 0)
		}
		nxt = lt.next
	}
	if nxt != nil {
		if r.failed && r.sqe.Flags&uring.SQEIOHardlink == 0 {
			k.failChain(nxt, -int32(syscall.ECANCELED))
		} else {
			k.issue(nxt)
		}
	}
	k.processDefer()
	k.compact()
}

// failChain completes r and every op linked after it with res.
func (k *Kernel) failChain(r *req, res int32) {
	for ; r != nil; r = r.next {
		if r.state == stDone {
			continue
		}
		r.state = stDone
		r.res = res
		k.nlive--
		if res == -int32(syscall.ECANCELED) {
			k.stats.LinkCancels++
		}
		k.post(r, res, 0)
		res = -int32(syscall.ECANCELED)
	}
	k.processDefer()
	k.compact()
}

// post writes a CQE into the CQ, or the overflow list.
func (k *Kernel) post(r *req, res int32, flags uint32) {
	if r.sqe.Flags&uring.SQECQESkipSuccess != 0 && res >= 0 && flags&uring.CQEFMore == 0 {
		return
	}
	k.stats.CQEs++
	cqe := uring.CQE{UserData: r.sqe.UserData, Res: res, Flags: flags}
	rg := k.rg
	tail := atomic.LoadUint32(rg.CQTail)
	full := tail-atomic.LoadUint32(rg.CQHead) >= rg.CQEntries
	if full {
		k.stats.CQFull++
	}
	if k.cfg.Record {
		k.cqeLog = append(k.cqeLog, Completion{Seq: r.seq, Opcode: uint8(r.sqe.Opcode), Res: res, Flags: flags})
	}
	if full || len(k.overflow) > 0 || r.overflow {
		k.overflow = append(k.overflow, cqe)
		k.stats.Overflows++
		atomic.OrUint32(rg.SQFlags, uring.SQCQOverflow)
		atomic.AddUint32(rg.CQOverflow, 0) // NODROP: nothing is dropped
	} else {
		rg.CQEs[tail&rg.CQMask] = cqe
		atomic.StoreUint32(rg.CQTail, tail+1)
	}
	k.signal()
}

// signal wakes the ring's waiters: enter calls blocked for min_complete
// and, unless the application disabled it, the registered eventfd.
func (k *Kernel) signal() {
	if k.waiters > 0 {
		k.cond.Broadcast()
	}
	if k.efd < 0 {
		return
	}
	if atomic.LoadUint32(k.rg.CQFlags)&uring.CQEventfdDisabled != 0 {
		return
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	for {
		if _, err := unix.Write(k.efd, one[:]); err != unix.EINTR {
			return
		}
	}
}

// flushOverflow moves overflowed CQEs into the CQ as far as it has room.
func (k *Kernel) flushOverflow() {
	if len(k.overflow) == 0 {
		return
	}
	rg := k.rg
	moved := false
	for len(k.overflow) > 0 {
		tail := atomic.LoadUint32(rg.CQTail)
		if tail-atomic.LoadUint32(rg.CQHead) >= rg.CQEntries {
			break
		}
		rg.CQEs[tail&rg.CQMask] = k.overflow[0]
		atomic.StoreUint32(rg.CQTail, tail+1)
		k.overflow = k.overflow[1:]
		moved = true
	}
	if len(k.overflow) == 0 {
		k.overflow = nil
		atomic.AndUint32(rg.SQFlags, ^uint32(uring.SQCQOverflow))
	}
	if moved {
		k.signal()
	}
}

// processDefer issues the chains a drain held back, as far as it may.
func (k *Kernel) processDefer() {
	for len(k.deferq) > 0 {
		h := k.deferq[0]
		if h.drain {
			for _, r := range k.live {
				if r.seq >= h.seq {
					break
				}
				if r.state != stDone {
					return
				}
			}
		}
		k.deferq = k.deferq[1:]
		k.issue(h)
	}
	k.deferq = nil
}

// compact drops completed ops from live.
func (k *Kernel) compact() {
	if len(k.live) < 64 || k.nlive > len(k.live)/2 {
		return
	}
	j := 0
	for _, r := range k.live {
		if r.state != stDone {
			k.live[j] = r
			j++
		} else if k.byUD[r.sqe.UserData] == r {
			delete(k.byUD, r.sqe.UserData)
		}
	}
	clear(k.live[j:])
	k.live = k.live[:j]
}

// poke wakes the worker.
func (k *Kernel) poke() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(k.wakeFd, one[:])
}

// armed reports whether somebody waits for a completion.
func (k *Kernel) armed() bool {
	return k.waiters > 0 || (k.efd >= 0 && atomic.LoadUint32(k.rg.CQFlags)&uring.CQEventfdDisabled == 0)
}

// Quiet periods after which the worker advances the virtual clock to the
// next deadline: short while the program waits for a completion, longer
// while it does not (it may be about to submit more, which also advances
// the clock, deterministically).
//
// Reaping and arming count as activity: the quiet period starts over when
// the CQ head moves or the eventfd is armed or disarmed, so that a waiter
// woken by one step is back to submitting before the next step is taken.
const (
	quietArmed = 100 * time.Microsecond
	quietIdle  = 50 * time.Millisecond
)

// worker completes delayed, blocked and timed ops in the background, as
// the kernel's async machinery does.
func (k *Kernel) worker() {
	defer close(k.done)
	var fds []unix.PollFd
	var blocked []*req
	for {
		k.mu.Lock()
		if k.closed {
			k.mu.Unlock()
			return
		}
		now := time.Now()
		if h, a := atomic.LoadUint32(k.rg.CQHead), k.armed(); h != k.lastHead || a != k.lastArmed {
			k.lastHead, k.lastArmed = h, a
			k.lastAct = now
		}
		k.fireTimers(now)
		k.advance(now)
		k.run()
		k.checkStranded(now)

		// Sleep until a descriptor becomes ready, a timer or quiet period
		// ends, or Enter pokes.
		wait := time.Duration(-1)
		fds = append(fds[:0], unix.PollFd{Fd: int32(k.wakeFd), Events: unix.POLLIN})
		blocked = blocked[:0]
		hasTimed := false
		for _, r := range k.live {
			switch r.state {
			case stBlocked:
				fds = append(fds, unix.PollFd{Fd: r.pollFd, Events: r.pollEv})
				blocked = append(blocked, r)
			case stTimer, stArmedLT:
				wait = minWait(wait, r.wall.Sub(now))
			case stTimed:
				hasTimed = true
			}
		}
		if atomic.LoadUint32(k.rg.SQTail) != atomic.LoadUint32(k.rg.SQHead) || len(k.overflow) > 0 {
			wait = minWait(wait, max(strandedAfter-now.Sub(k.lastAct), 100*time.Millisecond))
		}
		if hasTimed {
			// Arming makes no system call: look again soon.
			q := quietIdle
			if k.armed() {
				q = quietArmed
			}
			wait = minWait(wait, min(max(q-now.Sub(k.lastAct), 0), quietArmed))
		}
		k.mu.Unlock()

		var ts *unix.Timespec
		if wait >= 0 {
			t := unix.NsecToTimespec(int64(max(wait, time.Microsecond)))
			ts = &t
		}
		n, err := unix.Ppoll(fds, ts, nil)
		if err != nil || n == 0 {
			continue
		}
		if fds[0].Revents != 0 {
			var buf [8]byte
			unix.Read(k.wakeFd, buf[:])
		}
		k.mu.Lock()
		for i, r := range blocked {
			if fds[i+1].Revents != 0 && r.state == stBlocked {
				k.retryBlocked(r)
			}
		}
		k.run()
		k.mu.Unlock()
	}
}

func minWait(a, b time.Duration) time.Duration {
	if b < 0 {
		b = 0
	}
	if a < 0 || b < a {
		return b
	}
	return a
}

// fireTimers completes the timeouts whose time has come.
func (k *Kernel) fireTimers(now time.Time) {
	var due []*req
	for _, r := range k.live {
		if (r.state == stTimer || r.state == stArmedLT) && !now.Before(r.wall) {
			due = append(due, r)
		}
	}
	for _, r := range due {
		if r.state == stDone {
			continue
		}
		if r.state == stTimer {
			k.complete(r, -int32(syscall.ETIME), 0)
			continue
		}
		// A link timeout fired: cancel its target.
		t := r.ltTarget
		if t == nil || t.state == stDone {
			continue
		}
		if t.state == stTimed && t.cancelRace {
			t.interrupt = true
			k.stats.CancelRaces++
			r.state = stDone
			k.nlive--
			k.post(r, -int32(syscall.EALREADY), 0)
			continue
		}
		r.state = stDone
		k.nlive--
		k.post(r, -int32(syscall.ETIME), 0)
		k.stats.Cancelled++
		k.complete(t, -int32(syscall.ECANCELED), 0)
	}
}

// advance moves the virtual clock to the next deadline once the program has
// been quiet for long enough, and runs what is due.
func (k *Kernel) advance(now time.Time) {
	q := quietIdle
	if k.armed() {
		q = quietArmed
	}
	next := uint64(0)
	found := false
	for _, r := range k.live {
		if r.state == stTimed && (!found || r.deadline < next) {
			next, found = r.deadline, true
		}
	}
	if found && next > k.clock && now.Sub(k.lastAct) >= q {
		k.clock = next
	}
	if !found {
		return
	}
	var due []*req
	for _, r := range k.live {
		if r.state == stTimed && r.deadline <= k.clock {
			due = append(due, r)
		}
	}
	sort.SliceStable(due, func(i, j int) bool { return due[i].deadline < due[j].deadline })
	k.runq = append(k.runq, due...)
}

// Register is io_uring_register(2).
func (k *Kernel) Register(opcode uint32, arg unsafe.Pointer, nr uint32) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	fail := func(e syscall.Errno) (int, error) { return -1, os.NewSyscallError("io_uring_register", e) }
	if k.closed {
		return fail(syscall.EBADF)
	}
	switch opcode {
	case uring.RegisterProbe:
		if arg == nil || nr == 0 {
			return fail(syscall.EINVAL)
		}
		pr := (*uring.Probe)(arg)
		*pr = uring.Probe{}
		last := uring.Op(0)
		for op := range k.probe {
			last = max(last, op)
		}
		pr.LastOp = last
		pr.OpsLen = uint8(min(nr, uint32(last)+1))
		for i := 0; i < int(pr.OpsLen); i++ {
			pr.Ops[i].Op = uint8(i)
			if k.probe[uring.Op(i)] {
				pr.Ops[i].Flags = uring.OpSupported
			}
		}
		return 0, nil
	case uring.RegisterEventfd, uring.RegisterEventfdAsync:
		if k.efd >= 0 {
			return fail(syscall.EBUSY)
		}
		if nr != 1 || arg == nil {
			return fail(syscall.EINVAL)
		}
		fd, err := unix.FcntlInt(uintptr(*(*int32)(arg)), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return fail(syscall.EBADF)
		}
		k.efd = fd
		return 0, nil
	case uring.UnregisterEventfd:
		if k.efd < 0 {
			return fail(syscall.ENXIO)
		}
		unix.Close(k.efd)
		k.efd = -1
		return 0, nil
	case uring.RegisterBuffers:
		if len(k.bufs) > 0 {
			return fail(syscall.EBUSY)
		}
		if nr == 0 || nr > 16384 || arg == nil {
			return fail(syscall.EINVAL)
		}
		k.bufs = append([]unix.Iovec(nil), unsafe.Slice((*unix.Iovec)(arg), nr)...)
		return 0, nil
	case uring.UnregisterBuffers:
		if len(k.bufs) == 0 {
			return fail(syscall.ENXIO)
		}
		k.bufs = nil
		return 0, nil
	case uring.RegisterFiles:
		if k.files != nil {
			return fail(syscall.EBUSY)
		}
		if nr == 0 || arg == nil {
			return fail(syscall.EINVAL)
		}
		fds := unsafe.Slice((*int32)(arg), nr)
		files := make([]int, nr)
		for i, fd := range fds {
			files[i] = -1
			if fd == -1 {
				continue
			}
			d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				closeAll(files)
				return fail(syscall.EBADF)
			}
			files[i] = d
		}
		k.files = files
		return 0, nil
	case uring.UnregisterFiles:
		if k.files == nil {
			return fail(syscall.ENXIO)
		}
		closeAll(k.files)
		k.files = nil
		return 0, nil
	case uring.RegisterFilesUpdate:
		if k.files == nil {
			return fail(syscall.ENXIO)
		}
		up := (*uring.FilesUpdate)(arg)
		if up == nil || up.Resv != 0 {
			return fail(syscall.EINVAL)
		}
		if uint64(up.Offset)+uint64(nr) > uint64(len(k.files)) {
			return fail(syscall.EINVAL)
		}
		fds := unsafe.Slice((*int32)(ptr(up.Fds)), nr)
		for i, fd := range fds {
			slot := int(up.Offset) + i
			if k.files[slot] >= 0 {
				unix.Close(k.files[slot])
				k.files[slot] = -1
			}
			if fd == -1 {
				continue
			}
			d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				return i, os.NewSyscallError("io_uring_register", syscall.EBADF)
			}
			k.files[slot] = d
		}
		return int(nr), nil
	case uring.RegisterIOWQMaxWorkers:
		if nr != 2 || arg == nil {
			return fail(syscall.EINVAL)
		}
		// No workers to limit; report the previous limits as unlimited
		// (0), and remember nothing.
		lim := (*[2]uint32)(arg)
		lim[0], lim[1] = 0, 0
		return 0, nil
	case uring.RegisterPbufRing:
		return k.registerPbufRing(arg, nr)
	case uring.UnregisterPbufRing:
		return k.unregisterPbufRing(arg, nr)
	}
	return fail(syscall.EINVAL)
}

func closeAll(fds []int) {
	for _, fd := range fds {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// Close releases the instance. A real kernel would cancel what is still in
// flight; rio promises that nothing is, so anything left is reported as a
// violation in the returned error, as are completions posted but not
// reaped.
func (k *Kernel) Close() error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return os.NewSyscallError("close", syscall.EBADF)
	}
	if k.nlive > 0 {
		k.violation("Close with %d operations in flight", k.nlive)
	}
	if h, t := atomic.LoadUint32(k.rg.CQHead), atomic.LoadUint32(k.rg.CQTail); h != t || len(k.overflow) > 0 {
		k.violation("Close with %d completions not reaped (%d in the overflow list)", t-h+uint32(len(k.overflow)), len(k.overflow))
	}
	k.closed = true
	k.cond.Broadcast()
	k.poke()
	k.mu.Unlock()
	<-k.done

	k.mu.Lock()
	defer k.mu.Unlock()
	unix.Close(k.wakeFd)
	if k.efd >= 0 {
		unix.Close(k.efd)
		k.efd = -1
	}
	closeAll(k.files)
	k.files = nil
	if len(k.violate) > 0 {
		return fmt.Errorf("sim: io_uring protocol violations: %w", errors.New(joinLines(k.violate)))
	}
	return nil
}

func joinLines(s []string) string {
	out := ""
	for i, l := range s {
		if i > 0 {
			out += "; "
		}
		out += l
	}
	return out
}

// ptr turns an address from an SQE back into a pointer. The memory is the
// caller's, pinned by the ring while the operation is in flight.
func ptr(addr uint64) unsafe.Pointer {
	a := uintptr(addr)
	return *(*unsafe.Pointer)(unsafe.Pointer(&a))
}

// strandedAfter is how long SQEs may sit in the SQ, unsubmitted, while the
// program waits for a completion and makes no io_uring_enter call.
const strandedAfter = 2 * time.Second

// checkStranded detects a ring that published SQEs and then waits for them
// without ever entering to submit them, or that waits for completions stuck
// in the overflow list without ever asking for them: it would hang forever.
// The kernel records a violation and submits or flushes them itself, so
// that the test fails with a message instead of hanging.
func (k *Kernel) checkStranded(now time.Time) {
	if len(k.overflow) > 0 && k.armed() && now.Sub(k.lastAct) >= strandedAfter &&
		atomic.LoadUint32(k.rg.CQHead) == atomic.LoadUint32(k.rg.CQTail) {
		k.violation("%d completions left in the overflow list for %v while the ring waits, with the CQ empty and no IORING_ENTER_GETEVENTS to flush them",
			len(k.overflow), now.Sub(k.lastAct).Round(time.Millisecond))
		k.lastAct = now
		k.flushOverflow()
	}
	head := atomic.LoadUint32(k.rg.SQHead)
	n := atomic.LoadUint32(k.rg.SQTail) - head
	if n == 0 || n > k.rg.SQEntries || !k.armed() || now.Sub(k.lastAct) < strandedAfter {
		return
	}
	k.violation("%d SQEs left in the SQ for %v while the ring waits for completions, with no io_uring_enter to submit them", n, now.Sub(k.lastAct).Round(time.Millisecond))
	k.lastAct = now
	k.consume(head, n)
}

// retryBlocked runs a blocked op again once its descriptor is ready.
func (k *Kernel) retryBlocked(r *req) {
	if k.cfg.BeforeExec != nil {
		k.cfg.BeforeExec(r.sqe)
	}
	res, flags, block := k.exec(r)
	if block {
		return
	}
	k.complete(r, res, flags)
}

// String describes the kernel's state, for debugging a hang.
func (k *Kernel) String() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	rg := k.rg
	s := fmt.Sprintf("sim kernel seed %d: clock %d, SQ head %d tail %d, CQ head %d tail %d, %d overflowed, %d deferred, armed %v\n",
		k.cfg.Seed, k.clock, atomic.LoadUint32(rg.SQHead), atomic.LoadUint32(rg.SQTail),
		atomic.LoadUint32(rg.CQHead), atomic.LoadUint32(rg.CQTail), len(k.overflow), len(k.deferq), k.armed())
	for _, r := range k.live {
		if r.state != stDone {
			s += fmt.Sprintf("  op %d opcode %d user_data %#x state %d deadline %d\n", r.seq, r.sqe.Opcode, r.sqe.UserData, r.state, r.deadline)
		}
	}
	return s
}
