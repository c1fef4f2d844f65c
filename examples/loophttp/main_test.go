package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorio/rio/internal/testutil"
	rionet "github.com/gorio/rio/net"
	"github.com/stretchr/testify/require"
)

// TestSmoke builds the example, runs it on a free loopback port, and
// checks it with net/http's client (keep-alive), pipelined requests split
// across writes, a body, Connection: close and a malformed request.
func TestSmoke(t *testing.T) {
	testutil.RequireRing(t, rionet.LoopSupported())
	addr := testutil.StartServerExample(t)

	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for i := 0; i < 3; i++ {
		resp, err := client.Get("http://" + addr + "/")
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err, "GET: %d %q", resp.StatusCode, b)
		require.Equal(t, 200, resp.StatusCode, "GET: %q", b)
		require.Equal(t, body, string(b), "GET")
	}

	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	reqs := "GET / HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	for i := 0; i < len(reqs); i += 7 { // split mid-request
		c.Write([]byte(reqs[i:min(i+7, len(reqs))]))
		time.Sleep(time.Millisecond) // separate receives (not needed to pass)
	}
	br := bufio.NewReader(c)
	for i := 0; i < 3; i++ {
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err, "pipelined response %d", i)
		b, _ := io.ReadAll(resp.Body)
		require.Equal(t, 200, resp.StatusCode, "pipelined response %d: %q", i, b)
		require.Equal(t, body, string(b), "pipelined response %d", i)
	}
	_, err = br.ReadByte()
	require.Equal(t, io.EOF, err, "after Connection: close, want EOF")

	bad, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer bad.Close()
	bad.SetDeadline(time.Now().Add(10 * time.Second))
	bad.Write([]byte("NONSENSE\r\n\r\n"))
	b, _ := io.ReadAll(bad)
	require.True(t, strings.HasPrefix(string(b), "HTTP/1.1 400 "), "malformed request: %q", b)
}
