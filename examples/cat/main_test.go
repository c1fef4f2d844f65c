package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorio/rio/internal/testutil"
)

// The test binary is the program when run by testutil.RunMain.
func TestMain(m *testing.M) { testutil.MainOrTests(m, main) }

func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return testutil.RunMain(t, nil, args...)
}

func TestCat(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	big := strings.Repeat("0123456789abcdef", 20000) // several reads
	if err := os.WriteFile(a, []byte("hello, "), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{a, b}
	if os.Getenv("RIO_REQUIRE_URING") == "1" {
		args = append([]string{"-require-uring"}, args...)
	}
	out, errOut, err := run(t, args...)
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	if out != "hello, "+big {
		t.Errorf("output: %d bytes, want %d", len(out), len("hello, "+big))
	}
}

func TestMissingFile(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	if err := os.WriteFile(a, []byte("still printed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := run(t, filepath.Join(dir, "missing"), a)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("got %v, want exit status 1", err)
	}
	if !strings.Contains(errOut, "open "+filepath.Join(dir, "missing")+": no such file or directory") {
		t.Errorf("stderr %q", errOut)
	}
	if out != "still printed\n" {
		t.Errorf("stdout %q", out)
	}
}
