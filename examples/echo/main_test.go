package main

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/gorio/rio/internal/testutil"
)

// TestSmoke builds the example, runs it on a free loopback port, echoes a
// line through it and stops it with SIGTERM.
func TestSmoke(t *testing.T) {
	addr := testutil.StartServerExample(t)

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("hello, io_uring\n")); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "hello, io_uring\n" {
		t.Fatalf("echoed %q", got)
	}
}
