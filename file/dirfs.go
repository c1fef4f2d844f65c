package file

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// DirFS returns a file system (an fs.FS) for the tree of files rooted at
// the directory dir, as os.DirFS does, whose files are opened, read and
// stat'ed through the ring: Open returns a *File, and ReadFile, ReadDir,
// Stat, Lstat and ReadLink are this package's functions of the same names
// (ReadLink is os.Readlink: io_uring has no readlinkat).
//
// Like os.DirFS, it refuses any name that is not valid for fs.ValidPath,
// or that holds a NUL byte, with fs.ErrInvalid, so that "..", absolute and
// unclean names cannot reach outside dir. As with os.DirFS, a symbolic link
// inside the tree is followed, wherever it points, and dir is evaluated at
// each call: os.Root is the tool for a tree that must hold its ground
// against links. Errors are os.DirFS's, their Path the name given.
//
// The result implements fs.StatFS, fs.ReadFileFS, fs.ReadDirFS and
// fs.ReadLinkFS.
func DirFS(dir string) fs.FS {
	return dirFS(dir)
}

var (
	_ fs.StatFS      = dirFS("")
	_ fs.ReadFileFS  = dirFS("")
	_ fs.ReadDirFS   = dirFS("")
	_ fs.ReadLinkFS  = dirFS("")
	_ fs.ReadDirFile = (*File)(nil)
)

type dirFS string

// errEmptyRoot is os.DirFS's error for a DirFS of "".
var errEmptyRoot = errors.New("os: DirFS with empty root")

// join returns the path of name in dir, or the error os.DirFS gives.
func (dir dirFS) join(name string) (string, error) {
	if dir == "" {
		return "", errEmptyRoot
	}
	name, err := filepath.Localize(name) // fs.ValidPath, and no NUL
	if err != nil {
		return "", fs.ErrInvalid
	}
	if os.IsPathSeparator(dir[len(dir)-1]) {
		return string(dir) + name, nil
	}
	return string(dir) + string(os.PathSeparator) + name, nil
}

// rename gives a *fs.PathError the name the caller used, not its path in
// dir.
func rename(err error, name string) error {
	if pe, ok := err.(*fs.PathError); ok {
		pe.Path = name
	}
	return err
}

// Open opens the named file for reading, as a *File.
func (dir dirFS) Open(name string) (fs.File, error) {
	full, err := dir.join(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	f, err := Open(full)
	if err != nil {
		return nil, rename(err, name)
	}
	return f, nil
}

// ReadFile reads the named file, with ReadFile.
func (dir dirFS) ReadFile(name string) ([]byte, error) {
	full, err := dir.join(name)
	if err != nil {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: err}
	}
	b, err := ReadFile(full)
	if err != nil {
		return nil, rename(err, name)
	}
	return b, nil
}

// ReadDir reads the named directory, with ReadDir: its entries sorted by
// name.
func (dir dirFS) ReadDir(name string) ([]fs.DirEntry, error) {
	full, err := dir.join(name)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	entries, err := ReadDir(full)
	if err != nil {
		return nil, rename(err, name)
	}
	return entries, nil
}

// Stat stats the named file, with Stat.
func (dir dirFS) Stat(name string) (fs.FileInfo, error) {
	full, err := dir.join(name)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	fi, err := Stat(full)
	if err != nil {
		return nil, rename(err, name)
	}
	return fi, nil
}

// Lstat stats the named file without following a final symbolic link,
// with Lstat.
func (dir dirFS) Lstat(name string) (fs.FileInfo, error) {
	full, err := dir.join(name)
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	fi, err := Lstat(full)
	if err != nil {
		return nil, rename(err, name)
	}
	return fi, nil
}

// ReadLink returns the destination of the named symbolic link, with
// os.Readlink. As os.DirFS's, its errors name the path in dir.
func (dir dirFS) ReadLink(name string) (string, error) {
	full, err := dir.join(name)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return os.Readlink(full)
}
