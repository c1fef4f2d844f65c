package rio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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
		t.Fatalf("%s: still blocked after %v\n%s", what, d, buf)
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
				if err := <-closed; err != nil {
					t.Fatal(err)
				}
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
	_, err := pw.Write(make([]byte, len(cs)))
	require.NoError(t, err)
	for _, c := range cs {
		_, err := c.Wait()
		require.NoError(t, err)
	}
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
	_, err := pw.Write(make([]byte, len(cs)))
	require.NoError(t, err)
	for _, c := range cs {
		_, err := c.Wait()
		require.NoError(t, err)
	}
	_, err = unix.Write(fds[1], []byte("hi"))
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
