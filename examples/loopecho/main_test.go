package main

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gorio/rio/internal/testutil"
	rionet "github.com/gorio/rio/net"
	"github.com/stretchr/testify/require"
)

// TestSmoke builds the example, runs it on a free loopback port, echoes a
// line and a larger message through it, and stops it with SIGTERM.
func TestSmoke(t *testing.T) {
	// The example needs io_uring (Linux 6.0): skip where it is missing,
	// unless RIO_REQUIRE_URING=1.
	testutil.RequireRing(t, rionet.LoopSupported())
	addr := testutil.StartServerExample(t)

	for _, msg := range [][]byte{[]byte("hello, loops\n"), bytes.Repeat([]byte("0123456789"), 100000)} {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			c.Write(msg)
			c.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(c)
		c.Close()
		require.NoError(t, err)
		require.True(t, bytes.Equal(got, msg), "echoed %d bytes, want %d", len(got), len(msg))
	}
}
