// Command loop compares rionet's event loops (LoopServer) with gnet v2 and
// with the single-threaded C io_uring echo server of
// /work/shared/reference/uring_echo.c, side by side: 64-byte echo at 16
// and 256 connections, and the RSS of a server holding 10,000 idle
// connections.
//
// Every server runs in a process of its own and is driven by the same
// client, bench/loop/c/client.c (C, epoll: its own cost is small and the same
// for every server). Rounds alternate between the servers; the table
// shows medians and the range. For each run it reports requests per
// second and the client's p50/p99 latency, and, from /proc, the server's
// CPU time (utime+stime, every thread) and context switches (voluntary
// and involuntary, every thread) per request over the measured window.
//
//	go run ./bench/loop                      # echo16, echo256, idle; 5 rounds of 3 s
//	go run ./bench/loop -rounds 3 -dur 2s -only echo256
//	go run ./bench/loop -servers loop,gnet -only idle
//	go run ./bench/loop -rounds 3 -servers loop,loop2,gnet -only churn
//
// The churn scenario has 4 client threads connect, echo 64 B and reset,
// over and over (req/s there is connections per second).
//
// It needs gcc and liburing-dev (for the C server and the client) and
// builds bench/gnet, a module of its own, with go build. The loop-server
// subcommand is the rionet server it starts; it can be run by hand too.
// With -addr HOST:0 it picks a port and prints "listening ADDR" once it
// accepts, as bench/gnet's server does, so that bench/net runs both as
// extra servers (-x) with its own client and JSON output; see docs/loop.md.
// It prints Markdown tables, not JSON.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	rionet "github.com/gorio/rio/net"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "loop-server" {
		loopServer(os.Args[2:])
		return
	}
	orchestrate(os.Args[1:])
}

// loopServer is the rionet echo server: examples/loopecho's handler.
func loopServer(args []string) {
	fs := flag.NewFlagSet("loop-server", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	loops := fs.Int("loops", 0, "event loops (0: the LoopServer default)")
	reuse := fs.Bool("reuseport", false, "one SO_REUSEPORT listener per loop")
	fs.Parse(args)
	srv := &rionet.LoopServer{
		Loops:     *loops,
		ReusePort: *reuse,
		OnData: func(c *rionet.LoopConn, data []byte) int {
			c.Write(data)
			return len(data)
		},
	}
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
		<-ch
		srv.Close()
	}()
	a := *addr
	if host, port, err := net.SplitHostPort(a); err == nil && port == "0" {
		// Pick the port here so that it can be printed (bench/net's -x
		// reads it from the "listening" line).
		l, err := net.Listen("tcp", a)
		check(err)
		a = net.JoinHostPort(host, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
		l.Close()
	}
	go func() {
		// Say so once the server accepts.
		for {
			if c, err := net.Dial("tcp", a); err == nil {
				c.Close()
				fmt.Println("listening", a)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	if err := srv.ListenAndServe("tcp", a); err != rionet.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type server struct {
	name string
	cmd  func(port int) []string
	env  []string
}

type result struct {
	rps, p50, p99, cpu, cs float64
}

func orchestrate(args []string) {
	fs := flag.NewFlagSet("loop", flag.ExitOnError)
	rounds := fs.Int("rounds", 5, "rounds (each runs every server once)")
	dur := fs.Duration("dur", 3*time.Second, "measured duration of a run")
	warm := fs.Duration("warmup", 500*time.Millisecond, "warm-up before measuring")
	only := fs.String("only", "echo16,echo256,idle", "scenarios: echo16, echo256, idle, churn")
	servers := fs.String("servers", "loop,gnet,c", "servers: loop, loopN (N loops), loop[N]-block and loop[N]-spinK (RIONET_LOOP_WAIT=block, spinK), loop[N]-reuseport, gnet, gnet-reuseport, c")
	cref := fs.String("c", "/work/shared/reference/uring_echo.c", "the C io_uring echo server's source")
	idleN := fs.Int("idle-conns", 10000, "connections of the idle scenario")
	pinFlag := fs.Bool("pin", false, "pin the server to CPU 0 and the client to CPU 1 (taskset)")
	fs.Parse(args)
	pin = *pinFlag

	dir, err := os.MkdirTemp("", "bench-loop-")
	check(err)
	defer os.RemoveAll(dir)
	src := sourceDir()
	self, err := os.Executable()
	check(err)
	client := filepath.Join(dir, "client")
	run("gcc", "-O2", "-pthread", "-o", client, filepath.Join(src, "c", "client.c"))
	all := map[string]server{}
	// Variants of the loop server: loop[N][-block|-spinK][@VAR=value] runs
	// N loops (default: LoopServer's) waiting as RIONET_LOOP_WAIT says,
	// with VAR=value in its environment (such as GOMAXPROCS=3).
	for _, w := range strings.Split(*servers, ",") {
		rest, ok := strings.CutPrefix(w, "loop")
		if !ok || all[w].cmd != nil {
			continue
		}
		rest, extra, _ := strings.Cut(rest, "@") // @VAR=value: an environment variable
		loops, wait, _ := strings.Cut(rest, "-")
		var flags []string
		if wait == "reuseport" {
			wait, flags = "", []string{"-reuseport"}
		}
		if _, err := strconv.Atoi(loops); loops != "" && err != nil {
			continue
		}
		if loops == "" {
			loops = "0"
		}
		all[w] = server{name: w, cmd: func(p int) []string {
			return append([]string{self, "loop-server", "-loops", loops, "-addr", addrOf(p)}, flags...)
		},
			env: []string{"RIONET_LOOP_WAIT=" + wait, extra}}
	}
	want := strings.Split(*servers, ",")
	if slices.Contains(want, "gnet") || slices.Contains(want, "gnet-reuseport") {
		gbin := filepath.Join(dir, "gnet-echo")
		cmd := exec.Command("go", "build", "-o", gbin, ".")
		cmd.Dir = filepath.Join(src, "..", "gnet")
		cmd.Stderr = os.Stderr
		check(cmd.Run())
		all["gnet"] = server{name: "gnet", cmd: func(p int) []string { return []string{gbin, "-addr", addrOf(p)} }}
		all["gnet-reuseport"] = server{name: "gnet-reuseport", cmd: func(p int) []string { return []string{gbin, "-reuseport", "-addr", addrOf(p)} }}
	}
	if slices.Contains(want, "c") {
		cbin := filepath.Join(dir, "uring_echo")
		run("gcc", "-O2", "-o", cbin, *cref, "-luring")
		all["c"] = server{name: "c uring", cmd: func(p int) []string { return []string{cbin, "-p", strconv.Itoa(p)} }}
	}
	var list []server
	for _, w := range want {
		s, ok := all[w]
		if !ok {
			fmt.Fprintln(os.Stderr, "unknown server", w)
			os.Exit(2)
		}
		list = append(list, s)
	}

	fmt.Printf("bench/loop: %d rounds, %v measured after %v warm-up, GOMAXPROCS %d, %d CPUs, pinned %v\n", *rounds, *dur, *warm, runtime.GOMAXPROCS(0), runtime.NumCPU(), pin)
	for _, sc := range strings.Split(*only, ",") {
		switch sc {
		case "echo16", "echo256", "churn":
			conns, _ := strconv.Atoi(strings.TrimPrefix(sc, "echo"))
			res := map[string][]result{}
			for r := 0; r < *rounds; r++ {
				for _, s := range list {
					x := echoRun(s, client, conns, *dur, *warm, sc == "churn")
					res[s.name] = append(res[s.name], x)
					fmt.Fprintf(os.Stderr, "  %s %-16s round %d: %8.0f req/s p50 %6.1f µs p99 %7.1f µs %5.2f µs CPU/req %.3f cs/req\n",
						sc, s.name, r+1, x.rps, x.p50, x.p99, x.cpu, x.cs)
				}
			}
			printEcho(sc, conns, list, res)
		case "idle":
			res := map[string][]float64{}
			for r := 0; r < *rounds; r++ {
				for _, s := range list {
					rss := idleRun(s, client, *idleN)
					res[s.name] = append(res[s.name], rss)
					fmt.Fprintf(os.Stderr, "  idle %-16s round %d: %.1f MiB\n", s.name, r+1, rss)
				}
			}
			fmt.Printf("\nidle: RSS of the server with %d idle connections (MiB), median [min-max]\n\n", *idleN)
			fmt.Println("| server | RSS |")
			fmt.Println("| --- | ---: |")
			for _, s := range list {
				v := res[s.name]
				fmt.Printf("| %s | %.1f [%.1f-%.1f] |\n", s.name, median(v), slices.Min(v), slices.Max(v))
			}
		default:
			fmt.Fprintln(os.Stderr, "unknown scenario", sc)
			os.Exit(2)
		}
	}
}

func printEcho(sc string, conns int, list []server, res map[string][]result) {
	if sc == "churn" {
		fmt.Printf("\nchurn: 4 client threads each connecting, echoing 64 B and closing (reset), over and over; req/s is connections/s; median [min-max] over rounds\n\n")
	} else {
		fmt.Printf("\n%s: %d connections, 64 B echo; median [min-max] over rounds\n\n", sc, conns)
	}
	fmt.Println("| server | req/s | p50 µs | p99 µs | server CPU µs/req | ctx switches/req |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: |")
	col := func(v []result, f func(result) float64, prec int) string {
		xs := make([]float64, len(v))
		for i, r := range v {
			xs[i] = f(r)
		}
		return fmt.Sprintf("%.*f [%.*f-%.*f]", prec, median(xs), prec, slices.Min(xs), prec, slices.Max(xs))
	}
	for _, s := range list {
		v := res[s.name]
		fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", s.name,
			col(v, func(r result) float64 { return r.rps }, 0),
			col(v, func(r result) float64 { return r.p50 }, 0),
			col(v, func(r result) float64 { return r.p99 }, 0),
			col(v, func(r result) float64 { return r.cpu }, 2),
			col(v, func(r result) float64 { return r.cs }, 3))
	}
	// Ratios of the first server to each other one, round by round (the
	// rounds alternate, so a ratio compares runs a few seconds apart),
	// then their median and range: steadier than the ratio of medians on
	// a machine shared with other work.
	base := list[0].name
	fmt.Println()
	for _, s := range list[1:] {
		var rr, cr, pr []float64
		for i, b := range res[base] {
			if i < len(res[s.name]) {
				o := res[s.name][i]
				rr = append(rr, b.rps/o.rps)
				cr = append(cr, b.cpu/o.cpu)
				pr = append(pr, b.p99/o.p99)
			}
		}
		rng := func(v []float64) string {
			return fmt.Sprintf("%.2f× [%.2f-%.2f]", median(v), slices.Min(v), slices.Max(v))
		}
		fmt.Printf("%s / %s, per round: req/s %s, CPU/req %s, p99 %s\n", base, s.name, rng(rr), rng(cr), rng(pr))
	}
}

// echoRun starts s, drives it with the client, and reads the server's CPU
// time and context switches at the start and the end of the measured
// window.
func echoRun(s server, client string, conns int, dur, warm time.Duration, churn bool) result {
	port := freePort()
	srv := start(s.cmd(port), s.env)
	defer stop(srv)
	waitPort(port)
	argv := pinned("1", client, "-p", strconv.Itoa(port), "-c", strconv.Itoa(conns), "-s", "64",
		"-d", fmt.Sprint(dur.Seconds()), "-w", fmt.Sprint(warm.Seconds()))
	if churn {
		argv = append(argv, "-n", "-t", "4")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	out, err := cmd.StdoutPipe()
	check(err)
	cmd.Stderr = os.Stderr
	check(cmd.Start())
	sc := bufio.NewScanner(out)
	var cpu0, cs0 float64
	var line string
	for sc.Scan() {
		line = sc.Text()
		if line == "measuring" {
			cpu0, cs0 = procStats(srv.Process.Pid)
		}
		if strings.HasPrefix(line, "{") {
			break
		}
	}
	cpu1, cs1 := procStats(srv.Process.Pid)
	check(cmd.Wait())
	var r struct {
		RPS, P50, P99, Total float64
	}
	var m map[string]float64
	check(json.Unmarshal([]byte(line), &m))
	r.RPS, r.P50, r.P99, r.Total = m["rps"], m["p50_us"], m["p99_us"], m["total"]
	return result{rps: r.RPS, p50: r.P50, p99: r.P99, cpu: (cpu1 - cpu0) * 1e6 / r.Total, cs: (cs1 - cs0) / r.Total}
}

// idleRun starts s, opens n idle connections and returns the server's
// VmRSS in MiB once they are all accepted and the server has settled.
func idleRun(s server, client string, n int) float64 {
	port := freePort()
	srv := start(s.cmd(port), s.env)
	defer stop(srv)
	waitPort(port)
	cmd := exec.Command(client, "-p", strconv.Itoa(port), "-c", strconv.Itoa(n), "-i")
	out, err := cmd.StdoutPipe()
	check(err)
	cmd.Stderr = os.Stderr
	check(cmd.Start())
	sc := bufio.NewScanner(out)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "idle") {
	}
	// Let the server accept the backlog and settle.
	var rss float64
	for i := 0; i < 20; i++ {
		time.Sleep(100 * time.Millisecond)
		rss = vmRSS(srv.Process.Pid)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	return rss
}

func procStats(pid int) (cpuSec, switches float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	check(err)
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	cpuSec = (ut + st) / clockTicks
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "voluntary_ctxt_switches:") || strings.HasPrefix(l, "nonvoluntary_ctxt_switches:") {
				v, _ := strconv.ParseFloat(strings.TrimSpace(l[strings.IndexByte(l, ':')+1:]), 64)
				switches += v
			}
		}
	}
	return
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100

func vmRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	check(err)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// pin says to run servers on CPU 0 and the client on CPU 1.
var pin bool

// pinned prefixes argv with taskset for cpu when pinning.
func pinned(cpu string, argv ...string) []string {
	if !pin {
		return argv
	}
	return append([]string{"taskset", "-c", cpu}, argv...)
}

func start(argv, env []string) *exec.Cmd {
	argv = pinned("0", argv...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = nil
	check(cmd.Start())
	return cmd
}

func stop(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func waitPort(port int) {
	for i := 0; i < 100; i++ {
		c, err := net.Dial("tcp", addrOf(port))
		if err == nil {
			c.Close()
			time.Sleep(50 * time.Millisecond)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "server did not listen on", port)
	os.Exit(1)
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func addrOf(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// sourceDir is the directory of this command's sources (for client.c and
// ../gnet), found from the working directory: the module root or
// bench/loop.
func sourceDir() string {
	for _, d := range []string{"bench/loop", "."} {
		if _, err := os.Stat(filepath.Join(d, "c", "client.c")); err == nil {
			abs, _ := filepath.Abs(d)
			return abs
		}
	}
	fmt.Fprintln(os.Stderr, "run from the module root or bench/loop (client.c not found)")
	os.Exit(2)
	return ""
}

func run(argv ...string) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	check(cmd.Run())
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
