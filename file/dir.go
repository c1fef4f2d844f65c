package file

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"slices"
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

// dirInfo is what a File being read as a directory keeps between calls:
// the entries of the last getdents64 call not yet returned.
type dirInfo struct {
	ents []rawEntry // ents[next:] are still to be returned
	next int
	read bool // getdents64 succeeded: the File is a directory
}

// errFileClosing is what os.File's directory methods report, inside their
// *fs.PathError, on a closed file: the text of the internal/poll error, not
// fs.ErrClosed.
var errFileClosing = errors.New("use of closed file")

// closingErr is errFileClosing, or EINVAL for a zero File.
func (f *File) closingErr() error {
	if f.invalid() {
		return syscall.EINVAL
	}
	return errFileClosing
}

// dropDir forgets the directory buffer, so that the next read of the
// directory starts from the descriptor's offset (after Seek). It reports
// whether the File was being read as a directory, whose position is then
// the kernel's. posMu is held.
func (f *File) dropDir() bool {
	if f.dir == nil {
		return false
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
	off  int         // while fill builds it: the name's offset in its arena
}

// readdir is readDir on the File, which it holds open meanwhile.
func (f *File) readdir(n int, mode readDirMode) (names []string, dirents []fs.DirEntry, infos []fs.FileInfo, err error) {
	if !f.acquire() {
		return nil, nil, nil, &fs.PathError{Op: "readdirent", Path: f.name, Err: f.closingErr()}
	}
	defer f.release()
	f.posMu.Lock()
	defer f.posMu.Unlock()
	if f.dir == nil {
		f.dir = new(dirInfo)
	}
	return readDir(f.ring, f.fd, f.name, f.dir, n, mode)
}

// readDir reads the entries of directory fd, named name, and returns up
// to n of them, following os's algorithm: n counts the entries taken,
// including any that disappear before they are stat'ed. d keeps the
// entries read and not yet returned.
func readDir(r *rio.Ring, fd int, name string, d *dirInfo, n int, mode readDirMode) (names []string, dirents []fs.DirEntry, infos []fs.FileInfo, err error) {
	if n == 0 {
		n = -1 // below: negative means all, positive counts down to 0
	}
	var raw []rawEntry
	var readErr error
	for n != 0 {
		if d.next >= len(d.ents) {
			var e error
			if d.ents, e = fill(fd, d.ents[:0]); e != nil {
				readErr = &fs.PathError{Op: "readdirent", Path: name, Err: e}
				break
			}
			d.next, d.read = 0, true
			if len(d.ents) == 0 {
				d.ents = nil
				break // end of directory
			}
		}
		take := len(d.ents) - d.next
		if n > 0 {
			take = min(take, n)
			n -= take
		}
		got := d.ents[d.next : d.next+take]
		d.next += take
		switch {
		case mode == readDirNames:
			if names == nil {
				names = make([]string, 0, take)
			}
			for _, e := range got {
				names = append(names, e.name)
			}
		case raw == nil && d.next == len(d.ents):
			// All that is left: take the entries themselves.
			raw = got
			d.ents, d.next = nil, 0
		default:
			raw = append(raw, got...)
		}
	}
	if d.next >= len(d.ents) && d.ents != nil {
		clear(d.ents) // let the names go
		d.ents, d.next = d.ents[:0], 0
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

// fill reads the next entries of directory fd with one getdents64 call and
// appends them to ents, without "." and "..": none at the end of the
// directory, unless the call returned only those, in which case it reads
// on. The names share one allocation.
func fill(fd int, ents []rawEntry) ([]rawEntry, error) {
	bp := dirBufPool.Get().(*[]byte)
	defer dirBufPool.Put(bp)
	for {
		n, err := getdents(fd, *bp)
		if err != nil {
			return ents, err
		}
		if n <= 0 {
			return ents, nil
		}
		buf := (*bp)[:n]
		// Two passes: the number of entries and the length of their
		// names, then the names, copied into one string.
		total, count := 0, 0
		for rec := buf; len(rec) > 0; {
			r, ok := nextDirent(rec)
			if !ok {
				break
			}
			total += len(direntName(r))
			count++
			rec = rec[len(r):]
		}
		ents = slices.Grow(ents, count)
		arena := make([]byte, 0, total)
		start := len(ents)
		for rec := buf; len(rec) > 0; {
			r, ok := nextDirent(rec)
			if !ok {
				break
			}
			rec = rec[len(r):]
			nb := direntName(r)
			if string(nb) == "." || string(nb) == ".." {
				continue
			}
			ents = append(ents, rawEntry{name: "", typ: direntType(r[direntTypeOff])})
			ents[len(ents)-1].off = len(arena)
			arena = append(arena, nb...)
		}
		if len(ents) == start {
			continue // only "." and ".."
		}
		names := unsafe.String(unsafe.SliceData(arena), len(arena))
		for i := start; i < len(ents); i++ {
			end := len(arena)
			if i+1 < len(ents) {
				end = ents[i+1].off
			}
			ents[i].name = names[ents[i].off:end]
		}
		return ents, nil
	}
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

// direntName returns the name of a record, up to its NUL.
func direntName(rec []byte) []byte {
	nb := rec[direntNameOff:]
	if i := bytes.IndexByte(nb, 0); i >= 0 {
		nb = nb[:i]
	}
	return nb
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
	if len(raw) == 0 {
		return nil, nil
	}
	// One allocation for the entries, one for the slice (never grown, so
	// the pointers into slab stay valid).
	slab := make([]dirEntry, 0, len(raw))
	out := make([]fs.DirEntry, 0, len(raw))
	k := 0
	for _, e := range raw {
		de := dirEntry{parent: f.name, name: e.name, typ: e.typ}
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
		slab = append(slab, de)
		out = append(out, &slab[len(slab)-1])
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
