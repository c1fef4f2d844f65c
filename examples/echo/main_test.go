package main

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/gorio/rio/internal/testutil"
	"github.com/stretchr/testify/require"
)

// TestSmoke builds the example, runs it on a free loopback port, echoes a
// line through it and stops it with SIGTERM.
func TestSmoke(t *testing.T) {
	addr := testutil.StartServerExample(t)

	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Write([]byte("hello, io_uring\n"))
	require.NoError(t, err)
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	require.Equal(t, "hello, io_uring\n", string(got), "echoed")
}
