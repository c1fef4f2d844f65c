package rio_test

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/sim"
)

// Issue 11, the audit of waits: a submitter retrying an io_uring_enter
// that keeps failing with EAGAIN or EBUSY (the kernel short of memory, or
// of room for completions, for good) was the one wait in the core that
// only the kernel could end, and Close waits for it. Now, once Close has
// begun, such an error that has not cleared after about a second breaks
// the ring: the operation fails with the errno, and Close returns it.
// Before the fix, both hung.
func TestEnterRetryEndsOnClose(t *testing.T) {
	for _, c := range []struct {
		name   string
		faults sim.Faults
		errno  syscall.Errno
	}{
		{"EAGAIN", sim.Faults{EnterEAGAIN: 1}, syscall.EAGAIN},
		{"EBUSY", sim.Faults{EnterEBUSY: 1}, syscall.EBUSY},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkNoLeaks(t)
			var k *sim.Kernel
			r, err := rio.New(simKernel(sim.Config{Seed: 1, Faults: c.faults}, &k))
			require.NoError(t, err)
			res := make(chan error, 1)
			go func() { _, err := r.Nop().Wait(); res <- err }()
			for r.Stats().Enters < 20 { // the submitter is retrying
				time.Sleep(time.Millisecond)
			}
			closed := make(chan error, 1)
			go func() { closed <- r.Close() }()
			// Generous bounds: a hang fails, no timing is asserted.
			select {
			case err := <-closed:
				assert.ErrorIs(t, err, c.errno)
			case <-time.After(30 * time.Second):
				t.Fatal("Close still blocked after 30s")
			}
			select {
			case err := <-res:
				assert.True(t, errors.Is(err, c.errno) || errors.Is(err, rio.ErrClosed), "Nop: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("Nop still blocked after 30s")
			}
		})
	}
}
