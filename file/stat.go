package file

import (
	"io/fs"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gorio/rio"
	"golang.org/x/sys/unix"
)

// Stat returns the file's fs.FileInfo, from a statx through the ring. Its
// Sys method returns a *syscall.Stat_t, as os.File.Stat's does. Errors are
// *fs.PathError with Op "stat".
func (f *File) Stat() (fs.FileInfo, error) {
	if f == nil {
		return nil, fs.ErrInvalid
	}
	if f.osf != nil {
		return f.osf.Stat()
	}
	if !f.acquire() {
		return nil, f.closedErr("stat")
	}
	defer f.release()
	var st unix.Statx_t
	if err := f.statx(unix.STATX_BASIC_STATS, &st); err != nil {
		return nil, f.wrapErr("stat", err)
	}
	return newFileStat(filepath.Base(f.name), &st), nil
}

// statx fills st for the open file, through the ring if it can.
func (f *File) statx(mask uint32, st *unix.Statx_t) error {
	if f.ring.Supported("STATX") == nil {
		_, err := run(f, func(r *rio.Ring) *rio.Completion[struct{}] { return r.Statx(f.fd, "", unix.AT_EMPTY_PATH, mask, st) })
		return err
	}
	return unix.Statx(f.fd, "", unix.AT_EMPTY_PATH, int(mask), st)
}

// fileStat is the fs.FileInfo of Stat.
type fileStat struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
	sys     syscall.Stat_t
}

func (s *fileStat) Name() string       { return s.name }
func (s *fileStat) Size() int64        { return s.size }
func (s *fileStat) Mode() fs.FileMode  { return s.mode }
func (s *fileStat) ModTime() time.Time { return s.modTime }
func (s *fileStat) IsDir() bool        { return s.mode.IsDir() }
func (s *fileStat) Sys() any           { return &s.sys }

func newFileStat(name string, st *unix.Statx_t) *fileStat {
	s := &fileStat{
		name:    name,
		size:    int64(st.Size),
		modTime: time.Unix(st.Mtime.Sec, int64(st.Mtime.Nsec)),
		mode:    fs.FileMode(st.Mode & 0777),
	}
	switch uint32(st.Mode) & syscall.S_IFMT {
	case syscall.S_IFBLK:
		s.mode |= fs.ModeDevice
	case syscall.S_IFCHR:
		s.mode |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		s.mode |= fs.ModeDir
	case syscall.S_IFIFO:
		s.mode |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		s.mode |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		s.mode |= fs.ModeSocket
	}
	if st.Mode&syscall.S_ISGID != 0 {
		s.mode |= fs.ModeSetgid
	}
	if st.Mode&syscall.S_ISUID != 0 {
		s.mode |= fs.ModeSetuid
	}
	if st.Mode&syscall.S_ISVTX != 0 {
		s.mode |= fs.ModeSticky
	}
	s.sys = syscall.Stat_t{
		Dev:     unix.Mkdev(st.Dev_major, st.Dev_minor),
		Ino:     st.Ino,
		Nlink:   uint64(st.Nlink),
		Mode:    uint32(st.Mode),
		Uid:     st.Uid,
		Gid:     st.Gid,
		Rdev:    unix.Mkdev(st.Rdev_major, st.Rdev_minor),
		Size:    int64(st.Size),
		Blksize: int64(st.Blksize),
		Blocks:  int64(st.Blocks),
		Atim:    syscall.Timespec{Sec: st.Atime.Sec, Nsec: int64(st.Atime.Nsec)},
		Mtim:    syscall.Timespec{Sec: st.Mtime.Sec, Nsec: int64(st.Mtime.Nsec)},
		Ctim:    syscall.Timespec{Sec: st.Ctime.Sec, Nsec: int64(st.Ctime.Nsec)},
	}
	return s
}

// Truncate changes the size of the file, as os.File.Truncate does,
// through the ring on Linux 6.9 and later. It does not move the file
// position. Errors are *fs.PathError with Op "truncate".
func (f *File) Truncate(size int64) error {
	if f == nil {
		return fs.ErrInvalid
	}
	if f.osf != nil {
		return f.osf.Truncate(size)
	}
	if !f.acquire() {
		return f.closedErr("truncate")
	}
	defer f.release()
	var err error
	if size < 0 {
		err = syscall.EINVAL
	} else if f.ring.Supported("FTRUNCATE") == nil {
		_, err = run(f, func(r *rio.Ring) *rio.Completion[struct{}] { return r.Ftruncate(f.fd, size) })
	} else {
		err = unix.Ftruncate(f.fd, size)
	}
	return f.wrapErr("truncate", err)
}

// Sync commits the file's contents and metadata to stable storage
// (fsync), as os.File.Sync does. Errors are *fs.PathError with Op "sync".
func (f *File) Sync() error {
	if f == nil {
		return fs.ErrInvalid
	}
	if f.osf != nil {
		return f.osf.Sync()
	}
	if !f.acquire() {
		return f.closedErr("sync")
	}
	defer f.release()
	_, err := run(f, func(r *rio.Ring) *rio.Completion[struct{}] { return r.Fsync(f.fd) })
	return f.wrapErr("sync", err)
}

// Datasync commits the file's contents, and only the metadata needed to
// read them back, to stable storage (fdatasync). Errors are *fs.PathError
// with Op "datasync".
func (f *File) Datasync() error {
	if f == nil {
		return fs.ErrInvalid
	}
	if f.osf != nil {
		fd := f.osf.Fd()
		if fd == ^uintptr(0) {
			return f.closedErr("datasync")
		}
		return f.wrapErr("datasync", unix.Fdatasync(int(fd)))
	}
	if !f.acquire() {
		return f.closedErr("datasync")
	}
	defer f.release()
	_, err := run(f, func(r *rio.Ring) *rio.Completion[struct{}] { return r.Fdatasync(f.fd) })
	return f.wrapErr("datasync", err)
}

// SameFile reports whether fi1 and fi2 describe the same file: the same
// device and inode. Unlike os.SameFile, which is false for any FileInfo
// not made by package os, it accepts the FileInfos of this package and of
// package os (any whose Sys is a *syscall.Stat_t).
func SameFile(fi1, fi2 fs.FileInfo) bool {
	if fi1 == nil || fi2 == nil {
		return false
	}
	s1, ok1 := fi1.Sys().(*syscall.Stat_t)
	s2, ok2 := fi2.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && s1.Dev == s2.Dev && s1.Ino == s2.Ino
}
