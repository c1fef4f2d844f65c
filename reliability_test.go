package rio

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
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
