package main

import (
	"errors"
	"io"
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

// TestStdin: with no FILE, and for each "-", cat reads standard input: a
// pipe, or a regular file (from its current offset).
func TestStdin(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	if err := os.WriteFile(a, []byte("file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("stdin data ", 30000) // several reads
	var req []string
	if os.Getenv("RIO_REQUIRE_URING") == "1" {
		req = []string{"-require-uring"}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, big},
		{[]string{"-"}, big},
		{[]string{a, "-", a}, "file\n" + big + "file\n"},
		{[]string{"-", "-"}, big}, // the second is at end of input
	} {
		out, errOut, err := testutil.RunMainInput(t, strings.NewReader(big), nil, append(req, c.args...)...)
		if err != nil {
			t.Fatalf("cat %q: %v: %s", c.args, err, errOut)
		}
		if out != c.want {
			t.Errorf("cat %q: %d bytes, want %d", c.args, len(out), len(c.want))
		}
	}

	// Standard input a regular file, read from the offset it has.
	f, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(2, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := testutil.RunMainInput(t, f, nil, req...)
	if err != nil || out != "le\n" {
		t.Errorf("cat < file at offset 2: %q, %v: %s", out, err, errOut)
	}
}
