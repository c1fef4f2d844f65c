package rionet_test

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gorio/rio/internal/testutil"

	rionet "github.com/gorio/rio/net"
)

// requireURing is testutil.RequireRing.
func requireURing(t testing.TB, err error) {
	t.Helper()
	testutil.RequireRing(t, err)
}

// listen listens on loopback (or a unix socket in a temp dir) with no
// fallback, so that every test runs on io_uring or skips. It checks for
// leaked goroutines and fds when t ends.
func listen(t testing.TB, network string) *rionet.Listener {
	t.Helper()
	lc := rionet.ListenConfig{NoFallback: true}
	// Create the default ring before the leak baseline: it lives for the
	// whole process.
	if ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0"); err != nil {
		requireURing(t, err)
	} else {
		ln.Close()
	}
	checkLeaks(t)
	addr := "127.0.0.1:0"
	switch network {
	case "unix":
		addr = filepath.Join(t.TempDir(), "s")
	case "tcp6":
		addr = "[::1]:0"
	}
	ln, err := lc.Listen(t.Context(), network, addr)
	requireURing(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln.(*rionet.Listener)
}

var dialer = rionet.Dialer{NoFallback: true}

func dial(t testing.TB, ln net.Listener) *rionet.Conn {
	t.Helper()
	c, err := dialer.Dial(ln.Addr().Network(), ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c.(*rionet.Conn)
}

// pair returns both ends of a connection through ln.
func pair(t testing.TB, ln *rionet.Listener) (client, server *rionet.Conn) {
	t.Helper()
	client = dial(t, ln)
	s, err := ln.AcceptConn()
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return client, s
}

// checkLeaks is testutil.CheckLeaks.
func checkLeaks(t testing.TB) {
	t.Helper()
	testutil.CheckLeaks(t)
}
