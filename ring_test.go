package rio

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorio/rio/internal/uring"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestNop(t *testing.T) {
	r := newTestRing(t, WithEntries(8))
	for i := 0; i < 100; i++ {
		_, err := r.Nop().Wait()
		require.NoError(t, err)
	}
	s := r.Stats()
	assert.EqualValues(t, 100, s.Submitted)
	assert.EqualValues(t, 100, s.Completed)
	assert.Equal(t, 0, s.InFlight)
	assert.NotZero(t, s.Enters)
	var total uint64
	for _, n := range s.Latency {
		total += n
	}
	// One use of a slot in 16 is sampled. The 100 NOPs need not all use
	// the same slot (a Wait can return before the reaper frees the
	// previous op's slot), so the count is what the slots' generations
	// say: at most 100/16, and exact for the slots used.
	var want uint64
	r.table.mu.Lock()
	for i := range r.table.slots {
		want += uint64(r.table.slots[i].gen / (sampleMask + 1))
	}
	r.table.mu.Unlock()
	assert.Equal(t, want, total, "latency histogram samples one use of a slot in %d", sampleMask+1)
	assert.LessOrEqual(t, total, uint64(100/(sampleMask+1)))
	assert.NotZero(t, total)
	assert.NotZero(t, s.Quantile(0.5))
}

func TestOptionsValidation(t *testing.T) {
	for _, opt := range []Option{WithEntries(0), WithEntries(3), WithEntries(1 << 16), WithCQEntries(5), WithSQPoll(-time.Second), WithWaitSpin(-time.Second)} {
		_, err := New(opt)
		assert.ErrorIs(t, err, syscall.EINVAL)
	}
	_, err := New(WithEntries(64), WithCQEntries(32))
	assert.ErrorIs(t, err, syscall.EINVAL, "CQ smaller than SQ")
}

func TestReadWriteAt(t *testing.T) {
	r := newTestRing(t)
	f := tempFile(t, nil)
	fd := int(f.Fd())
	data := []byte("hello, io_uring")
	n, err := r.WriteAt(fd, data, 100).Wait()
	require.NoError(t, err)
	assert.Equal(t, len(data), n)

	buf := make([]byte, 64)
	n, err = r.ReadAt(fd, buf, 100).Wait()
	require.NoError(t, err)
	assert.Equal(t, data, buf[:n])

	// The hole before offset 100 reads as zeros; past EOF reads 0 bytes.
	n, err = r.ReadAt(fd, buf, 0).Wait()
	require.NoError(t, err)
	assert.Equal(t, 64, n)
	assert.Equal(t, make([]byte, 64), buf)
	n, err = r.ReadAt(fd, buf, 1<<20).Wait()
	require.NoError(t, err)
	assert.Zero(t, n)

	// Nil and empty buffers are valid and transfer nothing.
	n, err = r.ReadAt(fd, nil, 0).Wait()
	require.NoError(t, err)
	assert.Zero(t, n)
	n, err = r.WriteAt(fd, []byte{}, 0).Wait()
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestReadWriteCurrentPosition(t *testing.T) {
	r := newTestRing(t)
	pr, pw := pipe(t)
	n, err := r.Write(int(pw.Fd()), []byte("ping")).Wait()
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	buf := make([]byte, 8)
	n, err = r.Read(int(pr.Fd()), buf).Wait()
	require.NoError(t, err)
	assert.Equal(t, "ping", string(buf[:n]))
}

func TestVectored(t *testing.T) {
	r := newTestRing(t)
	f := tempFile(t, nil)
	fd := int(f.Fd())
	n, err := r.WritevAt(fd, [][]byte{[]byte("abc"), nil, []byte("defg")}, 2).Wait()
	require.NoError(t, err)
	assert.Equal(t, 7, n)
	a, b := make([]byte, 4), make([]byte, 5)
	n, err = r.ReadvAt(fd, [][]byte{a, b}, 0).Wait()
	require.NoError(t, err)
	assert.Equal(t, 9, n)
	assert.Equal(t, "\x00\x00abcdefg", string(a)+string(b))

	_, err = r.ReadvAt(fd, make([][]byte, 1025), 0).Wait()
	assert.ErrorIs(t, err, syscall.EINVAL)
}

func TestErrnoWrapping(t *testing.T) {
	r := newTestRing(t)
	_, err := r.ReadAt(-1, make([]byte, 1), 0).Wait()
	require.ErrorIs(t, err, syscall.EBADF)
	var se *os.SyscallError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "read", se.Syscall)

	_, err = r.ReadAt(0, make([]byte, 1), -5).Wait()
	assert.ErrorIs(t, err, syscall.EINVAL, "negative offset")
	assert.Contains(t, err.Error(), "negative offset")

	_, err = r.Openat(unix.AT_FDCWD, filepath.Join(t.TempDir(), "missing"), os.O_RDONLY, 0).Wait()
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, err = r.Openat(unix.AT_FDCWD, "a\x00b", os.O_RDONLY, 0).Wait()
	assert.ErrorIs(t, err, syscall.EINVAL)
}

func TestFileOps(t *testing.T) {
	r := newTestRing(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "f")

	fd, err := r.Openat(unix.AT_FDCWD, path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600).Wait()
	require.NoError(t, err)
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	require.NoError(t, err)
	assert.NotZero(t, flags&unix.FD_CLOEXEC, "O_CLOEXEC added")

	_, err = r.WriteAt(fd, []byte("0123456789"), 0).Wait()
	require.NoError(t, err)
	for _, c := range []*Completion[struct{}]{
		r.Fsync(fd), r.Fdatasync(fd), r.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE),
		r.Fallocate(fd, 0, 0, 4096),
	} {
		_, err := c.Wait()
		require.NoError(t, err)
	}
	var st unix.Statx_t
	_, err = r.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_SIZE|unix.STATX_MODE, &st).Wait()
	require.NoError(t, err)
	assert.EqualValues(t, 4096, st.Size)
	assert.EqualValues(t, 0o600, st.Mode&0o777)

	if err := r.Supported("FTRUNCATE"); err == nil {
		_, err = r.Ftruncate(fd, 3).Wait()
		require.NoError(t, err)
		_, err = r.Statx(unix.AT_FDCWD, path, 0, unix.STATX_SIZE, &st).Wait()
		require.NoError(t, err)
		assert.EqualValues(t, 3, st.Size)
	} else {
		requireRing(t, err)
	}
	_, err = r.CloseFd(fd).Wait()
	require.NoError(t, err)

	_, err = r.Mkdirat(unix.AT_FDCWD, filepath.Join(dir, "sub"), 0o755).Wait()
	require.NoError(t, err)
	_, err = r.Renameat(unix.AT_FDCWD, path, unix.AT_FDCWD, filepath.Join(dir, "sub", "g"), 0).Wait()
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(dir, "sub", "g"))
	require.NoError(t, err)
	_, err = r.Unlinkat(unix.AT_FDCWD, filepath.Join(dir, "sub", "g"), 0).Wait()
	require.NoError(t, err)
	_, err = r.Unlinkat(unix.AT_FDCWD, filepath.Join(dir, "sub"), unix.AT_REMOVEDIR).Wait()
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(dir, "sub"))
	assert.ErrorIs(t, err, os.ErrNotExist)

	_, err = r.Statx(unix.AT_FDCWD, path, 0, unix.STATX_SIZE, nil).Wait()
	assert.ErrorIs(t, err, syscall.EFAULT)
	_, err = r.Fallocate(0, 0, 0, 0).Wait()
	assert.ErrorIs(t, err, syscall.EINVAL)
	_, err = r.Ftruncate(0, -1).Wait()
	assert.ErrorIs(t, err, syscall.EINVAL)
}

func TestTimeoutAndPoll(t *testing.T) {
	r := newTestRing(t)
	start := time.Now()
	_, err := r.Timeout(20 * time.Millisecond).Wait()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 15*time.Millisecond)

	pr, pw := pipe(t)
	c := r.Poll(int(pr.Fd()), unix.POLLIN)
	assert.False(t, c.Done())
	_, err = pw.Write([]byte("x"))
	require.NoError(t, err)
	ev, err := c.Wait()
	require.NoError(t, err)
	assert.NotZero(t, ev&unix.POLLIN)
}

func TestFixedBuffersAndFiles(t *testing.T) {
	r := newTestRing(t)
	f := tempFile(t, []byte("fixed buffers and files"))
	reg := make([]byte, 4096)
	require.NoError(t, r.RegisterBuffers([][]byte{reg}))
	require.NoError(t, r.RegisterFiles([]int{-1, int(f.Fd())}))

	n, err := r.ReadFixedAt(FixedFile(1), reg[10:20], 6, 0).Wait()
	require.NoError(t, err)
	assert.Equal(t, "buffers an", string(reg[10:10+n]))

	copy(reg, "FIXED")
	n, err = r.WriteFixedAt(int(f.Fd()), reg[:5], 0, 0).Wait()
	require.NoError(t, err)
	assert.Equal(t, 5, n)
	got, _ := os.ReadFile(f.Name())
	assert.Equal(t, "FIXED buffers and files", string(got))

	// A buffer outside the registered one, or a bad index, is refused
	// before it reaches the kernel.
	_, err = r.ReadFixedAt(int(f.Fd()), make([]byte, 4), 0, 0).Wait()
	assert.ErrorIs(t, err, syscall.EFAULT)
	_, err = r.ReadFixedAt(int(f.Fd()), reg[:4], 0, 3).Wait()
	assert.ErrorIs(t, err, syscall.EINVAL)

	// Empty slot 0, then fill it.
	_, err = r.ReadAt(FixedFile(0), make([]byte, 4), 0).Wait()
	assert.ErrorIs(t, err, syscall.EBADF)
	require.NoError(t, r.UpdateFiles(0, []int{int(f.Fd())}))
	n, err = r.ReadAt(FixedFile(0), make([]byte, 4), 0).Wait()
	require.NoError(t, err)
	assert.Equal(t, 4, n)

	require.NoError(t, r.UnregisterFiles())
	require.NoError(t, r.UnregisterBuffers())
}

func TestFeatureProbe(t *testing.T) {
	r := newTestRing(t)
	assert.NoError(t, r.Supported("NOP"))
	assert.ErrorIs(t, r.Supported("NO_SUCH_OP"), syscall.EINVAL)

	// Pretend the kernel lacks ftruncate, as one before 6.9 does.
	r.probe.Ops[uring.OpFtruncate].Flags = 0
	err := r.Supported("FTRUNCATE")
	require.ErrorIs(t, err, ErrNotSupported)
	_, err = r.Ftruncate(0, 0).Wait()
	require.ErrorIs(t, err, ErrNotSupported)
	var fe *FeatureError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "IORING_OP_FTRUNCATE", fe.Feature)
	assert.Equal(t, "6.9", fe.MinKernel)
	assert.Contains(t, err.Error(), "Linux 6.9")

	b := r.NewBatch()
	b.Nop()
	c := b.Ftruncate(0, 0)
	assert.ErrorIs(t, b.Submit(), ErrNotSupported)
	_, err = c.Wait()
	assert.ErrorIs(t, err, ErrNotSupported)
}

func TestSetupErrorClassification(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSYS, syscall.EPERM, syscall.EACCES} {
		err := setupError(os.NewSyscallError("io_uring_setup", errno))
		assert.ErrorIs(t, err, ErrNotSupported, errno.Error())
		assert.ErrorIs(t, err, errno)
		var se *os.SyscallError
		assert.ErrorAs(t, err, &se)
	}
	err := setupError(os.NewSyscallError("io_uring_setup", syscall.ENOMEM))
	assert.NotErrorIs(t, err, ErrNotSupported)
}

func TestClosedRing(t *testing.T) {
	checkLeaks(t)
	r, err := New()
	requireRing(t, err)
	require.NoError(t, r.Close())
	require.NoError(t, r.Close(), "Close is idempotent")

	_, err = r.Nop().Wait()
	assert.ErrorIs(t, err, ErrClosed)
	_, err = r.ReadAt(0, make([]byte, 1), 0).Wait()
	assert.ErrorIs(t, err, ErrClosed)
	b := r.NewBatch()
	c := b.Nop()
	assert.ErrorIs(t, b.Submit(), ErrClosed)
	_, err = c.Wait()
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, r.RegisterFiles([]int{0}), ErrClosed)
	assert.Equal(t, 0, r.Stats().InFlight)
}

// Close must cancel reads that would never complete, wait for their CQEs,
// and only then return.
func TestCloseCancelsInFlight(t *testing.T) {
	checkLeaks(t)
	r, err := New(WithEntries(8))
	requireRing(t, err)
	pr, _ := pipe(t)
	var cs []*Completion[int]
	for i := 0; i < 10; i++ {
		cs = append(cs, r.Read(int(pr.Fd()), make([]byte, 16)))
	}
	assert.Equal(t, 10, r.Stats().InFlight)
	require.NoError(t, r.Close())
	assert.Equal(t, 0, r.Stats().InFlight, "every CQE reaped before Close returns")
	for _, c := range cs {
		assert.True(t, c.Done())
		_, err := c.Wait()
		assert.ErrorIs(t, err, syscall.ECANCELED)
	}
}

// Concurrent Close calls and operations neither panic nor hang, and every
// operation ends in a result, ErrClosed or ECANCELED.
func TestCloseConcurrentWithOps(t *testing.T) {
	for iter := 0; iter < 20; iter++ {
		checkLeaks(t)
		r, err := New(WithEntries(4))
		requireRing(t, err)
		pr, _ := pipe(t)
		f := tempFile(t, make([]byte, 4096))
		var wg sync.WaitGroup
		var bad atomic.Value
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; ; i++ {
					var err error
					switch (g + i) % 3 {
					case 0:
						_, err = r.Nop().Wait()
					case 1:
						_, err = r.ReadAt(int(f.Fd()), make([]byte, 512), 0).Wait()
					case 2:
						ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
						_, err = r.Read(int(pr.Fd()), make([]byte, 8)).WaitContext(ctx)
						cancel()
						if errors.Is(err, context.DeadlineExceeded) {
							err = nil
						}
					}
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil && !errors.Is(err, syscall.ECANCELED) {
						bad.Store(err)
						return
					}
				}
			}(g)
		}
		time.Sleep(time.Duration(iter%5) * time.Millisecond)
		var cwg sync.WaitGroup
		for i := 0; i < 3; i++ {
			cwg.Add(1)
			go func() { defer cwg.Done(); assert.NoError(t, r.Close()) }()
		}
		cwg.Wait()
		wg.Wait()
		require.Nil(t, bad.Load(), "unexpected error")
		assert.Equal(t, 0, r.Stats().InFlight)
	}
}

func TestWaitContextCancelsEmptyPipeRead(t *testing.T) {
	r := newTestRing(t)
	pr, pw := pipe(t)
	buf := make([]byte, 16)
	c := r.Read(int(pr.Fd()), buf)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := c.WaitContext(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// The read was cancelled in the kernel: its completion says so, and it
	// did not consume what is written afterwards.
	_, err = c.Wait()
	require.ErrorIs(t, err, syscall.ECANCELED)
	_, err = pw.Write([]byte("after"))
	require.NoError(t, err)
	n, err := pr.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "after", string(buf[:n]))

	// An already cancelled context still returns a completed result.
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	nop := r.Nop()
	for !nop.Done() {
	}
	_, err = nop.WaitContext(done)
	assert.NoError(t, err)
}

// The in-flight table keeps a buffer alive while the kernel may write it,
// even when the caller keeps no reference and nobody waits.
func TestBufferHeldUntilReaped(t *testing.T) {
	r := newTestRing(t)
	pr, pw := pipe(t)
	var freed atomic.Bool
	func() {
		buf := new([4096]byte)
		runtime.SetFinalizer(buf, func(*[4096]byte) { freed.Store(true) })
		r.Read(int(pr.Fd()), buf[:]) // dropped on purpose
	}()
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	time.Sleep(10 * time.Millisecond)
	assert.False(t, freed.Load(), "buffer collected while the kernel owns it")

	_, err := pw.Write([]byte("data"))
	require.NoError(t, err)
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats().InFlight > 0 && time.Now().Before(deadline) {
		_, _ = r.Nop().Wait() // reaps the read's completion too
	}
	require.Equal(t, 0, r.Stats().InFlight)
	for i := 0; i < 10 && !freed.Load(); i++ {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	assert.True(t, freed.Load(), "buffer released once its completion was reaped")
}

// A write whose Completion is dropped still happens: submission does not
// wait for Wait.
func TestFireAndForget(t *testing.T) {
	r := newTestRing(t)
	f := tempFile(t, nil)
	for i := 0; i < 100; i++ {
		r.WriteAt(int(f.Fd()), []byte{byte(i)}, int64(i))
	}
	// The kernel may run the writes in any order (io-wq workers), so wait
	// until every byte has arrived, not just the last.
	want := make([]byte, 100)
	for i := range want {
		want[i] = byte(i)
	}
	var got []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		var err error
		got, err = os.ReadFile(f.Name())
		require.NoError(t, err)
		if bytes.Equal(got, want) {
			break
		}
	}
	require.Len(t, got, 100)
	for i := range got {
		assert.Equal(t, byte(i), got[i])
	}
}

// Past the cap, operations wait in the queue, in order, and are submitted
// as slots free; their submitters do not block, and they do not fail.
func TestQueuedPastCapacity(t *testing.T) {
	r := newTestRing(t, WithEntries(2), WithCQEntries(4))
	capacity := r.table.nuser
	require.Equal(t, 3, capacity, "CQ of 4, one slot kept for cancellations")
	pr, pw := pipe(t)
	var cs []*Completion[int]
	for i := 0; i < capacity+2; i++ {
		cs = append(cs, r.Read(int(pr.Fd()), make([]byte, 1)))
	}
	nop := r.Nop()
	assert.Equal(t, 3, r.Stats().Queued, "two reads and the Nop wait for a slot")
	assert.False(t, nop.Done())
	_, err := pw.Write([]byte("x"))
	require.NoError(t, err)
	// One read completes; the first queued read takes its slot. Two more
	// bytes free two more, for the second read and the Nop.
	_, err = pw.Write([]byte("yz"))
	require.NoError(t, err)
	_, err = nop.Wait()
	require.NoError(t, err)
	_, err = pw.Write([]byte("uvw"))
	require.NoError(t, err)
	for _, c := range cs {
		n, err := c.Wait()
		require.NoError(t, err)
		assert.Equal(t, 1, n)
	}
	assert.Zero(t, r.Stats().Queued)
}

// An operation waiting for a slot is failed by Close with ErrClosed.
func TestBlockedSubmitterReleasedByClose(t *testing.T) {
	checkLeaks(t)
	r, err := New(WithEntries(2), WithCQEntries(4))
	requireRing(t, err)
	pr, _ := pipe(t)
	for i := 0; i < r.table.nuser; i++ {
		r.Read(int(pr.Fd()), make([]byte, 1))
	}
	res := make(chan error)
	go func() { _, err := r.Nop().Wait(); res <- err }()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, r.Close())
	assert.ErrorIs(t, <-res, ErrClosed)
}

// 64 goroutines, 100k operations, a ring of 8 entries: every operation gets
// exactly its own result.
func TestStressSmallRing(t *testing.T) {
	total := 100_000
	if testing.Short() {
		total = 10_000
	}
	r := newTestRing(t, WithEntries(8))
	content := make([]byte, 8192)
	for i := range content {
		content[i] = byte(i * 7)
	}
	f := tempFile(t, content)
	fd := int(f.Fd())
	const workers = 64
	var done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			buf := make([]byte, 4096)
			for i := g; i < total; i += workers {
				if i%2 == 0 {
					if _, err := r.Nop().Wait(); err != nil {
						errs <- err
						return
					}
				} else {
					off, n := i%4096, i%4096+1
					got, err := r.ReadAt(fd, buf[:n], int64(off)).Wait()
					if err != nil {
						errs <- err
						return
					}
					if got != n || !bytes.Equal(buf[:n], content[off:off+n]) {
						errs <- errors.New("read returned another operation's result")
						return
					}
				}
				done.Add(1)
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.EqualValues(t, total, done.Load())
	s := r.Stats()
	assert.EqualValues(t, total, s.Submitted)
	assert.EqualValues(t, total, s.Completed)
	assert.Zero(t, s.EnterErrors)
	assert.Less(t, s.Enters, uint64(total), "submissions were combined")
	t.Logf("%d ops, %d enters", total, s.Enters)
}

func TestWithMaxWorkers(t *testing.T) {
	r := newTestRing(t, WithMaxWorkers(2, 2))
	_, err := r.Nop().Wait()
	require.NoError(t, err)
}

func TestSQPoll(t *testing.T) {
	r := newTestRing(t, WithSQPoll(10*time.Millisecond))
	f := tempFile(t, []byte("sqpoll"))
	for i := 0; i < 200; i++ {
		_, err := r.Nop().Wait()
		require.NoError(t, err)
		if i == 100 {
			time.Sleep(30 * time.Millisecond) // let the SQ thread go to sleep
		}
	}
	buf := make([]byte, 6)
	n, err := r.ReadAt(int(f.Fd()), buf, 0).Wait()
	require.NoError(t, err)
	assert.Equal(t, "sqpoll", string(buf[:n]))
	b := r.NewBatch()
	var cs []*Completion[struct{}]
	for i := 0; i < 32; i++ {
		cs = append(cs, b.Nop())
	}
	require.NoError(t, b.Submit())
	for _, c := range cs {
		_, err := c.Wait()
		require.NoError(t, err)
	}
}
