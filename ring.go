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
// A Ring is safe for concurrent use. Submissions, from one goroutine or
// many, are combined into few io_uring_enter calls: an operation method
// publishes its operation and returns, and the ring enters everything
// published with the next wait on the ring, or from a timer 20 µs after
// the first unentered submission (see Flush). Completions are reaped by
// the goroutine that waits when they are already there, and otherwise by
// a reaper goroutine woken through an eventfd in Go's network poller, so a
// waiting goroutine never holds an OS thread.
package rio

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorio/rio/internal/uring"
)

// Ring is an io_uring instance. Create one with New and release it with
// Close. A nil or zero Ring is not usable: its methods return (or their
// operations fail with) an error matching syscall.EINVAL, as an *os.File's
// do for a nil one, and Stats returns zero counters.
type Ring struct {
	k      kernel
	rings  *uring.Rings
	probe  *uring.Probe
	sqpoll bool
	short  shortEnterer // k, if it has a cheaper enter for short calls
	free   freeOps      // released Completions (Completion.Release)

	// Submission side, guarded by mu.
	mu         sync.Mutex
	sqTail     uint32 // our copy of the SQ tail
	submitting bool   // a goroutine is in the enter loop
	again      bool   // SQEs were published while it was in enter
	heavy      bool   // an unsubmitted SQE moves much data inline (see heavyOp)
	timerArmed bool   // flushTimer is set (see deferLocked)
	submitted  uint64 // SQEs published, for Stats
	// flushEnters counts the enters of flushLocked's first attempt, for
	// Stats (the others count in stats.enters): a plain count under mu
	// costs no atomic operation per enter.
	flushEnters uint64
	closed      bool // Close has begun: no new user operations
	quiet       bool // Close is done cancelling: no new internal operations either
	dead        bool // torn down: no operations at all

	// Completion side.
	cqMu    sync.Mutex // held while draining the CQ
	cqHead  uint32     // our copy of the CQ head, guarded by cqMu
	freed   [64]uint32 // drainLocked's slots to release, guarded by cqMu
	reaped  uint64     // CQEs reaped, for Stats, guarded by cqMu
	reapReq atomic.Bool

	// unflushed: SQEs are published and wait for a flush (see deferLocked).
	unflushed  atomic.Bool
	flushTimer *time.Timer

	pumpMu sync.Mutex // held by the goroutine that pumps the table's queue
	table  slotTable  // the in-flight table (slots.go)

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
	closeDone chan struct{}
	closeErr  error

	// Registered buffers and open BufferRings, guarded by regMu.
	regMu    sync.Mutex
	regBufs  [][]byte
	regPin   runtime.Pinner
	bufRings map[*BufferRing]struct{}

	stats stats
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
func (r *Ring) now() int64 { return r.table.now() }
