package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// listeners are the server-side implementations of the network
// workloads: "std" is package net (Go's epoll netpoller). The rio row is
// added by rionet.go, built in when package github.com/gorio/rio/net is
// present (see that file).
var listeners = map[string]func(network, address string) (net.Listener, error){
	"std": net.Listen,
}

// childServer listens on loopback, prints "ADDR host:port", and serves
// echo or HTTP hello until its standard input closes or s.MaxLife passes.
func childServer(s spec) error {
	listen, ok := listeners[s.Impl]
	if !ok {
		return fmt.Errorf("no listener %q in this build", s.Impl)
	}
	ln, err := listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("ADDR %s\n", ln.Addr())
	go func() {
		io.Copy(io.Discard, os.Stdin) // the parent closes it to stop us
		os.Exit(0)
	}()
	if s.MaxLife > 0 {
		time.AfterFunc(s.MaxLife, func() {
			fmt.Fprintln(os.Stderr, "riobench: server: lifetime bound reached, exiting")
			os.Exit(0)
		})
	}
	if s.Role == "http-server" {
		hello := []byte("Hello, World!\n")
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.Write(hello)
			}),
			ErrorLog: nil,
		}
		return srv.Serve(ln)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go echo(c)
	}
}

// echo writes back what it reads. An explicit loop (not io.Copy, which
// would splice between TCP sockets) so both listeners do the same work.
func echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// dialAll opens n connections to addr with package net (the client is the
// same program for every server implementation).
func dialAll(addr string, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// runConns runs do on every connection from its own goroutine after a
// short warm-up, for s.Dur, and returns requests per second.
func runConns(s spec, conns []net.Conn, do func(c net.Conn, st *connState) error) (float64, error) {
	warm := min(s.Dur/10, 200*time.Millisecond)
	var (
		wg       sync.WaitGroup
		measure  atomic.Bool
		stop     atomic.Bool
		total    atomic.Int64
		firstErr atomic.Value
	)
	for _, c := range conns {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			defer c.Close()
			st := newConnState(c, s.Msg)
			n := int64(0)
			// One deadline for the whole run, so that a stuck server cannot
			// hang the client (and no timer is touched per request).
			c.SetDeadline(time.Now().Add(warm + s.Dur + 10*time.Second))
			for !stop.Load() {
				if err := do(c, st); err != nil {
					if !stop.Load() {
						firstErr.CompareAndSwap(nil, err)
						stop.Store(true)
					}
					break
				}
				if measure.Load() {
					n++
				}
			}
			total.Add(n)
		}(c)
	}
	time.Sleep(warm)
	measure.Store(true)
	start := time.Now()
	time.Sleep(s.Dur)
	el := time.Since(start)
	measure.Store(false)
	stop.Store(true)
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return float64(total.Load()) / el.Seconds(), nil
}

type connState struct {
	msg, buf []byte
	br       *bufio.Reader
}

func newConnState(c net.Conn, msg int) *connState {
	st := &connState{msg: bytes.Repeat([]byte{'x'}, max(msg, 1)), buf: make([]byte, max(msg, 1)), br: bufio.NewReaderSize(c, 16<<10)}
	return st
}

// childEchoClient: s.Conns connections, each sending an s.Msg-byte message
// and reading the echo back, in a loop.
func childEchoClient(s spec) ([]sample, error) {
	conns, err := dialAll(s.Addr, s.Conns)
	if err != nil {
		return nil, err
	}
	rate, err := runConns(s, conns, func(c net.Conn, st *connState) error {
		if _, err := c.Write(st.msg); err != nil {
			return err
		}
		_, err := io.ReadFull(c, st.buf)
		return err
	})
	if err != nil {
		return nil, err
	}
	return []sample{{Value: rate, Unit: "req/s"}}, nil
}

var httpRequest = []byte("GET / HTTP/1.1\r\nHost: riobench\r\nUser-Agent: riobench\r\n\r\n")

// childHTTPClient: s.Conns keep-alive connections, each sending GET / and
// reading the response (status line, headers, Content-Length body) in a
// loop: a small wrk.
func childHTTPClient(s spec) ([]sample, error) {
	conns, err := dialAll(s.Addr, s.Conns)
	if err != nil {
		return nil, err
	}
	rate, err := runConns(s, conns, func(c net.Conn, st *connState) error {
		if _, err := c.Write(httpRequest); err != nil {
			return err
		}
		return readResponse(st.br)
	})
	if err != nil {
		return nil, err
	}
	return []sample{{Value: rate, Unit: "req/s"}}, nil
}

var errBadResponse = errors.New("bad HTTP response")

func readResponse(br *bufio.Reader) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200")) {
		return fmt.Errorf("%w: %q", errBadResponse, line)
	}
	length := -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			length, err = strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				return fmt.Errorf("%w: %q", errBadResponse, line)
			}
		}
	}
	if length < 0 {
		return fmt.Errorf("%w: no Content-Length", errBadResponse)
	}
	_, err = br.Discard(length)
	return err
}
