package rio

import (
	"fmt"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Rounds of reads through one recycled Batch: every round's results are
// its own, and from the second round on the Completions are the first
// round's memory.
func TestBatchRecycleReusesCompletions(t *testing.T) {
	r := newTestRing(t)
	data := make([]byte, 4096)
	for i := range data {
		data[i] = byte(i * 7)
	}
	f := tempFile(t, data)
	fd := int(f.Fd())
	b := r.NewBatch()
	var first []*Completion[int]
	for round := 0; round < 5; round++ {
		bufs := make([][]byte, 16)
		cs := make([]*Completion[int], 16)
		for i := range cs {
			bufs[i] = make([]byte, 16+round)
			cs[i] = b.ReadAt(fd, bufs[i], int64(i*64+round))
			b.Nop() // a second result type in the same Batch
		}
		require.NoError(t, b.Submit())
		for i, c := range cs {
			n, err := c.Wait()
			require.NoError(t, err)
			require.Equal(t, 16+round, n)
			off := i*64 + round
			require.Equal(t, data[off:off+n], bufs[i], "round %d read %d", round, i)
		}
		if round == 0 {
			first = cs
		} else {
			for i := range cs {
				assert.Same(t, first[i], cs[i], "round %d reuses read %d's Completion", round, i)
			}
		}
		require.NoError(t, b.Recycle())
	}
}

// Recycle refuses while an operation is in flight or queued and not
// submitted, and recycles nothing then: the pending Completion stays
// valid and completes with its own result.
func TestBatchRecycleRefusesUnfinished(t *testing.T) {
	r := newTestRing(t)
	pr, pw := pipe(t)
	b := r.NewBatch()
	buf := make([]byte, 8)
	read := b.Read(int(pr.Fd()), buf)
	nop := b.Nop()
	require.NoError(t, b.Submit())
	_, err := nop.Wait()
	require.NoError(t, err)

	err = b.Recycle()
	require.ErrorIs(t, err, syscall.EBUSY, "a read is in flight")
	assert.False(t, read.Done())

	_, err = pw.Write([]byte("hello"))
	require.NoError(t, err)
	n, err := read.Wait()
	require.NoError(t, err)
	assert.Equal(t, "hello", string(buf[:n]))
	_, err = nop.Wait()
	require.NoError(t, err, "the refused Recycle released nothing")

	queued := b.Nop()
	require.ErrorIs(t, b.Recycle(), syscall.EBUSY, "an operation is queued and not submitted")
	require.NoError(t, b.Submit())
	_, err = queued.Wait()
	require.NoError(t, err)
	require.NoError(t, b.Recycle())
}

// Misuse: a Completion used after Recycle. Until the Batch reuses it, Wait
// reports the misuse (EINVAL) and Done is true; once reused, the stale
// pointer is the new operation's Completion, as documented.
func TestRecycledCompletionMisuse(t *testing.T) {
	r := newTestRing(t)
	b := r.NewBatch()
	stale := b.Nop()
	require.NoError(t, b.Submit())
	_, err := stale.Wait()
	require.NoError(t, err)
	require.NoError(t, b.Recycle())

	_, err = stale.Wait()
	require.ErrorIs(t, err, errReleased)
	require.ErrorIs(t, err, syscall.EINVAL)
	assert.True(t, stale.Done(), "Done does not spin on a released Completion")
	stale.Cancel() // does nothing
	var q Collector[int]
	require.ErrorIs(t, q.Add(stale, 1), errReleased)

	fresh := b.Nop()
	require.Same(t, stale, fresh, "the Batch reuses the memory")
	_, err = stale.Wait()
	require.ErrorIs(t, err, errNotSubmitted, "the stale pointer names the new operation")
	require.NoError(t, b.Submit())
	_, err = fresh.Wait()
	require.NoError(t, err)
}

// Release hands a Ring method's Completion back: a stale Wait reports it
// until it is reused; Release before completion, a second Release and
// Release of a Batch's Completion do nothing.
func TestCompletionRelease(t *testing.T) {
	r := newTestRing(t)
	pr, pw := pipe(t)
	buf := make([]byte, 8)
	read := r.Read(int(pr.Fd()), buf)
	read.Release() // in flight: nothing happens
	_, err := pw.Write([]byte("abc"))
	require.NoError(t, err)
	n, err := read.Wait()
	require.NoError(t, err)
	assert.Equal(t, "abc", string(buf[:n]))

	read.Release()
	read.Release() // a second time: nothing happens
	_, err = read.Wait()
	require.ErrorIs(t, err, errReleased)
	assert.True(t, read.Done())

	// The next operation of the Ring reuses it: the stale pointer then is
	// the new operation's.
	next := r.Read(int(pr.Fd()), buf)
	require.Same(t, read, next, "the Ring reuses the released Completion")
	_, err = pw.Write([]byte("x"))
	require.NoError(t, err)
	n, err = read.Wait()
	require.NoError(t, err, "the stale pointer names the new operation")
	require.Equal(t, 1, n)
	other := r.Nop() // nothing released: a new one
	require.NotSame(t, &read.op, &other.op)
	_, err = other.Wait()
	require.NoError(t, err)

	b := r.NewBatch()
	c := b.Nop()
	require.NoError(t, b.Submit())
	_, err = c.Wait()
	require.NoError(t, err)
	c.Release() // a Batch's: Recycle's business
	_, err = c.Wait()
	require.NoError(t, err)

	var none *Completion[int]
	none.Release() // does not panic
}

// Many goroutines reuse Completions at once, with reads whose data tell
// the operations apart, while the reaper completes them: under the race
// detector this checks that nothing touches an operation after it
// settled, and no result reaches another operation.
func TestReuseConcurrent(t *testing.T) {
	r := newTestRing(t)
	const workers, rounds = 4, 200
	data := make([]byte, 1<<16)
	for i := range data {
		data[i] = byte(i ^ i>>8)
	}
	f := tempFile(t, data)
	fd := int(f.Fd())
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for w := 0; w < workers; w++ {
		wg.Add(2)
		go func(w int) { // Ring methods with Release
			defer wg.Done()
			buf := make([]byte, 32)
			for i := 0; i < rounds; i++ {
				off := (w*rounds + i) * 16 % (len(data) - len(buf))
				c := r.ReadAt(fd, buf, int64(off))
				n, err := c.Wait()
				if err != nil || n != len(buf) || string(buf) != string(data[off:off+n]) {
					errs <- fmt.Errorf("release worker %d round %d: %d, %v, wrong data", w, i, n, err)
					return
				}
				c.Release()
			}
		}(w)
		go func(w int) { // a recycled Batch, polled with Done
			defer wg.Done()
			b := r.NewBatch()
			bufs := make([][]byte, 8)
			cs := make([]*Completion[int], len(bufs))
			for i := 0; i < rounds/4; i++ {
				for j := range cs {
					bufs[j] = make([]byte, 24)
					cs[j] = b.ReadAt(fd, bufs[j], int64(w*1000+i*8+j))
				}
				if err := b.Submit(); err != nil {
					errs <- err
					return
				}
				for j, c := range cs {
					for !c.Done() {
					}
					n, err := c.Wait()
					off := w*1000 + i*8 + j
					if err != nil || n != 24 || string(bufs[j]) != string(data[off:off+n]) {
						errs <- fmt.Errorf("batch worker %d round %d op %d: %d, %v, wrong data", w, i, j, n, err)
						return
					}
				}
				if err := b.Recycle(); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
