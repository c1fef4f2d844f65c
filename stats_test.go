package rio

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Every duration falls in the fine bucket whose bounds hold it, and that
// bucket is at most an eighth of its lower bound wide; the coarse bucket it
// adds to is the power of two Latency documents.
func TestLatencyBuckets(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(ns int64) {
		i := fineBucket(ns)
		require.True(t, i >= 0 && i < LatencyBuckets, "bucket %d of %d ns", i, ns)
		lo, hi := LatencyBucket(i)
		require.True(t, int64(lo) <= ns && (ns < int64(hi) || hi == math.MaxInt64), "%d ns in bucket %d [%d, %d)", ns, i, lo, hi)
		if lo >= 8 {
			require.LessOrEqual(t, int64(hi-lo)*8, int64(lo), "bucket %d [%d, %d) too wide", i, lo, hi)
		}
		require.Equal(t, bits.Len64(uint64(ns)), coarseBucket(i), "coarse bucket of %d ns", ns)
	}
	for ns := int64(0); ns < 5000; ns++ {
		check(ns)
	}
	for range 100000 {
		check(rng.Int64N(math.MaxInt64))
	}
	check(math.MaxInt64)
	for i := 1; i < LatencyBuckets; i++ {
		_, prevHi := LatencyBucket(i - 1)
		lo, _ := LatencyBucket(i)
		require.Equal(t, prevHi, lo, "bucket %d does not start where %d ends", i, i-1)
	}
}

// Quantile reads the fine buckets: a median of 5 µs reads 5.12 µs, not the
// 8.192 µs the power-of-two buckets gave.
func TestQuantileFine(t *testing.T) {
	var s Stats
	s.LatencyFine[fineBucket(5000)] = 10
	q := s.Quantile(0.5)
	require.True(t, q > 5000 && q <= 5000+5000/8, "median %v of samples of 5 µs", q)
	require.Equal(t, time.Duration(0), (&Stats{}).Quantile(0.5))
}
