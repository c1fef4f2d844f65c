package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorio/rio/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	require.NoError(t, os.WriteFile(a, []byte("hello, "), 0o644))
	require.NoError(t, os.WriteFile(b, []byte(big), 0o644))
	args := []string{a, b}
	if os.Getenv("RIO_REQUIRE_URING") == "1" {
		args = append([]string{"-require-uring"}, args...)
	}
	out, errOut, err := run(t, args...)
	require.NoError(t, err, errOut)
	assert.True(t, out == "hello, "+big, "output: %d bytes, want %d", len(out), len("hello, "+big))
}

func TestMissingFile(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	require.NoError(t, os.WriteFile(a, []byte("still printed\n"), 0o644))
	out, errOut, err := run(t, filepath.Join(dir, "missing"), a)
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "want exit status 1")
	require.Equal(t, 1, ee.ExitCode(), "got %v, want exit status 1", err)
	assert.Contains(t, errOut, "open "+filepath.Join(dir, "missing")+": no such file or directory", "stderr")
	assert.Equal(t, "still printed\n", out, "stdout")
}

// TestStdin: with no FILE, and for each "-", cat reads standard input: a
// pipe, or a regular file (from its current offset).
func TestStdin(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	require.NoError(t, os.WriteFile(a, []byte("file\n"), 0o644))
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
		require.NoError(t, err, "cat %q: %s", c.args, errOut)
		assert.True(t, out == c.want, "cat %q: %d bytes, want %d", c.args, len(out), len(c.want))
	}

	// Standard input a regular file, read from the offset it has.
	f, err := os.Open(a)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Seek(2, io.SeekStart)
	require.NoError(t, err)
	out, errOut, err := testutil.RunMainInput(t, f, nil, req...)
	assert.NoError(t, err, "cat < file at offset 2: %s", errOut)
	assert.Equal(t, "le\n", out, "cat < file at offset 2")
}
