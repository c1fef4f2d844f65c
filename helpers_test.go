package rio

import (
	"context"
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requireRing skips t when err says io_uring or a feature is unavailable,
// unless RIO_REQUIRE_URING=1 (as in CI), where that is a failure. Any other
// error fails t.
func requireRing(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, ErrNotSupported) {
		if os.Getenv("RIO_REQUIRE_URING") == "1" {
			require.FailNow(t, "RIO_REQUIRE_URING=1 but: "+err.Error())
		}
		t.Skip(err)
	}
	require.NoError(t, err)
}

// newTestRing returns a ring that is closed when t ends, and checks at the
// end that neither goroutines nor fds leaked.
func newTestRing(t testing.TB, opts ...Option) *Ring {
	t.Helper()
	checkLeaks(t)
	r, err := New(opts...)
	requireRing(t, err)
	t.Cleanup(func() {
		assert.NoError(t, r.Close(), "Close")
		assert.Zero(t, r.Stats().InFlight, "operations still in flight after Close")
	})
	return r
}

// checkLeaks records the goroutines and fds now and, when t ends, fails it
// if there are more. Cleanups run last-in first-out, so one registered
// before a ring's Close runs after it.
func checkLeaks(t testing.TB) {
	t.Helper()
	g0, fds0 := runtime.NumGoroutine(), countFds(t)
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			g, fds := runtime.NumGoroutine(), countFds(t)
			if g <= g0 && fds <= fds0 {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				buf = buf[:runtime.Stack(buf, true)]
				assert.Failf(t, "leak", "goroutines %d -> %d, fds %d -> %d\n%s", g0, g, fds0, fds, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func countFds(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

func pipe(t testing.TB) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func tempFile(t testing.TB, data []byte) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "rio")
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	_, err = f.Write(data)
	require.NoError(t, err)
	return f
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func runtimeStack(buf []byte) int { return runtime.Stack(buf, true) }
