package sema

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestAcquireWaitsForRelease(t *testing.T) {
	var s uint32
	Release(&s)
	Acquire(&s) // a count of one: no wait
	done := make(chan struct{})
	go func() {
		Acquire(&s)
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("Acquire returned with a count of zero")
	case <-time.After(20 * time.Millisecond):
	}
	Release(&s)
	<-done
	assert.Equal(t, uint32(0), s)
}
