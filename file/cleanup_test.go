package file

import (
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/gorio/rio/internal/testutil"
)

// Issue 11, item 5: Files opened and dropped unclosed are closed once the
// garbage collector finds them unreachable, as os.Files are. Before the
// fix, 500 of them left +500 fds.
func TestDroppedFilesAreClosed(t *testing.T) {
	checkLeaks(t)
	name := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(name, []byte("data"), 0o644))
	base := len(testutil.Fds(t))
	const n = 500
	func() {
		for i := 0; i < n; i++ {
			f, err := Open(name)
			skipUnsupported(t, err)
			if i%2 == 0 {
				_, err = f.ReadAt(make([]byte, 4), 0)
				require.NoError(t, err)
			}
		}
	}()
	t.Logf("fds: %d before, %d with %d Files dropped", base, len(testutil.Fds(t)), n)
	testutil.GCUntil(t, "dropped Files still open", func() bool { return len(testutil.Fds(t)) <= base })
}

// Issue 11, item 5: the cleanup never closes a descriptor under an
// operation in flight. A blocked Read keeps its File reachable, so no
// cleanup runs until it returns; an asynchronous read on a pipe whose Op
// and File were both dropped is cancelled and reaped before the cleanup
// closes the descriptor (had the cleanup just closed it, the read would
// stay in flight for ever: the kernel holds its own reference to the
// pipe).
func TestCleanupNeverClosesUnderAnOp(t *testing.T) {
	checkLeaks(t)
	pipe := func() (r, w int, isOpen func() bool) {
		var p [2]int
		require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
		t.Cleanup(func() { unix.Close(p[1]) })
		var st0 unix.Stat_t
		require.NoError(t, unix.Fstat(p[0], &st0))
		return p[0], p[1], func() bool {
			var st unix.Stat_t
			return unix.Fstat(p[0], &st) == nil && st.Ino == st0.Ino
		}
	}

	// A blocked synchronous Read.
	r, w, isOpen := pipe()
	f := NewFile(uintptr(r), "pipe")
	require.NotNil(t, f)
	cl := f.cl
	done := make(chan string, 1)
	go func(f *File) {
		b := make([]byte, 16)
		n, _ := f.Read(b)
		done <- string(b[:n])
	}(f)
	f = nil
	testutil.GCUntil(t, "the Read never started", func() bool { return cl.life.Refs() > 0 })
	for i := 0; i < 5; i++ {
		runtime.GC()
	}
	assert.False(t, cl.life.Closing(), "a cleanup ran under a blocked Read")
	assert.True(t, isOpen(), "the descriptor was closed under the Read")
	_, err := unix.Write(w, []byte("sync"))
	require.NoError(t, err)
	assert.Equal(t, "sync", <-done)
	testutil.GCUntil(t, "the File was not closed after its Read", func() bool { return !isOpen() })

	// An asynchronous read in flight, its Op and File dropped.
	r, _, isOpen = pipe()
	f = NewFile(uintptr(r), "pipe")
	require.NotNil(t, f)
	_, err = f.ReadAtAsync(make([]byte, 16), 0)
	require.NoError(t, err)
	c := f.cl.async[0] // the core's operation: holding it holds no File
	f = nil
	testutil.GCUntil(t, "the dropped File was not closed", func() bool { return !isOpen() })
	assert.True(t, c.Done(), "the descriptor was closed with the read in flight")
	_, err = c.Wait()
	assert.ErrorIs(t, err, syscall.ECANCELED)
}
