package uring

import (
	"syscall"
	"unsafe"
)

// Kernel is what package rio needs from an io_uring instance: the running
// kernel's (package rio's realKernel, over Setup, Map and Enter), or a
// simulated one for tests. rio drives both through
// the same shared-memory protocol: it writes SQEs and the SQ tail into
// Rings, calls Enter, and reads CQEs and the CQ tail back.
type Kernel interface {
	// Rings returns the mapped (or simulated) rings.
	Rings() *Rings
	// Params returns the parameters the instance was set up with.
	Params() *Params
	// Enter is io_uring_enter(2), returning the raw errno.
	Enter(toSubmit, minComplete, flags uint32) (int, syscall.Errno)
	// Register is io_uring_register(2); errors are *os.SyscallError.
	Register(opcode uint32, arg unsafe.Pointer, nr uint32) (int, error)
	// Close releases the instance. Nothing is in flight when it is called.
	Close() error
}
