package rio

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBatchNops(t *testing.T) {
	r := newTestRing(t, WithEntries(32))
	b := r.NewBatch()
	for round := 0; round < 10; round++ {
		cs := make([]*Completion[struct{}], 32)
		for i := range cs {
			cs[i] = b.Nop()
		}
		assert.Equal(t, 32, b.Len())
		enters := r.Stats().Enters
		require.NoError(t, b.Submit())
		assert.Equal(t, 0, b.Len(), "Submit empties the batch")
		assert.Equal(t, enters+1, r.Stats().Enters, "one enter per batch")
		for _, c := range cs {
			_, err := c.Wait()
			require.NoError(t, err)
		}
	}
}

func TestBatchErrors(t *testing.T) {
	r := newTestRing(t, WithEntries(4))
	b := r.NewBatch()
	c := b.Nop()
	assert.ErrorIs(t, c.op.wait(nil), errNotSubmitted, "waiting before Submit")
	b.Link()
	assert.ErrorIs(t, b.Submit(), syscall.EINVAL, "dangling link")
	_, err := c.Wait()
	assert.ErrorIs(t, err, syscall.EINVAL)

	b.Link()
	assert.ErrorIs(t, b.Submit(), syscall.EINVAL, "Link with nothing queued")

	for i := 0; i < 5; i++ {
		b.Nop()
	}
	assert.ErrorIs(t, b.Submit(), syscall.EINVAL, "larger than the SQ")

	ok := b.Nop()
	bad := b.ReadAt(0, nil, -1)
	err = b.Submit()
	assert.ErrorIs(t, err, syscall.EINVAL)
	_, err = ok.Wait()
	assert.ErrorIs(t, err, syscall.EINVAL, "all or nothing")
	_, err = bad.Wait()
	assert.ErrorIs(t, err, syscall.EINVAL)
	assert.NoError(t, b.Submit(), "empty batch")
}

// write -> fsync -> read, linked: each starts after the previous succeeded.
func TestLinkedChain(t *testing.T) {
	r := newTestRing(t)
	f := tempFile(t, nil)
	fd := int(f.Fd())
	b := r.NewBatch()
	w := b.WriteAt(fd, []byte("linked"), 0)
	b.Link()
	s := b.Fsync(fd)
	b.Link()
	buf := make([]byte, 16)
	rd := b.ReadAt(fd, buf, 0)
	require.NoError(t, b.Submit())
	n, err := w.Wait()
	require.NoError(t, err)
	assert.Equal(t, 6, n)
	_, err = s.Wait()
	require.NoError(t, err)
	n, err = rd.Wait()
	require.NoError(t, err)
	assert.Equal(t, "linked", string(buf[:n]))

	// A failing head cancels the rest of the chain; a hard link does not.
	b.ReadAt(-1, make([]byte, 1), 0)
	b.Link()
	cancelled := b.Nop()
	b.ReadAt(-1, make([]byte, 1), 0)
	b.HardLink()
	runs := b.Nop()
	require.NoError(t, b.Submit())
	_, err = cancelled.Wait()
	assert.ErrorIs(t, err, syscall.ECANCELED)
	_, err = runs.Wait()
	assert.NoError(t, err)
}

func TestLinkTimeout(t *testing.T) {
	r := newTestRing(t)
	pr, _ := pipe(t)
	b := r.NewBatch()
	rd := b.Read(int(pr.Fd()), make([]byte, 8))
	lt := b.LinkTimeout(20 * time.Millisecond)
	require.NoError(t, b.Submit())
	_, err := rd.Wait()
	assert.ErrorIs(t, err, syscall.ECANCELED)
	fired, err := lt.Wait()
	require.NoError(t, err)
	assert.True(t, fired)

	// Completing in time removes the timeout.
	nop := b.Nop()
	lt = b.LinkTimeout(time.Hour)
	require.NoError(t, b.Submit())
	_, err = nop.Wait()
	require.NoError(t, err)
	fired, err = lt.Wait()
	require.NoError(t, err)
	assert.False(t, fired)
}

func TestDrain(t *testing.T) {
	r := newTestRing(t)
	pr, pw := pipe(t)
	first := r.Read(int(pr.Fd()), make([]byte, 1))
	b := r.NewBatch()
	d := b.Nop()
	b.Drain()
	require.NoError(t, b.Submit())
	time.Sleep(10 * time.Millisecond)
	assert.False(t, d.Done(), "drained op ran before an earlier one completed")
	_, err := pw.Write([]byte("x"))
	require.NoError(t, err)
	_, err = first.Wait()
	require.NoError(t, err)
	_, err = d.Wait()
	require.NoError(t, err)
}

// Chains submitted from many goroutines at once stay contiguous. Each chain
// is a failing read linked to a NOP, which must be cancelled; lone NOPs from
// other goroutines must succeed. If a lone NOP ever landed inside a chain,
// it would be the one cancelled, and the chain's own NOP would succeed.
func TestChainsAreAtomic(t *testing.T) {
	r := newTestRing(t, WithEntries(16))
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			b := r.NewBatch()
			for i := 0; i < 500; i++ {
				b.ReadAt(-1, nil, 0)
				b.Link()
				n1 := b.Nop()
				b.Link()
				n2 := b.Nop()
				if err := b.Submit(); err != nil {
					errs <- err
					return
				}
				for _, c := range []*Completion[struct{}]{n1, n2} {
					if _, err := c.Wait(); !errors.Is(err, syscall.ECANCELED) {
						errs <- errors.New("chain member not cancelled: chain was split")
						return
					}
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 1500; i++ {
				if _, err := r.Nop().Wait(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func TestBatchReuseAcrossFiles(t *testing.T) {
	r := newTestRing(t)
	dir := t.TempDir()
	b := r.NewBatch()
	var opens []*Completion[int]
	for i := 0; i < 8; i++ {
		opens = append(opens, b.Openat(-100, dir+"/f"+string(rune('a'+i)), os.O_CREATE|os.O_WRONLY, 0o644))
	}
	require.NoError(t, b.Submit())
	for _, c := range opens {
		fd, err := c.Wait()
		require.NoError(t, err)
		b.CloseFd(fd)
	}
	require.NoError(t, b.Submit())
}
