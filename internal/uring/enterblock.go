package uring

import (
	"syscall"
	_ "unsafe" // go:linkname

	"golang.org/x/sys/unix"
)

// EnterBlock is Enter for a call expected to wait (minComplete > 0 with
// EnterGetEvents): it hands the caller's P to other goroutines before
// entering the kernel (runtime.entersyscallblock, as syscall.Syscall6 does
// with entersyscall), instead of leaving it for sysmon to take back after
// 20 µs or more. A thread locked to an event loop that waits in the
// kernel most of the time would otherwise keep sysmon polling at its
// highest rate, and goroutines it readied before waiting would sit in its
// P's run queue until sysmon took the P.
//
//go:nosplit
func EnterBlock(fd int, toSubmit, minComplete, flags uint32) (int, syscall.Errno) {
	entersyscallblock()
	n, _, errno := syscall.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), uintptr(toSubmit), uintptr(minComplete), uintptr(flags), 0, 0)
	exitsyscall()
	return int(n), errno
}

// EnterBlock is the package function EnterBlock on k's descriptor.
func (k *Instance) EnterBlock(toSubmit, minComplete, flags uint32) (int, syscall.Errno) {
	return EnterBlock(k.fd, toSubmit, minComplete, flags)
}

// The runtime keeps these two for packages that make blocking system
// calls themselves (go.dev/issue/67401).

//go:linkname entersyscallblock runtime.entersyscallblock
func entersyscallblock()

//go:linkname exitsyscall runtime.exitsyscall
func exitsyscall()
