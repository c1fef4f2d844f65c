// Package riotest runs rio rings over a simulated io_uring kernel that
// injects faults, so that a program's tests can exercise its file and
// network code against what production kernels do but a test machine
// rarely shows: completions in any order, short reads and writes, EINTR and
// EAGAIN results, cancelled links, CQ overflow, EINTR, EAGAIN and EBUSY
// from io_uring_enter, cancellations that lose the race with a running
// operation, and ENOBUFS from provided buffers.
//
// The simulated kernel speaks the io_uring protocol to the unchanged rio
// code. It performs each operation itself with the corresponding system
// call on the caller's descriptors and memory, so files, pipes and sockets
// behave as they do for real, apart from the injected faults.
//
// Every fault is drawn from a random stream seeded by Config.Seed. A
// program that submits from one goroutine sees the same faults, and its
// operations complete in the same order, whenever it runs with the same
// seed. NewRing picks a seed, or takes it from the RIO_SEED environment
// variable, and prints it when the test fails:
//
//	RIO_SEED=1234 go test -run TestMine ./...
//
// replays the failing run.
package riotest

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/hooks"
	"github.com/gorio/rio/internal/sim"
	"github.com/gorio/rio/internal/uring"
)

// Faults says which faults the simulated kernel injects and how often.
// Probabilities are per operation (per io_uring_enter call for the Enter
// faults), from 0 (never) to 1 (always). The zero value injects nothing and
// completes every operation during the io_uring_enter that submits it, in
// order.
type Faults struct {
	// MaxDelay is the largest delay before an operation completes,
	// counted in submissions: each operation's delay is drawn from 0 to
	// MaxDelay. Delays make operations complete out of order. When the
	// program waits, the simulated clock jumps to the next completion, so
	// delays cost no real time.
	MaxDelay int

	// ShortIO makes reads, writes, sends and receives transfer fewer bytes
	// than asked (at least one). A short read or write breaks a link.
	ShortIO float64

	// OpEINTR and OpEAGAIN make data operations (reads, writes, sends,
	// receives, accept, connect) fail with EINTR or EAGAIN, having
	// transferred nothing.
	OpEINTR, OpEAGAIN float64

	// EnterEINTR, EnterEAGAIN and EnterEBUSY make an io_uring_enter call
	// that has operations to submit fail with that errno.
	EnterEINTR, EnterEAGAIN, EnterEBUSY float64

	// ShortSubmit makes an io_uring_enter call submit only some of the
	// queued operations (never splitting a linked chain).
	ShortSubmit float64

	// Overflow puts completions into the kernel's overflow list, as if
	// the completion queue were full; they reach the queue only when the
	// ring asks for them.
	Overflow float64

	// CancelRace makes a cancellation find the operation already running:
	// the cancellation fails (EALREADY) and the operation completes
	// normally, or with EINTR if it would have had to wait.
	CancelRace float64

	// NoBufs makes operations that select a provided buffer fail with
	// ENOBUFS.
	NoBufs float64
}

// AllFaults returns Faults with every class enabled at a rate that makes
// each one happen many times in a test of a few hundred operations,
// while most operations still succeed.
func AllFaults() Faults {
	return Faults{
		MaxDelay:    8,
		ShortIO:     0.3,
		OpEINTR:     0.05,
		OpEAGAIN:    0.05,
		EnterEINTR:  0.05,
		EnterEAGAIN: 0.05,
		EnterEBUSY:  0.05,
		ShortSubmit: 0.2,
		Overflow:    0.1,
		CancelRace:  0.2,
		NoBufs:      0.05,
	}
}

// Config configures a simulated kernel.
type Config struct {
	// Seed seeds every random decision. 0 means: take it from the RIO_SEED
	// environment variable if set, else pick one at random. Kernel.Seed
	// reports the seed in use.
	Seed uint64

	// Faults selects the faults to inject.
	Faults Faults

	// StartIndex is the initial value of the rings' head and tail
	// indices. A value just below 2^32, such as 1<<32 - 16, makes them
	// wrap around early in a test.
	StartIndex uint32
}

// Stats counts what a simulated kernel did, per fault class, so that a test
// can check that the faults it relies on did happen.
type Stats struct {
	SQEs        uint64 // operations submitted
	CQEs        uint64 // completions posted
	Enters      uint64 // io_uring_enter calls
	EnterErrors uint64 // injected EINTR, EAGAIN and EBUSY from io_uring_enter
	ShortSubmit uint64 // io_uring_enter calls that submitted only some operations
	ShortIO     uint64 // short reads, writes, sends and receives
	OpErrors    uint64 // injected EINTR and EAGAIN results
	Overflows   uint64 // completions that went through the overflow list
	LinkCancels uint64 // operations cancelled because a link before them broke
	Cancelled   uint64 // operations cancelled by a cancellation or a link timeout
	CancelRaces uint64 // cancellations that found the operation running
	NoBufs      uint64 // injected ENOBUFS
	Delayed     uint64 // operations that did not complete inline
	MaxInFlight int    // most operations in flight at once
}

// Kernel is a simulated io_uring kernel for one Ring. Create it with
// NewKernel and pass its Option to rio.New.
type Kernel struct {
	cfg  Config
	seed uint64

	mu sync.Mutex
	k  *sim.Kernel
}

// NewKernel returns a simulated kernel configured by cfg. It does nothing
// until rio.New uses its Option.
func NewKernel(cfg Config) *Kernel {
	seed := cfg.Seed
	if seed == 0 {
		seed = SeedFromEnv()
	}
	return &Kernel{cfg: cfg, seed: seed}
}

// SeedFromEnv returns the seed in the RIO_SEED environment variable, or, if
// it is unset or not a number, a random non-zero seed.
func SeedFromEnv() uint64 {
	if s, err := strconv.ParseUint(os.Getenv("RIO_SEED"), 0, 64); err == nil && s != 0 {
		return s
	}
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if s := binary.LittleEndian.Uint64(b[:]) >> 1; s != 0 {
			return s
		}
	}
}

// Seed returns the seed in use.
func (k *Kernel) Seed() uint64 { return k.seed }

// String describes the simulated kernel's state: its ring indices and the
// operations it has not completed yet. It is meant for the failure message
// of a test that hangs.
func (k *Kernel) String() string {
	k.mu.Lock()
	sk := k.k
	k.mu.Unlock()
	if sk == nil {
		return fmt.Sprintf("sim kernel seed %d: not started", k.seed)
	}
	return sk.String()
}

// Option returns the rio.Option that makes rio.New run the Ring over this
// kernel. A Kernel serves one Ring: a second rio.New with the same Option
// fails.
func (k *Kernel) Option() rio.Option {
	return hooks.WithKernel(func(entries uint32, p *uring.Params) (uring.Kernel, error) {
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.k != nil {
			return nil, errors.New("riotest: a Kernel serves only one Ring")
		}
		sk, err := sim.New(sim.Config{
			Seed:       k.seed,
			StartIndex: k.cfg.StartIndex,
			// The two types have the same fields in the same order; the
			// conversion stops compiling if they ever differ.
			Faults: sim.Faults(k.cfg.Faults),
		}, entries, p)
		if err != nil {
			return nil, err
		}
		k.k = sk
		return sk, nil
	}).(rio.Option)
}

// Stats returns what the kernel did so far.
func (k *Kernel) Stats() Stats {
	k.mu.Lock()
	sk := k.k
	k.mu.Unlock()
	if sk == nil {
		return Stats{}
	}
	s := sk.Stats()
	return Stats{
		SQEs: s.SQEs, CQEs: s.CQEs, Enters: s.Enters, EnterErrors: s.EnterErrors,
		ShortSubmit: s.ShortSubmit, ShortIO: s.ShortIO, OpErrors: s.OpErrors,
		Overflows: s.Overflows, LinkCancels: s.LinkCancels, Cancelled: s.Cancelled,
		CancelRaces: s.CancelRaces, NoBufs: s.NoBufs, Delayed: s.Delayed, MaxInFlight: s.MaxInFlight,
	}
}

// Err returns the io_uring protocol violations the kernel has seen, or nil.
// A violation is something the ring did that a real kernel would punish
// silently: reusing an operation's user_data while it is in flight,
// closing with operations in flight or completions not reaped. Ring.Close
// returns the same error.
func (k *Kernel) Err() error {
	k.mu.Lock()
	sk := k.k
	k.mu.Unlock()
	if sk == nil {
		return nil
	}
	if v := sk.Violations(); len(v) > 0 {
		return fmt.Errorf("riotest: io_uring protocol violations: %q", v)
	}
	return nil
}

// NewRing returns a Ring over a simulated kernel configured by cfg, with
// opts passed on to rio.New. The Ring is closed when tb's test ends; a
// failing Close fails the test. If the test fails, NewRing logs the seed
// and how to replay it.
func NewRing(tb testing.TB, cfg Config, opts ...rio.Option) *rio.Ring {
	tb.Helper()
	k := NewKernel(cfg)
	r, err := rio.New(append(opts, k.Option())...)
	if err != nil {
		tb.Fatalf("riotest: seed %d: rio.New: %v", k.Seed(), err)
	}
	tb.Cleanup(func() {
		if err := r.Close(); err != nil {
			tb.Errorf("riotest: Ring.Close: %v", err)
		}
		if tb.Failed() {
			tb.Logf("riotest: simulated kernel seed %d; replay with RIO_SEED=%d", k.Seed(), k.Seed())
		}
	})
	return r
}
