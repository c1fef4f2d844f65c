package rio

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// A server keeps a Stream per idle connection; its wait token is a
// semaphore count inside it, not a channel beside it (112 bytes a
// connection, docs/net.md, "RSS"): making a Stream allocates one object,
// the Stream.
func TestNewStreamOneAllocation(t *testing.T) {
	conv := func(res int32, flags uint32) int32 { return res }
	var s *Stream[int32]
	n := testing.AllocsPerRun(100, func() { s = newStream(conv) })
	assert.Equal(t, 1.0, n, "allocations per newStream")
	assert.NotNil(t, s)
}

// The token: a Wake before a Wait makes that Wait return at once, Wakes
// coalesce into one token, and a Wake wakes a Wait that is blocked.
func TestStreamWakeToken(t *testing.T) {
	s := newStream(func(res int32, flags uint32) int32 { return res })
	assert.False(t, s.tryTake(), "a new Stream has no token")
	s.Wake()
	s.Wake()
	assert.True(t, s.tryTake(), "a Wake leaves a token")
	assert.False(t, s.tryTake(), "two Wakes leave one token")

	done := make(chan struct{})
	go func() {
		s.await()
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("await returned without a token")
	case <-time.After(20 * time.Millisecond):
	}
	s.Wake()
	<-done
	assert.False(t, s.tryTake())

	// A zero Stream starts with no token and no waiter, and works the
	// same: Wakes coalesce, each token is taken once.
	var z Stream[int32]
	z.Wake()
	z.Wake()
	assert.True(t, z.tryTake())
	z.Wake()
	assert.True(t, z.tryTake())
}

// NextContext waits without a channel: a context that ends while it is
// blocked wakes it with ctx.Err().
func TestStreamNextContextCancelWakes(t *testing.T) {
	r := newTestRing(t)
	br, fds := recvSetup(t, r, 9, 4, 64)
	s := r.RecvMultishot(fds[0], br, 0)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err := s.NextContext(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	s.Cancel()
	within(t, "Next after Cancel", func() {
		for {
			if _, err := s.Next(); err != nil {
				break
			}
		}
	})
}
