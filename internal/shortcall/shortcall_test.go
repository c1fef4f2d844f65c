package shortcall

import (
	"bytes"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Both paths make the call: a non-blocking write to a pipe returns its
// count, and a bad descriptor its errno.
func TestSyscall6(t *testing.T) {
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC))
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	_, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, 1<<20)
	require.NoError(t, err)
	for _, size := range []int{1, Max, Max + 1, 64 << 10} {
		b := bytes.Repeat([]byte{byte(size)}, size)
		n, e := Syscall6(size, unix.SYS_WRITE, uintptr(p[1]), uintptr(unsafe.Pointer(&b[0])), uintptr(size), 0, 0, 0)
		require.Zero(t, e, "write of %d bytes: errno", size)
		require.Equal(t, size, int(n), "write of %d bytes", size)
		got := make([]byte, size)
		m, err := unix.Read(p[0], got)
		require.NoError(t, err, "read back %d bytes", size)
		require.Equal(t, size, m, "read back %d bytes", size)
		require.Equal(t, b, got, "read back %d bytes", size)
		_, e = Syscall6(size, unix.SYS_WRITE, ^uintptr(0), uintptr(unsafe.Pointer(&b[0])), uintptr(size), 0, 0, 0)
		require.Equal(t, syscall.EBADF, e, "write of %d bytes to fd -1", size)
	}
}
