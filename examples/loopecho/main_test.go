package main

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gorio/rio/internal/testutil"
	rionet "github.com/gorio/rio/net"
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
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			c.Write(msg)
			c.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("echoed %d bytes, want %d", len(got), len(msg))
		}
	}
}
