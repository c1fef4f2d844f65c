package rionet_test

import (
	"bytes"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func rawConn(t *testing.T, c any) syscall.RawConn {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	require.NoError(t, err)
	return rc
}

// drainUntilEAGAIN is the usual non-blocking read callback: read until
// EAGAIN; done once something arrived (or the end).
func drainUntilEAGAIN(got *[]byte, calls *int) func(fd uintptr) bool {
	buf := make([]byte, 64)
	return func(fd uintptr) bool {
		*calls++
		for {
			n, err := unix.Read(int(fd), buf)
			if n > 0 {
				*got = append(*got, buf[:n]...)
				continue
			}
			if err == unix.EAGAIN {
				return len(*got) > 0
			}
			return true
		}
	}
}

// The callbacks of RawConn.Read and Write see a non-blocking socket and
// wait for readiness between calls, honouring deadlines and Close, as
// package net's do.
func TestRawConnRead(t *testing.T) {
	compare(t, func(t *testing.T, s stack, tr *transcript) {
		c, srv := tcpPair(t, s, "tcp4")
		tr.name(c.LocalAddr(), "C")
		tr.name(srv.LocalAddr(), "S")
		rc := rawConn(t, srv)

		// Nothing yet: the callback sees EAGAIN, Read waits, data
		// arrives, the callback is called again and drains it.
		go func() {
			time.Sleep(20 * time.Millisecond)
			c.Write([]byte("hello"))
		}()
		var got []byte
		calls := 0
		var err error
		within(t, "RawConn.Read", func() { err = rc.Read(drainUntilEAGAIN(&got, &calls)) })
		tr.add("Read %q %v waited=%v", got, err, calls > 1)

		// A Conn.Read and a RawConn.Read take turns: each sees the data
		// that arrives for it.
		c.Write([]byte("conn"))
		buf := make([]byte, 16)
		n, err := io.ReadFull(srv, buf[:4])
		tr.add("Conn.Read %q %v", buf[:n], err)
		go func() {
			time.Sleep(20 * time.Millisecond)
			c.Write([]byte("raw"))
		}()
		got, calls = nil, 0
		within(t, "RawConn.Read after Conn.Read", func() { err = rc.Read(drainUntilEAGAIN(&got, &calls)) })
		tr.add("Read %q %v", got, err)
		c.Write([]byte("again"))
		n, err = io.ReadFull(srv, buf[:5])
		tr.add("Conn.Read %q %v", buf[:n], err)

		// The read deadline ends the wait.
		require.NoError(t, srv.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
		within(t, "RawConn.Read with a deadline", func() {
			err = rc.Read(func(fd uintptr) bool {
				_, err := unix.Read(int(fd), buf)
				return err != unix.EAGAIN
			})
		})
		tr.err("Read past the deadline", err)
		require.NoError(t, srv.SetReadDeadline(time.Time{}))

		if s.name == "rionet" {
			rc.Control(func(fd uintptr) {
				fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
				require.NoError(t, err)
				assert.Zero(t, fl&unix.O_NONBLOCK, "back in blocking mode after the callbacks")
			})
		}

		// Close ends it too.
		errc := make(chan error, 1)
		go func() {
			errc <- rc.Read(func(fd uintptr) bool { return false })
		}()
		time.Sleep(20 * time.Millisecond)
		require.NoError(t, srv.Close())
		within(t, "RawConn.Read woken by Close", func() { err = <-errc })
		tr.err("Read woken by Close", err)
		tr.err("Read after Close", rc.Read(func(uintptr) bool { return true }))
		tr.err("Control after Close", rc.Control(func(uintptr) {}))
	})
}

func TestRawConnWrite(t *testing.T) {
	compare(t, func(t *testing.T, s stack, tr *transcript) {
		c, srv := tcpPair(t, s, "tcp4")
		tr.name(c.LocalAddr(), "C")
		tr.name(srv.LocalAddr(), "S")
		rc := rawConn(t, srv)
		const total = 8 << 20 // far more than the socket buffers hold
		chunk := bytes.Repeat([]byte("w"), 64<<10)
		received := make(chan int, 1)
		go func() {
			time.Sleep(20 * time.Millisecond)
			n, _ := io.Copy(io.Discard, io.LimitReader(c, total))
			received <- int(n)
		}()
		sent, calls := 0, 0
		var err error
		within(t, "RawConn.Write", func() {
			err = rc.Write(func(fd uintptr) bool {
				calls++
				for sent < total {
					n, err := unix.Write(int(fd), chunk[:min(len(chunk), total-sent)])
					if err == unix.EAGAIN {
						return false
					}
					if err != nil {
						return true
					}
					sent += n
				}
				return true
			})
		})
		tr.add("Write %d %v waited=%v received=%d", sent, err, calls > 1, <-received)

		// Nobody reads: the write deadline ends the wait.
		require.NoError(t, srv.SetWriteDeadline(time.Now().Add(50*time.Millisecond)))
		within(t, "RawConn.Write with a deadline", func() {
			err = rc.Write(func(fd uintptr) bool {
				for {
					if _, err := unix.Write(int(fd), chunk); err != nil {
						return err != unix.EAGAIN
					}
				}
			})
		})
		tr.err("Write past the deadline", err)
	})
}

// RawConn.Read on a PacketConn: recvfrom until EAGAIN.
func TestRawConnPacket(t *testing.T) { udpModes(t, testRawConnPacket) }

func testRawConnPacket(t *testing.T) {
	compare(t, func(t *testing.T, s stack, tr *transcript) {
		a := listenUDP(t, s, "udp4", "127.0.0.1:0")
		b := listenUDP(t, s, "udp4", "127.0.0.1:0")
		rc := rawConn(t, a)
		go func() {
			time.Sleep(20 * time.Millisecond)
			b.WriteTo([]byte("one"), a.LocalAddr())
			b.WriteTo([]byte("two"), a.LocalAddr())
		}()
		var got []string
		var err error
		buf := make([]byte, 16)
		within(t, "RawConn.Read", func() {
			err = rc.Read(func(fd uintptr) bool {
				for {
					n, _, err := unix.Recvfrom(int(fd), buf, 0)
					if err == unix.EAGAIN {
						return len(got) == 2
					}
					if err != nil {
						return true
					}
					got = append(got, string(buf[:n]))
				}
			})
		})
		tr.add("Read %q %v", got, err)
	})
}

// rionet only: data its multishot receive took before a RawConn.Read is
// not lost: the next Conn.Read returns it, in order.
func TestRawConnKeepsReceived(t *testing.T) {
	ensureRing(t)
	checkLeaks(t)
	c, srv := tcpPair(t, rioStack, "tcp4")
	armRead(t, srv)
	c.Write([]byte("taken"))
	waitFor(t, "the receive to take the data", func() bool { return inq(t, srv) == 0 })
	time.Sleep(10 * time.Millisecond) // its completion may still be on its way
	rc := rawConn(t, srv)
	go func() {
		time.Sleep(20 * time.Millisecond)
		c.Write([]byte("raw"))
	}()
	var got []byte
	calls := 0
	var err error
	within(t, "RawConn.Read", func() { err = rc.Read(drainUntilEAGAIN(&got, &calls)) })
	require.NoError(t, err)
	buf := make([]byte, 16)
	n, err := srv.Read(buf)
	require.NoError(t, err)
	all := string(buf[:n]) + "|" + string(got)
	assert.Contains(t, []string{"taken|raw", "|takenraw"}, all, "received before, through, after")
}

// A Listener's RawConn callbacks leave its socket non-blocking: Accept
// waits for it in the network poller, and on a socket put back in
// blocking mode it would block its thread in accept(2), where neither
// Close nor a deadline reaches it.
func TestListenerRawConnAccept(t *testing.T) {
	ln := listen(t, "tcp")
	rc, err := ln.SyscallConn()
	require.NoError(t, err)
	c := dial(t, ln)
	within(t, "RawConn.Read on a listener", func() {
		err = rc.Read(func(uintptr) bool { return true })
	})
	require.NoError(t, err)
	rc.Control(func(fd uintptr) {
		fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		require.NoError(t, err)
		assert.NotZero(t, fl&unix.O_NONBLOCK, "the listener's socket is non-blocking")
	})
	s, err := ln.Accept()
	require.NoError(t, err)
	s.Close()
	c.Close()

	require.NoError(t, ln.SetDeadline(time.Now().Add(20*time.Millisecond)))
	within(t, "Accept past the deadline", func() {
		_, err = ln.Accept()
	})
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.NoError(t, ln.SetDeadline(time.Time{}))
	errc := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it block (not needed for correctness)
	require.NoError(t, ln.Close())
	within(t, "Accept woken by Close", func() { err = <-errc })
	assert.ErrorIs(t, err, net.ErrClosed)
}
