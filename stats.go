package rio

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a Ring's counters. Counting costs a few atomic
// additions per batch of submissions or completions, so it is always on.
type Stats struct {
	Submitted uint64 // operations handed to the kernel
	Completed uint64 // completions reaped
	Enters    uint64 // io_uring_enter system calls
	InFlight  int    // operations submitted and not yet reaped, internal ones included
	Queued    int    // operations waiting for a free slot (see WithQueueLimit)

	// EnterErrors counts io_uring_enter calls that failed with an error
	// other than EINTR, EAGAIN or EBUSY (those are retried). It should stay
	// zero; anything else is a bug worth reporting.
	EnterErrors uint64

	// Latency is a histogram of the time from submission to reaping, of a
	// sample of one operation in 8. Latency[i] counts operations that took
	// less than 2^i nanoseconds and at least 2^(i-1) (bucket 0: under 1ns).
	Latency [64]uint64
}

// Quantile returns an upper bound on the q-quantile (0 < q <= 1) of the
// latency histogram, or 0 if it is empty.
func (s *Stats) Quantile(q float64) time.Duration {
	var total uint64
	for _, n := range s.Latency {
		total += n
	}
	if total == 0 {
		return 0
	}
	want := uint64(q * float64(total))
	if want == 0 {
		want = 1
	}
	var seen uint64
	for i, n := range s.Latency {
		seen += n
		if seen >= want {
			if i >= 63 {
				return time.Duration(1<<63 - 1)
			}
			return time.Duration(uint64(1) << i)
		}
	}
	return time.Duration(1<<63 - 1)
}

type stats struct {
	submitted   atomic.Uint64
	completed   atomic.Uint64
	enters      atomic.Uint64
	enterErrors atomic.Uint64
	unknown     atomic.Uint64
	latency     histogram
}

type histogram [64]atomic.Uint64

func bucket(ns int64) int {
	if ns < 0 {
		ns = 0
	}
	return bits.Len64(uint64(ns)) & 63
}

// Stats returns the ring's counters. It is safe to call at any time, also
// after Close; a nil or zero Ring has zero counters.
func (r *Ring) Stats() Stats {
	if !r.usable() {
		return Stats{}
	}
	s := Stats{
		Submitted:   r.stats.submitted.Load(),
		Completed:   r.stats.completed.Load(),
		Enters:      r.stats.enters.Load(),
		EnterErrors: r.stats.enterErrors.Load(),
		InFlight:    int(r.table.inflight.Load()),
		Queued:      r.table.queuedOps(),
	}
	for i := range s.Latency {
		s.Latency[i] = r.stats.latency[i].Load()
	}
	return s
}
