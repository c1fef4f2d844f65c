package file

import (
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"github.com/gorio/rio"
	"golang.org/x/sys/unix"
)

// Reading directories.
//
// io_uring has no operation for getdents64, so ReadDir, Readdir and
// Readdirnames call it directly, as os does, into a buffer of the File's.
// It is the one blocking system call of a File: on a directory whose blocks
// are not cached it holds its thread until the disk answers (the Go
// scheduler then hands the thread's P to another thread, as for any system
// call). The stats that Readdir needs (and ReadDir for file systems that do
// not report entry types) go through the ring, as statx operations, one
// submission for a buffer's worth of entries.

// dirBufSize is the size of the getdents64 buffer. os uses 8 KiB; four
// times that takes a directory of about a thousand entries in one call.
const dirBufSize = 32 << 10

var dirBufPool = sync.Pool{New: func() any {
	b := make([]byte, dirBufSize)
	return &b
}}

// dirInfo is what a File being read as a directory keeps between calls.
type dirInfo struct {
	buf  *[]byte // from dirBufPool
	nbuf int     // bytes getdents64 returned
	bufp int     // the next record
	read bool    // getdents64 succeeded: the File is a directory
}

// errFileClosing is what os.File's directory methods report, inside their
// *fs.PathError, on a closed file: the text of the internal/poll error, not
// fs.ErrClosed.
var errFileClosing = errors.New("use of closed file")

// dropDir forgets the directory buffer, so that the next read of the
// directory starts from the descriptor's offset (after Seek). It reports
// whether the File was being read as a directory, whose position is then
// the kernel's. posMu is held.
func (f *File) dropDir() bool {
	if f.dir == nil {
		return false
	}
	if f.dir.buf != nil {
		dirBufPool.Put(f.dir.buf)
	}
	wasDir := f.dir.read
	f.dir = nil
	return wasDir
}

// ReadDir reads the directory and returns up to n of its entries, in
// directory order, as os.File.ReadDir does: with n > 0, at most n, and an
// empty slice with io.EOF at the end; with n <= 0, all that remain, with a
// nil error. Later calls go on from where the last one stopped. An entry's
// Info calls Lstat for it then.
func (f *File) ReadDir(n int) ([]fs.DirEntry, error) {
	if f == nil {
		return nil, os.ErrInvalid
	}
	if f.osf != nil {
		return f.osf.ReadDir(n)
	}
	_, dirents, _, err := f.readdir(n, readDirEntries)
	if dirents == nil {
		dirents = []fs.DirEntry{}
	}
	return dirents, err
}

// Readdir is ReadDir, returning what Lstat would for each entry, as
// os.File.Readdir does. The stats go through the ring, together.
func (f *File) Readdir(n int) ([]fs.FileInfo, error) {
	if f == nil {
		return nil, os.ErrInvalid
	}
	if f.osf != nil {
		return f.osf.Readdir(n)
	}
	_, _, infos, err := f.readdir(n, readDirInfos)
	if infos == nil {
		infos = []fs.FileInfo{}
	}
	return infos, err
}

// Readdirnames is ReadDir, returning the entries' names only, as
// os.File.Readdirnames does.
func (f *File) Readdirnames(n int) ([]string, error) {
	if f == nil {
		return nil, os.ErrInvalid
	}
	if f.osf != nil {
		return f.osf.Readdirnames(n)
	}
	names, _, _, err := f.readdir(n, readDirNames)
	if names == nil {
		names = []string{}
	}
	return names, err
}

type readDirMode int

const (
	readDirNames readDirMode = iota
	readDirEntries
	readDirInfos
)

// rawEntry is a directory entry as getdents64 gave it.
type rawEntry struct {
	name string
	typ  fs.FileMode // ^0: unknown (DT_UNKNOWN)
}

// readdir is readDir on the File, which it holds open meanwhile.
func (f *File) readdir(n int, mode readDirMode) (names []string, dirents []fs.DirEntry, infos []fs.FileInfo, err error) {
	if !f.acquire() {
		return nil, nil, nil, &fs.PathError{Op: "readdirent", Path: f.name, Err: errFileClosing}
	}
	defer f.release()
	f.posMu.Lock()
	defer f.posMu.Unlock()
	if f.dir == nil {
		f.dir = new(dirInfo)
	}
	return readDir(f.ring, f.fd, f.name, f.dir, n, mode)
}

// readDir reads the entries of directory fd, named name, into d's buffer
// and returns up to n of them, following os's algorithm: n counts the
// entries taken from the buffer, including any that disappear before they
// are stat'ed.
func readDir(r *rio.Ring, fd int, name string, d *dirInfo, n int, mode readDirMode) (names []string, dirents []fs.DirEntry, infos []fs.FileInfo, err error) {
	if d.buf == nil {
		d.buf = dirBufPool.Get().(*[]byte)
	}
	if n == 0 {
		n = -1 // below: negative means all, positive counts down to 0
	}
	var raw []rawEntry
	var readErr error
	for n != 0 {
		if d.bufp >= d.nbuf {
			d.bufp = 0
			var e error
			d.nbuf, e = getdents(fd, *d.buf)
			if e != nil {
				d.nbuf = 0
				readErr = &fs.PathError{Op: "readdirent", Path: name, Err: e}
				break
			}
			d.read = true
			if d.nbuf <= 0 {
				dirBufPool.Put(d.buf)
				d.buf = nil
				break // end of directory
			}
		}
		rec, ok := nextDirent((*d.buf)[d.bufp:d.nbuf])
		if !ok {
			break
		}
		d.bufp += len(rec)
		ename, typ, ok := parseDirent(rec)
		if !ok {
			break
		}
		if ename == "." || ename == ".." {
			continue
		}
		if n > 0 {
			n--
		}
		if mode == readDirNames {
			names = append(names, ename)
		} else {
			raw = append(raw, rawEntry{ename, typ})
		}
	}

	at := statDir{r, fd, name}
	switch mode {
	case readDirEntries:
		dirents, err = at.dirents(raw)
		if err != nil {
			return nil, dirents, nil, err
		}
	case readDirInfos:
		infos, err = at.infos(raw)
		if err != nil {
			return nil, nil, infos, err
		}
	}
	if readErr != nil {
		return names, dirents, infos, readErr
	}
	if n > 0 && len(names)+len(dirents)+len(infos) == 0 {
		return nil, nil, nil, io.EOF
	}
	return names, dirents, infos, nil
}

// statDir stats entries of directory fd, named name, through r.
type statDir struct {
	r    *rio.Ring
	fd   int
	name string
}

// getdents reads directory entries into buf, retrying on EINTR.
func getdents(fd int, buf []byte) (int, error) {
	for {
		n, err := unix.Getdents(fd, buf)
		if err != syscall.EINTR {
			return n, err
		}
	}
}

var (
	direntInoOff    = unsafe.Offsetof(syscall.Dirent{}.Ino)
	direntReclenOff = unsafe.Offsetof(syscall.Dirent{}.Reclen)
	direntTypeOff   = unsafe.Offsetof(syscall.Dirent{}.Type)
	direntNameOff   = unsafe.Offsetof(syscall.Dirent{}.Name)
)

// nextDirent returns the first record of buf, or false if buf does not
// hold a whole one.
func nextDirent(buf []byte) ([]byte, bool) {
	if len(buf) < int(direntReclenOff)+2 {
		return nil, false
	}
	reclen := int(binary.NativeEndian.Uint16(buf[direntReclenOff:]))
	if reclen > len(buf) || reclen <= int(direntNameOff) {
		return nil, false
	}
	return buf[:reclen], true
}

// parseDirent returns the name and type of a record.
func parseDirent(rec []byte) (name string, typ fs.FileMode, ok bool) {
	if len(rec) < int(direntInoOff)+8 {
		return "", 0, false
	}
	nb := rec[direntNameOff:]
	for i, c := range nb {
		if c == 0 {
			nb = nb[:i]
			break
		}
	}
	return string(nb), direntType(rec[direntTypeOff]), true
}

func direntType(t uint8) fs.FileMode {
	switch t {
	case syscall.DT_BLK:
		return fs.ModeDevice
	case syscall.DT_CHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case syscall.DT_DIR:
		return fs.ModeDir
	case syscall.DT_FIFO:
		return fs.ModeNamedPipe
	case syscall.DT_LNK:
		return fs.ModeSymlink
	case syscall.DT_REG:
		return 0
	case syscall.DT_SOCK:
		return fs.ModeSocket
	}
	return ^fs.FileMode(0)
}

// direntsOf makes the DirEntries of raw, stat'ing those whose type the
// file system did not report. Entries that no longer exist are left out;
// another error stops it, with the entries before.
func (f statDir) dirents(raw []rawEntry) ([]fs.DirEntry, error) {
	var unknown []string
	for _, e := range raw {
		if e.typ == ^fs.FileMode(0) {
			unknown = append(unknown, e.name)
		}
	}
	var infos []fs.FileInfo
	var errs []error
	if len(unknown) > 0 {
		infos, errs = f.lstatAt(unknown)
	}
	var out []fs.DirEntry
	k := 0
	for _, e := range raw {
		de := &dirEntry{parent: f.name, name: e.name, typ: e.typ}
		if e.typ == ^fs.FileMode(0) {
			info, err := infos[k], errs[k]
			k++
			if errors.Is(err, fs.ErrNotExist) {
				continue // gone since getdents64
			}
			if err != nil {
				return out, err
			}
			de.typ, de.info = info.Mode().Type(), info
		}
		out = append(out, de)
	}
	return out, nil
}

// infosOf stats every entry of raw, as Readdir needs.
func (f statDir) infos(raw []rawEntry) ([]fs.FileInfo, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	names := make([]string, len(raw))
	for i, e := range raw {
		names[i] = e.name
	}
	infos, errs := f.lstatAt(names)
	out := infos[:0]
	for i, info := range infos {
		if errors.Is(errs[i], fs.ErrNotExist) {
			continue
		}
		if errs[i] != nil {
			return out, errs[i]
		}
		out = append(out, info)
	}
	return out, nil
}

// lstatAt stats names in the directory without following symbolic links,
// with statx operations submitted together, as many as a Batch takes at a
// time. Errors are os's for fstatat.
func (f statDir) lstatAt(names []string) ([]fs.FileInfo, []error) {
	infos := make([]fs.FileInfo, len(names))
	errs := make([]error, len(names))
	sts := make([]unix.Statx_t, len(names))
	const flags = unix.AT_SYMLINK_NOFOLLOW
	if f.r.Supported("STATX") != nil {
		for i, name := range names {
			errs[i] = ignoringEINTR(func() error { return unix.Statx(f.fd, name, flags, unix.STATX_BASIC_STATS, &sts[i]) })
		}
	} else {
		b := f.r.NewBatch()
		for start := 0; start < len(names); start += b.Cap() {
			end := min(start+b.Cap(), len(names))
			cs := make([]func() (struct{}, error), 0, end-start)
			for i := start; i < end; i++ {
				cs = append(cs, b.Statx(f.fd, names[i], flags, unix.STATX_BASIC_STATS, &sts[i]).Wait)
			}
			b.Submit() // on failure, every Wait reports it
			for i, wait := range cs {
				_, errs[start+i] = wait()
				for errors.Is(errs[start+i], syscall.EINTR) {
					_, errs[start+i] = f.r.Statx(f.fd, names[start+i], flags, unix.STATX_BASIC_STATS, &sts[start+i]).Wait()
				}
			}
		}
	}
	for i := range names {
		if errs[i] != nil {
			errs[i] = &fs.PathError{Op: "fstatat", Path: f.name, Err: errnoOf(errs[i])}
			continue
		}
		infos[i] = newFileStat(names[i], &sts[i])
	}
	return infos, errs
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != syscall.EINTR {
			return err
		}
	}
}

// dirEntry is a directory entry of ReadDir.
type dirEntry struct {
	parent string
	name   string
	typ    fs.FileMode
	info   fs.FileInfo // set if the entry had to be stat'ed for its type
}

func (d *dirEntry) Name() string      { return d.name }
func (d *dirEntry) IsDir() bool       { return d.typ.IsDir() }
func (d *dirEntry) Type() fs.FileMode { return d.typ }
func (d *dirEntry) String() string    { return fs.FormatDirEntry(d) }

// Info returns what Lstat returns for the entry now, as os's DirEntry does.
func (d *dirEntry) Info() (fs.FileInfo, error) {
	if d.info != nil {
		return d.info, nil
	}
	return Lstat(d.parent + "/" + d.name)
}
