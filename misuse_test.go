package rio

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/gorio/rio/internal/sandbox"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Some tests run a program in a subprocess: this test binary again, with
// RIO_TEST_CHILD naming what TestMain runs instead of the tests.
func TestMain(m *testing.M) {
	switch child := os.Getenv("RIO_TEST_CHILD"); child {
	case "":
		// Start the runtime's network poller (its epoll fd and wake-up fd
		// stay open for the life of the process) before any test counts
		// fds: otherwise the first Ring, whose eventfd goes to the poller,
		// opens those two and the first test's leak check reports them.
		// Under go test the poller is usually up already (stdout is a
		// pipe); running the test binary directly, it was not.
		if pr, pw, err := os.Pipe(); err == nil {
			pr.Close()
			pw.Close()
		}
		os.Exit(m.Run())
	case "race-misuse", "race-correct":
		os.Exit(raceChild(child == "race-misuse"))
	case "seccomp":
		os.Exit(seccompChild())
	case "memlock":
		os.Exit(memlockChild())
	case "pin":
		os.Exit(pinChild(os.Getenv("RIO_PIN_FILE")))
	default:
		fmt.Fprintln(os.Stderr, "unknown RIO_TEST_CHILD", child)
		os.Exit(2)
	}
}

// runChild runs this package's test binary as child (built with -race if
// race is set: this binary itself if it is a race build, otherwise through
// go test -race) and returns its output and exit error.
func runChild(t *testing.T, child string, race bool) (string, error) {
	t.Helper()
	// A child that hangs fails the test instead of hanging it: the bound
	// is generous, not a timing assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	if !race || raceEnabled {
		cmd = exec.CommandContext(ctx, os.Args[0])
	} else {
		cmd = exec.CommandContext(ctx, "go", "test", "-race", "-count=1", "-v", ".")
	}
	cmd.Env = append(os.Environ(), "RIO_TEST_CHILD="+child)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Touching a buffer while the kernel owns it is reported by the race
// detector; touching it after Wait is not.
func TestRaceDetectorReportsBufferMisuse(t *testing.T) {
	out, err := runChild(t, "race-misuse", true)
	require.Error(t, err, "misuse went unreported:\n%s", out)
	assert.Contains(t, out, "WARNING: DATA RACE")
	assert.Contains(t, out, "raceSubmit", "the report names the kernel's simulated access")
	assert.Contains(t, out, "misuse_test.go", "the report names the misusing line")

	out, err = runChild(t, "race-correct", true)
	require.NoError(t, err, "correct use reported as a race:\n%s", out)
	assert.NotContains(t, out, "DATA RACE")
	assert.Contains(t, out, "read kernel")
}

func raceChild(misuse bool) int {
	r, err := New()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer r.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer pr.Close()
	defer pw.Close()

	buf := make([]byte, 8)
	buf[0] = 'a' // before submission: fine
	c := r.Read(int(pr.Fd()), buf)
	if misuse {
		buf[0] = 'b' // the kernel owns buf: a race
	}
	time.Sleep(time.Millisecond)
	if _, err := pw.Write([]byte("kernel")); err != nil {
		fmt.Println(err)
		return 1
	}
	n, err := c.Wait()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("read", string(buf[:n])) // after Wait: fine
	return 0
}

// When a seccomp filter blocks io_uring_setup, as Docker's default profile
// does (EPERM, or ENOSYS in newer profiles), New reports ErrNotSupported.
func TestNotSupportedUnderSeccomp(t *testing.T) {
	for _, errno := range []unix.Errno{unix.EPERM, unix.ENOSYS} {
		t.Setenv("RIO_SECCOMP_ERRNO", fmt.Sprint(int(errno)))
		out, err := runChild(t, "seccomp", false)
		require.NoError(t, err, out)
		assert.Contains(t, out, "NOTSUPPORTED: rio: io_uring not supported (requires Linux 5.1 or later): io_uring_setup: "+errno.Error())
	}
}

// Issue 11, item 3: a seccomp profile that lets io_uring_setup through but
// blocks io_uring_register or io_uring_enter makes io_uring just as
// unavailable: New reports ErrNotSupported, naming the blocked call.
// Before the fix, a blocked register gave a plain *os.SyscallError and a
// blocked enter a ring whose first operation never completed.
func TestNotSupportedWhenRegisterOrEnterBlocked(t *testing.T) {
	for _, call := range []string{"register", "enter"} {
		for _, errno := range []unix.Errno{unix.EPERM, unix.ENOSYS} {
			t.Setenv("RIO_SECCOMP_CALL", call)
			t.Setenv("RIO_SECCOMP_ERRNO", fmt.Sprint(int(errno)))
			out, err := runChild(t, "seccomp", false)
			require.NoError(t, err, out)
			assert.Contains(t, out, "NOTSUPPORTED: rio: io_uring_"+call+" not supported (requires Linux 5.1 or later): io_uring_"+call+": "+errno.Error())
		}
	}
}

// Issue 11, item 4: io_uring_enter blocked after the ring was set up fails
// the operations the kernel never saw with the errno, and Close returns.
// Before the fix, the first operation waited for ever.
func TestEnterBlockedAfterNew(t *testing.T) {
	for _, errno := range []unix.Errno{unix.EPERM, unix.ENOSYS} {
		t.Setenv("RIO_SECCOMP_CALL", "enter-after-new")
		t.Setenv("RIO_SECCOMP_ERRNO", fmt.Sprint(int(errno)))
		out, err := runChild(t, "seccomp", false)
		require.NoError(t, err, out)
		assert.Contains(t, out, "NOP: io_uring_enter: "+errno.Error())
		assert.Contains(t, out, "CLOSE: io_uring_enter: "+errno.Error())
	}
}

// Issue 11, item 3: under a low RLIMIT_MEMLOCK, a ring or a buffer ring
// too large for it fails with a *LimitError that says so, matching
// ErrResourceLimit and ENOMEM, not ErrNotSupported. Before the fix, both
// were plain *os.SyscallErrors.
func TestMemlockIsAResourceLimit(t *testing.T) {
	out, err := runChild(t, "memlock", false)
	require.NoError(t, err, out)
	assert.Contains(t, out, "BIG: rio: io_uring_setup: resource limit (RLIMIT_MEMLOCK is 64 KiB")
	assert.Contains(t, out, "PBUF: rio: IORING_REGISTER_PBUF_RING: resource limit (RLIMIT_MEMLOCK is 64 KiB")
}

func seccompChild() int {
	var errno uint32
	if _, err := fmt.Sscan(os.Getenv("RIO_SECCOMP_ERRNO"), &errno); err != nil {
		fmt.Println(err)
		return 2
	}
	nr := uint32(unix.SYS_IO_URING_SETUP)
	switch os.Getenv("RIO_SECCOMP_CALL") {
	case "register":
		nr = unix.SYS_IO_URING_REGISTER
	case "enter", "enter-after-new":
		nr = unix.SYS_IO_URING_ENTER
	}
	if os.Getenv("RIO_SECCOMP_CALL") == "enter-after-new" {
		return enterBlockedChild(nr, errno)
	}
	if err := sandbox.BlockSyscall(nr, errno); err != nil {
		fmt.Println(err)
		return 1
	}
	_, err := New()
	if !errors.Is(err, ErrNotSupported) {
		fmt.Printf("New under seccomp: %v, want ErrNotSupported\n", err)
		return 1
	}
	fmt.Println("NOTSUPPORTED:", err)
	return 0
}

// enterBlockedChild creates a ring, then blocks io_uring_enter: the first
// operation fails with the errno instead of waiting for ever, and Close
// returns.
func enterBlockedChild(nr, errno uint32) int {
	r, err := New()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	if err := sandbox.BlockSyscall(nr, errno); err != nil {
		fmt.Println(err)
		return 1
	}
	_, err = r.Nop().Wait()
	fmt.Println("NOP:", err)
	if !errors.Is(err, syscall.Errno(errno)) {
		return 1
	}
	err = r.Close()
	fmt.Println("CLOSE:", err)
	if !errors.Is(err, syscall.Errno(errno)) {
		return 1
	}
	return 0
}

// memlockChild runs under an RLIMIT_MEMLOCK of 64 KiB, without
// CAP_IPC_LOCK (a root process drops to nobody first: the kernel does not
// count locked memory for a process with the capability). A ring too large
// for the limit is a resource limit, a small one works, and a buffer ring
// too large for what is left is a resource limit too.
func memlockChild() int {
	if err := sandbox.LimitMemlock(64 << 10); err != nil {
		fmt.Println(err)
		return 1
	}
	check := func(what string, err error) bool {
		fmt.Printf("%s: %v\n", what, err)
		return errors.Is(err, ErrResourceLimit) && errors.Is(err, syscall.ENOMEM) && !errors.Is(err, ErrNotSupported)
	}
	_, err := New(WithEntries(1024), WithCQEntries(65536))
	if !check("BIG", err) {
		return 1
	}
	r, err := New()
	if err != nil {
		fmt.Println("SMALL:", err)
		return 1
	}
	defer r.Close()
	_, err = r.NewBufferRing(1, 4096, 4096)
	if !check("PBUF", err) {
		return 1
	}
	br, err := r.NewBufferRing(2, 8, 4096)
	if err != nil {
		fmt.Println("small PBUF:", err)
		return 1
	}
	br.Close()
	return 0
}
