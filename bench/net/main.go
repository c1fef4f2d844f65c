// Command net compares package rionet with package net, and with two
// single-threaded C servers (epoll, and io_uring as its authors recommend
// it), side by side on loopback: echo at 256, 16 and 1 connections, with
// 64 B and 4 KiB messages, unpinned and pinned; net/http under wrk; and the
// RSS of a server holding 10,000 idle connections.
//
// Each server runs in a process of its own, and the same client program
// drives all of them. Runs alternate between the implementations (the
// order rotates from run to run) and repeat; the table shows medians, and
// for rionet and the C servers the median of their per-run ratios to
// package net.
//
//	go run ./bench/net                      # everything, 3 runs of 3 s
//	go run ./bench/net -runs 5 -dur 3s -write docs/benchmarks.md
//	go run ./bench/net -only echo256-64,echo1-pinned -impls std,rio
//	go run ./bench/net -impls std,rio,rio+RIONET_SEND=ring   # a variant
//
// Every row reports requests per second, p50 and p99 latency (from the
// client, per request), the server's CPU time and context switches per
// request, and the client's CPU time per request, all over the measured
// window only: the client samples /proc/PID/stat (utime+stime of every
// thread) and /proc/PID/task/*/status (voluntary and involuntary switches)
// of the server and of itself when the window opens and when it closes.
//
// Output: one JSON object per line on standard output for every run and,
// at the end, one per scenario and implementation with the medians
// ("summary": true); progress and the Markdown table go to standard error,
// and -write puts the table into a file between its bench markers.
//
// The C servers are built with gcc -O2 -luring (liburing-dev) from -ref,
// by default ../shared/reference next to the repository; where they are
// missing, their rows are skipped with a message saying why. The HTTP row
// needs wrk. Pinning uses sched_setaffinity.
//
// The subcommands (echo-server, http-server, echo-client, idle-client) are
// what the orchestrator starts; they can be run by hand too, and
// echo-client prints its result as one JSON line.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gorio/rio/internal/pin"
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

// implSpec names a server implementation: std, rio, c-epoll or c-uring,
// optionally with environment variables for the server process
// ("rio+RIONET_SEND=ring"), which make a variant with its own row.
type implSpec struct {
	label string
	base  string
	env   []string
}

func parseImpl(s string) implSpec {
	parts := strings.Split(s, "+")
	return implSpec{label: s, base: parts[0], env: parts[1:]}
}

// scenario is one row group of the table.
type scenario struct {
	name, desc string
	kind       string // echo, http, idle
	conns      int
	size       int
	srvCPUs    []int
	cliCPUs    []int
	targets    []target
}

// target is one of issue 10's targets: the median over runs of rionet's
// metric divided by package net's, at most (le) or at least max.
type target struct {
	metric string
	le     bool
	bound  float64
}

func (t target) String() string {
	op := "≥"
	if t.le {
		op = "≤"
	}
	return fmt.Sprintf("%s %s %.2f×", metricNames[t.metric], op, t.bound)
}

var metricNames = map[string]string{
	"rps": "req/s", "p50_us": "p50", "p99_us": "p99", "srv_cpu_us_per_req": "server CPU/req",
	"srv_cs_per_req": "switches/req", "cli_cpu_us_per_req": "client CPU/req", "rss_mib": "RSS",
	"min_conn_share": "min conn share",
}

func scenarios() []scenario {
	ge := func(m string, b float64) target { return target{metric: m, bound: b} }
	le := func(m string, b float64) target { return target{metric: m, le: true, bound: b} }
	return []scenario{
		{name: "echo256-64", desc: "echo, 256 conns, 64 B", kind: "echo", conns: 256, size: 64,
			targets: []target{ge("rps", 1.1), le("srv_cpu_us_per_req", 0.8), le("srv_cs_per_req", 1), le("p99_us", 1)}},
		{name: "echo256-4k", desc: "echo, 256 conns, 4 KiB", kind: "echo", conns: 256, size: 4096,
			targets: []target{ge("rps", 1.1)}},
		{name: "echo16-64", desc: "echo, 16 conns, 64 B", kind: "echo", conns: 16, size: 64,
			targets: []target{ge("rps", 1.1)}},
		{name: "echo16-4k", desc: "echo, 16 conns, 4 KiB", kind: "echo", conns: 16, size: 4096,
			targets: []target{ge("rps", 1.1)}},
		{name: "echo1", desc: "echo, 1 conn, 64 B", kind: "echo", conns: 1, size: 64,
			targets: []target{ge("rps", 1.0)}},
		{name: "echo1-pinned", desc: "echo, 1 conn, 64 B, both on CPU 0", kind: "echo", conns: 1, size: 64,
			srvCPUs: []int{0}, cliCPUs: []int{0}, targets: []target{ge("rps", 1.3)}},
		{name: "echo256-split", desc: "echo, 256 conns, 64 B, server CPU 0, client CPU 1", kind: "echo", conns: 256, size: 64,
			srvCPUs: []int{0}, cliCPUs: []int{1}, targets: []target{le("p99_us", 1)}},
		{name: "http", desc: "net/http hello, wrk -t2 -c64", kind: "http", conns: 64,
			targets: []target{ge("rps", 1.1)}},
		{name: "idle10k", desc: "server RSS, 10,000 idle conns", kind: "idle", conns: 10000,
			targets: []target{le("rss_mib", 1)}},
	}
}

var (
	self    string
	dur     time.Duration
	warm    time.Duration
	verbose bool
	cBins   map[string]string
)

// runResult is one run of one implementation in one scenario.
type runResult struct {
	Scenario string             `json:"scenario"`
	Impl     string             `json:"impl"`
	Run      int                `json:"run,omitempty"`
	Summary  bool               `json:"summary,omitempty"`
	Metrics  map[string]float64 `json:"metrics"`
}

func orchestrate(args []string) {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	runs := fs.Int("runs", 3, "alternating runs per implementation")
	only := fs.String("only", "", "comma-separated scenario names to run (default all)")
	impls := fs.String("impls", "std,rio,c-epoll,c-uring", "comma-separated implementations; std must be first for ratios")
	ref := fs.String("ref", "", "directory of the C reference servers (default ../shared/reference next to the repository)")
	write := fs.String("write", "", "markdown file whose bench section to rewrite with the table")
	fs.DurationVar(&dur, "dur", 3*time.Second, "measured duration of each run")
	fs.DurationVar(&warm, "warmup", 500*time.Millisecond, "unmeasured warm-up of each echo run")
	fs.BoolVar(&verbose, "v", false, "show the C servers' output")
	maxOther := fs.Float64("maxother", 0.2, "rerun an echo run (up to 3 times) when other processes used more than this many CPUs during it")
	fs.Func("x", "NAME=COMMAND: an extra echo server implementation NAME, a command line that prints \"listening ADDR\" once it accepts and stops on SIGTERM (repeatable)", func(v string) error {
		name, cmd, ok := strings.Cut(v, "=")
		if !ok || name == "" || strings.TrimSpace(cmd) == "" {
			return fmt.Errorf("want NAME=COMMAND, got %q", v)
		}
		extServers[name] = strings.Fields(cmd)
		return nil
	})
	fs.Parse(args)
	var err error
	if self, err = os.Executable(); err != nil {
		fatal(err)
	}
	var specs []implSpec
	for _, s := range strings.Split(*impls, ",") {
		specs = append(specs, parseImpl(s))
	}
	needC := slices.ContainsFunc(specs, func(s implSpec) bool { return cServers[s.base] != "" })
	if needC {
		dir := *ref
		if dir == "" {
			dir = defaultRef()
		}
		var tmp string
		var why map[string]string
		cBins, tmp, why = buildC(dir)
		if tmp != "" {
			defer os.RemoveAll(tmp)
		}
		specs = slices.DeleteFunc(specs, func(s implSpec) bool {
			if w, ok := why[s.base]; ok {
				fmt.Fprintf(os.Stderr, "skipping %s: %s\n", s.label, w)
				return true
			}
			return false
		})
	}
	enc := json.NewEncoder(os.Stdout)
	type group struct {
		s       scenario
		impls   []implSpec
		results map[string][]map[string]float64
	}
	var groups []group
	for _, s := range scenarios() {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), s.name) {
			continue
		}
		g := group{s: s, results: map[string][]map[string]float64{}}
		for _, im := range specs {
			if s.kind != "echo" && cServers[im.base] != "" || s.kind == "http" && extServers[im.base] != nil {
				continue // the C servers only echo; the extra ones echo or idle
			}
			g.impls = append(g.impls, im)
		}
		for i := 0; i < *runs; i++ {
			for k := range g.impls {
				im := g.impls[(i+k)%len(g.impls)]
				var m map[string]float64
				for try := 0; ; try++ {
					var err error
					if m, err = runOne(s, im); err != nil {
						fatal(fmt.Errorf("%s %s: %w", s.name, im.label, err))
					}
					if o := m["other_cpus"]; o <= *maxOther || try == 2 {
						break
					}
					fmt.Fprintf(os.Stderr, "%-13s %-10s run %d: disturbed (other processes used %.2f CPUs), again\n", s.name, im.label, i+1, m["other_cpus"])
				}
				fmt.Fprintf(os.Stderr, "%-13s %-10s run %d: %s\n", s.name, im.label, i+1, brief(s, m))
				g.results[im.label] = append(g.results[im.label], m)
				enc.Encode(runResult{Scenario: s.name, Impl: im.label, Run: i + 1, Metrics: m})
			}
		}
		groups = append(groups, g)
	}

	var b strings.Builder
	var tgt strings.Builder
	fmt.Fprintf(&b, "| scenario | server | req/s | ×net | p50 | p99 | server CPU/req | ×net | switches/req | client CPU/req |\n")
	fmt.Fprintf(&b, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(&tgt, "| scenario | target | rionet/net | |\n|---|---|---:|---|\n")
	for _, g := range groups {
		base := g.results[specs[0].label]
		for _, im := range g.impls {
			rs := g.results[im.label]
			med := medians(rs)
			enc.Encode(runResult{Scenario: g.s.name, Impl: im.label, Summary: true, Metrics: med})
			if g.s.kind == "idle" {
				fmt.Fprintf(&b, "| %s | %s | | | | | | | | RSS %.1f MiB (%s) |\n", g.s.desc, implName(im), med["rss_mib"], ratioStr(rs, base, "rss_mib"))
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %.2f µs | %s | %.3f | %.2f µs |\n",
				g.s.desc, implName(im), si(med["rps"]), ratioStr(rs, base, "rps"),
				usStr(med["p50_us"]), usStr(med["p99_us"]), med["srv_cpu_us_per_req"],
				ratioStr(rs, base, "srv_cpu_us_per_req"), med["srv_cs_per_req"], med["cli_cpu_us_per_req"])
		}
		if rs, ok := g.results["rio"]; ok && base != nil {
			for _, t := range g.s.targets {
				r := ratio(rs, base, t.metric)
				met := r >= t.bound
				if t.le {
					met = r <= t.bound
				}
				mark := "missed"
				if met {
					mark = "met"
				}
				fmt.Fprintf(&tgt, "| %s | %s | %.2f× | %s |\n", g.s.desc, t, r, mark)
			}
			if g.s.kind == "echo" && g.s.conns > 1 {
				mark := "met"
				if medians(rs)["min_conn_share"] == 0 {
					mark = "missed"
				}
				fmt.Fprintf(&tgt, "| %s | no connection starves (fewest requests of one conn / mean) | %.2f | %s |\n",
					g.s.desc, medians(rs)["min_conn_share"], mark)
			}
		}
	}
	procs := os.Getenv("GOMAXPROCS")
	if procs == "" {
		procs = strconv.Itoa(runtime.NumCPU())
	}
	fmt.Fprintf(&b, "\n%s\nMedians of %d runs of %v each (implementations alternating, order rotating); ×net is the median of the per-run ratios to package net; latencies are the client's, per request; CPU and switches are over the measured window. %s; %d CPUs, GOMAXPROCS %s; %s.\n",
		tgt.String(), *runs, dur, kernel(), runtime.NumCPU(), procs, time.Now().UTC().Format("2006-01-02"))
	fmt.Fprint(os.Stderr, "\n", b.String())
	if *write != "" {
		if err := rewriteSection(*write, b.String()); err != nil {
			fatal(err)
		}
	}
}

func implName(im implSpec) string {
	names := map[string]string{"std": "package net", "rio": "rionet", "c-epoll": "C epoll", "c-uring": "C io_uring"}
	n := names[im.base]
	if n == "" {
		n = im.base
	}
	if len(im.env) > 0 {
		n += " " + strings.Join(im.env, " ")
	}
	return n
}

func brief(s scenario, m map[string]float64) string {
	if s.kind == "idle" {
		return fmt.Sprintf("RSS %.1f MiB", m["rss_mib"])
	}
	return fmt.Sprintf("%8.0f req/s  p50 %s  p99 %s  srv %5.2f µs/req %5.3f cs/req  cli %5.2f µs/req  other %.2f CPUs",
		m["rps"], usStr(m["p50_us"]), usStr(m["p99_us"]), m["srv_cpu_us_per_req"], m["srv_cs_per_req"], m["cli_cpu_us_per_req"], m["other_cpus"])
}

func runOne(s scenario, im implSpec) (map[string]float64, error) {
	switch s.kind {
	case "echo":
		return runEcho(s, im)
	case "http":
		return runHTTP(s, im)
	case "idle":
		return runIdle(s, im)
	}
	return nil, errSkip
}

func runEcho(s scenario, im implSpec) (map[string]float64, error) {
	srv, err := startServer("echo", im, s.srvCPUs)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	cmd := exec.Command(self, "echo-client", "-addr", srv.addr, "-conns", strconv.Itoa(s.conns), "-size", strconv.Itoa(s.size),
		"-dur", dur.String(), "-warmup", warm.String(), "-pid", strconv.Itoa(srv.pid))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := pin.Start(cmd, s.cliCPUs); err != nil {
		return nil, err
	}
	if len(s.srvCPUs) > 0 || len(s.cliCPUs) > 0 {
		if verbose {
			fmt.Fprintf(os.Stderr, "    server on CPUs %s, client on CPUs %s\n", pin.Allowed(srv.pid), pin.Allowed(cmd.Process.Pid))
		}
	}
	var res map[string]float64
	derr := json.NewDecoder(out).Decode(&res)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if derr != nil {
		return nil, fmt.Errorf("client output: %w", derr)
	}
	return res, nil
}

var (
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkRequests = regexp.MustCompile(`([0-9]+) requests in ([0-9.]+)(m?s)`)
	wrkLatency  = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
)

func runHTTP(s scenario, im implSpec) (map[string]float64, error) {
	srv, err := startServer("http", im, s.srvCPUs)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	secs := max(int(dur/time.Second), 1)
	cmd := exec.Command("wrk", "-t2", fmt.Sprintf("-c%d", s.conns), fmt.Sprintf("-d%ds", secs), "--latency", "http://"+srv.addr+"/")
	var outb strings.Builder
	cmd.Stdout = &outb
	s0, err := sampleProc(srv.pid)
	if err != nil {
		return nil, err
	}
	if err := pin.Start(cmd, s.cliCPUs); err != nil {
		return nil, fmt.Errorf("wrk: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("wrk: %w", err)
	}
	s1, err := sampleProc(srv.pid)
	if err != nil {
		return nil, err
	}
	out := outb.String()
	m := map[string]float64{}
	if r := wrkRPS.FindStringSubmatch(out); r != nil {
		m["rps"], _ = strconv.ParseFloat(r[1], 64)
	} else {
		return nil, fmt.Errorf("wrk: no Requests/sec in %q", out)
	}
	var total float64
	if r := wrkRequests.FindStringSubmatch(out); r != nil {
		total, _ = strconv.ParseFloat(r[1], 64)
	}
	if total == 0 {
		return nil, fmt.Errorf("wrk: no request count in %q", out)
	}
	for _, r := range wrkLatency.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(r[2], 64)
		switch r[3] {
		case "ms":
			v *= 1e3
		case "s":
			v *= 1e6
		}
		m["p"+r[1]+"_us"] = v
	}
	d := s1.sub(s0)
	m["srv_cpu_us_per_req"] = float64(d.CPU.Microseconds()) / total
	m["srv_cs_per_req"] = float64(d.Switches) / total
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		m["cli_cpu_us_per_req"] = float64(cpu.Microseconds()) / total
		m["cli_cs_per_req"] = float64(ru.Nvcsw+ru.Nivcsw) / total
	}
	m["requests"] = total
	return m, nil
}

func runIdle(s scenario, im implSpec) (map[string]float64, error) {
	srv, err := startServer("echo", im, s.srvCPUs)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	cli := exec.Command(self, "idle-client", "-addr", srv.addr, "-conns", strconv.Itoa(s.conns))
	stdin, _ := cli.StdinPipe()
	out, _ := cli.StdoutPipe()
	cli.Stderr = os.Stderr
	if err := cli.Start(); err != nil {
		return nil, err
	}
	defer func() { stdin.Close(); cli.Wait() }()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		return nil, fmt.Errorf("idle client: %q %v", line, err)
	}
	time.Sleep(time.Second) // let the server accept and park every conn
	srv.cmd.Process.Signal(syscall.SIGUSR1)
	time.Sleep(100 * time.Millisecond)
	rss, err := rssMiB(srv.pid)
	if err != nil {
		return nil, err
	}
	return map[string]float64{"rss_mib": rss}, nil
}

// defaultRef is ../shared/reference next to the repository: the module
// root is found from the working directory upwards. In a linked git
// worktree, the directory next to the main checkout counts too.
func defaultRef() string {
	dir, err := os.Getwd()
	if err != nil {
		return "../shared/reference"
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/gorio/rio\n") {
			ref := filepath.Join(filepath.Dir(d), "shared", "reference")
			if _, err := os.Stat(ref); err != nil {
				// .git is a file "gitdir: MAIN/.git/worktrees/NAME".
				if g, err := os.ReadFile(filepath.Join(d, ".git")); err == nil {
					gd := strings.TrimSpace(strings.TrimPrefix(string(g), "gitdir:"))
					if i := strings.Index(gd, string(filepath.Separator)+".git"+string(filepath.Separator)); i > 0 {
						if alt := filepath.Join(filepath.Dir(gd[:i]), "shared", "reference"); alt != ref {
							if _, err := os.Stat(alt); err == nil {
								return alt
							}
						}
					}
				}
			}
			return ref
		}
		if filepath.Dir(d) == d {
			return filepath.Join(dir, "..", "shared", "reference")
		}
	}
}

func medians(rs []map[string]float64) map[string]float64 {
	keys := map[string]bool{}
	for _, r := range rs {
		for k := range r {
			keys[k] = true
		}
	}
	m := map[string]float64{}
	for k := range keys {
		var v []float64
		for _, r := range rs {
			if x, ok := r[k]; ok {
				v = append(v, x)
			}
		}
		m[k] = median(v)
	}
	return m
}

// ratio is the median over runs of rs's metric divided by base's in the
// same run.
func ratio(rs, base []map[string]float64, metric string) float64 {
	var v []float64
	for i := range min(len(rs), len(base)) {
		if b := base[i][metric]; b != 0 {
			v = append(v, rs[i][metric]/b)
		}
	}
	return median(v)
}

func ratioStr(rs, base []map[string]float64, metric string) string {
	r := ratio(rs, base, metric)
	if r == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f×", r)
}

func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func usStr(us float64) string {
	switch {
	case us == 0:
		return "—"
	case us >= 1e3:
		return fmt.Sprintf("%.2f ms", us/1e3)
	}
	return fmt.Sprintf("%.0f µs", us)
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
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 0 {
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[len(v)/2]
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
