package rionet

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/testutil"
	"github.com/gorio/rio/internal/uring"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// failingProbe is a real kernel whose io_uring_register fails with errno.
type failingProbe struct {
	uring.Kernel
	errno syscall.Errno
}

func (k failingProbe) Register(opcode uint32, arg unsafe.Pointer, nr uint32) (int, error) {
	if opcode == uring.RegisterProbe {
		return 0, os.NewSyscallError("io_uring_register", k.errno)
	}
	return k.Kernel.Register(opcode, arg, nr)
}

// TestOpenLoopRingProbeErrors checks that a probe that fails for a reason
// other than an old kernel is reported as that error, not as a missing
// feature: a SINGLE_ISSUER ring probed from another thread (EEXIST) once
// made LoopSupported say multishot receive needs Linux 6.0 on Linux 6.18.
func TestOpenLoopRingProbeErrors(t *testing.T) {
	testutil.RequireRing(t, LoopSupported())
	for _, tc := range []struct {
		errno       syscall.Errno
		unsupported bool
	}{
		{syscall.EEXIST, false},
		{syscall.ENOMEM, false},
		{syscall.EINVAL, true}, // no IORING_REGISTER_PROBE (before 5.6)
	} {
		t.Run(tc.errno.Error(), func(t *testing.T) {
			k, _, err := openLoopRing(func(entries uint32, p *uring.Params) (uring.Kernel, error) {
				k, err := uring.Open(entries, p)
				if err != nil {
					return nil, err
				}
				return failingProbe{k, tc.errno}, nil
			})
			require.Error(t, err)
			assert.Nil(t, k)
			assert.ErrorIs(t, err, tc.errno)
			assert.Equal(t, tc.unsupported, errors.Is(err, rio.ErrNotSupported), "%v", err)
		})
	}
}

// TestLoopSupportedFromManyGoroutines probes from goroutines that the
// scheduler is free to move between threads, beside others that keep
// every P busy: every probe must succeed (the ring is SINGLE_ISSUER, so
// the goroutine has to stay on one thread from setup to probe).
func TestLoopSupportedFromManyGoroutines(t *testing.T) {
	testutil.RequireRing(t, LoopSupported())
	stop := make(chan struct{})
	var busy sync.WaitGroup
	for i := 0; i < 4; i++ {
		busy.Add(1)
		go func() {
			defer busy.Done()
			for {
				select {
				case <-stop:
					return
				default:
					syscall.Getpid()
				}
			}
		}()
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				if err := LoopSupported(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	busy.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
}
