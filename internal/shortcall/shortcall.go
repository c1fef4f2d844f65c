// Package shortcall makes system calls that never wait without the Go
// scheduler's system call bookkeeping, when they move little data.
//
// syscall.Syscall6 tells the scheduler that the thread is in a system
// call (entersyscall and exitsyscall). If the thread is then descheduled
// by the kernel for more than 20 µs, sysmon hands its P to another thread,
// and the caller comes back without a P and goes to sleep until one is
// free. A call that never waits can still be descheduled: a send on
// loopback wakes the peer, and when the peer runs on the same CPU the
// sender is preempted on its way out of the kernel. Made raw, the call
// keeps its P, like Go code that the kernel preempts; what it costs is
// that the P is held while the call copies, which Max bounds.
//
// rio uses it for rionet's direct sends (MSG_DONTWAIT) and for file's page
// cache reads (RWF_NOWAIT); the core ring makes the same choice for
// io_uring_enter calls whose submissions move at most Max bytes. The
// measurements are in docs/net.md and docs/file.md.
package shortcall

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// Max is the most bytes a call may move and still be made raw.
const Max = 16 << 10

// Syscall6 makes system call trap, which must never wait (a non-blocking
// flag such as MSG_DONTWAIT or RWF_NOWAIT), and which moves n bytes: raw
// if n is at most Max, through the scheduler otherwise. It returns the
// call's result and errno.
func Syscall6(n int, trap, a1, a2, a3, a4, a5, a6 uintptr) (uintptr, syscall.Errno) {
	var (
		r uintptr
		e syscall.Errno
	)
	if n <= Max {
		r, _, e = unix.RawSyscall6(trap, a1, a2, a3, a4, a5, a6)
	} else {
		r, _, e = unix.Syscall6(trap, a1, a2, a3, a4, a5, a6)
	}
	return r, e
}

// CopyMax is the most bytes CopySyscall6 moves raw.
const CopyMax = 4 << 20

// CopySyscall6 is Syscall6 with a larger bound, CopyMax, for callers that
// split a copy that never waits into pieces on purpose, so that the copy
// keeps its P as Go code copying memory does: several goroutines then copy
// in parallel without the scheduler handing their Ps off and starting
// threads for other work meanwhile. A piece of 4 MiB from the page cache
// takes about a millisecond here.
func CopySyscall6(n int, trap, a1, a2, a3, a4, a5, a6 uintptr) (uintptr, syscall.Errno) {
	if n <= CopyMax {
		r, _, e := unix.RawSyscall6(trap, a1, a2, a3, a4, a5, a6)
		return r, e
	}
	r, _, e := unix.Syscall6(trap, a1, a2, a3, a4, a5, a6)
	return r, e
}

// Yield gives the CPU to another runnable thread, if there is one
// (sched_yield), without the scheduler's bookkeeping: it never waits. On
// its way out of the kernel the thread also runs its pending task work,
// which is what io_uring's cooperative completions need to be posted.
func Yield() {
	unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
}
