package rio_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/sim"
	"github.com/gorio/rio/riotest/prog"
)

// Acceptance: for each fault class, a deliberately broken variant of the
// code that ignores it is caught by a test under injection of that class,
// while the correct code passes under the same faults, and the broken
// variant passes without them. (Enter errors, short submissions, CQ
// overflow and ENOBUFS concern the layer that drives the rings; their
// broken variants are in internal/sim/driver_test.go.)

// diverges runs prog through x over a fresh simulated kernel and reports
// whether anything differs from the model.
func diverges(t *testing.T, seed uint64, f sim.Faults, broken prog.Broken) (bool, string) {
	t.Helper()
	var diff string
	t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
		r, _ := simRing(t, sim.Config{Seed: seed, Faults: f}, rio.WithEntries(4))
		files := tempFiles(t, progFiles)
		p := prog.Gen(rand.New(rand.NewPCG(seed, 1)), progFiles, 60)
		want, wantFiles := prog.Model(progFiles, p)
		got := (&prog.Runner{Ring: r, Files: files, Broken: broken}).Run(p)
		diff = cmp.Diff(want, got)
		for i, fl := range files {
			b, err := os.ReadFile(fl.Name())
			require.NoError(t, err)
			if !bytes.Equal(b, wantFiles[i]) {
				diff += fmt.Sprintf("file %d: final contents differ\n", i)
			}
		}
	})
	return diff != "", diff
}

func TestSimCatchesBrokenVariants(t *testing.T) {
	cases := []struct {
		name   string
		faults sim.Faults
		broken prog.Broken
	}{
		{"ShortIO/ignore-short-writes", sim.Faults{ShortIO: 0.5}, prog.Broken{IgnoreShortWrite: true}},
		{"ShortIO/ignore-short-reads", sim.Faults{ShortIO: 0.5}, prog.Broken{IgnoreShortRead: true}},
		{"OpEINTR/no-retry", sim.Faults{OpEINTR: 0.2}, prog.Broken{NoRetry: true}},
		{"OpEAGAIN/no-retry", sim.Faults{OpEAGAIN: 0.2}, prog.Broken{NoRetry: true}},
		{"ECANCELED/ignore-broken-links", sim.Faults{ShortIO: 0.5}, prog.Broken{IgnoreLinkCancel: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			caught := uint64(0)
			for seed := uint64(1); seed <= 10 && caught == 0; seed++ {
				if bad, _ := diverges(t, seed, c.faults, c.broken); bad {
					caught = seed
				}
			}
			require.NotZero(t, caught, "the broken variant passed under injection")
			t.Logf("caught with seed %d", caught)
			bad, diff := diverges(t, caught, c.faults, prog.Broken{})
			assert.False(t, bad, "the correct runner fails under the same faults:\n%s", diff)
			bad, diff = diverges(t, caught, sim.Faults{MaxDelay: 4}, c.broken)
			assert.False(t, bad, "the broken variant fails even without the fault:\n%s", diff)
		})
	}
}

// readWithin reads from fd, giving up when ctx is done. The broken variant
// forgets the read once it gave up on it; the correct one knows that the
// cancellation can lose the race with the read, which then consumed data,
// and keeps what the read returned.
func readWithin(ctx context.Context, r *rio.Ring, fd int, buf []byte, broken bool) (int, error) {
	c := r.Read(fd, buf)
	n, err := c.WaitContext(ctx)
	if err == nil || !errors.Is(err, ctx.Err()) {
		return n, err
	}
	if broken {
		return 0, err
	}
	if n, werr := c.Wait(); werr == nil {
		return n, nil
	}
	return 0, err
}

// CancelRace: a reader that drops reads it gave up on loses bytes when the
// cancellation finds the read already running.
func TestSimCatchesBrokenCancelHandling(t *testing.T) {
	lost := func(seed uint64, f sim.Faults, broken bool) int {
		var got []byte
		t.Run(fmt.Sprintf("seed=%d/broken=%v", seed, broken), func(t *testing.T) {
			r, _ := simRing(t, sim.Config{Seed: seed, Faults: f}, rio.WithEntries(8))
			pr, pw := pipePair(t)
			data := bytes.Repeat([]byte("0123456789"), 20)
			_, err := pw.Write(data)
			require.NoError(t, err)
			pw.Close()
			gaveUp, cancel := context.WithCancel(context.Background())
			cancel()
			buf := make([]byte, 7)
			for i := 0; i < 40; i++ {
				// A fresh buffer each time: the broken variant would
				// otherwise also reuse a buffer that a read it gave up on
				// still owns, which -race reports.
				b := make([]byte, 7)
				n, _ := readWithin(gaveUp, r, int(pr.Fd()), b, broken)
				got = append(got, b[:n]...)
			}
			for {
				n, err := r.Read(int(pr.Fd()), buf).Wait()
				require.NoError(t, err)
				if n == 0 {
					break
				}
				got = append(got, buf[:n]...)
			}
			require.True(t, bytes.HasPrefix(data, got) || len(got) < len(data), "bytes out of order")
			got = got[:min(len(got), len(data))]
		})
		return 200 - len(got)
	}
	f := sim.Faults{MaxDelay: 8, CancelRace: 1}
	for seed := uint64(1); seed <= 3; seed++ {
		require.Zero(t, lost(seed, f, false), "the correct reader lost bytes")
		require.Positive(t, lost(seed, f, true), "the broken reader lost nothing under CancelRace")
		require.Zero(t, lost(seed, sim.Faults{}, true), "the broken reader loses bytes without the fault")
	}
}
