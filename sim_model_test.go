package rio_test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/gorio/rio/riotest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/sim"
	"github.com/gorio/rio/riotest/prog"
)

// Model-based tests: seeded random programs of file operations (writes,
// reads, vectored forms, fsync, fallocate, truncate, statx, linked chains,
// batches, drains) run through a ring and against the in-memory model of
// riotest/prog, compared with go-cmp: every observation, and the
// files' final contents.

const progFiles = 2

func progLen() int {
	if testing.Short() {
		return 40
	}
	return 120
}

// checkProgram runs prog through x and the model and compares.
func checkProgram(t *testing.T, x *prog.Runner, p []prog.Op) {
	t.Helper()
	want, wantFiles := prog.Model(len(x.Files), p)
	got := x.Run(p)
	require.Equal(t, want, got, "ring differs from the model")
	for i, f := range x.Files {
		b, err := os.ReadFile(f.Name())
		require.NoError(t, err)
		require.True(t, bytes.Equal(b, wantFiles[i]), "file %d: final contents differ from the model (%d bytes, model %d)", i, len(b), len(wantFiles[i]))
	}
}

// The same programs on the running kernel's io_uring.
func TestModelProgramsRealKernel(t *testing.T) {
	r := realRing(t, rio.WithEntries(8))
	riotest.ForSeeds(t, 6, func(t *testing.T, seed uint64) {
		p := prog.Gen(rand.New(rand.NewPCG(seed, 1)), progFiles, progLen())
		checkProgram(t, &prog.Runner{Ring: r, Files: tempFiles(t, progFiles)}, p)
	})
}

// The same programs on the simulated kernel with every fault class on.
func TestModelProgramsSimFaults(t *testing.T) {
	riotest.ForSeeds(t, 12, func(t *testing.T, seed uint64) {
		cfg := sim.Config{Seed: seed, Faults: allFaults()}
		if seed%2 == 0 {
			cfg.StartIndex = uint32(1<<32 - seed%64) // wraps around in the test
		}
		r, k := simRing(t, cfg, rio.WithEntries(4))
		p := prog.Gen(rand.New(rand.NewPCG(seed, 1)), progFiles, progLen())
		checkProgram(t, &prog.Runner{Ring: r, Files: tempFiles(t, progFiles)}, p)
		st := k.Stats()
		assert.True(t, st.ShortIO != 0 && st.Delayed != 0, "faults were not injected: %+v", st)
	})
}
