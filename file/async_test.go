package file

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gorio/rio"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestOpShape: Wait on an Op returns what ReadAt and WriteAt return, errors
// included, compared with os.File's.
func TestOpShape(t *testing.T) {
	checkLeaks(t)
	r := newRing(t)
	data := randBytes(10000)
	name := writeTemp(t, data)
	f := mustOpenRing(t, r, name, os.O_RDONLY)
	g, err := os.Open(name)
	require.NoError(t, err)
	defer g.Close()
	for _, c := range []struct{ n, off int }{{100, 0}, {10000, 0}, {200, 9900}, {1, 10000}, {5, 20000}, {0, 10000}} {
		b1, b2 := make([]byte, c.n), make([]byte, c.n)
		op, err := f.ReadAtAsync(b1, int64(c.off))
		require.NoError(t, err)
		n1, err1 := op.Wait()
		n2, err2 := g.ReadAt(b2, int64(c.off))
		assert.Equal(t, n2, n1, "ReadAt(%d, %d)", c.n, c.off)
		assert.Equal(t, err2, err1, "ReadAt(%d, %d)", c.n, c.off) // bare io.EOF
		assert.Equal(t, b2, b1)
		n1, err1 = op.Wait()
		assert.Equal(t, n2, n1, "a second Wait")
		assert.Equal(t, err2, err1)
	}
	// A write on a read-only file: the error os.File.WriteAt gives.
	op, err := f.WriteAtAsync([]byte("x"), 0)
	require.NoError(t, err)
	_, err1 := op.Wait()
	_, err2 := g.WriteAt([]byte("x"), 0)
	require.Error(t, err1)
	assert.Equal(t, err2.Error(), err1.Error())
	var pe *fs.PathError
	require.ErrorAs(t, err1, &pe)
	assert.Equal(t, syscall.EBADF, pe.Err)
	assert.True(t, op.Done())

	// And the Op of a write that works.
	w := mustOpenRing(t, r, name, os.O_RDWR)
	op, err = w.WriteAtAsync([]byte("hello"), 20000)
	require.NoError(t, err)
	n, err := op.Wait()
	assert.Equal(t, 5, n)
	assert.NoError(t, err)
	got, _ := os.ReadFile(name)
	assert.Equal(t, "hello", string(got[20000:]))
}

// TestOpWaitContext: WaitContext gives up without losing the result.
func TestOpWaitContext(t *testing.T) {
	checkLeaks(t)
	r := newRing(t)
	fifo := filepath.Join(t.TempDir(), "fifo")
	require.NoError(t, unix.Mkfifo(fifo, 0o600))
	f := mustOpenRing(t, r, fifo, os.O_RDWR)
	buf := make([]byte, 16)
	op, err := f.ReadAtAsync(buf, 0)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = op.WaitContext(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	n, err := op.Wait() // cancelled by WaitContext
	assert.Equal(t, 0, n)
	assert.ErrorIs(t, err, syscall.ECANCELED)
	var pe *fs.PathError
	assert.ErrorAs(t, err, &pe)

	op, err = f.ReadAtAsync(buf, 0)
	require.NoError(t, err)
	assert.False(t, op.Done())
	_, err = f.WriteString("abc")
	require.NoError(t, err)
	n, err = op.WaitContext(context.Background())
	assert.NoError(t, err)
	assert.Equal(t, "abc", string(buf[:n]), "one read of a stream may be short")
}

// TestCollectorOps: a Collector returns Ops in the order they complete:
// reads on FIFOs written in a random order.
func TestCollectorOps(t *testing.T) {
	checkLeaks(t)
	r := newRing(t)
	dir := t.TempDir()
	const n = 8
	files := make([]*File, n)
	bufs := make([][]byte, n)
	var q Collector[int]
	for i := range files {
		name := filepath.Join(dir, "fifo"+string(rune('a'+i)))
		require.NoError(t, unix.Mkfifo(name, 0o600))
		files[i] = mustOpenRing(t, r, name, os.O_RDWR)
		bufs[i] = make([]byte, 4)
		op, err := files[i].ReadAtAsync(bufs[i], 0)
		require.NoError(t, err)
		require.NoError(t, q.Add(op, i))
	}
	assert.Equal(t, n, q.Len())
	for _, i := range rand.Perm(n) {
		_, err := files[i].WriteString("w" + string(rune('a'+i)))
		require.NoError(t, err)
		got, ok := q.Next()
		require.True(t, ok)
		require.Equal(t, i, got)
		assert.Equal(t, "w"+string(rune('a'+i)), string(bufs[i][:2]))
	}
	_, ok := q.TryNext()
	assert.False(t, ok)
	assert.ErrorIs(t, q.Add(nil, 0), errNilOp)
	assert.ErrorIs(t, q.Add(nil, 0), syscall.EINVAL)
}

// TestBatchEnters: 5,000 reads started from one goroutine through a Batch
// take one io_uring_enter per Cap of them, where ReadAtAsync takes one
// each; a Collector returns every one.
func TestBatchEnters(t *testing.T) {
	checkLeaks(t)
	r := newRing(t)
	const n, size = 5000, 512
	data := randBytes(n * size)
	name := writeTemp(t, data)
	f := mustOpenRing(t, r, name, os.O_RDONLY)
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	var b Batch
	ops := make([]*Op, n)
	for i := range ops {
		var err error
		ops[i], err = b.ReadAt(f, bufs[i], int64(i*size))
		require.NoError(t, err)
	}
	assert.Equal(t, n, b.Len())
	_, err := ops[0].Wait()
	assert.ErrorIs(t, err, errNotSubmitted, "before Submit")
	var q Collector[int]
	assert.Error(t, q.Add(ops[0], 0), "an Op not submitted")

	enters := r.Stats().Enters
	require.NoError(t, b.Submit())
	used := r.Stats().Enters - enters
	groups := uint64((n + r.NewBatch().Cap() - 1) / r.NewBatch().Cap())
	t.Logf("%d reads, %d enters (%d groups of Cap %d)", n, used, groups, r.NewBatch().Cap())
	assert.LessOrEqual(t, used, groups+2, "about one enter per group")
	assert.Equal(t, 0, b.Len())
	for i, op := range ops {
		require.NoError(t, q.Add(op, i))
	}
	seen := make([]bool, n)
	for i := range q.All() {
		require.False(t, seen[i])
		seen[i] = true
		k, err := ops[i].Wait()
		require.NoError(t, err)
		require.Equal(t, size, k)
		require.True(t, bytes.Equal(data[i*size:(i+1)*size], bufs[i]))
	}
	for i := range seen {
		require.True(t, seen[i], "op %d not returned", i)
	}
}

// TestBatchClosedFile: an Op whose File is closed before Submit fails with
// fs.ErrClosed and is not started; the others run; a Collector returns
// both.
func TestBatchClosedFile(t *testing.T) {
	checkLeaks(t)
	r := newRing(t)
	name := writeTemp(t, []byte("0123456789"))
	a := mustOpenRing(t, r, name, os.O_RDONLY)
	c, err := OpenFileRing(r, name, os.O_RDWR, 0)
	require.NoError(t, err)
	var b Batch
	ba, bc := make([]byte, 4), make([]byte, 4)
	opA, err := b.ReadAt(a, ba, 2)
	require.NoError(t, err)
	opC, err := b.WriteAt(c, bc, 0)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.NoError(t, b.Submit())
	var q Collector[*Op]
	require.NoError(t, q.Add(opA, opA))
	require.NoError(t, q.Add(opC, opC))
	n := 0
	for op := range q.All() {
		k, err := op.Wait()
		switch op {
		case opA:
			assert.NoError(t, err)
			assert.Equal(t, "2345", string(ba[:k]))
		case opC:
			assert.ErrorIs(t, err, fs.ErrClosed)
			assert.Equal(t, "write "+name+": file already closed", err.Error())
		}
		n++
	}
	assert.Equal(t, 2, n)
	got, _ := os.ReadFile(name)
	assert.Equal(t, "0123456789", string(got), "the closed File's write did not happen")

	// Errors known when queueing are reported at once.
	_, err = b.ReadAt(a, ba, -1)
	assert.Error(t, err)
	_, err = b.ReadAt(c, ba, 0)
	assert.ErrorIs(t, err, fs.ErrClosed)
	assert.Equal(t, 0, b.Len())
	assert.NoError(t, b.Submit(), "an empty Batch")
}

// TestBatchManyFiles: a Batch over Files of two Rings.
func TestBatchManyFiles(t *testing.T) {
	checkLeaks(t)
	r1, r2 := newRing(t), newRing(t)
	name := writeTemp(t, []byte("abcdefgh"))
	f1 := mustOpenRing(t, r1, name, os.O_RDONLY)
	f2 := mustOpenRing(t, r2, name, os.O_RDONLY)
	var b Batch
	var q Collector[int]
	bufs := make([][]byte, 8)
	var ops []*Op
	for i := range bufs {
		bufs[i] = make([]byte, 1)
		f := f1
		if i%2 == 1 {
			f = f2
		}
		op, err := b.ReadAt(f, bufs[i], int64(i))
		require.NoError(t, err)
		ops = append(ops, op)
	}
	require.NoError(t, b.Submit())
	for i, op := range ops {
		require.NoError(t, q.Add(op, i))
	}
	for i := range q.All() {
		_, err := ops[i].Wait()
		require.NoError(t, err)
		assert.Equal(t, "abcdefgh"[i], bufs[i][0])
	}
}

// TestNewFile: a File made of a descriptor owns it, reads from its offset,
// and NewFile refuses what is not an open descriptor.
func TestNewFile(t *testing.T) {
	checkLeaks(t)
	name := writeTemp(t, []byte("0123456789"))
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	_, err = unix.Seek(fd, 3, io.SeekStart)
	require.NoError(t, err)
	f := NewFile(uintptr(fd), "named")
	require.NotNil(t, f)
	assert.Equal(t, "named", f.Name())
	assert.Equal(t, uintptr(fd), f.Fd())
	got, err := io.ReadAll(f)
	require.NoError(t, err)
	assert.Equal(t, "3456789", string(got))
	fi, err := f.Stat()
	require.NoError(t, err)
	assert.Equal(t, "named", fi.Name())
	require.NoError(t, f.Close())
	_, err = unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	assert.ErrorIs(t, err, syscall.EBADF, "Close closed the descriptor")

	assert.Nil(t, NewFile(^uintptr(0), "bad"))
	assert.Nil(t, os.NewFile(^uintptr(0), "bad"))
	assert.Nil(t, NewFile(uintptr(fd), "closed"))

	// A pipe: a stream, read with the ring at the kernel's position.
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	r, w := NewFile(uintptr(p[0]), "r"), NewFile(uintptr(p[1]), "w")
	defer r.Close()
	defer w.Close()
	_, err = w.WriteString("through a pipe")
	require.NoError(t, err)
	require.NoError(t, w.Close())
	got, err = io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, "through a pipe", string(got))
}

// TestFallbackPaths: where io_uring is unavailable the package functions
// are os's; with the fallback off, they fail with an error matching
// rio.ErrNotSupported, shaped as os's errors.
func TestFallbackPaths(t *testing.T) {
	checkLeaks(t)
	forceFallback(t)
	prev := defaultRingFn
	defaultRingFn = noRing
	t.Cleanup(func() { defaultRingFn = prev })
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	require.NoError(t, WriteFile(name, []byte("data"), 0o644))
	got, err := ReadFile(name)
	require.NoError(t, err)
	assert.Equal(t, "data", string(got))
	_, err = Stat(name)
	assert.NoError(t, err)
	require.NoError(t, MkdirAll(filepath.Join(dir, "a/b"), 0o755))
	ents, err := ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, ents, 2)
	require.NoError(t, Rename(name, name+"2"))
	require.NoError(t, Symlink("f2", name+"3"))
	require.NoError(t, Link(name+"2", name+"4"))
	_, err = Lstat(name + "3")
	assert.NoError(t, err)
	require.NoError(t, Remove(name+"3"))
	require.NoError(t, RemoveAll(filepath.Join(dir, "a")))
	// A descriptor of its own, closed with f: a File dropped without
	// Close has its descriptor closed by the GC, which for stdin ended
	// stdin for the rest of the test binary (a second run with -count=2
	// then failed here).
	fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	f := NewFile(uintptr(fd), os.DevNull)
	require.NotNil(t, f)
	assert.Nil(t, f.Ring(), "an os-backed File")
	require.NoError(t, f.Close())

	SetFallback(false)
	for _, err := range []error{
		first(ReadFile(name)), first(Stat(name)), first(Lstat(name)), Remove(name), RemoveAll(name),
		Rename(name, name), Mkdir(name, 0), first(ReadDir(dir)), Symlink(name, name), Link(name, name),
		WriteFile(name, nil, 0),
	} {
		assert.ErrorIs(t, err, rio.ErrNotSupported)
		var pe *fs.PathError
		var le *os.LinkError
		assert.True(t, errors.As(err, &pe) || errors.As(err, &le), "%T", err)
	}
	assert.Nil(t, NewFile(uintptr(syscall.Stdin), "stdin"))
}
