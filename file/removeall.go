package file

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/gorio/rio"
	"golang.org/x/sys/unix"
)

// RemoveAll removes path and everything it contains, as os.RemoveAll
// does: it removes what it can and returns the first error, a
// *fs.PathError; a path that does not exist is no error. It follows os's
// algorithm (unlinkat relative to each parent directory, never following
// symbolic links), with the unlinks, opens and closes through the ring and
// the directories read with getdents64.
func RemoveAll(path string) error {
	r, useOS, err := pathRing()
	if useOS {
		return os.RemoveAll(path)
	}
	if err != nil {
		return &fs.PathError{Op: "RemoveAll", Path: path, Err: err}
	}
	if path == "" {
		return nil // as os: silently
	}
	if endsWithDot(path) {
		// rmdir cannot remove "."; neither does RemoveAll.
		return &fs.PathError{Op: "RemoveAll", Path: path, Err: syscall.EINVAL}
	}
	err = Remove(path)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	parentDir, base := splitPath(path)
	pfd, err := openAt(r, unix.AT_FDCWD, parentDir, unix.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // no parent, no base
	}
	if err != nil {
		return &fs.PathError{Op: "open", Path: parentDir, Err: err}
	}
	defer closeRaw(r, pfd)
	if err := removeAllFrom(r, pfd, base); err != nil {
		if pe, ok := err.(*fs.PathError); ok {
			pe.Path = parentDir + string(os.PathSeparator) + pe.Path
			err = pe
		}
		return err
	}
	return nil
}

// endsWithDot reports whether the last element of path is ".".
func endsWithDot(path string) bool {
	if path == "." {
		return true
	}
	return len(path) >= 2 && path[len(path)-1] == '.' && os.IsPathSeparator(path[len(path)-2])
}

// splitPath splits path into its parent directory and last element, as
// os's RemoveAll does.
func splitPath(path string) (string, string) {
	dirname := "."
	for len(path) > 1 && path[0] == '/' && path[1] == '/' {
		path = path[1:] // all but one leading slash
	}
	i := len(path) - 1
	for ; i > 0 && path[i] == '/'; i-- {
		path = path[:i] // trailing slashes
	}
	basename := path
	for i--; i >= 0; i-- {
		if path[i] == '/' {
			if i == 0 {
				dirname = path[:1]
			} else {
				dirname = path[:i]
			}
			basename = path[i+1:]
			break
		}
	}
	return dirname, basename
}

// errSymlink says that openDirAt found a symbolic link.
var errSymlink = errors.New("symbolic link")

func removeAllFrom(r *rio.Ring, parentFd int, base string) error {
	return removeAllAfter(r, parentFd, base, unlinkAt(r, parentFd, base, 0))
}

// removeAllAfter is removeAllFrom after the unlinkat of base, which failed
// with err (or did not).
func removeAllAfter(r *rio.Ring, parentFd int, base string, err error) error {
	if err == nil || err == syscall.ENOENT {
		return nil
	}
	// EISDIR: a directory, whose contents must go first. EPERM or EACCES:
	// maybe no write permission on the parent, but the entry may still be
	// a directory whose contents can be removed. Otherwise, done.
	if err != syscall.EISDIR && err != syscall.EPERM && err != syscall.EACCES {
		return &fs.PathError{Op: "unlinkat", Path: base, Err: err}
	}
	uErr := err

	var recurseErr error
	for {
		const reqSize = 1024
		var respSize int
		fd, err := openDirAt(r, parentFd, base)
		if err != nil {
			if err == syscall.ENOENT {
				return nil
			}
			if err == syscall.ENOTDIR {
				return &fs.PathError{Op: "unlinkat", Path: base, Err: uErr}
			}
			if err == errSymlink {
				err = uErr
			}
			recurseErr = &fs.PathError{Op: "openfdat", Path: base, Err: err}
			break
		}
		var d dirInfo
		for {
			numErr := 0
			names, _, _, readErr := readDir(r, fd, base, &d, reqSize, readDirNames)
			if readErr != nil && readErr != io.EOF {
				closeRaw(r, fd)
				if errors.Is(readErr, fs.ErrNotExist) {
					return nil
				}
				return &fs.PathError{Op: "readdirnames", Path: base, Err: readErr}
			}
			respSize = len(names)
			// The first unlinkat of every name at once: io_uring runs
			// them in its workers, in parallel.
			unlinked := unlinkAll(r, fd, names)
			for i, name := range names {
				if err := removeAllAfter(r, fd, name, unlinked[i]); err != nil {
					if pe, ok := err.(*fs.PathError); ok {
						pe.Path = base + string(os.PathSeparator) + pe.Path
					}
					numErr++
					if recurseErr == nil {
						recurseErr = err
					}
				}
			}
			// Deleted something: start again. Otherwise take the next names.
			if numErr != reqSize {
				break
			}
		}
		// Removing entries may have reshuffled the directory: reopen it
		// rather than read on, which might skip entries.
		closeRaw(r, fd)
		if respSize < reqSize {
			break
		}
	}
	unlinkError := unlinkAt(r, parentFd, base, unix.AT_REMOVEDIR)
	if unlinkError == nil || unlinkError == syscall.ENOENT {
		return nil
	}
	if recurseErr != nil {
		return recurseErr
	}
	return &fs.PathError{Op: "unlinkat", Path: base, Err: unlinkError}
}

// openDirAt opens directory name in parent without following a symbolic
// link: errSymlink if it is one, ENOTDIR if it is no directory.
func openDirAt(r *rio.Ring, parent int, name string) (int, error) {
	fd, err := openAt(r, parent, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_DIRECTORY, 0)
	switch err {
	case nil:
		return fd, nil
	case syscall.ELOOP, syscall.EMLINK, syscall.ENOTDIR:
		if _, lerr := readlinkAt(parent, name); lerr == nil {
			return -1, errSymlink
		}
	case syscall.ENOTSUP:
		// A non-final element was not a directory.
		err = syscall.ENOTDIR
	}
	return -1, err
}

// readlinkAt is readlinkat(2); io_uring has no operation for it.
func readlinkAt(dirfd int, name string) (string, error) {
	for n := 128; ; n *= 2 {
		b := make([]byte, n)
		var k int
		err := ignoringEINTR(func() (err error) {
			k, err = unix.Readlinkat(dirfd, name, b)
			return err
		})
		if err != nil {
			return "", err
		}
		if k < n {
			return string(b[:k]), nil
		}
	}
}

// unlinkAll unlinks names in directory fd with unlinkat operations
// submitted together, a Batch's Cap at a time, and returns their errors.
func unlinkAll(r *rio.Ring, fd int, names []string) []error {
	errs := make([]error, len(names))
	if r.Supported("UNLINKAT") != nil {
		for i, name := range names {
			errs[i] = unlinkAt(r, fd, name, 0)
		}
		return errs
	}
	b := r.NewBatch()
	for start := 0; start < len(names); start += b.Cap() {
		end := min(start+b.Cap(), len(names))
		waits := make([]func() (struct{}, error), 0, end-start)
		for _, name := range names[start:end] {
			waits = append(waits, b.Unlinkat(fd, name, 0).Wait)
		}
		b.Submit() // on failure, every Wait reports it
		for i, wait := range waits {
			_, err := wait()
			if err = errnoOf(err); err == syscall.EINTR {
				err = unlinkAt(r, fd, names[start+i], 0)
			}
			errs[start+i] = err
		}
	}
	return errs
}
