package rio

import (
	"syscall"
	"testing"
	"unsafe"

	"github.com/gorio/rio/internal/uring"
)

// nopKernel completes every SQE at once, in Enter, as a NOP. Benchmarks
// over it measure rio's own cost per operation, without the system call.
type nopKernel struct {
	p  uring.Params
	rg *uring.Rings
}

func newNopKernel(entries uint32, p *uring.Params) (uring.Kernel, error) {
	p.SQEntries = entries
	if p.Flags&uring.SetupCQSize == 0 {
		p.CQEntries = 2 * entries
	}
	p.Features = uring.FeatNoDrop
	k := &nopKernel{p: *p}
	k.rg = uring.NewRings(&k.p)
	return k, nil
}

func (k *nopKernel) Rings() *uring.Rings   { return k.rg }
func (k *nopKernel) Params() *uring.Params { return &k.p }
func (k *nopKernel) Close() error          { return nil }

func (k *nopKernel) Enter(toSubmit, minComplete, flags uint32) (int, syscall.Errno) {
	rg := k.rg
	head, tail := uring.LoadAcquire(rg.SQHead), uring.LoadAcquire(rg.SQTail)
	n := 0
	ctail := uring.LoadAcquire(rg.CQTail)
	for ; head != tail && n < int(toSubmit); head++ {
		sqe := &rg.SQEs[rg.SQArray[head&rg.SQMask]]
		rg.CQEs[ctail&rg.CQMask] = uring.CQE{UserData: sqe.UserData}
		ctail++
		n++
	}
	uring.StoreRelease(rg.SQHead, head)
	uring.StoreRelease(rg.CQTail, ctail)
	return n, 0
}

func (k *nopKernel) Register(opcode uint32, arg unsafe.Pointer, nr uint32) (int, error) {
	switch opcode {
	case uring.RegisterProbe:
		p := (*uring.Probe)(arg)
		p.LastOp, p.OpsLen = uring.OpNop, 1
		p.Ops[0].Flags = uring.OpSupported
	}
	return 0, nil
}

func withNopKernel() Option {
	return func(c *config) error { c.newKernel = newNopKernel; return nil }
}

// Rio's cost per NOP with a kernel that costs nothing.
func BenchmarkOverheadNop(b *testing.B) {
	r := newBenchRing(b, withNopKernel())
	for i := 0; i < b.N; i++ {
		if _, err := r.Nop().Wait(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOverheadNopBatch32(b *testing.B) {
	nopBatches(b, newBenchRing(b, withNopKernel()))
}

func BenchmarkOverheadNopOneByOne32(b *testing.B) {
	nopOneByOne(b, newBenchRing(b, withNopKernel()))
}

func BenchmarkOverheadNopBatch32Recycled(b *testing.B) {
	nopBatchesRecycled(b, newBenchRing(b, withNopKernel()), true)
}
