package rionet

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

// A loop is one event loop of a LoopServer: a goroutine locked to its OS
// thread, the only issuer of its io_uring instance. Everything below the
// "loop-only" line is touched by that goroutine alone; the inbox is how
// other goroutines reach it.
//
// Invariants (checked by the tests through checkInvariants and the
// simulated kernel):
//
//   - Every memory area an SQE points at is owned by the loop for the
//     loop's whole life: receive buffers and their ring are mapped
//     (BufRing) and registered before the first receive and unmapped only
//     after the ring is closed; write-queue chunks are mapped (chunkPool)
//     and a chunk returns to the pool only once no send in flight points
//     into it; the wake counter and the timeout's timespec live in the
//     loop. No per-operation pinning is needed.
//   - A receive buffer is in exactly one place: the kernel's ring, the
//     loop (being delivered, or parked for a paused connection), or a
//     handler that retained it. bufState tracks it.
//   - A connection's descriptor is closed, and its slot reused, only after
//     the last CQE of every operation on it has been reaped (c.ops == 0).
//   - The loop exits only when no operation is in flight (inflight == 0),
//     then closes the ring, then unmaps what the kernel could touch.
type loop struct {
	srv *LoopServer
	id  int
	lfd int // listening socket (shared by the loops unless ReusePort)

	exited   chan struct{} // closed when the loop has exited
	released chan struct{} // closed once its receive buffers are unmapped

	// Inbox, guarded by mu.
	mu          sync.Mutex
	pending     atomic.Bool  // something is in the inbox
	dirty       []*LoopConn  // connections with writes or requests to look at
	recycle     []uint16     // buffers released by LoopBuffer.Release
	cmds        uint32       // cmdStop, cmdAbort
	pool        chunkPool    // write-queue memory
	held        int          // receive buffers retained by handlers
	adopt       []int        // connections another loop accepted for this one
	load        atomic.Int64 // connections, for placing new ones
	closedInbox bool         // stopping: takes no more connections
	gone        bool         // exited: Release unmaps the last buffer itself
	efd         int          // eventfd that wakes the loop; closed under mu
	sleep       atomic.Int32 // 1 while the loop may be blocked in io_uring_enter
	br          *uring.BufRing
	tid         int // the loop's OS thread

	// ---- loop-only ----

	k     uring.Kernel
	short interface {
		EnterShort(toSubmit, minComplete, flags uint32) (int, syscall.Errno)
	}
	block interface {
		EnterBlock(toSubmit, minComplete, flags uint32) (int, syscall.Errno)
	}
	spin     int
	rg       *uring.Rings
	sqTail   uint32
	cqHead   uint32
	inflight int    // operations whose last CQE has not been reaped
	mode     string // the setup flags in use

	bufState []uint8 // per buffer: bufKernel, bufLoop, bufHeld
	inKernel int     // buffers in the ring for the kernel
	added    bool    // buffers added since the last Publish

	conns     []*LoopConn // by slot
	free      []uint32
	nconns    int
	nclosing  int
	gen       uint16
	starved   []*LoopConn
	work      []*LoopConn // dirty connections being serviced
	workIdx   int
	spare     []*LoopConn
	spareFds  []int
	adoptWork []int
	shared    bool // the listener is shared with other loops: place connections

	accepting     bool
	acceptCancel  bool
	acceptRetryAt int64 // re-arm the accept at this time (after EMFILE...)
	acceptDone    bool  // srv.accepts.Done called
	stopping      bool
	aborting      bool
	stopErr       error
	sweeping      bool
	sweep         int
	tcp           bool

	cancelling           uint16 // bit 1<<kind: a cancellation of that kind is in flight
	pollOn, pollCancel   bool
	timerOn, timerCancel bool
	ts                   uring.Timespec // the timeout's; the kernel copies it at submission
	epoch                time.Time
	now                  int64
	nextTick             int64
	fatal                error

	cur      *LoopConn // the connection whose callback is running
	curPhase int
	curData  []byte
	curBid   int32 // receive buffer behind curData, -1 if none
	curTaken bool  // Retain took curData

	bugs atomic.Pointer[string] // first invariant violation seen
}

// Commands to a loop.
const (
	cmdStop  = 1 << iota // stop accepting; close idle connections once flushed
	cmdAbort             // close everything now
)

// Kinds of operations, in the top byte of user_data.
const (
	kAccept = 1 + iota
	kRecv
	kSend
	kCancelRecv
	kCancelSend
	kCancelAccept
	kWake
	kTimer
	kCancelWake
	kCancelTimer
)

// Buffer states.
const (
	bufKernel = iota
	bufLoop
	bufHeld
)

// Callback phases, for panics.
const (
	phaseNone = iota
	phaseOpen
	phaseData
	phaseClose
)

const (
	loopSQ     = 1024
	loopCQ     = 8192
	loopGroup  = 1
	closeFlush = 5 * time.Second // how long a closing connection may take to send its queue
	tickMax    = 100 * time.Millisecond
)

func newLoop(s *LoopServer, id, lfd int, shared bool) *loop {
	return &loop{
		srv:      s,
		id:       id,
		lfd:      lfd,
		shared:   shared,
		efd:      -1,
		exited:   make(chan struct{}),
		released: make(chan struct{}),
	}
}

// ud encodes user_data: kind, the connection's generation and slot.
func ud(kind int, c *LoopConn) uint64 {
	if c == nil {
		return uint64(kind) << 56
	}
	return uint64(kind)<<56 | uint64(c.gen)<<32 | uint64(c.slot)
}

// run is the loop's goroutine.
func (l *loop) run(ready chan<- error) {
	// The ring is set up with SINGLE_ISSUER and DEFER_TASKRUN: every
	// io_uring_enter must come from the thread that created it, and
	// completions are only posted while that thread waits in the kernel.
	// The thread stays locked until the goroutine returns, which ends the
	// thread too.
	runtime.LockOSThread()
	l.tid = unix.Gettid()
	err := l.setup()
	ready <- err
	if err != nil {
		l.exit()
		return
	}
	l.epoch = time.Now()
	l.armAccept()
	l.armWake()
	for !l.finished() {
		l.iterate()
	}
	l.teardown()
}

// openLoopRing sets up an io_uring instance for a loop, with the most
// efficient task-running mode the kernel has, and checks that the kernel
// has what a loop needs. Errors for what is missing match
// rio.ErrNotSupported.
func openLoopRing(newKernel func(uint32, *uring.Params) (uring.Kernel, error)) (uring.Kernel, string, error) {
	// A SINGLE_ISSUER ring belongs to the thread that set it up: a
	// register from any other thread fails with EEXIST. The goroutine must
	// not move between io_uring_setup and the probe below (a loop's
	// goroutine is locked already; the lock nests).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if newKernel == nil {
		newKernel = func(entries uint32, p *uring.Params) (uring.Kernel, error) {
			k, err := uring.Open(entries, p)
			if err != nil {
				return nil, err
			}
			return k, nil
		}
	}
	base := uint32(uring.SetupCQSize | uring.SetupClamp | uring.SetupSubmitAll)
	var k uring.Kernel
	var mode string
	var err error
	for _, m := range []struct {
		flags uint32
		name  string
	}{
		{uring.SetupSingleIssuer | uring.SetupDeferTaskrun, "SINGLE_ISSUER|DEFER_TASKRUN"},
		{uring.SetupSingleIssuer | uring.SetupCoopTaskrun | uring.SetupTaskrunFlag, "SINGLE_ISSUER|COOP_TASKRUN"},
		{uring.SetupCoopTaskrun | uring.SetupTaskrunFlag, "COOP_TASKRUN"},
	} {
		p := uring.Params{Flags: base | m.flags, CQEntries: loopCQ}
		k, err = newKernel(loopSQ, &p)
		if err == nil {
			mode = m.name
			break
		}
		if !errors.Is(err, syscall.EINVAL) {
			break
		}
	}
	if err != nil {
		var errno syscall.Errno
		switch {
		case errors.As(err, &errno) && (errno == syscall.ENOSYS || errno == syscall.EPERM || errno == syscall.EACCES):
			return nil, "", &rio.FeatureError{Feature: "io_uring", MinKernel: "5.1", Err: err}
		case errors.Is(err, syscall.EINVAL):
			return nil, "", &rio.FeatureError{Feature: "IORING_SETUP_COOP_TASKRUN", MinKernel: "5.19", Err: err}
		}
		return nil, "", err
	}
	// Multishot receive and SEND_ZC both came with Linux 6.0: the probe
	// listing SEND_ZC is how an older kernel is told apart.
	var probe uring.Probe
	if _, err := k.Register(uring.RegisterProbe, unsafe.Pointer(&probe), 256); err != nil {
		k.Close()
		if errors.Is(err, syscall.EINVAL) {
			// No IORING_REGISTER_PROBE: older than Linux 5.6.
			return nil, "", &rio.FeatureError{Feature: "multishot IORING_OP_RECV", MinKernel: "6.0", Err: err}
		}
		return nil, "", err
	}
	if !probe.Supported(uring.OpSendZC) {
		k.Close()
		return nil, "", &rio.FeatureError{Feature: "multishot IORING_OP_RECV", MinKernel: "6.0"}
	}
	for _, op := range []uring.Op{uring.OpAccept, uring.OpRecv, uring.OpSend, uring.OpAsyncCancel, uring.OpPollAdd, uring.OpTimeout} {
		if !probe.Supported(op) {
			k.Close()
			return nil, "", &rio.FeatureError{Feature: fmt.Sprintf("io_uring opcode %d", op), MinKernel: "6.0"}
		}
	}
	return k, mode, nil
}

// LoopSupported reports whether LoopServer can run here: nil, or an error
// matching rio.ErrNotSupported that names what is missing (io_uring
// itself, or Linux 6.0's multishot receive). Serve makes the same check.
func LoopSupported() error {
	k, _, err := openLoopRing(nil)
	if err != nil {
		return err
	}
	return k.Close()
}

// setup creates the ring, the wake eventfd and the receive buffers.
func (l *loop) setup() error {
	s := l.srv
	k, mode, err := openLoopRing(s.newKernel)
	if err != nil {
		return err
	}
	l.k, l.mode = k, mode
	l.rg = k.Rings()
	l.short, _ = k.(interface {
		EnterShort(toSubmit, minComplete, flags uint32) (int, syscall.Errno)
	})
	l.sqTail = *l.rg.SQTail
	l.cqHead = *l.rg.CQHead
	switch w := os.Getenv("RIONET_LOOP_WAIT"); {
	case w == "block":
		l.block, _ = k.(interface {
			EnterBlock(toSubmit, minComplete, flags uint32) (int, syscall.Errno)
		})
	case strings.HasPrefix(w, "spin"):
		l.spin, _ = strconv.Atoi(w[4:])
	}
	fail := func(err error) error {
		l.k.Close()
		l.k = nil
		return err
	}
	if sa, err := unix.Getsockname(l.lfd); err == nil {
		switch sa.(type) {
		case *unix.SockaddrInet4, *unix.SockaddrInet6:
			l.tcp = true
		}
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fail(os.NewSyscallError("eventfd", err))
	}
	br, err := uring.NewBufRing(s.ReadBuffers, s.ReadBufferSize, loopGroup)
	if err != nil {
		unix.Close(efd)
		return fail(err)
	}
	reg := br.Reg()
	if _, err := k.Register(uring.RegisterPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		br.Free()
		unix.Close(efd)
		return fail(err)
	}
	for i := 0; i < br.Entries(); i++ {
		br.Add(uint16(i))
	}
	br.Publish()
	l.inKernel = br.Entries()
	l.bufState = make([]uint8, br.Entries())
	l.pool.init()
	l.mu.Lock()
	l.efd = efd
	l.br = br
	l.mu.Unlock()
	return nil
}

// finished reports whether the loop may exit: stopping, no connection
// left, nothing in flight.
func (l *loop) finished() bool {
	if !l.stopping || l.nconns > 0 || l.accepting || l.pending.Load() {
		return false
	}
	if l.pollOn && !l.pollCancel {
		l.pollCancel = l.cancel(kCancelWake, ud(kWake, nil))
	}
	if l.timerOn && !l.timerCancel {
		l.timerCancel = l.cancel(kCancelTimer, ud(kTimer, nil))
	}
	if l.inflight > 0 {
		return false
	}
	// Release whatever was published but never submitted (cancels).
	return l.sqTail == uring.LoadAcquire(l.rg.SQHead)
}

// iterate runs one iteration: reap, service, submit and wait. A handler
// panic ends the iteration early; the next one carries on where it
// stopped (the CQ head and the work list are fields).
func (l *loop) iterate() {
	defer l.recoverHandler()
	l.reap()
	l.now = int64(time.Since(l.epoch))
	l.inbox()
	if len(l.adoptWork) > 0 {
		l.adoptAll()
	}
	if l.sweeping {
		l.sweepStop()
	}
	l.service()
	if len(l.starved) > 0 && l.inKernel > 0 {
		l.rearmStarved()
	}
	if l.added {
		l.br.Publish()
		l.added = false
	}
	l.maybeTimer()
	if l.finished() {
		return
	}
	l.enter()
}

// enter submits what the iteration queued and, when there is nothing
// else to do, waits for a completion, with one io_uring_enter.
func (l *loop) enter() {
	rg := l.rg
	toSubmit := l.sqTail - uring.LoadAcquire(rg.SQHead)
	uring.StoreRelease(rg.SQTail, l.sqTail)
	wait := uring.LoadAcquire(rg.CQTail) == l.cqHead
	if wait {
		l.sleep.Store(1)
		if l.pending.Load() {
			wait = false
		}
	}
	var errno syscall.Errno
	if wait && l.spin > 0 && l.short != nil {
		// Poll a few times without waiting before waiting.
		for i := 0; i < l.spin && wait; i++ {
			_, errno = l.short.EnterShort(toSubmit, 0, uring.EnterGetEvents)
			toSubmit = 0
			wait = uring.LoadAcquire(rg.CQTail) == l.cqHead && !l.pending.Load()
		}
		if !wait {
			l.sleep.Store(0)
			l.enterErr(errno)
			return
		}
	}
	switch {
	case wait && l.block != nil:
		_, errno = l.block.EnterBlock(toSubmit, 1, uring.EnterGetEvents)
	case wait:
		// Through the scheduler's system call path: the P is handed to
		// other goroutines while the thread waits.
		_, errno = l.k.Enter(toSubmit, 1, uring.EnterGetEvents)
	case toSubmit == 0 && uring.LoadAcquire(rg.CQTail) != l.cqHead:
		// Completions to reap already, nothing to submit.
	case l.short != nil:
		_, errno = l.short.EnterShort(toSubmit, 0, uring.EnterGetEvents)
	default:
		_, errno = l.k.Enter(toSubmit, 0, uring.EnterGetEvents)
	}
	l.sleep.Store(0)
	l.enterErr(errno)
}

func (l *loop) enterErr(errno syscall.Errno) {
	switch errno {
	case 0, syscall.EINTR:
	case syscall.EAGAIN, syscall.EBUSY:
		// Short of memory, or completions the kernel could not post:
		// reaping (next iteration) makes room; give way meanwhile.
		runtime.Gosched()
	default:
		if l.fatal == nil {
			l.fatal = os.NewSyscallError("io_uring_enter", errno)
			l.stopAll(true, l.fatal)
		}
	}
}

// sqe returns the next free SQE, zeroed, counting its operation as in
// flight. A full SQ is submitted first.
func (l *loop) sqe() *uring.SQE {
	rg := l.rg
	for l.sqTail-uring.LoadAcquire(rg.SQHead) >= rg.SQEntries {
		uring.StoreRelease(rg.SQTail, l.sqTail)
		toSubmit := l.sqTail - uring.LoadAcquire(rg.SQHead)
		if _, errno := l.k.Enter(toSubmit, 0, 0); errno == syscall.EAGAIN || errno == syscall.EBUSY {
			runtime.Gosched()
		}
	}
	s := &rg.SQEs[l.sqTail&rg.SQMask]
	*s = uring.SQE{}
	l.sqTail++
	l.inflight++
	return s
}

// reap dispatches every CQE in the CQ.
func (l *loop) reap() {
	rg := l.rg
	for {
		tail := uring.LoadAcquire(rg.CQTail)
		if tail == l.cqHead {
			return
		}
		for l.cqHead != tail {
			c := &rg.CQEs[l.cqHead&rg.CQMask]
			u, res, flags := c.UserData, c.Res, c.Flags
			l.cqHead++
			l.dispatch(u, res, flags)
		}
		uring.StoreRelease(rg.CQHead, l.cqHead)
	}
}

func (l *loop) dispatch(u uint64, res int32, flags uint32) {
	more := flags&uring.CQEFMore != 0
	if !more {
		l.inflight--
	}
	kind := int(u >> 56)
	switch kind {
	case kAccept:
		l.onAccept(res, more)
		return
	case kWake:
		l.pollOn = false
		var b [8]byte
		unix.Read(l.efd, b[:])
		if !l.stopping || l.nconns > 0 || l.accepting {
			l.armWake()
		}
		return
	case kTimer:
		l.timerOn = false
		l.onTick()
		return
	case kCancelAccept, kCancelWake, kCancelTimer:
		l.onCancel(kind, nil, res)
		return
	}
	c := l.connOf(u)
	if c == nil {
		// Cannot happen: a slot is reused only once all its operations
		// have completed. Never leak a buffer over it, though.
		if flags&uring.CQEFBuffer != 0 {
			l.takeBuf(uint16(flags >> uring.CQEBufferShift))
			l.giveBack(uint16(flags >> uring.CQEBufferShift))
		}
		l.bug(fmt.Sprintf("CQE kind %d for no connection (user_data %#x)", kind, u))
		return
	}
	if !more {
		c.ops--
	}
	switch kind {
	case kRecv:
		l.onRecv(c, res, flags)
	case kSend:
		l.onSend(c, res)
	case kCancelRecv, kCancelSend:
		l.onCancel(kind, c, res)
	}
}

func (l *loop) connOf(u uint64) *LoopConn {
	slot := uint32(u)
	if int(slot) >= len(l.conns) {
		return nil
	}
	c := l.conns[slot]
	if c == nil || c.gen != uint16(u>>32) {
		return nil
	}
	return c
}

// bug records a violated invariant; the tests fail on it.
func (l *loop) bug(msg string) {
	l.bugs.CompareAndSwap(nil, &msg)
}

// ---- accepting ----

func (l *loop) armAccept() {
	s := l.sqe()
	s.Opcode = uring.OpAccept
	s.Fd = int32(l.lfd)
	s.IOPrio = uring.AcceptMultishot
	s.OpFlags = unix.SOCK_CLOEXEC
	s.UserData = ud(kAccept, nil)
	l.accepting = true
	l.acceptCancel = false
}

func (l *loop) onAccept(res int32, more bool) {
	if !more {
		l.accepting = false
	}
	if res >= 0 {
		switch {
		case l.stopping:
			unix.Close(int(res))
		case l.shared:
			l.place(int(res))
		default:
			l.newConn(int(res))
		}
	} else if !more {
		switch syscall.Errno(-res) {
		case syscall.EINTR, syscall.EAGAIN, syscall.ECANCELED, syscall.ECONNABORTED, syscall.EPROTO:
		case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM:
			// Out of descriptors or memory: try again in a while.
			l.acceptRetryAt = l.now + int64(10*time.Millisecond)
		default:
			// The listener is gone or unusable: stop accepting.
			l.stopAccepting()
		}
	}
	if l.accepting {
		return
	}
	if l.stopping || l.acceptDone {
		l.stopAccepting()
		return
	}
	if l.acceptRetryAt == 0 {
		l.armAccept()
	}
}

// stopAccepting cancels the accept, or, once it has ended, tells the
// server that this loop no longer accepts (the listeners close when none
// does).
func (l *loop) stopAccepting() {
	if l.accepting {
		if !l.acceptCancel {
			l.acceptCancel = l.cancel(kCancelAccept, ud(kAccept, nil))
		}
		return
	}
	l.acceptRetryAt = 0
	if !l.acceptDone {
		l.acceptDone = true
		l.srv.accepts.Done()
	}
}

// place gives a connection accepted from the shared listener to the loop
// with the fewest connections: all of a shared listener's connections tend
// to be accepted by the same loop (whichever's multishot accept the kernel
// wakes first), so they are spread here, through the chosen loop's inbox.
// The accepting loop keeps the connection unless it has more than a few
// more than that loop (2 + 1/16 of its own): handing a connection over
// costs a wake-up of the other loop, which a server with short
// connections would otherwise pay for every other one.
func (l *loop) place(fd int) {
	best := l
	for _, o := range l.srv.loops {
		if o.load.Load() < best.load.Load() {
			best = o
		}
	}
	if own := l.load.Load(); best == l || own <= best.load.Load()+2+own/16 {
		l.newConn(fd)
		return
	}
	best.load.Add(1) // counted now, so that the next choice sees it
	best.mu.Lock()
	if best.gone || best.closedInbox {
		best.mu.Unlock()
		best.load.Add(-1)
		l.newConn(fd)
		return
	}
	best.adopt = append(best.adopt, fd)
	best.pending.Store(true)
	best.wakeLocked()
	best.mu.Unlock()
}

func (l *loop) newConn(fd int) {
	if l.tcp {
		// Errors are not fatal: the connection works without them.
		_ = setTCPOptions(fd, l.srv.KeepAlive, net.KeepAliveConfig{})
	}
	var slot uint32
	if n := len(l.free); n > 0 {
		slot = l.free[n-1]
		l.free = l.free[:n-1]
	} else {
		slot = uint32(len(l.conns))
		l.conns = append(l.conns, nil)
	}
	l.gen++
	c := &LoopConn{l: l, fd: fd, slot: slot, gen: l.gen, lastRecv: l.now}
	l.conns[slot] = c
	l.nconns++
	l.load.Add(1)
	l.armRecv(c)
	if l.srv.OnOpen != nil {
		l.cur, l.curPhase = c, phaseOpen
		l.srv.OnOpen(c)
		l.cur, l.curPhase = nil, phaseNone
	}
}

// ---- receiving ----

func (l *loop) armRecv(c *LoopConn) {
	s := l.sqe()
	s.Opcode = uring.OpRecv
	s.Fd = int32(c.fd)
	s.IOPrio = uring.RecvMultishot
	s.Flags = uring.SQEBufferSelect
	s.BufIndex = loopGroup
	s.UserData = ud(kRecv, c)
	c.recvOn = true
	c.recvCancel = false
	c.ops++
}

// takeBuf notes that the kernel handed buffer bid out.
func (l *loop) takeBuf(bid uint16) {
	if int(bid) >= len(l.bufState) || l.bufState[bid] != bufKernel {
		l.bug(fmt.Sprintf("kernel handed out buffer %d, which is not in its ring", bid))
		return
	}
	l.bufState[bid] = bufLoop
	l.inKernel--
}

// giveBack returns buffer bid to the kernel's ring (published before the
// next submission).
func (l *loop) giveBack(bid uint16) {
	if l.bufState[bid] == bufKernel {
		l.bug(fmt.Sprintf("buffer %d given back twice", bid))
		return
	}
	l.bufState[bid] = bufKernel
	if poisonMemory {
		poison(l.br.Buf(bid, l.br.Size()))
	}
	l.br.Add(bid)
	l.added = true
	l.inKernel++
}

func (l *loop) onRecv(c *LoopConn, res int32, flags uint32) {
	more := flags&uring.CQEFMore != 0
	if !more {
		c.recvOn = false
	}
	hasBuf := flags&uring.CQEFBuffer != 0
	bid := uint16(flags >> uring.CQEBufferShift)
	if hasBuf {
		l.takeBuf(bid)
	}
	switch {
	case res > 0 && hasBuf:
		c.lastRecv = l.now
		switch {
		case c.closing || c.closeReq.Load():
			l.giveBack(bid)
		case c.readPaused():
			c.parked = append(c.parked, parkedBuf{bid: bid, n: int32(res)})
		default:
			l.deliver(c, bid, int(res))
		}
	case res == 0:
		if hasBuf {
			l.giveBack(bid)
		}
		c.eof = true
		switch {
		case c.closing:
		case c.readPaused() || len(c.parked) > 0:
			c.parked = append(c.parked, parkedBuf{n: 0})
		default:
			l.startClose(c, io.EOF, false)
		}
	default:
		if hasBuf {
			l.giveBack(bid)
		}
		if res > 0 {
			l.bug("receive completion with data but no buffer")
			res = -int32(syscall.EIO)
		}
		switch errno := syscall.Errno(-res); errno {
		case syscall.ENOBUFS:
			if !more && !c.starved {
				c.starved = true
				l.starved = append(l.starved, c)
			}
		case syscall.EINTR, syscall.EAGAIN, syscall.ECANCELED:
			// Re-armed below unless closing or paused.
		default:
			if !c.closing {
				l.startClose(c, c.opError("read", os.NewSyscallError("read", errno)), true)
			}
		}
	}
	if !c.recvOn {
		l.maybeArmRecv(c)
		l.tryFinish(c)
	}
}

// maybeArmRecv re-arms c's receive if it should be receiving.
func (l *loop) maybeArmRecv(c *LoopConn) {
	if !c.recvOn && !c.closing && !c.eof && !c.starved && !c.readPaused() && len(c.parked) == 0 {
		l.armRecv(c)
	}
}

// rearmStarved re-arms the receives that ran out of buffers. Each is
// taken off the list before it is looked at, so that a handler panic
// (in an OnClose) loses none of the others.
func (l *loop) rearmStarved() {
	for n := len(l.starved); n > 0; n = len(l.starved) {
		c := l.starved[n-1]
		l.starved[n-1] = nil
		l.starved = l.starved[:n-1]
		c.starved = false
		if l.conns[c.slot] == c {
			l.maybeArmRecv(c)
			l.tryFinish(c)
		}
	}
}

// deliver hands bid's n bytes (after what c kept unconsumed) to OnData.
func (l *loop) deliver(c *LoopConn, bid uint16, n int) {
	data := l.br.Buf(bid, n)
	fromBuf := true
	if len(c.inbuf) > 0 {
		if len(c.inbuf)+n > l.srv.MaxReadBuffer {
			l.giveBack(bid)
			l.startClose(c, c.opError("read", ErrReadBufferFull), true)
			return
		}
		c.inbuf = append(c.inbuf, data...)
		l.giveBack(bid)
		data, fromBuf = c.inbuf, false
	}
	l.cur, l.curPhase, l.curData, l.curTaken = c, phaseData, data, false
	l.curBid = -1
	if fromBuf {
		l.curBid = int32(bid)
	}
	consumed := l.srv.OnData(c, data)
	l.cur, l.curPhase, l.curData = nil, phaseNone, nil
	if l.curTaken {
		// Retain took the memory (and, from inbuf, inbuf itself).
		l.afterData(c)
		return
	}
	consumed = max(0, min(consumed, len(data)))
	if fromBuf {
		if consumed < n {
			c.inbuf = append(c.inbuf[:0], data[consumed:]...)
		}
		l.giveBack(bid)
	} else {
		rest := copy(c.inbuf, c.inbuf[consumed:])
		c.inbuf = c.inbuf[:rest]
		if rest == 0 && cap(c.inbuf) > 4096 {
			c.inbuf = nil // an idle connection keeps no large buffer
		}
	}
	if len(c.inbuf) > l.srv.MaxReadBuffer && !c.closing {
		l.startClose(c, c.opError("read", ErrReadBufferFull), true)
		return
	}
	l.afterData(c)
}

// afterData applies what OnData asked for that affects reading.
func (l *loop) afterData(c *LoopConn) {
	if !c.autoPaused && c.wlen.Load() >= int64(l.srv.MaxWriteBuffer/2) {
		c.autoPaused = true
	}
	if c.readPaused() {
		l.pauseRecv(c)
	}
}

// pauseRecv stops c's receive while reads are paused; what arrives until
// the kernel has ended it is parked.
func (l *loop) pauseRecv(c *LoopConn) {
	if c.recvOn && !c.recvCancel {
		c.recvCancel = l.cancel(kCancelRecv, ud(kRecv, c))
	}
}

// resumeRecv delivers what was parked and re-arms the receive.
func (l *loop) resumeRecv(c *LoopConn) {
	for len(c.parked) > 0 && !c.closing && !c.readPaused() {
		p := c.parked[0]
		c.parked = c.parked[1:]
		if len(c.parked) == 0 {
			c.parked = nil
		}
		if p.n == 0 {
			l.startClose(c, io.EOF, false)
			break
		}
		l.deliver(c, p.bid, int(p.n))
	}
	l.maybeArmRecv(c)
}

// ---- sending ----

// submitSend sends the front of c's write queue, if there is something to
// send and no send is in flight.
func (l *loop) submitSend(c *LoopConn) {
	if c.sendOn || c.abortW || c.wlen.Load() == 0 {
		return
	}
	c.mu.Lock()
	p := c.sendableLocked()
	c.mu.Unlock()
	if len(p) == 0 {
		return
	}
	s := l.sqe()
	s.Opcode = uring.OpSend
	s.Fd = int32(c.fd)
	s.Addr = uint64(uintptr(unsafe.Pointer(&p[0])))
	s.Len = uint32(len(p))
	s.OpFlags = unix.MSG_NOSIGNAL | unix.MSG_WAITALL
	s.UserData = ud(kSend, c)
	c.sendOn = true
	c.sendCancel = false
	c.ops++
}

func (l *loop) onSend(c *LoopConn, res int32) {
	c.sendOn = false
	if res > 0 {
		c.mu.Lock()
		c.sentLocked(int(res))
		c.mu.Unlock()
		if c.autoPaused && c.wlen.Load() <= int64(l.srv.MaxWriteBuffer/4) {
			c.autoPaused = false
			if !c.readPaused() && !c.closing {
				l.resumeRecv(c)
			}
		}
	} else if res < 0 {
		switch errno := syscall.Errno(-res); errno {
		case syscall.EINTR, syscall.EAGAIN, syscall.ECANCELED:
			// Sent again below, unless the queue was dropped.
		default:
			l.startClose(c, c.opError("write", os.NewSyscallError("write", errno)), true)
		}
	}
	l.submitSend(c)
	if !c.sendOn {
		l.maybeShutdownWrite(c)
	}
	l.tryFinish(c)
}

// maybeShutdownWrite half-closes c once CloseWrite was called and the
// queue has been sent.
func (l *loop) maybeShutdownWrite(c *LoopConn) {
	if c.shutWant && !c.shutDone && !c.sendOn && c.wlen.Load() == 0 && !c.closing {
		c.shutDone = true
		unix.Shutdown(c.fd, unix.SHUT_WR)
	}
}

// ---- closing ----

// startClose begins closing c with err (for OnClose). abort drops the
// write queue instead of sending it first.
func (l *loop) startClose(c *LoopConn, err error, abort bool) {
	if !c.closing {
		c.closing = true
		c.closeErr = err
		c.closeBy = l.now + int64(closeFlush)
		l.nclosing++
		c.mu.Lock()
		c.wclosed = true
		c.wakeWritersLocked()
		c.mu.Unlock()
		l.pauseRecv(c) // ends the receive
		for _, p := range c.parked {
			if p.n > 0 {
				l.giveBack(p.bid)
			}
		}
		c.parked = nil
		c.inbuf = nil
	}
	if abort && !c.abortW {
		c.abortW = true
		c.mu.Lock()
		c.dropQueueLocked(c.sendOn)
		c.mu.Unlock()
		if c.sendOn && !c.sendCancel {
			c.sendCancel = l.cancel(kCancelSend, ud(kSend, c))
		}
	}
	l.tryFinish(c)
}

// tryFinish closes c for good once nothing of it is in flight.
func (l *loop) tryFinish(c *LoopConn) {
	if !c.closing || c.ops > 0 || (!c.abortW && c.wlen.Load() > 0) {
		return
	}
	if l.conns[c.slot] != c {
		return // finished already
	}
	c.mu.Lock()
	c.gone = true
	c.dropQueueLocked(false)
	c.wakeWritersLocked()
	// Under c.mu, so that LocalAddr and RemoteAddr never ask about a
	// descriptor number that has been reused.
	unix.Close(c.fd)
	c.mu.Unlock()
	l.conns[c.slot] = nil
	l.free = append(l.free, c.slot)
	l.nconns--
	l.load.Add(-1)
	l.nclosing--
	if l.srv.OnClose != nil {
		l.cur, l.curPhase = c, phaseClose
		l.srv.OnClose(c, c.closeErr)
		l.cur, l.curPhase = nil, phaseNone
	}
}

// cancel submits an IORING_OP_ASYNC_CANCEL for the operation target,
// unless a cancellation of the same kind is still in flight for it (a
// cancellation's user_data must not be reused while it is in flight); it
// reports whether it submitted one. Whoever skipped one asks again when
// the one in flight completes (see onCancel).
func (l *loop) cancel(kind int, target uint64) bool {
	var c *LoopConn
	if k := int(target >> 56); k == kRecv || k == kSend {
		c = l.connOf(target)
	}
	bit := uint16(1) << kind
	if c != nil {
		if c.cancelling&uint8(bit>>kCancelRecv) != 0 {
			return false
		}
		c.cancelling |= uint8(bit >> kCancelRecv)
		c.ops++
	} else {
		if l.cancelling&bit != 0 {
			return false
		}
		l.cancelling |= bit
	}
	s := l.sqe()
	s.Opcode = uring.OpAsyncCancel
	s.Fd = -1
	s.Addr = target
	s.UserData = ud(kind, c)
	return true
}

// onCancel handles a cancellation's completion: EALREADY (the operation
// was running) is asked again at the next tick; a cancellation that was
// skipped because this one was in flight is made now.
func (l *loop) onCancel(kind int, c *LoopConn, res int32) {
	already := res == -int32(syscall.EALREADY)
	bit := uint16(1) << kind
	if c == nil {
		l.cancelling &^= bit
		if kind == kCancelAccept {
			if already {
				l.acceptCancel = false
			}
			if l.accepting && !l.acceptCancel && (l.stopping || l.acceptDone) && !already {
				l.stopAccepting()
			}
		}
		return
	}
	c.cancelling &^= uint8(bit >> kCancelRecv)
	switch kind {
	case kCancelRecv:
		if already {
			c.recvCancel = false // ask again at the next tick
		} else if c.recvOn && !c.recvCancel && (c.closing || c.readPaused()) {
			l.pauseRecv(c)
		}
	case kCancelSend:
		if already {
			c.sendCancel = false
		} else if c.sendOn && c.abortW && !c.sendCancel {
			c.sendCancel = l.cancel(kCancelSend, ud(kSend, c))
		}
	}
	l.tryFinish(c)
}

// ---- the inbox and the connections' requests ----

// command asks the loop to stop or abort.
func (l *loop) command(cmd uint32) {
	l.mu.Lock()
	if !l.gone {
		l.cmds |= cmd
		l.pending.Store(true)
		l.wakeLocked()
	}
	l.mu.Unlock()
}

// wakeLocked wakes the loop if it may be blocked in io_uring_enter. Called
// with mu held, after making the inbox non-empty: the loop sets sleep
// before it checks pending, and the writer here sets pending before it
// checks sleep, so one of them sees the other.
func (l *loop) wakeLocked() {
	if l.sleep.Load() == 1 && l.sleep.CompareAndSwap(1, 0) && l.efd >= 0 {
		one := [8]byte{1}
		unix.Write(l.efd, one[:])
	}
}

func (l *loop) armWake() {
	s := l.sqe()
	s.Opcode = uring.OpPollAdd
	s.Fd = int32(l.efd)
	s.OpFlags = unix.POLLIN
	s.UserData = ud(kWake, nil)
	l.pollOn = true
	l.pollCancel = false
}

// inbox takes the loop's commands, released buffers and dirty
// connections.
func (l *loop) inbox() {
	if !l.pending.Load() {
		return
	}
	l.mu.Lock()
	l.pending.Store(false)
	cmds := l.cmds
	l.cmds = 0
	for _, bid := range l.recycle {
		l.held--
		l.giveBack(bid)
	}
	l.recycle = l.recycle[:0]
	adopt := l.adopt
	l.adopt = l.spareFds[:0]
	l.spareFds = nil
	l.work = append(l.work, l.dirty...)
	clear(l.dirty)
	l.dirty = l.dirty[:0]
	l.mu.Unlock()
	l.adoptWork = append(l.adoptWork, adopt...)
	l.spareFds = adopt[:0]
	l.adoptAll()
	if cmds&cmdAbort != 0 && !l.aborting {
		l.stopAll(true, ErrServerClosed)
	} else if cmds&cmdStop != 0 && !l.stopping {
		l.stopAll(false, ErrServerClosed)
	}
}

// adoptAll takes on the connections other loops placed here. Each is
// taken off the list before OnOpen runs, so that a panic in it loses no
// other.
func (l *loop) adoptAll() {
	for len(l.adoptWork) > 0 {
		fd := l.adoptWork[0]
		l.adoptWork = l.adoptWork[1:]
		l.load.Add(-1) // newConn counts it again
		if l.stopping {
			unix.Close(fd)
		} else {
			l.newConn(fd)
		}
	}
	l.adoptWork = l.adoptWork[:0]
}

// stopAll stops accepting and closes the connections: all of them if
// abort, else the idle ones (not paused by their handler) once their
// queues are sent. The sweep over the connections is resumable (sweep),
// so that a panicking OnClose cannot leave some of them open.
func (l *loop) stopAll(abort bool, err error) {
	l.stopping = true
	l.mu.Lock()
	l.closedInbox = true
	l.mu.Unlock()
	if abort {
		l.aborting = true
	}
	l.stopErr = err
	l.sweep = 0
	l.sweeping = true
	l.stopAccepting()
	l.sweepStop()
}

func (l *loop) sweepStop() {
	for l.sweeping && l.sweep < len(l.conns) {
		c := l.conns[l.sweep]
		l.sweep++
		if c != nil && (l.aborting || !c.userPaused.Load()) {
			l.startClose(c, l.stopErr, l.aborting)
		}
	}
	l.sweeping = false
}

// service looks at every dirty connection.
func (l *loop) service() {
	for l.workIdx < len(l.work) {
		c := l.work[l.workIdx]
		l.workIdx++
		l.serviceConn(c)
	}
	clear(l.work)
	l.work = l.work[:0]
	l.workIdx = 0
}

func (l *loop) serviceConn(c *LoopConn) {
	c.mu.Lock()
	c.dirty = false
	gone, closeReq := c.gone, c.closeReq.Load()
	c.shutWant = c.shutWant || c.closeWriteReq
	c.mu.Unlock()
	if gone || l.conns[c.slot] != c {
		return
	}
	if closeReq && !c.closing {
		l.startClose(c, nil, false)
	}
	if l.stopping && !c.closing && !c.userPaused.Load() {
		l.startClose(c, ErrServerClosed, l.aborting)
	}
	if !c.autoPaused && c.wlen.Load() >= int64(l.srv.MaxWriteBuffer/2) {
		c.autoPaused = true
	}
	if !c.closing {
		if c.readPaused() {
			l.pauseRecv(c)
		} else {
			l.resumeRecv(c)
		}
	}
	l.submitSend(c)
	l.maybeShutdownWrite(c)
	l.tryFinish(c)
}

// ---- time ----

// maybeTimer arms the tick when something is timed: idle timeouts,
// connections closing, a delayed accept.
func (l *loop) maybeTimer() {
	if l.timerOn || l.stopping && l.nconns == 0 {
		return
	}
	if !(l.srv.IdleTimeout > 0 && l.nconns > 0) && l.nclosing == 0 && l.acceptRetryAt == 0 {
		return
	}
	d := tickMax
	if t := l.srv.IdleTimeout / 4; t > 0 && t < d {
		d = max(t, time.Millisecond)
	}
	l.ts = uring.Timespec{Sec: int64(d / time.Second), Nsec: int64(d % time.Second)}
	s := l.sqe()
	s.Opcode = uring.OpTimeout
	s.Addr = uint64(uintptr(unsafe.Pointer(&l.ts)))
	s.Len = 1
	s.UserData = ud(kTimer, nil)
	l.timerOn = true
	l.timerCancel = false
}

func (l *loop) onTick() {
	l.now = int64(time.Since(l.epoch))
	if l.acceptRetryAt != 0 && l.now >= l.acceptRetryAt {
		l.acceptRetryAt = 0
		if !l.stopping && !l.accepting {
			l.armAccept()
		}
	}
	idle := int64(l.srv.IdleTimeout)
	for _, c := range l.conns {
		if c == nil {
			continue
		}
		if !c.closing {
			if idle > 0 && l.now-c.lastRecv >= idle && !c.userPaused.Load() {
				l.startClose(c, ErrIdleTimeout, false)
			} else if c.readPaused() && c.recvOn && !c.recvCancel {
				l.pauseRecv(c) // a cancellation that found the receive running
			}
			continue
		}
		if !c.abortW && l.now >= c.closeBy {
			// The peer does not take what is queued: give up on it.
			l.startClose(c, c.closeErr, true)
			continue
		}
		// Cancellations that found their operation running.
		if c.recvOn && !c.recvCancel {
			l.pauseRecv(c)
		}
		if c.sendOn && c.abortW && !c.sendCancel {
			c.sendCancel = l.cancel(kCancelSend, ud(kSend, c))
		}
	}
}

// ---- panics ----

// recoverHandler recovers a panic of a handler callback: the connection
// whose callback panicked is closed, everything else goes on. A panic in
// the loop's own code (a bug) is not recovered.
func (l *loop) recoverHandler() {
	c, phase := l.cur, l.curPhase
	if c == nil {
		return // no callback was running: not ours to recover
	}
	v := recover()
	if v == nil {
		return
	}
	stack := debug.Stack()
	l.cur, l.curPhase, l.curData = nil, phaseNone, nil
	uring.StoreRelease(l.rg.CQHead, l.cqHead)
	if phase == phaseData && l.curBid >= 0 && !l.curTaken {
		l.giveBack(uint16(l.curBid))
	}
	l.curBid = -1
	if phase == phaseClose {
		return // the connection is already closed
	}
	l.startClose(c, &PanicError{Value: v, Stack: stack}, true)
}

// ---- exit ----

func (l *loop) teardown() {
	// Every receive buffer is back in the kernel's ring or held by a
	// handler, and no write-queue chunk is in use.
	held := 0
	for _, st := range l.bufState {
		switch st {
		case bufHeld:
			held++
		case bufLoop:
			l.bug("a receive buffer is neither in the ring nor held at exit")
		}
	}
	l.mu.Lock()
	if held != l.held {
		l.bug(fmt.Sprintf("%d buffers held at exit, %d counted", held, l.held))
	}
	// Released since the last iteration: no longer held.
	l.held -= len(l.recycle)
	l.recycle = nil
	if l.pool.inUse != 0 {
		l.bug(fmt.Sprintf("%d write chunks in use at exit", l.pool.inUse))
	}
	l.mu.Unlock()
	reg := uring.BufReg{Bgid: loopGroup}
	l.k.Register(uring.UnregisterPbufRing, unsafe.Pointer(&reg), 1)
	if err := l.k.Close(); err != nil {
		l.bug("ring close: " + err.Error())
	}
	l.pool.unmap()
	l.exit()
}

// exit marks the loop gone and unmaps its receive buffers unless a
// handler still holds some.
func (l *loop) exit() {
	l.mu.Lock()
	l.gone = true
	for _, fd := range l.adopt {
		unix.Close(fd) // placed here as the loop stopped
	}
	l.adopt = nil
	if l.efd >= 0 {
		unix.Close(l.efd)
		l.efd = -1
	}
	free := l.held == 0
	if free && l.br != nil {
		l.br.Free()
	}
	l.mu.Unlock()
	if free {
		close(l.released)
	}
	if !l.acceptDone {
		l.acceptDone = true
		l.srv.accepts.Done()
	}
	close(l.exited)
}
