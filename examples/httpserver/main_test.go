package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorio/rio/internal/testutil"
	"github.com/stretchr/testify/require"
)

// TestSmoke builds the example, runs it on a free loopback port, makes a
// request and stops it with SIGTERM.
func TestSmoke(t *testing.T) {
	addr := testutil.StartServerExample(t)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for range 3 {
		resp, err := client.Get("http://" + addr + "/hello")
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body %q", body)
		require.True(t, strings.HasPrefix(string(body), "Hello from io_uring"), "got %d %q", resp.StatusCode, body)
	}
}
