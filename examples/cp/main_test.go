package main

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gorio/rio/internal/testutil"

	"github.com/gorio/rio"
)

// The test binary is the program when run by testutil.RunMain.
func TestMain(m *testing.M) { testutil.MainOrTests(m, main) }

func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return testutil.RunMain(t, nil, args...)
}

func requireURing(t *testing.T) {
	r, err := rio.New()
	if err == nil {
		r.Close()
		return
	}
	if errors.Is(err, rio.ErrNotSupported) && os.Getenv("RIO_REQUIRE_URING") != "1" {
		t.Skip("io_uring unavailable:", err)
	}
	t.Fatal(err)
}

func TestCopy(t *testing.T) {
	requireURing(t)
	dir := t.TempDir()
	for _, size := range []int{0, 4096, 1<<20 + 1234} {
		src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
		data := make([]byte, size)
		rng := rand.New(rand.NewPCG(uint64(size), 1))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		out, errOut, err := run(t, "-depth", "8", "-chunk", "65536", src, dst)
		if err != nil {
			t.Fatalf("size %d: %v\n%s%s", size, err, out, errOut)
		}
		if !strings.HasPrefix(out, "copied ") || !strings.Contains(out, " "+strconv.Itoa(size)+" bytes") {
			t.Errorf("size %d: output %q", size, out)
		}
		got, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("size %d: copy differs (%d bytes, want %d)", size, len(got), len(data))
		}
	}
}

func TestUsage(t *testing.T) {
	_, errOut, err := run(t, "only-one-arg")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(errOut, "usage") {
		t.Errorf("got %v, %q; want exit 2 with usage", err, errOut)
	}
}

func TestMissingSource(t *testing.T) {
	requireURing(t)
	dir := t.TempDir()
	_, errOut, err := run(t, filepath.Join(dir, "missing"), filepath.Join(dir, "dst"))
	if err == nil || !strings.Contains(errOut, "no such file") {
		t.Errorf("got %v, %q; want a failure naming the missing file", err, errOut)
	}
}
