package rionet_test

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/nettest"

	rionet "github.com/gorio/rio/net"
)

// fileOf returns a copy of a socket of package net as an *os.File, and
// closes the original: the socket lives on in the file only, as one a
// process inherits.
func fileOf(t *testing.T, c interface {
	File() (*os.File, error)
	Close() error
}) *os.File {
	t.Helper()
	f, err := c.File()
	require.NoError(t, err)
	require.NoError(t, c.Close())
	t.Cleanup(func() { f.Close() })
	return f
}

func echo(t *testing.T, c net.Conn, msg string) string {
	t.Helper()
	_, err := c.Write([]byte(msg))
	require.NoError(t, err)
	buf := make([]byte, len(msg))
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	return string(buf)
}

// An inherited listening socket (systemd's socket activation, a graceful
// restart): FileListener makes a listener of it that accepts and echoes.
func TestFileListenerEcho(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			compare(t, func(t *testing.T, s stack, tr *transcript) {
				addr := "127.0.0.1:0"
				if network == "unix" {
					addr = filepath.Join(t.TempDir(), "s")
				}
				std, err := net.Listen(network, addr)
				require.NoError(t, err)
				tr.name(std.Addr(), "LN")
				if ul, ok := std.(*net.UnixListener); ok {
					ul.SetUnlinkOnClose(false)
				}
				f := fileOf(t, std.(interface {
					File() (*os.File, error)
					Close() error
				}))
				ln, err := s.fileListener(f)
				require.NoError(t, err)
				defer ln.Close()
				if s.name == "rionet" {
					require.NotNil(t, rionet.RingOf(ln), "%T", ln)
				}
				tr.add("listener %T %v", ln.Addr(), ln.Addr())
				go func() {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					defer c.Close()
					echoLoop(c)
				}()
				c, err := net.Dial(network, ln.Addr().String())
				require.NoError(t, err)
				defer c.Close()
				tr.add("echo %q", echo(t, c, "through an inherited listener"))
			})
		})
	}
}

// An inherited connected socket: FileConn makes a Conn of it.
func TestFileConnEcho(t *testing.T) {
	compare(t, func(t *testing.T, s stack, tr *transcript) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		tr.name(ln.Addr(), "LN")
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			echoLoop(c)
		}()
		std, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		tr.name(std.LocalAddr(), "C")
		c, err := s.fileConn(fileOf(t, std.(*net.TCPConn)))
		require.NoError(t, err)
		defer c.Close()
		if s.name == "rionet" {
			require.IsType(t, &rionet.Conn{}, c)
		}
		tr.add("conn %v -> %v", c.LocalAddr(), c.RemoteAddr())
		tr.add("echo %q", echo(t, c, "through an inherited connection"))
		tr.add("options %s", keepAliveOpts(t, c))
	})
}

func TestFilePacketConn(t *testing.T) {
	compare(t, func(t *testing.T, s stack, tr *transcript) {
		peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
		require.NoError(t, err)
		defer peer.Close()
		std, err := net.ListenPacket("udp4", "127.0.0.1:0")
		require.NoError(t, err)
		tr.name(peer.LocalAddr(), "PEER")
		tr.name(std.LocalAddr(), "PC")
		pc, err := s.filePacket(fileOf(t, std.(*net.UDPConn)))
		require.NoError(t, err)
		defer pc.Close()
		if s.name == "rionet" {
			require.NotNil(t, rionet.RingOf(pc))
		}
		tr.add("local %v", pc.LocalAddr())
		_, err = peer.WriteTo([]byte("inherited datagram"), pc.LocalAddr())
		require.NoError(t, err)
		buf := make([]byte, 64)
		n, from, err := pc.ReadFrom(buf)
		tr.add("ReadFrom %q %v %v", buf[:n], from, err)

		// FileConn of a datagram socket is a connected PacketConn.
		dc, err := net.Dial("udp4", peer.LocalAddr().String())
		require.NoError(t, err)
		tr.name(dc.LocalAddr(), "DC")
		c, err := s.fileConn(fileOf(t, dc.(*net.UDPConn)))
		require.NoError(t, err)
		defer c.Close()
		_, isPacket := c.(net.PacketConn)
		tr.add("FileConn of UDP: packet=%v %v -> %v", isPacket, c.LocalAddr(), c.RemoteAddr())
		c.Write([]byte("up"))
		n, from, err = peer.ReadFrom(buf)
		tr.add("peer ReadFrom %q %v %v", buf[:n], from, err)
	})
}

// What is not a socket of the right kind fails as with package net.
func TestFileErrors(t *testing.T) {
	compare(t, func(t *testing.T, s stack, tr *transcript) {
		tmp, err := os.CreateTemp(t.TempDir(), "notasocket")
		require.NoError(t, err)
		defer tmp.Close()
		tr.nameString(tmp.Name(), "FILE")
		_, err = s.fileListener(tmp)
		tr.err("FileListener of a file", err)
		_, err = s.fileConn(tmp)
		tr.err("FileConn of a file", err)
		_, err = s.filePacket(tmp)
		tr.err("FilePacketConn of a file", err)

		u, err := net.ListenPacket("udp4", "127.0.0.1:0")
		require.NoError(t, err)
		uf := fileOf(t, u.(*net.UDPConn))
		tr.nameString(uf.Name(), "UDPFILE")
		_, err = s.fileListener(uf)
		tr.err("FileListener of a UDP socket", err)

		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		lf := fileOf(t, ln.(*net.TCPListener))
		tr.nameString(lf.Name(), "LNFILE")
		_, err = s.filePacket(lf)
		tr.err("FilePacketConn of a TCP listener", err)
	})
}

// rionet is stricter than package net where package net would make a
// listener that cannot accept, or a connection that cannot read.
func TestFileWrongState(t *testing.T) {
	ensureRing(t)
	checkLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	lf, err := ln.(*net.TCPListener).File()
	require.NoError(t, err)
	defer lf.Close()
	_, err = rionet.FileConn(lf)
	require.ErrorIs(t, err, syscall.EINVAL, "FileConn of a listening socket")
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	cf, err := c.(*net.TCPConn).File()
	require.NoError(t, err)
	defer cf.Close()
	_, err = rionet.FileListener(cf)
	require.ErrorIs(t, err, syscall.EINVAL, "FileListener of a connected socket")
	var oe *net.OpError
	require.ErrorAs(t, err, &oe)
	require.Equal(t, "file", oe.Op)
}

// nettest's conformance suite on connections made by FileConn from
// sockets of package net.
func TestFileConnNettest(t *testing.T) {
	ensureRing(t)
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
				addr := "127.0.0.1:0"
				if network == "unix" {
					addr = filepath.Join(t.TempDir(), "s")
				}
				ln, err := net.Listen(network, addr)
				if err != nil {
					return nil, nil, nil, err
				}
				defer ln.Close()
				a, err := net.Dial(network, ln.Addr().String())
				if err != nil {
					return nil, nil, nil, err
				}
				b, err := ln.Accept()
				if err != nil {
					a.Close()
					return nil, nil, nil, err
				}
				conv := func(c net.Conn) (net.Conn, error) {
					f, err := c.(interface{ File() (*os.File, error) }).File()
					c.Close()
					if err != nil {
						return nil, err
					}
					defer f.Close()
					return rionet.FileConn(f)
				}
				if c1, err = conv(a); err != nil {
					b.Close()
					return nil, nil, nil, err
				}
				if c2, err = conv(b); err != nil {
					c1.Close()
					return nil, nil, nil, err
				}
				if _, ok := c1.(*rionet.Conn); !ok {
					return nil, nil, nil, os.ErrInvalid
				}
				return c1, c2, func() { c1.Close(); c2.Close() }, nil
			})
		})
	}
}

// echoLoop echoes c with Read and Write: io.Copy between package net's
// TCP sockets would splice through a pipe it keeps in a pool, which the
// leak check would count.
func echoLoop(c net.Conn) {
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
