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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
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
// contents. A failure prints the seed; rerun it with
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
		require.True(t, ok, "TestModel failed with seed %d: rerun with go test -run TestModel -model.seed=%d", seed, seed)
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
			require.NoError(t, os.WriteFile(filepath.Join(dir, n), data, 0o644))
		}
		f, err := open(filepath.Join(dir, "f"), flag)
		require.NoError(t, err)
		t.Cleanup(func() { f.Close() })
		envs[i] = &modelEnv{dir: dir, f: f, open: open}
	}

	size := func() int64 { return int64(40<<10 + 8<<10) }
	for i := range *modelOps {
		kind := rng.IntN(19)
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
		require.Equal(t, got[1], got[0], "seed %d, operation %d (%s): rio (actual) differs from os (expected)", seed, i, got[1].Op)
	}
	var final [2][]byte
	var modes [2]fs.FileMode
	for k, e := range envs {
		fi, err := e.f.Stat()
		require.NoError(t, err)
		modes[k] = fi.Mode()
		require.NoError(t, e.f.Close(), "seed %d: Close", seed)
		final[k], err = os.ReadFile(filepath.Join(e.dir, "f"))
		require.NoError(t, err)
	}
	require.Equal(t, final[1], final[0], "seed %d: final contents differ, rio (actual), os (expected)", seed)
	require.Equal(t, modes[1], modes[0], "seed %d: modes differ, rio (actual), os (expected)", seed)
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
		require.NoError(t, err)
		defer src.Close()
		_, err = src.Seek(srcOff, io.SeekStart)
		require.NoError(t, err)
		var r io.Reader = src
		op := fmt.Sprintf("ReadFrom(file at %d)", srcOff)
		if limit%2 == 0 {
			r = io.LimitReader(src, limit)
			op = fmt.Sprintf("ReadFrom(LimitReader(file at %d, %d))", srcOff, limit)
		}
		m, err := f.ReadFrom(r)
		pos, _ := src.Seek(0, io.SeekCurrent)
		return step{Op: op, N: m, Err: errText(err), Data: []byte(fmt.Sprint("src position ", pos))}
	case 13:
		var buf bytes.Buffer
		m, err := f.WriteTo(&buf)
		return step{Op: "WriteTo(buffer)", N: m, Err: errText(err), Data: buf.Bytes()}
	}
	// The methods of issue 14, which both *File and *os.File have.
	g := f.(osLike)
	switch kind {
	case 14:
		m, err := g.WriteString(string(data))
		return step{Op: fmt.Sprintf("WriteString(%d)", n), N: int64(m), Err: errText(err)}
	case 15:
		mode := fs.FileMode(0o600 | whence<<3 | n&0o7)
		err := g.Chmod(mode)
		fi, serr := g.Stat()
		var got fs.FileMode
		if serr == nil {
			got = fi.Mode()
		}
		return step{Op: fmt.Sprintf("Chmod(%v)+Stat", mode), N: int64(got), Err: errText(err) + errText(serr)}
	case 16:
		ds, err := g.ReadDir(whence - 1)
		names, err2 := g.Readdirnames(whence)
		return step{Op: fmt.Sprintf("ReadDir(%d)+Readdirnames(%d) of a file", whence-1, whence),
			N: int64(len(ds) + len(names)), Err: errText(err) + " " + errText(err2)}
	case 17:
		var err error
		switch whence {
		case 0:
			err = g.SetDeadline(time.Now().Add(time.Hour))
		case 1:
			err = g.SetReadDeadline(time.Time{})
		default:
			err = g.SetWriteDeadline(time.Now())
		}
		return step{Op: fmt.Sprintf("SetDeadline kind %d", whence), Err: errText(err)}
	default:
		rc, err := g.SyscallConn()
		var size int64
		if err == nil {
			err = rc.Control(func(fd uintptr) {
				var st unix.Stat_t
				if unix.Fstat(int(fd), &st) == nil {
					size = st.Size
				}
			})
		}
		return step{Op: "SyscallConn+Control(fstat)", N: size, Err: errText(err)}
	}
}

var pathModelRuns = flag.Int("pathmodel.runs", 10, "number of seeds TestPathModel runs")

// TestPathModel runs seeded random sequences of the package-level
// functions, the directory methods of File and DirFS's methods on two
// twin trees, one with this package and one with package os, and compares
// every result, error texts included (with the roots made the same), and
// the final trees. A failure prints the seed; rerun it with
// -model.seed=N.
func TestPathModel(t *testing.T) {
	checkLeaks(t)
	seeds := make([]uint64, 0, *pathModelRuns)
	if *modelSeed != 0 {
		seeds = append(seeds, *modelSeed)
	} else {
		base := rand.Uint64()
		for i := range *pathModelRuns {
			seeds = append(seeds, base+uint64(i))
		}
	}
	for i, seed := range seeds {
		ok := t.Run(fmt.Sprint(seed), func(t *testing.T) {
			// Every other run stats through the ring only.
			noResolveCached.Store(i%2 == 1)
			defer noResolveCached.Store(false)
			runPathModel(t, seed)
		})
		require.True(t, ok, "TestPathModel failed with seed %d: rerun with go test -run TestPathModel -model.seed=%d", seed, seed)
	}
}

// pathModelNames are the names the operations use, relative to the root.
var pathModelNames = []string{"a", "b", "d", "d/a", "d/e", "d/e/f", "d/e/f/g", "l", "d/l", "a/x", "", ".", "d/.", "d/../b"}

func runPathModel(t *testing.T, seed uint64) {
	var got [2]outcome
	var trees [2][]string
	for k, p := range []impl{rioImpl, osImpl} {
		rng := rand.New(rand.NewPCG(seed, 99))
		// Each root in a directory of its own: names such as "l/.."
		// reach its parent.
		root := filepath.Join(t.TempDir(), "root")
		require.NoError(t, os.Mkdir(root, 0o755))
		r := &rec{root: root}
		for range *modelOps {
			pathModelStep(t, rng, p, r)
			// The tree after each step, so that a difference shows
			// where it begins, even one no result reports.
			r.steps = append(r.steps, fmt.Sprint("  tree: ", listTree(t, r.root)))
		}
		got[k] = outcome{r.steps}
		trees[k] = listTree(t, r.root)
	}
	require.Equal(t, got[1], got[0], "seed %d: rio (actual) differs from os (expected)", seed)
	require.Equal(t, trees[1], trees[0], "seed %d: final trees differ, rio (actual), os (expected)", seed)
}

func pathModelStep(t *testing.T, rng *rand.Rand, p impl, r *rec) {
	pick := func() string { return pathModelNames[rng.IntN(len(pathModelNames))] }
	j := func(n string) string {
		if n == "" {
			return ""
		}
		return r.root + "/" + n
	}
	a, b := pick(), pick()
	perm := fs.FileMode(0o700 | rng.IntN(0o100))
	data := make([]byte, rng.IntN(3)*rng.IntN(5000))
	fillRand(rng, data)
	switch rng.IntN(17) {
	case 0, 1:
		r.add(fmt.Sprintf("WriteFile %s %d %v", a, len(data), perm), nil, p.WriteFile(j(a), data, perm))
	case 2:
		d, err := p.ReadFile(j(a))
		r.add("ReadFile "+a, fmt.Sprintf("%d %x", len(d), crc(d)), err)
	case 3:
		r.add(fmt.Sprintf("Mkdir %s %v", a, perm), nil, p.Mkdir(j(a), perm))
	case 4:
		r.add(fmt.Sprintf("MkdirAll %s %v", a, perm), nil, p.MkdirAll(j(a), perm))
	case 5:
		r.add("Remove "+a, nil, p.Remove(j(a)))
	case 6:
		r.add("RemoveAll "+a, nil, p.RemoveAll(j(a)))
	case 7, 8:
		r.add("Rename "+a+" "+b, nil, p.Rename(j(a), j(b)))
	case 9:
		r.add("Symlink "+b+" "+a, nil, p.Symlink(b, j(a)))
	case 10:
		r.add("Link "+a+" "+b, nil, p.Link(j(a), j(b)))
	case 11:
		fi, err := p.Stat(j(a))
		r.add("Stat "+a, info(fi), err)
		fi, err = p.Lstat(j(a))
		r.add("Lstat "+a, info(fi), err)
	case 12:
		ds, err := p.ReadDir(j(a))
		r.add("ReadDir "+a, dirents(ds), err)
	case 13:
		// A directory read n entries at a time through a File.
		f, err := p.OpenFile(j(a), os.O_RDONLY, 0)
		r.add("Open "+a, nil, err)
		if err != nil {
			return
		}
		n := rng.IntN(4) - 1
		for range 4 {
			names, err := f.Readdirnames(n)
			slices.Sort(names)
			r.add(fmt.Sprintf("  Readdirnames(%d)", n), names, err)
			if err != nil || n <= 0 {
				break
			}
		}
		fis, err := f.Readdir(-1)
		var infos []string
		for _, fi := range fis {
			infos = append(infos, info(fi))
		}
		slices.Sort(infos)
		r.add("  Readdir(-1)", infos, err)
		r.add("  Close", nil, f.Close())
	default:
		// DirFS, with names as fs.FS takes them.
		fsys := p.DirFS(r.root)
		name := a
		if name == "" {
			name = "."
		}
		d, err := fs.ReadFile(fsys, name)
		r.add("DirFS ReadFile "+name, fmt.Sprintf("%d %x", len(d), crc(d)), err)
		fi, err := fs.Stat(fsys, name)
		r.add("DirFS Stat "+name, info(fi), err)
		ds, err := fs.ReadDir(fsys, name)
		r.add("DirFS ReadDir "+name, dirents(ds), err)
		fi, err = fs.Lstat(fsys, name)
		r.add("DirFS Lstat "+name, info(fi), err)
		target, err := fs.ReadLink(fsys, name)
		r.add("DirFS ReadLink "+name, target, err)
	}
}

func crc(b []byte) uint32 {
	var h uint32 = 2166136261
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

// listTree describes every file under root: path, type and permissions,
// size and a hash of the contents, or the target of a link.
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		s := fmt.Sprintf("%s %v", rel, fi.Mode())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(path)
			s += " -> " + target
		case fi.Mode().IsRegular():
			data, _ := os.ReadFile(path)
			s += fmt.Sprintf(" %d %x", len(data), crc(data))
		}
		out = append(out, s)
		return nil
	})
	require.NoError(t, err)
	return out
}
