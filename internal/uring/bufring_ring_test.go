package uring_test

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/testutil"
	"github.com/gorio/rio/internal/uring"
)

// Registered on a real ring, the kernel picks buffers in the order they
// were added, fills them, and names them in the CQE, also after the
// tail has wrapped around the ring several times.
func TestBufRingMultishotRecv(t *testing.T) {
	// A SINGLE_ISSUER ring refuses (EEXIST) an enter from any thread but
	// the one that made it: the goroutine must not move between threads.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p := uring.Params{Flags: uring.SetupSingleIssuer | uring.SetupDeferTaskrun}
	k, err := uring.Open(8, &p)
	if errors.Is(err, syscall.EINVAL) {
		err = &rio.FeatureError{Feature: "IORING_SETUP_DEFER_TASKRUN", MinKernel: "6.1", Err: err}
	}
	testutil.RequireRing(t, err)
	defer k.Close()
	b, err := uring.NewBufRing(4, 64, 5)
	require.NoError(t, err)
	reg := b.Reg()
	_, err = k.Register(uring.RegisterPbufRing, unsafe.Pointer(&reg), 1)
	require.NoError(t, err)
	defer func() {
		reg := uring.BufReg{Bgid: 5}
		k.Register(uring.UnregisterPbufRing, unsafe.Pointer(&reg), 1)
		b.Free()
	}()
	for i := 0; i < 4; i++ {
		b.Add(uint16(i))
	}
	b.Publish()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])

	rg := k.Rings()
	tail := *rg.SQTail
	rg.SQEs[tail&rg.SQMask] = uring.SQE{Opcode: uring.OpRecv, Fd: int32(fds[0]), IOPrio: uring.RecvMultishot, Flags: uring.SQEBufferSelect, BufIndex: 5, UserData: 9}
	uring.StoreRelease(rg.SQTail, tail+1)
	_, errno := k.Enter(1, 0, uring.EnterGetEvents)
	require.Zero(t, errno)
	head := *rg.CQHead
	for i := 0; i < 20; i++ {
		msg := []byte(fmt.Sprintf("message %d", i))
		_, err := unix.Write(fds[1], msg)
		require.NoError(t, err)
		_, errno := k.Enter(0, 1, uring.EnterGetEvents)
		require.Zero(t, errno)
		require.NotEqual(t, head, uring.LoadAcquire(rg.CQTail))
		c := rg.CQEs[head&rg.CQMask]
		head++
		uring.StoreRelease(rg.CQHead, head)
		require.EqualValues(t, len(msg), c.Res)
		require.NotZero(t, c.Flags&uring.CQEFBuffer)
		require.NotZero(t, c.Flags&uring.CQEFMore)
		bid := uint16(c.Flags >> uring.CQEBufferShift)
		require.EqualValues(t, i%4, bid, "buffers are used in the order they were added")
		require.True(t, bytes.Equal(msg, b.Buf(bid, int(c.Res))))
		b.Add(bid)
		b.Publish()
	}
	// End the receive.
	unix.Shutdown(fds[1], unix.SHUT_WR)
	_, errno = k.Enter(0, 1, uring.EnterGetEvents)
	require.Zero(t, errno)
	c := rg.CQEs[head&rg.CQMask]
	uring.StoreRelease(rg.CQHead, head+1)
	require.EqualValues(t, 0, c.Res)
	require.Zero(t, c.Flags&uring.CQEFMore)
}
