package rio

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestSymlinkatLinkat(t *testing.T) {
	r := newTestRing(t)
	requireRing(t, r.Supported("SYMLINKAT"))
	requireRing(t, r.Supported("LINKAT"))
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	require.NoError(t, os.WriteFile(target, []byte("x"), 0o644))
	d, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(d)

	_, err = r.Symlinkat("target", d, "sym").Wait()
	require.NoError(t, err)
	got, err := os.Readlink(filepath.Join(dir, "sym"))
	require.NoError(t, err)
	assert.Equal(t, "target", got)

	_, err = r.Linkat(unix.AT_FDCWD, target, d, "hard", 0).Wait()
	require.NoError(t, err)
	// Following the symbolic link: another name for the target.
	b := r.NewBatch()
	follow := b.Linkat(d, "sym", unix.AT_FDCWD, filepath.Join(dir, "followed"), unix.AT_SYMLINK_FOLLOW)
	again := b.Symlinkat("target", d, "sym")
	require.NoError(t, b.Submit())
	_, err = follow.Wait()
	require.NoError(t, err)
	_, err = again.Wait()
	assert.ErrorIs(t, err, syscall.EEXIST)
	var se *os.SyscallError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "symlinkat", se.Syscall)

	ti, err := os.Stat(target)
	require.NoError(t, err)
	for _, name := range []string{"hard", "followed"} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		require.NoError(t, err)
		assert.True(t, os.SameFile(ti, fi), name)
	}
	_, err = r.Linkat(d, "missing", d, "x", 0).Wait()
	assert.ErrorIs(t, err, syscall.ENOENT)
	_, err = r.Symlinkat("a\x00b", d, "x").Wait()
	assert.ErrorIs(t, err, syscall.EINVAL)
}
