package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The network rows come from bench/net, the network benchmark of the
// repository: riobench builds it, runs it as a child for the selected
// scenarios with its own -rounds and -dur, and reads the JSON line bench/net
// prints for every run. bench/net starts the servers (package net,
// rionet, the C reference servers, and whatever implementations it gains),
// drives them with the same client, alternates them, and measures req/s,
// latency percentiles, and the server's CPU time and context switches per
// request; riobench only presents what it reports. A new implementation
// in bench/net appears in riobench's table, chart and published sections
// without a change here (it is labelled by its bench/net name unless
// implLabels has a better one); a new scenario needs an entry in
// netScenarios to be shown with its parameters, and is run with
// -net-scenarios NAME meanwhile.

// jsonTool is a benchmark program of the repository that riobench builds,
// runs as a child with -only SCENARIOS, a number of runs, -dur and a
// warm-up, and reads one JSON line per run from, in bench/net's format:
//
//	{"scenario": "echo256-64", "impl": "rio", "run": 2, "metrics": {"rps": 91234.5, "p99_us": 812, ...}}
//
// (lines with "summary": true, and anything that is not a JSON object, are
// skipped). bench/net is the one there is; another program that prints the
// same lines is another entry like benchNetTool, and its scenarios entries
// of netScenarios.
type jsonTool struct {
	name  string // for notes and the groups' source: "bench/net"
	pkg   string // to build, from the repository root: "./bench/net"
	runs  string // its flag for the number of runs: "-runs"
	impls string // its flag for the implementations: "-impls"; its -h must mention it
	warm  string // its warm-up flag: "-warmup"
}

var benchNetTool = jsonTool{name: "bench/net", pkg: "./bench/net", runs: "-runs", impls: "-impls", warm: "-warmup"}

// netScenario is how riobench shows one of bench/net's scenarios.
type netScenario struct {
	name     string // bench/net's -only name
	workload string // echo, http, idle
	param    string
	// For riobench's own harness, used while bench/net has no JSON
	// output: connections, message size, and CPUs of server and client.
	conns, msg     int
	srvCPU, cliCPU []int
}

var netScenarios = []netScenario{
	{name: "echo1-pinned", workload: "echo", param: "conns=1 msg=64B cpus=0", conns: 1, msg: 64, srvCPU: []int{0}, cliCPU: []int{0}},
	{name: "echo1", workload: "echo", param: "conns=1 msg=64B", conns: 1, msg: 64},
	{name: "echo16-64", workload: "echo", param: "conns=16 msg=64B", conns: 16, msg: 64},
	{name: "echo16-4k", workload: "echo", param: "conns=16 msg=4KiB", conns: 16, msg: 4096},
	{name: "echo256-64", workload: "echo", param: "conns=256 msg=64B", conns: 256, msg: 64},
	{name: "echo256-4k", workload: "echo", param: "conns=256 msg=4KiB", conns: 256, msg: 4096},
	{name: "echo256-split", workload: "echo", param: "conns=256 msg=64B server=cpu0 client=cpu1", conns: 256, msg: 64, srvCPU: []int{0}, cliCPU: []int{1}},
	{name: "http", workload: "http", param: "conns=64 client=wrk-t2", conns: 64},
	{name: "idle10k", workload: "idle", param: "conns=10000", conns: 10000},
}

// defaultNetScenarios and quickNetScenarios are what riobench runs
// without -net-scenarios.
const (
	defaultNetScenarios = "echo1-pinned,echo16-64,echo256-64,http,idle10k"
	quickNetScenarios   = "echo1-pinned,echo256-64,http"
)

var netTitles = map[string]string{
	"echo": "TCP echo",
	"http": "net/http hello",
	"idle": "server RSS, idle connections",
	"net":  "bench/net scenario",
}

// implLabels are the row names of bench/net's implementations.
var implLabels = map[string]string{
	"std":     "net (epoll)",
	"rio":     "rio net",
	"c-epoll": "C epoll",
	"c-uring": "C io_uring",
}

// implLabel names bench/net's implementation s ("rio", or a variant
// "rio+ENV=value") for the table.
func implLabel(s string) string {
	base, env, _ := strings.Cut(s, "+")
	l, ok := implLabels[base]
	if !ok {
		l = base
	}
	if env != "" {
		l += " " + strings.ReplaceAll(env, "+", " ")
	}
	return l
}

func findScenario(name string) netScenario {
	for _, s := range netScenarios {
		if s.name == name {
			return s
		}
	}
	return netScenario{name: name, workload: "net", param: "scenario=" + name}
}

// netGroup is the group of scenario s.
func netGroup(s netScenario, source string) groupInfo {
	g := groupInfo{Workload: s.workload, Param: s.param, Title: netTitles[s.workload], Baseline: implLabel("std"), Unit: "req/s", Source: source}
	if s.workload == "idle" {
		g.Unit, g.Lower = "MiB", true
	}
	return g
}

// selectedScenarios is -net-scenarios, filtered by the selected
// workloads (echo, http, idle; an unknown scenario runs if any of them is
// selected).
func (b *bench) selectedScenarios() []netScenario {
	var out []netScenario
	for _, name := range b.o.netScenarios {
		s := findScenario(name)
		if b.o.workloads[s.workload] || (s.workload == "net" && (b.o.workloads["echo"] || b.o.workloads["http"] || b.o.workloads["idle"])) {
			out = append(out, s)
		}
	}
	return out
}

// netSource builds bench/net and returns the source of the network rows:
// bench/net's, or riobench's own harness where bench/net cannot report
// JSON; nil if no network workload is selected.
func (b *bench) netSource(root string) rowSource {
	scen := b.selectedScenarios()
	if len(scen) == 0 {
		return nil
	}
	if root != "" {
		t := benchNetTool
		b.progress("building %s", t.name)
		bin, err := b.goBuild(root, t.pkg, "riobench-"+benchToken(t.name))
		if err != nil {
			b.r.note("network rows: %v; riobench's own servers and client run instead", err)
		} else if out, _ := exec.Command(bin, "-h").CombinedOutput(); !bytes.Contains(out, []byte(t.impls)) {
			b.r.note("network rows: this checkout's %s prints no JSON results; riobench's own servers and client run instead (no CPU/request, switches or latency)", t.name)
		} else {
			return &benchNet{b: b, tool: t, bin: bin, dir: root, scen: scen}
		}
	} else {
		b.r.note("network rows: bench/net not found (run riobench from the repository); riobench's own servers and client run instead")
	}
	return b.localNet(scen)
}

// benchNet is the source that runs bench/net (or another jsonTool).
type benchNet struct {
	b    *bench
	tool jsonTool
	bin  string
	dir  string
	scen []netScenario
}

func (s *benchNet) groups() []groupInfo {
	var gs []groupInfo
	for _, sc := range s.scen {
		gs = append(gs, netGroup(sc, s.tool.name))
	}
	return gs
}

// impls is the implementations bench/net will run, as far as riobench can
// tell before it starts: -net-impls, or bench/net's default.
func (s *benchNet) impls(sc netScenario) int {
	list := s.b.o.netImpls
	if list == "" {
		list = "std,rio,c-epoll,c-uring"
	}
	n := 0
	for _, im := range strings.Split(list, ",") {
		if sc.workload == "echo" || !strings.HasPrefix(im, "c-") {
			n++
		}
	}
	return n
}

func (s *benchNet) planned() (int, time.Duration) {
	o := s.b.o
	n, total := 0, time.Duration(0)
	for _, sc := range s.scen {
		k := s.impls(sc) * o.rounds
		each := o.dur + o.netWarmup + 300*time.Millisecond
		switch sc.workload {
		case "http":
			each = max(o.dur.Round(time.Second), time.Second) + 300*time.Millisecond // wrk runs whole seconds
		case "idle":
			each = 3 * time.Second
		}
		n += k
		total += time.Duration(k) * each
	}
	if n == 0 {
		return 0, 0
	}
	return n, total / time.Duration(n)
}

// netRun is one line of bench/net's JSON output.
type netRun struct {
	Scenario string             `json:"scenario"`
	Impl     string             `json:"impl"`
	Run      int                `json:"run"`
	Summary  bool               `json:"summary"`
	Metrics  map[string]float64 `json:"metrics"`
}

// netMeasurement turns one of bench/net's runs into a measurement: the
// primary value is req/s (rps), or the RSS for the idle scenario; every
// other metric is kept. ok is false for summary lines and lines that are
// not a run.
func netMeasurement(line []byte) (m measurement, sc netScenario, ok bool, err error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return m, sc, false, nil
	}
	var r netRun
	if err := json.Unmarshal(line, &r); err != nil {
		return m, sc, false, fmt.Errorf("bench/net: bad JSON line %q: %v", line, err)
	}
	if r.Summary || r.Scenario == "" || r.Run < 1 {
		return m, sc, false, nil
	}
	sc = findScenario(r.Scenario)
	g := netGroup(sc, "")
	key := "rps"
	if g.Unit == "MiB" {
		key = "rss_mib"
	}
	v, have := r.Metrics[key]
	if !have {
		return m, sc, false, fmt.Errorf("bench/net: %s %s run %d has no %s", r.Scenario, r.Impl, r.Run, key)
	}
	m = measurement{Workload: sc.workload, Param: sc.param, Impl: implLabel(r.Impl), Round: r.Run, Value: v, Metrics: map[string]float64{}}
	for k, x := range r.Metrics {
		if k != key {
			m.Metrics[k] = x
		}
	}
	return m, sc, true, nil
}

func (s *benchNet) run(ctx context.Context, r *runner) {
	o := s.b.o
	n, each := s.planned()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Duration(n)*each+2*time.Minute)
	defer cancel()
	names := make([]string, len(s.scen))
	for i, sc := range s.scen {
		names[i] = sc.name
	}
	t := s.tool
	args := []string{"-only", strings.Join(names, ","), t.runs, strconv.Itoa(o.rounds), "-dur", o.dur.String(), t.warm, o.netWarmup.String()}
	if o.netImpls != "" {
		args = append(args, t.impls, o.netImpls)
	}
	if o.verbose {
		fmt.Fprintf(r.out, "riobench: run %s %s (in %s)\n", s.bin, strings.Join(args, " "), s.dir)
	}
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Dir = s.dir // bench/net finds the C reference servers from the repository
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		r.note("%s: %v", t.name, err)
		return
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		r.note("%s: %v", t.name, err)
		return
	}
	if err := cmd.Start(); err != nil {
		r.note("%s: %v", t.name, err)
		return
	}
	var (
		mu   sync.Mutex
		tail []string // bench/net's last lines of error output
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if o.verbose {
				fmt.Fprintf(r.out, "  %s: %s\n", t.name, line)
			}
			mu.Lock()
			if rest, ok := strings.CutPrefix(line, "skipping "); ok {
				r.note("%s skipped %s", t.name, rest)
			}
			if strings.TrimSpace(line) != "" {
				tail = append(tail, line)
				if len(tail) > 3 {
					tail = tail[1:]
				}
			}
			mu.Unlock()
		}
		io.Copy(io.Discard, stderr)
	}()
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m, scen, ok, err := netMeasurement(sc.Bytes())
		mu.Lock()
		if err != nil {
			r.note("%v", err)
		}
		if ok {
			r.record(m)
			r.step(each, "%-6s %-10s %-15s round %d/%d: %s %s", m.Workload, scen.name, m.Impl, m.Round, o.rounds, human(m.Value), netGroup(scen, "").Unit)
		}
		mu.Unlock()
	}
	io.Copy(io.Discard, stdout)
	wg.Wait()
	werr := cmd.Wait()
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		r.note("%s did not finish in time: %s", t.name, strings.Join(tail, " / "))
	case werr != nil && ctx.Err() == nil:
		r.note("%s failed (%v): %s", t.name, werr, strings.Join(tail, " / "))
	}
}
