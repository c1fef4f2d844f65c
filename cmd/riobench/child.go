package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorio/rio"
	"github.com/gorio/rio/file"
)

// A measurement runs in a child process: riobench re-executes itself as
//
//	riobench child '<spec as JSON>'
//
// and the child prints one line "RESULT <json []sample>".
// Separate processes keep one side's heap, threads and rings from
// disturbing the other's, and let each be pinned to its own CPUs: the
// parent starts a pinned child from a pinned thread (startOn), so the
// child never runs elsewhere and its GOMAXPROCS follows its CPUs.

// spec says what a child measures.
type spec struct {
	Role  string        `json:"role"` // nop, direct, hot, copy
	Impl  string        `json:"impl"`
	Dur   time.Duration `json:"dur"`
	File  string        `json:"file,omitempty"`
	Dst   string        `json:"dst,omitempty"`
	Depth int           `json:"depth,omitempty"` // in flight (goroutines or async operations)
	Batch int           `json:"batch,omitempty"`
}

// sample is one measured number.
type sample struct {
	Param string             `json:"param"`
	Value float64            `json:"value"`
	Unit  string             `json:"unit"`
	Extra map[string]float64 `json:"extra,omitempty"`
}

func childMain(arg string) {
	var s spec
	if err := json.Unmarshal([]byte(arg), &s); err != nil {
		fatalf("child: bad spec: %v", err)
	}
	var (
		res []sample
		err error
	)
	switch s.Role {
	case "nop":
		res, err = childNop(s)
	case "direct", "hot":
		res, err = childRandRead(s)
	case "copy":
		res, err = childCopy(s)
	default:
		err = fmt.Errorf("unknown role %q", s.Role)
	}
	if err != nil {
		fatalf("%s/%s: %v", s.Role, s.Impl, err)
	}
	if res != nil {
		b, _ := json.Marshal(res)
		fmt.Printf("RESULT %s\n", b)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "riobench: "+format+"\n", args...)
	os.Exit(1)
}

// stopAfter returns a flag that turns true after d.
func stopAfter(d time.Duration) *atomic.Bool {
	var stop atomic.Bool
	time.AfterFunc(d, func() { stop.Store(true) })
	return &stop
}

// childNop: NOP round trips on a rio Ring, one at a time (single) and in
// batches (queue Batch NOPs, one Submit, wait on all), as bench/c/nopbench
// does with liburing.
func childNop(s spec) ([]sample, error) {
	r, err := rio.New()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	batch := max(s.Batch, 1)
	single := func(d time.Duration) (int, time.Duration, error) {
		stop := stopAfter(d)
		start := time.Now()
		n := 0
		for !stop.Load() {
			for k := 0; k < 256; k++ {
				if _, err := r.Nop().Wait(); err != nil {
					return n, 0, err
				}
			}
			n += 256
		}
		return n, time.Since(start), nil
	}
	b := r.NewBatch()
	cs := make([]*rio.Completion[struct{}], batch)
	batched := func(d time.Duration) (int, time.Duration, error) {
		stop := stopAfter(d)
		start := time.Now()
		n := 0
		for !stop.Load() {
			for k := 0; k < 16; k++ {
				for j := range cs {
					cs[j] = b.Nop()
				}
				if err := b.Submit(); err != nil {
					return n, 0, err
				}
				for _, c := range cs {
					if _, err := c.Wait(); err != nil {
						return n, 0, err
					}
				}
				n += batch
			}
		}
		return n, time.Since(start), nil
	}
	// Warm up, as nopbench does.
	if _, _, err := batched(min(s.Dur/20, 100*time.Millisecond)); err != nil {
		return nil, err
	}
	var out []sample
	n, el, err := single(s.Dur)
	if err != nil {
		return nil, err
	}
	out = append(out, sample{Param: "mode=single", Value: float64(n) / el.Seconds(), Unit: "ops/s"})
	n, el, err = batched(s.Dur)
	if err != nil {
		return nil, err
	}
	out = append(out, sample{Param: fmt.Sprintf("mode=batch%d", batch), Value: float64(n) / el.Seconds(), Unit: "ops/s"})
	return out, nil
}

// childRandRead: 4 KiB reads at random aligned offsets of s.File.
//
//	impl "os":        *os.File ReadAt from s.Depth goroutines
//	impl "rio":       *file.File ReadAt from s.Depth goroutines
//	impl "rio-async": one goroutine keeping s.Depth reads in flight (Collector + Batch)
//	impl "rio-ring":  rio.Ring ReadAt+Wait from s.Depth goroutines (no file/)
//
// Role "direct" opens with O_DIRECT, "hot" reads through the page cache
// (the parent keeps the file resident).
func childRandRead(s spec) ([]sample, error) {
	const bs = 4096
	flag := os.O_RDONLY
	if s.Role == "direct" {
		flag |= syscall.O_DIRECT
	}
	fi, err := os.Stat(s.File)
	if err != nil {
		return nil, err
	}
	blocks := fi.Size() / bs
	depth := max(s.Depth, 1)

	var read func(buf []byte, off int64) (int, error)
	switch s.Impl {
	case "os":
		f, err := os.OpenFile(s.File, flag, 0)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		read = f.ReadAt
	case "rio", "rio-async":
		f, err := file.OpenFile(s.File, flag, 0)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if f.Ring() == nil {
			return nil, fmt.Errorf("file/ fell back to the os package (io_uring unavailable)")
		}
		if s.Impl == "rio-async" {
			return asyncReads(s, f, blocks, depth)
		}
		read = f.ReadAt
	case "rio-ring":
		f, err := os.OpenFile(s.File, flag, 0)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r, err := rio.New()
		if err != nil {
			return nil, err
		}
		defer r.Close()
		fd := int(f.Fd())
		read = func(buf []byte, off int64) (int, error) { return r.ReadAt(fd, buf, off).Wait() }
	default:
		return nil, fmt.Errorf("unknown impl %q", s.Impl)
	}

	var (
		total   atomic.Int64
		failed  atomic.Value
		wg      sync.WaitGroup
		maxThr  atomic.Int64
		started = make(chan struct{})
	)
	stop := stopAfter(s.Dur)
	go sampleThreads(stop, &maxThr)
	for w := 0; w < depth; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 7))
			buf, _ := file.AlignedBuffer(bs, 4096)
			n := int64(0)
			<-started
			for !stop.Load() {
				off := rng.Int64N(blocks) * bs
				if k, err := read(buf, off); err != nil || k != bs {
					failed.Store(fmt.Errorf("read at %d: %d, %v", off, k, err))
					break
				}
				n++
			}
			total.Add(n)
		}(uint64(w))
	}
	start := time.Now()
	close(started)
	wg.Wait()
	el := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		return nil, err
	}
	return []sample{{Value: float64(total.Load()) / el.Seconds(), Unit: "IOPS",
		Extra: map[string]float64{"threads": float64(max(maxThr.Load(), int64(threadCount())))}}}, nil
}

// asyncReads keeps depth reads of f in flight from one goroutine, as
// file/'s documentation recommends (and its BenchmarkDirectRandRead's
// rio-collect does): it waits for the first read to complete
// (Collector.Next), takes every other one already complete (TryNext), and
// starts their replacements together (Batch: one enter for up to its Cap).
func asyncReads(s spec, f *file.File, blocks int64, depth int) ([]sample, error) {
	const bs = 4096
	rng := rand.New(rand.NewPCG(1, 7))
	type slot struct {
		buf []byte
		op  *file.Op
	}
	var (
		q       file.Collector[*slot]
		batch   file.Batch
		started []*slot
	)
	queue := func(sl *slot) error {
		op, err := batch.ReadAt(f, sl.buf, rng.Int64N(blocks)*bs)
		if err != nil {
			return err
		}
		sl.op = op
		started = append(started, sl)
		return nil
	}
	submit := func() error {
		if len(started) == 0 {
			return nil
		}
		err := batch.Submit()
		for _, sl := range started {
			// Every Op of a submitted Batch reports its result, also
			// when Submit failed: collect them all either way.
			if aerr := q.Add(sl.op, sl); aerr != nil && err == nil {
				err = aerr
			}
		}
		started = started[:0]
		return err
	}
	var maxThr atomic.Int64
	stop := stopAfter(s.Dur)
	go sampleThreads(stop, &maxThr)
	start := time.Now()
	for range depth {
		buf, _ := file.AlignedBuffer(bs, 4096)
		if err := queue(&slot{buf: buf}); err != nil {
			return nil, err
		}
	}
	if err := submit(); err != nil {
		return nil, err
	}
	n := 0
	var failed error
	for {
		sl, ok := q.Next()
		if !ok {
			break // drained: every read has been waited on
		}
		for ; ok; sl, ok = q.TryNext() {
			if k, err := sl.op.Wait(); (err != nil || k != bs) && failed == nil {
				failed = fmt.Errorf("read: %d, %v", k, err)
			}
			n++
			if !stop.Load() && failed == nil {
				if err := queue(sl); err != nil {
					failed = err
				}
			}
		}
		if err := submit(); err != nil && failed == nil {
			failed = err
		}
	}
	el := time.Since(start)
	if failed != nil {
		return nil, failed
	}
	return []sample{{Value: float64(n) / el.Seconds(), Unit: "IOPS",
		Extra: map[string]float64{"threads": float64(max(maxThr.Load(), int64(threadCount())))}}}, nil
}

// sampleThreads records the peak OS thread count until stop.
func sampleThreads(stop *atomic.Bool, peak *atomic.Int64) {
	for !stop.Load() {
		if n := int64(threadCount()); n > peak.Load() {
			peak.Store(n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// childCopy: io.Copy of s.File to s.Dst, repeated until s.Dur has passed
// (at least once), with *file.File (rio) or *os.File (os) on both sides.
func childCopy(s spec) ([]sample, error) {
	type rwc interface {
		io.ReadWriteCloser
	}
	open := func(name string, flag int) (rwc, error) { return os.OpenFile(name, flag, 0o644) }
	if s.Impl == "rio" {
		open = func(name string, flag int) (rwc, error) {
			f, err := file.OpenFile(name, flag, 0o644)
			if err == nil && f.Ring() == nil {
				f.Close()
				return nil, fmt.Errorf("file/ fell back to the os package (io_uring unavailable)")
			}
			return f, err
		}
	}
	var bytes int64
	var el time.Duration
	for el == 0 || el < s.Dur {
		os.Remove(s.Dst)
		start := time.Now()
		src, err := open(s.File, os.O_RDONLY)
		if err != nil {
			return nil, err
		}
		dst, err := open(s.Dst, os.O_RDWR|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			src.Close()
			return nil, err
		}
		n, err := io.Copy(dst, src)
		src.Close()
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		el += time.Since(start)
		bytes += n
	}
	os.Remove(s.Dst)
	return []sample{{Value: float64(bytes) / el.Seconds() / (1 << 20), Unit: "MiB/s"}}, nil
}
