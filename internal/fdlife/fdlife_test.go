package fdlife

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Destroy runs once, after every operation that acquired has released,
// however Close races the operations.
func TestDestroyOnceAfterLastRelease(t *testing.T) {
	for round := 0; round < 200; round++ {
		var (
			l         Life
			inUse     atomic.Int32
			destroyed atomic.Int32
			wg        sync.WaitGroup
		)
		destroy := func() {
			n := inUse.Load()
			assert.Zero(t, n, "destroyed with %d operations in flight", n)
			destroyed.Add(1)
		}
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for l.Acquire() {
					inUse.Add(1)
					inUse.Add(-1)
					l.Release()
				}
			}()
		}
		var closers sync.WaitGroup
		var firsts atomic.Int32
		for i := 0; i < 3; i++ {
			closers.Add(1)
			go func() {
				defer closers.Done()
				if l.Close(destroy) {
					firsts.Add(1)
					assert.EqualValues(t, 1, destroyed.Load(), "Close returned before destroy")
				}
			}()
		}
		closers.Wait()
		wg.Wait()
		require.Equal(t, [2]int32{1, 1}, [2]int32{firsts.Load(), destroyed.Load()},
			"round %d: first Closes and destroys", round)
		require.False(t, l.Acquire(), "Acquire succeeded after Close")
	}
}

// CloseIdle with an operation in flight defers destroy to its Release.
func TestCloseIdleDefers(t *testing.T) {
	var l Life
	destroyed := false
	require.True(t, l.Acquire(), "Acquire failed on a zero Life")
	require.True(t, l.CloseIdle(func() { destroyed = true }), "first CloseIdle reported false")
	require.False(t, destroyed, "destroyed under an operation in flight")
	require.True(t, l.Closing() && !l.Acquire(), "not closing after CloseIdle")
	require.False(t, l.CloseIdle(nil) || l.Close(nil), "a second close reported true")
	l.Release()
	require.True(t, destroyed, "the last Release did not destroy")
	<-l.Done()

	var idle Life
	n := 0
	idle.CloseIdle(func() { n++ })
	require.Equal(t, 1, n, "CloseIdle of an unused Life: destroys")
}
