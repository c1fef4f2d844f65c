package rio

import (
	"syscall"
	"time"

	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

// The operation methods of Ring submit at once. Each has a twin on Batch,
// which queues instead and submits with Batch.Submit (TestBatchTwins
// checks it), so that any of them can be linked to the next. Buffer rules are the
// same for both: the memory passed in belongs to the kernel from submission
// until Wait (or WaitContext) has returned for the operation, or, if nobody
// waits, until the ring has reaped its completion; the ring keeps it
// reachable and pinned until then. Fd arguments take a descriptor, or
// FixedFile(i) for a registered file.

// Nop submits an operation that does nothing; it measures the ring's
// overhead and can wake a waiting reaper.
func (r *Ring) Nop() *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepNop(new(Completion[struct{}]), &s), &s)
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
	return submit1(r, prepRW(new(Completion[int]), &s, uring.OpRead, fd, b, -1), &s)
}

// Write writes b at the file's current position (offset -1). The kernel
// reads b until the operation completes. A short write is reported as a
// count smaller than len(b) without error. As for Read, prefer WriteAt on
// regular files: a short write (one cut by RLIMIT_FSIZE, say) does not
// advance the file position.
func (r *Ring) Write(fd int, b []byte) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepRW(new(Completion[int]), &s, uring.OpWrite, fd, b, -1), &s)
}

// ReadAt reads into b from offset off, like pread. The kernel writes b until
// the operation completes. The result is the number of bytes read; 0 means
// off is at or past the end of the file. A negative off fails with EINVAL.
func (r *Ring) ReadAt(fd int, b []byte, off int64) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepRWAt(new(Completion[int]), &s, uring.OpRead, fd, b, off), &s)
}

// WriteAt writes b at offset off, like pwrite. The kernel reads b until the
// operation completes. A negative off fails with EINVAL.
func (r *Ring) WriteAt(fd int, b []byte, off int64) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepRWAt(new(Completion[int]), &s, uring.OpWrite, fd, b, off), &s)
}

// ReadvAt reads into bufs, in order, from offset off, like preadv. The
// kernel writes the buffers and reads the iovec array the ring builds for
// them until the operation completes.
func (r *Ring) ReadvAt(fd int, bufs [][]byte, off int64) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepRWV(new(Completion[int]), &s, uring.OpReadv, fd, bufs, off), &s)
}

// WritevAt writes bufs, in order, at offset off, like pwritev.
func (r *Ring) WritevAt(fd int, bufs [][]byte, off int64) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepRWV(new(Completion[int]), &s, uring.OpWritev, fd, bufs, off), &s)
}

// ReadFixedAt reads into b, which must lie inside registered buffer index
// (see RegisterBuffers), from offset off. The kernel skips mapping the
// buffer's pages for each operation.
func (r *Ring) ReadFixedAt(fd int, b []byte, off int64, index int) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepRWFixed(new(Completion[int]), &s, r, uring.OpReadFixed, fd, b, off, index), &s)
}

// WriteFixedAt writes b, which must lie inside registered buffer index, at
// offset off.
func (r *Ring) WriteFixedAt(fd int, b []byte, off int64, index int) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepRWFixed(new(Completion[int]), &s, r, uring.OpWriteFixed, fd, b, off, index), &s)
}

// Fsync flushes the file's data and metadata to stable storage.
func (r *Ring) Fsync(fd int) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepFsync(new(Completion[struct{}]), &s, fd, 0), &s)
}

// Fdatasync flushes the file's data, and only the metadata needed to read
// it back, to stable storage.
func (r *Ring) Fdatasync(fd int) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepFsync(new(Completion[struct{}]), &s, fd, uring.FsyncDatasync), &s)
}

// SyncFileRange is sync_file_range(2) on n bytes from off (n 0: to the end
// of the file), with unix.SYNC_FILE_RANGE_* flags.
func (r *Ring) SyncFileRange(fd int, off int64, n uint32, flags int) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepSyncFileRange(new(Completion[struct{}]), &s, fd, off, n, flags), &s)
}

// Fallocate is fallocate(2): mode 0 allocates length bytes from off,
// extending the file; unix.FALLOC_FL_* modes punch holes and the like.
func (r *Ring) Fallocate(fd int, mode uint32, off, length int64) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepFallocate(new(Completion[struct{}]), &s, fd, mode, off, length), &s)
}

// Ftruncate sets the file's size (Linux 6.9).
func (r *Ring) Ftruncate(fd int, length int64) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepFtruncate(new(Completion[struct{}]), &s, fd, length), &s)
}

// Openat opens path relative to dirfd (unix.AT_FDCWD for the working
// directory), like openat(2), and returns the new descriptor, which the
// caller owns. O_CLOEXEC is always added, as os.OpenFile does. The ring
// holds its own copy of path.
func (r *Ring) Openat(dirfd int, path string, flags int, mode uint32) *Completion[int] {
	var s uring.SQE
	return submit1(r, prepOpenat(new(Completion[int]), &s, dirfd, path, flags, mode), &s)
}

// CloseFd closes fd. For FixedFile(i) it clears slot i of the registered
// file table instead.
func (r *Ring) CloseFd(fd int) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepClose(new(Completion[struct{}]), &s, fd), &s)
}

// Statx is statx(2): it fills st for path relative to dirfd (with
// unix.AT_EMPTY_PATH and path "", for dirfd itself). The kernel writes st
// until the operation completes.
func (r *Ring) Statx(dirfd int, path string, flags int, mask uint32, st *unix.Statx_t) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepStatx(new(Completion[struct{}]), &s, dirfd, path, flags, mask, st), &s)
}

// Renameat is renameat2(2).
func (r *Ring) Renameat(olddirfd int, oldpath string, newdirfd int, newpath string, flags int) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepRenameat(new(Completion[struct{}]), &s, olddirfd, oldpath, newdirfd, newpath, flags), &s)
}

// Unlinkat is unlinkat(2); flags may be unix.AT_REMOVEDIR.
func (r *Ring) Unlinkat(dirfd int, path string, flags int) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepUnlinkat(new(Completion[struct{}]), &s, dirfd, path, flags), &s)
}

// Mkdirat is mkdirat(2).
func (r *Ring) Mkdirat(dirfd int, path string, mode uint32) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepMkdirat(new(Completion[struct{}]), &s, dirfd, path, mode), &s)
}

// Timeout completes, without error, after d. Cancelled, it fails with
// ECANCELED.
func (r *Ring) Timeout(d time.Duration) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepTimeout(new(Completion[struct{}]), &s, d), &s)
}

// Poll waits until fd is ready for any of events (unix.POLLIN, ...) and
// returns the events that are ready, like a one-shot poll(2).
func (r *Ring) Poll(fd int, events uint32) *Completion[uint32] {
	var s uring.SQE
	return submit1(r, prepPoll(new(Completion[uint32]), &s, fd, events), &s)
}

// CancelFd cancels every operation in flight on fd and returns how many it
// cancelled (Linux 5.19). Operations on fd still waiting for a slot are
// withdrawn (they complete with ECANCELED) and counted too. The
// cancellation takes one of the slots kept for cancellations, so it never
// waits behind the operations it cancels.
func (r *Ring) CancelFd(fd int) *Completion[int] {
	var s uring.SQE
	c := prepCancelFd(new(Completion[int]), &s, fd)
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
		c.extra().onCQE = func(res int32, flags uint32) (int32, uint32) {
			switch {
			case res >= 0:
				res += n
			case res == -int32(syscall.ENOENT):
				res = n
			}
			return res, flags
		}
	}
	r.submit(&c.op, &s, true)
	return c
}

func submit1[T any](r *Ring, c *Completion[T], s *uring.SQE) *Completion[T] {
	c.ring = r
	r.submit(&c.op, s, false)
	return c
}

// Batch queues operations to submit together, with one io_uring_enter, and
// links them into chains. A Batch's operations enter the submission queue
// together: no other goroutine's operation lands between them, so a linked
// chain is never broken up. A Batch is not safe for concurrent use; it can
// be reused after Submit.
//
// The operations' memory belongs to the kernel from Submit on, as for the
// Ring's methods. Waiting on an operation of a Batch that was not submitted
// returns an error matching syscall.EINVAL.
//
// A Batch allocates its Completions 64 at a time, which makes each cheaper;
// keeping one Completion referenced keeps its group of 64 (about 5 KB)
// alive.
type Batch struct {
	r    *Ring
	ops  []*op
	sqes []uring.SQE // one per op
	idx  []uint32
	err  error

	// Completions are allocated 64 at a time, one slab per result type:
	// a slab stays alive while any of its Completions is referenced.
	none  slab[struct{}]
	ints  slab[int]
	u32s  slab[uint32]
	bools slab[bool]
}

// NewBatch returns an empty Batch for r.
func (r *Ring) NewBatch() *Batch { return &Batch{r: r} }

// Len returns the number of queued operations.
func (b *Batch) Len() int { return len(b.ops) }

// sqe returns a zeroed SQE for the next op; add must follow.
func (b *Batch) sqe() *uring.SQE {
	b.sqes = append(b.sqes, uring.SQE{})
	return &b.sqes[len(b.sqes)-1]
}

func add[T any](b *Batch, c *Completion[T]) *Completion[T] {
	c.ring = b.r
	b.ops = append(b.ops, &c.op)
	return c
}

func (b *Batch) setLast(flag uint8, name string) {
	if len(b.ops) == 0 {
		if b.err == nil {
			b.err = argError("Batch."+name, errNoPrevious)
		}
		return
	}
	b.sqes[len(b.sqes)-1].Flags |= flag
}

// Link makes the operation queued last a predecessor of the next one: the
// next starts only once it has completed successfully, and is cancelled
// (ECANCELED) if it fails or completes short. Successive Links form a chain.
func (b *Batch) Link() { b.setLast(uring.SQEIOLink, "Link") }

// HardLink is Link, except that the next operation starts even if this one
// fails.
func (b *Batch) HardLink() { b.setLast(uring.SQEIOHardlink, "HardLink") }

// Drain makes the operation queued last wait until every operation
// submitted before it has completed, and delays those submitted after it
// until it has completed.
func (b *Batch) Drain() { b.setLast(uring.SQEIODrain, "Drain") }

// LinkTimeout limits the operation queued last to d: it is linked to a
// timeout, and cancelled (ECANCELED) if it has not completed after d. The
// returned Completion reports whether the timeout fired.
func (b *Batch) LinkTimeout(d time.Duration) *Completion[bool] {
	b.Link()
	return add(b, prepLinkTimeout(b.bools.next(), b.sqe(), d))
}

// Nop queues a Nop.
func (b *Batch) Nop() *Completion[struct{}] {
	return add(b, prepNop(b.none.next(), b.sqe()))
}

// Read queues a Read.
func (b *Batch) Read(fd int, p []byte) *Completion[int] {
	return add(b, prepRW(b.ints.next(), b.sqe(), uring.OpRead, fd, p, -1))
}

// Write queues a Write.
func (b *Batch) Write(fd int, p []byte) *Completion[int] {
	return add(b, prepRW(b.ints.next(), b.sqe(), uring.OpWrite, fd, p, -1))
}

// ReadAt queues a ReadAt.
func (b *Batch) ReadAt(fd int, p []byte, off int64) *Completion[int] {
	return add(b, prepRWAt(b.ints.next(), b.sqe(), uring.OpRead, fd, p, off))
}

// WriteAt queues a WriteAt.
func (b *Batch) WriteAt(fd int, p []byte, off int64) *Completion[int] {
	return add(b, prepRWAt(b.ints.next(), b.sqe(), uring.OpWrite, fd, p, off))
}

// ReadvAt queues a ReadvAt.
func (b *Batch) ReadvAt(fd int, bufs [][]byte, off int64) *Completion[int] {
	return add(b, prepRWV(b.ints.next(), b.sqe(), uring.OpReadv, fd, bufs, off))
}

// WritevAt queues a WritevAt.
func (b *Batch) WritevAt(fd int, bufs [][]byte, off int64) *Completion[int] {
	return add(b, prepRWV(b.ints.next(), b.sqe(), uring.OpWritev, fd, bufs, off))
}

// ReadFixedAt queues a ReadFixedAt.
func (b *Batch) ReadFixedAt(fd int, p []byte, off int64, index int) *Completion[int] {
	return add(b, prepRWFixed(b.ints.next(), b.sqe(), b.r, uring.OpReadFixed, fd, p, off, index))
}

// WriteFixedAt queues a WriteFixedAt.
func (b *Batch) WriteFixedAt(fd int, p []byte, off int64, index int) *Completion[int] {
	return add(b, prepRWFixed(b.ints.next(), b.sqe(), b.r, uring.OpWriteFixed, fd, p, off, index))
}

// Fsync queues an Fsync.
func (b *Batch) Fsync(fd int) *Completion[struct{}] {
	return add(b, prepFsync(b.none.next(), b.sqe(), fd, 0))
}

// Fdatasync queues an Fdatasync.
func (b *Batch) Fdatasync(fd int) *Completion[struct{}] {
	return add(b, prepFsync(b.none.next(), b.sqe(), fd, uring.FsyncDatasync))
}

// SyncFileRange queues a SyncFileRange.
func (b *Batch) SyncFileRange(fd int, off int64, n uint32, flags int) *Completion[struct{}] {
	return add(b, prepSyncFileRange(b.none.next(), b.sqe(), fd, off, n, flags))
}

// Fallocate queues a Fallocate.
func (b *Batch) Fallocate(fd int, mode uint32, off, length int64) *Completion[struct{}] {
	return add(b, prepFallocate(b.none.next(), b.sqe(), fd, mode, off, length))
}

// Ftruncate queues an Ftruncate.
func (b *Batch) Ftruncate(fd int, length int64) *Completion[struct{}] {
	return add(b, prepFtruncate(b.none.next(), b.sqe(), fd, length))
}

// Openat queues an Openat.
func (b *Batch) Openat(dirfd int, path string, flags int, mode uint32) *Completion[int] {
	return add(b, prepOpenat(b.ints.next(), b.sqe(), dirfd, path, flags, mode))
}

// CloseFd queues a CloseFd.
func (b *Batch) CloseFd(fd int) *Completion[struct{}] {
	return add(b, prepClose(b.none.next(), b.sqe(), fd))
}

// Statx queues a Statx.
func (b *Batch) Statx(dirfd int, path string, flags int, mask uint32, st *unix.Statx_t) *Completion[struct{}] {
	return add(b, prepStatx(b.none.next(), b.sqe(), dirfd, path, flags, mask, st))
}

// Renameat queues a Renameat.
func (b *Batch) Renameat(olddirfd int, oldpath string, newdirfd int, newpath string, flags int) *Completion[struct{}] {
	return add(b, prepRenameat(b.none.next(), b.sqe(), olddirfd, oldpath, newdirfd, newpath, flags))
}

// Unlinkat queues an Unlinkat.
func (b *Batch) Unlinkat(dirfd int, path string, flags int) *Completion[struct{}] {
	return add(b, prepUnlinkat(b.none.next(), b.sqe(), dirfd, path, flags))
}

// Mkdirat queues a Mkdirat.
func (b *Batch) Mkdirat(dirfd int, path string, mode uint32) *Completion[struct{}] {
	return add(b, prepMkdirat(b.none.next(), b.sqe(), dirfd, path, mode))
}

// Timeout queues a Timeout.
func (b *Batch) Timeout(d time.Duration) *Completion[struct{}] {
	return add(b, prepTimeout(b.none.next(), b.sqe(), d))
}

// Poll queues a Poll.
func (b *Batch) Poll(fd int, events uint32) *Completion[uint32] {
	return add(b, prepPoll(b.u32s.next(), b.sqe(), fd, events))
}

type slab[T any] struct{ free []Completion[T] }

func (s *slab[T]) next() *Completion[T] {
	if len(s.free) == 0 {
		s.free = make([]Completion[T], 64)
	}
	c := &s.free[0]
	s.free = s.free[1:]
	return c
}
