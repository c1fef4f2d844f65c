package rionet_test

import (
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	rionet "github.com/gorio/rio/net"
)

// tcpPair returns a dialed and an accepted connection of stack s on
// network, and the listener's address.
func tcpPair(t *testing.T, s stack, network string) (client, server net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	switch network {
	case "tcp6":
		addr = "[::1]:0"
	case "unix":
		addr = filepath.Join(t.TempDir(), "s")
	}
	ln, err := s.listen(t.Context(), opts{}, network, addr)
	require.NoError(t, err)
	defer ln.Close()
	client, err = s.dial(t.Context(), opts{}, network, ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { server.Close() })
	if s.name == "rionet" {
		require.IsType(t, &rionet.Conn{}, client)
		require.IsType(t, &rionet.Conn{}, server)
	}
	return client, server
}

// reset closes c with SO_LINGER 0, which sends a RST.
func reset(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.(interface{ SetLinger(int) error }).SetLinger(0))
	require.NoError(t, c.Close())
}

// waitFor polls cond until it holds. The limit only ends a test that
// would otherwise hang; it is no timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		require.False(t, time.Now().After(deadline), "gave up waiting for %s", what)
	}
}

// tcpState returns the TCP state of c's socket (unix.BPF_TCP_*).
func tcpState(t *testing.T, c net.Conn) uint8 {
	rc, err := c.(syscall.Conn).SyscallConn()
	require.NoError(t, err)
	var st uint8
	rc.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		require.NoError(t, err)
		st = info.State
	})
	return st
}

// waitReset waits until the peer's RST has reached server and, on rionet,
// until the multishot receive armed on it has taken the socket's error:
// the case where rionet's Write saw EPIPE where package net's sees
// ECONNRESET. armed says whether a receive was armed (see armRead).
func waitReset(t *testing.T, server net.Conn, armed bool) {
	t.Helper()
	waitFor(t, "the RST", func() bool { return tcpState(t, server) == unix.BPF_TCP_CLOSE })
	if c, ok := server.(*rionet.Conn); ok && armed {
		waitFor(t, "the receive to end", func() bool { return rionet.RecvStreamEndedForTest(c) })
	}
}

// armRead makes a Read that times out, which on rionet arms the multishot
// receive (and on package net does nothing lasting).
func armRead(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Millisecond)))
	_, err := c.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.NoError(t, c.SetReadDeadline(time.Time{}))
}

// After a peer's reset, Write and Read report what package net's do, in
// whichever order they come, with and without data received before the
// reset.
func TestResetErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		data  string   // sent by the peer before its reset
		steps []string // "r": Read, "w": Write
	}{
		{"write first", "", []string{"w", "r", "r", "w"}},
		{"read first", "", []string{"r", "w", "w", "r"}},
		{"data then write", "abc", []string{"w", "r", "r", "w"}},
		{"data then read", "abc", []string{"r", "r", "w"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			compare(t, func(t *testing.T, s stack, tr *transcript) {
				c, srv := tcpPair(t, s, "tcp4")
				tr.name(c.LocalAddr(), "C")
				tr.name(srv.LocalAddr(), "S")
				armRead(t, srv)
				if tc.data != "" {
					_, err := c.Write([]byte(tc.data))
					require.NoError(t, err)
					waitFor(t, "the data", func() bool { return inq(t, srv) > 0 || s.name == "rionet" })
				}
				reset(t, c)
				waitReset(t, srv, true)
				buf := make([]byte, 16)
				for _, step := range tc.steps {
					if step == "w" {
						n, err := srv.Write([]byte("x"))
						tr.add("Write %d", n)
						tr.err("Write", err)
					} else {
						n, err := srv.Read(buf)
						tr.add("Read %q", buf[:n])
						tr.err("Read", err)
					}
				}
			})
		})
	}
}

// inq returns the bytes waiting in c's receive queue (package net's case;
// rionet's receive has taken them by the time they count).
func inq(t *testing.T, c net.Conn) int {
	rc, err := c.(syscall.Conn).SyscallConn()
	require.NoError(t, err)
	var n int
	rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	return n
}

// Addresses are recorded at accept and connect: asked for only after a
// reset, or after Close, they are the real ones, and error messages name
// both ends, as package net's do.
func TestAddressesRecorded(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6", "unix"} {
		t.Run(network, func(t *testing.T) {
			compare(t, func(t *testing.T, s stack, tr *transcript) {
				c, srv := tcpPair(t, s, network)
				// Names for the transcript, from the kernel directly, so
				// that neither Conn is asked before the reset.
				tr.name(sockName(t, c, unix.Getsockname), "C")
				tr.name(sockName(t, srv, unix.Getsockname), "S")
				if network == "unix" {
					c.Close()
				} else {
					reset(t, c)
					waitReset(t, srv, false)
				}
				_, err := srv.Read(make([]byte, 1))
				tr.err("Read after the peer went", err)
				tr.add("server after reset: %T %v -> %T %v", srv.LocalAddr(), srv.LocalAddr(), srv.RemoteAddr(), srv.RemoteAddr())
				srv.Close()
				tr.add("server after Close: %v -> %v", srv.LocalAddr(), srv.RemoteAddr())
				tr.add("client after Close: %T %v -> %T %v", c.LocalAddr(), c.LocalAddr(), c.RemoteAddr(), c.RemoteAddr())
				_, err = srv.Write([]byte("x"))
				tr.err("Write after Close", err)
				_, err = c.Read(make([]byte, 1))
				tr.err("client Read after Close", err)
			})
		})
	}
}

// sockName asks the kernel for c's local address without asking c.
func sockName(t *testing.T, c net.Conn, get func(int) (unix.Sockaddr, error)) net.Addr {
	rc, err := c.(syscall.Conn).SyscallConn()
	require.NoError(t, err)
	var a net.Addr
	rc.Control(func(fd uintptr) {
		sa, err := get(int(fd))
		require.NoError(t, err)
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			a = &net.TCPAddr{IP: sa.Addr[:], Port: sa.Port}
		case *unix.SockaddrInet6:
			a = &net.TCPAddr{IP: sa.Addr[:], Port: sa.Port}
		case *unix.SockaddrUnix:
			a = &net.UnixAddr{Name: sa.Name, Net: "unix"}
		}
	})
	return a
}
