package fuzz

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorio/rio/internal/testutil"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/sim"
	"github.com/gorio/rio/internal/uring"
	"github.com/gorio/rio/riotest/prog"
)

// FuzzCQEResult has the simulated kernel complete operations of each
// result type with a fuzzed CQE result, and checks what Wait makes of it: a
// kernel result (0 or more) is the value, a negative one an
// *os.SyscallError wrapping the errno, except where the operation defines
// an errno as success (ETIME for a timeout; ETIME and ECANCELED for a link
// timeout, which then reports whether it fired).
func FuzzCQEResult(f *testing.F) {
	for _, res := range []int32{0, 1, 4096, -1, -int32(syscall.ECANCELED), -int32(syscall.ETIME), -int32(syscall.EINTR), -4095, 1 << 30} {
		f.Add(res)
	}
	f.Fuzz(func(t *testing.T, res int32) {
		if res < -4095 {
			res = -4095 // the kernel's errno range: -4095..-1
		}
		cfg := sim.Config{Seed: 1, Override: func(s uring.SQE) (int32, bool) {
			if s.Opcode == uring.OpAsyncCancel {
				return 0, false
			}
			return res, true
		}}
		r, _ := newRing(t, cfg)
		var errno syscall.Errno
		if res < 0 {
			errno = syscall.Errno(-res)
		}
		wantErr := func(name string, err error, okErrnos ...syscall.Errno) {
			t.Helper()
			if res >= 0 {
				if err != nil {
					t.Fatalf("%s: res %d: %v", name, res, err)
				}
				return
			}
			for _, e := range okErrnos {
				if e == errno {
					if err != nil {
						t.Fatalf("%s: res %d (%v) is success, got %v", name, res, errno, err)
					}
					return
				}
			}
			var se *os.SyscallError
			if !errors.Is(err, errno) || !errors.As(err, &se) {
				t.Fatalf("%s: res %d: error %#v does not wrap %v in an *os.SyscallError", name, res, err, errno)
			}
		}

		_, err := r.Nop().Wait()
		wantErr("Nop", err)

		n, err := r.ReadAt(0, make([]byte, 8), 0).Wait()
		wantErr("ReadAt", err)
		if res >= 0 && n != int(res) {
			t.Fatalf("ReadAt: res %d, n %d", res, n)
		}

		ev, err := r.Poll(0, unix.POLLIN).Wait()
		wantErr("Poll", err)
		if res >= 0 && ev != uint32(res) {
			t.Fatalf("Poll: res %d, events %d", res, ev)
		}

		// A timeout completes when its time comes, with the kernel's
		// result: here, as the worker fires it, ETIME; its Wait maps
		// ETIME to success.
		_, err = r.Timeout(0).Wait()
		if err != nil {
			t.Fatalf("Timeout: %v", err)
		}

		// A link timeout after a Nop the kernel completes with res.
		b := r.NewBatch()
		nop := b.Nop()
		lt := b.LinkTimeout(time.Hour)
		if err := b.Submit(); err != nil {
			t.Fatal(err)
		}
		_, err = nop.Wait()
		wantErr("Nop before LinkTimeout", err)
		fired, err := lt.Wait()
		if err != nil || fired {
			t.Fatalf("LinkTimeout after a completed Nop: fired %v, %v; want false, nil", fired, err)
		}
	})
}

// FuzzRingIndexWrap runs operations, singly and in batches, through rings of
// every size whose indices start at a fuzzed value, typically just below
// 2^32, so that they wrap around. Every operation completes once, and the
// kernel's indices end where the counts say.
func FuzzRingIndexWrap(f *testing.F) {
	f.Add(uint32(1<<32-1), uint8(0), []byte{1, 2, 3})
	f.Add(uint32(1<<32-5), uint8(2), []byte{7, 7, 7, 7, 0, 1})
	f.Add(uint32(1<<32-100), uint8(3), bytes.Repeat([]byte{15}, 20))
	f.Add(uint32(0), uint8(1), []byte{})
	f.Fuzz(func(t *testing.T, start uint32, sizeLog uint8, batches []byte) {
		entries := uint32(1) << (sizeLog % 5)
		r, k := newRing(t, sim.Config{Seed: uint64(start), StartIndex: start}, rio.WithEntries(entries))
		if len(batches) > 64 {
			batches = batches[:64]
		}
		total := 0
		for _, n := range batches {
			n := 1 + int(n)%int(entries)
			if n == 1 {
				if _, err := r.Nop().Wait(); err != nil {
					t.Fatal(err)
				}
			} else {
				b := r.NewBatch()
				var cs []*rio.Completion[struct{}]
				for i := 0; i < n; i++ {
					cs = append(cs, b.Nop())
				}
				if err := b.Submit(); err != nil {
					// A batch larger than the ring's capacity is refused.
					if uint32(n) <= entries && n <= int(2*entries-max(2*entries/8, 1)) {
						t.Fatalf("Submit of %d into %d entries: %v", n, entries, err)
					}
					continue
				}
				for _, c := range cs {
					if _, err := c.Wait(); err != nil {
						t.Fatal(err)
					}
				}
			}
			total += n
		}
		st := k.Stats()
		if st.SQEs != uint64(total) || st.CQEs != uint64(total) {
			t.Fatalf("%d operations, kernel saw %d SQEs and posted %d CQEs", total, st.SQEs, st.CQEs)
		}
		// The heads are read atomically: the ring is still open, and its
		// flush timer may be draining (an empty drain stores the CQ head
		// again) while the test reads.
		rg := k.Rings()
		if h := atomic.LoadUint32(rg.SQHead); h != start+uint32(total) {
			t.Fatalf("SQ head %d, want %d+%d", h, start, total)
		}
		if h := atomic.LoadUint32(rg.CQHead); h != start+uint32(total) {
			t.Fatalf("CQ head %d, want %d+%d", h, start, total)
		}
	})
}

// FuzzProgram decodes the input into a program of file operations and runs
// it through a ring over the simulated kernel, with every fault class on,
// seeded by seed; the observations and final file contents must equal the
// in-memory model's.
func FuzzProgram(f *testing.F) {
	for i := uint64(0); i < 4; i++ {
		rng := rand.New(rand.NewPCG(i, i))
		b := make([]byte, 60)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		f.Add(i, b)
	}
	f.Fuzz(func(t *testing.T, seed uint64, program []byte) {
		p := prog.Decode(program, 2)
		r, _ := newRing(t, sim.Config{Seed: seed, Faults: faults(), StartIndex: uint32(-(seed % 8))}, rio.WithEntries(4))
		dir := testutil.FastTempDir(t) // the programs fsync for real
		files := make([]*os.File, 2)
		for i := range files {
			fl, err := os.Create(dir + "/" + string(rune('a'+i)))
			if err != nil {
				t.Fatal(err)
			}
			defer fl.Close()
			files[i] = fl
		}
		want, wantFiles := prog.Model(2, p)
		got := (&prog.Runner{Ring: r, Files: files}).Run(p)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("seed %d: ring differs from the model (-model +ring):\n%s", seed, diff)
		}
		for i, fl := range files {
			b, err := os.ReadFile(fl.Name())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, wantFiles[i]) {
				t.Fatalf("seed %d: file %d differs from the model", seed, i)
			}
		}
	})
}
