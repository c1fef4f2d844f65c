package rio

import (
	"fmt"
	"math"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

// This file encodes operations into SQEs. Each prep function fills one
// field of the SQE per argument, following the kernel's io_uring.h, and
// records the memory the kernel will use so that the ring can pin it.

// maxRW caps the bytes of one read or write, as Go's internal/poll does;
// larger requests complete short, as io.Reader and io.Writer allow.
const maxRW = 1 << 30

// fixedTag marks a registered-file index passed where a descriptor goes.
const fixedTag = -(1 << 30)

// FixedFile returns the value to pass as fd to refer to the file registered
// at index in the Ring's file table (see Ring.RegisterFiles), rather than to
// a file descriptor. Operations on it skip the kernel's per-operation file
// lookup and reference counting.
func FixedFile(index int) int {
	return fixedTag - index
}

// initOp starts encoding an operation into c, a zeroed Completion, and s,
// a zeroed SQE.
func initOp[T any](c *Completion[T], s *uring.SQE, opcode uint8, fd int) *Completion[T] {
	initSQE(&c.op, s, opcode, fd)
	return c
}

func initSQE(o *op, s *uring.SQE, opcode uint8, fd int) {
	o.opcode = opcode
	s.Opcode = opcode
	setFd(s, fd)
}

func setFd(s *uring.SQE, fd int) {
	if fd <= fixedTag {
		s.Fd = int32(fixedTag - fd)
		s.Flags |= uring.SQEFixedFile
		return
	}
	s.Fd = int32(fd)
}

func argError(op string, err error) error {
	return fmt.Errorf("rio: %s: %w", op, err)
}

func checkOffset[T any](c *Completion[T], off int64) {
	if off < 0 {
		c.setErr(argError(opName(c.opcode), fmt.Errorf("negative offset %d: %w", off, syscall.EINVAL)))
	}
}

func setBuf[T any](c *Completion[T], s *uring.SQE, b []byte) {
	if len(b) > maxRW {
		b = b[:maxRW]
	}
	c.buf = b
	if len(b) > 0 {
		s.Addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	}
	s.Len = uint32(len(b))
}

func prepNop(c *Completion[struct{}], s *uring.SQE) *Completion[struct{}] {
	return initOp(c, s, uring.OpNop, -1)
}

// prepRW encodes read, write and their fixed-buffer forms. off -1 means the
// file's current position (only via prepReadCur/prepWriteCur).
func prepRW(c *Completion[int], s *uring.SQE, opcode uint8, fd int, b []byte, off int64) *Completion[int] {
	initOp(c, s, opcode, fd)
	setBuf(c, s, b)
	s.Off = uint64(off)
	c.kernelWrites = opcode == uring.OpRead || opcode == uring.OpReadFixed
	return c
}

func prepRWAt(c *Completion[int], s *uring.SQE, opcode uint8, fd int, b []byte, off int64) *Completion[int] {
	prepRW(c, s, opcode, fd, b, off)
	checkOffset(c, off)
	return c
}

func prepRWFixed(c *Completion[int], s *uring.SQE, r *Ring, opcode uint8, fd int, b []byte, off int64, index int) *Completion[int] {
	prepRWAt(c, s, opcode, fd, b, off)
	if err := r.checkFixedBuffer(opName(opcode), b, index); err != nil {
		c.setErr(err)
	}
	s.BufIndex = uint16(index)
	return c
}

func prepRWV(c *Completion[int], s *uring.SQE, opcode uint8, fd int, bufs [][]byte, off int64) *Completion[int] {
	initOp(c, s, opcode, fd)
	checkOffset(c, off)
	c.kernelWrites = opcode == uring.OpReadv
	if len(bufs) > 1024 {
		c.setErr(argError(opName(opcode), fmt.Errorf("%d buffers exceed IOV_MAX (1024): %w", len(bufs), syscall.EINVAL)))
		return c
	}
	s.Off = uint64(off)
	if len(bufs) == 0 {
		return c
	}
	iov := make([]unix.Iovec, len(bufs))
	total := 0
	for i, b := range bufs {
		if total+len(b) > maxRW {
			b = b[:maxRW-total]
		}
		total += len(b)
		if len(b) > 0 {
			iov[i].Base = unsafe.SliceData(b)
		}
		iov[i].SetLen(len(b))
	}
	c.extra().bufs = bufs
	c.obj = unsafe.Pointer(&iov[0])
	s.Addr = uint64(uintptr(c.obj))
	s.Len = uint32(len(iov))
	return c
}

func prepFsync(c *Completion[struct{}], s *uring.SQE, fd int, flags uint32) *Completion[struct{}] {
	initOp(c, s, uring.OpFsync, fd)
	s.OpFlags = flags
	return c
}

func prepSyncFileRange(c *Completion[struct{}], s *uring.SQE, fd int, off int64, n uint32, flags int) *Completion[struct{}] {
	initOp(c, s, uring.OpSyncFileRange, fd)
	checkOffset(c, off)
	s.Off = uint64(off)
	s.Len = n
	s.OpFlags = uint32(flags)
	return c
}

func prepFallocate(c *Completion[struct{}], s *uring.SQE, fd int, mode uint32, off, length int64) *Completion[struct{}] {
	initOp(c, s, uring.OpFallocate, fd)
	checkOffset(c, off)
	if length <= 0 {
		c.setErr(argError("fallocate", fmt.Errorf("length %d not positive: %w", length, syscall.EINVAL)))
	}
	s.Off = uint64(off)
	s.Addr = uint64(length) // the kernel takes the length in addr
	s.Len = mode
	return c
}

func prepFtruncate(c *Completion[struct{}], s *uring.SQE, fd int, length int64) *Completion[struct{}] {
	initOp(c, s, uring.OpFtruncate, fd)
	if length < 0 {
		c.setErr(argError("ftruncate", fmt.Errorf("negative length %d: %w", length, syscall.EINVAL)))
	}
	s.Off = uint64(length)
	return c
}

// cpath returns path as a NUL-terminated byte slice.
func cpath(path string) (*byte, error) {
	if strings.IndexByte(path, 0) >= 0 {
		return nil, fmt.Errorf("path %q contains a NUL byte: %w", path, syscall.EINVAL)
	}
	b := make([]byte, len(path)+1)
	copy(b, path)
	return &b[0], nil
}

func setPath[T any](c *Completion[T], path string, obj *unsafe.Pointer) uint64 {
	p, err := cpath(path)
	if err != nil {
		c.setErr(argError(opName(c.opcode), err))
		return 0
	}
	*obj = unsafe.Pointer(p)
	return uint64(uintptr(*obj))
}

func prepOpenat(c *Completion[int], s *uring.SQE, dirfd int, path string, flags int, mode uint32) *Completion[int] {
	initOp(c, s, uring.OpOpenat, dirfd)
	s.Addr = setPath(c, path, &c.obj)
	s.Len = mode
	s.OpFlags = uint32(flags | unix.O_CLOEXEC)
	return c
}

func prepClose(c *Completion[struct{}], s *uring.SQE, fd int) *Completion[struct{}] {
	initOp(c, s, uring.OpClose, -1)
	if fd <= fixedTag {
		s.FileIndex = uint32(fixedTag-fd) + 1 // closing a direct descriptor
		s.Fd = 0
	} else {
		s.Fd = int32(fd)
	}
	return c
}

func prepStatx(c *Completion[struct{}], s *uring.SQE, dirfd int, path string, flags int, mask uint32, st *unix.Statx_t) *Completion[struct{}] {
	initOp(c, s, uring.OpStatx, dirfd)
	s.Addr = setPath(c, path, &c.obj)
	s.Len = mask
	s.OpFlags = uint32(flags)
	if st == nil {
		c.setErr(argError("statx", fmt.Errorf("nil Statx_t: %w", syscall.EFAULT)))
		return c
	}
	c.extra().obj2 = unsafe.Pointer(st)
	s.Off = uint64(uintptr(c.x.obj2))
	return c
}

func prepRenameat(c *Completion[struct{}], s *uring.SQE, olddirfd int, oldpath string, newdirfd int, newpath string, flags int) *Completion[struct{}] {
	initOp(c, s, uring.OpRenameat, olddirfd)
	s.Addr = setPath(c, oldpath, &c.obj)
	s.Off = setPath(c, newpath, &c.extra().obj2)
	s.Len = uint32(int32(newdirfd))
	s.OpFlags = uint32(flags)
	return c
}

func prepUnlinkat(c *Completion[struct{}], s *uring.SQE, dirfd int, path string, flags int) *Completion[struct{}] {
	initOp(c, s, uring.OpUnlinkat, dirfd)
	s.Addr = setPath(c, path, &c.obj)
	s.OpFlags = uint32(flags)
	return c
}

func prepMkdirat(c *Completion[struct{}], s *uring.SQE, dirfd int, path string, mode uint32) *Completion[struct{}] {
	initOp(c, s, uring.OpMkdirat, dirfd)
	s.Addr = setPath(c, path, &c.obj)
	s.Len = mode
	return c
}

func timespec(d time.Duration) *uring.Timespec {
	if d < 0 {
		d = 0
	}
	return &uring.Timespec{Sec: int64(d / time.Second), Nsec: int64(d % time.Second)}
}

func prepTimeout(c *Completion[struct{}], s *uring.SQE, d time.Duration) *Completion[struct{}] {
	initOp(c, s, uring.OpTimeout, -1)
	c.obj = unsafe.Pointer(timespec(d))
	s.Addr = uint64(uintptr(c.obj))
	s.Len = 1
	c.extra().okErrno[0] = syscall.ETIME
	return c
}

func prepLinkTimeout(c *Completion[bool], s *uring.SQE, d time.Duration) *Completion[bool] {
	initOp(c, s, uring.OpLinkTimeout, -1)
	c.obj = unsafe.Pointer(timespec(d))
	s.Addr = uint64(uintptr(c.obj))
	s.Len = 1
	// ETIME: the timeout fired and cancelled the operation; ECANCELED: the
	// operation completed first and the timeout was removed.
	c.extra().okErrno = [2]syscall.Errno{syscall.ETIME, syscall.ECANCELED}
	return c
}

func prepPoll(c *Completion[uint32], s *uring.SQE, fd int, events uint32) *Completion[uint32] {
	initOp(c, s, uring.OpPollAdd, fd)
	s.OpFlags = events
	return c
}

func prepCancelFd(c *Completion[int], s *uring.SQE, fd int) *Completion[int] {
	initOp(c, s, uring.OpAsyncCancel, fd)
	s.OpFlags = uring.AsyncCancelFd | uring.AsyncCancelAll
	if s.Flags&uring.SQEFixedFile != 0 {
		s.Flags &^= uring.SQEFixedFile
		s.OpFlags |= uring.AsyncCancelFdFixed
	}
	return c
}

// checkFixedBuffer verifies that b lies inside registered buffer index.
func (r *Ring) checkFixedBuffer(op string, b []byte, index int) error {
	if !r.usable() {
		return errBadRing
	}
	r.regMu.Lock()
	defer r.regMu.Unlock()
	if index < 0 || index >= len(r.regBufs) || index > math.MaxUint16 {
		return argError(op, fmt.Errorf("buffer index %d not registered (%d buffers): %w", index, len(r.regBufs), syscall.EINVAL))
	}
	reg := r.regBufs[index]
	if len(b) == 0 {
		return nil
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	base := uintptr(unsafe.Pointer(unsafe.SliceData(reg)))
	if start < base || start+uintptr(len(b)) > base+uintptr(len(reg)) {
		return argError(op, fmt.Errorf("buffer is not inside registered buffer %d: %w", index, syscall.EFAULT))
	}
	return nil
}
