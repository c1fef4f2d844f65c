package rio

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Operations issued one by one, without a Batch, share io_uring_enter
// calls: they are published at once and entered together by the first
// wait (see deferLocked). Before deferred entering, each one was its own
// enter (64 enters here).
func TestSubmissionsCoalesce(t *testing.T) {
	r := newTestRing(t)
	const n = 64
	before := r.Stats().Enters
	cs := make([]*Completion[struct{}], n)
	for i := range cs {
		cs[i] = r.Nop()
	}
	for _, c := range cs {
		_, err := c.Wait()
		require.NoError(t, err)
	}
	enters := r.Stats().Enters - before
	require.LessOrEqual(t, enters, uint64(n/2), "enters for %d NOPs issued one by one", n)
}

// The same from many goroutines: each submits its operations, none waits
// until all have submitted, and the first wait enters what all of them
// published. Before deferred entering: one enter per operation.
func TestSubmissionsCoalesceAcrossGoroutines(t *testing.T) {
	r := newTestRing(t)
	const goroutines, per = 8, 8
	before := r.Stats().Enters
	cs := make([][]*Completion[struct{}], goroutines)
	var wg sync.WaitGroup
	for g := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				cs[g] = append(cs[g], r.Nop())
			}
		}()
	}
	wg.Wait()
	for _, gcs := range cs {
		for _, c := range gcs {
			_, err := c.Wait()
			require.NoError(t, err)
		}
	}
	enters := r.Stats().Enters - before
	require.LessOrEqual(t, enters, uint64(goroutines*per/2), "enters for %d NOPs from %d goroutines", goroutines*per, goroutines)
}

// An operation nobody waits for, on a ring nobody else uses, still
// reaches the kernel: the flush timer submits it. The reader below reads
// the pipe with a plain read(2), outside the ring.
func TestFireAndForgetWriteCompletes(t *testing.T) {
	r := newTestRing(t)
	pr, pw := pipe(t)
	msg := []byte("fire and forget")
	r.Write(int(pw.Fd()), msg) // not waited for
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(msg))
		_, err := io.ReadFull(pr, b)
		if err != nil {
			b = nil
		}
		got <- b
	}()
	select {
	case b := <-got:
		require.Equal(t, msg, b)
	case <-time.After(10 * time.Second):
		pw.Close() // ends the reader
		require.FailNow(t, "a write nobody waited for never reached the pipe")
	}
}

// The same from a goroutine that keeps running: it never parks, so only
// the timer (run by another P, or by preemption) can flush for it. A
// second write is published, and the first must complete without any
// wait on the ring.
func TestFireAndForgetWhileBusy(t *testing.T) {
	r := newTestRing(t)
	pr, pw := pipe(t)
	r.Write(int(pw.Fd()), []byte("x"))
	got := make(chan error, 1)
	go func() {
		b := make([]byte, 1)
		_, err := pr.Read(b)
		got <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-got:
			require.NoError(t, err)
			return
		default:
		}
		require.True(t, time.Now().Before(deadline), "a write nobody waited for never reached the pipe")
	}
}
