package file

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	modelSeed = flag.Uint64("model.seed", 0, "run TestModel with this seed only")
	modelRuns = flag.Int("model.runs", 40, "number of seeds TestModel runs")
	modelOps  = flag.Int("model.ops", 150, "operations per TestModel run")
)

// fileLike is what *File and *os.File have in common.
type fileLike interface {
	io.Reader
	io.Writer
	io.ReaderAt
	io.WriterAt
	io.Seeker
	io.Closer
	io.ReaderFrom
	io.WriterTo
	Truncate(int64) error
	Sync() error
	Stat() (fs.FileInfo, error)
}

var (
	_ fileLike = (*File)(nil)
	_ fileLike = (*os.File)(nil)
)

// step is the observable outcome of one operation.
type step struct {
	Op   string
	N    int64
	Err  string
	Data []byte
}

// errText describes err without the path, which differs between the two
// files, and without the package prefix of messages both packages have.
func errText(err error) string {
	if err == nil {
		return ""
	}
	if err == io.EOF {
		return "EOF"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Sprintf("PathError{%s: %v}", pe.Op, pe.Err)
	}
	s := err.Error()
	s = strings.TrimPrefix(s, "os: ")
	s = strings.TrimPrefix(s, "file: ")
	return fmt.Sprintf("%T: %s", err, s)
}

// modelEnv holds the files of one implementation.
type modelEnv struct {
	dir  string
	f    fileLike
	open func(name string, flag int) (fileLike, error)
}

// TestModel runs seeded random sequences of File methods on a File and on
// an *os.File, side by side, and compares every result and the final
// contents with go-cmp. A failure prints the seed; rerun it with
// -model.seed=N.
func TestModel(t *testing.T) {
	r := newRing(t)
	seeds := make([]uint64, 0, *modelRuns)
	if *modelSeed != 0 {
		seeds = append(seeds, *modelSeed)
	} else {
		base := rand.Uint64()
		for i := range *modelRuns {
			seeds = append(seeds, base+uint64(i))
		}
	}
	for _, seed := range seeds {
		ok := t.Run(fmt.Sprint(seed), func(t *testing.T) {
			openRio := func(name string, flag int) (fileLike, error) { return OpenFileRing(r, name, flag, 0o644) }
			openOS := func(name string, flag int) (fileLike, error) { return os.OpenFile(name, flag, 0o644) }
			runModel(t, seed, openRio, openOS)
		})
		if !ok {
			t.Fatalf("TestModel failed with seed %d: rerun with go test -run TestModel -model.seed=%d", seed, seed)
		}
	}
}

func runModel(t *testing.T, seed uint64, openA, openB func(string, int) (fileLike, error)) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	initial := make([]byte, rng.IntN(40<<10))
	fillRand(rng, initial)
	srcData := make([]byte, 1+rng.IntN(40<<10))
	fillRand(rng, srcData)

	flag := os.O_RDWR | os.O_CREATE
	if rng.IntN(8) == 0 {
		flag |= os.O_APPEND
	}
	envs := make([]*modelEnv, 2)
	for i, open := range []func(string, int) (fileLike, error){openA, openB} {
		dir := t.TempDir()
		for _, n := range []string{"f", "src"} {
			data := initial
			if n == "src" {
				data = srcData
			}
			if err := os.WriteFile(filepath.Join(dir, n), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		f, err := open(filepath.Join(dir, "f"), flag)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		envs[i] = &modelEnv{dir: dir, f: f, open: open}
	}

	size := func() int64 { return int64(40<<10 + 8<<10) }
	for i := range *modelOps {
		kind := rng.IntN(14)
		n := rng.IntN(16 << 10)
		if rng.IntN(10) == 0 {
			n = 0
		}
		off := rng.Int64N(size())
		if rng.IntN(20) == 0 {
			off = -1 - rng.Int64N(100)
		}
		whence := rng.IntN(3)
		data := make([]byte, n)
		fillRand(rng, data)
		limit := rng.Int64N(20 << 10)
		srcOff := rng.Int64N(int64(len(srcData)) + 100)

		var got [2]step
		for k, e := range envs {
			got[k] = e.apply(t, kind, n, off, whence, data, limit, srcOff)
		}
		// go-cmp walks byte slices element by element: check equality
		// cheaply first, and let it explain a difference.
		if reflect.DeepEqual(got[0], got[1]) {
			continue
		}
		if d := cmp.Diff(got[0], got[1]); d != "" {
			t.Fatalf("seed %d, operation %d (%s): rio (-) and os (+) differ:\n%s", seed, i, got[1].Op, d)
		}
	}
	var final [2][]byte
	var modes [2]fs.FileMode
	for k, e := range envs {
		fi, err := e.f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		modes[k] = fi.Mode()
		if err := e.f.Close(); err != nil {
			t.Fatalf("seed %d: Close: %v", seed, err)
		}
		final[k], err = os.ReadFile(filepath.Join(e.dir, "f"))
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(final[0], final[1]) {
		t.Fatalf("seed %d: final contents differ (-rio +os):\n%s", seed, cmp.Diff(final[0], final[1]))
	}
	if modes[0] != modes[1] {
		t.Fatalf("seed %d: modes differ: %v and %v", seed, modes[0], modes[1])
	}
}

func fillRand(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

func (e *modelEnv) apply(t *testing.T, kind, n int, off int64, whence int, data []byte, limit, srcOff int64) step {
	f := e.f
	switch kind {
	case 0, 1:
		b := make([]byte, n)
		m, err := f.Read(b)
		return step{Op: fmt.Sprintf("Read(%d)", n), N: int64(m), Err: errText(err), Data: b[:max(m, 0)]}
	case 2, 3:
		m, err := f.Write(data)
		return step{Op: fmt.Sprintf("Write(%d)", n), N: int64(m), Err: errText(err)}
	case 4:
		if whence == io.SeekStart {
			off = off % 50000
		} else {
			off = off%20000 - 10000
		}
		p, err := f.Seek(off, whence)
		return step{Op: fmt.Sprintf("Seek(%d, %d)", off, whence), N: p, Err: errText(err)}
	case 5, 6:
		b := make([]byte, n)
		m, err := f.ReadAt(b, off)
		return step{Op: fmt.Sprintf("ReadAt(%d, %d)", n, off), N: int64(m), Err: errText(err), Data: b[:max(m, 0)]}
	case 7, 8:
		m, err := f.WriteAt(data, off)
		return step{Op: fmt.Sprintf("WriteAt(%d, %d)", n, off), N: int64(m), Err: errText(err)}
	case 9:
		sz := off % 50000
		if off < 0 {
			sz = off
		}
		return step{Op: fmt.Sprintf("Truncate(%d)", sz), Err: errText(f.Truncate(sz))}
	case 10:
		return step{Op: "Sync", Err: errText(f.Sync())}
	case 11:
		m, err := f.ReadFrom(bytes.NewReader(data))
		return step{Op: fmt.Sprintf("ReadFrom(bytes %d)", n), N: m, Err: errText(err)}
	case 12:
		// ReadFrom a file of the same implementation, possibly limited:
		// the copy_file_range path.
		src, err := e.open(filepath.Join(e.dir, "src"), os.O_RDONLY)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		if _, err := src.Seek(srcOff, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		var r io.Reader = src
		op := fmt.Sprintf("ReadFrom(file at %d)", srcOff)
		if limit%2 == 0 {
			r = io.LimitReader(src, limit)
			op = fmt.Sprintf("ReadFrom(LimitReader(file at %d, %d))", srcOff, limit)
		}
		m, err := f.ReadFrom(r)
		pos, _ := src.Seek(0, io.SeekCurrent)
		return step{Op: op, N: m, Err: errText(err), Data: []byte(fmt.Sprint("src position ", pos))}
	default:
		var buf bytes.Buffer
		m, err := f.WriteTo(&buf)
		return step{Op: "WriteTo(buffer)", N: m, Err: errText(err), Data: buf.Bytes()}
	}
}
