package rionet_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	rionet "github.com/gorio/rio/net"
)

// Interface conformance of the concrete types.
var (
	_ net.Conn     = (*rionet.Conn)(nil)
	_ net.Listener = (*rionet.Listener)(nil)
	_ io.WriterTo  = (*rionet.Conn)(nil)
)

func TestEchoNetworks(t *testing.T) {
	for _, network := range []string{"tcp", "tcp6", "unix"} {
		t.Run(network, func(t *testing.T) {
			ln := listen(t, network)
			c, s := pair(t, ln)
			msg := []byte("hello over io_uring")
			_, err := c.Write(msg)
			require.NoError(t, err)
			got := make([]byte, len(msg))
			_, err = io.ReadFull(s, got)
			require.NoError(t, err)
			assert.Equal(t, msg, got)
			assert.Equal(t, ln.Addr().String(), c.RemoteAddr().String())
			if network != "unix" {
				assert.Equal(t, c.LocalAddr().String(), s.RemoteAddr().String())
				assert.Equal(t, c.RemoteAddr().String(), s.LocalAddr().String())
			}
		})
	}
}

func TestErrorShapes(t *testing.T) {
	ln := listen(t, "tcp")
	c, s := pair(t, ln)

	// Timeout: *net.OpError wrapping os.ErrDeadlineExceeded, Timeout() true.
	require.NoError(t, s.SetReadDeadline(time.Now().Add(10*time.Millisecond)))
	_, err := s.Read(make([]byte, 8))
	var oe *net.OpError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, "read", oe.Op)
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())

	// Still usable after the timeout, no data lost.
	require.NoError(t, s.SetReadDeadline(time.Time{}))
	_, err = c.Write([]byte("x"))
	require.NoError(t, err)
	b := make([]byte, 1)
	_, err = io.ReadFull(s, b)
	require.NoError(t, err)

	// Bare io.EOF after the peer closes.
	require.NoError(t, c.Close())
	_, err = s.Read(b)
	assert.Same(t, io.EOF, err) //nolint:testifylint // identity matters: a bare io.EOF
	_, err = s.Read(b)
	assert.Equal(t, io.EOF, err)

	// net.ErrClosed after Close, for every method.
	require.NoError(t, s.Close())
	_, err = s.Read(b)
	assert.ErrorIs(t, err, net.ErrClosed)
	require.ErrorAs(t, err, &oe)
	_, err = s.Write(b)
	assert.ErrorIs(t, err, net.ErrClosed)
	assert.ErrorIs(t, s.Close(), net.ErrClosed)
	assert.ErrorIs(t, s.SetDeadline(time.Now()), net.ErrClosed)

	// Connection refused: dial error shaped like package net's.
	ln2 := listen(t, "tcp")
	addr := ln2.Addr().String()
	ln2.Close()
	_, err = dialer.Dial("tcp", addr)
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, "dial", oe.Op)
	var se *os.SyscallError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "connect", se.Syscall)
	assert.ErrorIs(t, err, syscall.ECONNREFUSED)
}

func TestZeroLengthRead(t *testing.T) {
	ln := listen(t, "tcp")
	c, s := pair(t, ln)
	n, err := s.Read(nil)
	assert.Equal(t, 0, n)
	assert.NoError(t, err)
	n, err = s.Read([]byte{})
	assert.Equal(t, 0, n)
	assert.NoError(t, err)
	n, err = c.Write(nil)
	assert.Equal(t, 0, n)
	assert.NoError(t, err)
	// With data pending, a zero-length Read consumes nothing.
	_, err = c.Write([]byte("ab"))
	require.NoError(t, err)
	n, err = s.Read(nil)
	assert.Equal(t, 0, n)
	assert.NoError(t, err)
	got := make([]byte, 2)
	_, err = io.ReadFull(s, got)
	require.NoError(t, err)
	assert.Equal(t, "ab", string(got))
}

func TestHalfClose(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			ln := listen(t, network)
			c, s := pair(t, ln)
			_, err := c.Write([]byte("request"))
			require.NoError(t, err)
			require.NoError(t, c.CloseWrite())
			req, err := io.ReadAll(s)
			require.NoError(t, err)
			assert.Equal(t, "request", string(req))
			// The other direction still works.
			_, err = s.Write([]byte("response"))
			require.NoError(t, err)
			require.NoError(t, s.CloseWrite())
			resp, err := io.ReadAll(c)
			require.NoError(t, err)
			assert.Equal(t, "response", string(resp))
			// Writing after CloseWrite fails with EPIPE.
			_, err = c.Write([]byte("more"))
			assert.ErrorIs(t, err, syscall.EPIPE)
		})
	}
}

func TestCloseRead(t *testing.T) {
	ln := listen(t, "tcp")
	c, s := pair(t, ln)
	require.NoError(t, s.CloseRead())
	_, err := s.Read(make([]byte, 1))
	assert.Equal(t, io.EOF, err)
	_, err = s.Write([]byte("still writable"))
	require.NoError(t, err)
	got := make([]byte, 14)
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
}

func TestPeerReset(t *testing.T) {
	ln := listen(t, "tcp")
	c, s := pair(t, ln)
	// Stream data, then reset: SO_LINGER 0 makes Close send RST.
	chunk := bytes.Repeat([]byte("x"), 1024)
	for range 16 {
		_, err := c.Write(chunk)
		require.NoError(t, err)
	}
	require.NoError(t, c.SetLinger(0))
	// Let the server read part of the stream first.
	_, err := io.ReadFull(s, make([]byte, 1024))
	require.NoError(t, err)
	require.NoError(t, c.Close())

	// The server sees either the rest of the data then ECONNRESET, or
	// ECONNRESET at once (the kernel drops unread data on RST).
	buf := make([]byte, 4096)
	for {
		_, err = s.Read(buf)
		if err != nil {
			break
		}
	}
	var oe *net.OpError
	require.ErrorAs(t, err, &oe, "got %v", err)
	assert.Equal(t, "read", oe.Op)
	var se *os.SyscallError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "read", se.Syscall)
	assert.ErrorIs(t, err, syscall.ECONNRESET)

	// Writing to a reset connection fails too (EPIPE or ECONNRESET), and
	// Close still works.
	for range 3 {
		if _, err = s.Write(chunk); err != nil {
			break
		}
	}
	require.Error(t, err)
	assert.True(t, errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET), "got %v", err)
	require.NoError(t, s.Close())
}

func TestBigWrite(t *testing.T) {
	ln := listen(t, "tcp")
	c, s := pair(t, ln)
	// Far more than the socket buffers hold: Write must loop over partial
	// sends while the reader drains.
	want := make([]byte, 32<<20)
	rand.Read(want)
	done := make(chan error, 1)
	go func() {
		n, err := c.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		c.CloseWrite()
		done <- err
	}()
	got, err := io.ReadAll(s)
	require.NoError(t, err)
	require.NoError(t, <-done)
	require.True(t, bytes.Equal(want, got), "received %d bytes, differ from the %d sent", len(got), len(want))
}

func TestWriteDeadlineWhileBlocked(t *testing.T) {
	ln := listen(t, "tcp")
	c, s := pair(t, ln)
	big := make([]byte, 64<<20)
	// Nobody reads: the Write blocks once the socket buffers are full,
	// then the deadline ends it with a partial count.
	go func() {
		time.Sleep(50 * time.Millisecond)
		c.SetWriteDeadline(time.Now())
	}()
	n, err := c.Write(big)
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	assert.Less(t, n, len(big))
	assert.Positive(t, n)

	// The connection stays usable: clear the deadline, write a marker,
	// and the reader gets exactly n bytes followed by it.
	require.NoError(t, c.SetWriteDeadline(time.Time{}))
	go func() {
		c.Write([]byte("END"))
		c.CloseWrite()
	}()
	got, err := io.ReadAll(s)
	require.NoError(t, err)
	assert.Equal(t, n+3, len(got))
	assert.Equal(t, "END", string(got[n:]))
}

func TestCloseWakesBlockedReadAndWrite(t *testing.T) {
	ln := listen(t, "tcp")
	c, _ := pair(t, ln)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, err := c.Read(make([]byte, 10))
		errs <- err
	}()
	go func() {
		defer wg.Done()
		_, err := c.Write(make([]byte, 64<<20)) // blocks: the peer does not read
		errs <- err
	}()
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, c.Close())
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.ErrorIs(t, err, net.ErrClosed)
	}
}

func TestAcceptRacingClose(t *testing.T) {
	for i := range 20 {
		ln := listen(t, "tcp")
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					c, err := ln.Accept()
					if err != nil {
						errs <- err
						return
					}
					c.Close()
				}
			}()
		}
		// Some dials in flight while the listener closes.
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if c, err := dialer.Dial("tcp", ln.Addr().String()); err == nil {
					c.Close()
				}
			}()
		}
		if i%2 == 0 {
			time.Sleep(time.Millisecond)
		}
		require.NoError(t, ln.Close())
		wg.Wait()
		close(errs)
		for err := range errs {
			assert.ErrorIs(t, err, net.ErrClosed)
			var oe *net.OpError
			if assert.ErrorAs(t, err, &oe) {
				assert.Equal(t, "accept", oe.Op)
			}
		}
		assert.ErrorIs(t, ln.Close(), net.ErrClosed)
	}
}

func TestAcceptDeadline(t *testing.T) {
	ln := listen(t, "tcp")
	require.NoError(t, ln.SetDeadline(time.Now().Add(10*time.Millisecond)))
	_, err := ln.Accept()
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.NoError(t, ln.SetDeadline(time.Time{}))
	c := dial(t, ln)
	s, err := ln.Accept()
	require.NoError(t, err)
	s.Close()
	c.Close()
}

func TestDeadlineStorm(t *testing.T) {
	ln := listen(t, "tcp")
	const readers = 4
	conns := make([][2]*rionet.Conn, readers)
	for i := range conns {
		c, s := pair(t, ln)
		conns[i] = [2]*rionet.Conn{c, s}
	}
	var wg sync.WaitGroup
	results := make(chan string, readers)
	for _, p := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, 5)
			for {
				_, err := io.ReadFull(p[1], b)
				if errors.Is(err, os.ErrDeadlineExceeded) {
					continue // a deadline that passed during the storm
				}
				if err != nil {
					results <- err.Error()
					return
				}
				results <- string(b)
				return
			}
		}()
	}
	// 10,000 deadline changes while the reads are blocked: moved later,
	// earlier, cleared, some in the past, from several goroutines.
	var storm sync.WaitGroup
	for g := range readers {
		storm.Add(1)
		go func() {
			defer storm.Done()
			s := conns[g][1]
			for i := range 10000 / readers {
				switch i % 4 {
				case 0:
					s.SetReadDeadline(time.Now().Add(time.Hour))
				case 1:
					s.SetReadDeadline(time.Now().Add(time.Duration(i%7) * time.Microsecond))
				case 2:
					s.SetReadDeadline(time.Time{})
				case 3:
					s.SetDeadline(time.Now().Add(time.Minute))
				}
			}
			s.SetReadDeadline(time.Time{})
		}()
	}
	storm.Wait()
	for _, p := range conns {
		_, err := p[0].Write([]byte("hello"))
		require.NoError(t, err)
	}
	wg.Wait()
	close(results)
	for r := range results {
		assert.Equal(t, "hello", r)
	}
	// And a deadline set after the storm still fires.
	s := conns[0][1]
	require.NoError(t, s.SetReadDeadline(time.Now().Add(5*time.Millisecond)))
	_, err := s.Read(make([]byte, 1))
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
}

func TestManyConns(t *testing.T) {
	ln := listen(t, "tcp")
	const n = 1000
	var srv sync.WaitGroup
	srv.Add(1)
	go func() {
		defer srv.Done()
		var wg sync.WaitGroup
		for range n {
			c, err := ln.Accept()
			if !assert.NoError(t, err) {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c) // echo until the client closes
			}()
		}
		wg.Wait()
	}()
	var cli sync.WaitGroup
	errs := make(chan error, n)
	conns := make([]net.Conn, n)
	for i := range n {
		c, err := dialer.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		conns[i] = c
	}
	// All connected at once, then every one echoes concurrently.
	for i, c := range conns {
		cli.Add(1)
		go func() {
			defer cli.Done()
			defer c.Close()
			msg := bytes.Repeat([]byte{byte(i)}, 100+i)
			for range 3 {
				if _, err := c.Write(msg); err != nil {
					errs <- err
					return
				}
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(c, got); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, msg) {
					errs <- errors.New("echo mismatch")
					return
				}
			}
		}()
	}
	cli.Wait()
	srv.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
}

func TestWriteToCopiesAll(t *testing.T) {
	ln := listen(t, "unix")
	c, s := pair(t, ln)
	want := make([]byte, 1<<20)
	rand.Read(want)
	go func() {
		c.Write(want)
		c.Close()
	}()
	var got bytes.Buffer
	n, err := s.WriteTo(&got)
	require.NoError(t, err)
	assert.Equal(t, int64(len(want)), n)
	assert.True(t, bytes.Equal(want, got.Bytes()))
}

func TestHTTPRoundTrip(t *testing.T) {
	ln := listen(t, "tcp")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Path", r.URL.Path)
		w.Write(append([]byte("echo:"), body...))
	}))
	srv.Listener.Close() // httptest's own listener, replaced by ours
	srv.Listener = ln
	srv.Start()
	defer srv.Close()

	tr := &http.Transport{DialContext: (&rionet.Dialer{NoFallback: true}).DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for i := range 20 {
		body := bytes.Repeat([]byte("b"), i*1000)
		resp, err := client.Post(srv.URL+"/p", "text/plain", bytes.NewReader(body))
		require.NoError(t, err)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "/p", resp.Header.Get("X-Path"))
		require.Equal(t, "echo:"+string(body), string(got), "response body")
	}
	// Concurrent requests over several connections.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				resp, err := client.Get(srv.URL + "/c")
				if !assert.NoError(t, err) {
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
}

func TestDialContextCancel(t *testing.T) {
	ln := listen(t, "tcp")
	_ = ln
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := dialer.DialContext(ctx, "tcp", ln.Addr().String())
	var oe *net.OpError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, "dial", oe.Op)

	ctx, cancel = context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	_, err = dialer.DialContext(ctx, "tcp", ln.Addr().String())
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
}
