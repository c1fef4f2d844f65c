package uring

import (
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Instance is an io_uring instance of the running kernel: the Kernel that
// Open returns. Besides the Kernel methods it has EnterShort, for calls
// that neither wait nor do much work inline.
type Instance struct {
	fd int
	p  Params
	rg *Rings
}

var _ Kernel = (*Instance)(nil)

// Open sets up an io_uring instance with entries SQEs and the flags and
// sizes in p (io_uring_setup), which it fills in as the kernel does, and
// maps its rings. Errors are *os.SyscallError from io_uring_setup or mmap;
// the caller tells missing features apart (it knows which flags it asked
// for). The instance must have been set up with FEAT_NODROP (Linux 5.5);
// without it Open fails with ENOSYS.
func Open(entries uint32, p *Params) (*Instance, error) {
	fd, err := Setup(entries, p)
	if err != nil {
		return nil, err
	}
	if p.Features&FeatNoDrop == 0 {
		_ = unix.Close(fd)
		return nil, os.NewSyscallError("io_uring_setup", syscall.ENOSYS)
	}
	rg, err := Map(fd, p)
	if err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return &Instance{fd: fd, p: *p, rg: rg}, nil
}

// Fd returns the instance's file descriptor.
func (k *Instance) Fd() int { return k.fd }

// Rings implements Kernel.
func (k *Instance) Rings() *Rings { return k.rg }

// Params implements Kernel.
func (k *Instance) Params() *Params { return &k.p }

// Enter implements Kernel, through the scheduler's system call path: a
// call that waits hands its P to other goroutines.
func (k *Instance) Enter(toSubmit, minComplete, flags uint32) (int, syscall.Errno) {
	return Enter(k.fd, toSubmit, minComplete, flags)
}

// EnterShort is Enter for a call that does not wait and does little work
// inline; see the package function EnterShort.
func (k *Instance) EnterShort(toSubmit, minComplete, flags uint32) (int, syscall.Errno) {
	return EnterShort(k.fd, toSubmit, minComplete, flags)
}

// Register implements Kernel.
func (k *Instance) Register(opcode uint32, arg unsafe.Pointer, nr uint32) (int, error) {
	return Register(k.fd, opcode, arg, nr)
}

// Close implements Kernel: it unmaps the rings and closes the descriptor.
func (k *Instance) Close() error {
	k.rg.Unmap()
	if err := unix.Close(k.fd); err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}
