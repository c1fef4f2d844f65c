package rio

import (
	"bytes"
	"context"
	"io"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestBatchTwins checks the promise of ops.go: every operation method of
// Ring (one that returns a Completion or a Stream) has a twin on Batch with
// the same signature.
func TestBatchTwins(t *testing.T) {
	rt, bt := reflect.TypeFor[*Ring](), reflect.TypeFor[*Batch]()
	ops := 0
	for i := range rt.NumMethod() {
		m := rt.Method(i)
		if m.Type.NumOut() != 1 {
			continue
		}
		out := m.Type.Out(0).String()
		if !strings.HasPrefix(out, "*rio.Completion[") && !strings.HasPrefix(out, "*rio.Stream[") {
			continue
		}
		ops++
		bm, ok := bt.MethodByName(m.Name)
		if !assert.True(t, ok, "Ring.%s has no twin on Batch", m.Name) {
			continue
		}
		// Compare the signatures without the receiver.
		want, got := m.Type, bm.Type
		assert.Equal(t, want.NumIn(), got.NumIn(), "Batch.%s arguments", m.Name)
		for j := 1; j < min(want.NumIn(), got.NumIn()); j++ {
			assert.Equal(t, want.In(j), got.In(j), "Batch.%s argument %d", m.Name, j)
		}
		assert.Equal(t, want.Out(0), got.Out(0), "Batch.%s result", m.Name)
	}
	assert.Greater(t, ops, 30, "the operation methods were found")
}

// connectedTCP returns both ends of a loopback TCP connection, made with
// an Accept and a Connect queued in one Batch.
func connectedTCP(t *testing.T, r *Ring) (client, server int) {
	t.Helper()
	lfd, addr := listenTCP(t)
	cfd := tcpSocket(t)
	b := r.NewBatch()
	acc := b.Accept(lfd, 0)
	conn := b.Connect(cfd, addr)
	require.NoError(t, b.Submit())
	_, err := conn.Wait()
	require.NoError(t, err)
	sfd, err := acc.Wait()
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(sfd) })
	return cfd, sfd
}

// A receive linked to a send, limited by a link timeout: the chain a
// request-response client submits at once.
func TestBatchSendLinkedRecv(t *testing.T) {
	r := newTestRing(t)
	c, s := connectedTCP(t, r)

	b := r.NewBatch()
	snd := b.Send(c, []byte("ping"), unix.MSG_NOSIGNAL)
	b.Link()
	buf := make([]byte, 4)
	rcv := b.Recv(s, buf, unix.MSG_WAITALL)
	fired := b.LinkTimeout(5 * time.Second)
	require.NoError(t, b.Submit())
	n, err := snd.Wait()
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	n, err = rcv.Wait()
	require.NoError(t, err)
	assert.Equal(t, "ping", string(buf[:n]))
	f, err := fired.Wait()
	require.NoError(t, err)
	assert.False(t, f, "the receive completed before the timeout")

	// Nothing to receive: the link timeout cancels the receive.
	rcv = b.Recv(c, buf, 0)
	fired = b.LinkTimeout(10 * time.Millisecond)
	require.NoError(t, b.Submit())
	_, err = rcv.Wait()
	require.ErrorIs(t, err, syscall.ECANCELED)
	f, err = fired.Wait()
	require.NoError(t, err)
	assert.True(t, f, "the timeout fired")
}

func TestBatchShutdownSendZC(t *testing.T) {
	r := newTestRing(t)
	c, s := connectedTCP(t, r)
	requireRing(t, r.Supported("SHUTDOWN"))

	b := r.NewBatch()
	var snd *Completion[int]
	if r.Supported("SEND_ZC") == nil {
		snd = b.SendZC(c, []byte("last"), 0)
	} else {
		snd = b.Send(c, []byte("last"), 0)
	}
	b.Link()
	shut := b.Shutdown(c, unix.SHUT_WR)
	require.NoError(t, b.Submit())
	got, err := io.ReadAll(fdReader{r, s})
	require.NoError(t, err)
	assert.Equal(t, "last", string(got))
	n, err := snd.Wait()
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	_, err = shut.Wait()
	require.NoError(t, err)
}

// fdReader reads a socket through Ring.Recv.
type fdReader struct {
	r  *Ring
	fd int
}

func (f fdReader) Read(p []byte) (int, error) {
	n, err := f.r.Recv(f.fd, p, 0).Wait()
	if err == nil && n == 0 {
		return 0, io.EOF
	}
	return n, err
}

func TestBatchSendmsgRecvmsg(t *testing.T) {
	r := newTestRing(t)
	a, asa := udpSocket(t)
	bfd, bsa := udpSocket(t)

	b := r.NewBatch()
	buf := make([]byte, 16)
	rcv := b.Recvmsg(a, buf, nil, 0) // queued first: waits for the datagram
	snd := b.Sendmsg(bfd, []byte("datagram"), nil, asa, 0)
	require.NoError(t, b.Submit())
	n, err := snd.Wait()
	require.NoError(t, err)
	assert.Equal(t, 8, n)
	m, err := rcv.Wait()
	require.NoError(t, err)
	assert.Equal(t, "datagram", string(buf[:m.N]))
	assert.Equal(t, bsa.(*unix.SockaddrInet4).Port, m.From.(*unix.SockaddrInet4).Port)

	// CancelFd ends the receive still waiting on a.
	rcv = r.Recvmsg(a, buf, nil, 0)
	cancel := b.CancelFd(a)
	require.NoError(t, b.Submit())
	_, err = rcv.Wait()
	require.ErrorIs(t, err, syscall.ECANCELED)
	k, err := cancel.Wait()
	if err == nil {
		assert.Equal(t, 1, k)
	} else {
		requireRing(t, err) // before Linux 5.19
	}
}

func TestBatchMultishot(t *testing.T) {
	r := newTestRing(t)
	requireRing(t, r.Supported("SOCKET")) // multishot accept and receive: 5.19, 6.0
	lfd, addr := listenTCP(t)
	br, err := r.NewBufferRing(7, 16, 64)
	requireRing(t, err)

	b := r.NewBatch()
	acc := b.AcceptMultishot(lfd, 0)
	_, err = acc.Next()
	require.ErrorIs(t, err, errNotSubmitted, "Next before Submit")
	clients := []int{tcpSocket(t), tcpSocket(t)}
	for _, c := range clients {
		b.Connect(c, addr)
	}
	require.NoError(t, b.Submit())
	var servers []int
	for range clients {
		s, err := acc.Next()
		require.NoError(t, err)
		servers = append(servers, s)
		t.Cleanup(func() { unix.Close(s) })
	}
	acc.Cancel()
	for {
		if _, err := acc.Next(); err == io.EOF {
			break
		}
	}

	rcv := b.RecvMultishot(servers[0], br, 0)
	b.Send(clients[0], []byte("one"), 0) // not linked: it does not wait for the stream
	require.NoError(t, b.Submit())
	got, err := rcv.Next()
	require.NoError(t, err)
	assert.Equal(t, "one", string(br.Bytes(got.ID, got.N)))
	br.Release(got.ID)
	rcv.Cancel()
	for {
		if _, err := rcv.Next(); err == io.EOF {
			break
		}
	}

	// A failed Batch ends its streams: the buffer ring is not held.
	rcv = b.RecvMultishotLimit(servers[1], br, 0, 0)
	b.Link() // linked to nothing: Submit fails
	require.Error(t, b.Submit())
	_, err = rcv.Next()
	require.ErrorIs(t, err, syscall.EINVAL)
	require.NoError(t, br.Close(), "no stream left on the buffer ring")
}

func TestSplice(t *testing.T) {
	r := newTestRing(t)
	requireRing(t, r.Supported("SPLICE"))
	want := bytes.Repeat([]byte("spliced "), 1000)
	f := tempFile(t, want)
	c, s := connectedTCP(t, r)
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	defer unix.Close(p[0])
	defer unix.Close(p[1])

	// file -> pipe -> socket, linked, from offset 8.
	b := r.NewBatch()
	in := b.Splice(int(f.Fd()), 8, p[1], -1, len(want)-8, 0)
	b.Link()
	out := b.Splice(p[0], -1, c, -1, len(want)-8, 0)
	require.NoError(t, b.Submit())
	n, err := in.Wait()
	require.NoError(t, err)
	assert.Equal(t, len(want)-8, n)
	n, err = out.Wait()
	require.NoError(t, err)
	assert.Equal(t, len(want)-8, n)
	unix.Shutdown(c, unix.SHUT_WR)
	got, err := io.ReadAll(fdReader{r, s})
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want[8:], got), "spliced bytes")

	// At the end of the file: 0. A bad offset fails before submission.
	n, err = r.Splice(int(f.Fd()), int64(len(want)), p[1], -1, 10, 0).Wait()
	require.NoError(t, err)
	assert.Zero(t, n)
	_, err = r.Splice(int(f.Fd()), -2, p[1], -1, 10, 0).Wait()
	require.ErrorIs(t, err, syscall.EINVAL)
}

// Stream.Err: nil while the stream runs, the error that ended it after,
// without taking the results queued before it.
func TestStreamErr(t *testing.T) {
	r := newTestRing(t)
	requireRing(t, r.Supported("SOCKET")) // multishot receive: 6.0
	lfd, addr := listenTCP(t)
	c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0) // closed below
	require.NoError(t, err)
	require.NoError(t, unix.Connect(c, addr))
	s, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	require.NoError(t, err)
	defer unix.Close(s)
	br, err := r.NewBufferRing(8, 16, 64)
	requireRing(t, err)
	defer br.Close()
	st := r.RecvMultishot(s, br, 0)
	assert.NoError(t, st.Err(), "running")
	_, err = unix.Write(c, []byte("data"))
	require.NoError(t, err)
	require.NoError(t, unix.SetsockoptLinger(c, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1}))
	require.NoError(t, unix.Close(c)) // RST
	for !st.Ended() {
		st.Wait()
	}
	require.ErrorIs(t, st.Err(), syscall.ECONNRESET)
	b, err := st.Next()
	require.NoError(t, err, "the data is still queued")
	assert.Equal(t, "data", string(br.Bytes(b.ID, b.N)))
	br.Release(b.ID)
	_, err = st.Next()
	require.ErrorIs(t, err, syscall.ECONNRESET)
	_, err = st.Next()
	require.Equal(t, io.EOF, err)
	require.ErrorIs(t, st.Err(), syscall.ECONNRESET, "still, after everything was taken")
}

// Stream.WaitEnded waits for the end without taking the results.
func TestStreamWaitEnded(t *testing.T) {
	r := newTestRing(t)
	requireRing(t, r.Supported("SOCKET")) // multishot receive: 6.0
	c, s := connectedTCP(t, r)
	br, err := r.NewBufferRing(9, 16, 64)
	requireRing(t, err)
	defer br.Close()
	st := r.RecvMultishot(s, br, 0)
	_, err = unix.Write(c, []byte("kept"))
	require.NoError(t, err)
	for st.Buffered() == 0 {
		st.Wait()
	}
	st.Cancel()
	require.NoError(t, st.WaitEnded(nil))
	require.True(t, st.Ended())
	b, err := st.Next()
	require.NoError(t, err)
	assert.Equal(t, "kept", string(br.Bytes(b.ID, b.N)))
	br.Release(b.ID)
	_, err = st.Next()
	require.ErrorIs(t, err, syscall.ECANCELED)

	// A done context cancels the stream and says so.
	st = r.RecvMultishot(s, br, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, st.WaitEnded(ctx), context.DeadlineExceeded)
	require.NoError(t, st.WaitEnded(nil))
	_, err = st.Next()
	require.ErrorIs(t, err, syscall.ECANCELED)
}

func TestRecvmsgMultishot(t *testing.T) {
	r := newTestRing(t)
	requireRing(t, r.Supported("SOCKET")) // multishot recvmsg: 6.0
	a, asa := udpSocket(t)
	bfd, bsa := udpSocket(t)
	require.NoError(t, unix.SetsockoptInt(a, unix.IPPROTO_IP, unix.IP_PKTINFO, 1))
	br, err := r.NewBufferRing(10, 8, 256)
	requireRing(t, err)
	defer br.Close()

	const nameLen, oobLen = unix.SizeofSockaddrAny, 64
	b := r.NewBatch()
	st := b.RecvmsgMultishot(a, br, nameLen, oobLen, unix.MSG_TRUNC) // full lengths
	require.NoError(t, b.Submit())
	// The empty message comes last: it ends the stream, after its
	// result, as the end of a byte stream does.
	msgs := []string{"one", string(bytes.Repeat([]byte("x"), 200)), ""}
	for _, m := range msgs {
		require.NoError(t, unix.Sendto(bfd, []byte(m), 0, asa))
	}
	for i, m := range msgs {
		res, err := st.Next()
		require.NoError(t, err)
		out, err := ParseRecvmsg(br.Bytes(res.ID, res.N), nameLen, oobLen)
		require.NoError(t, err)
		want := m
		if i == 1 {
			want = m[:256-16-nameLen-oobLen] // what the buffer holds
			assert.NotZero(t, out.Flags&unix.MSG_TRUNC)
		}
		assert.Equal(t, want, string(out.Payload), "message %d", i)
		assert.Equal(t, len(m), out.PayloadLen)
		require.GreaterOrEqual(t, len(out.Name), unix.SizeofSockaddrInet4)
		from := (*unix.RawSockaddrInet4)(unsafe.Pointer(&out.Name[0]))
		assert.Equal(t, bsa.(*unix.SockaddrInet4).Port, int(from.Port>>8|from.Port<<8))
		cm, err := unix.ParseSocketControlMessage(out.OOB)
		require.NoError(t, err)
		require.Len(t, cm, 1)
		assert.Equal(t, int32(unix.IP_PKTINFO), cm[0].Header.Type)
		br.Release(res.ID)
	}
	_, err = st.Next()
	require.Equal(t, io.EOF, err, "ended by the empty message")

	st = r.RecvmsgMultishot(a, br, nameLen, oobLen, 0)
	st.Cancel()
	require.NoError(t, st.WaitEnded(nil))
	_, err = st.Next()
	require.ErrorIs(t, err, syscall.ECANCELED)

	_, err = r.RecvmsgMultishot(a, br, 200, 100, 0).Next()
	require.ErrorIs(t, err, syscall.EINVAL, "name and control larger than the buffers")
	_, err = ParseRecvmsg(make([]byte, 10), nameLen, oobLen)
	require.ErrorIs(t, err, syscall.EINVAL)
}

// udpSocket returns a UDP socket bound to a port of its own on loopback,
// closed when t ends, and its address.
func udpSocket(t *testing.T) (int, unix.Sockaddr) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	require.NoError(t, unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	sa, err := unix.Getsockname(fd)
	require.NoError(t, err)
	return fd, sa
}
