package file

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gorio/rio"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requireURing is set by RIO_REQUIRE_URING=1: then a missing kernel feature
// fails the test instead of skipping it, and the package does not fall back
// to the os package.
var requireURing = os.Getenv("RIO_REQUIRE_URING") == "1"

func TestMain(m *testing.M) {
	if child := os.Getenv(childEnv); child != "" {
		os.Exit(runChild(child))
	}
	if requireURing {
		SetFallback(false)
	}
	code := m.Run()
	cleanupBenchFiles()
	os.Exit(code)
}

// skipUnsupported skips t if err reports a missing kernel feature (matching
// rio.ErrNotSupported), or fails it under RIO_REQUIRE_URING=1. Any other
// non-nil error fails t.
func skipUnsupported(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, rio.ErrNotSupported) {
		require.False(t, requireURing, "RIO_REQUIRE_URING=1 but: %v", err)
		t.Skipf("kernel feature missing: %v", err)
	}
	require.NoError(t, err)
}

// newRing returns a private Ring, closed when t ends.
func newRing(t testing.TB, opts ...rio.Option) *rio.Ring {
	t.Helper()
	r, err := rio.New(opts...)
	skipUnsupported(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

// sharedRing returns the package's shared Ring, or skips.
func sharedRing(t testing.TB) *rio.Ring {
	t.Helper()
	r, err := DefaultRing()
	skipUnsupported(t, err)
	return r
}

// checkLeaks records the goroutines and file descriptors at the start of a
// test and, when it ends, fails it if more remain (after giving exiting
// goroutines a moment). Register it before anything that should be released
// by the test's own cleanups, so that it runs after them.
func checkLeaks(t *testing.T) {
	t.Helper()
	sharedRing(t) // created once, and never closed: not a leak
	// Nor is the first ring for streams, made on first use.
	if len(streamRings.load()) == 0 {
		_, err := streamRings.grow(0)
		require.NoError(t, err)
	}
	g0 := runtime.NumGoroutine()
	fds0 := openFds(t)
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > g0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if g := runtime.NumGoroutine(); g > g0 {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			assert.Failf(t, "goroutine leak", "%d before, %d after\n%s", g0, g, buf)
		}
		fds1 := openFds(t)
		var extra []string
		for fd, target := range fds1 {
			if _, ok := fds0[fd]; !ok {
				extra = append(extra, fmt.Sprintf("%s -> %s", fd, target))
			}
		}
		sort.Strings(extra)
		assert.Empty(t, extra, "file descriptor leak:\n%s", strings.Join(extra, "\n"))
	})
}

func openFds(t testing.TB) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	m := make(map[string]string)
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // the descriptor ReadDir itself used
		}
		m[e.Name()] = target
	}
	return m
}

// writeTemp creates a file with data in a temporary directory of t.
func writeTemp(t testing.TB, data []byte) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.WriteFile(name, data, 0o644))
	return name
}

func mustOpenRing(t testing.TB, r *rio.Ring, name string, flag int) *File {
	t.Helper()
	f, err := OpenFileRing(r, name, flag, 0o644)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}
