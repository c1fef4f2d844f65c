package rionet_test

import (
	"errors"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	rionet "github.com/gorio/rio/net"
)

// Control sees the network and address package net's does, before the
// socket is bound (listeners) or connected (dialers).
func TestControlCalls(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{
		{"tcp", "127.0.0.1:0"}, {"tcp", ":0"}, {"tcp4", ":0"}, {"tcp6", "[::1]:0"},
	} {
		t.Run(tc.network+"-"+tc.addr, func(t *testing.T) {
			compare(t, func(t *testing.T, s stack, tr *transcript) {
				control := func(what string) func(network, address string, c syscall.RawConn) error {
					return func(network, address string, c syscall.RawConn) error {
						var bound, peer bool
						var typ int
						err := c.Control(func(fd uintptr) {
							sa, _ := unix.Getsockname(int(fd))
							bound = portOf(sa) != 0
							_, perr := unix.Getpeername(int(fd))
							peer = perr == nil
							typ, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
						})
						tr.add("%s control %s %s bound=%v connected=%v type=%d err=%v", what, network, address, bound, peer, typ, err)
						return nil
					}
				}
				ln, err := s.listen(t.Context(), opts{control: control("listen")}, tc.network, tc.addr)
				require.NoError(t, err)
				defer ln.Close()
				tr.name(ln.Addr(), "LN")
				port := ln.Addr().(*net.TCPAddr).Port
				target := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}).String()
				if tc.network == "tcp6" {
					target = (&net.TCPAddr{IP: net.IPv6loopback, Port: port}).String()
				}
				tr.nameString(target, "TARGET")
				c, err := s.dial(t.Context(), opts{control: control("dial")}, tc.network, target)
				require.NoError(t, err)
				defer c.Close()
				tr.add("dialed %v", err)

				pc, err := s.listenPacket(t.Context(), opts{control: control("listenPacket")}, "udp4", "127.0.0.1:0")
				require.NoError(t, err)
				pc.Close()
				dc, err := s.dial(t.Context(), opts{control: control("dial udp")}, "udp", "127.0.0.1:9")
				require.NoError(t, err)
				dc.Close()
			})
		})
	}
}

func portOf(sa unix.Sockaddr) int {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return sa.Port
	case *unix.SockaddrInet6:
		return sa.Port
	}
	return 0
}

// An error from Control fails Listen, ListenPacket and Dial, wrapped.
func TestControlError(t *testing.T) {
	errNo := errors.New("no thanks")
	refuse := func(network, address string, c syscall.RawConn) error { return errNo }
	compare(t, func(t *testing.T, s stack, tr *transcript) {
		ln, err := s.listen(t.Context(), opts{}, "tcp4", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		tr.name(ln.Addr(), "LN")
		_, err = s.listen(t.Context(), opts{control: refuse}, "tcp4", "127.0.0.1:0")
		assert.ErrorIs(t, err, errNo)
		tr.err("Listen", err)
		_, err = s.listen(t.Context(), opts{control: refuse}, "unix", t.TempDir()+"/s")
		assert.ErrorIs(t, err, errNo)
		tr.add("Listen unix wraps: %v", errors.Is(err, errNo))
		_, err = s.listenPacket(t.Context(), opts{control: refuse}, "udp4", "127.0.0.1:0")
		assert.ErrorIs(t, err, errNo)
		tr.err("ListenPacket", err)
		_, err = s.dial(t.Context(), opts{control: refuse}, "tcp4", ln.Addr().String())
		assert.ErrorIs(t, err, errNo)
		tr.err("Dial", err)
		_, err = s.dial(t.Context(), opts{control: refuse}, "udp4", "127.0.0.1:9")
		assert.ErrorIs(t, err, errNo)
		tr.err("Dial udp", err)
	})
}

// SO_REUSEPORT set through Control lets two listeners share a port, and
// both accept; without it, the second fails with EADDRINUSE.
func TestControlReusePort(t *testing.T) {
	reuse := func(network, address string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}
	compare(t, func(t *testing.T, s stack, tr *transcript) {
		ln1, err := s.listen(t.Context(), opts{control: reuse}, "tcp4", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln1.Close()
		tr.name(ln1.Addr(), "PORT")
		ln2, err := s.listen(t.Context(), opts{control: reuse}, "tcp4", ln1.Addr().String())
		require.NoError(t, err)
		defer ln2.Close()
		if s.name == "rionet" {
			require.NotNil(t, rionet.RingOf(ln1))
			require.NotNil(t, rionet.RingOf(ln2))
		}
		tr.add("two listeners on %v and %v", ln1.Addr(), ln2.Addr())
		// The kernel spreads connections over both by hash; dial until
		// each has accepted one.
		accepted := make(chan int, 64)
		for i, ln := range []net.Listener{ln1, ln2} {
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
					accepted <- i
				}
			}()
		}
		seen := [2]bool{}
		for tries := 0; tries < 200 && !(seen[0] && seen[1]); tries++ {
			c, err := s.dial(t.Context(), opts{}, "tcp4", ln1.Addr().String())
			require.NoError(t, err)
			c.Close()
			seen[<-accepted] = true
		}
		tr.add("both accepted: %v", seen)

		_, err = s.listen(t.Context(), opts{}, "tcp4", ln1.Addr().String())
		tr.err("third without SO_REUSEPORT", err)

		u1, err := s.listenPacket(t.Context(), opts{control: reuse}, "udp4", "127.0.0.1:0")
		require.NoError(t, err)
		defer u1.Close()
		u2, err := s.listenPacket(t.Context(), opts{control: reuse}, "udp4", u1.LocalAddr().String())
		tr.add("second UDP socket on the port: %v", err)
		if err == nil {
			u2.Close()
		}
	})
}

// KeepAlive and KeepAliveConfig set the options package net sets, on
// accepted and dialed connections; SetKeepAliveConfig and
// SetKeepAlivePeriod on a Conn too.
func TestKeepAliveConfig(t *testing.T) {
	cfgs := []struct {
		name string
		o    opts
	}{
		{"default", opts{}},
		{"period", opts{keepAlive: 7 * time.Second}},
		{"off", opts{keepAlive: -1}},
		{"config", opts{keepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: 3 * time.Second, Count: 4}}},
		{"config partial", opts{keepAlive: -1, keepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 2500 * time.Millisecond, Interval: -1, Count: -1}}},
	}
	compare(t, func(t *testing.T, s stack, tr *transcript) {
		for _, cfg := range cfgs {
			ln, err := s.listen(t.Context(), cfg.o, "tcp4", "127.0.0.1:0")
			require.NoError(t, err)
			c, err := s.dial(t.Context(), cfg.o, "tcp4", ln.Addr().String())
			require.NoError(t, err)
			a, err := ln.Accept()
			require.NoError(t, err)
			tr.add("%s accepted %s", cfg.name, keepAliveOpts(t, a))
			tr.add("%s dialed %s", cfg.name, keepAliveOpts(t, c))
			a.Close()
			c.Close()
			ln.Close()
		}
		ln, err := s.listen(t.Context(), opts{}, "tcp4", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		c, err := s.dial(t.Context(), opts{}, "tcp4", ln.Addr().String())
		require.NoError(t, err)
		defer c.Close()
		type kac interface {
			SetKeepAliveConfig(net.KeepAliveConfig) error
			SetKeepAlivePeriod(time.Duration) error
		}
		require.NoError(t, c.(kac).SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 2}))
		tr.add("SetKeepAliveConfig %s", keepAliveOpts(t, c))
		require.NoError(t, c.(kac).SetKeepAlivePeriod(90*time.Second))
		tr.add("SetKeepAlivePeriod %s", keepAliveOpts(t, c))
		require.NoError(t, c.(kac).SetKeepAliveConfig(net.KeepAliveConfig{}))
		tr.add("SetKeepAliveConfig off %s", keepAliveOpts(t, c))
	})
}

func keepAliveOpts(t *testing.T, c net.Conn) string {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	require.NoError(t, err)
	var on, idle, intvl, cnt, nodelay int
	rc.Control(func(fd uintptr) {
		on, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE)
		idle, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
		intvl, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)
		cnt, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPCNT)
		nodelay, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY)
	})
	return fmtOpts(on, idle, intvl, cnt, nodelay)
}

func fmtOpts(on, idle, intvl, cnt, nodelay int) string {
	return "keepalive=" + itoa(on) + " idle=" + itoa(idle) + " intvl=" + itoa(intvl) + " cnt=" + itoa(cnt) + " nodelay=" + itoa(nodelay)
}

func itoa(n int) string { return strconv.Itoa(n) }

// SetReadBuffer and SetWriteBuffer on a Conn.
func TestConnBuffers(t *testing.T) {
	compare(t, func(t *testing.T, s stack, tr *transcript) {
		ln, err := s.listen(t.Context(), opts{}, "tcp4", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		c, err := s.dial(t.Context(), opts{}, "tcp4", ln.Addr().String())
		require.NoError(t, err)
		tr.name(c.LocalAddr(), "C")
		type bufs interface {
			SetReadBuffer(int) error
			SetWriteBuffer(int) error
		}
		require.NoError(t, c.(bufs).SetReadBuffer(64<<10))
		require.NoError(t, c.(bufs).SetWriteBuffer(32<<10))
		rc, err := c.(syscall.Conn).SyscallConn()
		require.NoError(t, err)
		rc.Control(func(fd uintptr) {
			r, _ := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
			w, _ := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
			tr.add("rcvbuf %d sndbuf %d", r, w)
		})
		c.Close()
		tr.err("SetReadBuffer closed", c.(bufs).SetReadBuffer(1))
		tr.err("SetWriteBuffer closed", c.(bufs).SetWriteBuffer(1))
		tr.err("SetDeadline closed", c.SetDeadline(time.Now()))
		tr.err("SetReadDeadline closed", c.SetReadDeadline(time.Now()))
		tr.err("SetWriteDeadline closed", c.SetWriteDeadline(time.Now()))
	})
}
