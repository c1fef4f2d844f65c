package rio

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gorio/rio/internal/hooks"
	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

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
		sqpoll:      p.Flags&uring.SetupSQPoll != 0,
		alwaysArmed: cfg.alwaysArm || rg.CQFlags == nil,
		closeDone:   make(chan struct{}),
		reaperDone:  make(chan struct{}),
		spinFor:     cfg.spin,
	}
	r.short, _ = k.(shortEnterer)
	r.flushTimer = time.AfterFunc(time.Hour, r.timedFlush)
	r.flushTimer.Stop()
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
		r.probe.OpsLen = uint8(uring.OpPollRemove) + 1
		for i := 0; i <= int(uring.OpPollRemove); i++ {
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
