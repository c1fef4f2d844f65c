package rio_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/gorio/rio/riotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/sim"
	"github.com/gorio/rio/internal/uring"
)

// Fault-injection tests of the core over the simulated kernel. Each runs
// many seeds (thousands under RIO_SOAK=1); a failing seed is printed with
// the command that replays it. They check invariants: one result per
// operation, buffers held until their CQE, Close returning with nothing in
// flight and nothing leaked, chain semantics, backpressure, cancellation.

// Every operation gets exactly one result, the right one, whatever the
// faults: the kernel posts one CQE per SQE, the ring reaps each, and each
// result reaches the operation it belongs to.
func TestSimEveryOpOneResult(t *testing.T) {
	riotest.ForSeeds(t, 8, func(t *testing.T, seed uint64) {
		r, k := simRing(t, sim.Config{Seed: seed, Faults: allFaults()}, rio.WithEntries(4))
		content := make([]byte, 64<<10)
		for i := range content {
			content[i] = byte(i * 31 / 7)
		}
		src := tempFiles(t, 1)[0]
		_, err := src.Write(content)
		require.NoError(t, err)
		dst := tempFiles(t, 1)[0]
		pr, pw := pipePair(t)
		_, err = pw.Write(make([]byte, 1)) // POLLIN stays ready
		require.NoError(t, err)

		const goroutines, perG = 6, 40
		var wg sync.WaitGroup
		var results atomic.Int64
		errs := make(chan error, goroutines)
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(seed, uint64(g)))
				for i := 0; i < perG; i++ {
					if err := oneOp(r, rng, content, src, dst, pr, g*perG+i); err != nil {
						errs <- fmt.Errorf("goroutine %d op %d: %w", g, i, err)
						return
					}
					results.Add(1)
				}
			}(g)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			assert.NoError(t, err)
		}
		require.NoError(t, r.Close())
		st, rs := k.Stats(), r.Stats()
		assert.Equal(t, int64(goroutines*perG), results.Load())
		assert.Equal(t, st.SQEs, st.CQEs, "one CQE per SQE")
		assert.Equal(t, rs.Submitted, rs.Completed, "every CQE reaped")
		assert.Zero(t, rs.InFlight)
		assert.Zero(t, st.CQFull, "the ring let more operations in flight than the CQ holds")
	})
}

// oneOp runs one random operation and checks its result.
func oneOp(r *rio.Ring, rng *rand.Rand, content []byte, src, dst *os.File, pr *os.File, id int) error {
	retry := func(err error) bool { return errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN) }
	switch rng.IntN(6) {
	case 0:
		_, err := r.Nop().Wait()
		return err
	case 1:
		off := rng.IntN(len(content) - 4096)
		buf := make([]byte, 1+rng.IntN(4096))
		n, err := r.ReadAt(int(src.Fd()), buf, int64(off)).Wait()
		if retry(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if n < 1 || n > len(buf) || !bytes.Equal(buf[:n], content[off:off+n]) {
			return fmt.Errorf("ReadAt at %d: %d bytes, not the file's", off, n)
		}
	case 2:
		off := 1 + rng.IntN(len(content)-4096)
		a := make([]byte, rng.IntN(100))
		b := make([]byte, 1+rng.IntN(2000))
		n, err := r.ReadvAt(int(src.Fd()), [][]byte{a, b}, int64(off)).Wait()
		if retry(err) {
			return nil
		}
		if err != nil {
			return err
		}
		got := append(a, b...)[:n]
		if n < 1 || !bytes.Equal(got, content[off:off+n]) {
			return fmt.Errorf("ReadvAt at %d: %d bytes, not the file's", off, n)
		}
	case 3:
		// Each writer owns a 256-byte region.
		data := bytes.Repeat([]byte{byte(id)}, 256)
		n, err := r.WriteAt(int(dst.Fd()), data, int64(id)*256).Wait()
		if retry(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if n < 1 || n > len(data) {
			return fmt.Errorf("WriteAt: %d of %d bytes", n, len(data))
		}
		got := make([]byte, n)
		if _, err := dst.ReadAt(got, int64(id)*256); err != nil || !bytes.Equal(got, data[:n]) {
			return fmt.Errorf("WriteAt reported %d bytes that are not in the file (%v)", n, err)
		}
	case 4:
		_, err := r.Fdatasync(int(dst.Fd())).Wait()
		return err
	case 5:
		ev, err := r.Poll(int(pr.Fd()), unix.POLLIN).Wait()
		if err != nil {
			return err
		}
		if ev&unix.POLLIN == 0 {
			return fmt.Errorf("Poll: events %#x", ev)
		}
	}
	return nil
}

// addrPtr turns an address from an SQE back into a pointer.
func addrPtr(addr uint64) unsafe.Pointer {
	a := uintptr(addr)
	return *(*unsafe.Pointer)(unsafe.Pointer(&a))
}

func pipePair(t testing.TB) (*os.File, *os.File) {
	t.Helper()
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { pr.Close(); pw.Close() })
	return pr, pw
}

// No buffer is released before its CQE: buffers handed to operations that
// nobody waits for, and that the kernel executes late, are still alive when
// the kernel touches them, however often the GC runs meanwhile.
func TestSimBuffersHeldUntilCQE(t *testing.T) {
	riotest.ForSeeds(t, 6, func(t *testing.T, seed uint64) {
		var (
			mu      sync.Mutex
			tracked = map[uintptr]*atomic.Bool{} // buffer address -> freed
			early   []string
			touched atomic.Int64
		)
		check := func(addr uint64) {
			mu.Lock()
			defer mu.Unlock()
			if freed, ok := tracked[uintptr(addr)]; ok {
				touched.Add(1)
				if freed.Load() {
					early = append(early, fmt.Sprintf("%#x", addr))
				}
			}
		}
		cfg := sim.Config{Seed: seed, Faults: allFaults()}
		cfg.Faults.MaxDelay = 64
		cfg.BeforeExec = func(s uring.SQE) {
			switch s.Opcode {
			case uring.OpRead, uring.OpWrite:
				check(s.Addr)
			case uring.OpReadv, uring.OpWritev:
				for _, v := range unsafe.Slice((*unix.Iovec)(addrPtr(s.Addr)), s.Len) {
					check(uint64(uintptr(unsafe.Pointer(v.Base))))
				}
			}
		}
		r, _ := simRing(t, cfg, rio.WithEntries(8))
		f := tempFiles(t, 1)[0]
		_, err := f.Write(make([]byte, 1<<16))
		require.NoError(t, err)
		fd := int(f.Fd())
		rng := rand.New(rand.NewPCG(seed, 7))
		track := func(b []byte) {
			freed := new(atomic.Bool)
			mu.Lock()
			tracked[uintptr(unsafe.Pointer(&b[0]))] = freed
			mu.Unlock()
			runtime.AddCleanup(&b[0], func(f *atomic.Bool) { f.Store(true) }, freed)
		}
		for i := 0; i < 200; i++ {
			func() { // the buffers are unreachable from here on but for the ring
				b := make([]byte, 512+rng.IntN(4096))
				track(b)
				off := int64(rng.IntN(1 << 15))
				switch rng.IntN(3) {
				case 0:
					r.ReadAt(fd, b, off)
				case 1:
					r.WriteAt(fd, b, off)
				case 2:
					c := make([]byte, 100)
					track(c)
					r.ReadvAt(fd, [][]byte{b, c}, off)
				}
			}()
			if i%16 == 0 {
				runtime.GC()
			}
		}
		require.NoError(t, r.Close())
		mu.Lock()
		defer mu.Unlock()
		assert.Empty(t, early, "buffers collected before the kernel executed their operation")
		assert.Positive(t, touched.Load())
	})
}

// Close always returns, every operation then has its result, and nothing
// leaks, whatever is in flight: blocked reads and polls, long timeouts,
// delayed writes, chains, with cancellations racing running operations.
func TestSimCloseAlwaysReturns(t *testing.T) {
	riotest.ForSeeds(t, 10, func(t *testing.T, seed uint64) {
		cfg := sim.Config{Seed: seed, Faults: allFaults()}
		cfg.Faults.CancelRace = 0.5
		cfg.Faults.MaxDelay = 32
		r, _ := simRing(t, cfg, rio.WithEntries(8))
		pr, _ := pipePair(t)
		f := tempFiles(t, 1)[0]
		rng := rand.New(rand.NewPCG(seed, 3))
		var dones []func() (bool, error)
		add := func(c interface{ Done() bool }, wait func() error) {
			dones = append(dones, func() (bool, error) { return c.Done(), wait() })
		}
		var mu sync.Mutex
		submit := func(g, i int) {
			mu.Lock()
			defer mu.Unlock()
			switch rng.IntN(6) {
			case 0:
				c := r.Read(int(pr.Fd()), make([]byte, 8))
				add(c, func() error { _, err := c.Wait(); return err })
			case 1:
				c := r.Timeout(time.Hour)
				add(c, func() error { _, err := c.Wait(); return err })
			case 2:
				c := r.Poll(int(pr.Fd()), unix.POLLIN)
				add(c, func() error { _, err := c.Wait(); return err })
			case 3:
				c := r.WriteAt(int(f.Fd()), make([]byte, 100), int64(g*1000+i))
				add(c, func() error { _, err := c.Wait(); return err })
			case 4:
				b := r.NewBatch()
				c1 := b.Read(int(pr.Fd()), make([]byte, 8))
				b.Link()
				c2 := b.Nop()
				b.Submit()
				add(c1, func() error { _, err := c1.Wait(); return err })
				add(c2, func() error { _, err := c2.Wait(); return err })
			case 5:
				c := r.Nop()
				add(c, func() error { _, err := c.Wait(); return err })
			}
		}
		// Fill the ring (blocked reads and timeouts never complete by
		// themselves), then close while two goroutines keep submitting.
		for i := 0; i < 6; i++ {
			submit(0, i)
		}
		var wg sync.WaitGroup
		for g := 1; g <= 2; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; i < 20; i++ {
					submit(g, i)
				}
			}(g)
		}
		var cwg sync.WaitGroup
		for i := 0; i < 2; i++ {
			cwg.Add(1)
			go func() { defer cwg.Done(); assert.NoError(t, r.Close()) }()
		}
		cwg.Wait()
		wg.Wait()
		require.NoError(t, r.Close())
		assert.Zero(t, r.Stats().InFlight)
		for i, d := range dones {
			done, err := d()
			assert.True(t, done, "op %d not done after Close", i)
			assert.True(t, err == nil || errors.Is(err, rio.ErrClosed) || errors.Is(err, syscall.ECANCELED) ||
				errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN), "op %d: %v", i, err)
		}
	})
}

// Chains are atomic and follow the kernel's link semantics under
// concurrent submitters and faults: a failed soft link cancels the rest of
// its chain, a hard link does not, and a chain is never split by another
// goroutine's operation (which would let a member run despite its failed
// predecessor).
func TestSimChains(t *testing.T) {
	riotest.ForSeeds(t, 8, func(t *testing.T, seed uint64) {
		r, k := simRing(t, sim.Config{Seed: seed, Faults: allFaults()}, rio.WithEntries(16))
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(seed, uint64(g)))
				for i := 0; i < 25; i++ {
					b := r.NewBatch()
					n := 2 + rng.IntN(4)
					failAt := rng.IntN(n + 1) // n: nothing fails
					hard := make([]bool, n)
					waits := make([]func() error, n)
					for j := 0; j < n; j++ {
						if j == failAt {
							c := b.ReadAt(-1, make([]byte, 1), 0) // EBADF
							waits[j] = func() error { _, err := c.Wait(); return err }
						} else {
							c := b.Nop()
							waits[j] = func() error { _, err := c.Wait(); return err }
						}
						if j < n-1 {
							hard[j] = rng.IntN(3) == 0
							if hard[j] {
								b.HardLink()
							} else {
								b.Link()
							}
						}
					}
					if err := b.Submit(); !assert.NoError(t, err, "Submit") {
						return
					}
					broken := false
					for j, w := range waits {
						err := w()
						switch {
						case broken:
							assert.ErrorIs(t, err, syscall.ECANCELED, "chain %d/%d member %d after a broken link", g, i, j)
						case j == failAt:
							assert.True(t, errors.Is(err, syscall.EBADF) || errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN),
								"chain %d/%d member %d: %v, want EBADF", g, i, j, err)
						default:
							assert.NoError(t, err, "chain %d/%d member %d", g, i, j)
						}
						if err != nil && !hard[j] {
							broken = true
						}
					}
				}
			}(g)
		}
		wg.Wait()
		require.NoError(t, r.Close())
		assert.Positive(t, k.Stats().LinkCancels)
	})
}

// Backpressure: many goroutines through tiny rings, with delays, get every
// result; the ring never lets more operations in flight than the CQ holds.
func TestSimBackpressure(t *testing.T) {
	riotest.ForSeeds(t, 6, func(t *testing.T, seed uint64) {
		entries := uint32(1) << (seed % 3) // 1, 2, 4
		cfg := sim.Config{Seed: seed, Faults: allFaults()}
		cfg.Faults.MaxDelay = 16
		r, k := simRing(t, cfg, rio.WithEntries(entries))
		var wg sync.WaitGroup
		var ok atomic.Int64
		for g := 0; g < 32; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 30; i++ {
					if _, err := r.Nop().Wait(); !assert.NoError(t, err) {
						return
					}
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		assert.Equal(t, int64(32*30), ok.Load())
		st := k.Stats()
		assert.Zero(t, st.CQFull)
		assert.LessOrEqual(t, st.MaxInFlight, int(k.Params().CQEntries))
	})
}

// WaitContext: a cancelled wait returns ctx.Err at once, the operation is
// cancelled in the kernel or completes anyway (when the cancellation races
// it), and a later Wait reports which, truthfully: a write reported
// cancelled left no data, a write reported done left all it said.
func TestSimWaitContextCancel(t *testing.T) {
	riotest.ForSeeds(t, 8, func(t *testing.T, seed uint64) {
		cfg := sim.Config{Seed: seed, Faults: allFaults()}
		cfg.Faults.MaxDelay = 16
		cfg.Faults.CancelRace = 0.5
		r, _ := simRing(t, cfg, rio.WithEntries(8))
		f := tempFiles(t, 1)[0]
		fd := int(f.Fd())
		done, cancel := context.WithCancel(context.Background())
		cancel()

		pr, pw := pipePair(t)
		c := r.Read(int(pr.Fd()), make([]byte, 4))
		injected := func(err error) bool { return errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN) }
		_, err := c.WaitContext(done)
		if !errors.Is(err, context.Canceled) {
			// Only an injected error completes a read of an empty pipe
			// before the wait (or as the cancellation interrupts it).
			require.True(t, injected(err), "%v", err)
		} else {
			_, err = c.Wait()
			if !injected(err) {
				require.ErrorIs(t, err, syscall.ECANCELED)
			}
		}
		_, err = pw.Write([]byte("x"))
		require.NoError(t, err)

		type outcome struct {
			Off  int64
			N    int
			Errs string
		}
		var cs []*rio.Completion[int]
		for i := 0; i < 40; i++ {
			c := r.WriteAt(fd, bytes.Repeat([]byte{0xAA}, 100), int64(i)*200)
			if _, err := c.WaitContext(done); err != nil && !errors.Is(err, context.Canceled) {
				// Completed before the wait, with an injected error.
				require.True(t, errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN), "%v", err)
			}
			cs = append(cs, c)
		}
		var outs []outcome
		for i, c := range cs {
			n, err := c.Wait()
			outs = append(outs, outcome{Off: int64(i) * 200, N: n, Errs: fmt.Sprint(err)})
		}
		data, err := os.ReadFile(f.Name())
		require.NoError(t, err)
		for _, o := range outs {
			var got []byte
			if o.Off < int64(len(data)) {
				got = data[o.Off:min(o.Off+100, int64(len(data)))]
			}
			written := bytes.Count(got, []byte{0xAA})
			assert.Equal(t, o.N, written, "write at %d reported %d bytes (%s); bytes in the file", o.Off, o.N, o.Errs)
		}
	})
}

// Ring indices that start just below 2^32 wrap around within the test.
func TestSimIndexWrapAround(t *testing.T) {
	for _, start := range []uint32{1<<32 - 1, 1<<32 - 3, 1<<32 - 100, 1 << 31} {
		t.Run(fmt.Sprint(start), func(t *testing.T) {
			r, k := simRing(t, sim.Config{Seed: uint64(start), StartIndex: start, Faults: allFaults()}, rio.WithEntries(4))
			var wg sync.WaitGroup
			for g := 0; g < 4; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 100; i++ {
						if _, err := r.Nop().Wait(); !assert.NoError(t, err) {
							return
						}
					}
				}()
			}
			wg.Wait()
			require.NoError(t, r.Close())
			assert.GreaterOrEqual(t, k.Stats().CQEs, uint64(400))
			if start > 1<<32-1000 {
				assert.Less(t, *k.Rings().CQHead, start, "the CQ head wrapped around")
			}
		})
	}
}

// A seed replays: a program submitting from one goroutine gets the same
// faults and the same results for each of its operations every time, and,
// unless the scheduler stalls it for longer than the simulated kernel's
// quiet period, the same completion order (which is not asserted).
func TestSimDeterministic(t *testing.T) {
	riotest.ForSeeds(t, 4, func(t *testing.T, seed uint64) {
		src := tempFiles(t, 1)[0]
		_, err := src.Write(bytes.Repeat([]byte("0123456789abcdef"), 512))
		require.NoError(t, err)
		run := func() ([]sim.Completion, sim.Stats) {
			cfg := sim.Config{Seed: seed, Faults: allFaults(), Record: true}
			r, k := simRing(t, cfg, rio.WithEntries(8))
			dst := tempFiles(t, 1)[0]
			rng := rand.New(rand.NewPCG(seed, 9))
			var cs []*rio.Completion[int]
			var nops []*rio.Completion[struct{}]
			for i := 0; i < 100; i++ {
				// Results that do not depend on the order of completion:
				// reads of a file nobody writes, writes to their own
				// regions.
				switch rng.IntN(3) {
				case 0:
					cs = append(cs, r.WriteAt(int(dst.Fd()), make([]byte, 1+rng.IntN(512)), int64(i)*512))
				case 1:
					cs = append(cs, r.ReadAt(int(src.Fd()), make([]byte, 1+rng.IntN(512)), rng.Int64N(8192)))
				case 2:
					nops = append(nops, r.Nop())
				}
				if rng.IntN(4) == 0 {
					for _, c := range cs {
						c.Wait()
					}
					cs = cs[:0]
				}
			}
			// Close's cancellation rounds are paced by the wall clock:
			// complete everything before it.
			for _, c := range cs {
				c.Wait()
			}
			for _, c := range nops {
				c.Wait()
			}
			require.NoError(t, r.Close())
			var out []sim.Completion
			for _, c := range k.Completions() {
				if c.Opcode != uint8(uring.OpAsyncCancel) { // Close's
					out = append(out, c)
				}
			}
			sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
			st := k.Stats()
			return out, sim.Stats{ShortIO: st.ShortIO, OpErrors: st.OpErrors, Delayed: st.Delayed}
		}
		a, sa := run()
		b, sb := run()
		require.Equal(t, a, b, "two runs of seed %d differ", seed)
		assert.Equal(t, sa, sb)
	})
}
