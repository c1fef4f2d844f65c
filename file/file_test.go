package file

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
	"unsafe"

	"github.com/gorio/rio"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestIOTestReader(t *testing.T) {
	checkLeaks(t)
	r := newRing(t)
	for _, size := range []int{0, 1, 4095, 4096, 20_000} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			data := randBytes(size)
			name := writeTemp(t, data)
			f := mustOpenRing(t, r, name, os.O_RDONLY)
			require.NoError(t, iotest.TestReader(f, data))
			// And through the shared ring, with Open.
			g, err := Open(name)
			require.NoError(t, err)
			defer g.Close()
			require.NoError(t, iotest.TestReader(g, data))
			// Readers that read in odd pieces.
			g.Seek(0, io.SeekStart)
			got, err := io.ReadAll(iotest.OneByteReader(g))
			require.NoError(t, err)
			require.True(t, bytes.Equal(data, got))
			g.Seek(0, io.SeekStart)
			got, err = io.ReadAll(iotest.HalfReader(g))
			require.NoError(t, err)
			require.True(t, bytes.Equal(data, got))
		})
	}
}

func TestOpenErrors(t *testing.T) {
	checkLeaks(t)
	r := newRing(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	for _, open := range []struct {
		name string
		fn   func(name string, flag int, perm fs.FileMode) (*File, error)
	}{
		{"shared", OpenFile},
		{"ring", func(name string, flag int, perm fs.FileMode) (*File, error) { return OpenFileRing(r, name, flag, perm) }},
	} {
		t.Run(open.name, func(t *testing.T) {
			_, err := open.fn(missing, os.O_RDONLY, 0)
			assert.ErrorIs(t, err, fs.ErrNotExist)
			var pe *fs.PathError
			if assert.ErrorAs(t, err, &pe) {
				assert.Equal(t, "open", pe.Op)
				assert.Equal(t, missing, pe.Path)
				assert.Equal(t, syscall.ENOENT, pe.Err)
			}
			_, oserr := os.OpenFile(missing, os.O_RDONLY, 0)
			assert.Equal(t, oserr.Error(), err.Error())

			existing := writeTemp(t, []byte("x"))
			_, err = open.fn(existing, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
			assert.ErrorIs(t, err, fs.ErrExist)

			_, err = open.fn(dir, os.O_RDWR, 0)
			assert.ErrorIs(t, err, syscall.EISDIR)

			_, err = open.fn("bad\x00name", os.O_RDONLY, 0)
			assert.ErrorIs(t, err, syscall.EINVAL)

			// Permission: an immutable file refuses writers even to root;
			// a mode-0400 file refuses them to everybody else.
			locked := writeTemp(t, []byte("x"))
			if os.Geteuid() == 0 {
				setImmutable(t, locked)
			} else {
				require.NoError(t, os.Chmod(locked, 0o400))
			}
			_, err = open.fn(locked, os.O_WRONLY, 0)
			assert.ErrorIs(t, err, fs.ErrPermission)
			_, oserr = os.OpenFile(locked, os.O_WRONLY, 0)
			assert.Equal(t, oserr.Error(), err.Error())
		})
	}
}

// fsImmutableFl is FS_IMMUTABLE_FL of linux/fs.h.
const fsImmutableFl = 0x10

func setImmutable(t *testing.T, name string) {
	t.Helper()
	f, err := os.Open(name)
	require.NoError(t, err)
	defer f.Close()
	var flags int32 // the kernel reads and writes an int
	_, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.FS_IOC_GETFLAGS, uintptr(unsafe.Pointer(&flags)))
	require.Zero(t, e, "FS_IOC_GETFLAGS: %v", e)
	flags |= fsImmutableFl
	_, _, e = unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.FS_IOC_SETFLAGS, uintptr(unsafe.Pointer(&flags)))
	require.Zero(t, e, "FS_IOC_SETFLAGS: %v", e)
	t.Cleanup(func() {
		flags &^= fsImmutableFl
		g, err := os.Open(name)
		if err != nil {
			return
		}
		unix.Syscall(unix.SYS_IOCTL, g.Fd(), unix.FS_IOC_SETFLAGS, uintptr(unsafe.Pointer(&flags)))
		g.Close()
	})
}

// TestClosed checks every method of a closed File against os.File's.
func TestClosed(t *testing.T) {
	checkLeaks(t)
	r := newRing(t)
	name := writeTemp(t, []byte("hello"))
	f, err := OpenFileRing(r, name, os.O_RDWR, 0)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	g, err := os.OpenFile(name, os.O_RDWR, 0)
	require.NoError(t, err)
	require.NoError(t, g.Close())

	b := make([]byte, 4)
	type result struct {
		N   int64
		Err string
	}
	res := func(n int, err error) result { return result{int64(n), errText(err)} }
	res64 := func(n int64, err error) result { return result{n, errText(err)} }
	for _, c := range []struct {
		name    string
		rio, os result
	}{
		{"Read", res(f.Read(b)), res(g.Read(b))},
		{"Read(nil)", res(f.Read(nil)), res(g.Read(nil))},
		{"Write", res(f.Write(b)), res(g.Write(b))},
		{"Write(nil)", res(f.Write(nil)), res(g.Write(nil))},
		{"ReadAt", res(f.ReadAt(b, 0)), res(g.ReadAt(b, 0))},
		{"ReadAt(nil)", res(f.ReadAt(nil, 0)), res(g.ReadAt(nil, 0))},
		{"WriteAt", res(f.WriteAt(b, 0)), res(g.WriteAt(b, 0))},
		{"Seek", res64(f.Seek(0, io.SeekStart)), res64(g.Seek(0, io.SeekStart))},
		{"Truncate", res(0, f.Truncate(0)), res(0, g.Truncate(0))},
		{"Sync", res(0, f.Sync()), res(0, g.Sync())},
		{"Close", res(0, f.Close()), res(0, g.Close())},
		{"ReadFrom", res64(f.ReadFrom(strings.NewReader("x"))), res64(g.ReadFrom(strings.NewReader("x")))},
		{"WriteTo", res64(f.WriteTo(io.Discard)), res64(g.WriteTo(io.Discard))},
	} {
		assert.Equal(t, c.os, c.rio, c.name)
	}
	for _, err := range []error{
		first(f.Read(b)), first(f.Write(b)), first(f.ReadAt(b, 0)), first(f.WriteAt(b, 0)),
		first(f.Seek(0, 0)), f.Truncate(0), f.Sync(), f.Datasync(), first(f.Stat()), f.Close(),
		first(f.ReadAtAsync(b, 0)), first(f.WriteAtAsync(b, 0)), first(f.Alignment()),
	} {
		assert.ErrorIs(t, err, fs.ErrClosed)
		var pe *fs.PathError
		assert.ErrorAs(t, err, &pe)
	}
	_, err = g.Stat()
	assert.Equal(t, err.Error(), first(f.Stat()).Error())
}

func first[T any](_ T, err error) error { return err }

func TestZeroLengthBuffers(t *testing.T) {
	checkLeaks(t)
	r := newRing(t)
	name := writeTemp(t, []byte("hello"))
	f := mustOpenRing(t, r, name, os.O_RDWR)
	for _, b := range [][]byte{nil, {}} {
		n, err := f.Read(b)
		assert.Equal(t, 0, n)
		assert.NoError(t, err)
		n, err = f.Write(b)
		assert.Equal(t, 0, n)
		assert.NoError(t, err)
		n, err = f.ReadAt(b, 3)
		assert.Equal(t, 0, n)
		assert.NoError(t, err)
		n, err = f.WriteAt(b, 100)
		assert.Equal(t, 0, n)
		assert.NoError(t, err)
		c, err := f.ReadAtAsync(b, 0)
		require.NoError(t, err)
		n, err = c.Wait()
		assert.Equal(t, 0, n)
		assert.NoError(t, err)
		c, err = f.WriteAtAsync(b, 100)
		require.NoError(t, err)
		n, err = c.Wait()
		assert.Equal(t, 0, n)
		assert.NoError(t, err)
	}
	// Nothing moved or grew.
	pos, err := f.Seek(0, io.SeekCurrent)
	require.NoError(t, err)
	assert.Equal(t, int64(0), pos)
	fi, err := f.Stat()
	require.NoError(t, err)
	assert.Equal(t, int64(5), fi.Size())
}

func TestNegativeOffsets(t *testing.T) {
	checkLeaks(t)
	r := newRing(t)
	name := writeTemp(t, []byte("hello"))
	f := mustOpenRing(t, r, name, os.O_RDWR)
	g, err := os.OpenFile(name, os.O_RDWR, 0)
	require.NoError(t, err)
	defer g.Close()
	b := make([]byte, 3)
	check := func(what string, n1 int, e1 error, n2 int, e2 error) {
		t.Helper()
		assert.Equal(t, n2, n1, what)
		assert.Equal(t, errText(e2), errText(e1), what)
		assert.Error(t, e1, what)
	}
	n, err := f.ReadAt(b, -1)
	n2, err2 := g.ReadAt(b, -1)
	check("ReadAt", n, err, n2, err2)
	n, err = f.WriteAt(b, -1)
	n2, err2 = g.WriteAt(b, -1)
	check("WriteAt", n, err, n2, err2)
	p, err := f.Seek(-1, io.SeekStart)
	p2, err2 := g.Seek(-1, io.SeekStart)
	check("Seek", int(p), err, int(p2), err2)
	assert.ErrorIs(t, err, syscall.EINVAL)
	err = f.Truncate(-1)
	err2 = g.Truncate(-1)
	check("Truncate", 0, err, 0, err2)
	assert.ErrorIs(t, err, syscall.EINVAL)
	_, err = f.ReadAtAsync(b, -1)
	assert.Equal(t, errText(first(g.ReadAt(b, -1))), errText(err))
	assert.Error(t, err)
	_, err = f.WriteAtAsync(b, -1)
	assert.Error(t, err)
	// The file is unchanged.
	got, err := os.ReadFile(name)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(got))
}

func TestReadWriteBasics(t *testing.T) {
	checkLeaks(t)
	name := filepath.Join(t.TempDir(), "f")
	f, err := Create(name)
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, name, f.Name())
	assert.NotEqual(t, ^uintptr(0), f.Fd())
	n, err := f.Write([]byte("hello, world"))
	require.NoError(t, err)
	assert.Equal(t, 12, n)
	n, err = f.WriteAt([]byte("W"), 7)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	_, err = f.Seek(0, io.SeekStart)
	require.NoError(t, err)
	got, err := io.ReadAll(f)
	require.NoError(t, err)
	assert.Equal(t, "hello, World", string(got))
	n, err = f.Read(make([]byte, 1))
	assert.Equal(t, 0, n)
	assert.Equal(t, io.EOF, err) // bare io.EOF
	require.NoError(t, f.Sync())
	require.NoError(t, f.Datasync())

	// Read on a write-only file fails as os does.
	w, err := OpenFile(name, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer w.Close()
	_, err = w.Read(make([]byte, 1))
	assert.ErrorIs(t, err, syscall.EBADF)
	var pe *fs.PathError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "read", pe.Op)

	// O_APPEND: writes go to the end, WriteAt is refused as by os.
	a, err := OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	defer a.Close()
	_, err = a.Write([]byte("!"))
	require.NoError(t, err)
	_, err = a.WriteAt([]byte("x"), 0)
	assert.Error(t, err)
	_, err = a.WriteAtAsync([]byte("x"), 0)
	assert.Error(t, err)
	got, _ = os.ReadFile(name)
	assert.Equal(t, "hello, World!", string(got))
}

func TestStat(t *testing.T) {
	checkLeaks(t)
	r := newRing(t)
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(name, randBytes(12345), 0o640))
	for _, n := range []string{name, dir} {
		f := mustOpenRing(t, r, n, os.O_RDONLY)
		fi, err := f.Stat()
		require.NoError(t, err)
		want, err := os.Stat(n)
		require.NoError(t, err)
		assert.Equal(t, want.Name(), fi.Name())
		assert.Equal(t, want.Size(), fi.Size())
		assert.Equal(t, want.Mode(), fi.Mode())
		assert.Equal(t, want.IsDir(), fi.IsDir())
		assert.True(t, want.ModTime().Equal(fi.ModTime()))
		assert.Equal(t, *want.Sys().(*syscall.Stat_t), *fi.Sys().(*syscall.Stat_t))
	}
	f := mustOpenRing(t, r, name, os.O_RDWR)
	require.NoError(t, f.Truncate(100))
	fi, err := f.Stat()
	require.NoError(t, err)
	assert.Equal(t, int64(100), fi.Size())
}

// TestTruncateUnderReader shrinks and grows a file while a File reads it.
func TestTruncateUnderReader(t *testing.T) {
	checkLeaks(t)
	r := newRing(t)
	data := randBytes(64 << 10)
	name := writeTemp(t, data)
	f := mustOpenRing(t, r, name, os.O_RDONLY)

	b := make([]byte, 10<<10)
	n, err := io.ReadFull(f, b)
	require.NoError(t, err)
	require.Equal(t, len(b), n)
	require.NoError(t, os.Truncate(name, 5<<10))
	// The position is past the new end: EOF, for Read and ReadAt.
	n, err = f.Read(b)
	assert.Equal(t, 0, n)
	assert.Equal(t, io.EOF, err)
	n, err = f.ReadAt(b, 8<<10)
	assert.Equal(t, 0, n)
	assert.Equal(t, io.EOF, err)
	// A ReadAt across the new end is short, with EOF, and has the data.
	n, err = f.ReadAt(b, 1<<10)
	assert.Equal(t, 4<<10, n)
	assert.Equal(t, io.EOF, err)
	assert.True(t, bytes.Equal(data[1<<10:5<<10], b[:n]))
	// Grown again: the hole reads as zeros.
	require.NoError(t, os.Truncate(name, 20<<10))
	n, err = f.Read(b)
	assert.Equal(t, len(b), n)
	assert.NoError(t, err)
	assert.True(t, bytes.Equal(make([]byte, len(b)), b))

	// Concurrently: a reader reading to EOF while another goroutine
	// truncates gets a prefix of the data and EOF, never an error.
	require.NoError(t, os.WriteFile(name, data, 0o644))
	for i := 0; i < 20; i++ {
		g := mustOpenRing(t, r, name, os.O_RDONLY)
		done := make(chan struct{})
		go func() {
			defer close(done)
			os.Truncate(name, int64(i)*1000)
		}()
		got, err := io.ReadAll(g)
		<-done
		require.NoError(t, err)
		require.LessOrEqual(t, len(got), len(data))
		require.NoError(t, os.WriteFile(name, data, 0o644))
	}
}

// TestCloseRace closes a File while 32 goroutines read and write it. Every
// operation either succeeds or fails with fs.ErrClosed; every write that
// reported success is in the file.
func TestCloseRace(t *testing.T) {
	checkLeaks(t)
	for round := 0; round < 10; round++ {
		closeRaceRound(t, round)
	}
}

func closeRaceRound(t *testing.T, round int) {
	r := newRing(t)
	const workers = 32
	const block = 4096
	name := filepath.Join(t.TempDir(), "f")
	f, err := OpenFileRing(r, name, os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		written = map[int64]byte{} // offset -> fill byte of a write that succeeded
		bad     []error
	)
	start := make(chan struct{})
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			buf := make([]byte, block)
			for i := 0; ; i++ {
				off := int64((i*workers + w) * block)
				var err error
				switch i % 3 {
				case 0:
					fill := byte(w + i)
					for j := range buf {
						buf[j] = fill
					}
					_, err = f.WriteAt(buf, off)
					if err == nil {
						mu.Lock()
						written[off] = fill
						mu.Unlock()
					}
				case 1:
					_, err = f.ReadAt(buf, off-block)
					if err == io.EOF {
						err = nil
					}
				case 2:
					var c *Op
					c, err = f.ReadAtAsync(buf, off)
					if err == nil {
						_, err = c.Wait()
						if err == io.EOF {
							err = nil
						}
					}
				}
				if err != nil {
					if !errors.Is(err, fs.ErrClosed) {
						mu.Lock()
						bad = append(bad, err)
						mu.Unlock()
					}
					return
				}
			}
		}()
	}
	close(start)
	time.Sleep(time.Duration(round%4) * time.Millisecond)
	require.NoError(t, f.Close())
	wg.Wait()
	require.Empty(t, bad)
	// The descriptor is closed once Close returns.
	_, err = unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
	if err == nil {
		// The number may have been reused by another file of this process
		// (the ring's): it must then not be ours.
		var st1, st2 unix.Stat_t
		require.NoError(t, unix.Fstat(int(f.Fd()), &st1))
		require.NoError(t, unix.Stat(name, &st2))
		require.NotEqual(t, st2.Ino, st1.Ino)
	}
	got, err := os.ReadFile(name)
	require.NoError(t, err)
	for off, fill := range written {
		require.Equal(t, bytes.Repeat([]byte{fill}, block), got[off:off+block], "lost write at %d", off)
	}
}

// TestCloseCancelsBlockedRead closes a File on which a Read waits forever
// (an empty FIFO); the Read fails with fs.ErrClosed and Close returns.
func TestCloseCancelsBlockedRead(t *testing.T) {
	checkLeaks(t)
	r := newRing(t)
	if err := r.Supported("ASYNC_CANCEL"); err != nil {
		skipUnsupported(t, err)
	}
	// Cancelling by descriptor needs Linux 5.19.
	if _, err := r.CancelFd(-1).Wait(); errors.Is(err, syscall.EINVAL) {
		skipUnsupported(t, &rio.FeatureError{Feature: "IORING_ASYNC_CANCEL_FD", MinKernel: "5.19", Err: err})
	}
	name := filepath.Join(t.TempDir(), "fifo")
	require.NoError(t, unix.Mkfifo(name, 0o600))
	// O_RDWR opens a FIFO without waiting for a writer.
	f, err := OpenFileRing(r, name, os.O_RDWR, 0)
	require.NoError(t, err)
	errc := make(chan error, 2)
	go func() {
		_, err := f.Read(make([]byte, 10))
		errc <- err
	}()
	buf := make([]byte, 10)
	c, err := f.ReadAtAsync(buf, 0)
	if err == nil {
		go func() { _, err := c.Wait(); errc <- err }()
	} else {
		errc <- err
	}
	time.Sleep(20 * time.Millisecond) // let the reads block (not a timing assertion)
	require.NoError(t, f.Close())
	for range 2 {
		err := <-errc
		require.True(t, errors.Is(err, fs.ErrClosed) || errors.Is(err, syscall.ECANCELED) || errors.Is(err, syscall.ESPIPE),
			"blocked read ended with %v, want fs.ErrClosed", err)
	}
}

func TestAsync(t *testing.T) {
	checkLeaks(t)
	r := newRing(t)
	const n = 300 // more than the prune threshold, fewer than the ring holds
	data := randBytes(n * 512)
	name := writeTemp(t, data)
	f, err := OpenFileRing(r, name, os.O_RDWR, 0)
	require.NoError(t, err)
	bufs := make([][]byte, n)
	cs := make([]*Op, n)
	for i := range n {
		bufs[i] = make([]byte, 512)
		cs[i], err = f.ReadAtAsync(bufs[i], int64(i*512))
		require.NoError(t, err)
	}
	for i, c := range cs {
		m, err := c.Wait()
		require.NoError(t, err)
		require.Equal(t, 512, m)
		require.True(t, bytes.Equal(data[i*512:(i+1)*512], bufs[i]))
	}
	// At end of file, a bare io.EOF, as from ReadAt; short at the end,
	// the bytes there and io.EOF.
	c, err := f.ReadAtAsync(bufs[0], int64(len(data)))
	require.NoError(t, err)
	m, err := c.Wait()
	require.Equal(t, io.EOF, err)
	require.Equal(t, 0, m)
	c, err = f.ReadAtAsync(bufs[0], int64(len(data)-100))
	require.NoError(t, err)
	m, err = c.Wait()
	require.Equal(t, io.EOF, err)
	require.Equal(t, 100, m)
	require.Equal(t, data[len(data)-100:], bufs[0][:100])
	// Writes left unwaited are finished by Close.
	for i := range n {
		for j := range bufs[i] {
			bufs[i][j] = byte(i)
		}
		_, err := f.WriteAtAsync(bufs[i], int64(i*512))
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
	got, err := os.ReadFile(name)
	require.NoError(t, err)
	for i := range n {
		require.Equal(t, bytes.Repeat([]byte{byte(i)}, 512), got[i*512:(i+1)*512])
	}
	// Context cancellation of an async op leaves the File usable.
	g := mustOpenRing(t, r, name, os.O_RDONLY)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, err = g.ReadAtAsync(bufs[0], 0)
	require.NoError(t, err)
	c.WaitContext(ctx)
	c.Wait()
	_, err = g.ReadAt(bufs[0], 0)
	require.NoError(t, err)
}

// TestENOSPC writes to /dev/full, which fails every write with ENOSPC.
func TestENOSPC(t *testing.T) {
	checkLeaks(t)
	r := newRing(t)
	f := mustOpenRing(t, r, "/dev/full", os.O_WRONLY)
	g, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	require.NoError(t, err)
	defer g.Close()
	b := []byte("data")
	n, err := f.Write(b)
	n2, err2 := g.Write(b)
	assert.Equal(t, n2, n)
	assert.ErrorIs(t, err, syscall.ENOSPC)
	assert.Equal(t, err2.Error(), err.Error())
	n, err = f.WriteAt(b, 0)
	assert.Equal(t, 0, n)
	assert.ErrorIs(t, err, syscall.ENOSPC)
	var pe *fs.PathError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "write", pe.Op)
	_, err = f.ReadFrom(strings.NewReader("data"))
	assert.ErrorIs(t, err, syscall.ENOSPC)
}

const childEnv = "RIO_FILE_TEST_CHILD"

// runChild runs in a re-executed test binary; see TestEFBIG.
func runChild(kind string) int {
	if strings.HasPrefix(kind, "memlock:") || strings.HasPrefix(kind, "seccomp:") {
		return setupChild(kind) // TestSetupFailuresReduceOrFallBack
	}
	switch kind {
	case "efbig":
		// Writes past RLIMIT_FSIZE fail with EFBIG, once SIGXFSZ, which
		// would kill the process, is ignored.
		signal.Ignore(syscall.SIGXFSZ)
		lim := unix.Rlimit{Cur: 1 << 20, Max: 1 << 20}
		if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
			fmt.Println("setrlimit:", err)
			return 2
		}
		name := os.Getenv("RIO_FILE_TEST_PATH")
		f, err := Create(name)
		if err != nil {
			fmt.Println("create:", err)
			return 2
		}
		data := bytes.Repeat([]byte("0123456789abcdef"), (3<<20)/16)
		n, err := f.Write(data)
		fmt.Printf("write %d %d %v\n", n, errnoNum(err), err)
		n, err = f.WriteAt(data[:10], 2<<20)
		fmt.Printf("writeat %d %d %v\n", n, errnoNum(err), err)
		if err := f.Close(); err != nil {
			fmt.Println("close:", err)
			return 2
		}
		return 0
	}
	fmt.Println("unknown child", kind)
	return 2
}

func errnoNum(err error) int {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return int(errno)
	}
	return -1
}

// TestEFBIG writes past RLIMIT_FSIZE in a subprocess: the write stops at
// the limit with EFBIG, and what it reported as written is in the file.
func TestEFBIG(t *testing.T) {
	sharedRing(t)
	name := filepath.Join(t.TempDir(), "big")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=efbig", "RIO_FILE_TEST_PATH="+name)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "child output:\n%s", out)
	var n1, e1, n2, e2 int
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 2, "child output:\n%s", out)
	_, err = fmt.Sscanf(lines[0], "write %d %d", &n1, &e1)
	require.NoError(t, err, lines[0])
	_, err = fmt.Sscanf(lines[1], "writeat %d %d", &n2, &e2)
	require.NoError(t, err, lines[1])
	assert.Equal(t, 1<<20, n1, lines[0])
	assert.Equal(t, int(syscall.EFBIG), e1, lines[0])
	assert.Contains(t, lines[0], "write "+name+": file too large")
	assert.Equal(t, 0, n2, lines[1])
	assert.Equal(t, int(syscall.EFBIG), e2, lines[1])
	got, err := os.ReadFile(name)
	require.NoError(t, err)
	want := bytes.Repeat([]byte("0123456789abcdef"), (3<<20)/16)[:n1]
	require.True(t, bytes.Equal(want, got), "file has %d bytes, want the %d written", len(got), n1)
}

func TestDirect(t *testing.T) {
	checkLeaks(t)
	r := newRing(t)
	name := filepath.Join(t.TempDir(), "direct")
	f, err := OpenFileRing(r, name, os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o644)
	require.NotErrorIs(t, err, syscall.EINVAL, "the test directory's filesystem refuses O_DIRECT")
	require.NoError(t, err)
	defer f.Close()
	a, err := f.Alignment()
	require.NoError(t, err)
	t.Logf("alignment %+v", a)
	require.Positive(t, a.Memory)
	require.Positive(t, a.Offset)
	require.LessOrEqual(t, a.ReadOffset, a.Offset)

	buf, err := AlignedBuffer(2*a.Offset, a.Memory)
	require.NoError(t, err)
	require.Len(t, buf, 2*a.Offset)
	require.Zero(t, uintptr(unsafe.Pointer(&buf[0]))%uintptr(a.Memory))
	copy(buf, bytes.Repeat([]byte("direct!"), len(buf)))
	n, err := f.WriteAt(buf, 0)
	require.NoError(t, err)
	require.Equal(t, len(buf), n)
	got, err := AlignedBuffer(len(buf), a.Memory)
	require.NoError(t, err)
	n, err = f.ReadAt(got, 0)
	require.NoError(t, err)
	require.Equal(t, buf, got[:n])
	n, err = f.Write(buf) // at the position, 0
	require.NoError(t, err)
	require.Equal(t, len(buf), n)
	n, err = f.Read(got) // at len(buf): EOF
	require.Equal(t, 0, n)
	require.Equal(t, io.EOF, err)

	// Misaligned buffer, offset and length: a clear error, matching EINVAL.
	for _, c := range []struct {
		what string
		err  error
	}{
		{"buffer address", first(f.ReadAt(buf[1:a.Offset+1], 0))},
		{"offset", first(f.ReadAt(buf[:a.Offset], 1))},
		{"length", first(f.ReadAt(buf[:a.Offset-1], 0))},
		{"buffer address", first(f.WriteAt(buf[1:a.Offset+1], 0))},
		{"offset", first(f.WriteAt(buf[:a.Offset], 1))},
		{"length", first(f.Write(buf[:1]))},
		{"length", first(f.Read(buf[:1]))},
		{"offset", first(f.ReadAtAsync(buf[:a.Offset], 3))},
	} {
		var ae *AlignmentError
		require.ErrorAs(t, c.err, &ae)
		assert.Equal(t, c.what, ae.What)
		assert.ErrorIs(t, c.err, syscall.EINVAL)
		var pe *fs.PathError
		assert.ErrorAs(t, c.err, &pe)
		assert.Contains(t, c.err.Error(), "O_DIRECT "+c.what)
	}

	// A file whose size is not a multiple of the alignment: a ReadAt past
	// its end returns the data and io.EOF.
	require.NoError(t, f.Truncate(int64(a.Offset+100)))
	n, err = f.ReadAt(got, 0)
	assert.Equal(t, a.Offset+100, n)
	assert.Equal(t, io.EOF, err)
	assert.Equal(t, buf[:n], got[:n])

	_, err = AlignedBuffer(10, 3)
	assert.ErrorIs(t, err, syscall.EINVAL)
	_, err = AlignedBuffer(-1, 512)
	assert.ErrorIs(t, err, syscall.EINVAL)
}

func TestCopy(t *testing.T) {
	checkLeaks(t)
	forceFallback(t)
	r := newRing(t)
	dir := t.TempDir()
	data := randBytes(3<<20 + 123)
	srcName := filepath.Join(dir, "src")
	require.NoError(t, os.WriteFile(srcName, data, 0o644))
	check := func(name string, want []byte) {
		t.Helper()
		got, err := os.ReadFile(name)
		require.NoError(t, err)
		require.True(t, bytes.Equal(want, got), "%s: %d bytes, want %d", name, len(got), len(want))
	}
	type opener func(t testing.TB, name string, flag int) io.ReadWriteCloser
	openRio := func(t testing.TB, name string, flag int) io.ReadWriteCloser { return mustOpenRing(t, r, name, flag) }
	openOS := func(t testing.TB, name string, flag int) io.ReadWriteCloser {
		f, err := os.OpenFile(name, flag, 0o644)
		require.NoError(t, err)
		t.Cleanup(func() { f.Close() })
		return f
	}
	openFallback := func(t testing.TB, name string, flag int) io.ReadWriteCloser {
		f, err := openWith(noRing, name, flag, 0o644)
		require.NoError(t, err)
		t.Cleanup(func() { f.Close() })
		return f
	}
	impls := map[string]opener{"rio": openRio, "os": openOS, "fallback": openFallback}
	i := 0
	for sn, so := range impls {
		for dn, do := range impls {
			t.Run(sn+"->"+dn, func(t *testing.T) {
				i++
				src := so(t, srcName, os.O_RDONLY)
				dstName := filepath.Join(dir, fmt.Sprint("dst", i))
				dst := do(t, dstName, os.O_RDWR|os.O_CREATE|os.O_TRUNC)
				// Start the source mid-way, to check positions are used.
				_, err := src.(io.Seeker).Seek(100, io.SeekStart)
				require.NoError(t, err)
				n, err := io.Copy(dst, src)
				require.NoError(t, err)
				require.Equal(t, int64(len(data)-100), n)
				check(dstName, data[100:])
				// Positions moved as for os: the source is at its end, the
				// destination after what was written.
				p, _ := src.(io.Seeker).Seek(0, io.SeekCurrent)
				assert.Equal(t, int64(len(data)), p)
				p, _ = dst.(io.Seeker).Seek(0, io.SeekCurrent)
				assert.Equal(t, int64(len(data)-100), p)
				// CopyN, through an io.LimitedReader.
				_, err = src.(io.Seeker).Seek(10, io.SeekStart)
				require.NoError(t, err)
				n, err = io.CopyN(dst, src, 1000)
				require.NoError(t, err)
				require.Equal(t, int64(1000), n)
				check(dstName, append(append([]byte{}, data[100:]...), data[10:1010]...))
			})
		}
	}
	t.Run("append", func(t *testing.T) {
		src := mustOpenRing(t, r, srcName, os.O_RDONLY)
		dstName := filepath.Join(dir, "append")
		require.NoError(t, os.WriteFile(dstName, []byte("head"), 0o644))
		dst := mustOpenRing(t, r, dstName, os.O_WRONLY|os.O_APPEND)
		n, err := io.Copy(dst, src)
		require.NoError(t, err)
		require.Equal(t, int64(len(data)), n)
		check(dstName, append([]byte("head"), data...))
	})
	t.Run("buffer", func(t *testing.T) {
		src := mustOpenRing(t, r, srcName, os.O_RDONLY)
		var b bytes.Buffer
		n, err := io.Copy(&b, src)
		require.NoError(t, err)
		require.Equal(t, int64(len(data)), n)
		require.True(t, bytes.Equal(data, b.Bytes()))
	})
	t.Run("self", func(t *testing.T) {
		// A File copied onto itself behaves as an os.File does.
		var ns [2]int64
		for k := range 2 {
			name := filepath.Join(dir, fmt.Sprint("self", k))
			require.NoError(t, os.WriteFile(name, []byte("abcdef"), 0o644))
			var f io.ReadWriter
			if k == 0 {
				f = mustOpenRing(t, r, name, os.O_RDWR)
			} else {
				f = openOS(t, name, os.O_RDWR).(*os.File)
			}
			n, err := io.Copy(f, f)
			require.NoError(t, err)
			ns[k] = n
			got, err := os.ReadFile(name)
			require.NoError(t, err)
			assert.Equal(t, "abcdefabcdef", string(got))
		}
		assert.Equal(t, ns[1], ns[0])
	})
}

// forceFallback enables the os fallback for the duration of t, also under
// RIO_REQUIRE_URING=1: the tests that use noRing exercise the fallback on
// purpose.
func forceFallback(t testing.TB) {
	prev := fallback.Load()
	SetFallback(true)
	t.Cleanup(func() { SetFallback(prev) })
}

func noRing() (*rio.Ring, error) {
	return nil, &rio.FeatureError{Feature: "io_uring", MinKernel: "5.1", Err: syscall.ENOSYS}
}

// TestFallback checks the os fallback, and the switch that turns it off.
func TestFallback(t *testing.T) {
	checkLeaks(t)
	forceFallback(t)
	data := randBytes(10000)
	name := writeTemp(t, data)
	f, err := openWith(noRing, name, os.O_RDWR, 0)
	require.NoError(t, err)
	assert.Nil(t, f.Ring())
	require.NoError(t, iotest.TestReader(f, data))
	_, err = f.ReadAtAsync(make([]byte, 1), 0)
	assert.ErrorIs(t, err, ErrNoRing)
	_, err = f.Stat()
	assert.NoError(t, err)
	_, err = f.Alignment()
	assert.NoError(t, err)
	assert.NoError(t, f.Datasync())
	assert.NoError(t, f.Close())
	assert.ErrorIs(t, f.Close(), fs.ErrClosed)
	_, err = f.Read(make([]byte, 1))
	assert.ErrorIs(t, err, fs.ErrClosed)
	assert.ErrorIs(t, f.Datasync(), fs.ErrClosed)

	_, err = openWith(noRing, filepath.Join(t.TempDir(), "missing"), os.O_RDONLY, 0)
	assert.ErrorIs(t, err, fs.ErrNotExist)

	t.Run("disabled", func(t *testing.T) {
		defer SetFallback(fallback.Load())
		SetFallback(false)
		_, err := openWith(noRing, name, os.O_RDONLY, 0)
		assert.ErrorIs(t, err, rio.ErrNotSupported)
		var pe *fs.PathError
		assert.ErrorAs(t, err, &pe)
	})

	// A model run of the fallback File against os.File.
	t.Run("model", func(t *testing.T) {
		openFB := func(name string, flag int) (fileLike, error) { return openWith(noRing, name, flag, 0o644) }
		openOS := func(name string, flag int) (fileLike, error) { return os.OpenFile(name, flag, 0o644) }
		runModel(t, 1, openFB, openOS)
	})
}

// TestClosedRing checks Files whose Ring was closed first: operations fail
// with rio.ErrClosed and Close still releases the descriptor.
func TestClosedRing(t *testing.T) {
	checkLeaks(t)
	r, err := rio.New()
	skipUnsupported(t, err)
	name := writeTemp(t, []byte("data"))
	f, err := OpenFileRing(r, name, os.O_RDWR, 0)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	_, err = f.Write(make([]byte, 4))
	assert.ErrorIs(t, err, rio.ErrClosed)
	var pe *fs.PathError
	assert.ErrorAs(t, err, &pe)
	assert.NoError(t, f.Close())
	_, err = OpenFileRing(r, name, os.O_RDONLY, 0)
	assert.ErrorIs(t, err, rio.ErrClosed)
	_, err = OpenFileRing(nil, name, os.O_RDONLY, 0)
	assert.Error(t, err)
}
