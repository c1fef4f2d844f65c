package file

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The benchmarks compare *File with *os.File side by side; see
// docs/file.md for how to run them and the results. Their data files are
// created on first use in a temporary directory (RIO_BENCH_DIR to choose
// another, on the disk to measure) and removed when the test binary exits.

const benchFileSize = 1 << 30

var bench struct {
	mu    sync.Mutex
	dir   string
	files map[string]string
	pins  [][]byte // mlocked mappings keeping hot files resident
}

func cleanupBenchFiles() {
	bench.mu.Lock()
	defer bench.mu.Unlock()
	for _, m := range bench.pins {
		unix.Munlock(m)
		unix.Munmap(m)
	}
	bench.pins = nil
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
		bench.dir = ""
	}
}

// benchData returns the path of a benchmark data file of size bytes of
// random data, creating it on first use.
func benchData(b *testing.B, key string, size int64) string {
	b.Helper()
	bench.mu.Lock()
	defer bench.mu.Unlock()
	if name, ok := bench.files[key]; ok {
		return name
	}
	if bench.dir == "" {
		dir, err := os.MkdirTemp(os.Getenv("RIO_BENCH_DIR"), "rio-file-bench-")
		if err != nil {
			b.Fatal(err)
		}
		bench.dir = dir
		bench.files = map[string]string{}
	}
	name := filepath.Join(bench.dir, key)
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 8<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for off := int64(0); off < size; off += int64(len(buf)) {
		for i := 0; i < len(buf); i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8; j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := f.Write(buf[:min(int64(len(buf)), size-off)]); err != nil {
			b.Fatal(err)
		}
	}
	// Written back and dropped from the page cache: O_DIRECT reads of
	// dirty or cached ranges take slower paths (io_uring punts them to its
	// workers), which would not measure the disk.
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	bench.files[key] = name
	return name
}

// pinResident maps the file and locks it in memory, so that the kernel
// keeps its page cache (this machine's kernel evicts unmapped page cache
// after about a minute). The mapping lasts until the test binary exits.
func pinResident(b *testing.B, name string) {
	b.Helper()
	bench.mu.Lock()
	defer bench.mu.Unlock()
	key := "pinned:" + name
	if _, ok := bench.files[key]; ok {
		return
	}
	f, err := os.Open(name)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		b.Fatal(err)
	}
	if err := unix.Mlock(m); err != nil {
		b.Logf("mlock: %v (the mapping alone still protects the page cache)", err)
	}
	bench.pins = append(bench.pins, m)
	bench.files[key] = name
}

// threadSampler records the largest number of OS threads of the process
// while a benchmark runs.
type threadSampler struct {
	max  atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func countThreads() int64 {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return -1
	}
	return int64(len(ents))
}

func startThreadSampler() *threadSampler {
	s := &threadSampler{stop: make(chan struct{}), done: make(chan struct{})}
	s.max.Store(countThreads())
	go func() {
		defer close(s.done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if n := countThreads(); n > s.max.Load() {
					s.max.Store(n)
				}
			}
		}
	}()
	return s
}

func (s *threadSampler) finish() int64 {
	close(s.stop)
	<-s.done
	if n := countThreads(); n > s.max.Load() {
		s.max.Store(n)
	}
	return s.max.Load()
}

// reportIOPS reports operations per second and the peak thread count.
func reportIOPS(b *testing.B, start time.Time, ts *threadSampler) {
	el := time.Since(start)
	b.ReportMetric(float64(b.N)/el.Seconds(), "IOPS")
	b.ReportMetric(float64(ts.finish()), "threads")
}

// readerAt is a ReadAt of *File or *os.File.
type readerAt func(p []byte, off int64) (int, error)

// randReads runs b.N 4 KiB reads at random aligned offsets of a file of
// size bytes, from workers goroutines, each with an aligned buffer.
func randReads(b *testing.B, workers int, size int64, read readerAt) {
	const bs = 4096
	blocks := size / bs
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	ts := startThreadSampler()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 7))
			buf, _ := AlignedBuffer(bs, 4096)
			for next.Add(1) <= int64(b.N) {
				off := rng.Int64N(blocks) * bs
				if n, err := read(buf, off); err != nil || n != bs {
					failed.Store(fmt.Errorf("read at %d: %d, %v", off, n, err))
					return
				}
			}
		}(uint64(w))
	}
	wg.Wait()
	b.StopTimer()
	reportIOPS(b, start, ts)
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
}

// asyncReads keeps depth reads in flight from one goroutine with
// ReadAtAsync.
func asyncReads(b *testing.B, f *File, depth int, size int64) {
	const bs = 4096
	blocks := size / bs
	rng := rand.New(rand.NewPCG(1, 7))
	bufs := make([][]byte, depth)
	for i := range bufs {
		bufs[i], _ = AlignedBuffer(bs, 4096)
	}
	type slot struct {
		wait func() (int, error)
	}
	slots := make([]slot, depth)
	submit := func(i int) {
		c, err := f.ReadAtAsync(bufs[i], rng.Int64N(blocks)*bs)
		if err != nil {
			b.Fatal(err)
		}
		slots[i].wait = c.Wait
	}
	b.ResetTimer()
	start := time.Now()
	ts := startThreadSampler()
	issued := 0
	for i := 0; i < depth && issued < b.N; i++ {
		submit(i)
		issued++
	}
	for done, i := 0, 0; done < b.N; done, i = done+1, (i+1)%depth {
		if n, err := slots[i].wait(); err != nil || n != bs {
			b.Fatalf("read: %d, %v", n, err)
		}
		if issued < b.N {
			submit(i)
			issued++
		}
	}
	b.StopTimer()
	reportIOPS(b, start, ts)
}

// BenchmarkDirectRandRead: O_DIRECT 4 KiB random reads of a 1 GiB file at
// 32 and 256 in flight: os.File from as many goroutines; File from as many
// goroutines (rio) or from one goroutine keeping that many ReadAtAsync
// operations in flight (rio-async).
func BenchmarkDirectRandRead(b *testing.B) {
	sharedRing(b)
	name := benchData(b, "direct", benchFileSize)
	for _, depth := range []int{32, 256} {
		b.Run(fmt.Sprintf("depth=%d/impl=rio", depth), func(b *testing.B) {
			f, err := OpenFile(name, os.O_RDONLY|syscall.O_DIRECT, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			randReads(b, depth, benchFileSize, f.ReadAt)
		})
		b.Run(fmt.Sprintf("depth=%d/impl=rio-async", depth), func(b *testing.B) {
			f, err := OpenFile(name, os.O_RDONLY|syscall.O_DIRECT, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			asyncReads(b, f, depth, benchFileSize)
		})
		b.Run(fmt.Sprintf("depth=%d/impl=os", depth), func(b *testing.B) {
			f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_DIRECT, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			randReads(b, depth, benchFileSize, f.ReadAt)
		})
	}
}

// BenchmarkHotRandRead: 4 KiB random reads of a 1 GiB file held in the
// page cache (mapped and locked), from 64 goroutines.
func BenchmarkHotRandRead(b *testing.B) {
	sharedRing(b)
	name := benchData(b, "hot", benchFileSize)
	pinResident(b, name)
	const workers = 64
	b.Run("impl=rio", func(b *testing.B) {
		f, err := Open(name)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		randReads(b, workers, benchFileSize, f.ReadAt)
	})
	b.Run("impl=os", func(b *testing.B) {
		f, err := os.Open(name)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		randReads(b, workers, benchFileSize, f.ReadAt)
	})
}

// BenchmarkCopy1GiB: io.Copy of a 1 GiB file (in the page cache) to a new
// file, File to File and os.File to os.File.
func BenchmarkCopy1GiB(b *testing.B) {
	sharedRing(b)
	src := benchData(b, "hot", benchFileSize)
	pinResident(b, src)
	type file interface {
		io.ReadWriteCloser
	}
	for _, impl := range []struct {
		name string
		open func(name string, flag int) (file, error)
	}{
		{"rio", func(name string, flag int) (file, error) { return OpenFile(name, flag, 0o644) }},
		{"os", func(name string, flag int) (file, error) { return os.OpenFile(name, flag, 0o644) }},
	} {
		b.Run("impl="+impl.name, func(b *testing.B) {
			b.SetBytes(benchFileSize)
			dst := filepath.Join(bench.dir, "copy-"+impl.name)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				os.Remove(dst)
				b.StartTimer()
				s, err := impl.open(src, os.O_RDONLY)
				if err != nil {
					b.Fatal(err)
				}
				d, err := impl.open(dst, os.O_RDWR|os.O_CREATE|os.O_TRUNC)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(d, s)
				if err != nil || n != benchFileSize {
					b.Fatalf("copied %d, %v", n, err)
				}
				s.Close()
				if err := d.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			os.Remove(dst)
		})
	}
}
