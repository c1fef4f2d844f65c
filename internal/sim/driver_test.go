package sim

import (
	"bytes"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/gorio/rio/internal/uring"
)

// A minimal single-goroutine io_uring driver over the simulated kernel, with
// deliberately broken variants. It shows that the fault classes that
// concern the layer driving the rings (Enter errors, short submissions, CQ
// overflow, ENOBUFS) catch drivers that ignore them, and it tests the
// simulated kernel's protocol without package rio.

type driver struct {
	t      *testing.T
	k      *Kernel
	rg     *uring.Rings
	tail   uint32 // our SQ tail
	head   uint32 // our CQ head
	broken string
	cqes   []uring.CQE
	ud     uint64
}

const (
	brokenEnter    = "ignores enter errors"
	brokenShort    = "ignores short submissions"
	brokenOverflow = "ignores the overflow flag"
	brokenNoBufs   = "takes ENOBUFS for end of stream"
)

func newDriver(t *testing.T, cfg Config, entries uint32, broken string) *driver {
	p := uring.Params{Flags: uring.SetupCQSize | uring.SetupClamp, CQEntries: 4 * entries}
	k, err := New(cfg, entries, &p)
	require.NoError(t, err)
	d := &driver{t: t, k: k, rg: k.Rings(), broken: broken}
	d.tail, d.head = *d.rg.SQTail, *d.rg.CQHead
	t.Cleanup(func() {
		err := k.Close()
		if broken == "" {
			assert.NoError(t, err)
		}
	})
	return d
}

// push queues SQEs and submits them.
func (d *driver) push(sqes ...uring.SQE) {
	for _, s := range sqes {
		for d.tail-atomic.LoadUint32(d.rg.SQHead) >= d.rg.SQEntries {
			if d.broken != "" {
				return // the SQ is clogged by what it failed to submit
			}
			d.enter(0)
		}
		d.ud++
		s.UserData = d.ud
		d.rg.SQEs[d.tail&d.rg.SQMask] = s
		d.tail++
	}
	atomic.StoreUint32(d.rg.SQTail, d.tail)
	d.enter(uint32(len(sqes)))
}

// enter submits: the correct driver everything published, retrying errors
// and short submissions; the broken ones just what they pushed, once.
func (d *driver) enter(pushed uint32) {
	for {
		n := d.tail - atomic.LoadUint32(d.rg.SQHead)
		if d.broken == brokenEnter || d.broken == brokenShort {
			n = pushed
		}
		_, errno := d.k.Enter(n, 0, 0)
		if errno != 0 {
			if d.broken == brokenEnter {
				return
			}
			continue
		}
		if d.broken == brokenShort || atomic.LoadUint32(d.rg.SQHead) == d.tail {
			return
		}
	}
}

// reap collects the CQEs posted so far.
func (d *driver) reap() {
	for {
		tail := atomic.LoadUint32(d.rg.CQTail)
		for ; d.head != tail; d.head++ {
			d.cqes = append(d.cqes, d.rg.CQEs[d.head&d.rg.CQMask])
		}
		atomic.StoreUint32(d.rg.CQHead, d.head)
		if d.broken == brokenOverflow || atomic.LoadUint32(d.rg.SQFlags)&uring.SQCQOverflow == 0 {
			return
		}
		d.k.Enter(0, 0, uring.EnterGetEvents)
	}
}

// nops submits n Nops in small batches and returns how many completed.
func nops(t *testing.T, f Faults, seed uint64, broken string) int {
	d := newDriver(t, Config{Seed: seed, Faults: f}, 8, broken)
	for i := 0; i < 200; i += 4 {
		d.push(uring.SQE{Opcode: uring.OpNop}, uring.SQE{Opcode: uring.OpNop}, uring.SQE{Opcode: uring.OpNop}, uring.SQE{Opcode: uring.OpNop})
		d.reap()
	}
	return len(d.cqes)
}

func TestDriverFaultClassesCatchBrokenDrivers(t *testing.T) {
	for _, c := range []struct {
		broken string
		faults Faults
	}{
		{brokenEnter, Faults{EnterEINTR: 0.1}},
		{brokenEnter, Faults{EnterEAGAIN: 0.1}},
		{brokenEnter, Faults{EnterEBUSY: 0.1}},
		{brokenShort, Faults{ShortSubmit: 0.3}},
		{brokenOverflow, Faults{Overflow: 0.1}},
	} {
		t.Run(fmt.Sprintf("%s/%+v", c.broken, c.faults), func(t *testing.T) {
			for seed := uint64(1); seed <= 3; seed++ {
				assert.Equal(t, 200, nops(t, c.faults, seed, ""), "correct driver, seed %d", seed)
				assert.Less(t, nops(t, c.faults, seed, c.broken), 200, "broken driver, seed %d", seed)
				assert.Equal(t, 200, nops(t, Faults{}, seed, c.broken), "broken driver without the fault, seed %d", seed)
			}
		})
	}
}

// recvAll receives a stream through provided buffers, replenishing each
// buffer once its data is copied out.
func recvAll(t *testing.T, f Faults, seed uint64, broken string) []byte {
	d := newDriver(t, Config{Seed: seed, Faults: f}, 8, broken)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	sent := bytes.Repeat([]byte("abcdefghijklmnopq"), 36)
	_, err = unix.Write(fds[1], sent)
	require.NoError(t, err)
	require.NoError(t, unix.Shutdown(fds[1], unix.SHUT_WR))

	const nbuf, size = 4, 16
	mem := make([]byte, nbuf*size)
	var pin runtime.Pinner
	pin.Pin(&mem[0])
	defer pin.Unpin()
	base := uint64(uintptr(unsafe.Pointer(&mem[0])))
	provide := func(bid, n int) uring.SQE {
		return uring.SQE{Opcode: uring.OpProvideBuffers, Fd: int32(n), Addr: base + uint64(bid*size), Len: size, Off: uint64(bid), BufIndex: 1}
	}
	d.push(provide(0, nbuf))
	var got []byte
	for i := 0; i < 1000; i++ {
		d.push(uring.SQE{Opcode: uring.OpRecv, Fd: int32(fds[0]), Flags: uring.SQEBufferSelect, BufIndex: 1})
		d.reap()
		c := d.cqes[len(d.cqes)-1]
		d.cqes = d.cqes[:0]
		switch {
		case c.Res == -int32(syscall.ENOBUFS):
			if broken == brokenNoBufs {
				return got
			}
			continue // the buffers come back below; try again
		case c.Res < 0:
			require.Failf(t, "recv failed", "%v", syscall.Errno(-c.Res))
		case c.Res == 0:
			return got
		}
		require.NotZero(t, c.Flags&uring.CQEFBuffer)
		bid := int(c.Flags >> uring.CQEBufferShift)
		got = append(got, mem[bid*size:bid*size+int(c.Res)]...)
		d.push(provide(bid, 1))
	}
	require.Fail(t, "no end of stream")
	return nil
}

func TestDriverNoBufsCatchesBrokenReceiver(t *testing.T) {
	sent := bytes.Repeat([]byte("abcdefghijklmnopq"), 36)
	f := Faults{NoBufs: 0.3, ShortIO: 0.3}
	for seed := uint64(1); seed <= 3; seed++ {
		assert.Equal(t, sent, recvAll(t, f, seed, ""), "correct receiver, seed %d", seed)
		assert.NotEqual(t, sent, recvAll(t, f, seed, brokenNoBufs), "broken receiver, seed %d", seed)
		assert.Equal(t, sent, recvAll(t, Faults{ShortIO: 0.3}, seed, brokenNoBufs), "broken receiver without the fault, seed %d", seed)
	}
}

// Kernel semantics the rings' users rely on.

func TestDriverLinksAndDrain(t *testing.T) {
	d := newDriver(t, Config{Seed: 1}, 8, "")
	bad := uring.SQE{Opcode: uring.OpRead, Fd: -1, Flags: uring.SQEIOLink}
	d.push(bad, uring.SQE{Opcode: uring.OpNop, Flags: uring.SQEIOHardlink}, uring.SQE{Opcode: uring.OpNop})
	d.reap()
	require.Len(t, d.cqes, 3)
	assert.Equal(t, -int32(syscall.EBADF), d.cqes[0].Res)
	assert.Equal(t, -int32(syscall.ECANCELED), d.cqes[1].Res)
	assert.Equal(t, -int32(syscall.ECANCELED), d.cqes[2].Res, "the whole rest of a broken chain is cancelled")

	d.cqes = nil
	hard := bad
	hard.Flags = uring.SQEIOHardlink
	d.push(hard, uring.SQE{Opcode: uring.OpNop})
	d.reap()
	require.Len(t, d.cqes, 2)
	assert.Equal(t, int32(0), d.cqes[1].Res, "a hard link survives a failure")

	// A drained op waits for a blocked read; what follows waits for it.
	d.cqes = nil
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	buf := make([]byte, 1)
	d.push(uring.SQE{Opcode: uring.OpRead, Fd: int32(p[0]), Addr: uint64(uintptr(unsafe.Pointer(&buf[0]))), Len: 1, Off: ^uint64(0)})
	d.push(uring.SQE{Opcode: uring.OpNop, Flags: uring.SQEIODrain}, uring.SQE{Opcode: uring.OpNop})
	d.reap()
	assert.Empty(t, d.cqes)
	unix.Write(p[1], []byte("x"))
	for len(d.cqes) < 3 {
		d.k.Enter(0, 1, uring.EnterGetEvents)
		d.reap()
	}
	assert.Equal(t, []uint64{d.ud - 2, d.ud - 1, d.ud}, []uint64{d.cqes[0].UserData, d.cqes[1].UserData, d.cqes[2].UserData})
	runtime.KeepAlive(buf)
}

func TestDriverViolations(t *testing.T) {
	p := uring.Params{}
	k, err := New(Config{Seed: 1, Faults: Faults{MaxDelay: 100}}, 4, &p)
	require.NoError(t, err)
	rg := k.Rings()
	rg.SQEs[0] = uring.SQE{Opcode: uring.OpNop, UserData: 7}
	rg.SQEs[1] = uring.SQE{Opcode: uring.OpNop, UserData: 7}
	atomic.StoreUint32(rg.SQTail, 2)
	k.Enter(2, 0, 0)
	err = k.Close()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "user_data 0x7 reused")
}
