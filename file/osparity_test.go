package file

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// These tests run each function and method of this package and its
// counterpart in package os on identical trees, side by side, and compare
// what they return: values, and errors by their text (with the two roots
// made the same), their type and the type of what they wrap.

// osLike is what *File and *os.File have in common beyond fileLike.
type osLike interface {
	fileLike
	Name() string
	ReadDir(n int) ([]fs.DirEntry, error)
	Readdir(n int) ([]fs.FileInfo, error)
	Readdirnames(n int) ([]string, error)
	Chmod(fs.FileMode) error
	Chown(uid, gid int) error
	WriteString(string) (int, error)
	SyscallConn() (syscall.RawConn, error)
	SetDeadline(time.Time) error
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

var (
	_ osLike = (*File)(nil)
	_ osLike = (*os.File)(nil)
)

// impl is one implementation of the package-level functions.
type impl struct {
	name      string
	Stat      func(string) (fs.FileInfo, error)
	Lstat     func(string) (fs.FileInfo, error)
	Remove    func(string) error
	RemoveAll func(string) error
	Rename    func(string, string) error
	Symlink   func(string, string) error
	Link      func(string, string) error
	Mkdir     func(string, fs.FileMode) error
	MkdirAll  func(string, fs.FileMode) error
	ReadFile  func(string) ([]byte, error)
	WriteFile func(string, []byte, fs.FileMode) error
	ReadDir   func(string) ([]fs.DirEntry, error)
	OpenFile  func(string, int, fs.FileMode) (osLike, error)
	DirFS     func(string) fs.FS
}

var rioImpl = impl{
	name: "rio", Stat: Stat, Lstat: Lstat, Remove: Remove, RemoveAll: RemoveAll, Rename: Rename,
	Symlink: Symlink, Link: Link, Mkdir: Mkdir, MkdirAll: MkdirAll, ReadFile: ReadFile,
	WriteFile: WriteFile, ReadDir: ReadDir, DirFS: DirFS,
	OpenFile: func(name string, flag int, perm fs.FileMode) (osLike, error) {
		f, err := OpenFile(name, flag, perm)
		if f == nil {
			return nil, err // not a typed nil
		}
		return f, err
	},
}

var osImpl = impl{
	name: "os", Stat: os.Stat, Lstat: os.Lstat, Remove: os.Remove, RemoveAll: os.RemoveAll, Rename: os.Rename,
	Symlink: os.Symlink, Link: os.Link, Mkdir: os.Mkdir, MkdirAll: os.MkdirAll, ReadFile: os.ReadFile,
	WriteFile: os.WriteFile, ReadDir: os.ReadDir, DirFS: os.DirFS,
	OpenFile: func(name string, flag int, perm fs.FileMode) (osLike, error) {
		f, err := os.OpenFile(name, flag, perm)
		if f == nil {
			return nil, err
		}
		return f, err
	},
}

// outcome is what a case observed, comparable across the two roots.
type outcome struct {
	Steps []string
}

// rec records the observations of one case.
type rec struct {
	root  string
	steps []string
}

// describe is err's text, with the root replaced, its type and the types
// of the errors it wraps.
func (r *rec) describe(err error) string {
	if err == nil {
		return "<nil>"
	}
	var types []string
	for e := err; e != nil; e = errors.Unwrap(e) {
		types = append(types, fmt.Sprintf("%T", e))
	}
	return fmt.Sprintf("%q %s", r.clean(err.Error()), strings.Join(types, "/"))
}

func (r *rec) clean(s string) string { return strings.ReplaceAll(s, r.root, "$ROOT") }

// add records a step: a value (made root-independent) and an error.
func (r *rec) add(what string, v any, err error) {
	r.steps = append(r.steps, r.clean(fmt.Sprintf("%s: %v", what, v))+" | "+r.describe(err))
}

// info describes a FileInfo without its times.
func info(fi fs.FileInfo) string {
	if fi == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%s size=%d %v dir=%v", fi.Name(), fi.Size(), fi.Mode(), fi.IsDir())
}

func dirents(ds []fs.DirEntry) string {
	var s []string
	for _, d := range ds {
		s = append(s, fs.FormatDirEntry(d))
	}
	return fmt.Sprintf("%d %v", len(ds), s)
}

// makeParityTree makes the same tree in every root.
func makeParityTree(t *testing.T, root string) {
	t.Helper()
	for _, d := range []string{"empty", "full/sub", "imm"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	for name, data := range map[string]string{"file": "hello", "full/a": "a", "full/sub/b": "bb", "zero": "", "imm/locked": "x"} {
		require.NoError(t, os.WriteFile(filepath.Join(root, name), []byte(data), 0o644))
	}
	for link, target := range map[string]string{"link": "file", "dlink": "missing", "loop1": "loop2", "loop2": "loop1", "dirlink": "full"} {
		require.NoError(t, os.Symlink(target, filepath.Join(root, link)))
	}
	if os.Geteuid() == 0 {
		setImmutable(t, filepath.Join(root, "imm/locked"))
	}
}

// parity runs fn with each implementation on its own copy of the tree and
// compares what they observed.
func parity(t *testing.T, fn func(t *testing.T, p impl, r *rec)) {
	t.Helper()
	var got [2]outcome
	for i, p := range []impl{rioImpl, osImpl} {
		root := t.TempDir()
		makeParityTree(t, root)
		r := &rec{root: root}
		fn(t, p, r)
		got[i] = outcome{r.steps}
	}
	assert.Equal(t, got[1], got[0], "rio (actual) differs from os (expected)")
}

// bothStatPaths runs test with Stat's cached path, and with every Stat
// through the ring, as for paths not in the kernel's caches.
func bothStatPaths(t *testing.T, test func(*testing.T)) {
	t.Run("cached", test)
	t.Run("ring", func(t *testing.T) {
		noResolveCached.Store(true)
		defer noResolveCached.Store(false)
		test(t)
	})
}

func TestParityStat(t *testing.T) { bothStatPaths(t, testParityStat) }

func testParityStat(t *testing.T) {
	checkLeaks(t)
	names := []string{"file", "empty", "link", "dlink", "loop1", "dirlink", "missing", "file/x", "full/sub/b",
		"", "a\x00b", strings.Repeat("x", 300), "full/../file", "full/"}
	parity(t, func(t *testing.T, p impl, r *rec) {
		for _, n := range names {
			path := filepath.Join(r.root, n)
			if n == "" || n == "full/" {
				path = n
				if n == "full/" {
					path = r.root + "/full/"
				}
			}
			fi, err := p.Stat(path)
			r.add("Stat "+n, info(fi), err)
			fi, err = p.Lstat(path)
			r.add("Lstat "+n, info(fi), err)
		}
	})
}

// TestStatMatchesOS compares every field of Stat's and Lstat's FileInfo,
// Sys included, with os's for the same files.
func TestStatMatchesOS(t *testing.T) { bothStatPaths(t, testStatMatchesOS) }

func testStatMatchesOS(t *testing.T) {
	checkLeaks(t)
	root := t.TempDir()
	makeParityTree(t, root)
	for _, n := range []string{"file", "empty", "link", "dirlink", "full/sub/b", "zero", "/dev/null", "/"} {
		path := n
		if !filepath.IsAbs(n) {
			path = filepath.Join(root, n)
		}
		for _, fn := range []struct {
			name     string
			rio, std func(string) (fs.FileInfo, error)
		}{{"Stat", Stat, os.Stat}, {"Lstat", Lstat, os.Lstat}} {
			a, err := fn.rio(path)
			require.NoError(t, err)
			b, err := fn.std(path)
			require.NoError(t, err)
			assert.Equal(t, b.Name(), a.Name(), n)
			assert.Equal(t, b.Size(), a.Size(), n)
			assert.Equal(t, b.Mode(), a.Mode(), n)
			assert.Equal(t, b.ModTime(), a.ModTime(), n)
			assert.Equal(t, b.IsDir(), a.IsDir(), n)
			sa, sb := *a.Sys().(*syscall.Stat_t), *b.Sys().(*syscall.Stat_t)
			sa.Atim, sb.Atim = syscall.Timespec{}, syscall.Timespec{} // reads may touch it
			assert.Equal(t, sb, sa, "%s %s Sys", fn.name, n)
			assert.True(t, SameFile(a, b))
		}
	}
}

func TestParityRemove(t *testing.T) {
	checkLeaks(t)
	parity(t, func(t *testing.T, p impl, r *rec) {
		for _, n := range []string{"file", "file", "empty", "full", "missing", "zero/x", "link", "dirlink", "dlink", "imm/locked", "imm"} {
			err := p.Remove(filepath.Join(r.root, n))
			_, serr := os.Lstat(filepath.Join(r.root, n))
			r.add("Remove "+n, os.IsNotExist(serr), err)
		}
		r.add("Remove empty name", nil, p.Remove(""))
		r.add("Remove NUL", nil, p.Remove("a\x00b"))
	})
}

func TestParityRemoveAll(t *testing.T) {
	checkLeaks(t)
	parity(t, func(t *testing.T, p impl, r *rec) {
		for _, n := range []string{"dirlink", "full", "full", "missing/x", "zero/x", "file", "imm", "imm/."} {
			err := p.RemoveAll(filepath.Join(r.root, n))
			_, serr := os.Lstat(filepath.Join(r.root, n))
			r.add("RemoveAll "+n, os.IsNotExist(serr), err)
		}
		for _, n := range []string{"", ".", "a\x00b", "./."} {
			r.add(fmt.Sprintf("RemoveAll %q", n), nil, p.RemoveAll(n))
		}
		// A tree of more than one batch of names, with a link to
		// outside it that must not be followed.
		big := filepath.Join(r.root, "big")
		require.NoError(t, os.MkdirAll(filepath.Join(big, "d1/d2"), 0o755))
		for i := range 2100 {
			require.NoError(t, os.WriteFile(filepath.Join(big, fmt.Sprintf("d1/f%d", i)), nil, 0o644))
		}
		require.NoError(t, os.Symlink(filepath.Join(r.root, "empty"), filepath.Join(big, "d1/d2/out")))
		err := p.RemoveAll(big)
		_, serr := os.Lstat(big)
		_, eerr := os.Lstat(filepath.Join(r.root, "empty"))
		r.add("RemoveAll big", fmt.Sprint(os.IsNotExist(serr), eerr == nil), err)
	})
}

func TestParityRename(t *testing.T) {
	checkLeaks(t)
	parity(t, func(t *testing.T, p impl, r *rec) {
		j := func(n string) string { return filepath.Join(r.root, n) }
		for _, c := range [][2]string{
			{"file", "new"}, {"new", "full/a"}, {"full/a", "empty"}, {"empty", "full"}, {"missing", "x"},
			{"missing", "empty"}, {"empty", "empty"}, {"full", "full/sub/x"}, {"zero", "missing/x"},
			{"zero/x", "y"}, {"dirlink", "full"}, {"zero", "dirlink"}, {"imm/locked", "unlocked"},
		} {
			err := p.Rename(j(c[0]), j(c[1]))
			data, _ := os.ReadFile(j(c[1]))
			r.add("Rename "+c[0]+" "+c[1], string(data), err)
		}
		r.add("Rename NUL", nil, p.Rename(j("a\x00b"), j("c")))
		r.add("Rename to NUL", nil, p.Rename(j("zero"), j("c\x00")))
		r.add("Rename empty", nil, p.Rename("", j("c")))
	})
}

func TestParityMkdir(t *testing.T) {
	checkLeaks(t)
	parity(t, func(t *testing.T, p impl, r *rec) {
		j := func(n string) string { return filepath.Join(r.root, n) }
		mode := func(n string) string {
			fi, err := os.Lstat(j(n))
			if err != nil {
				return "none"
			}
			return fi.Mode().String()
		}
		for _, n := range []string{"new", "empty", "missing/x", "file/x", "dlink", "sticky"} {
			err := p.Mkdir(j(n), 0o750|fs.ModeSticky)
			r.add("Mkdir "+n, mode(n), err)
		}
		r.add("Mkdir empty name", nil, p.Mkdir("", 0o755))
		r.add("Mkdir NUL", nil, p.Mkdir(j("a\x00b"), 0o755))
		for _, n := range []string{"a/b/c", "a/b/c", "empty", "file", "file/x/y", "n1/", "n2//n3", "empty/.", "full/sub/../new", "link/x", "dirlink/q"} {
			err := p.MkdirAll(j(n)+strings.Repeat("/", strings.Count(n, "/")-strings.Count(filepath.Clean(n), "/")), 0o700)
			r.add("MkdirAll "+n, mode(n), err)
		}
		r.add("MkdirAll NUL", nil, p.MkdirAll(j("x\x00/y"), 0o755))
		r.add("MkdirAll empty", nil, p.MkdirAll("", 0o755))
	})
}

func TestParityLinks(t *testing.T) {
	checkLeaks(t)
	parity(t, func(t *testing.T, p impl, r *rec) {
		j := func(n string) string { return filepath.Join(r.root, n) }
		for _, c := range [][2]string{{"file", "s1"}, {"file", "file"}, {"", "s2"}, {"x", "missing/s"}} {
			err := p.Symlink(c[0], j(c[1]))
			target, _ := os.Readlink(j(c[1]))
			r.add("Symlink "+c[0]+" "+c[1], target, err)
		}
		r.add("Symlink NUL", nil, p.Symlink("a\x00", j("s3")))
		for _, c := range [][2]string{{"file", "h1"}, {"missing", "h2"}, {"file", "zero"}, {"empty", "h3"}, {"link", "h4"}, {"file", "missing/h"}} {
			err := p.Link(j(c[0]), j(c[1]))
			a, _ := os.Lstat(j(c[0]))
			b, _ := os.Lstat(j(c[1]))
			r.add("Link "+c[0]+" "+c[1], a != nil && b != nil && os.SameFile(a, b), err)
		}
		r.add("Link NUL", nil, p.Link(j("file"), j("h\x00")))
	})
}

func TestParityReadWriteFile(t *testing.T) {
	checkLeaks(t)
	parity(t, func(t *testing.T, p impl, r *rec) {
		j := func(n string) string { return filepath.Join(r.root, n) }
		for _, n := range []string{j("file"), j("zero"), j("missing"), j("empty"), j("link"), j("dlink"), j("file/x"),
			"/dev/null", "/proc/self/comm", "/sys/kernel/mm/transparent_hugepage/enabled", "a\x00b", ""} {
			data, err := p.ReadFile(n)
			r.add("ReadFile "+n, fmt.Sprintf("%d %q", len(data), data), err)
		}
		big := make([]byte, 3<<20+17)
		for i := range big {
			big[i] = byte(i * 7)
		}
		require.NoError(t, os.WriteFile(j("big"), big, 0o644))
		data, err := p.ReadFile(j("big"))
		r.add("ReadFile big", slices.Equal(data, big), err)

		mode := func(n string) string {
			fi, err := os.Stat(j(n))
			if err != nil {
				return "none"
			}
			data, _ := os.ReadFile(j(n))
			return fmt.Sprintf("%v %q", fi.Mode(), data)
		}
		for _, c := range []struct {
			n    string
			perm fs.FileMode
		}{{"new", 0o600}, {"file", 0o600}, {"missing/x", 0o644}, {"empty", 0o644}, {"imm/locked", 0o644}, {"dlink", 0o640}} {
			err := p.WriteFile(j(c.n), []byte("written"), c.perm)
			r.add("WriteFile "+c.n, mode(c.n), err)
		}
		r.add("WriteFile NUL", nil, p.WriteFile(j("a\x00"), nil, 0o644))
		r.add("WriteFile /dev/full", nil, p.WriteFile("/dev/full", []byte("x"), 0o644))
	})
}

func TestParityReadDir(t *testing.T) {
	checkLeaks(t)
	parity(t, func(t *testing.T, p impl, r *rec) {
		j := func(n string) string { return filepath.Join(r.root, n) }
		for _, n := range []string{r.root, j("full"), j("empty"), j("missing"), j("file"), j("dirlink"), j("link"), j("a\x00b")} {
			ds, err := p.ReadDir(n)
			r.add("ReadDir "+n, dirents(ds), err)
			for _, d := range ds {
				fi, err := d.Info()
				r.add("  Info "+d.Name(), info(fi), err)
			}
		}
	})
}

// TestParityFileReadDir reads directories through Files, n entries at a
// time, and compares every call's result. Directory order is the file
// system's; each call's names are compared as a set.
func TestParityFileReadDir(t *testing.T) {
	checkLeaks(t)
	parity(t, func(t *testing.T, p impl, r *rec) {
		d := filepath.Join(r.root, "many")
		require.NoError(t, os.Mkdir(d, 0o755))
		for i := range 600 { // more than one buffer of getdents64
			name := fmt.Sprintf("entry-with-a-rather-long-name-%03d", i)
			if i%7 == 0 {
				require.NoError(t, os.Mkdir(filepath.Join(d, name), 0o755))
			} else {
				require.NoError(t, os.WriteFile(filepath.Join(d, name), []byte(name), 0o644))
			}
		}
		sorted := func(ss []string) string {
			ss = slices.Clone(ss)
			slices.Sort(ss)
			return fmt.Sprint(len(ss), ss)
		}
		f, err := p.OpenFile(d, os.O_RDONLY, 0)
		require.NoError(t, err)
		for _, n := range []int{1, 2, 3, 100, 0} {
			ds, err := f.ReadDir(n)
			var names []string
			for _, e := range ds {
				names = append(names, fs.FormatDirEntry(e))
			}
			r.add(fmt.Sprintf("ReadDir(%d)", n), sorted(names), err)
		}
		for _, n := range []int{1, -1, 0} {
			ds, err := f.ReadDir(n)
			r.add(fmt.Sprintf("ReadDir(%d) at end", n), fmt.Sprint(len(ds), ds == nil), err)
		}
		_, err = f.Seek(0, io.SeekStart)
		r.add("Seek", nil, err)
		for _, n := range []int{5, 50, -1, 3} {
			names, err := f.Readdirnames(n)
			r.add(fmt.Sprintf("Readdirnames(%d)", n), sorted(names)+fmt.Sprint(names == nil), err)
		}
		f.Seek(0, io.SeekStart)
		for _, n := range []int{10, 0, 1} {
			fis, err := f.Readdir(n)
			var infos []string
			for _, fi := range fis {
				infos = append(infos, info(fi))
			}
			r.add(fmt.Sprintf("Readdir(%d)", n), sorted(infos)+fmt.Sprint(fis == nil), err)
		}
		r.add("Close", nil, f.Close())
		for _, n := range []int{1, -1} {
			ds, err := f.ReadDir(n)
			r.add(fmt.Sprintf("closed ReadDir(%d)", n), fmt.Sprint(len(ds), ds == nil), err)
			names, err := f.Readdirnames(n)
			r.add(fmt.Sprintf("closed Readdirnames(%d)", n), fmt.Sprint(len(names), names == nil), err)
			fis, err := f.Readdir(n)
			r.add(fmt.Sprintf("closed Readdir(%d)", n), fmt.Sprint(len(fis), fis == nil), err)
		}

		// A regular file is no directory.
		g, err := p.OpenFile(filepath.Join(r.root, "file"), os.O_RDONLY, 0)
		require.NoError(t, err)
		defer g.Close()
		ds, err := g.ReadDir(1)
		r.add("file ReadDir(1)", len(ds), err)
		ns, err := g.Readdirnames(-1)
		r.add("file Readdirnames(-1)", len(ns), err)
		fis, err := g.Readdir(0)
		r.add("file Readdir(0)", len(fis), err)
	})
}

// TestParityFileMethods: WriteString, Chmod, Chown, SyscallConn and the
// deadlines of a regular file, open and closed.
func TestParityFileMethods(t *testing.T) {
	checkLeaks(t)
	parity(t, func(t *testing.T, p impl, r *rec) {
		name := filepath.Join(r.root, "file")
		for _, flag := range []int{os.O_RDWR, os.O_RDONLY} {
			f, err := p.OpenFile(name, flag, 0)
			require.NoError(t, err)
			n, err := f.WriteString("HE")
			r.add("WriteString", n, err)
			n, err = f.WriteString("")
			r.add("WriteString empty", n, err)
			err = f.Chmod(0o600 | fs.ModeSetgid)
			fi, _ := os.Stat(name)
			r.add("Chmod", fi.Mode(), err)
			r.add("Chown -1 -1", nil, f.Chown(-1, -1))
			r.add("Chown self", nil, f.Chown(os.Getuid(), os.Getgid()))
			rc, err := f.SyscallConn()
			r.add("SyscallConn", nil, err)
			var got uintptr
			err = rc.Control(func(fd uintptr) { got = fd })
			r.add("Control", got == f.(interface{ Fd() uintptr }).Fd(), err)
			calls := 0
			err = rc.Read(func(uintptr) bool { calls++; return calls > 1 })
			r.add("RawRead false", calls, err)
			calls = 0
			err = rc.Write(func(uintptr) bool { calls++; return true })
			r.add("RawWrite true", calls, err)
			r.add("SetDeadline", nil, f.SetDeadline(time.Now().Add(time.Hour)))
			r.add("SetReadDeadline", nil, f.SetReadDeadline(time.Time{}))
			r.add("SetWriteDeadline", nil, f.SetWriteDeadline(time.Now()))
			r.add("Close", nil, f.Close())
			n, err = f.WriteString("x")
			r.add("closed WriteString", n, err)
			r.add("closed Chmod", nil, f.Chmod(0o644))
			r.add("closed Chown", nil, f.Chown(-1, -1))
			rc, err = f.SyscallConn()
			r.add("closed SyscallConn", nil, err)
			r.add("closed Control", nil, rc.Control(func(uintptr) {}))
			r.add("closed RawRead", nil, rc.Read(func(uintptr) bool { return true }))
			r.add("closed RawWrite", nil, rc.Write(func(uintptr) bool { return true }))
			r.add("closed SetDeadline", nil, f.SetDeadline(time.Time{}))
			r.add("closed SetReadDeadline", nil, f.SetReadDeadline(time.Time{}))
			r.add("closed SetWriteDeadline", nil, f.SetWriteDeadline(time.Time{}))
		}
		data, _ := os.ReadFile(name)
		r.add("contents", string(data), nil)
	})
}

// TestParityDeadlines: on a FIFO, deadlines end Reads and Writes that
// would block, with os's errors; a deadline that has passed fails them at
// once; a zero deadline removes it.
func TestParityDeadlines(t *testing.T) {
	checkLeaks(t)
	parity(t, func(t *testing.T, p impl, r *rec) {
		fifo := filepath.Join(r.root, "fifo")
		require.NoError(t, unix.Mkfifo(fifo, 0o600))
		f, err := p.OpenFile(fifo, os.O_RDWR, 0) // neither end waits for the other
		require.NoError(t, err)
		defer f.Close()
		buf := make([]byte, 10)

		require.NoError(t, f.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
		n, err := f.Read(buf)
		r.add("Read, empty, deadline", n, err)
		r.add("  is ErrDeadlineExceeded, timeout", errors.Is(err, os.ErrDeadlineExceeded) && os.IsTimeout(err), nil)

		_, err = f.WriteString("data")
		r.add("Write", nil, err)
		n, err = f.Read(buf)
		r.add("Read after the deadline, data there", n, err)
		require.NoError(t, f.SetReadDeadline(time.Time{}))
		n, err = f.Read(buf)
		r.add("Read, no deadline", string(buf[:n]), err)

		require.NoError(t, f.SetDeadline(time.Now().Add(-time.Second)))
		n, err = f.WriteString("x")
		r.add("Write past the deadline", n, err)
		require.NoError(t, f.SetDeadline(time.Time{}))

		// Fill the FIFO: the write blocks once it is full, until the
		// deadline. Its count is what fit.
		require.NoError(t, f.SetWriteDeadline(time.Now().Add(30*time.Millisecond)))
		big := make([]byte, 1<<20)
		n, err = f.Write(big)
		r.add("Write, full, deadline", n, err)
		require.NoError(t, f.SetWriteDeadline(time.Time{}))

		rc, err := f.SyscallConn()
		require.NoError(t, err)
		require.NoError(t, f.SetWriteDeadline(time.Now().Add(20*time.Millisecond)))
		calls := 0
		err = rc.Write(func(uintptr) bool { calls++; return false })
		r.add("RawWrite, full, deadline", calls > 0, err)
	})
}

// TestDeadlineMovesBlockedRead: a deadline set, moved or removed while a
// Read is blocked applies to that Read, and its ring operation is
// cancelled (the read does not consume data written later).
func TestDeadlineMovesBlockedRead(t *testing.T) {
	checkLeaks(t)
	fifo := filepath.Join(t.TempDir(), "fifo")
	require.NoError(t, unix.Mkfifo(fifo, 0o600))
	f, err := OpenFile(fifo, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	read := func() chan error {
		errc := make(chan error, 1)
		go func() {
			buf := make([]byte, 10)
			n, err := f.Read(buf)
			if err == nil {
				err = fmt.Errorf("read %q", buf[:n])
			}
			errc <- err
		}()
		return errc
	}
	wait := func(errc chan error) error {
		select {
		case err := <-errc:
			return err
		case <-time.After(10 * time.Second):
			require.FailNow(t, "the blocked Read did not return")
			return nil
		}
	}

	// No deadline, then one in the past: the blocked Read ends.
	errc := read()
	time.Sleep(10 * time.Millisecond) // let it block (not a timing assertion)
	require.NoError(t, f.SetReadDeadline(time.Now().Add(-time.Second)))
	err = wait(errc)
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	assert.Equal(t, "read "+fifo+": i/o timeout", err.Error())

	// A far deadline, removed while the Read is blocked: it goes on, and
	// reads what is written.
	require.NoError(t, f.SetReadDeadline(time.Now().Add(time.Hour)))
	errc = read()
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, f.SetReadDeadline(time.Time{}))
	_, err = f.WriteString("later")
	require.NoError(t, err)
	assert.EqualError(t, wait(errc), `read "later"`)

	// A near deadline pushed back while blocked still ends it.
	require.NoError(t, f.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
	errc = read()
	require.NoError(t, f.SetReadDeadline(time.Now().Add(40*time.Millisecond)))
	assert.ErrorIs(t, wait(errc), os.ErrDeadlineExceeded)
	// The cancelled read took nothing: the next one gets the data.
	require.NoError(t, f.SetReadDeadline(time.Time{}))
	_, err = f.WriteString("kept")
	require.NoError(t, err)
	assert.EqualError(t, wait(read()), `read "kept"`)
}

// TestParityDirFS: DirFS refuses the names os.DirFS refuses, with the same
// errors, and its errors name the path given.
func TestParityDirFS(t *testing.T) {
	checkLeaks(t)
	parity(t, func(t *testing.T, p impl, r *rec) {
		for _, root := range []string{r.root, r.root + "/", ""} {
			fsys := p.DirFS(root)
			for _, n := range []string{"file", "full/a", ".", "../file", "/etc/passwd", "full/../file", "full/", "a\x00b", "", "missing", "file/x", "link", "dlink", "dirlink/a"} {
				f, err := fsys.Open(n)
				if err == nil {
					fi, serr := f.Stat()
					r.add("Open "+n+" Stat", info(fi), serr)
					f.Close()
				} else {
					r.add("Open "+n, nil, err)
				}
				data, err := fs.ReadFile(fsys, n)
				r.add("ReadFile "+n, string(data), err)
				ds, err := fs.ReadDir(fsys, n)
				r.add("ReadDir "+n, dirents(ds), err)
				fi, err := fs.Stat(fsys, n)
				r.add("Stat "+n, info(fi), err)
				fi, err = fs.Lstat(fsys, n)
				r.add("Lstat "+n, info(fi), err)
				target, err := fs.ReadLink(fsys, n)
				r.add("ReadLink "+n, target, err)
			}
		}
	})
}
