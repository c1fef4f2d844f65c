package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The test binary is the program: run with RIO_EXAMPLE_MAIN=1 it runs
// main with the arguments it was given.
func TestMain(m *testing.M) {
	if os.Getenv("RIO_EXAMPLE_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "RIO_EXAMPLE_MAIN=1")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
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
