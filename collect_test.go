package rio

import (
	"context"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// rawPipes returns n blocking pipes as [read, write] descriptors, closed
// when t ends.
func rawPipes(t testing.TB, n int) [][2]int {
	t.Helper()
	ps := make([][2]int, n)
	for i := range ps {
		var p [2]int
		require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
		ps[i] = p
	}
	t.Cleanup(func() {
		for _, p := range ps {
			unix.Close(p[0])
			unix.Close(p[1])
		}
	})
	return ps
}

// TestCollectorOrder: reads on pipes complete in the order the pipes are
// written, and the Collector returns them in that order.
func TestCollectorOrder(t *testing.T) {
	r := newTestRing(t)
	const n = 16
	ps := rawPipes(t, n)
	bufs := make([][]byte, n)
	var q Collector[int]
	for i := range ps {
		bufs[i] = make([]byte, 8)
		require.NoError(t, q.Add(r.Read(ps[i][0], bufs[i]), i))
	}
	assert.Equal(t, n, q.Len())
	_, ok := q.TryNext()
	assert.False(t, ok, "TryNext with nothing complete")
	order := rand.Perm(n)
	for _, i := range order {
		_, err := unix.Write(ps[i][1], []byte{byte(i)})
		require.NoError(t, err)
		got, ok := q.Next()
		require.True(t, ok)
		require.Equal(t, i, got, "the read of the pipe just written")
		assert.Equal(t, byte(i), bufs[i][0])
	}
	assert.Equal(t, 0, q.Len())
	_, ok = q.Next()
	assert.False(t, ok, "Next with nothing pending")
}

// TestCollectorCompletions: keys may be the Completions themselves;
// operations that completed before Add, that failed before submission, and
// of a Batch added before Submit are all returned.
func TestCollectorCompletions(t *testing.T) {
	r := newTestRing(t)
	var q Collector[*Completion[struct{}]]
	done := r.Nop()
	_, err := done.Wait()
	require.NoError(t, err)
	bad := r.Mkdirat(unix.AT_FDCWD, "a\x00b", 0o755) // fails before submission
	b := r.NewBatch()
	batched := []*Completion[struct{}]{b.Nop(), b.Nop(), b.Nop()}
	want := map[*Completion[struct{}]]bool{done: true, bad: true}
	for _, c := range append([]*Completion[struct{}]{done, bad}, batched...) {
		require.NoError(t, q.Add(c, c))
		want[c] = true
	}
	assert.ErrorIs(t, q.Add(done, done), errCollected, "added twice")
	assert.ErrorIs(t, q.Add(nil, nil), errNilOperation)
	assert.ErrorIs(t, q.Add(done, done), syscall.EINVAL, "added twice")
	assert.ErrorIs(t, q.Add(nil, nil), syscall.EINVAL, "nil op")
	var nilc *Completion[int]
	var qi Collector[int]
	assert.ErrorIs(t, qi.Add(nilc, 0), errNilOperation)

	// Two are ready; the batch's three are pending until it is submitted.
	for range 2 {
		c, ok := q.TryNext()
		require.True(t, ok)
		assert.True(t, want[c])
		delete(want, c)
	}
	assert.Equal(t, 3, q.Len())
	require.NoError(t, b.Submit())
	for c := range q.All() {
		assert.True(t, want[c], "each key once")
		delete(want, c)
		_, err := c.Wait()
		if c == bad {
			assert.ErrorIs(t, err, syscall.EINVAL)
		} else {
			assert.NoError(t, err)
		}
	}
	assert.Empty(t, want)
}

// TestCollectorBatchFails: the operations of a Batch that fails to submit
// complete with its error, and the Collector returns them.
func TestCollectorBatchFails(t *testing.T) {
	r := newTestRing(t, WithEntries(4))
	var q Collector[int]
	b := r.NewBatch()
	for i := range 5 { // more than the SQ
		require.NoError(t, q.Add(b.Nop(), i))
	}
	assert.Error(t, b.Submit())
	n := 0
	for range q.All() {
		n++
	}
	assert.Equal(t, 5, n)
}

// TestCollectorContext: NextContext gives up without cancelling; the
// operation is returned once it completes.
func TestCollectorContext(t *testing.T) {
	r := newTestRing(t)
	ps := rawPipes(t, 1)
	var q Collector[int]
	buf := make([]byte, 4)
	c := r.Read(ps[0][0], buf)
	require.NoError(t, q.Add(c, 7))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, ok, err := q.NextContext(ctx)
	assert.False(t, ok)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, 1, q.Len())
	assert.False(t, c.Done(), "not cancelled")
	_, err = unix.Write(ps[0][1], []byte("ok"))
	require.NoError(t, err)
	key, ok, err := q.NextContext(context.Background())
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, 7, key)
	n, err := c.Wait()
	assert.NoError(t, err)
	assert.Equal(t, 2, n)
}

// TestCollectorWaitToo: an operation can be waited on directly while it is
// in a Collector.
func TestCollectorWaitToo(t *testing.T) {
	r := newTestRing(t)
	ps := rawPipes(t, 1)
	var q Collector[int]
	c := r.Read(ps[0][0], make([]byte, 4))
	waited := make(chan error, 1)
	go func() { _, err := c.Wait(); waited <- err }()
	for c.op.wake.Load() == nil { // the waiter is installed first
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, q.Add(c, 1))
	_, err := unix.Write(ps[0][1], []byte("x"))
	require.NoError(t, err)
	key, ok := q.Next()
	assert.True(t, ok)
	assert.Equal(t, 1, key)
	assert.NoError(t, <-waited)
}

// TestCollectorClose: closing the Ring completes what is pending, and the
// Collector returns it.
func TestCollectorClose(t *testing.T) {
	checkLeaks(t)
	r, err := New()
	requireRing(t, err)
	ps := rawPipes(t, 4)
	var q Collector[*Completion[int]]
	for _, p := range ps {
		c := r.Read(p[0], make([]byte, 4))
		require.NoError(t, q.Add(c, c))
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		r.Close()
	}()
	n := 0
	for c := range q.All() {
		_, err := c.Wait()
		assert.ErrorIs(t, err, syscall.ECANCELED)
		n++
	}
	assert.Equal(t, 4, n)
}

// TestCollectorConcurrent: several goroutines take from one Collector
// while others add to it, over two Rings; every key comes back exactly
// once.
func TestCollectorConcurrent(t *testing.T) {
	rs := []*Ring{newTestRing(t), newTestRing(t)}
	const producers, per = 4, 500
	var q Collector[int]
	var wg sync.WaitGroup
	var added sync.WaitGroup
	added.Add(producers)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer added.Done()
			r := rs[p%2]
			for i := range per {
				var op Operation
				if i%3 == 0 {
					op = r.Timeout(time.Duration(i%7) * time.Microsecond)
				} else {
					op = r.Nop()
				}
				if err := q.Add(op, p*per+i); !assert.NoError(t, err) {
					return
				}
			}
		}()
	}
	seen := make([]int, producers*per)
	var mu sync.Mutex
	stop := make(chan struct{})
	go func() { added.Wait(); close(stop) }()
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				key, ok := q.Next()
				if !ok {
					select {
					case <-stop:
						if q.Len() == 0 {
							return
						}
					default:
						time.Sleep(100 * time.Microsecond)
					}
					continue
				}
				mu.Lock()
				seen[key]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for k, n := range seen {
		require.Equal(t, 1, n, "times key %d was returned", k)
	}
}

func TestBatchCap(t *testing.T) {
	r := newTestRing(t, WithEntries(8))
	b := r.NewBatch()
	require.Equal(t, 8, b.Cap())
	for range b.Cap() {
		b.Nop()
	}
	require.NoError(t, b.Submit(), "a batch of Cap operations is accepted")
	for range b.Cap() + 1 {
		b.Nop()
	}
	assert.ErrorIs(t, b.Submit(), syscall.EINVAL, "one more is not")
}
