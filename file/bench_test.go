package file

import (
	"fmt"
	"io"
	"io/fs"
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
	if name := os.Getenv("RIO_BENCH_FILE"); name != "" && key == "direct" {
		return name // bench/direct.sh's, shared with fio
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

// collectReads keeps depth reads in flight from one goroutine, as
// asyncReads, but refills in completion order: it waits for the first
// read to complete (Collector.Next), takes every other one already
// complete (TryNext), and starts their replacements together (Batch, one
// enter).
func collectReads(b *testing.B, f *File, depth int, size int64) {
	const bs = 4096
	blocks := size / bs
	rng := rand.New(rand.NewPCG(1, 7))
	type slot struct {
		buf []byte
		op  *Op
	}
	var q Collector[*slot]
	var batch Batch
	var started []*slot
	queue := func(s *slot) {
		op, err := batch.ReadAt(f, s.buf, rng.Int64N(blocks)*bs)
		if err != nil {
			b.Fatal(err)
		}
		s.op = op
		started = append(started, s)
	}
	submit := func() {
		if err := batch.Submit(); err != nil {
			b.Fatal(err)
		}
		for _, s := range started {
			if err := q.Add(s.op, s); err != nil {
				b.Fatal(err)
			}
		}
		started = started[:0]
	}
	b.ResetTimer()
	start := time.Now()
	ts := startThreadSampler()
	issued := 0
	for i := 0; i < depth && issued < b.N; i++ {
		buf, _ := AlignedBuffer(bs, 4096)
		queue(&slot{buf: buf})
		issued++
	}
	submit()
	for done := 0; done < b.N; {
		s, ok := q.Next()
		if !ok {
			b.Fatal("nothing in flight")
		}
		for ; ok; s, ok = q.TryNext() {
			if n, err := s.op.Wait(); err != nil || n != bs {
				b.Fatalf("read: %d, %v", n, err)
			}
			done++
			if issued < b.N {
				queue(s)
				issued++
			}
		}
		submit()
	}
	b.StopTimer()
	reportIOPS(b, start, ts)
}

// BenchmarkDirectRandRead: O_DIRECT 4 KiB random reads of a 1 GiB file at
// 32 and 256 in flight: os.File from as many goroutines; File from as many
// goroutines (rio) or from one goroutine keeping that many ReadAtAsync
// operations in flight, waiting for the oldest (rio-async) or for the first
// to complete and refilling in a Batch (rio-collect).
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
		b.Run(fmt.Sprintf("depth=%d/impl=rio-collect", depth), func(b *testing.B) {
			f, err := OpenFile(name, os.O_RDONLY|syscall.O_DIRECT, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			collectReads(b, f, depth, benchFileSize)
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

// The benchmarks of issue 14: ReadFile of many small files and of one big
// one, and fs.WalkDir over DirFS, each against package os. Their data is
// made on first use: in RIO_BENCH_DATA if set (kept, so that alternating
// processes share it; the caller removes it), otherwise in the binary's
// temporary directory. They do not warm the page cache: run them with it
// warm (docs/benchmarks.md says how), so that both sides read memory.

// benchTree returns the directory key under the data directory, creating
// it with make if it is not complete (a marker file says it is).
func benchTree(b *testing.B, key string, make func(dir string) error) string {
	b.Helper()
	root := os.Getenv("RIO_BENCH_DATA")
	if root == "" {
		bench.mu.Lock()
		if bench.dir == "" {
			dir, err := os.MkdirTemp(os.Getenv("RIO_BENCH_DIR"), "rio-file-bench-")
			if err != nil {
				bench.mu.Unlock()
				b.Fatal(err)
			}
			bench.dir = dir
			bench.files = map[string]string{}
		}
		root = bench.dir
		bench.mu.Unlock()
	}
	dir := filepath.Join(root, key)
	marker := filepath.Join(root, key+".done")
	if _, err := os.Stat(marker); err == nil {
		return dir
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := make(dir); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

const smallFiles, smallSize = 10000, 4096

func smallFileNames(b *testing.B) []string {
	dir := benchTree(b, "small", func(dir string) error {
		data := make([]byte, smallSize)
		for i := range smallFiles {
			for j := range data {
				data[j] = byte(i + j)
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), data, 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	names := make([]string, smallFiles)
	for i := range names {
		names[i] = filepath.Join(dir, fmt.Sprintf("f%05d", i))
	}
	return names
}

// readFileImpls are the two ReadFiles compared.
var readFileImpls = []struct {
	name string
	fn   func(string) ([]byte, error)
}{{"rio", ReadFile}, {"os", os.ReadFile}}

// BenchmarkReadFileSmall: ReadFile of 10,000 files of 4 KiB, one after
// the other; an operation is one file.
func BenchmarkReadFileSmall(b *testing.B) {
	sharedRing(b)
	names := smallFileNames(b)
	for _, impl := range readFileImpls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			b.SetBytes(smallSize)
			ts := startThreadSampler()
			b.ResetTimer()
			for i := range b.N {
				data, err := impl.fn(names[i%smallFiles])
				if err != nil || len(data) != smallSize {
					b.Fatalf("%d bytes, %v", len(data), err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(ts.finish()), "threads")
		})
	}
}

const bigFileSize = 1 << 30

// BenchmarkReadFileBig: ReadFile of one 1 GiB file.
func BenchmarkReadFileBig(b *testing.B) {
	sharedRing(b)
	dir := benchTree(b, "big", func(dir string) error {
		f, err := os.Create(filepath.Join(dir, "big"))
		if err != nil {
			return err
		}
		buf := make([]byte, 8<<20)
		rng := rand.New(rand.NewPCG(1, 2))
		for off := 0; off < bigFileSize; off += len(buf) {
			for i := range buf {
				buf[i] = byte(rng.Uint32())
			}
			if _, err := f.Write(buf); err != nil {
				return err
			}
		}
		return f.Close()
	})
	name := filepath.Join(dir, "big")
	for _, impl := range readFileImpls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			b.SetBytes(bigFileSize)
			ts := startThreadSampler()
			b.ResetTimer()
			for range b.N {
				data, err := impl.fn(name)
				if err != nil || len(data) != bigFileSize {
					b.Fatalf("%d bytes, %v", len(data), err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(ts.finish()), "threads")
		})
	}
}

// walkTree is 50 directories of 20 directories of 99 empty files: 100,050
// entries.
func walkTree(b *testing.B) string {
	return benchTree(b, "tree", func(dir string) error {
		for i := range 50 {
			for j := range 20 {
				d := filepath.Join(dir, fmt.Sprintf("d%02d", i), fmt.Sprintf("e%02d", j))
				if err := os.MkdirAll(d, 0o755); err != nil {
					return err
				}
				for k := range 99 {
					f, err := os.Create(filepath.Join(d, fmt.Sprintf("file-%02d", k)))
					if err != nil {
						return err
					}
					f.Close()
				}
			}
		}
		return nil
	})
}

// BenchmarkWalkDir: fs.WalkDir over DirFS of a tree of 100,050 entries;
// an operation is the whole walk.
func BenchmarkWalkDir(b *testing.B) {
	sharedRing(b)
	root := walkTree(b)
	for _, impl := range []struct {
		name string
		fsys fs.FS
	}{{"rio", DirFS(root)}, {"os", os.DirFS(root)}} {
		b.Run("impl="+impl.name, func(b *testing.B) {
			ts := startThreadSampler()
			b.ResetTimer()
			var n int
			for range b.N {
				n = 0
				err := fs.WalkDir(impl.fsys, ".", func(path string, d fs.DirEntry, err error) error {
					n++
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if n != 100051 {
				b.Fatalf("walked %d entries", n)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
			b.ReportMetric(float64(ts.finish()), "threads")
		})
	}
}
