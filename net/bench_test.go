package rionet_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	rionet "github.com/gorio/rio/net"
)

// Benchmarks of the features beyond net.Conn, each side by side with
// package net. docs/net.md has the figures and the script that runs them.

// udpVariant is a way of running a PacketConn.
type udpVariant struct {
	name  string
	s     stack
	setup func() (restore func())
}

func udpVariants() []udpVariant {
	none := func() func() { return func() {} }
	return []udpVariant{
		{"net", stdStack, none},
		{"rionet", rioStack, none},
		{"rionet-ring", rioStack, func() func() { return rionet.SetUDPRingOnlyForTest(true) }},
		{"rionet-multishot", rioStack, func() func() { return rionet.SetUDPMultishotForTest(true) }},
	}
}

// BenchmarkUDPEcho measures round trips of 64-byte datagrams to an echo
// server, from 1 and 8 clients at once; server and clients use the same
// stack.
func BenchmarkUDPEcho(b *testing.B) {
	for _, v := range udpVariants() {
		for _, clients := range []int{1, 8} {
			b.Run(fmt.Sprintf("impl=%s/clients=%d", v.name, clients), func(b *testing.B) {
				if v.s.name == "rionet" {
					ensureRing(b)
				}
				defer v.setup()()
				benchUDPEcho(b, v.s, clients, 64)
			})
		}
	}
}

func benchUDPEcho(b *testing.B, s stack, clients, size int) {
	pc, err := s.listenPacket(b.Context(), opts{}, "udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := pc.(udpConn)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			srv.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	defer srv.Close()
	conns := make([]net.Conn, clients)
	for i := range conns {
		c, err := s.dial(b.Context(), opts{}, "udp4", srv.LocalAddr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	msg := make([]byte, size)
	b.SetBytes(int64(size))
	b.ResetTimer()
	defer reportUsage(b)()
	var wg sync.WaitGroup
	per := b.N / clients
	for i, c := range conns {
		n := per
		if i == 0 {
			n += b.N % clients
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2048)
			for range n {
				if _, err := c.Write(msg); err != nil {
					b.Error(err)
					return
				}
				if _, err := c.Read(buf); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkServeFile serves a 64 MiB file with http.ServeFile from a
// listener of each stack to a client of package net, which reads it into
// io.Discard: one request per iteration, on a kept-alive connection.
func BenchmarkServeFile(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "f")
	data := make([]byte, 64<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name string
		s    stack
	}{{"net", stdStack}, {"rionet", rioStack}} {
		b.Run("impl="+v.name, func(b *testing.B) {
			if v.s.name == "rionet" {
				ensureRing(b)
			}
			ln, err := v.s.listen(b.Context(), opts{}, "tcp4", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.ServeFile(w, r, path)
			})}
			go srv.Serve(ln)
			defer srv.Close()
			tr := &http.Transport{DisableCompression: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			url := "http://" + ln.Addr().String() + "/f"
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			defer reportUsage(b)()
			for range b.N {
				resp, err := client.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || n != int64(len(data)) {
					b.Fatalf("got %d bytes, %v", n, err)
				}
			}
		})
	}
}

// reportUsage reports, when the returned function is called, the
// process's CPU time (user and system, all threads) and context switches
// per operation since reportUsage was called. Client and server run in the
// one process, so these are the costs of both.
func reportUsage(b *testing.B) func() {
	var r0 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &r0)
	return func() {
		var r1 unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &r1)
		cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
		sw := (r1.Nvcsw + r1.Nivcsw) - (r0.Nvcsw + r0.Nivcsw)
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(sw)/float64(b.N), "ctxsw/op")
	}
}

// BenchmarkTCPEcho is BenchmarkUDPEcho over TCP with one client: the
// reference for what a ping-pong in one process costs on each stack.
func BenchmarkTCPEcho(b *testing.B) {
	for _, s := range []stack{stdStack, rioStack} {
		b.Run("impl="+s.name, func(b *testing.B) {
			if s.name == "rionet" {
				ensureRing(b)
			}
			ln, err := s.listen(b.Context(), opts{}, "tcp4", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				buf := make([]byte, 2048)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					c.Write(buf[:n])
				}
			}()
			c, err := s.dial(b.Context(), opts{}, "tcp4", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg, buf := make([]byte, 64), make([]byte, 64)
			b.SetBytes(64)
			b.ResetTimer()
			defer reportUsage(b)()
			for range b.N {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
