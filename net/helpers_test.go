package rionet_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/gorio/rio"
	rionet "github.com/gorio/rio/net"
)

// requireURing skips t when err says io_uring or a feature of it is
// unavailable, unless RIO_REQUIRE_URING=1 (as in CI), where that fails t.
// Any other error fails t.
func requireURing(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, rio.ErrNotSupported) {
		if os.Getenv("RIO_REQUIRE_URING") == "1" {
			t.Fatalf("RIO_REQUIRE_URING=1 but: %v", err)
		}
		t.Skip(err)
	}
	t.Fatal(err)
}

// listen listens on loopback (or a unix socket in a temp dir) with no
// fallback, so that every test runs on io_uring or skips. It checks for
// leaked goroutines and fds when t ends.
func listen(t testing.TB, network string) *rionet.Listener {
	t.Helper()
	lc := rionet.ListenConfig{NoFallback: true}
	// Create the default ring before the leak baseline: it lives for the
	// whole process.
	if ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0"); err != nil {
		requireURing(t, err)
	} else {
		ln.Close()
	}
	checkLeaks(t)
	addr := "127.0.0.1:0"
	switch network {
	case "unix":
		addr = filepath.Join(t.TempDir(), "s")
	case "tcp6":
		addr = "[::1]:0"
	}
	ln, err := lc.Listen(t.Context(), network, addr)
	requireURing(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln.(*rionet.Listener)
}

var dialer = rionet.Dialer{NoFallback: true}

func dial(t testing.TB, ln net.Listener) *rionet.Conn {
	t.Helper()
	c, err := dialer.Dial(ln.Addr().Network(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*rionet.Conn)
}

// pair returns both ends of a connection through ln.
func pair(t testing.TB, ln *rionet.Listener) (client, server *rionet.Conn) {
	t.Helper()
	client = dial(t, ln)
	s, err := ln.AcceptConn()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return client, s
}

// checkLeaks records the goroutines and fds now and fails t if there are
// more when it ends.
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
				dumpFds(t)
				t.Errorf("leak: goroutines %d -> %d, fds %d -> %d\n%s", g0, g, fds0, fds, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func countFds(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func dumpFds(t testing.TB) {
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		t.Logf("fd %s -> %s", e.Name(), l)
	}
	out, _ := exec.Command("sh", "-c", fmt.Sprintf("ss -tanpe | grep pid=%d", os.Getpid())).CombinedOutput()
	t.Logf("%s", out)
}
