package rio

import (
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

// Benchmarks of the core. Compare with the C liburing figures from
// bench/c (see docs/benchmarks.md for the side-by-side commands).

// reapModes are the two ways of waking the reaper the benchmarks compare.
var reapModes = []struct {
	name string
	opts []Option
}{
	{"armed-on-demand", nil},
	{"always-armed", []Option{withAlwaysArmed()}},
}

// One NOP submitted and waited for at a time: the ring's round-trip cost.
func BenchmarkNop(b *testing.B) {
	for _, mode := range reapModes {
		b.Run(mode.name, func(b *testing.B) {
			r := newBenchRing(b, mode.opts...)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := r.Nop().Wait(); err != nil {
					b.Fatal(err)
				}
			}
			reportEnters(b, r)
		})
	}
}

// Batches of 32 NOPs from one goroutine: queue 32, submit with one enter,
// wait on all.
func BenchmarkNopBatch32(b *testing.B) {
	r := newBenchRing(b)
	nopBatches(b, r)
	reportEnters(b, r)
}

// The same, with the Batch recycled after each round: no allocation.
func BenchmarkNopBatch32Recycled(b *testing.B) {
	r := newBenchRing(b)
	nopBatchesRecycled(b, r, true)
	reportEnters(b, r)
}

// BenchmarkNopBatch32Floor is the kernel's share of the two above: the
// same ring (New's sizes and flags, its eventfd registered and disarmed),
// with rio's own machinery held off (mu and cqMu held throughout), 32 NOP
// SQEs written straight into the SQ and one raw io_uring_enter per 32, as
// C with liburing does. bench/nop.sh prints it beside C's batch: what
// BenchmarkNopBatch32Recycled costs above it is rio's tracking, not the
// system call.
func BenchmarkNopBatch32Floor(b *testing.B) {
	r := newBenchRing(b)
	if r.short == nil {
		b.Fatal("the real kernel has no short enter")
	}
	r.mu.Lock()
	r.cqMu.Lock()
	defer func() {
		r.cqMu.Unlock()
		r.mu.Unlock()
	}()
	rg := r.rings
	tail, head := r.sqTail, r.cqHead
	defer func() { r.sqTail, r.cqHead = tail, head }()
	b.ResetTimer()
	for i := 0; i < b.N; i += 32 {
		for j := range uint64(32) {
			rg.SQEs[tail&rg.SQMask] = uring.SQE{Opcode: uring.OpNop, UserData: j}
			tail++
		}
		uring.StoreRelease(rg.SQTail, tail)
		if _, errno := r.short.EnterShort(rg.SQEntries, 0, 0); errno != 0 {
			b.Fatal(errno)
		}
		t := uring.LoadAcquire(rg.CQTail)
		if t-head != 32 {
			b.Fatalf("%d completions for 32 NOPs", t-head)
		}
		for ; head != t; head++ {
			if res := rg.CQEs[head&rg.CQMask].Res; res != 0 {
				b.Fatalf("NOP completed with %d", res)
			}
		}
		uring.StoreRelease(rg.CQHead, head)
	}
}

// nopBatches runs b.N NOPs through r in batches of 32.
func nopBatches(b *testing.B, r *Ring) { nopBatchesRecycled(b, r, false) }

// nopBatchesRecycled is nopBatches, recycling the Batch after each round
// if recycle is set.
func nopBatchesRecycled(b *testing.B, r *Ring, recycle bool) {
	batch := r.NewBatch()
	cs := make([]*Completion[struct{}], 32)
	b.ResetTimer()
	for i := 0; i < b.N; i += 32 {
		for j := range cs {
			cs[j] = batch.Nop()
		}
		if err := batch.Submit(); err != nil {
			b.Fatal(err)
		}
		for _, c := range cs {
			if _, err := c.Wait(); err != nil {
				b.Fatal(err)
			}
		}
		if recycle {
			if err := batch.Recycle(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// One NOP round trip whose Completion is released after Wait.
func BenchmarkNopReleased(b *testing.B) {
	r := newBenchRing(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := r.Nop()
		if _, err := c.Wait(); err != nil {
			b.Fatal(err)
		}
		c.Release()
	}
	reportEnters(b, r)
}

// 32 NOPs one by one, each Completion released after its Wait.
func BenchmarkNopOneByOne32Released(b *testing.B) {
	r := newBenchRing(b)
	nopOneByOneReleased(b, r, true)
	reportEnters(b, r)
}

// 32 NOPs issued one by one with Ring.Nop, then waited for: without a
// Batch, consecutive submissions should still share few enters.
func BenchmarkNopOneByOne32(b *testing.B) {
	r := newBenchRing(b)
	nopOneByOne(b, r)
	reportEnters(b, r)
}

// nopOneByOne runs b.N NOPs through r, 32 issued with Ring.Nop, then
// waited for, at a time.
func nopOneByOne(b *testing.B, r *Ring) { nopOneByOneReleased(b, r, false) }

// nopOneByOneReleased is nopOneByOne, releasing each Completion after its
// Wait if release is set.
func nopOneByOneReleased(b *testing.B, r *Ring, release bool) {
	cs := make([]*Completion[struct{}], 32)
	b.ResetTimer()
	for i := 0; i < b.N; i += 32 {
		for j := range cs {
			cs[j] = r.Nop()
		}
		for _, c := range cs {
			if _, err := c.Wait(); err != nil {
				b.Fatal(err)
			}
			if release {
				c.Release()
			}
		}
	}
}

// NOPs from GOMAXPROCS*4 goroutines at once: how submissions combine.
func BenchmarkNopParallel(b *testing.B) {
	for _, mode := range reapModes {
		b.Run(mode.name, func(b *testing.B) {
			r := newBenchRing(b, mode.opts...)
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := r.Nop().Wait(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportEnters(b, r)
		})
	}
}

// Reads that park: a pipe ping-pong between a writer goroutine and a
// reader waiting on the ring, which exercises the reaper's wake-up path.
func BenchmarkPipeWakeup(b *testing.B) {
	for _, mode := range reapModes {
		b.Run(mode.name, func(b *testing.B) {
			r := newBenchRing(b, mode.opts...)
			pr, pw, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			defer pr.Close()
			defer pw.Close()
			ack := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range ack {
					if _, err := pw.Write([]byte{1}); err != nil {
						return
					}
				}
			}()
			buf := make([]byte, 1)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c := r.Read(int(pr.Fd()), buf)
				ack <- struct{}{}
				if _, err := c.Wait(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			close(ack)
			wg.Wait()
		})
	}
}

// 4 KiB reads from a page-cache-resident file, rio against pread.
func BenchmarkReadHot4K(b *testing.B) {
	const size = 64 << 20
	f := residentFile(b, size)
	fd := int(f.Fd())
	offsets := func(i int) int64 { return int64((uint64(i)*2654435761)%(size/4096)) * 4096 }
	b.Run("rio", func(b *testing.B) {
		r := newBenchRing(b)
		buf := make([]byte, 4096)
		b.SetBytes(4096)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := r.ReadAt(fd, buf, offsets(i)).Wait(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pread", func(b *testing.B) {
		buf := make([]byte, 4096)
		b.SetBytes(4096)
		for i := 0; i < b.N; i++ {
			if _, err := unix.Pread(fd, buf, offsets(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func newBenchRing(b *testing.B, opts ...Option) *Ring {
	b.Helper()
	r, err := New(opts...)
	requireRing(b, err)
	b.Cleanup(func() { r.Close() })
	return r
}

func reportEnters(b *testing.B, r *Ring) {
	if b.N > 0 {
		b.ReportMetric(float64(r.Stats().Enters)/float64(b.N), "enters/op")
	}
}

// residentFile creates a file of size bytes and keeps it in the page cache
// for the benchmark: mapped and locked, so that the kernel's reclaim of
// unmapped cache (after about a minute here) does not turn the benchmark
// into a disk benchmark.
func residentFile(b *testing.B, size int) *os.File {
	b.Helper()
	f, err := os.CreateTemp(b.TempDir(), "hot")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	for off := 0; off < size; off += len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		b.Fatal(err)
	}
	_ = unix.Mlock(m) // best effort: the mapping alone keeps it resident here
	b.Cleanup(func() { unix.Munmap(m) })
	return f
}

// pinChild keeps file resident in the page cache until killed, for
// benchmarks run by other programs (bench/hotread.sh runs fio on it).
func pinChild(file string) int {
	f, err := os.Open(file)
	if err != nil {
		println(err.Error())
		return 1
	}
	st, err := f.Stat()
	if err != nil {
		println(err.Error())
		return 1
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		println(err.Error())
		return 1
	}
	_ = unix.Mlock(m)
	println("pinned", len(m), "bytes")
	select {}
}

// 4 KiB hot reads from 64 goroutines sharing one ring, against pread from
// 64 goroutines.
func BenchmarkReadHot4KParallel(b *testing.B) {
	const size = 64 << 20
	f := residentFile(b, size)
	fd := int(f.Fd())
	offsets := func(i int) int64 { return int64((uint64(i)*2654435761)%(size/4096)) * 4096 }
	run := func(b *testing.B, read func(buf []byte, off int64) error) {
		b.SetBytes(4096)
		b.SetParallelism(32) // 64 goroutines with GOMAXPROCS=2
		var seq atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 4096)
			for pb.Next() {
				if err := read(buf, offsets(int(seq.Add(1)))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.Run("rio", func(b *testing.B) {
		r := newBenchRing(b)
		run(b, func(buf []byte, off int64) error { _, err := r.ReadAt(fd, buf, off).Wait(); return err })
		reportEnters(b, r)
	})
	b.Run("pread", func(b *testing.B) {
		run(b, func(buf []byte, off int64) error { _, err := unix.Pread(fd, buf, off); return err })
	})
}
