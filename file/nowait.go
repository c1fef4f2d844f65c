package file

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gorio/rio/internal/shortcall"
)

// Reads of data already in the page cache finish without waiting for
// anything but a memory copy. For those, a preadv2 with RWF_NOWAIT, which
// copies what is cached and refuses (EAGAIN) instead of waiting for the
// disk, costs one system call on the calling thread and nothing else,
// while a ring operation adds a submission, a completion and a goroutine
// wake-up; and the ring copies the data of all its submitters on one
// thread. So a read on a buffered, seekable file tries RWF_NOWAIT first and
// goes through the ring only for what is not cached. Neither holds an OS
// thread waiting for the disk.
//
// When the file is mostly not cached, the attempts fail and cost a system
// call each: after missLimit consecutive misses, only one read in
// probeEvery tries.
const (
	missLimit  = 8
	probeEvery = 32
)

// readNowait tries to read b at off from the page cache. ok reports
// whether it did (n bytes, 0 at end of file); otherwise the caller reads
// through the ring.
func (f *File) readNowait(b []byte, off int64) (n int, ok bool) {
	if m := f.misses.Load(); m >= missLimit {
		if f.misses.Add(1)%probeEvery != 0 {
			return 0, false
		}
	}
	r, errno := preadNowait(f.fd, b, off)
	if errno != 0 {
		switch errno {
		case syscall.EAGAIN:
			f.misses.Add(1)
		case syscall.EINTR:
		default:
			// Not supported here (EOPNOTSUPP, EINVAL) or a real error,
			// which the ring reports: stop trying.
			f.noNowait.Store(true)
		}
		return 0, false
	}
	if f.misses.Load() != 0 {
		f.misses.Store(0)
	}
	return r, true
}

// preadNowait is preadv2(fd, b, off, RWF_NOWAIT): it reads what the page
// cache holds of b's range and never waits for the disk (EAGAIN instead).
// Raw when small (see package shortcall). 4 KiB reads of a cached file from
// 64 goroutines (BenchmarkHotRandRead, 3 alternating runs of 2 s):
// 1.08-1.28M IOPS through the scheduler's path, 1.47-1.53M raw; os.File
// 1.22-1.55M.
func preadNowait(fd int, b []byte, off int64) (int, syscall.Errno) {
	return preadv2Nowait(shortcall.Syscall6, fd, b, off)
}

// preadNowaitPiece is preadNowait for one piece of a parallel ReadFile, of
// at most shortcall.CopyMax bytes, made raw (see shortcall.CopySyscall6).
func preadNowaitPiece(fd int, b []byte, off int64) (int, syscall.Errno) {
	return preadv2Nowait(shortcall.CopySyscall6, fd, b, off)
}

func preadv2Nowait(call func(n int, trap, a1, a2, a3, a4, a5, a6 uintptr) (uintptr, syscall.Errno), fd int, b []byte, off int64) (int, syscall.Errno) {
	iov := unix.Iovec{Base: unsafe.SliceData(b)}
	iov.SetLen(len(b))
	r, errno := call(len(b), unix.SYS_PREADV2, uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1,
		uintptr(off), uintptr(uint64(off)>>32>>32), unix.RWF_NOWAIT)
	return int(r), errno
}
