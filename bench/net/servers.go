package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gorio/rio/internal/pin"
	rionet "github.com/gorio/rio/net"
)

// The Go servers: the same program for package net and rionet apart from
// the Listen call.

// listen listens with the implementation named impl ("std" or "rio").
func listen(impl, addr string) net.Listener {
	var (
		ln  net.Listener
		err error
	)
	switch impl {
	case "rio":
		lc := rionet.ListenConfig{NoFallback: true}
		ln, err = lc.Listen(context.Background(), "tcp", addr)
	case "std":
		ln, err = net.Listen("tcp", addr)
	default:
		err = fmt.Errorf("unknown -impl %q", impl)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening", ln.Addr()) // the orchestrator waits for this line
	return ln
}

func serverFlags(name string, args []string) (impl, addr string) {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	fs.StringVar(&impl, "impl", "std", "std or rio")
	fs.StringVar(&addr, "addr", "127.0.0.1:0", "listen address")
	fs.Parse(args)
	return
}

func echoServer(args []string) {
	impl, addr := serverFlags("echo-server", args)
	if os.Getenv("BENCHNET_HEAPPROFILE") != "" {
		runtime.MemProfileRate = 1 // every allocation, for a heap profile of idle connections
	}
	ln := listen(impl, addr)
	go exitOnSignal(ln)
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
	}
}

func httpServer(args []string) {
	impl, addr := serverFlags("http-server", args)
	ln := listen(impl, addr)
	go exitOnSignal(ln)
	hello := []byte("Hello, World!\n")
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(hello)
	}))
}

// exitOnSignal exits on SIGTERM or SIGINT, and prints the runtime's memory
// statistics on SIGUSR1.
func exitOnSignal(ln net.Listener) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	for s := range ch {
		if s != syscall.SIGUSR1 {
			break
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Fprintf(os.Stderr, "    heap in use %.1f MiB, stacks %.1f MiB, sys %.1f MiB, goroutines %d\n",
			float64(ms.HeapInuse)/(1<<20), float64(ms.StackInuse)/(1<<20), float64(ms.Sys)/(1<<20), runtime.NumGoroutine())
		if p := os.Getenv("BENCHNET_HEAPPROFILE"); p != "" {
			writeHeapProfile(p)
		}
	}
	ln.Close()
	os.Exit(0)
}

// The C reference servers (single-threaded, from the shared reference
// directory), built at run time into a temporary directory.

// cServers maps an implementation name to its source file.
var cServers = map[string]string{
	"c-epoll": "epoll_echo.c",
	"c-uring": "uring_echo.c",
}

// buildC compiles the C reference servers found in dir into a temporary
// directory. It returns the binaries it built by implementation name, and
// for each one it could not build, why.
func buildC(dir string) (bins map[string]string, tmp string, why map[string]string) {
	bins, why = map[string]string{}, map[string]string{}
	tmp, err := os.MkdirTemp("", "rio-bench-net-")
	if err != nil {
		for impl := range cServers {
			why[impl] = err.Error()
		}
		return bins, "", why
	}
	for impl, src := range cServers {
		path := filepath.Join(dir, src)
		if _, err := os.Stat(path); err != nil {
			why[impl] = fmt.Sprintf("%s not found (set -ref to the directory of the C reference servers)", path)
			continue
		}
		bin := filepath.Join(tmp, strings.TrimSuffix(src, ".c"))
		out, err := exec.Command("gcc", "-O2", "-o", bin, path, "-luring").CombinedOutput()
		if err != nil {
			why[impl] = fmt.Sprintf("gcc %s: %v: %s (needs gcc and liburing-dev)", src, err, strings.TrimSpace(string(out)))
			continue
		}
		bins[impl] = bin
	}
	return bins, tmp, why
}

// extServers are the servers given with -x, by name: command lines of
// echo servers that print "listening ADDR" as the Go ones do.
var extServers = map[string][]string{}

// server is a running server process.
type server struct {
	cmd  *exec.Cmd
	addr string
	pid  int
}

// startServer starts a server of kind "echo" or "http" for impl, its
// threads allowed only on cpus (none: anywhere).
func startServer(kind string, impl implSpec, cpus []int) (*server, error) {
	if bin, ok := cBins[impl.base]; ok {
		if kind != "echo" {
			return nil, fmt.Errorf("%s has no %s server", impl.base, kind)
		}
		return startC(bin, impl, cpus)
	}
	argv := []string{self, kind + "-server", "-impl", impl.base}
	if x := extServers[impl.base]; x != nil {
		if kind != "echo" {
			return nil, fmt.Errorf("%s has no %s server", impl.base, kind)
		}
		argv = x
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), impl.env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := pin.Start(cmd, cpus); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, pid: cmd.Process.Pid}
	// The first line that says "listening ADDR" (or "listening on ADDR",
	// as the examples do) gives the address; lines before it (a library's
	// banner) are passed over.
	rd := bufio.NewReader(out)
	for {
		line, err := rd.ReadString('\n')
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "listening" {
			s.addr = f[len(f)-1]
			break
		}
		if err != nil {
			s.stop()
			return nil, fmt.Errorf("server did not start: no \"listening ADDR\" line (%v)", err)
		}
	}
	go io.Copy(io.Discard, rd)
	return s, nil
}

// startC starts a C reference server on a free port of 127.0.0.1 and
// waits until it accepts connections.
func startC(bin string, impl implSpec, cpus []int) (*server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "-p", strconv.Itoa(port))
	cmd.Env = append(os.Environ(), impl.env...)
	if verbose {
		cmd.Stderr = os.Stderr
	}
	if err := pin.Start(cmd, cpus); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, pid: cmd.Process.Pid, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.Dial("tcp", s.addr)
		if err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s did not start: %w", bin, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

var errSkip = errors.New("not applicable")

// writeHeapProfile writes the heap profile to path (BENCHNET_HEAPPROFILE,
// read on SIGUSR1): what each idle connection's objects cost.
func writeHeapProfile(path string) {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
