package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorio/rio/internal/testutil"
)

// TestSmoke builds the example, runs it on a free loopback port, makes a
// request and stops it with SIGTERM.
func TestSmoke(t *testing.T) {
	addr := testutil.StartServerExample(t)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for range 3 {
		resp, err := client.Get("http://" + addr + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "Hello from io_uring") {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	}
}
