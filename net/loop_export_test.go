package rionet

import (
	"errors"
	"fmt"

	"github.com/gorio/rio/internal/uring"
)

// SetLoopKernelForTest makes s's loops use the kernels newKernel makes (a
// simulated one) instead of io_uring_setup.
func SetLoopKernelForTest(s *LoopServer, newKernel func(entries uint32, p *uring.Params) (uring.Kernel, error)) {
	s.newKernel = newKernel
}

// LoopBugsForTest returns the invariant violations s's loops recorded
// (buffers in two places, chunks in use at exit, CQEs for no connection),
// or nil. Call it after Serve has returned.
func LoopBugsForTest(s *LoopServer) error {
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	var errs []error
	for _, l := range loops {
		if m := l.bugs.Load(); m != nil {
			errs = append(errs, errors.New(*m))
		}
	}
	return errors.Join(errs...)
}

// LoopModeForTest returns the setup flags s's first loop runs with.
func LoopModeForTest(s *LoopServer) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.loops) == 0 {
		return ""
	}
	return s.loops[0].mode
}

// LoopChunksInUseForTest returns the write-queue chunks in use on every
// loop of s.
func LoopChunksInUseForTest(s *LoopServer) int {
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	n := 0
	for _, l := range loops {
		l.mu.Lock()
		n += l.pool.inUse
		l.mu.Unlock()
	}
	return n
}

// ChunkSizeForTest is the size of a write-queue chunk.
const ChunkSizeForTest = chunkSize

// LoopStartedForTest returns a channel closed once s's loops have been
// set up, or failed to be (then Serve returns the error).
func LoopStartedForTest(s *LoopServer) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startedCh()
}

// LoopStateForTest describes the loops' connections, for a test that
// hangs. It reads loop-only state without synchronization: debugging only.
func LoopStateForTest(s *LoopServer) string {
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	out := ""
	for _, l := range loops {
		out += fmt.Sprintf("loop %d: inflight %d sleep %d pending %v pollOn %v conns %d\n", l.id, l.inflight, l.sleep.Load(), l.pending.Load(), l.pollOn, l.nconns)
		for _, c := range l.conns {
			if c == nil {
				continue
			}
			c.mu.Lock()
			out += fmt.Sprintf("  conn %d: recvOn %v sendOn %v ops %d wlen %d wq %d wOff %d wEnd %d waiters %d dirty %v closing %v paused %v/%v\n",
				c.slot, c.recvOn, c.sendOn, c.ops, c.wlen.Load(), len(c.wq), c.wOff, c.wEnd, c.waiters, c.dirty, c.closing, c.autoPaused, c.userPaused.Load())
			c.mu.Unlock()
		}
	}
	return out
}

// SetPoisonForTest makes freed write chunks and returned receive buffers
// be overwritten (see poisonMemory).
func SetPoisonForTest(v bool) (restore func()) {
	old := poisonMemory
	poisonMemory = v
	return func() { poisonMemory = old }
}
