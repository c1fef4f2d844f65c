package rio

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Some tests run a program in a subprocess: this test binary again, with
// RIO_TEST_CHILD naming what TestMain runs instead of the tests.
func TestMain(m *testing.M) {
	switch child := os.Getenv("RIO_TEST_CHILD"); child {
	case "":
		os.Exit(m.Run())
	case "race-misuse", "race-correct":
		os.Exit(raceChild(child == "race-misuse"))
	case "seccomp":
		os.Exit(seccompChild())
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
	var cmd *exec.Cmd
	if !race || raceEnabled {
		cmd = exec.Command(os.Args[0])
	} else {
		cmd = exec.Command("go", "test", "-race", "-count=1", "-v", ".")
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

func seccompChild() int {
	var errno uint32
	if _, err := fmt.Sscan(os.Getenv("RIO_SECCOMP_ERRNO"), &errno); err != nil {
		fmt.Println(err)
		return 2
	}
	// seccomp_data.nr is at offset 0. Return errno for io_uring_setup,
	// allow everything else.
	const (
		ldW    = 0x20 // BPF_LD|BPF_W|BPF_ABS
		jeqK   = 0x15 // BPF_JMP|BPF_JEQ|BPF_K
		retK   = 0x06 // BPF_RET|BPF_K
		retErr = 0x00050000
		retOK  = 0x7fff0000
	)
	prog := []unix.SockFilter{
		{Code: ldW, K: 0},
		{Code: jeqK, Jt: 0, Jf: 1, K: unix.SYS_IO_URING_SETUP},
		{Code: retK, K: retErr | errno},
		{Code: retK, K: retOK},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Println("prctl:", err)
		return 1
	}
	const setModeFilter, flagTsync = 1, 1
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, setModeFilter, flagTsync, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		fmt.Println("seccomp:", e)
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
