package file

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorio/rio/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gorio/rio"
	"github.com/gorio/rio/riotest"
)

// Fault-injection tests of File over the simulated io_uring kernel of
// riotest (see docs/testing.md). Each test runs seeds 1..n and one random
// seed as subtests named seed=N; RIO_SEED=N runs that seed alone and
// RIO_SOAK=1 runs 100 times as many. A failure prints the command that
// replays it.
//
// Reads of a buffered File first try the page cache with preadv2
// (RWF_NOWAIT), which bypasses the ring and so the simulated kernel: the
// tests switch that off (noNowait) for most seeds so that reads meet the
// faults too.

// simFaults is riotest.AllFaults without NoBufs, which File never meets
// (it does not use provided buffers).
func simFaults() riotest.Faults {
	f := riotest.AllFaults()
	f.NoBufs = 0
	return f
}

// simLeakCheck is checkLeaks without the shared Ring, which the simulated
// tests do not need (so that they run where io_uring is unavailable): it
// fails t if goroutines or descriptors outlive it. Register it before the
// ring, so that it runs after the ring's Close.
func simLeakCheck(t *testing.T) {
	t.Helper()
	g0 := runtime.NumGoroutine()
	fds0 := openFds(t)
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if runtime.NumGoroutine() <= g0 && len(openFds(t)) <= len(fds0) {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		if g := runtime.NumGoroutine(); g > g0 {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			assert.Failf(t, "goroutine leak", "%d before, %d after\n%s", g0, g, buf)
		}
		var extra []string
		for fd, target := range openFds(t) {
			if _, ok := fds0[fd]; !ok {
				extra = append(extra, fmt.Sprintf("%s -> %s", fd, target))
			}
		}
		sort.Strings(extra)
		assert.Empty(t, extra, "file descriptor leak:\n%s", strings.Join(extra, "\n"))
	})
}

// simDir is testutil.FastTempDir: the simulated kernel does Sync's fsync
// for real.
func simDir(t *testing.T) string {
	t.Helper()
	return testutil.FastTempDir(t)
}

// simTemp creates a file with data in simDir.
func simTemp(t *testing.T, data []byte) string {
	t.Helper()
	name := filepath.Join(simDir(t), "data")
	require.NoError(t, os.WriteFile(name, data, 0o644))
	return name
}

// within runs f and fails t (with every goroutine's stack) if it has not
// returned after d.
func within(t *testing.T, d time.Duration, what string, f func()) bool {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		assert.Failf(t, "timeout", "%s did not return within %v\n%s", what, d, buf)
		return false
	}
}

// simFill fills b with random bytes, 8 at a time (fillRand's byte at a
// time is slow under -race).
func simFill(rng *rand.Rand, b []byte) {
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, rng.Uint64())
		b = b[8:]
	}
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

// ---------------------------------------------------------------------------
// 1. A File against an in-memory model, under faults.

// simErrText describes err as the model expects it: a PathError as
// "op: err", unlike errText, since the model builds some of its own.
func simErrText(err error) string {
	if err == nil {
		return ""
	}
	if err == io.EOF {
		return "EOF"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s: %v", pe.Op, pe.Err)
	}
	return err.Error()
}

// fileModel is the in-memory model of a file and the File's position, with
// os.File's semantics.
type fileModel struct {
	data   []byte
	pos    int64
	append bool
}

// writeAt writes b at off, extending the file with zeros as needed.
func (m *fileModel) writeAt(b []byte, off int64) {
	if len(b) == 0 {
		return // writes nothing, extends nothing
	}
	if end := off + int64(len(b)); end > int64(len(m.data)) {
		m.data = append(m.data, make([]byte, end-int64(len(m.data)))...)
	}
	copy(m.data[off:], b)
}

func (m *fileModel) write(b []byte) {
	if m.append {
		if len(b) > 0 {
			m.writeAt(b, int64(len(m.data)))
			m.pos = int64(len(m.data))
		}
		return
	}
	m.writeAt(b, m.pos)
	m.pos += int64(len(b))
}

func (m *fileModel) truncate(size int64) {
	if size <= int64(len(m.data)) {
		m.data = m.data[:size]
	} else {
		m.data = append(m.data, make([]byte, size-int64(len(m.data)))...)
	}
}

// from returns the model's bytes from off, at most n.
func (m *fileModel) from(off int64, n int64) []byte {
	if off >= int64(len(m.data)) {
		return []byte{}
	}
	end := min(off+n, int64(len(m.data)))
	return bytes.Clone(m.data[off:end])
}

// simModelRun is one run of random operations on a File and the model.
type simModelRun struct {
	t    *testing.T
	seed uint64
	rng  *rand.Rand
	f    *File
	m    *fileModel
	// eagainOK makes an EAGAIN error acceptable if the File told the truth
	// about what it transferred (see TestSimFileEAGAINTruthful); eagains
	// counts them.
	eagainOK bool
	eagains  int
}

// isEAGAIN reports whether err is an EAGAIN the run accepts.
func (r *simModelRun) isEAGAIN(err error) bool {
	if r.eagainOK && errors.Is(err, syscall.EAGAIN) {
		r.eagains++
		return true
	}
	return false
}

// step runs operation i on the File and the model and returns what the
// File did and what the model says it should have done.
func (r *simModelRun) step(i int) (got, want step) {
	rng, f, m := r.rng, r.f, r.m
	n := rng.IntN(16 << 10)
	if rng.IntN(10) == 0 {
		n = 0
	}
	off := rng.Int64N(48 << 10)
	data := make([]byte, n)
	simFill(rng, data)
	switch kind := rng.IntN(13); kind {
	case 0, 1: // Write
		op := fmt.Sprintf("Write(%d)", n)
		k, err := f.Write(data)
		got = step{Op: op, N: int64(k), Err: simErrText(err)}
		if err != nil && r.isEAGAIN(err) && k < n {
			m.write(data[:k])
			return got, step{Op: op, N: int64(k), Err: got.Err}
		}
		m.write(data)
		return got, step{Op: op, N: int64(n)}
	case 2, 3: // WriteAt
		op := fmt.Sprintf("WriteAt(%d, %d)", n, off)
		k, err := f.WriteAt(data, off)
		got = step{Op: op, N: int64(k), Err: simErrText(err)}
		if m.append {
			return got, step{Op: op, Err: errWriteAtInAppendMode.Error()}
		}
		if err != nil && r.isEAGAIN(err) && k < n {
			m.writeAt(data[:k], off)
			return got, step{Op: op, N: int64(k), Err: got.Err}
		}
		m.writeAt(data, off)
		return got, step{Op: op, N: int64(n)}
	case 4, 5: // ReadAt
		op := fmt.Sprintf("ReadAt(%d, %d)", n, off)
		b := make([]byte, n)
		k, err := f.ReadAt(b, off)
		got = step{Op: op, N: int64(k), Err: simErrText(err), Data: b[:max(k, 0)]}
		w := m.from(off, int64(n))
		want = step{Op: op, N: int64(len(w)), Data: w}
		if err != nil && k <= len(w) && k < n && r.isEAGAIN(err) {
			want.N, want.Data, want.Err = int64(k), w[:k], got.Err
		} else if len(w) < n {
			want.Err = "EOF"
		}
		return got, want
	case 6, 7: // Read: any non-empty prefix of what is there.
		op := fmt.Sprintf("Read(%d) at %d", n, m.pos)
		b := make([]byte, n)
		k, err := f.Read(b)
		got = step{Op: op, N: int64(k), Err: simErrText(err), Data: b[:max(k, 0)]}
		w := m.from(m.pos, int64(n))
		switch {
		case n == 0:
			return got, step{Op: op, Data: []byte{}}
		case err != nil && k == 0 && r.isEAGAIN(err):
			return got, step{Op: op, Err: got.Err, Data: []byte{}}
		case len(w) == 0:
			return got, step{Op: op, Err: "EOF", Data: []byte{}}
		case k >= 1 && k <= len(w):
			w = w[:k]
		}
		m.pos += int64(len(w))
		return got, step{Op: op, N: int64(len(w)), Data: w}
	case 8: // Seek, to a non-negative position.
		whence := rng.IntN(3)
		var o int64
		switch whence {
		case io.SeekStart:
			o = rng.Int64N(56 << 10)
		case io.SeekCurrent:
			o = rng.Int64N(m.pos+8<<10) - m.pos
		case io.SeekEnd:
			o = rng.Int64N(int64(len(m.data))+8<<10) - int64(len(m.data))
		}
		op := fmt.Sprintf("Seek(%d, %d)", o, whence)
		p, err := f.Seek(o, whence)
		got = step{Op: op, N: p, Err: simErrText(err)}
		switch whence {
		case io.SeekStart:
			m.pos = o
		case io.SeekCurrent:
			m.pos += o
		case io.SeekEnd:
			m.pos = int64(len(m.data)) + o
		}
		return got, step{Op: op, N: m.pos}
	case 9: // Truncate, which leaves the position alone.
		size := rng.Int64N(56 << 10)
		op := fmt.Sprintf("Truncate(%d)", size)
		err := f.Truncate(size)
		m.truncate(size)
		return step{Op: op, Err: simErrText(err)}, step{Op: op}
	case 10: // Sync, and Stat's size.
		err := f.Sync()
		var size int64 = -1
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
		return step{Op: "Sync+Stat", N: size, Err: simErrText(err)}, step{Op: "Sync+Stat", N: int64(len(m.data))}
	case 11: // ReadFrom a plain reader: Write in a loop.
		op := fmt.Sprintf("ReadFrom(%d bytes)", n)
		k, err := f.ReadFrom(bytes.NewReader(data))
		got = step{Op: op, N: k, Err: simErrText(err)}
		if err != nil && r.isEAGAIN(err) && k < int64(n) {
			m.write(data[:k])
			return got, step{Op: op, N: k, Err: got.Err}
		}
		m.write(data)
		return got, step{Op: op, N: int64(n)}
	default: // WriteTo a buffer: Read to end of file.
		var buf bytes.Buffer
		k, err := f.WriteTo(&buf)
		got = step{Op: "WriteTo", N: k, Err: simErrText(err), Data: buf.Bytes()}
		w := m.from(m.pos, 1<<62)
		if err != nil && k <= int64(len(w)) && r.isEAGAIN(err) {
			w = w[:k]
			want.Err = got.Err
		}
		m.pos += int64(len(w))
		want.Op, want.N, want.Data = "WriteTo", int64(len(w)), w
		if want.Data == nil {
			want.Data = []byte{}
		}
		if got.Data == nil {
			got.Data = []byte{}
		}
		return got, want
	}
}

// runSimModel runs ops random operations on a File over a simulated kernel
// with faults, comparing every observation and the final contents with the
// model. It returns the kernel's statistics.
func runSimModel(t *testing.T, seed uint64, faults riotest.Faults, ops int, eagainOK bool) (riotest.Stats, int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	k := riotest.NewKernel(riotest.Config{Seed: seed, Faults: faults})
	r, err := rio.New(k.Option(), rio.WithEntries(8))
	require.NoError(t, err, "seed %d: rio.New", seed)
	t.Cleanup(func() {
		assert.NoError(t, r.Close(), "seed %d: Ring.Close", seed)
		if t.Failed() {
			t.Logf("riotest: simulated kernel seed %d; replay with RIO_SEED=%d", seed, seed)
		}
	})

	initial := make([]byte, rng.IntN(32<<10))
	simFill(rng, initial)
	name := simTemp(t, initial)
	flag := os.O_RDWR
	m := &fileModel{data: bytes.Clone(initial)}
	if rng.IntN(8) == 0 {
		flag |= os.O_APPEND
		m.append = true
	}
	f, err := OpenFileRing(r, name, flag, 0)
	require.NoError(t, err, "seed %d: OpenFileRing", seed)
	defer f.Close()
	nowait := rng.IntN(4) == 0
	if !nowait {
		f.noNowait.Store(true) // reads through the ring, and its faults
	}

	run := &simModelRun{t: t, seed: seed, rng: rng, f: f, m: m, eagainOK: eagainOK}
	var history []string
	for i := range ops {
		got, want := run.step(i)
		history = append(history, fmt.Sprintf("%d: %s = %d, %q", i, got.Op, got.N, got.Err))
		require.Equal(t, want, got, "seed %d (append %v, page-cache reads %v), operation %d: File (actual) differs from the model (expected)\nthe operations so far:\n%s",
			seed, m.append, nowait, i, strings.Join(history[max(0, len(history)-12):], "\n"))
	}
	require.NoError(t, f.Close(), "seed %d: Close", seed)
	final, err := os.ReadFile(name)
	require.NoError(t, err)
	require.Equal(t, m.data, final, "seed %d: final contents (actual) differ from the model (expected)", seed)
	return k.Stats(), run.eagains
}

// TestSimFileModel: after random sequences of Write, WriteAt, Seek,
// Truncate, ReadAt, Read, Sync, Stat, ReadFrom and WriteTo with short
// reads and writes, EINTR, delays (reordering), enter errors, short
// submissions and CQ overflow injected, every result and the final
// contents equal the model's: no byte lost or duplicated, no fault leaking
// out as an error.
func TestSimFileModel(t *testing.T) {
	var total riotest.Stats
	riotest.ForSeeds(t, 40, func(t *testing.T, seed uint64) {
		st, _ := runSimModel(t, seed, simFaults(), 120, false)
		total.ShortIO += st.ShortIO
		total.OpErrors += st.OpErrors
		total.Delayed += st.Delayed
		total.SQEs += st.SQEs
	})
	if !t.Failed() {
		assert.True(t, total.ShortIO != 0 && total.OpErrors != 0 && total.Delayed != 0, "faults not injected: %+v", total)
	}
	t.Logf("%d SQEs: %d short, %d EINTR, %d delayed", total.SQEs, total.ShortIO, total.OpErrors, total.Delayed)
}

// TestSimFileEAGAINTruthful runs the model test with every fault, EAGAIN
// included, accepting an EAGAIN error from a File (see the known bug
// below) as long as the File reported exactly what it transferred: the
// contents still equal the model's.
func TestSimFileEAGAINTruthful(t *testing.T) {
	faults := simFaults()
	faults.OpEAGAIN = 0.05
	eagains := 0
	riotest.ForSeeds(t, 15, func(t *testing.T, seed uint64) {
		_, n := runSimModel(t, seed, faults, 120, true)
		eagains += n
	})
	t.Logf("%d EAGAIN errors surfaced from File methods", eagains)
}

// TestSimFileEAGAIN: with OpEAGAIN frequent, File methods retry EAGAIN as
// os.File would never return it on a regular file. (Found by this test,
// seed 1: File used to retry only EINTR.)
func TestSimFileEAGAIN(t *testing.T) {
	faults := simFaults()
	faults.OpEAGAIN = 0.05
	riotest.ForSeeds(t, 8, func(t *testing.T, seed uint64) {
		runSimModel(t, seed, faults, 120, false)
	})
}

// ---------------------------------------------------------------------------
// 2. Concurrent WriteAt and ReadAt to disjoint regions, then Close.

// TestSimFileConcurrentDisjoint: goroutines write and read back disjoint
// regions of one File at once, under every fault; then Close. Every write
// landed, every read saw its region's writes, Close returns, nothing leaks.
// An EAGAIN error (see TestSimFileEAGAIN) is accepted if the count
// it comes with is true; the goroutine then writes or reads the rest.
func TestSimFileConcurrentDisjoint(t *testing.T) {
	const (
		workers = 4
		region  = 16 << 10
		ops     = 40
	)
	faults := riotest.AllFaults()
	riotest.ForSeeds(t, 12, func(t *testing.T, seed uint64) {
		simLeakCheck(t)
		r := riotest.NewRing(t, riotest.Config{Seed: seed, Faults: faults}, rio.WithEntries(8))
		name := simTemp(t, nil)
		f, err := OpenFileRing(r, name, os.O_RDWR, 0)
		require.NoError(t, err)
		if seed%4 != 0 {
			f.noNowait.Store(true)
		}
		models := make([][]byte, workers)
		var eagains atomic.Int64
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(seed, uint64(w)))
				model := make([]byte, region)
				base := int64(w * region)
				for i := 0; i < ops; i++ {
					off := rng.IntN(region)
					n := 1 + rng.IntN(region-off)
					if rng.IntN(2) == 0 {
						b := make([]byte, n)
						simFill(rng, b)
						for done := 0; done < n; {
							k, err := f.WriteAt(b[done:], base+int64(off+done))
							if !assert.True(t, err == nil || errors.Is(err, syscall.EAGAIN) && k < n-done,
								"seed %d, worker %d, op %d: WriteAt(%d, %d): %d, %v", seed, w, i, n-done, base+int64(off+done), k, err) {
								return
							}
							if err == nil && !assert.Equal(t, n-done, k, "seed %d, worker %d, op %d: WriteAt wrote %d of %d without an error", seed, w, i, k, n-done) {
								return
							}
							if err != nil {
								eagains.Add(1)
							}
							done += k
						}
						copy(model[off:], b)
					} else {
						b := make([]byte, n)
						for done := 0; done < n; {
							k, err := f.ReadAt(b[done:], base+int64(off+done))
							if !assert.True(t, err == nil || errors.Is(err, syscall.EAGAIN) && k < n-done || err == io.EOF,
								"seed %d, worker %d, op %d: ReadAt(%d, %d): %d, %v", seed, w, i, n-done, base+int64(off+done), k, err) {
								return
							}
							if err == io.EOF {
								// The file ends before the region does: no
								// write has completed past the end, so the
								// model must have zeros there.
								clear(b[done+k:])
								break
							}
							if err != nil {
								eagains.Add(1)
							}
							done += k
						}
						if !assert.Equal(t, model[off:off+n], b, "seed %d, worker %d, op %d: ReadAt(%d, %d) differs from what was written",
							seed, w, i, n, base+int64(off)) {
							return
						}
					}
				}
				models[w] = model
			})
		}
		if !within(t, 20*time.Second, "the workers", wg.Wait) {
			return
		}
		var cerr error
		if !within(t, 10*time.Second, "Close", func() { cerr = f.Close() }) {
			return
		}
		require.NoError(t, cerr, "seed %d: Close", seed)
		if t.Failed() {
			return
		}
		got, err := os.ReadFile(name)
		require.NoError(t, err)
		want := bytes.Join(models, nil)
		// The file ends with the last write of the last region.
		require.LessOrEqual(t, len(got), len(want), "seed %d: file has %d bytes, the model %d", seed, len(got), len(want))
		require.Empty(t, bytes.TrimRight(want[len(got):], "\x00"), "seed %d: file has %d bytes, the model %d (with %d trailing non-zero)", seed, len(got), len(want),
			len(bytes.TrimRight(want[len(got):], "\x00")))
		if !bytes.Equal(got, want[:len(got)]) {
			for w := range workers {
				lo, hi := w*region, min((w+1)*region, len(got))
				if lo < hi {
					assert.Equal(t, want[lo:hi], got[lo:hi], "seed %d: region %d differs from what its worker wrote", seed, w)
				}
			}
		}
		if n := eagains.Load(); n > 0 {
			t.Logf("%d EAGAIN errors from File methods (known bug), with truthful counts", n)
		}
	})
}

// ---------------------------------------------------------------------------
// 3. Close racing operations in flight.

// asyncWrite is a WriteAtAsync and what it wrote where.
type asyncWrite struct {
	c    *Op
	off  int64
	data []byte
}

// TestSimFileCloseRacesAsync: goroutines keep asynchronous and synchronous
// reads and writes going on a regular file while Close runs, with delays,
// cancellation races, short transfers and EINTR injected. Close returns;
// every asynchronous operation started is complete when it does (so the
// descriptor was not closed under it); an operation that could not start
// fails with fs.ErrClosed; every byte a write reported is in the file; a
// second Close reports fs.ErrClosed; nothing leaks.
func TestSimFileCloseRacesAsync(t *testing.T) {
	faults := riotest.Faults{MaxDelay: 16, CancelRace: 0.5, ShortIO: 0.3, OpEINTR: 0.05, Overflow: 0.1, ShortSubmit: 0.2, EnterEINTR: 0.05}
	const workers, slot = 4, 512
	riotest.ForSeeds(t, 16, func(t *testing.T, seed uint64) {
		simLeakCheck(t)
		r := riotest.NewRing(t, riotest.Config{Seed: seed, Faults: faults}, rio.WithEntries(8))
		rng := rand.New(rand.NewPCG(seed, 3))
		initial := make([]byte, 64<<10)
		simFill(rng, initial)
		name := simTemp(t, initial)
		f, err := OpenFileRing(r, name, os.O_RDWR, 0)
		require.NoError(t, err)
		if seed%2 == 0 {
			f.noNowait.Store(true)
		}
		closeAfter := int64(rng.IntN(60))
		var started atomic.Int64
		var mu sync.Mutex
		var writes []asyncWrite     // async writes started
		var syncWrites []asyncWrite // sync writes, data cut to what they reported
		var reads []*Op             // async reads started
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(seed, uint64(100+w)))
				for i := 0; ; i++ {
					// Each write has its own slot, past the initial data.
					off := int64(64<<10 + (i*workers+w)*slot)
					data := make([]byte, 1+rng.IntN(slot))
					simFill(rng, data)
					var err error
					switch rng.IntN(4) {
					case 0:
						var c *Op
						if c, err = f.WriteAtAsync(data, off); err == nil {
							mu.Lock()
							writes = append(writes, asyncWrite{c, off, data})
							mu.Unlock()
						}
					case 1:
						var c *Op
						if c, err = f.ReadAtAsync(make([]byte, 1+rng.IntN(4096)), rng.Int64N(64<<10)); err == nil {
							mu.Lock()
							reads = append(reads, c)
							mu.Unlock()
						}
					case 2:
						var n int
						n, err = f.WriteAt(data, off)
						mu.Lock()
						syncWrites = append(syncWrites, asyncWrite{nil, off, data[:n]})
						mu.Unlock()
						if err == nil {
							assert.Equal(t, len(data), n, "seed %d: WriteAt wrote %d of %d without an error", seed, n, len(data))
						}
					default:
						b := make([]byte, 1+rng.IntN(8192))
						ro := rng.Int64N(64<<10 - int64(len(b)))
						var n int
						n, err = f.ReadAt(b, ro)
						assert.True(t, bytes.Equal(b[:n], initial[ro:ro+int64(n)]), "seed %d: ReadAt(%d, %d) returned bytes not in the file", seed, len(b), ro)
						if err == nil {
							assert.Equal(t, len(b), n, "seed %d: ReadAt read %d of %d without an error", seed, n, len(b))
						}
					}
					started.Add(1)
					if err != nil {
						assert.ErrorIs(t, err, fs.ErrClosed, "seed %d, worker %d: operation %d", seed, w, i)
						return
					}
					if !assert.LessOrEqual(t, i, 10000, "seed %d: worker %d still running after %d operations", seed, w, i) {
						return
					}
				}
			})
		}
		for started.Load() < closeAfter {
			runtime.Gosched()
		}
		var cerr error
		if !within(t, 10*time.Second, "Close", func() { cerr = f.Close() }) {
			return
		}
		assert.NoError(t, cerr, "seed %d: Close", seed)
		mu.Lock()
		for i, w := range writes {
			assert.True(t, w.c.Done(), "seed %d: asynchronous write %d still in flight after Close returned", seed, i)
		}
		mu.Unlock()
		if !within(t, 10*time.Second, "the workers", wg.Wait) {
			return
		}
		assert.ErrorIs(t, f.Close(), fs.ErrClosed, "seed %d: second Close", seed)
		got, err := os.ReadFile(name)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(got[:len(initial)], initial), "seed %d: the initial data changed", seed)
		check := func(kind string, off int64, data []byte) {
			if len(data) == 0 {
				return
			}
			end := off + int64(len(data))
			assert.True(t, end <= int64(len(got)) && bytes.Equal(got[off:end], data),
				"seed %d: %s of %d bytes at %d reported done but is not in the file", seed, kind, len(data), off)
		}
		for _, w := range writes {
			// Wait finishes a short or interrupted write, or, after
			// Close, reports how much of it was done.
			n, err := w.c.Wait()
			if err != nil {
				assert.ErrorIs(t, err, fs.ErrClosed, "seed %d: asynchronous write", seed)
			} else {
				assert.Equal(t, len(w.data), n, "seed %d: asynchronous write of %d bytes: %d without an error", seed, len(w.data), n)
			}
			check("WriteAtAsync", w.off, w.data[:n])
		}
		for _, w := range syncWrites {
			check("WriteAt", w.off, w.data)
		}
		for _, c := range reads {
			assert.True(t, c.Done(), "seed %d: asynchronous read still in flight after Close returned", seed)
			_, err := c.Wait()
			assert.True(t, err == nil || err == io.EOF || errors.Is(err, fs.ErrClosed), "seed %d: asynchronous read: %v", seed, err)
		}
	})
}

// TestSimFileCloseRacesFIFO: on a FIFO, where reads wait forever, Close
// cancels what is in flight: blocked synchronous reads fail with
// fs.ErrClosed, asynchronous ones complete (with data, ECANCELED, or EINTR
// when the cancellation lost the race); Close returns; nothing leaks.
func TestSimFileCloseRacesFIFO(t *testing.T) {
	faults := riotest.Faults{MaxDelay: 16, CancelRace: 0.5, ShortIO: 0.3, OpEINTR: 0.05, Overflow: 0.1, ShortSubmit: 0.2}
	riotest.ForSeeds(t, 12, func(t *testing.T, seed uint64) {
		simLeakCheck(t)
		r := riotest.NewRing(t, riotest.Config{Seed: seed, Faults: faults}, rio.WithEntries(8))
		rng := rand.New(rand.NewPCG(seed, 4))
		name := filepath.Join(simDir(t), "fifo")
		if err := syscall.Mkfifo(name, 0o600); err != nil {
			t.Skip(err)
		}
		// O_RDWR: neither end waits for the other to open.
		f, err := OpenFileRing(r, name, os.O_RDWR, 0)
		require.NoError(t, err)
		var mu sync.Mutex
		var async []*Op
		var wg sync.WaitGroup
		for w := range 3 {
			wg.Go(func() {
				b := make([]byte, 64)
				_, err := f.Read(b) // blocks until a write or Close
				for err == nil {
					_, err = f.Read(b)
				}
				assert.ErrorIs(t, err, fs.ErrClosed, "seed %d: reader %d", seed, w)
			})
		}
		nasync := 1 + rng.IntN(6)
		for i := range nasync {
			var c *Op
			var err error
			if i%3 == 2 {
				c, err = f.WriteAtAsync([]byte("some bytes"), 0)
			} else {
				c, err = f.ReadAtAsync(make([]byte, 32), 0)
			}
			require.NoError(t, err, "seed %d: async operation %d", seed, i)
			mu.Lock()
			async = append(async, c)
			mu.Unlock()
		}
		// Let the operations reach the kernel and block there.
		time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
		var cerr error
		if !within(t, 10*time.Second, "Close of a FIFO with blocked reads", func() { cerr = f.Close() }) {
			return
		}
		assert.NoError(t, cerr, "seed %d: Close", seed)
		if !within(t, 10*time.Second, "the blocked readers", wg.Wait) {
			return
		}
		for i, c := range async {
			if !assert.True(t, c.Done(), "seed %d: asynchronous operation %d still in flight after Close returned", seed, i) {
				continue
			}
			// Cancelled by Close (fs.ErrClosed), or done before.
			_, err := c.Wait()
			assert.True(t, err == nil || err == io.EOF || errors.Is(err, fs.ErrClosed), "seed %d: asynchronous operation %d: %v", seed, i, err)
		}
	})
}

// ---------------------------------------------------------------------------
// 4. Acceptance: the content check catches an adapter that ignores faults.

// writerAt is what the acceptance program needs of an adapter.
type writerAt interface {
	WriteAt(b []byte, off int64) (int, error)
	ReadAt(b []byte, off int64) (int, error)
}

// brokenFile is a deliberately broken adapter over a File's ring and
// descriptor: each WriteAt and ReadAt submits one operation; with
// ignoreShort a short write is taken for the whole and a short read for
// all there is, with ignoreErrors an error (EINTR) is taken for success
// (writes) or end of file (reads), not retried.
type brokenFile struct {
	f                         *File
	ignoreShort, ignoreErrors bool
}

func (b brokenFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := b.f.Ring().WriteAt(int(b.f.Fd()), p, off).Wait()
	return b.result(len(p), n, err)
}

func (b brokenFile) ReadAt(p []byte, off int64) (int, error) {
	// One read, taken for all there is: a short one looks like end of
	// file.
	n, err := b.f.Ring().ReadAt(int(b.f.Fd()), p, off).Wait()
	if err != nil {
		if b.ignoreErrors {
			return 0, io.EOF
		}
		return 0, err
	}
	if n < len(p) && b.ignoreShort {
		return n, io.EOF
	}
	return n, nil
}

func (b brokenFile) result(want, n int, err error) (int, error) {
	if err != nil {
		if b.ignoreErrors {
			return want, nil
		}
		return n, err
	}
	if b.ignoreShort {
		return want, nil
	}
	return n, nil
}

// acceptanceRun writes and reads back random extents through the adapter
// made from the File by adapt, on a simulated kernel with faults, and
// returns the first difference from the model ("" if none).
func acceptanceRun(t *testing.T, seed uint64, faults riotest.Faults, adapt func(*File) writerAt) string {
	t.Helper()
	var diff string
	t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
		r := riotest.NewRing(t, riotest.Config{Seed: seed, Faults: faults}, rio.WithEntries(8))
		name := simTemp(t, nil)
		f, err := OpenFileRing(r, name, os.O_RDWR, 0)
		require.NoError(t, err)
		defer f.Close()
		f.noNowait.Store(true)
		a := adapt(f)
		rng := rand.New(rand.NewPCG(seed, 5))
		m := &fileModel{}
		for i := range 40 {
			off := rng.Int64N(32 << 10)
			data := make([]byte, 1+rng.IntN(8<<10))
			simFill(rng, data)
			if rng.IntN(3) > 0 {
				n, err := a.WriteAt(data, off)
				if n != len(data) || err != nil {
					diff = fmt.Sprintf("op %d: WriteAt(%d, %d) = %d, %v", i, len(data), off, n, err)
					return
				}
				m.writeAt(data, off)
				continue
			}
			b := make([]byte, len(data))
			n, err := a.ReadAt(b, off)
			w := m.from(off, int64(len(b)))
			if err == io.EOF {
				err = nil
			}
			if err != nil || n != len(w) {
				diff = fmt.Sprintf("op %d: ReadAt(%d, %d) = %d, %v; the model has %d bytes there", i, len(b), off, n, err, len(w))
				return
			}
			if !bytes.Equal(b[:n], w) {
				diff = fmt.Sprintf("op %d: ReadAt(%d, %d): the bytes read differ from the model's (a write was lost)", i, len(b), off)
				return
			}
		}
		require.NoError(t, f.Close())
		got, err := os.ReadFile(name)
		require.NoError(t, err)
		if !bytes.Equal(got, m.data) {
			diff = "final contents differ from the model"
		}
	})
	return diff
}

// TestSimFileCatchesBrokenAdapter is issue 5's acceptance check for file/:
// under each fault class, a broken adapter that ignores it fails the
// content check for some seed, the real File passes under the same seed,
// and the broken adapter passes without the fault.
func TestSimFileCatchesBrokenAdapter(t *testing.T) {
	good := func(f *File) writerAt { return f }
	cases := []struct {
		name   string
		faults riotest.Faults
		broken func(*File) writerAt
	}{
		{"ShortIO/ignore-short-writes", riotest.Faults{ShortIO: 0.5, MaxDelay: 4},
			func(f *File) writerAt { return writeOnlyBroken{f, brokenFile{f: f, ignoreShort: true}} }},
		{"ShortIO/ignore-short-reads", riotest.Faults{ShortIO: 0.5, MaxDelay: 4},
			func(f *File) writerAt { return readOnlyBroken{f, brokenFile{f: f, ignoreShort: true}} }},
		{"OpEINTR/ignore-errors", riotest.Faults{OpEINTR: 0.2, MaxDelay: 4},
			func(f *File) writerAt { return brokenFile{f: f, ignoreErrors: true} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var caught uint64
			var why string
			for seed := uint64(1); seed <= 10 && caught == 0; seed++ {
				if d := acceptanceRun(t, seed, c.faults, c.broken); d != "" {
					caught, why = seed, d
				}
			}
			require.NotZero(t, caught, "the broken adapter passed under injection of the fault")
			t.Logf("broken adapter caught with seed %d: %s", caught, why)
			d := acceptanceRun(t, caught, c.faults, good)
			assert.Empty(t, d, "File fails under the same faults, seed %d", caught)
			d = acceptanceRun(t, caught, riotest.Faults{MaxDelay: 4}, c.broken)
			assert.Empty(t, d, "the broken adapter fails even without the fault, seed %d", caught)
		})
	}
}

// writeOnlyBroken breaks only WriteAt; readOnlyBroken only ReadAt.
type writeOnlyBroken struct {
	f *File
	b brokenFile
}

func (w writeOnlyBroken) WriteAt(p []byte, off int64) (int, error) { return w.b.WriteAt(p, off) }
func (w writeOnlyBroken) ReadAt(p []byte, off int64) (int, error)  { return w.f.ReadAt(p, off) }

type readOnlyBroken struct {
	f *File
	b brokenFile
}

func (w readOnlyBroken) WriteAt(p []byte, off int64) (int, error) { return w.f.WriteAt(p, off) }
func (w readOnlyBroken) ReadAt(p []byte, off int64) (int, error)  { return w.b.ReadAt(p, off) }
