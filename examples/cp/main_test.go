package main

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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

// TestSameFile: copying a file onto itself, under the same name, another
// name, a hard link or a symbolic link, fails as GNU cp does and leaves
// the file intact.
func TestSameFile(t *testing.T) {
	requireURing(t)
	dir := t.TempDir()
	a := filepath.Join(dir, "a.txt")
	data := []byte("precious\n")
	if err := os.WriteFile(a, data, 0o640); err != nil {
		t.Fatal(err)
	}
	hard, sym := filepath.Join(dir, "hard"), filepath.Join(dir, "sym")
	if err := os.Link(a, hard); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", sym); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{a, filepath.Join(dir, ".", "a.txt"), hard, sym} {
		out, errOut, err := run(t, a, dst)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("cp %s %s: %v, want exit status 1 (stdout %q)", a, dst, err, out)
		}
		if want := "cp: '" + a + "' and '" + dst + "' are the same file\n"; errOut != want {
			t.Errorf("cp %s %s: stderr %q, want %q", a, dst, errOut, want)
		}
		if got, err := os.ReadFile(a); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("cp %s %s: the file now holds %q (%v)", a, dst, got, err)
		}
	}
}

// TestModeAndReport: a new DST gets SRC's permission bits, an existing one
// keeps its own, and the report counts the chunks there were.
func TestModeAndReport(t *testing.T) {
	requireURing(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(src, 0o750); err != nil { // not subject to the umask
		t.Fatal(err)
	}
	umask := syscall.Umask(0)
	syscall.Umask(umask)
	dst := filepath.Join(dir, "dst")
	out, errOut, err := run(t, src, dst)
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if want := fs.FileMode(0o750 &^ umask); fi.Mode() != want {
		t.Errorf("new DST has mode %v, want %v", fi.Mode(), want)
	}
	if !strings.Contains(out, "copied 6 bytes") || !strings.Contains(out, ", 1 chunk of 131072 bytes, at most 1 in flight") {
		t.Errorf("report %q", out)
	}

	existing := filepath.Join(dir, "existing")
	if err := os.WriteFile(existing, []byte("old contents, longer"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := run(t, src, existing); err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	fi, err = os.Stat(existing)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("existing DST has mode %v, want it kept (-rw-------)", fi.Mode())
	}
	if got, _ := os.ReadFile(existing); string(got) != "hello\n" {
		t.Errorf("existing DST holds %q", got)
	}

	// 5 chunks of 64 KiB, at most 2 in flight with -depth 2.
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 4<<16+1), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = run(t, "-depth", "2", "-chunk", "65536", big, filepath.Join(dir, "big2"))
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	if !strings.Contains(out, ", 5 chunks of 65536 bytes, at most 2 in flight") {
		t.Errorf("report %q", out)
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
