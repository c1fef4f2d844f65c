// Command net compares package rionet with package net side by side:
// echo throughput at 256 connections (64 B and 4 KiB messages), echo latency
// at one connection with client and server pinned to one CPU, net/http
// under wrk, and the RSS of a server holding 10,000 idle connections.
//
// Each server runs in a process of its own, and the same client process
// drives both. Runs alternate between the two implementations and repeat;
// the table shows medians. Everything is on loopback.
//
//	go run ./bench/net                  # everything, prints a table
//	go run ./bench/net -write docs/benchmarks.md   # and rewrites the net/ results table
//	go run ./bench/net -only echo256-64 -runs 5 -dur 5s
//
// The subcommands (echo-server, http-server, echo-client, idle-client) are
// what the orchestrator starts; they can be run by hand too.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	rionet "github.com/gorio/rio/net"
)

func main() {
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		cmd, args := os.Args[1], os.Args[2:]
		switch cmd {
		case "echo-server":
			echoServer(args)
		case "http-server":
			httpServer(args)
		case "echo-client":
			echoClient(args)
		case "idle-client":
			idleClient(args)
		default:
			fmt.Fprintln(os.Stderr, "unknown subcommand", cmd)
			os.Exit(2)
		}
		return
	}
	orchestrate(os.Args[1:])
}

// listen listens with the implementation named impl ("std" or "rio").
func listen(impl, addr string) net.Listener {
	var (
		ln  net.Listener
		err error
	)
	if impl == "rio" {
		lc := rionet.ListenConfig{NoFallback: true}
		ln, err = lc.Listen(context.Background(), "tcp", addr)
	} else {
		ln, err = net.Listen("tcp", addr)
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
	}
	ln.Close()
	os.Exit(0)
}

// echoClient runs conns connections, each sending a message and reading the
// echo back in a loop, for dur; it prints the requests per second as JSON.
func echoClient(args []string) {
	fs := flag.NewFlagSet("echo-client", flag.ExitOnError)
	addr := fs.String("addr", "", "server address")
	conns := fs.Int("conns", 256, "connections")
	size := fs.Int("size", 64, "message size")
	dur := fs.Duration("dur", 3*time.Second, "measured duration")
	warm := fs.Duration("warmup", 500*time.Millisecond, "unmeasured warm-up")
	fs.Parse(args)

	var count, total atomic.Int64
	var measuring atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range *conns {
		c, err := net.Dial("tcp", *addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			msg := bytes.Repeat([]byte("x"), *size)
			got := make([]byte, *size)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Write(msg); err != nil {
					return
				}
				if _, err := io.ReadFull(c, got); err != nil {
					return
				}
				total.Add(1)
				if measuring.Load() {
					count.Add(1)
				}
			}
		}()
	}
	time.Sleep(*warm)
	measuring.Store(true)
	start := time.Now()
	time.Sleep(*dur)
	n := count.Load()
	el := time.Since(start)
	close(stop)
	wg.Wait()
	json.NewEncoder(os.Stdout).Encode(map[string]float64{"rps": float64(n) / el.Seconds(), "total": float64(total.Load())})
}

// idleClient opens conns connections and keeps them open until stdin
// closes; it prints "ready" once all are connected.
func idleClient(args []string) {
	fs := flag.NewFlagSet("idle-client", flag.ExitOnError)
	addr := fs.String("addr", "", "server address")
	conns := fs.Int("conns", 10000, "connections")
	fs.Parse(args)
	cs := make([]net.Conn, 0, *conns)
	for range *conns {
		c, err := net.Dial("tcp", *addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cs = append(cs, c)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range cs {
		c.Close()
	}
}

// ---- orchestration ----

type scenario struct {
	name   string
	desc   string
	target float64 // rio/std ratio to reach (for RSS: std/rio must exceed 1)
	run    func(impl string) (float64, error)
	unit   string
	lower  bool // lower is better (RSS)
}

var (
	self   string
	dur    time.Duration
	cpuSet = "0"
)

func orchestrate(args []string) {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	runs := fs.Int("runs", 3, "alternating runs per implementation")
	only := fs.String("only", "", "comma-separated scenario names to run")
	write := fs.String("write", "", "markdown file whose results section to rewrite")
	fs.DurationVar(&dur, "dur", 3*time.Second, "measured duration of each run")
	fs.Parse(args)
	var err error
	if self, err = os.Executable(); err != nil {
		fatal(err)
	}
	scenarios := []scenario{
		{name: "echo256-64", desc: "echo, 256 conns, 64 B", target: 1.3, unit: "req/s",
			run: func(impl string) (float64, error) { return runEcho(impl, 256, 64, false) }},
		{name: "echo256-4k", desc: "echo, 256 conns, 4 KiB", target: 1.3, unit: "req/s",
			run: func(impl string) (float64, error) { return runEcho(impl, 256, 4096, false) }},
		{name: "echo16-64", desc: "echo, 16 conns, 64 B", unit: "req/s",
			run: func(impl string) (float64, error) { return runEcho(impl, 16, 64, false) }},
		{name: "echo1-pinned", desc: "echo, 1 conn, 64 B, both on CPU " + cpuSet, target: 0.95, unit: "req/s",
			run: func(impl string) (float64, error) { return runEcho(impl, 1, 64, true) }},
		{name: "http", desc: "net/http hello, wrk -t2 -c64", target: 1.2, unit: "req/s", run: runHTTP},
		{name: "idle10k", desc: "server RSS, 10,000 idle conns", target: 1, unit: "MiB", lower: true, run: runIdle},
	}
	type row struct {
		s        scenario
		std, rio float64
	}
	var rows []row
	for _, s := range scenarios {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), s.name) {
			continue
		}
		var stds, rios []float64
		for i := 0; i < *runs; i++ {
			for _, impl := range []string{"std", "rio"} {
				v, err := s.run(impl)
				if err != nil {
					fatal(fmt.Errorf("%s %s: %w", s.name, impl, err))
				}
				fmt.Fprintf(os.Stderr, "%-13s %-4s run %d: %.1f %s\n", s.name, impl, i+1, v, s.unit)
				if impl == "std" {
					stds = append(stds, v)
				} else {
					rios = append(rios, v)
				}
			}
		}
		rows = append(rows, row{s, median(stds), median(rios)})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario | std | rionet | rionet/std | target |\n|---|---:|---:|---:|---|\n")
	for _, r := range rows {
		ratio := r.rio / r.std
		tgt := fmt.Sprintf("≥ %.2f×", r.s.target)
		met := ratio >= r.s.target
		if r.s.lower {
			tgt = "rionet < std"
			met = r.rio < r.std
		} else if r.s.target == 0 {
			tgt = "—"
		}
		mark := ""
		if r.s.target != 0 || r.s.lower {
			mark = " (missed)"
			if met {
				mark = " (met)"
			}
		}
		fmt.Fprintf(&b, "| %s | %.0f %s | %.0f %s | %.2f× | %s%s |\n", r.s.desc, r.std, r.s.unit, r.rio, r.s.unit, ratio, tgt, mark)
	}
	procs := os.Getenv("GOMAXPROCS")
	if procs == "" {
		procs = strconv.Itoa(runtime.NumCPU())
	}
	fmt.Fprintf(&b, "\nMedians of %d alternating runs of %v each; %s; %d CPUs, GOMAXPROCS %s; %s.\n",
		*runs, dur, kernel(), runtime.NumCPU(), procs, time.Now().UTC().Format("2006-01-02"))
	fmt.Print(b.String())
	if *write != "" {
		if err := rewriteSection(*write, b.String()); err != nil {
			fatal(err)
		}
	}
}

func kernel() string {
	var u syscall.Utsname
	syscall.Uname(&u)
	var s []byte
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return "Linux " + string(s)
}

const beginMark, endMark = "<!-- bench:begin -->", "<!-- bench:end -->"

// rewriteSection replaces the text between the bench markers of file.
func rewriteSection(file, text string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %s ... %s section", file, beginMark, endMark)
	}
	s = s[:i+len(beginMark)] + "\n" + text + s[j:]
	return os.WriteFile(file, []byte(s), 0o644)
}

func median(v []float64) float64 {
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	return v[len(v)/2]
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// startServer starts a server subcommand, pinned to cpuSet if pinned,
// and returns it with the address it listens on.
func startServer(kind, impl string, pinned bool) (*exec.Cmd, string, error) {
	argv := []string{self, kind, "-impl", impl}
	if pinned {
		argv = append([]string{"taskset", "-c", cpuSet}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stopServer(cmd)
		return nil, "", fmt.Errorf("server did not start: %v", err)
	}
	return cmd, strings.TrimSpace(strings.TrimPrefix(line, "listening ")), nil
}

func stopServer(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func runEcho(impl string, conns, size int, pinned bool) (float64, error) {
	srv, addr, err := startServer("echo-server", impl, pinned)
	if err != nil {
		return 0, err
	}
	defer stopServer(srv)
	argv := []string{self, "echo-client", "-addr", addr, "-conns", strconv.Itoa(conns), "-size", strconv.Itoa(size), "-dur", dur.String()}
	if pinned {
		argv = append([]string{"taskset", "-c", cpuSet}, argv...)
	}
	cpu0 := cpuTime(srv.Process.Pid)
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	cpu := cpuTime(srv.Process.Pid) - cpu0
	var res map[string]float64
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, err
	}
	fmt.Fprintf(os.Stderr, "    server CPU %.2f µs/req\n", float64(cpu.Microseconds())/res["total"])
	return res["rps"], nil
}

var wrkRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

func runHTTP(impl string) (float64, error) {
	srv, addr, err := startServer("http-server", impl, false)
	if err != nil {
		return 0, err
	}
	defer stopServer(srv)
	secs := max(int(dur/time.Second), 1)
	out, err := exec.Command("wrk", "-t2", "-c64", fmt.Sprintf("-d%ds", secs), "http://"+addr+"/").Output()
	if err != nil {
		return 0, fmt.Errorf("wrk: %w", err)
	}
	m := wrkRPS.FindSubmatch(out)
	if m == nil {
		return 0, errors.New("wrk: no Requests/sec in output")
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

func runIdle(impl string) (float64, error) {
	srv, addr, err := startServer("echo-server", impl, false)
	if err != nil {
		return 0, err
	}
	defer stopServer(srv)
	cli := exec.Command(self, "idle-client", "-addr", addr, "-conns", "10000")
	stdin, _ := cli.StdinPipe()
	out, _ := cli.StdoutPipe()
	cli.Stderr = os.Stderr
	if err := cli.Start(); err != nil {
		return 0, err
	}
	defer func() { stdin.Close(); cli.Wait() }()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		return 0, fmt.Errorf("idle client: %q %v", line, err)
	}
	time.Sleep(time.Second) // let the server accept and park every conn
	srv.Process.Signal(syscall.SIGUSR1)
	time.Sleep(100 * time.Millisecond)
	return rssMiB(srv.Process.Pid)
}

// cpuTime returns the user and system CPU time process pid has used.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100
}

func rssMiB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			return kb / 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}
