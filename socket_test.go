package rio

import (
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func listenTCP(t *testing.T) (int, *unix.SockaddrInet4) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	require.NoError(t, unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, unix.Listen(fd, 128))
	sa, err := unix.Getsockname(fd)
	require.NoError(t, err)
	return fd, sa.(*unix.SockaddrInet4)
}

func tcpSocket(t *testing.T) int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func TestTCPAcceptConnectSendRecv(t *testing.T) {
	r := newTestRing(t)
	lfd, addr := listenTCP(t)
	acc := r.Accept(lfd, 0)
	cfd := tcpSocket(t)
	_, err := r.Connect(cfd, addr).Wait()
	require.NoError(t, err)
	sfd, err := acc.Wait()
	require.NoError(t, err)
	defer unix.Close(sfd)

	n, err := r.Send(cfd, []byte("hello"), 0).Wait()
	require.NoError(t, err)
	assert.Equal(t, 5, n)
	buf := make([]byte, 16)
	n, err = r.Recv(sfd, buf, 0).Wait()
	require.NoError(t, err)
	assert.Equal(t, "hello", string(buf[:n]))

	if r.Supported("SEND_ZC") == nil {
		// On loopback the pages stay referenced until the receiver has
		// read them, so the notification (and Wait) come after the Recv.
		zc := r.SendZC(cfd, []byte("zero-copy"), 0)
		n, err = r.Recv(sfd, buf[:9], unix.MSG_WAITALL).Wait()
		require.NoError(t, err)
		assert.Equal(t, "zero-copy", string(buf[:n]))
		n, err = zc.Wait()
		require.NoError(t, err)
		assert.Equal(t, 9, n)
	}

	_, err = r.Shutdown(cfd, unix.SHUT_WR).Wait()
	require.NoError(t, err)
	n, err = r.Recv(sfd, buf, 0).Wait()
	require.NoError(t, err)
	assert.Zero(t, n, "EOF after the peer's shutdown")

	// Connection refused is an errno like any other.
	lfd2, addr2 := listenTCP(t)
	unix.Close(lfd2)
	_, err = r.Connect(tcpSocket(t), addr2).Wait()
	assert.ErrorIs(t, err, syscall.ECONNREFUSED)
	_, err = r.Connect(tcpSocket(t), nil).Wait()
	assert.ErrorIs(t, err, syscall.EINVAL)
}

func TestAcceptMultishot(t *testing.T) {
	r := newTestRing(t)
	requireRing(t, r.Supported("SOCKET")) // multishot accept came with 5.19, as did SOCKET
	lfd, addr := listenTCP(t)
	s := r.AcceptMultishot(lfd, 0)
	for i := 0; i < 5; i++ {
		require.NoError(t, unix.Connect(tcpSocket(t), addr))
	}
	for i := 0; i < 5; i++ {
		fd, err := s.Next()
		require.NoError(t, err)
		unix.Close(fd)
	}
	assert.False(t, s.Ended())
	s.Cancel()
	_, err := s.Next()
	assert.ErrorIs(t, err, syscall.ECANCELED)
	_, err = s.Next()
	assert.ErrorIs(t, err, io.EOF)
	assert.True(t, s.Ended())
}

func TestRecvMultishotBufferRing(t *testing.T) {
	r := newTestRing(t)
	br, fds := recvSetup(t, r, 7, 4, 64)

	s := r.RecvMultishot(fds[0], br, 0)
	var got []byte
	for i := 0; i < 10; i++ {
		_, err := unix.Write(fds[1], []byte{byte('a' + i)})
		require.NoError(t, err)
		b, err := s.Next()
		require.NoError(t, err)
		got = append(got, br.Bytes(b.ID, b.N)...)
		br.Release(b.ID) // 10 receives through 4 buffers
	}
	assert.Equal(t, "abcdefghij", string(got))

	// Without releases the ring runs dry and the stream ends with ENOBUFS.
	var held []uint16
	var end error
	for i := 0; i < 10 && end == nil; i++ {
		_, err := unix.Write(fds[1], []byte("x"))
		require.NoError(t, err)
		b, err := s.Next()
		if err != nil {
			end = err
			break
		}
		held = append(held, b.ID)
	}
	assert.ErrorIs(t, end, syscall.ENOBUFS)
	assert.Len(t, held, 4)
	for _, id := range held {
		br.Release(id)
	}
	_, err := s.Next()
	assert.ErrorIs(t, err, io.EOF)

	// Re-armed, it receives what waited, then EOF when the peer closes.
	s = r.RecvMultishot(fds[0], br, 0)
	b, err := s.Next()
	require.NoError(t, err)
	assert.Equal(t, "x", string(br.Bytes(b.ID, b.N)))
	br.Release(b.ID)
	unix.Close(fds[1])
	b, err = s.Next()
	require.NoError(t, err)
	assert.Zero(t, b.N)
	_, err = s.Next()
	assert.ErrorIs(t, err, io.EOF)
	assert.NoError(t, br.Close(), "no stream uses the ring any more")
	assert.NoError(t, br.Close(), "Close is idempotent")
	_, err = r.RecvMultishot(fds[0], br, 0).Next()
	assert.ErrorIs(t, err, syscall.EINVAL, "closed buffer ring")
}

func TestBufferRingCloseWhileInUse(t *testing.T) {
	r := newTestRing(t)
	br, fds := recvSetup(t, r, 3, 2, 16)
	var err error
	s := r.RecvMultishot(fds[0], br, 0)
	assert.ErrorIs(t, br.Close(), syscall.EBUSY)
	s.Cancel()
	_, err = s.Next()
	assert.ErrorIs(t, err, syscall.ECANCELED)
	assert.NoError(t, br.Close())
}

func TestSendmsgRecvmsg(t *testing.T) {
	r := newTestRing(t)
	a, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(a)
	b, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(b)
	require.NoError(t, unix.Bind(b, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, unix.Bind(a, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	bAddr, _ := unix.Getsockname(b)
	aAddr, _ := unix.Getsockname(a)

	rc := r.Recvmsg(b, make([]byte, 32), nil, 0)
	n, err := r.Sendmsg(a, []byte("datagram"), nil, bAddr, 0).Wait()
	require.NoError(t, err)
	assert.Equal(t, 8, n)
	m, err := rc.Wait()
	require.NoError(t, err)
	assert.Equal(t, 8, m.N)
	assert.Equal(t, aAddr, m.From)
}

func TestStreamNextContext(t *testing.T) {
	r := newTestRing(t)
	requireRing(t, r.Supported("SOCKET"))
	lfd, _ := listenTCP(t)
	s := r.AcceptMultishot(lfd, 0)
	ctx, cancel := contextWithTimeout(20 * time.Millisecond)
	defer cancel()
	_, err := s.NextContext(ctx)
	assert.True(t, errors.Is(err, ctx.Err()))
	s.Cancel()
	_, err = s.Next()
	assert.ErrorIs(t, err, syscall.ECANCELED)
}

// Wait ends on a Wake (before it or during it), on a result and on the
// end of the stream; on a Ring made WithWaitSpin too, with a spin that
// outlasts every wait (an hour) and one that ends before (1 µs), so that
// the wait parks after spinning.
func TestStreamWaitWake(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{{"park", nil}, {"spin", []Option{WithWaitSpin(time.Hour)}}, {"spin-then-park", []Option{WithWaitSpin(time.Microsecond)}}} {
		t.Run(tc.name, func(t *testing.T) { testStreamWaitWake(t, tc.opts) })
	}
}

func testStreamWaitWake(t *testing.T, opts []Option) {
	r := newTestRing(t, opts...)
	br, fds := recvSetup(t, r, 8, 4, 64)
	s := r.RecvMultishot(fds[0], br, 0)

	// Wake before Wait: the next Wait returns at once.
	s.Wake()
	s.Wait()
	assert.Zero(t, s.Buffered())

	// Wake while Wait is blocked.
	done := make(chan struct{})
	go func() {
		s.Wait()
		close(done)
	}()
	s.Wake()
	<-done
	assert.Zero(t, s.Buffered())

	// A result ends a Wait; Next then has it without blocking.
	go func() {
		unix.Write(fds[1], []byte("y"))
	}()
	for s.Buffered() == 0 {
		s.Wait() // may return early for a token left by an earlier result
	}
	b, err := s.Next()
	require.NoError(t, err)
	assert.Equal(t, "y", string(br.Bytes(b.ID, b.N)))
	br.Release(b.ID)

	// Once the stream has ended, Wait does not block.
	s.Cancel()
	for !s.Ended() {
		s.Wait()
	}
	s.Wait()
	_, err = s.Next()
	assert.ErrorIs(t, err, syscall.ECANCELED)
	_, err = s.Next()
	assert.ErrorIs(t, err, io.EOF)
	s.Wait()
	assert.NoError(t, br.Close())
}

// Closing the ring ends a stream, and a Wait blocked on it returns.
func TestStreamWaitRingClose(t *testing.T) {
	r := newTestRing(t)
	br, fds := recvSetup(t, r, 9, 4, 64)
	s := r.RecvMultishot(fds[0], br, 0)
	done := make(chan struct{})
	go func() {
		for !s.Ended() {
			s.Wait()
		}
		close(done)
	}()
	time.Sleep(10 * time.Millisecond) // let it block (not needed for correctness)
	require.NoError(t, r.Close())
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		require.FailNow(t, "Wait still blocked 10 s after the ring closed")
	}
	_, err := s.Next()
	assert.ErrorIs(t, err, syscall.ECANCELED)
}

// recvSetup skips t on kernels without multishot receive (6.0, probed
// through SEND_ZC, which came with it), registers a buffer ring of n
// buffers of size bytes as group, and returns it with a connected pair of
// Unix stream sockets that t's cleanup closes.
func recvSetup(t *testing.T, r *Ring, group uint16, n, size int) (*BufferRing, [2]int) {
	t.Helper()
	requireRing(t, r.Supported("SEND_ZC"))
	br, err := r.NewBufferRing(group, n, size)
	requireRing(t, err)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() {
		unix.Close(fds[0])
		unix.Close(fds[1])
	})
	return br, [2]int{fds[0], fds[1]}
}
