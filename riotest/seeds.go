package riotest

import (
	"fmt"
	"os"
	"strconv"
	"testing"
)

// Soak reports whether the RIO_SOAK environment variable is set: tests then
// run 100 times as many seeds, for hours-long fault hunts.
func Soak() bool { return os.Getenv("RIO_SOAK") != "" }

// Seeds returns the seeds a simulation test should run: RIO_SEED alone if
// it is set, else 1..n (100n under RIO_SOAK) and one random seed, so that
// every run also explores a new one.
func Seeds(n int) []uint64 {
	if s, err := strconv.ParseUint(os.Getenv("RIO_SEED"), 0, 64); err == nil && s != 0 {
		return []uint64{s}
	}
	if Soak() {
		n *= 100
	}
	out := make([]uint64, 0, n+1)
	for i := 1; i <= n; i++ {
		out = append(out, uint64(i))
	}
	return append(out, SeedFromEnv())
}

// ForSeeds runs f as a subtest named seed=N for each of Seeds(n). A failing
// seed logs the command that replays it; the run stops at the first failing
// seed, unless soaking.
func ForSeeds(t *testing.T, n int, f func(t *testing.T, seed uint64)) {
	t.Helper()
	for _, seed := range Seeds(n) {
		ok := t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("replay: RIO_SEED=%d go test -run '%s' <package>", seed, t.Name())
				}
			}()
			f(t, seed)
		})
		if !ok && !Soak() {
			return
		}
	}
}
