package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/gorio/rio/internal/pin"
	"golang.org/x/sys/unix"
)

// System helpers: CPU sets and pinning (internal/pin, through
// golang.org/x/sys/unix), and what riobench reads from /proc and /sys to
// describe the machine.

// allowedCPUs returns the CPUs this process may run on.
func allowedCPUs() []int {
	cpus, err := pin.CPUs()
	if err != nil {
		cpus = make([]int, runtime.NumCPU())
		for i := range cpus {
			cpus[i] = i
		}
	}
	return cpus
}

// startOn starts cmd pinned to cpus from its first instruction (none:
// unpinned); see pin.Start.
func startOn(cmd *exec.Cmd, cpus []int) error { return pin.Start(cmd, cpus) }

// fadviseDontNeed drops a file's clean pages from the page cache.
func fadviseDontNeed(fd int) error {
	return unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
}

// threadCount is the number of OS threads of this process.
func threadCount() int {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return -1
	}
	return len(ents)
}

// repoRoot finds the rio repository (for bench/c, bench/net and
// bench/peers): the directory of this source file's module when riobench
// runs from a checkout (go run ./cmd/riobench), or the working directory's.
func repoRoot() string {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for d := dir; ; d = filepath.Dir(d) {
			b, err := os.ReadFile(filepath.Join(d, "go.mod"))
			if err == nil && strings.Contains(string(b), "module github.com/gorio/rio\n") {
				return d
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return ""
}

// kernelRelease is uname -r.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// virtualization says whether the CPU runs under a hypervisor (the
// "hypervisor" flag of /proc/cpuinfo) and, where /sys tells, which one.
func virtualization() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil || !strings.Contains(string(b), " hypervisor") {
		return ""
	}
	for _, f := range []string{"/sys/hypervisor/type", "/sys/class/dmi/id/sys_vendor"} {
		if v, err := os.ReadFile(f); err == nil && strings.TrimSpace(string(v)) != "" {
			return "virtual machine (" + strings.TrimSpace(string(v)) + ")"
		}
	}
	return "virtual machine"
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// lookPath is exec.LookPath returning "" when the program is missing.
func lookPath(name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	return p
}

// goTool is the go command: the one on PATH, else the one riobench was
// built with.
func goTool() string {
	if g := lookPath("go"); g != "" {
		return g
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// gitCommit describes the checkout at root: the commit, and "+dirty" when
// tracked files differ from it. "" if git cannot tell.
func gitCommit(root string) string {
	if root == "" {
		return ""
	}
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return ""
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += "+dirty"
	}
	return c
}
