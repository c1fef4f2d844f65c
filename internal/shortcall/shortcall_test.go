package shortcall

import (
	"bytes"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Both paths make the call: a non-blocking write to a pipe returns its
// count, and a bad descriptor its errno.
func TestSyscall6(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, 1<<20); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1, Max, Max + 1, 64 << 10} {
		b := bytes.Repeat([]byte{byte(size)}, size)
		n, e := Syscall6(size, unix.SYS_WRITE, uintptr(p[1]), uintptr(unsafe.Pointer(&b[0])), uintptr(size), 0, 0, 0)
		if e != 0 || int(n) != size {
			t.Fatalf("write of %d bytes = %d, %v", size, n, e)
		}
		got := make([]byte, size)
		if m, err := unix.Read(p[0], got); err != nil || m != size || !bytes.Equal(got, b) {
			t.Fatalf("read back %d of %d bytes, %v", m, size, err)
		}
		if _, e := Syscall6(size, unix.SYS_WRITE, ^uintptr(0), uintptr(unsafe.Pointer(&b[0])), uintptr(size), 0, 0, 0); e != syscall.EBADF {
			t.Fatalf("write of %d bytes to fd -1: errno %v, want EBADF", size, e)
		}
	}
}
