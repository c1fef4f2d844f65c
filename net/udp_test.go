package rionet_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	rionet "github.com/gorio/rio/net"
)

var (
	_ net.PacketConn = (*rionet.PacketConn)(nil)
	_ net.Conn       = (*rionet.PacketConn)(nil)
)

// udpConn is what both stacks' UDP sockets have.
type udpConn interface {
	net.Conn
	net.PacketConn
	ReadFromUDP([]byte) (int, *net.UDPAddr, error)
	ReadFromUDPAddrPort([]byte) (int, netip.AddrPort, error)
	ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error)
	ReadMsgUDPAddrPort(b, oob []byte) (n, oobn, flags int, addr netip.AddrPort, err error)
	WriteToUDP([]byte, *net.UDPAddr) (int, error)
	WriteToUDPAddrPort([]byte, netip.AddrPort) (int, error)
	WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (n, oobn int, err error)
	WriteMsgUDPAddrPort(b, oob []byte, addr netip.AddrPort) (n, oobn int, err error)
	SetReadBuffer(int) error
	SetWriteBuffer(int) error
	SyscallConn() (syscall.RawConn, error)
}

var (
	_ udpConn = (*net.UDPConn)(nil)
	_ udpConn = (*rionet.PacketConn)(nil)
)

// listenUDP listens on loopback with stack s and checks that rionet's
// PacketConn is its own.
func listenUDP(t *testing.T, s stack, network, address string) udpConn {
	t.Helper()
	pc, err := s.listenPacket(t.Context(), opts{}, network, address)
	require.NoError(t, err)
	t.Cleanup(func() { pc.Close() })
	if s.name == "rionet" {
		require.NotNil(t, rionet.RingOf(pc), "%T is not on the ring", pc)
	}
	return pc.(udpConn)
}

// udpModes runs f with each way rionet can receive datagrams: a recvmsg
// per receive (tried directly, then on the ring), and the multishot
// recvmsg (SetUDPMultishotForTest).
func udpModes(t *testing.T, f func(t *testing.T)) {
	for _, multishot := range []bool{false, true} {
		name := "oneshot"
		if multishot {
			name = "multishot"
		}
		t.Run(name, func(t *testing.T) {
			defer rionet.SetUDPMultishotForTest(multishot)()
			f(t)
		})
	}
}

func TestUDPBasics(t *testing.T) { udpModes(t, testUDPBasics) }

func testUDPBasics(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{
		{"udp4", "127.0.0.1:0"}, {"udp6", "[::1]:0"}, {"udp", "127.0.0.1:0"}, {"udp", ":0"},
	} {
		t.Run(tc.network+"-"+tc.addr, func(t *testing.T) {
			compare(t, func(t *testing.T, s stack, tr *transcript) {
				a := listenUDP(t, s, tc.network, tc.addr)
				b := listenUDP(t, s, tc.network, tc.addr)
				tr.add("local %T", a.LocalAddr())
				tr.add("remote %v", a.RemoteAddr())
				to := a.LocalAddr().(*net.UDPAddr)
				if to.IP.IsUnspecified() {
					to = &net.UDPAddr{IP: net.IPv6loopback, Port: to.Port}
				}
				tr.name(b.LocalAddr(), "B")
				tr.name(a.LocalAddr(), "A")
				tr.name(to, "A")

				n, err := b.WriteTo([]byte("hello"), to)
				tr.add("WriteTo %d %v", n, err)
				buf := make([]byte, 64)
				n, from, err := a.ReadFrom(buf)
				tr.add("ReadFrom %q %T %v", buf[:n], from, err)
				require.NoError(t, err)
				// The reply goes back to whatever address the sender had.
				n, err = a.WriteTo([]byte("hi"), from)
				tr.add("WriteTo %d %v", n, err)
				n, ua, err := b.ReadFromUDP(buf)
				tr.add("ReadFromUDP %q %v", buf[:n], err)
				assert.Equal(t, a.LocalAddr().(*net.UDPAddr).Port, ua.Port)

				// The netip forms.
				ap := to.AddrPort()
				n, err = b.WriteToUDPAddrPort([]byte("addrport"), ap)
				tr.add("WriteToUDPAddrPort %d %v", n, err)
				n, fap, err := a.ReadFromUDPAddrPort(buf)
				tr.add("ReadFromUDPAddrPort %q %v %v", buf[:n], fap.IsValid(), err)
				assert.Equal(t, b.LocalAddr().(*net.UDPAddr).Port, int(fap.Port()))

				// Zero-length datagrams are datagrams.
				n, err = b.WriteTo(nil, to)
				tr.add("WriteTo empty %d %v", n, err)
				n, _, err = a.ReadFrom(buf)
				tr.add("ReadFrom empty %d %v", n, err)

				// Oversized: truncated to the buffer, the rest dropped;
				// ReadMsgUDP says so.
				big := bytes.Repeat([]byte("0123456789"), 100)
				b.WriteTo(big, to)
				b.WriteTo(big, to)
				b.WriteTo([]byte("next"), to)
				n, _, err = a.ReadFrom(buf[:10])
				tr.add("ReadFrom truncated %q %v", buf[:n], err)
				n, oobn, flags, _, err := a.ReadMsgUDP(buf[:10], nil)
				tr.add("ReadMsgUDP truncated %q oobn=%d trunc=%v %v", buf[:n], oobn, flags&unix.MSG_TRUNC != 0, err)
				n, _, err = a.ReadFrom(buf)
				tr.add("ReadFrom after %q %v", buf[:n], err)

				// Misuse, shaped as package net shapes it.
				_, err = a.WriteTo([]byte("x"), nil)
				tr.err("WriteTo nil", err)
				_, err = a.WriteTo([]byte("x"), &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9})
				tr.err("WriteTo TCPAddr", err)
				_, err = a.WriteToUDPAddrPort([]byte("x"), netip.AddrPort{})
				tr.err("WriteToUDPAddrPort invalid", err)
				_, _, err = a.WriteMsgUDP([]byte("x"), nil, nil)
				tr.err("WriteMsgUDP nil", err)
				_, err = a.Write([]byte("x"))
				tr.err("Write unconnected", err)
				if tc.network == "udp4" {
					_, err = a.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv6loopback, Port: 9})
					tr.err("WriteTo IPv6 on udp4", err)
				}
			})
		})
	}
}

func TestUDPDeadlineAndClose(t *testing.T) { udpModes(t, testUDPDeadlineAndClose) }

func testUDPDeadlineAndClose(t *testing.T) {
	compare(t, func(t *testing.T, s stack, tr *transcript) {
		a := listenUDP(t, s, "udp4", "127.0.0.1:0")
		tr.name(a.LocalAddr(), "A")
		buf := make([]byte, 8)
		require.NoError(t, a.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
		_, _, err := a.ReadFrom(buf)
		tr.err("ReadFrom deadline", err)
		_, _, _, _, err = a.ReadMsgUDP(buf, nil)
		tr.err("ReadMsgUDP expired", err)
		// A deadline moved into the past wakes a blocked receive; a later
		// one makes it usable again.
		require.NoError(t, a.SetReadDeadline(time.Time{}))
		done := make(chan error, 1)
		go func() {
			_, _, err := a.ReadFrom(buf)
			done <- err
		}()
		time.Sleep(20 * time.Millisecond)
		require.NoError(t, a.SetReadDeadline(time.Now().Add(-time.Second)))
		tr.err("ReadFrom woken by past deadline", <-done)
		require.NoError(t, a.SetReadDeadline(time.Time{}))
		b := listenUDP(t, s, "udp4", "127.0.0.1:0")
		tr.name(b.LocalAddr(), "B")
		b.WriteTo([]byte("after"), a.LocalAddr())
		n, _, err := a.ReadFrom(buf)
		tr.add("ReadFrom after %q %v", buf[:n], err)

		// Close wakes a blocked ReadFrom with net.ErrClosed.
		go func() {
			_, _, err := a.ReadFrom(buf)
			done <- err
		}()
		time.Sleep(20 * time.Millisecond)
		require.NoError(t, a.Close())
		err = <-done
		assert.ErrorIs(t, err, net.ErrClosed)
		tr.err("ReadFrom woken by Close", err)
		_, _, err = a.ReadFrom(buf)
		tr.err("ReadFrom closed", err)
		_, err = a.WriteTo(buf, b.LocalAddr())
		tr.err("WriteTo closed", err)
		tr.err("Close twice", a.Close())
		tr.err("SetDeadline closed", a.SetDeadline(time.Now()))
		tr.add("local after Close %v", a.LocalAddr())
	})
}

func TestUDPConnected(t *testing.T) { udpModes(t, testUDPConnected) }

func testUDPConnected(t *testing.T) {
	compare(t, func(t *testing.T, s stack, tr *transcript) {
		srv := listenUDP(t, s, "udp4", "127.0.0.1:0")
		tr.name(srv.LocalAddr(), "SRV")
		c, err := s.dial(t.Context(), opts{}, "udp", srv.LocalAddr().String())
		require.NoError(t, err)
		defer c.Close()
		if s.name == "rionet" {
			require.IsType(t, &rionet.PacketConn{}, c)
		}
		uc := c.(udpConn)
		tr.name(c.LocalAddr(), "C")
		tr.add("addrs %T %v %T %v", c.LocalAddr(), c.LocalAddr(), c.RemoteAddr(), c.RemoteAddr())

		n, err := c.Write([]byte("ping"))
		tr.add("Write %d %v", n, err)
		buf := make([]byte, 16)
		n, from, err := srv.ReadFrom(buf)
		tr.add("server ReadFrom %q %v %v", buf[:n], from, err)
		srv.WriteTo([]byte("pong"), from)
		n, err = c.Read(buf)
		tr.add("Read %q %v", buf[:n], err)
		n, err = c.Read(nil)
		tr.add("Read empty %d %v", n, err)

		// As on a *net.UDPConn: WriteTo refused, WriteMsgUDP with no address.
		_, err = uc.WriteTo([]byte("x"), srv.LocalAddr())
		tr.err("WriteTo connected", err)
		_, _, err = uc.WriteMsgUDP([]byte("x"), nil, srv.LocalAddr().(*net.UDPAddr))
		tr.err("WriteMsgUDP connected with addr", err)
		n, oobn, err := uc.WriteMsgUDP([]byte("msg"), nil, nil)
		tr.add("WriteMsgUDP %d %d %v", n, oobn, err)
		n, _, err = srv.ReadFrom(buf)
		tr.add("server ReadFrom %q %v", buf[:n], err)

		// The peer goes away: ICMP port unreachable, reported on the next
		// receive as ECONNREFUSED.
		srv.Close()
		c.Write([]byte("lost"))
		require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second)))
		_, err = c.Read(buf)
		tr.err("Read refused", err)
	})
}

// ReadMsgUDP and WriteMsgUDP with ancillary data: IP_PKTINFO received,
// and sent to pick the source address.
func TestUDPMsgOOB(t *testing.T) { udpModes(t, testUDPMsgOOB) }

func testUDPMsgOOB(t *testing.T) {
	compare(t, func(t *testing.T, s stack, tr *transcript) {
		a := listenUDP(t, s, "udp4", "127.0.0.1:0")
		b := listenUDP(t, s, "udp4", "127.0.0.1:0")
		rc, err := a.SyscallConn()
		require.NoError(t, err)
		rc.Control(func(fd uintptr) {
			require.NoError(t, unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1))
		})
		tr.name(a.LocalAddr(), "A")
		tr.name(b.LocalAddr(), "B")
		pktinfo := unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: [4]byte{127, 0, 0, 1}})
		n, oobn, err := b.WriteMsgUDP([]byte("with oob"), pktinfo, a.LocalAddr().(*net.UDPAddr))
		tr.add("WriteMsgUDP %d %d %v", n, oobn, err)
		buf, oob := make([]byte, 32), make([]byte, 128)
		n, oobn, flags, from, err := a.ReadMsgUDP(buf, oob)
		tr.add("ReadMsgUDP %q oobn=%d flags=%d from=%v %v", buf[:n], oobn, flags, from, err)
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		require.NoError(t, err)
		require.Len(t, msgs, 1)
		tr.add("cmsg level=%d type=%d len=%d", msgs[0].Header.Level, msgs[0].Header.Type, len(msgs[0].Data))
		// Too little room for the ancillary data: MSG_CTRUNC.
		n, oobn, err = b.WriteMsgUDPAddrPort([]byte("again"), nil, a.LocalAddr().(*net.UDPAddr).AddrPort())
		tr.add("WriteMsgUDPAddrPort %d %d %v", n, oobn, err)
		n, oobn, flags, ap, err := a.ReadMsgUDPAddrPort(buf, oob[:4])
		tr.add("ReadMsgUDPAddrPort %q oobn=%d ctrunc=%v from=%v %v", buf[:n], oobn, flags&unix.MSG_CTRUNC != 0, ap, err)
		// Two control messages, and room for one, one and a half, ...
		rc.Control(func(fd uintptr) {
			require.NoError(t, unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVTTL, 1))
		})
		for _, room := range []int{128, 32, 40, 48} {
			b.WriteTo([]byte("two"), a.LocalAddr())
			clear(oob)
			n, oobn, flags, _, err := a.ReadMsgUDP(buf, oob[:room])
			tr.add("room %d: %q oobn=%d ctrunc=%v %v oob=%x", room, buf[:n], oobn, flags&unix.MSG_CTRUNC != 0, err, oob[:oobn])
		}
	})
}

func TestUnixgram(t *testing.T) {
	compare(t, func(t *testing.T, s stack, tr *transcript) {
		dir := t.TempDir()
		pa, pb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
		a, err := s.listenPacket(t.Context(), opts{}, "unixgram", pa)
		require.NoError(t, err)
		defer a.Close()
		b, err := s.listenPacket(t.Context(), opts{}, "unixgram", pb)
		require.NoError(t, err)
		defer b.Close()
		if s.name == "rionet" {
			require.NotNil(t, rionet.RingOf(a))
		}
		tr.name(a.LocalAddr(), "A")
		tr.name(b.LocalAddr(), "B")
		tr.add("local %T %v", a.LocalAddr(), a.LocalAddr())
		n, err := b.WriteTo([]byte("over unixgram"), a.LocalAddr())
		tr.add("WriteTo %d %v", n, err)
		buf := make([]byte, 64)
		n, from, err := a.ReadFrom(buf)
		tr.add("ReadFrom %q %T %v %v", buf[:n], from, from, err)

		// From an unnamed socket: no address, as package net reports it.
		c, err := s.dial(t.Context(), opts{}, "unixgram", pa)
		require.NoError(t, err)
		defer c.Close()
		tr.add("dialed %v -> %v", c.LocalAddr(), c.RemoteAddr())
		n, err = c.Write([]byte("anonymous"))
		tr.add("Write %d %v", n, err)
		n, from, err = a.ReadFrom(buf)
		tr.add("ReadFrom %q %v %v", buf[:n], from, err)
		_, err = a.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1})
		tr.err("WriteTo UDPAddr on unixgram", err)
		a.Close()
		_, err = os.Stat(pa)
		tr.add("socket file after Close: exists=%v", err == nil)
	})
}

// 1,000 datagrams of random sizes, up to the largest UDP datagram over
// IPv4, echoed byte-exact by a rionet server to a rionet client, one at a
// time (UDP may drop what a full receive buffer cannot take).
func TestUDPEchoRandomSizes(t *testing.T) { udpModes(t, testUDPEchoRandomSizes) }

func testUDPEchoRandomSizes(t *testing.T) {
	ensureRing(t)
	checkLeaks(t)
	srv := listenUDP(t, rioStack, "udp4", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				done <- err
				return
			}
			if _, err := srv.WriteToUDPAddrPort(buf[:n], from); err != nil {
				done <- err
				return
			}
		}
	}()
	c, err := rioStack.dial(t.Context(), opts{}, "udp4", srv.LocalAddr().String())
	require.NoError(t, err)
	defer c.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	msg, got := make([]byte, 65507), make([]byte, 65536)
	for i := range 1000 {
		size := rng.IntN(len(msg) + 1)
		if i%4 == 0 {
			size = rng.IntN(2048) // many small ones too
		}
		for j := range msg[:size] {
			msg[j] = byte(rng.Uint32())
		}
		_, err := c.Write(msg[:size])
		require.NoError(t, err, "datagram %d of %d bytes", i, size)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		n, err := c.Read(got)
		require.NoError(t, err, "echo of datagram %d", i)
		require.Equal(t, size, n, "datagram %d", i)
		require.True(t, bytes.Equal(msg[:size], got[:n]), "datagram %d differs", i)
	}
	srv.Close()
	assert.ErrorIs(t, <-done, net.ErrClosed)
}

// Many goroutines sending and receiving at once on one PacketConn: every
// datagram arrives whole (a datagram is never split or merged).
func TestUDPConcurrent(t *testing.T) { udpModes(t, testUDPConcurrent) }

func testUDPConcurrent(t *testing.T) {
	ensureRing(t)
	checkLeaks(t)
	a := listenUDP(t, rioStack, "udp4", "127.0.0.1:0")
	b := listenUDP(t, rioStack, "udp4", "127.0.0.1:0")
	require.NoError(t, a.SetReadBuffer(4<<20))
	const senders, each = 4, 200
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				msg := bytes.Repeat([]byte{byte(g)}, 1+i%700)
				if _, err := b.WriteTo(msg, a.LocalAddr()); !assert.NoError(t, err) {
					return
				}
			}
		}()
	}
	got := make(chan int, senders*each)
	var rg sync.WaitGroup
	for range 3 {
		rg.Add(1)
		go func() {
			defer rg.Done()
			buf := make([]byte, 1024)
			for {
				a.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				n, _, err := a.ReadFrom(buf)
				if err != nil {
					return
				}
				assert.True(t, bytes.Equal(buf[:n], bytes.Repeat(buf[:1], n)), "a datagram of %d bytes mixes senders", n)
				got <- n
			}
		}()
	}
	wg.Wait()
	rg.Wait()
	close(got)
	count := 0
	for range got {
		count++
	}
	// Loopback with a 4 MiB receive buffer drops nothing here; a loss
	// would still not be a bug of ours, so only the shape is checked.
	assert.Positive(t, count)
	t.Logf("%d of %d datagrams received", count, senders*each)
}

func TestUDPBuffers(t *testing.T) {
	compare(t, func(t *testing.T, s stack, tr *transcript) {
		a := listenUDP(t, s, "udp4", "127.0.0.1:0")
		tr.name(a.LocalAddr(), "A")
		require.NoError(t, a.SetReadBuffer(100000))
		require.NoError(t, a.SetWriteBuffer(50000))
		rc, err := a.SyscallConn()
		require.NoError(t, err)
		rc.Control(func(fd uintptr) {
			r, _ := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
			w, _ := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
			tr.add("rcvbuf %d sndbuf %d", r, w)
		})
		tr.err("SetReadBuffer negative", a.SetReadBuffer(-1))
		a.Close()
		tr.err("SetReadBuffer closed", a.SetReadBuffer(1))
		tr.err("SetWriteBuffer closed", a.SetWriteBuffer(1))
	})
}

// Dial("udp") with a done context and to an unresolvable address fails as
// package net's does.
func TestUDPDialErrors(t *testing.T) {
	compare(t, func(t *testing.T, s stack, tr *transcript) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := s.dial(ctx, opts{}, "udp", "127.0.0.1:53")
		tr.add("done context: OpError=%v canceled=%v", errors.As(err, new(*net.OpError)), errors.Is(err, context.Canceled))
		_, err = s.dial(t.Context(), opts{}, "udp4", "[::1]:53")
		tr.err("udp4 to IPv6", err)
		_, err = s.listenPacket(t.Context(), opts{}, "udp7", ":0")
		tr.err("unknown network", err)
		_, err = io.ReadAll(io.LimitReader(nil, 0))
		tr.add("%v", err)
	})
}
