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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	require.NoError(t, err)
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
		require.NoError(t, os.WriteFile(src, data, 0o644))
		out, errOut, err := run(t, "-depth", "8", "-chunk", "65536", src, dst)
		require.NoError(t, err, "size %d\n%s%s", size, out, errOut)
		assert.True(t, strings.HasPrefix(out, "copied "), "size %d: output %q", size, out)
		assert.Contains(t, out, " "+strconv.Itoa(size)+" bytes", "size %d: output", size)
		got, err := os.ReadFile(dst)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(got, data), "size %d: copy differs (%d bytes, want %d)", size, len(got), len(data))
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
	require.NoError(t, os.WriteFile(a, data, 0o640))
	hard, sym := filepath.Join(dir, "hard"), filepath.Join(dir, "sym")
	require.NoError(t, os.Link(a, hard))
	require.NoError(t, os.Symlink("a.txt", sym))
	for _, dst := range []string{a, filepath.Join(dir, ".", "a.txt"), hard, sym} {
		out, errOut, err := run(t, a, dst)
		var ee *exec.ExitError
		if assert.ErrorAs(t, err, &ee, "cp %s %s: want exit status 1 (stdout %q)", a, dst, out) {
			assert.Equal(t, 1, ee.ExitCode(), "cp %s %s: %v, want exit status 1 (stdout %q)", a, dst, err, out)
		}
		assert.Equal(t, "cp: '"+a+"' and '"+dst+"' are the same file\n", errOut, "cp %s %s: stderr", a, dst)
		got, err := os.ReadFile(a)
		require.NoError(t, err, "cp %s %s: reading the file back", a, dst)
		require.Equal(t, data, got, "cp %s %s: the file now holds other bytes", a, dst)
	}
}

// TestModeAndReport: a new DST gets SRC's permission bits, an existing one
// keeps its own, and the report counts the chunks there were.
func TestModeAndReport(t *testing.T) {
	requireURing(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	require.NoError(t, os.WriteFile(src, []byte("hello\n"), 0o600))
	require.NoError(t, os.Chmod(src, 0o750)) // not subject to the umask
	umask := syscall.Umask(0)
	syscall.Umask(umask)
	dst := filepath.Join(dir, "dst")
	out, errOut, err := run(t, src, dst)
	require.NoError(t, err, errOut)
	fi, err := os.Stat(dst)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o750&^umask), fi.Mode(), "new DST's mode")
	assert.Contains(t, out, "copied 6 bytes", "report")
	assert.Contains(t, out, ", 1 chunk of 131072 bytes, at most 1 in flight", "report")

	existing := filepath.Join(dir, "existing")
	require.NoError(t, os.WriteFile(existing, []byte("old contents, longer"), 0o600))
	_, errOut, err = run(t, src, existing)
	require.NoError(t, err, errOut)
	fi, err = os.Stat(existing)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o600), fi.Mode(), "existing DST's mode, want it kept (-rw-------)")
	got, _ := os.ReadFile(existing)
	assert.Equal(t, "hello\n", string(got), "existing DST's contents")

	// 5 chunks of 64 KiB, at most 2 in flight with -depth 2.
	big := filepath.Join(dir, "big")
	require.NoError(t, os.WriteFile(big, make([]byte, 4<<16+1), 0o644))
	out, errOut, err = run(t, "-depth", "2", "-chunk", "65536", big, filepath.Join(dir, "big2"))
	require.NoError(t, err, errOut)
	assert.Contains(t, out, ", 5 chunks of 65536 bytes, at most 2 in flight", "report")
}

func TestUsage(t *testing.T) {
	_, errOut, err := run(t, "only-one-arg")
	var ee *exec.ExitError
	if assert.ErrorAs(t, err, &ee, "want exit 2 with usage") {
		assert.Equal(t, 2, ee.ExitCode(), "want exit 2 with usage")
	}
	assert.Contains(t, errOut, "usage")
}

func TestMissingSource(t *testing.T) {
	requireURing(t)
	dir := t.TempDir()
	_, errOut, err := run(t, filepath.Join(dir, "missing"), filepath.Join(dir, "dst"))
	assert.Error(t, err, "want a failure naming the missing file")
	assert.Contains(t, errOut, "no such file", "want a failure naming the missing file")
}
