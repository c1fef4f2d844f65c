// Package sandbox restricts the current process the way the environments
// rio must survive do: a seccomp filter that blocks one system call (as
// container profiles block io_uring), and a low RLIMIT_MEMLOCK without
// CAP_IPC_LOCK. Tests call it in a child process they re-execute, since
// neither restriction can be undone.
package sandbox

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BlockSyscall installs a seccomp filter that makes system call nr fail
// with errno and allows everything else, on every thread of the process.
func BlockSyscall(nr, errno uint32) error {
	// seccomp_data.nr is at offset 0.
	const (
		ldW    = 0x20 // BPF_LD|BPF_W|BPF_ABS
		jeqK   = 0x15 // BPF_JMP|BPF_JEQ|BPF_K
		retK   = 0x06 // BPF_RET|BPF_K
		retErr = 0x00050000
		retOK  = 0x7fff0000
	)
	prog := []unix.SockFilter{
		{Code: ldW, K: 0},
		{Code: jeqK, Jt: 0, Jf: 1, K: nr},
		{Code: retK, K: retErr | errno},
		{Code: retK, K: retOK},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl: %w", err)
	}
	const setModeFilter, flagTsync = 1, 1
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, setModeFilter, flagTsync, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return fmt.Errorf("seccomp: %w", e)
	}
	return nil
}

// LimitMemlock lowers RLIMIT_MEMLOCK to n bytes. A root process first
// becomes an unprivileged user of its own (uid and gid 200000 plus its
// pid), since the kernel does not count the locked memory of a process
// with CAP_IPC_LOCK; what the process opens afterwards must then be
// accessible to everyone. The user is the process's own because io_uring
// charges the memory it pins to the user, not the process, and frees it
// some time after a ring is closed: children of another test run as one
// user would see each other's charges.
func LimitMemlock(n uint64) error {
	if os.Geteuid() == 0 {
		id := 200000 + os.Getpid()
		if err := syscall.Setgid(id); err != nil {
			return fmt.Errorf("setgid: %w", err)
		}
		if err := syscall.Setuid(id); err != nil {
			return fmt.Errorf("setuid: %w", err)
		}
	}
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: n, Max: n}); err != nil {
		return fmt.Errorf("setrlimit: %w", err)
	}
	return nil
}

// Calls maps the names tests use to the io_uring system call numbers.
var Calls = map[string]uint32{
	"setup":    unix.SYS_IO_URING_SETUP,
	"register": unix.SYS_IO_URING_REGISTER,
	"enter":    unix.SYS_IO_URING_ENTER,
}

// Apply applies the restriction spec names: "memlock:BYTES" (LimitMemlock)
// or "seccomp:CALL:ERRNO" (BlockSyscall of the io_uring call named as in
// Calls, failing with errno number ERRNO).
func Apply(spec string) error {
	parts := strings.Split(spec, ":")
	switch {
	case parts[0] == "memlock" && len(parts) == 2:
		n, err := strconv.ParseUint(parts[1], 10, 64)
		if err != nil {
			return err
		}
		return LimitMemlock(n)
	case parts[0] == "seccomp" && len(parts) == 3:
		nr, ok := Calls[parts[1]]
		errno, err := strconv.Atoi(parts[2])
		if !ok || err != nil {
			return fmt.Errorf("bad spec %q", spec)
		}
		return BlockSyscall(nr, uint32(errno))
	}
	return fmt.Errorf("bad spec %q", spec)
}

// SeccompSpecs are the specs (for Apply) of every way a seccomp profile
// can make io_uring unavailable: each of its three system calls failing
// with EPERM or ENOSYS.
func SeccompSpecs() []string {
	var specs []string
	for _, call := range []string{"setup", "register", "enter"} {
		for _, errno := range []syscall.Errno{syscall.EPERM, syscall.ENOSYS} {
			specs = append(specs, fmt.Sprintf("seccomp:%s:%d", call, int(errno)))
		}
	}
	return specs
}
