package rio

import (
	"syscall"
	"time"

	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

// The operation methods of Ring submit at once: the operation is the
// ring's from the call on, and the ring hands it to the kernel with its
// next io_uring_enter (see Flush). Each has a twin on Batch, which queues
// instead and submits with Batch.Submit (TestBatchTwins checks it), so
// that any of them can be linked to the next. Buffer rules are the same
// for both: the memory passed in belongs to the kernel from submission
// until Wait (or WaitContext) has returned for the operation, or, if nobody
// waits, until the ring has reaped its completion; the ring keeps it
// reachable and pinned until then. Fd arguments take a descriptor, or
// FixedFile(i) for a registered file.

// Nop submits an operation that does nothing; it measures the ring's
// overhead and can wake a waiting reaper.
func (r *Ring) Nop() *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepNop(newCompletion[struct{}](r), &s), &s)
}

// Read reads into b from the file's current position (IORING_OP_READ
// with offset -1), for streams such as pipes and sockets. The kernel writes
// b until the operation completes. The result is the number of bytes read;
// 0 means end of file.
//
// On regular files, prefer ReadAt with an offset the caller keeps: the
// kernel does not advance the file position when a read completes short
// (seen on Linux 6.18 for an O_DIRECT read reaching end of file), and
// concurrent reads at the current position race for it.
func (r *Ring) Read(fd int, b []byte) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepRW(newCompletion[int](r), &s, uring.OpRead, fd, b, -1), &s)
}

// Write writes b at the file's current position (offset -1). The kernel
// reads b until the operation completes. A short write is reported as a
// count smaller than len(b) without error. As for Read, prefer WriteAt on
// regular files: a short write (one cut by RLIMIT_FSIZE, say) does not
// advance the file position.
func (r *Ring) Write(fd int, b []byte) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepRW(newCompletion[int](r), &s, uring.OpWrite, fd, b, -1), &s)
}

// ReadAt reads into b from offset off, like pread. The kernel writes b until
// the operation completes. The result is the number of bytes read; 0 means
// off is at or past the end of the file. A negative off fails with EINVAL.
func (r *Ring) ReadAt(fd int, b []byte, off int64) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepRWAt(newCompletion[int](r), &s, uring.OpRead, fd, b, off), &s)
}

// WriteAt writes b at offset off, like pwrite. The kernel reads b until the
// operation completes. A negative off fails with EINVAL.
func (r *Ring) WriteAt(fd int, b []byte, off int64) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepRWAt(newCompletion[int](r), &s, uring.OpWrite, fd, b, off), &s)
}

// ReadvAt reads into bufs, in order, from offset off, like preadv. The
// kernel writes the buffers and reads the iovec array the ring builds for
// them until the operation completes.
func (r *Ring) ReadvAt(fd int, bufs [][]byte, off int64) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepRWV(newCompletion[int](r), &s, uring.OpReadv, fd, bufs, off), &s)
}

// WritevAt writes bufs, in order, at offset off, like pwritev.
func (r *Ring) WritevAt(fd int, bufs [][]byte, off int64) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepRWV(newCompletion[int](r), &s, uring.OpWritev, fd, bufs, off), &s)
}

// ReadFixedAt reads into b, which must lie inside registered buffer index
// (see RegisterBuffers), from offset off. The kernel skips mapping the
// buffer's pages for each operation.
func (r *Ring) ReadFixedAt(fd int, b []byte, off int64, index int) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepRWFixed(newCompletion[int](r), &s, r, uring.OpReadFixed, fd, b, off, index), &s)
}

// WriteFixedAt writes b, which must lie inside registered buffer index, at
// offset off.
func (r *Ring) WriteFixedAt(fd int, b []byte, off int64, index int) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepRWFixed(newCompletion[int](r), &s, r, uring.OpWriteFixed, fd, b, off, index), &s)
}

// Fsync flushes the file's data and metadata to stable storage.
func (r *Ring) Fsync(fd int) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepFsync(newCompletion[struct{}](r), &s, fd, 0), &s)
}

// Fdatasync flushes the file's data, and only the metadata needed to read
// it back, to stable storage.
func (r *Ring) Fdatasync(fd int) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepFsync(newCompletion[struct{}](r), &s, fd, uring.FsyncDatasync), &s)
}

// SyncFileRange is sync_file_range(2) on n bytes from off (n 0: to the end
// of the file), with unix.SYNC_FILE_RANGE_* flags.
func (r *Ring) SyncFileRange(fd int, off int64, n uint32, flags int) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepSyncFileRange(newCompletion[struct{}](r), &s, fd, off, n, flags), &s)
}

// Fallocate is fallocate(2): mode 0 allocates length bytes from off,
// extending the file; unix.FALLOC_FL_* modes punch holes and the like.
func (r *Ring) Fallocate(fd int, mode uint32, off, length int64) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepFallocate(newCompletion[struct{}](r), &s, fd, mode, off, length), &s)
}

// Ftruncate sets the file's size (Linux 6.9).
func (r *Ring) Ftruncate(fd int, length int64) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepFtruncate(newCompletion[struct{}](r), &s, fd, length), &s)
}

// Openat opens path relative to dirfd (unix.AT_FDCWD for the working
// directory), like openat(2), and returns the new descriptor, which the
// caller owns. O_CLOEXEC is always added, as os.OpenFile does. The ring
// holds its own copy of path.
func (r *Ring) Openat(dirfd int, path string, flags int, mode uint32) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepOpenat(newCompletion[int](r), &s, dirfd, path, flags, mode), &s)
}

// CloseFd closes fd. For FixedFile(i) it clears slot i of the registered
// file table instead.
func (r *Ring) CloseFd(fd int) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepClose(newCompletion[struct{}](r), &s, fd), &s)
}

// Statx is statx(2): it fills st for path relative to dirfd (with
// unix.AT_EMPTY_PATH and path "", for dirfd itself). The kernel writes st
// until the operation completes.
func (r *Ring) Statx(dirfd int, path string, flags int, mask uint32, st *unix.Statx_t) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepStatx(newCompletion[struct{}](r), &s, dirfd, path, flags, mask, st), &s)
}

// Renameat is renameat2(2).
func (r *Ring) Renameat(olddirfd int, oldpath string, newdirfd int, newpath string, flags int) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepRenameat(newCompletion[struct{}](r), &s, olddirfd, oldpath, newdirfd, newpath, flags), &s)
}

// Unlinkat is unlinkat(2); flags may be unix.AT_REMOVEDIR.
func (r *Ring) Unlinkat(dirfd int, path string, flags int) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepUnlinkat(newCompletion[struct{}](r), &s, dirfd, path, flags), &s)
}

// Mkdirat is mkdirat(2).
func (r *Ring) Mkdirat(dirfd int, path string, mode uint32) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepMkdirat(newCompletion[struct{}](r), &s, dirfd, path, mode), &s)
}

// Timeout completes, without error, after d. Cancelled, it fails with
// ECANCELED.
func (r *Ring) Timeout(d time.Duration) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepTimeout(newCompletion[struct{}](r), &s, d), &s)
}

// Poll waits until fd is ready for any of events (unix.POLLIN, ...) and
// returns the events that are ready, like a one-shot poll(2).
func (r *Ring) Poll(fd int, events uint32) *Completion[uint32] {
	var s uring.SQE
	return submit1(r, prepPoll(newCompletion[uint32](r), &s, fd, events), &s)
}

// CancelFd cancels every operation in flight on fd and returns how many it
// cancelled (Linux 5.19). Operations on fd still waiting for a slot are
// withdrawn (they complete with ECANCELED) and counted too. The
// cancellation takes one of the slots kept for cancellations, so it never
// waits behind the operations it cancels.
func (r *Ring) CancelFd(fd int) *Completion[int] {
	var s uring.SQE
	c := prepCancelFd(newCompletion[int](r), &s, fd)
	c.ring = r
	if !r.usable() {
		c.fail(errBadRing)
		return c
	}
	if r.closedA.Load() {
		c.fail(r.closedErr())
		return c
	}
	if n := int32(r.withdrawQueuedFd(fd)); n > 0 {
		c.extra().hook = cqeFunc(func(res int32, flags uint32) (int32, uint32) {
			switch {
			case res >= 0:
				res += n
			case res == -int32(syscall.ENOENT):
				res = n
			}
			return res, flags
		})
	}
	r.submit(&c.op, &s, true)
	return c
}

func submit1[T any](r *Ring, c *Completion[T], s *uring.SQE) *Completion[T] {
	c.ring = r
	r.submit(&c.op, s, false)
	return c
}
