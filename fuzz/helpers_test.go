package fuzz

import (
	"testing"
	"unsafe"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/hooks"
	"github.com/gorio/rio/internal/sim"
	"github.com/gorio/rio/internal/uring"
)

// newRing returns a ring over a simulated kernel configured by cfg, closed
// (successfully, or t fails) when t ends.
func newRing(t testing.TB, cfg sim.Config, opts ...rio.Option) (*rio.Ring, *sim.Kernel) {
	t.Helper()
	var k *sim.Kernel
	opt := hooks.WithKernel(func(entries uint32, p *uring.Params) (uring.Kernel, error) {
		sk, err := sim.New(cfg, entries, p)
		k = sk
		return sk, err
	}).(rio.Option)
	r, err := rio.New(append(opts, opt)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r, k
}

// faults is every fault class but NoBufs (no provided buffers here).
func faults() sim.Faults {
	return sim.Faults{
		MaxDelay: 8, ShortIO: 0.3, OpEINTR: 0.05, OpEAGAIN: 0.05,
		EnterEINTR: 0.05, EnterEAGAIN: 0.05, EnterEBUSY: 0.05, ShortSubmit: 0.2,
		Overflow: 0.1, CancelRace: 0.2,
	}
}

// ptr turns an address from an SQE back into a pointer.
func ptr(addr uint64) unsafe.Pointer {
	a := uintptr(addr)
	return *(*unsafe.Pointer)(unsafe.Pointer(&a))
}

// cstring reads the NUL-terminated string at addr.
func cstring(addr uint64) (string, bool) {
	if addr == 0 {
		return "", false
	}
	var b []byte
	for i := uint64(0); i < 1<<16; i++ {
		c := *(*byte)(ptr(addr + i))
		if c == 0 {
			return string(b), true
		}
		b = append(b, c)
	}
	return "", false
}

func addrOf[T any](p *T) uint64 { return uint64(uintptr(unsafe.Pointer(p))) }
