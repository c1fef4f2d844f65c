// Package testutil holds the test helpers every package of the module
// shares: the io_uring availability rule and the leak check.
package testutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
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

// GCUntil runs the garbage collector until cond holds, failing t if it
// does not after a generous bound (a hang bound, not a timing assertion).
func GCUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 20s of garbage collections", what)
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
}

// SetupClass names the class of a setup error, for a test's child process
// to print and its parent to compare: "nil", "resource limit" (matching
// rio.ErrResourceLimit), "not supported" (rio.ErrNotSupported), or
// "other: " and the error.
func SetupClass(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, uring.ErrResourceLimit) && !errors.Is(err, uring.ErrNotSupported):
		return "resource limit"
	case errors.Is(err, uring.ErrNotSupported):
		return "not supported"
	}
	return "other: " + err.Error()
}

// ClassLines returns the lines of out that start with one of prefixes.
func ClassLines(out string, prefixes ...string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(out, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				b.WriteString(l)
				break
			}
		}
	}
	return b.String()
}

// SetupCase is a restriction for a child process (a spec for
// sandbox.Apply) and the class lines (see ClassLines) it must print.
type SetupCase struct{ Spec, Want string }

// RunSetupChildren runs, for each case and for each of the seccomp
// restrictions (which must make io_uring unavailable: the child falls
// back), this test binary as a child with env set to the case's spec,
// RIONET_NOFALLBACK unset, and compares the lines it prints starting with
// RING:, REDUCED:, AVAILABLE: and NOFALLBACK: with the case's; the child
// must also print "IO: ok".
func RunSetupChildren(t *testing.T, env string, cases []SetupCase, seccompSpecs []string) {
	for _, spec := range seccompSpecs {
		cases = append(cases, SetupCase{spec, "RING: false\nAVAILABLE: not supported\nNOFALLBACK: not supported\n"})
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.Spec, ":", "="), func(t *testing.T) {
			// A hang fails the test: a generous bound, not a timing assertion.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "RIONET_NOFALLBACK=") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(cmd.Env, env+"="+c.Spec)
			b, err := cmd.CombinedOutput()
			out := string(b)
			if err != nil {
				t.Fatalf("child %s: %v\n%s", c.Spec, err, out)
			}
			if got := ClassLines(out, "RING:", "REDUCED:", "AVAILABLE:", "NOFALLBACK:"); got != c.Want {
				t.Errorf("child %s printed\n%swant\n%s\nall of it:\n%s", c.Spec, got, c.Want, out)
			}
			if !strings.Contains(out, "IO: ok") {
				t.Errorf("child %s: no IO: ok\n%s", c.Spec, out)
			}
		})
	}
}
