package rionet_test

import (
	"errors"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gorio/rio"
	rionet "github.com/gorio/rio/net"
)

// within runs f and fails t if it has not returned after a generous bound:
// a hang becomes a failure, not a timing assertion.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		require.Failf(t, what+": still blocked after 20s", "%s", buf)
	}
}

// ringPair returns a listener and both ends of a connection on ring.
func ringPair(t *testing.T, ring *rio.Ring) (net.Listener, net.Conn, net.Conn) {
	t.Helper()
	lc := rionet.ListenConfig{Ring: ring, NoFallback: true}
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	requireURing(t, err)
	d := rionet.Dialer{Ring: ring, NoFallback: true}
	c, err := d.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	s, err := ln.Accept()
	require.NoError(t, err)
	return ln, c, s
}

// Issue 11, item 2: a Read whose first receive cannot get a slot of a
// small ring (its in-flight table full of other operations) waits in the
// ring's queue, and its read deadline and Close end it. Before the fix,
// the receive's submission blocked in the ring, and neither did.
func TestReadOnFullRing(t *testing.T) {
	checkLeaks(t)
	ring, err := rio.New(rio.WithEntries(2))
	requireURing(t, err)
	ln, c, s := ringPair(t, ring)
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	defer pr.Close()
	defer pw.Close()
	var fill []*rio.Completion[int]
	for ring.Stats().Queued == 0 {
		fill = append(fill, ring.Read(int(pr.Fd()), make([]byte, 1)))
	}
	require.NoError(t, s.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
	within(t, "Read with a deadline on a full ring", func() {
		_, err := s.Read(make([]byte, 8))
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	})
	require.NoError(t, s.SetReadDeadline(time.Time{}))
	errc := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 8))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond) // let the Read wait (not needed for correctness)
	var closeErr, readErr error
	within(t, "Close of a Conn whose Read waits for a slot", func() {
		if closeErr = s.Close(); closeErr == nil {
			readErr = <-errc
		}
	})
	require.NoError(t, closeErr)
	assert.ErrorIs(t, readErr, net.ErrClosed)
	_, err = pw.Write(make([]byte, len(fill)))
	require.NoError(t, err)
	for _, f := range fill {
		_, err := f.Wait()
		require.NoError(t, err)
	}
	require.NoError(t, c.Close())
	require.NoError(t, ln.Close())
	require.NoError(t, rionet.Release(ring))
	require.NoError(t, ring.Close())
}

// Issue 11, item 6: Release while a connection still receives fails with
// EBUSY and keeps the package's registration, so the ring stays usable and
// a later Release succeeds. Before the fix, the failed Release dropped it
// anyway: the next Listen on the ring failed for good with EEXIST (and the
// buffer ring's 8 MiB leaked).
func TestReleaseWhileInUse(t *testing.T) {
	checkLeaks(t)
	ring, err := rio.New()
	requireURing(t, err)
	defer ring.Close()
	ln, c, s := ringPair(t, ring)
	_, err = c.Write([]byte("x"))
	require.NoError(t, err)
	_, err = s.Read(make([]byte, 1)) // arms the multishot receive
	require.NoError(t, err)
	err = rionet.Release(ring)
	assert.True(t, errors.Is(err, syscall.EBUSY), "Release while receiving: %v", err)
	require.NoError(t, s.Close())
	require.NoError(t, c.Close())
	require.NoError(t, ln.Close())
	ln, c, s = ringPair(t, ring)
	require.NoError(t, s.Close())
	require.NoError(t, c.Close())
	require.NoError(t, ln.Close())
	require.NoError(t, rionet.Release(ring))
}
