package uring

import (
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Setup calls io_uring_setup. Errors are *os.SyscallError wrapping the errno.
func Setup(entries uint32, p *Params) (int, error) {
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if errno != 0 {
		return -1, os.NewSyscallError("io_uring_setup", errno)
	}
	return int(fd), nil
}

// Enter calls io_uring_enter with no signal mask. It returns the raw errno so
// callers can tell EINTR, EAGAIN and EBUSY apart cheaply; the caller wraps it.
//
// It always goes through the scheduler's syscall path: even a submission
// that cannot block may copy a large buffer through the page cache inline,
// and the P must be free for other goroutines meanwhile.
func Enter(fd int, toSubmit, minComplete, flags uint32) (int, syscall.Errno) {
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), uintptr(toSubmit), uintptr(minComplete), uintptr(flags), 0, 0)
	return int(n), errno
}

// EnterShort is Enter for a call known to be short: it submits without
// waiting (no EnterGetEvents with minComplete > 0, no EnterSQWait) and what
// it submits does little work inline. It skips the scheduler's syscall
// bookkeeping, which costs more than the call itself for a NOP, at the
// price of holding the P for the call's duration.
func EnterShort(fd int, toSubmit, minComplete, flags uint32) (int, syscall.Errno) {
	n, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), uintptr(toSubmit), uintptr(minComplete), uintptr(flags), 0, 0)
	return int(n), errno
}

// Register calls io_uring_register. Errors are *os.SyscallError.
func Register(fd int, opcode uint32, arg unsafe.Pointer, nrArgs uint32) (int, error) {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(fd), uintptr(opcode), uintptr(arg), uintptr(nrArgs), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return -1, os.NewSyscallError("io_uring_register", errno)
		}
		return int(n), nil
	}
}

// Rings is the mapped submission and completion ring of one io_uring
// instance. The pointer fields point into memory shared with the kernel; the
// kernel-written indices must be read with atomic loads and the
// application-written ones published with atomic stores.
type Rings struct {
	SQHead    *uint32 // written by the kernel
	SQTail    *uint32 // written by us
	SQMask    uint32
	SQEntries uint32
	SQFlags   *uint32 // written by the kernel
	SQDropped *uint32
	SQArray   []uint32
	SQEs      []SQE

	CQHead     *uint32 // written by us
	CQTail     *uint32 // written by the kernel
	CQMask     uint32
	CQEntries  uint32
	CQFlags    *uint32 // written by us
	CQOverflow *uint32
	CQEs       []CQE

	sqRing, cqRing, sqes []byte
}

// Map maps the rings of the io_uring instance fd, set up with p.
func Map(fd int, p *Params) (*Rings, error) {
	sqSize := int(p.SQOff.Array) + int(p.SQEntries)*4
	cqSize := int(p.CQOff.CQEs) + int(p.CQEntries)*int(unsafe.Sizeof(CQE{}))
	single := p.Features&FeatSingleMmap != 0
	if single && cqSize > sqSize {
		sqSize = cqSize
	}
	r := &Rings{}
	var err error
	r.sqRing, err = unix.Mmap(fd, OffSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	if single {
		r.cqRing = r.sqRing
	} else {
		r.cqRing, err = unix.Mmap(fd, OffCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			r.Unmap()
			return nil, os.NewSyscallError("mmap", err)
		}
	}
	sqesSize := int(p.SQEntries) * int(unsafe.Sizeof(SQE{}))
	r.sqes, err = unix.Mmap(fd, OffSQEs, sqesSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		r.Unmap()
		return nil, os.NewSyscallError("mmap", err)
	}
	r.init(p, unsafe.Pointer(&r.sqRing[0]), unsafe.Pointer(&r.cqRing[0]), unsafe.Pointer(&r.sqes[0]))
	return r, nil
}

// NewRings lays out rings in ordinary memory, with the same offsets a kernel
// would report in p, for a simulated kernel. It fills p's offsets.
func NewRings(p *Params) *Rings {
	p.SQOff = SQRingOffsets{Head: 0, Tail: 64, RingMask: 128, RingEntries: 132, Flags: 136, Dropped: 140, Array: 192}
	p.CQOff = CQRingOffsets{Head: 0, Tail: 64, RingMask: 128, RingEntries: 132, Overflow: 136, Flags: 140, CQEs: 192}
	sq := make([]uint64, (int(p.SQOff.Array)+int(p.SQEntries)*4+7)/8)
	cq := make([]uint64, (int(p.CQOff.CQEs)+int(p.CQEntries)*16+7)/8)
	sqes := make([]SQE, p.SQEntries)
	r := &Rings{}
	sqp, cqp := unsafe.Pointer(&sq[0]), unsafe.Pointer(&cq[0])
	*(*uint32)(unsafe.Add(sqp, p.SQOff.RingMask)) = p.SQEntries - 1
	*(*uint32)(unsafe.Add(sqp, p.SQOff.RingEntries)) = p.SQEntries
	*(*uint32)(unsafe.Add(cqp, p.CQOff.RingMask)) = p.CQEntries - 1
	*(*uint32)(unsafe.Add(cqp, p.CQOff.RingEntries)) = p.CQEntries
	r.init(p, sqp, cqp, unsafe.Pointer(&sqes[0]))
	return r
}

func (r *Rings) init(p *Params, sq, cq, sqes unsafe.Pointer) {
	r.SQHead = (*uint32)(unsafe.Add(sq, p.SQOff.Head))
	r.SQTail = (*uint32)(unsafe.Add(sq, p.SQOff.Tail))
	r.SQMask = *(*uint32)(unsafe.Add(sq, p.SQOff.RingMask))
	r.SQEntries = *(*uint32)(unsafe.Add(sq, p.SQOff.RingEntries))
	r.SQFlags = (*uint32)(unsafe.Add(sq, p.SQOff.Flags))
	r.SQDropped = (*uint32)(unsafe.Add(sq, p.SQOff.Dropped))
	if p.Flags&SetupNoSQArray == 0 {
		r.SQArray = unsafe.Slice((*uint32)(unsafe.Add(sq, p.SQOff.Array)), p.SQEntries)
		// Identity mapping: SQE slot i is always array entry i, so
		// publishing an entry is a single tail store.
		for i := range r.SQArray {
			r.SQArray[i] = uint32(i)
		}
	}
	r.SQEs = unsafe.Slice((*SQE)(sqes), p.SQEntries)

	r.CQHead = (*uint32)(unsafe.Add(cq, p.CQOff.Head))
	r.CQTail = (*uint32)(unsafe.Add(cq, p.CQOff.Tail))
	r.CQMask = *(*uint32)(unsafe.Add(cq, p.CQOff.RingMask))
	r.CQEntries = *(*uint32)(unsafe.Add(cq, p.CQOff.RingEntries))
	r.CQOverflow = (*uint32)(unsafe.Add(cq, p.CQOff.Overflow))
	if p.CQOff.Flags != 0 {
		r.CQFlags = (*uint32)(unsafe.Add(cq, p.CQOff.Flags))
	}
	r.CQEs = unsafe.Slice((*CQE)(unsafe.Add(cq, p.CQOff.CQEs)), p.CQEntries)
}

// Unmap releases the ring memory. The kernel must no longer be able to
// write completions (the instance's requests are all reaped) and nothing may
// touch the Rings afterwards.
func (r *Rings) Unmap() {
	if r.sqes != nil {
		_ = unix.Munmap(r.sqes)
	}
	if r.cqRing != nil && (r.sqRing == nil || &r.cqRing[0] != &r.sqRing[0]) {
		_ = unix.Munmap(r.cqRing)
	}
	if r.sqRing != nil {
		_ = unix.Munmap(r.sqRing)
	}
	r.sqes, r.cqRing, r.sqRing = nil, nil, nil
}

// LoadAcquire and StoreRelease name the memory orderings the ring protocol
// needs. Go's atomics are sequentially consistent, which is stronger.
func LoadAcquire(p *uint32) uint32 { return atomic.LoadUint32(p) }

// StoreRelease publishes v at p.
func StoreRelease(p *uint32, v uint32) { atomic.StoreUint32(p, v) }

// ErrNotSupported and ErrResourceLimit are rio's. They are defined here,
// below package rio, so that helpers under internal/ (testutil's
// RequireRing and SetupClass) can match them without importing rio.
var (
	ErrNotSupported  = errors.New("not supported")
	ErrResourceLimit = errors.New("resource limit")
)

// Addr returns p as the 64-bit address that an SQE, a registration
// argument or a ring entry carries. It is the one place where a pointer
// becomes a number the kernel dereferences: the caller keeps what p points
// to reachable and pinned (or outside the Go heap) for as long as the
// kernel may use it.
func Addr(p unsafe.Pointer) uint64 { return uint64(uintptr(p)) }

// SliceAddr is Addr of b's first element, or 0 for an empty b.
func SliceAddr[T any](b []T) uint64 {
	if len(b) == 0 {
		return 0
	}
	return Addr(unsafe.Pointer(unsafe.SliceData(b)))
}
