package riotest_test

import (
	"bytes"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gorio/rio"
	"github.com/gorio/rio/riotest"
)

// writeAll is what an adapter's write must do: complete short writes and
// retry EINTR and EAGAIN.
func writeAll(r *rio.Ring, fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := r.WriteAt(fd, b, off).Wait()
		if errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN) {
			continue
		}
		if err != nil {
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func TestNewRing(t *testing.T) {
	r := riotest.NewRing(t, riotest.Config{Faults: riotest.AllFaults(), StartIndex: 1<<32 - 8}, rio.WithEntries(4))
	f, err := os.CreateTemp(t.TempDir(), "riotest")
	require.NoError(t, err)
	defer f.Close()
	want := bytes.Repeat([]byte("0123456789abcdef"), 1000)
	for off := 0; off < len(want); off += 1000 {
		require.NoError(t, writeAll(r, int(f.Fd()), want[off:min(off+1000, len(want))], int64(off)))
	}
	got, err := os.ReadFile(f.Name())
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

func TestKernel(t *testing.T) {
	k := riotest.NewKernel(riotest.Config{Seed: 42, Faults: riotest.AllFaults()})
	assert.Equal(t, uint64(42), k.Seed())
	assert.Zero(t, k.Stats())
	assert.NoError(t, k.Err())
	assert.Contains(t, k.String(), "seed 42: not started")
	r, err := rio.New(k.Option())
	require.NoError(t, err)
	// A timeout far in the future stays pending: String lists it, once the
	// ring has entered it (Done flushes what the ring defers).
	ts := r.Timeout(time.Hour)
	assert.False(t, ts.Done())
	assert.Regexp(t, `seed 42: .*\n  op \d+ opcode 11 `, k.String())
	ts.Cancel()
	_, _ = ts.Wait()
	_, err = rio.New(k.Option())
	assert.Error(t, err, "a Kernel serves one Ring")
	for i := 0; i < 100; i++ {
		_, err := r.Nop().Wait()
		require.NoError(t, err)
	}
	require.NoError(t, r.Close())
	st := k.Stats()
	assert.Equal(t, st.SQEs, st.CQEs)
	assert.GreaterOrEqual(t, st.SQEs, uint64(100))
	assert.NoError(t, k.Err())
}

func TestSeedFromEnv(t *testing.T) {
	t.Setenv("RIO_SEED", "1234")
	assert.Equal(t, uint64(1234), riotest.SeedFromEnv())
	assert.Equal(t, uint64(1234), riotest.NewKernel(riotest.Config{}).Seed())
	t.Setenv("RIO_SEED", "")
	assert.NotZero(t, riotest.SeedFromEnv())
}
