package file

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/gorio/rio"
	"golang.org/x/sys/unix"
)

// The package-level functions of os that name files: through the shared
// Ring, with the kernel's io_uring operations (openat, statx, unlinkat,
// renameat, mkdirat, symlinkat, linkat, close), falling back to the system
// call for an operation the kernel lacks, and to package os where io_uring
// is unavailable (unless SetFallback(false), in which case they fail with
// an error matching rio.ErrNotSupported). They follow os's algorithms step
// by step, so their results and errors are os's: the same types, Op, Path
// and errno.
//
// The kernel runs statx, unlinkat, renameat, mkdirat, symlinkat, linkat and
// an openat that creates or truncates in its io-wq worker threads rather
// than inline: each costs a hand-off to a kernel thread and back, more than
// the system call, but no Go thread waits for it.

// pathRing returns the shared Ring, or the error that makes it unavailable.
// useOS reports that the caller should use package os instead.
func pathRing() (r *rio.Ring, useOS bool, err error) {
	r, err = defaultRingFn()
	if err != nil {
		return nil, fallback.Load(), err
	}
	return r, false, nil
}

// defaultRingFn is DefaultRing, except in tests of the fallback.
var defaultRingFn = DefaultRing

func hasNUL(s string) bool { return strings.IndexByte(s, 0) >= 0 }

// badName reports whether the kernel refuses name as it copies it in (""
// and names of PATH_MAX bytes or more). io_uring copies both names of a
// rename or link when it prepares the operation, and so reports the second
// name's error before the first name's lookup fails; the system call looks
// the first name up first. For os's errors, such operations take the
// system call.
func badName(name string) bool { return name == "" || len(name) >= unix.PathMax }

// retryEINTR runs op until it does not fail with EINTR, and returns its
// error as an errno where it is one.
func retryEINTR(op func() error) error {
	for {
		err := errnoOf(op())
		if err != syscall.EINTR {
			return err
		}
	}
}

// The operations, each through the ring if the kernel has it and with the
// system call otherwise, returning the bare errno as the system calls do.

func statxAt(r *rio.Ring, dirfd int, name string, flags int, st *unix.Statx_t) error {
	if hasNUL(name) {
		return syscall.EINVAL
	}
	if done, err := statCached(dirfd, name, flags, st); done {
		return err
	}
	return pathOp(r, "STATX", false, nil,
		func() error { return unix.Statx(dirfd, name, flags, unix.STATX_BASIC_STATS, st) },
		func() *rio.Completion[struct{}] { return r.Statx(dirfd, name, flags, unix.STATX_BASIC_STATS, st) })
}

// resolveCached is RESOLVE_CACHED of linux/openat2.h (Linux 5.12):
// openat2 fails with EAGAIN rather than look a path up anywhere but in the
// kernel's caches.
const resolveCached = 0x20

// statCached stats name if it can do so without waiting for a disk: when
// every element of the path is in the kernel's caches, an O_PATH
// descriptor for it is had with openat2(RESOLVE_CACHED), and statx of the
// descriptor reads the inode in memory. done is false if the path is not
// all cached (or openat2 is missing): the caller then goes through the
// ring.
//
// Why: io_uring runs every statx in one of its worker threads (io-wq),
// never inline, on this kernel. Measured here: 62 µs a Stat through the
// ring, and a kernel worker thread per Go thread that submitted one,
// against 2.5 µs for statx(2) and 4.6 µs for this.
func statCached(dirfd int, name string, flags int, st *unix.Statx_t) (done bool, err error) {
	if noResolveCached.Load() {
		return false, nil
	}
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: resolveCached}
	if flags&unix.AT_SYMLINK_NOFOLLOW != 0 {
		how.Flags |= unix.O_NOFOLLOW
	}
	fd, err := unix.Openat2(dirfd, name, &how)
	switch err {
	case nil:
	case syscall.ENOENT, syscall.ENOTDIR, syscall.ELOOP, syscall.ENAMETOOLONG, syscall.EACCES:
		// The lookup completed in the caches and failed, as statx's would.
		return true, err
	case syscall.ENOSYS, syscall.E2BIG:
		noResolveCached.Store(true) // before Linux 5.6, or 5.12
		return false, nil
	case syscall.EINVAL:
		if name != "" {
			noResolveCached.Store(true) // no RESOLVE_CACHED
		}
		return false, nil
	default: // EAGAIN: not all cached; EINTR and the rest: let the ring say
		return false, nil
	}
	defer unix.Close(fd)
	return true, retryEINTR(func() error {
		return unix.Statx(fd, "", unix.AT_EMPTY_PATH|flags, unix.STATX_BASIC_STATS, st)
	})
}

var noResolveCached atomic.Bool

// pathOp runs an operation on names: EINVAL if one holds a NUL byte, as
// the system calls say; through the ring (ring) if the kernel has the
// operation opname and forceSys is false; with the system call (sys)
// otherwise; again after EINTR.
func pathOp(r *rio.Ring, opname string, forceSys bool, names []string, sys func() error, ring func() *rio.Completion[struct{}]) error {
	for _, n := range names {
		if hasNUL(n) {
			return syscall.EINVAL
		}
	}
	if forceSys || r.Supported(opname) != nil {
		return retryEINTR(sys)
	}
	return retryEINTR(func() error {
		_, err := ring().Wait()
		return err
	})
}

func unlinkAt(r *rio.Ring, dirfd int, name string, flags int) error {
	return pathOp(r, "UNLINKAT", false, []string{name},
		func() error { return unix.Unlinkat(dirfd, name, flags) },
		func() *rio.Completion[struct{}] { return r.Unlinkat(dirfd, name, flags) })
}

func renameAt(r *rio.Ring, oldname, newname string) error {
	return pathOp(r, "RENAMEAT", badName(newname), []string{oldname, newname},
		func() error { return unix.Renameat(unix.AT_FDCWD, oldname, unix.AT_FDCWD, newname) },
		func() *rio.Completion[struct{}] { return r.Renameat(unix.AT_FDCWD, oldname, unix.AT_FDCWD, newname, 0) })
}

func mkdirAt(r *rio.Ring, name string, mode uint32) error {
	return pathOp(r, "MKDIRAT", false, []string{name},
		func() error { return unix.Mkdirat(unix.AT_FDCWD, name, mode) },
		func() *rio.Completion[struct{}] { return r.Mkdirat(unix.AT_FDCWD, name, mode) })
}

func symlinkAt(r *rio.Ring, target, link string) error {
	return pathOp(r, "SYMLINKAT", false, []string{target, link},
		func() error { return unix.Symlinkat(target, unix.AT_FDCWD, link) },
		func() *rio.Completion[struct{}] { return r.Symlinkat(target, unix.AT_FDCWD, link) })
}

func linkAt(r *rio.Ring, oldname, newname string) error {
	return pathOp(r, "LINKAT", badName(newname), []string{oldname, newname},
		func() error { return unix.Linkat(unix.AT_FDCWD, oldname, unix.AT_FDCWD, newname, 0) },
		func() *rio.Completion[struct{}] { return r.Linkat(unix.AT_FDCWD, oldname, unix.AT_FDCWD, newname, 0) })
}

// openAt opens name relative to dirfd; O_CLOEXEC is added.
func openAt(r *rio.Ring, dirfd int, name string, flags int, mode uint32) (int, error) {
	if hasNUL(name) {
		return -1, syscall.EINVAL
	}
	var fd int
	err := retryEINTR(func() error {
		var err error
		if r.Supported("OPENAT") == nil {
			fd, err = r.Openat(dirfd, name, flags|unix.O_CLOEXEC, mode).Wait()
		} else {
			fd, err = unix.Openat(dirfd, name, flags|unix.O_CLOEXEC, mode)
		}
		return err
	})
	if err != nil {
		return -1, err
	}
	return fd, nil
}

// closeRaw closes a descriptor, through the ring if it can.
func closeRaw(r *rio.Ring, fd int) error {
	if r.Supported("CLOSE") == nil {
		if _, err := r.CloseFd(fd).Wait(); err == nil || !errors.Is(err, rio.ErrClosed) {
			return errnoOf(err)
		}
	}
	return errnoOf(unix.Close(fd))
}

// Stat returns a FileInfo describing the named file, following symbolic
// links, as os.Stat does, from a statx through the ring. Its Sys is a
// *syscall.Stat_t. Errors are *fs.PathError with Op "stat".
func Stat(name string) (fs.FileInfo, error) {
	return statPath("stat", name, 0, os.Stat)
}

// Lstat is Stat without following a final symbolic link, as os.Lstat.
// Errors are *fs.PathError with Op "lstat".
func Lstat(name string) (fs.FileInfo, error) {
	return statPath("lstat", name, unix.AT_SYMLINK_NOFOLLOW, os.Lstat)
}

func statPath(op, name string, flags int, osStat func(string) (fs.FileInfo, error)) (fs.FileInfo, error) {
	r, useOS, err := pathRing()
	if useOS {
		return osStat(name)
	}
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	var st unix.Statx_t
	if err := statxAt(r, unix.AT_FDCWD, name, flags, &st); err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return newFileStat(filepath.Base(name), &st), nil
}

// Remove removes the named file or (empty) directory, as os.Remove does:
// it tries unlinkat, then unlinkat with AT_REMOVEDIR, and reports the error
// that says what was wrong. Errors are *fs.PathError with Op "remove".
func Remove(name string) error {
	r, useOS, err := pathRing()
	if useOS {
		return os.Remove(name)
	}
	if err != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	e := unlinkAt(r, unix.AT_FDCWD, name, 0)
	if e == nil {
		return nil
	}
	e1 := unlinkAt(r, unix.AT_FDCWD, name, unix.AT_REMOVEDIR)
	if e1 == nil {
		return nil
	}
	// Both failed. rmdir of a file fails with ENOTDIR, which makes
	// unlink's the error to report; otherwise rmdir's is.
	if e1 != syscall.ENOTDIR {
		e = e1
	}
	return &fs.PathError{Op: "remove", Path: name, Err: e}
}

// Rename renames (moves) oldpath to newpath, as os.Rename does: it
// replaces a newpath that exists and is not a directory, and refuses one
// that is a directory (EEXIST), even an empty one. Errors are
// *os.LinkError with Op "rename".
func Rename(oldpath, newpath string) error {
	r, useOS, err := pathRing()
	if useOS {
		return os.Rename(oldpath, newpath)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	fi, err := Lstat(newpath)
	if err == nil && fi.IsDir() {
		// Report a bad oldpath first, as os does. A different name for
		// the same file (a case-only rename on a case-insensitive file
		// system) may go ahead.
		if ofi, err := Lstat(oldpath); err != nil {
			if pe, ok := err.(*fs.PathError); ok {
				err = pe.Err
			}
			return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
		} else if newpath == oldpath || !SameFile(fi, ofi) {
			return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EEXIST}
		}
	}
	if err := renameAt(r, oldpath, newpath); err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

// Mkdir creates a directory with the permission bits perm (before umask),
// as os.Mkdir does. Errors are *fs.PathError with Op "mkdir".
func Mkdir(name string, perm fs.FileMode) error {
	r, useOS, err := pathRing()
	if useOS {
		return os.Mkdir(name, perm)
	}
	if err != nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: err}
	}
	if err := mkdirAt(r, name, syscallMode(perm)); err != nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: err}
	}
	return nil
}

// MkdirAll creates the directory path and any parents it needs, with the
// permission bits perm (before umask), and does nothing if path is already
// a directory, as os.MkdirAll does.
func MkdirAll(path string, perm fs.FileMode) error {
	if _, useOS, _ := pathRing(); useOS {
		return os.MkdirAll(path, perm)
	}
	// Fast path: path exists.
	dir, err := Stat(path)
	if err == nil {
		if dir.IsDir() {
			return nil
		}
		return &fs.PathError{Op: "mkdir", Path: path, Err: syscall.ENOTDIR}
	}
	// The parent: path without trailing slashes and its last element.
	i := len(path) - 1
	for i >= 0 && os.IsPathSeparator(path[i]) {
		i--
	}
	for i >= 0 && !os.IsPathSeparator(path[i]) {
		i--
	}
	if i < 0 {
		i = 0
	}
	if parent := path[:i]; len(parent) > 0 {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := Mkdir(path, perm); err != nil {
		// "foo/." and the like: it may exist after all.
		dir, err1 := Lstat(path)
		if err1 == nil && dir.IsDir() {
			return nil
		}
		return err
	}
	return nil
}

// Symlink creates newname as a symbolic link to oldname, as os.Symlink
// does. Errors are *os.LinkError with Op "symlink".
func Symlink(oldname, newname string) error {
	r, useOS, err := pathRing()
	if useOS {
		return os.Symlink(oldname, newname)
	}
	if err == nil {
		err = symlinkAt(r, oldname, newname)
	}
	if err != nil {
		return &os.LinkError{Op: "symlink", Old: oldname, New: newname, Err: err}
	}
	return nil
}

// Link creates newname as a hard link to oldname, as os.Link does. Errors
// are *os.LinkError with Op "link".
func Link(oldname, newname string) error {
	r, useOS, err := pathRing()
	if useOS {
		return os.Link(oldname, newname)
	}
	if err == nil {
		err = linkAt(r, oldname, newname)
	}
	if err != nil {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: err}
	}
	return nil
}

// ReadDir reads the named directory and returns all its entries sorted by
// name, as os.ReadDir does; on an error, it returns the entries it read
// before it. The directory is opened and closed through the ring, and read
// with getdents64 (see File.ReadDir).
func ReadDir(name string) ([]fs.DirEntry, error) {
	r, useOS, err := pathRing()
	if useOS {
		return os.ReadDir(name)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	fd, err := openAt(r, unix.AT_FDCWD, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	var d dirInfo
	_, dirs, _, err := readDir(r, fd, name, &d, -1, readDirEntries)
	closeRaw(r, fd)
	if dirs == nil {
		dirs = []fs.DirEntry{}
	}
	slices.SortFunc(dirs, func(a, b fs.DirEntry) int { return strings.Compare(a.(*dirEntry).name, b.(*dirEntry).name) })
	return dirs, err
}

// WriteFile writes data to the named file, creating it with the permission
// bits perm (before umask) if needed and truncating it otherwise, as
// os.WriteFile does, through a File.
func WriteFile(name string, data []byte, perm fs.FileMode) error {
	f, err := openWith(defaultRingFn, name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err1 := f.Close(); err1 != nil && err == nil {
		err = err1
	}
	return err
}
