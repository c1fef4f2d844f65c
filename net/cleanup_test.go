package rionet_test

import (
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/gorio/rio/internal/testutil"
	rionet "github.com/gorio/rio/net"
)

// Issue 11, item 5: Conns dialed and accepted, then dropped unclosed, are
// closed once the garbage collector finds them unreachable, as package
// net's are. Before the fix, 500 of them left +1000 fds.
func TestDroppedConnsAreClosed(t *testing.T) {
	_, err := rionet.DefaultRing() // the package's, never closed: not a leak
	requireURing(t, err)
	checkLeaks(t)
	lc := rionet.ListenConfig{NoFallback: true}
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	requireURing(t, err)
	defer ln.Close()
	base := len(testutil.Fds(t))
	const n = 500
	func() {
		d := rionet.Dialer{NoFallback: true}
		for i := 0; i < n; i++ {
			c, err := d.Dial("tcp", ln.Addr().String())
			require.NoError(t, err)
			s, err := ln.Accept()
			require.NoError(t, err)
			if i%2 == 0 {
				// Half of them with a multishot receive armed, which
				// the cleanup must end before it closes the socket.
				_, err = c.Write([]byte("x"))
				require.NoError(t, err)
				_, err = s.Read(make([]byte, 1))
				require.NoError(t, err)
			}
		}
	}()
	t.Logf("fds: %d before, %d with %d conns dropped", base, len(testutil.Fds(t)), 2*n)
	testutil.GCUntil(t, "dropped Conns still open", func() bool { return len(testutil.Fds(t)) <= base })
}

// Issue 11, item 5: Listeners (one with an Accept that timed out) and
// PacketConns (one with a receive armed) dropped unclosed are closed too.
func TestDroppedListenersAndPacketConnsAreClosed(t *testing.T) {
	_, err := rionet.DefaultRing() // the package's, never closed: not a leak
	requireURing(t, err)
	checkLeaks(t)
	base := len(testutil.Fds(t))
	func() {
		lc := rionet.ListenConfig{NoFallback: true}
		for i := 0; i < 100; i++ {
			ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
			require.NoError(t, err)
			pc, err := lc.ListenPacket(t.Context(), "udp", "127.0.0.1:0")
			require.NoError(t, err)
			if i == 0 {
				ln.(*rionet.Listener).SetDeadline(time.Now().Add(time.Millisecond))
				_, err = ln.Accept() // waits in the poller, times out
				require.ErrorIs(t, err, os.ErrDeadlineExceeded)
				pc.SetReadDeadline(time.Now().Add(time.Millisecond))
				_, _, err = pc.ReadFrom(make([]byte, 16))
				require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			}
		}
	}()
	testutil.GCUntil(t, "dropped Listeners and PacketConns still open", func() bool { return len(testutil.Fds(t)) <= base })
}

// Issue 11, item 5: the cleanup of a Conn that became unreachable while a
// Read on it is still blocked (the goroutine in Read keeps the socket
// reachable, not the Conn) wakes nothing and closes nothing under the
// Read: the descriptor stays open, the Read returns the data that comes,
// and only then is the socket closed.
func TestCleanupNeverClosesUnderRead(t *testing.T) {
	_, err := rionet.DefaultRing() // the package's, never closed: not a leak
	requireURing(t, err)
	checkLeaks(t)
	ln, c, s := ringPair(t, nil) // the default ring
	defer ln.Close()
	defer s.Close()
	fd, sysfd := rionet.FDOfForTest(c.(*rionet.Conn))
	var st0 unix.Stat_t
	require.NoError(t, unix.Fstat(sysfd, &st0))

	type result struct {
		n   int
		err error
		b   []byte
	}
	done := make(chan result, 1)
	go func(c net.Conn) {
		b := make([]byte, 16)
		n, err := c.Read(b) // the last use of c: it is unreachable meanwhile
		done <- result{n, err, b[:n]}
	}(c)
	c = nil
	testutil.GCUntil(t, "the Read never started", func() bool { _, refs := rionet.FDStateForTest(fd); return refs > 0 })
	testutil.GCUntil(t, "the dropped Conn's cleanup never ran", func() bool { closing, _ := rionet.FDStateForTest(fd); return closing })
	for i := 0; i < 5; i++ {
		runtime.GC()
	}
	var st unix.Stat_t
	require.NoError(t, unix.Fstat(sysfd, &st), "the socket was closed under the Read")
	assert.Equal(t, st0.Ino, st.Ino, "the descriptor is another file's")
	select {
	case r := <-done:
		require.Failf(t, "the Read ended before data came", "%d, %v", r.n, r.err)
	default:
	}
	_, err = s.Write([]byte("after cleanup"))
	require.NoError(t, err)
	r := <-done
	require.NoError(t, r.err)
	assert.Equal(t, "after cleanup", string(r.b))
	testutil.GCUntil(t, "the socket was not closed after the Read", func() bool {
		err := unix.Fstat(sysfd, &st)
		return err == unix.EBADF || err == nil && st.Ino != st0.Ino
	})
}

// Issue 11, item 5: a RawConn keeps its Conn, so the Conn's cleanup does
// not close the socket under a caller who kept only the RawConn, as a
// RawConn of package net keeps its socket. Before, Control failed with
// net.ErrClosed once the Conn had been collected.
func TestRawConnKeepsConn(t *testing.T) {
	_, err := rionet.DefaultRing() // the package's, never closed: not a leak
	requireURing(t, err)
	checkLeaks(t)
	ln, c, s := ringPair(t, nil) // the default ring
	defer ln.Close()
	defer s.Close()
	fd, _ := rionet.FDOfForTest(c.(*rionet.Conn))
	rc, err := c.(*rionet.Conn).SyscallConn()
	require.NoError(t, err)
	c = nil
	for i := 0; i < 10; i++ {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	closing, _ := rionet.FDStateForTest(fd)
	assert.False(t, closing, "the Conn's cleanup ran while its RawConn was held")
	require.NoError(t, rc.Control(func(uintptr) {}))
	runtime.KeepAlive(rc)
	rc = nil
	testutil.GCUntil(t, "the Conn was not closed once its RawConn was dropped", func() bool {
		closing, refs := rionet.FDStateForTest(fd)
		return closing && refs == 0
	})
}
