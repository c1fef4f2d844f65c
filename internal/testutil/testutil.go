// Package testutil holds the test helpers every package of the module
// shares: the io_uring availability rule and the leak check.
package testutil

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorio/rio/internal/uring"
)

// RequireRing skips t when err says io_uring or a feature of it is
// unavailable (it matches rio.ErrNotSupported, which names the feature and
// the kernel that brought it; the sentinel is defined in internal/uring, so
// that this package need not import rio), unless RIO_REQUIRE_URING=1, as in CI, where
// that fails t instead. Any other non-nil error fails t.
func RequireRing(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, uring.ErrNotSupported) {
		if os.Getenv("RIO_REQUIRE_URING") == "1" {
			t.Fatalf("RIO_REQUIRE_URING=1 but: %v", err)
		}
		t.Skip(err)
	}
	t.Fatal(err)
}

// CheckLeaks records the number of goroutines and open fds now and, when t
// ends, fails it if there are more, listing the goroutines and fds.
// Cleanups run last-in first-out: call it before creating what it checks.
// The wait before failing only absorbs the scheduler's delay in letting
// goroutines exit; it is no timing assertion.
func CheckLeaks(t testing.TB) {
	t.Helper()
	g0, fds0 := runtime.NumGoroutine(), len(Fds(t))
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			fds := Fds(t)
			g := runtime.NumGoroutine()
			if g <= g0 && len(fds) <= fds0 {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("leak: goroutines %d -> %d, fds %d -> %d\nfds: %s\n%s",
					g0, g, fds0, len(fds), strings.Join(fds, ", "), buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// Fds lists the process's open file descriptors as "fd -> target".
func Fds(t testing.TB) []string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		out = append(out, fmt.Sprintf("%s -> %s", e.Name(), target))
	}
	return out
}

// FastTempDir returns a temporary directory for t on tmpfs (/dev/shm)
// where there is one, else t.TempDir(). Tests whose operations fsync for
// real (the simulated kernel does) use it: on a busy disk, a few syncs can
// take seconds, which would dominate a test and can outlast a fuzz run's
// time budget.
func FastTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "rio-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
