package rio_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/gorio/rio/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/hooks"
	"github.com/gorio/rio/internal/sim"
	"github.com/gorio/rio/internal/uring"
	"github.com/gorio/rio/riotest"
)

// Helpers of the simulation tests (sim_*_test.go), which test the core
// through its public API over the simulated kernel of internal/sim.

// simRing returns a ring over a simulated kernel, its kernel, and registers
// the ring's Close (which must succeed: the kernel reports protocol
// violations through it) and a leak check with t.
func simRing(t testing.TB, cfg sim.Config, opts ...rio.Option) (*rio.Ring, *sim.Kernel) {
	t.Helper()
	checkNoLeaks(t)
	var k *sim.Kernel
	r, err := rio.New(append(opts, simKernel(cfg, &k))...)
	require.NoError(t, err, "rio.New over the simulated kernel")
	t.Cleanup(func() {
		assert.NoError(t, r.Close(), "Close")
		assert.Zero(t, r.Stats().InFlight, "operations in flight after Close")
	})
	return r, k
}

// simKernel returns the Option that makes rio.New use a simulated kernel
// configured by cfg, which it stores in *k.
func simKernel(cfg sim.Config, k **sim.Kernel) rio.Option {
	return hooks.WithKernel(func(entries uint32, p *uring.Params) (uring.Kernel, error) {
		sk, err := sim.New(cfg, entries, p)
		*k = sk
		return sk, err
	}).(rio.Option)
}

// allFaults is riotest.AllFaults in the simulator's terms.
func allFaults() sim.Faults {
	return sim.Faults(riotest.AllFaults())
}

// checkNoLeaks is testutil.CheckLeaks.
func checkNoLeaks(t testing.TB) {
	t.Helper()
	testutil.CheckLeaks(t)
}

// realRing returns a ring on the running kernel, skipping t if io_uring is
// unavailable (failing it instead under RIO_REQUIRE_URING=1).
func realRing(t testing.TB, opts ...rio.Option) *rio.Ring {
	t.Helper()
	checkNoLeaks(t)
	r, err := rio.New(opts...)
	testutil.RequireRing(t, err)
	t.Cleanup(func() {
		assert.NoError(t, r.Close(), "Close")
	})
	return r
}

func tempFiles(t testing.TB, n int) []*os.File {
	t.Helper()
	dir := testutil.FastTempDir(t) // the simulated kernel fsyncs for real
	fs := make([]*os.File, n)
	for i := range fs {
		f, err := os.Create(fmt.Sprintf("%s/f%d", dir, i))
		require.NoError(t, err)
		t.Cleanup(func() { f.Close() })
		fs[i] = f
	}
	return fs
}
