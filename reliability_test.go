package rio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// watchdog fails t, with every goroutine's stack, if done is not closed
// within d: it turns a hang into a failure. d is a generous bound on
// something that takes milliseconds, not a timing assertion.
func watchdog(t *testing.T, d time.Duration, what string, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(d):
		buf := make([]byte, 1<<20)
		buf = buf[:runtimeStack(buf)]
		require.FailNow(t, fmt.Sprintf("%s: still blocked after %v\n%s", what, d, buf))
	}
}

// rounds returns n, or more with RIO_LONG=1.
func rounds(n int) int {
	if os.Getenv("RIO_LONG") == "1" {
		return 10 * n
	}
	return n
}

// Issue 11, item 1: a Wait racing Close must return. 32 Timeouts, 32
// goroutines waiting on them, and Close racing them, for many rounds, with
// and without SQPOLL. Before the fix, the op could finish between Wait's
// state check and its waiter registration, teardown could finish before
// Wait armed, and Wait then parked on a channel nobody closed.
func TestWaitRacingClose(t *testing.T) {
	for _, sqpoll := range []bool{false, true} {
		t.Run(fmt.Sprintf("sqpoll=%v", sqpoll), func(t *testing.T) {
			checkLeaks(t)
			n := rounds(300)
			for round := 0; round < n; round++ {
				var opts []Option
				if sqpoll {
					opts = append(opts, WithSQPoll(10*time.Millisecond))
				}
				r, err := New(opts...)
				requireRing(t, err)
				var cs [32]*Completion[struct{}]
				for i := range cs {
					cs[i] = r.Timeout(time.Duration(i%4) * 50 * time.Microsecond)
				}
				var wg sync.WaitGroup
				for i := range cs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						cs[i].Wait()
					}()
				}
				closed := make(chan error, 1)
				go func() { closed <- r.Close() }()
				done := make(chan struct{})
				go func() { wg.Wait(); close(done) }()
				watchdog(t, 20*time.Second, fmt.Sprintf("round %d: Wait after Close", round), done)
				require.NoError(t, <-closed)
			}
		})
	}
}

// within runs f and fails t if it has not returned after a generous
// bound: a hang becomes a failure.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	watchdog(t, 20*time.Second, what, done)
}

// fillRing takes every user slot of r with reads of an empty pipe, and
// returns them and the pipe's write end.
func fillRing(t *testing.T, r *Ring) ([]*Completion[int], *os.File, *os.File) {
	t.Helper()
	pr, pw := pipe(t)
	var cs []*Completion[int]
	for i := 0; i < r.table.nuser; i++ {
		cs = append(cs, r.Read(int(pr.Fd()), make([]byte, 1)))
	}
	return cs, pr, pw
}

// releaseFill gives each read of fillRing its byte and waits for them.
func releaseFill(t *testing.T, cs []*Completion[int], pw *os.File) {
	t.Helper()
	_, err := pw.Write(make([]byte, len(cs)))
	require.NoError(t, err)
	for _, c := range cs {
		_, err := c.Wait()
		require.NoError(t, err)
	}
}

// Issue 11, item 2: an operation that cannot get a slot waits for one in
// the queue, and its wait ends on its context, on Cancel and on Close, as
// any wait for a result does. Before the fix, the operation method itself
// blocked (parked in acquire) and nothing but a completion released it.
func TestQueuedOpHonoursContextAndCancel(t *testing.T) {
	r := newTestRing(t, WithEntries(2), WithCQEntries(4))
	cs, _, pw := fillRing(t, r)
	var a, b *Completion[struct{}]
	within(t, "submitting past capacity", func() {
		a = r.Nop()
		b = r.Nop()
	})
	assert.Equal(t, 2, r.Stats().Queued)
	ctx, cancel := contextWithTimeout(time.Millisecond)
	defer cancel()
	within(t, "WaitContext on a queued op", func() {
		_, err := a.WaitContext(ctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		_, err = a.Wait()
		assert.ErrorIs(t, err, syscall.ECANCELED, "withdrawn from the queue")
		b.Cancel()
		_, err = b.Wait()
		assert.ErrorIs(t, err, syscall.ECANCELED)
	})
	assert.Zero(t, r.Stats().Queued)
	releaseFill(t, cs, pw)
}

// A cancellation never needs a slot that only the operations it cancels
// can free: CancelFd on a ring whose user slots are all held by reads of
// one pipe cancels them, and withdraws those queued behind them. Before
// the fix, CancelFd took a user slot and blocked for good.
func TestCancelFdOnFullRing(t *testing.T) {
	r := newTestRing(t, WithEntries(2), WithCQEntries(4))
	requireRing(t, r.Supported("ASYNC_CANCEL"))
	cs, pr, _ := fillRing(t, r)
	cs = append(cs, r.Read(int(pr.Fd()), make([]byte, 1))) // queued
	within(t, "CancelFd on a full ring", func() {
		n, err := r.CancelFd(int(pr.Fd())).Wait()
		if errors.Is(err, syscall.EINVAL) {
			t.Skip("IORING_ASYNC_CANCEL_FD needs Linux 5.19")
		}
		require.NoError(t, err)
		assert.Equal(t, len(cs), n)
		for _, c := range cs {
			_, err := c.Wait()
			assert.ErrorIs(t, err, syscall.ECANCELED)
		}
	})
}

// WithQueueLimit(0) makes a full ring refuse at once with ErrRingFull; the
// refused operation never reaches the kernel.
func TestQueueLimit(t *testing.T) {
	r := newTestRing(t, WithEntries(2), WithCQEntries(4), WithQueueLimit(1))
	cs, _, pw := fillRing(t, r)
	a := r.Nop()
	_, err := r.Nop().Wait()
	assert.ErrorIs(t, err, ErrRingFull)
	b := r.NewBatch()
	b.Nop()
	assert.ErrorIs(t, b.Submit(), ErrRingFull)
	_, err = pw.Write(make([]byte, len(cs)))
	require.NoError(t, err)
	_, err = a.Wait()
	require.NoError(t, err)
	for _, c := range cs {
		_, err := c.Wait()
		require.NoError(t, err)
	}
	assert.Error(t, WithQueueLimit(-1)(&config{}))
}

// A Batch that does not fit waits in the queue as one submission; a
// cancellation of any of its operations withdraws all of them, and one
// that fits later is submitted whole, in order.
func TestQueuedBatch(t *testing.T) {
	r := newTestRing(t, WithEntries(4), WithCQEntries(8))
	cs, _, pw := fillRing(t, r)
	b := r.NewBatch()
	x, y := b.Nop(), b.Nop()
	require.NoError(t, b.Submit())
	p, q := b.Nop(), b.Nop()
	require.NoError(t, b.Submit())
	assert.Equal(t, 4, r.Stats().Queued)
	y.Cancel()
	for _, c := range []*Completion[struct{}]{x, y} {
		_, err := c.Wait()
		assert.ErrorIs(t, err, syscall.ECANCELED)
	}
	_, err := pw.Write(make([]byte, len(cs)))
	require.NoError(t, err)
	for _, c := range []*Completion[struct{}]{p, q} {
		_, err := c.Wait()
		require.NoError(t, err)
	}
	for _, c := range cs {
		_, err := c.Wait()
		require.NoError(t, err)
	}
}

// A multishot receive that cannot get a slot waits in the queue: Wake ends
// a Stream.Wait on it, Cancel ends it with ECANCELED (and releases its
// hold on the BufferRing), and a queued one that gets its slot receives.
func TestQueuedStream(t *testing.T) {
	r := newTestRing(t, WithEntries(2), WithCQEntries(4))
	br, fds := recvSetup(t, r, 7, 4, 64)
	cs, _, pw := fillRing(t, r)
	s := r.RecvMultishot(fds[0], br, 0)
	within(t, "Stream.Wait woken by Wake while queued", func() {
		s.Wake()
		s.Wait()
	})
	assert.False(t, s.Ended())
	s.Cancel()
	within(t, "Next on a withdrawn stream", func() {
		_, err := s.Next()
		assert.ErrorIs(t, err, syscall.ECANCELED)
		_, err = s.Next()
		assert.Equal(t, io.EOF, err)
	})
	s = r.RecvMultishot(fds[0], br, 0)
	releaseFill(t, cs, pw)
	_, err := unix.Write(fds[1], []byte("hi"))
	require.NoError(t, err)
	got, err := s.Next()
	require.NoError(t, err)
	assert.Equal(t, "hi", string(br.Bytes(got.ID, got.N)))
	br.Release(got.ID)
	s.Cancel()
	for {
		if _, err := s.Next(); err == io.EOF {
			break
		}
	}
	require.NoError(t, br.Close())
}

// ringFd returns the io_uring fd of r, a ring of the running kernel.
func ringFd(r *Ring) int { return r.k.(*realKernel).fd }

// Issue 11, item 4: a ring whose fd was closed behind its back (a double
// close elsewhere in the program) fails what the kernel never saw with
// EBADF, as an *os.File would, and Close returns. An operation the kernel
// already had still completes: the mappings keep the instance alive, and
// Close leaves the rest of the teardown to when it has. Before the fix,
// the Nop's Wait and Close waited for ever.
func TestRingFdClosedBehindItsBack(t *testing.T) {
	checkLeaks(t)
	r, err := New()
	requireRing(t, err)
	pr, pw := pipe(t)
	buf := make([]byte, 1)
	rd := r.Read(int(pr.Fd()), buf)
	r.Flush() // the kernel has the read (Ring's methods defer the enter)
	require.NoError(t, unix.Close(ringFd(r)))
	within(t, "Nop on a ring whose fd was closed", func() {
		_, err := r.Nop().Wait()
		assert.ErrorIs(t, err, syscall.EBADF)
		_, err = r.Nop().Wait()
		assert.ErrorIs(t, err, syscall.EBADF)
	})
	within(t, "Close of a ring whose fd was closed", func() {
		assert.ErrorIs(t, r.Close(), syscall.EBADF)
	})
	assert.False(t, rd.Done(), "the kernel still has the read")
	_, err = pw.Write([]byte("x"))
	require.NoError(t, err)
	within(t, "the read the kernel had", func() {
		n, err := rd.Wait()
		require.NoError(t, err)
		assert.Equal(t, 1, n)
	})
}

// The closed fd's number reused by another ring, or by a file: the ring
// notices (the other ring's enter submits nothing of ours; a file answers
// EOPNOTSUPP), fails with EBADF or EOPNOTSUPP, and neither enters nor
// closes that number again. Before the fix, the first case spun for ever
// and the second hung; Close would have closed the new owner's fd.
func TestRingFdNumberReused(t *testing.T) {
	t.Run("by a ring", func(t *testing.T) {
		checkLeaks(t)
		r, err := New()
		requireRing(t, err)
		fd := ringFd(r)
		require.NoError(t, unix.Close(fd))
		r2 := newTestRing(t)
		if ringFd(r2) != fd {
			t.Logf("the new ring got fd %d, not %d", ringFd(r2), fd)
		}
		within(t, "Nop on a ring whose fd names another ring", func() {
			_, err := r.Nop().Wait()
			assert.ErrorIs(t, err, syscall.EBADF)
			assert.ErrorIs(t, r.Close(), syscall.EBADF)
		})
		_, err = r2.Nop().Wait()
		assert.NoError(t, err, "the other ring is untouched")
	})
	t.Run("by a file", func(t *testing.T) {
		checkLeaks(t)
		r, err := New()
		requireRing(t, err)
		fd := ringFd(r)
		require.NoError(t, unix.Close(fd))
		f, err := os.Open("/dev/null")
		require.NoError(t, err)
		defer f.Close()
		if int(f.Fd()) != fd {
			t.Skipf("/dev/null got fd %d, not the ring's %d", f.Fd(), fd)
		}
		within(t, "Nop on a ring whose fd names a file", func() {
			_, err := r.Nop().Wait()
			assert.ErrorIs(t, err, syscall.EOPNOTSUPP)
			assert.Error(t, r.Close())
		})
		_, err = f.Stat()
		assert.NoError(t, err, "Close left the file's fd alone")
		_, err = unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		assert.NoError(t, err)
	})
}

// Issue 11, item 6: BufferRing misuse returns errors and never leaves its
// lock held. Before the fix, Release of an id out of range panicked with
// the mutex held (and every later call deadlocked), and Bytes panicked.
func TestBufferRingMisuse(t *testing.T) {
	r := newTestRing(t)
	br, fds := recvSetup(t, r, 9, 4, 64)
	assert.ErrorIs(t, br.Release(100), syscall.EINVAL)
	assert.ErrorIs(t, br.Release(1), syscall.EINVAL, "not held: the kernel has it")
	assert.Nil(t, br.Bytes(100, 1))
	assert.Nil(t, br.Bytes(0, 65))
	assert.Nil(t, br.Bytes(0, -1))
	s := r.RecvMultishot(fds[0], br, 0)
	_, err := unix.Write(fds[1], []byte("ok"))
	require.NoError(t, err)
	within(t, "a receive after the misuse", func() {
		b, err := s.Next()
		require.NoError(t, err)
		assert.Equal(t, "ok", string(br.Bytes(b.ID, b.N)))
		require.NoError(t, br.Release(b.ID))
		assert.ErrorIs(t, br.Release(b.ID), syscall.EINVAL, "released twice")
		s.Cancel()
		for {
			if _, err := s.Next(); err == io.EOF {
				break
			}
		}
	})
	require.NoError(t, br.Close())
	assert.NoError(t, br.Release(0), "a no-op after Close")
	assert.Nil(t, br.Bytes(0, 1))
}

// vmSize returns the process's mapped bytes (/proc/self/statm, field 1).
func vmSize(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	require.NoError(t, err)
	var pages int64
	_, err = fmt.Sscan(string(b), &pages)
	require.NoError(t, err)
	return pages * int64(os.Getpagesize())
}

// A Ring closed with BufferRings still open frees their memory. Before the
// fix, 200 rings of 1 MiB stayed mapped: +200 MiB.
func TestRingCloseFreesBufferRings(t *testing.T) {
	checkLeaks(t)
	const n, size = 200, 1 << 20
	before := vmSize(t)
	r, err := New()
	requireRing(t, err)
	requireRing(t, r.Supported("SEND_ZC"))
	var brs []*BufferRing
	for i := 0; i < n; i++ {
		br, err := r.NewBufferRing(uint16(i), 256, size/256)
		require.NoError(t, err)
		brs = append(brs, br)
	}
	during := vmSize(t)
	require.NoError(t, r.Close())
	after := vmSize(t)
	t.Logf("mapped: %d MiB before, %d MiB with the buffer rings, %d MiB after Close", before>>20, during>>20, after>>20)
	assert.GreaterOrEqual(t, during-before, int64(n*size), "the buffer rings are mapped")
	assert.Less(t, after-before, int64(n*size/4), "Close unmapped them")
	for _, br := range brs {
		assert.NoError(t, br.Close(), "closing a BufferRing of a closed Ring is a no-op")
	}
}

// Issue 11, item 7: every method of a nil or zero Ring, of a zero Batch
// and of a zero Stream returns an error matching EINVAL (or ErrClosed), as
// package os does for a nil *File, and never panics. The methods are
// enumerated by reflection, so a new one is covered without a change here.
// Before the fix, they panicked.
func TestNilAndZeroValues(t *testing.T) {
	invalid := func(t *testing.T, what string, err error) {
		t.Helper()
		assert.True(t, errors.Is(err, syscall.EINVAL) || errors.Is(err, ErrClosed), "%s: %v, want an error matching EINVAL or ErrClosed", what, err)
	}
	// check calls every method of v with zero arguments, and then whatever
	// tells its error: Wait on a Completion, Next on a Stream, Submit on a
	// Batch.
	var check func(t *testing.T, name string, v reflect.Value)
	check = func(t *testing.T, name string, v reflect.Value) {
		t.Helper()
		for i := 0; i < v.NumMethod(); i++ {
			m := v.Type().Method(i)
			what := name + "." + m.Name
			var out []reflect.Value
			func() {
				defer func() {
					if p := recover(); p != nil {
						assert.Failf(t, "panic", "%s panicked: %v", what, p)
					}
				}()
				fn := v.Method(i)
				args := make([]reflect.Value, fn.Type().NumIn())
				for j := range args {
					args[j] = reflect.Zero(fn.Type().In(j))
				}
				done := make(chan struct{})
				go func() {
					defer close(done)
					defer func() {
						if p := recover(); p != nil {
							assert.Failf(t, "panic", "%s panicked: %v", what, p)
						}
					}()
					out = fn.Call(args)
				}()
				watchdog(t, 20*time.Second, what, done)
			}()
			for _, o := range out {
				switch x := o.Interface().(type) {
				case error:
					invalid(t, what, x)
				case interface{ Submit() error }:
					invalid(t, what+"().Submit", x.Submit())
				case *BufferRing:
					assert.Nil(t, x, "%s returned a BufferRing", what)
				}
				if o.Kind() == reflect.Pointer && !o.IsNil() {
					if w := o.MethodByName("Wait"); w.IsValid() && w.Type().NumOut() == 2 {
						invalid(t, what+"().Wait", w.Call(nil)[1].Interface().(error))
					}
					if nx := o.MethodByName("Next"); nx.IsValid() {
						invalid(t, what+"().Next", nx.Call(nil)[1].Interface().(error))
					}
				}
			}
			if m.Name == "Stats" {
				assert.Equal(t, Stats{}, out[0].Interface(), what)
			}
		}
	}
	check(t, "(*Ring)(nil)", reflect.ValueOf((*Ring)(nil)))
	check(t, "(&Ring{})", reflect.ValueOf(&Ring{}))
	check(t, "(&Batch{})", reflect.ValueOf(&Batch{}))
	check(t, "(&Stream[Buffer]{})", reflect.ValueOf(&Stream[Buffer]{}))
	check(t, "(&Stream[int]{})", reflect.ValueOf(&Stream[int]{}))

	_, err := New(nil)
	invalid(t, "New(nil)", err)
	r := newTestRing(t)
	_, err = r.RecvMultishot(0, nil, 0).Next()
	invalid(t, "RecvMultishot(fd, nil, 0).Next", err)
	assert.NoError(t, r.NewBatch().Submit(), "an empty Batch submits nothing")
}
