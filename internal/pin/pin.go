// Package pin starts benchmark processes on chosen CPUs, through
// golang.org/x/sys/unix's CPU sets. It is for the repository's benchmark
// commands (cmd/riobench and bench/net); the library does not use it.
package pin

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// CPUs returns the CPUs the calling thread may run on, in increasing
// order: those of the process, unless the thread was pinned on its own.
func CPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var cpus []int
	for c := 0; len(cpus) < set.Count(); c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// Start starts cmd with every thread it will ever have allowed only on
// cpus (none: wherever the caller may run). A child inherits the CPU
// affinity of the thread that forks it, so the fork is made from the
// calling goroutine's thread, locked to it and pinned for the moment, then
// restored: the child is pinned before it runs its first instruction, and
// a Go child's default GOMAXPROCS is the number of CPUs it is allowed.
// Like cmd.Start, it leaves waiting for cmd to the caller.
func Start(cmd *exec.Cmd, cpus []int) error {
	if len(cpus) == 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return fmt.Errorf("sched_getaffinity: %w", err)
	}
	for _, c := range cpus {
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("sched_setaffinity %v: %w", cpus, err)
	}
	err := cmd.Start()
	if rerr := unix.SchedSetaffinity(0, &old); rerr != nil && err == nil {
		err = fmt.Errorf("sched_setaffinity (restore): %w", rerr)
	}
	return err
}

// Allowed is the Cpus_allowed_list the kernel reports for process pid
// ("0-1", "1"), to check that pinning took; "?" if it cannot be read.
func Allowed(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == "Cpus_allowed_list" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
