package fdlife

import (
	"sync"
	"sync/atomic"
	"testing"
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
			if n := inUse.Load(); n != 0 {
				t.Errorf("destroyed with %d operations in flight", n)
			}
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
					if destroyed.Load() != 1 {
						t.Error("Close returned before destroy")
					}
				}
			}()
		}
		closers.Wait()
		wg.Wait()
		if firsts.Load() != 1 || destroyed.Load() != 1 {
			t.Fatalf("round %d: %d first Closes, %d destroys; want 1 and 1", round, firsts.Load(), destroyed.Load())
		}
		if l.Acquire() {
			t.Fatal("Acquire succeeded after Close")
		}
	}
}

// CloseIdle with an operation in flight defers destroy to its Release.
func TestCloseIdleDefers(t *testing.T) {
	var l Life
	destroyed := false
	if !l.Acquire() {
		t.Fatal("Acquire failed on a zero Life")
	}
	if !l.CloseIdle(func() { destroyed = true }) {
		t.Fatal("first CloseIdle reported false")
	}
	if destroyed {
		t.Fatal("destroyed under an operation in flight")
	}
	if !l.Closing() || l.Acquire() {
		t.Fatal("not closing after CloseIdle")
	}
	if l.CloseIdle(nil) || l.Close(nil) {
		t.Fatal("a second close reported true")
	}
	l.Release()
	if !destroyed {
		t.Fatal("the last Release did not destroy")
	}
	<-l.Done()

	var idle Life
	n := 0
	idle.CloseIdle(func() { n++ })
	if n != 1 {
		t.Fatalf("CloseIdle of an unused Life destroyed %d times, want 1", n)
	}
}
