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
	// sample of one operation in 16. Latency[i] counts operations that took
	// less than 2^i nanoseconds and at least 2^(i-1) (bucket 0: under 1ns).
	// LatencyFine holds the same samples in finer buckets.
	Latency [64]uint64

	// LatencyFine is the latency histogram with 8 buckets per power of
	// two (as HDR histograms have), so that its quantiles are within 12.5%:
	// LatencyFine[i] counts the samples from LatencyBucket(i)'s lower
	// bound (inclusive) to its upper bound (exclusive).
	LatencyFine [LatencyBuckets]uint64
}

// LatencyBuckets is the number of buckets of Stats.LatencyFine: 8 for the
// durations below 8 ns, one each, then 8 per power of two from 2^3 to 2^62
// ns (the last ends at the longest Duration).
const LatencyBuckets = 8 + 60*8

// LatencyBucket returns the bounds of bucket i of Stats.LatencyFine: it
// counts the durations d with lo <= d < hi.
func LatencyBucket(i int) (lo, hi time.Duration) {
	if i < 8 {
		return time.Duration(i), time.Duration(i + 1)
	}
	e, sub := uint(i/8+2), uint64(i%8) // [2^e, 2^(e+1)) in 8 steps
	l := (8 + sub) << (e - 3)
	h := l + 1<<(e-3)
	if h > 1<<63-1 || h < l {
		h = 1<<63 - 1
	}
	return time.Duration(l), time.Duration(h)
}

// fineBucket returns the LatencyFine bucket of ns nanoseconds.
func fineBucket(ns int64) int {
	if ns < 8 {
		return int(max(ns, 0))
	}
	e := bits.Len64(uint64(ns)) - 1 // 3 to 62
	sub := int(uint64(ns)>>(e-3)) & 7
	return (e-2)*8 + sub
}

// coarseBucket returns the Latency bucket of the LatencyFine bucket i.
func coarseBucket(i int) int {
	if i < 8 {
		return bits.Len64(uint64(i))
	}
	return i/8 + 3
}

// Quantile returns an upper bound on the q-quantile (0 < q <= 1) of the
// latency histogram, within 12.5% (see LatencyFine), or 0 if it is empty.
func (s *Stats) Quantile(q float64) time.Duration {
	var total uint64
	for _, n := range s.LatencyFine {
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
	for i, n := range s.LatencyFine {
		seen += n
		if seen >= want {
			_, hi := LatencyBucket(i)
			return hi
		}
	}
	return time.Duration(1<<63 - 1)
}

type stats struct {
	enters      atomic.Uint64 // all but flushLocked's first attempts (Ring.flushEnters)
	enterErrors atomic.Uint64
	unknown     atomic.Uint64
	latency     [LatencyBuckets]atomic.Uint64 // by fineBucket
}

// Stats returns the ring's counters. It is safe to call at any time, also
// after Close; a nil or zero Ring has zero counters.
func (r *Ring) Stats() Stats {
	if !r.usable() {
		return Stats{}
	}
	r.mu.Lock()
	submitted, flushEnters := r.submitted, r.flushEnters
	r.mu.Unlock()
	r.cqMu.Lock()
	completed := r.reaped
	r.cqMu.Unlock()
	r.drainAsked() // a drain refused while this held the lock
	s := Stats{
		Submitted:   submitted,
		Completed:   completed,
		Enters:      r.stats.enters.Load() + flushEnters,
		EnterErrors: r.stats.enterErrors.Load(),
		InFlight:    r.table.inFlight(),
		Queued:      r.table.queuedOps(),
	}
	for i := range s.LatencyFine {
		n := r.stats.latency[i].Load()
		s.LatencyFine[i] = n
		s.Latency[coarseBucket(i)] += n
	}
	return s
}
