package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The network rows come from bench/net, the network benchmark of the
// repository: riobench builds it, runs it as a child for the selected
// scenarios with its own -rounds and -dur, and reads the JSON line bench/net
// prints for every run. bench/net starts the servers (package net,
// rionet, the C reference servers, whatever implementations it gains, and
// the event-loop servers riobench hands it: extraServers),
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
}

var netScenarios = []netScenario{
	{name: "echo1-pinned", workload: "echo", param: "conns=1 msg=64B cpus=0"},
	{name: "echo1", workload: "echo", param: "conns=1 msg=64B"},
	{name: "echo16-64", workload: "echo", param: "conns=16 msg=64B"},
	{name: "echo16-4k", workload: "echo", param: "conns=16 msg=4KiB"},
	{name: "echo256-64", workload: "echo", param: "conns=256 msg=64B"},
	{name: "echo256-4k", workload: "echo", param: "conns=256 msg=4KiB"},
	{name: "echo256-split", workload: "echo", param: "conns=256 msg=64B server=cpu0 client=cpu1"},
	{name: "http", workload: "http", param: "conns=64 client=wrk-t2"},
	{name: "idle10k", workload: "idle", param: "conns=10000"},
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
	"loop":    "rio LoopServer",
	"gnet":    "gnet",
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

// extraServer is an echo server of the repository that bench/net runs
// beside its own, through its -x NAME=COMMAND option (the command prints
// "listening ADDR" once it accepts, and stops on SIGTERM): riobench builds
// it when the checkout has it and adds NAME to bench/net's -impls. bench/net
// measures it with the same client, CPU and switch accounting and
// pinning as its own servers, in the echo scenarios only.
type extraServer struct {
	name   string // bench/net's implementation name, for -impls and -x
	module string // the directory of its go.mod, from the repository root
	pkg    string // the main package, from module
	args   []string
}

// extraServers are the event-loop servers of issue 15, as bench/loop (its
// benchmark) runs them: rionet's LoopServer with its defaults echoing in
// OnData (bench/loop's loop-server), and gnet v2's echo (bench/gnet, a
// module of its own, as gnet must not enter rio's go.mod).
var extraServers = []extraServer{
	{name: "loop", module: ".", pkg: "./bench/loop", args: []string{"loop-server", "-addr", "127.0.0.1:0"}},
	{name: "gnet", module: "bench/gnet", pkg: ".", args: []string{"-addr", "127.0.0.1:0"}},
}

// benchNetImpls is bench/net's default -impls.
const benchNetImpls = "std,rio,c-epoll,c-uring"

// netSource builds bench/net (and the extra servers) and returns the
// source of the network rows; nil if no network workload is selected or
// bench/net cannot run, with a note saying why.
func (b *bench) netSource(root string) rowSource {
	scen := b.selectedScenarios()
	if len(scen) == 0 {
		return nil
	}
	t := benchNetTool
	if root == "" {
		b.r.note("network rows: not measured: %s not found (run riobench from the repository)", t.name)
		return nil
	}
	b.progress("building %s", t.name)
	bin, err := b.goBuild(root, t.pkg, "riobench-"+benchToken(t.name))
	if err != nil {
		b.r.note("network rows: not measured: %v", err)
		return nil
	}
	help, _ := exec.Command(bin, "-h").CombinedOutput()
	if !bytes.Contains(help, []byte(t.impls)) {
		b.r.note("network rows: not measured: this checkout's %s prints no JSON results (its -h has no %s)", t.name, t.impls)
		return nil
	}
	s := &benchNet{b: b, tool: t, bin: bin, dir: root, scen: scen, impls: b.o.netImpls}
	if s.impls == "" {
		s.impls = benchNetImpls
	}
	if scenKinds(scen)["echo"] {
		s.addExtras(root, bytes.Contains(help, []byte("\n  -x ")))
	}
	return s
}

// scenKinds is the set of workloads of scen.
func scenKinds(scen []netScenario) map[string]bool {
	k := map[string]bool{}
	for _, s := range scen {
		k[s.workload] = true
	}
	return k
}

// addExtras builds the extra servers that the checkout has and that are
// wanted (all by default; with -net-impls, those it names), and gives
// them to bench/net. hasX says whether bench/net has its -x option.
func (s *benchNet) addExtras(root string, hasX bool) {
	b := s.b
	for _, x := range extraServers {
		named := slices.Contains(strings.Split(s.impls, ","), x.name)
		if b.o.netImpls != "" && !named {
			continue
		}
		bin, why := s.buildExtra(root, x, hasX)
		if why != "" {
			if named {
				b.r.note("network rows: no %s rows: %s", x.name, why)
				s.impls = strings.Join(slices.DeleteFunc(strings.Split(s.impls, ","), func(im string) bool { return im == x.name }), ",")
			}
			continue
		}
		if !named {
			s.impls += "," + x.name
		}
		s.extra = append(s.extra, "-x", x.name+"="+strings.Join(append([]string{bin}, x.args...), " "))
	}
}

// buildExtra builds extra server x, or says why it cannot run: "" when it
// can.
func (s *benchNet) buildExtra(root string, x extraServer, hasX bool) (bin, why string) {
	dir := filepath.Join(root, x.module)
	where := filepath.Join(x.module, x.pkg)
	if st, err := os.Stat(filepath.Join(dir, x.pkg)); err != nil || !st.IsDir() {
		return "", where + " is not in this checkout"
	}
	if !hasX {
		return "", "this checkout's " + s.tool.name + " has no -x option for extra servers"
	}
	s.b.progress("building the %s server (%s)", x.name, where)
	bin, err := s.b.goBuild(dir, x.pkg, "riobench-"+x.name)
	if err != nil {
		return "", err.Error()
	}
	return bin, ""
}

// benchNet is the source that runs bench/net (or another jsonTool).
type benchNet struct {
	b     *bench
	tool  jsonTool
	bin   string
	dir   string
	scen  []netScenario
	impls string   // its -impls
	extra []string // its -x options, for the extra servers
}

func (s *benchNet) groups() []groupInfo {
	var gs []groupInfo
	for _, sc := range s.scen {
		gs = append(gs, netGroup(sc, s.tool.name))
	}
	return gs
}

// implCount is the number of implementations bench/net will run in
// scenario sc, as far as riobench can tell before it starts: the C
// servers and the extra ones only echo.
func (s *benchNet) implCount(sc netScenario) int {
	list := s.impls
	if list == "" {
		list = benchNetImpls
	}
	n := 0
	for _, im := range strings.Split(list, ",") {
		base, _, _ := strings.Cut(im, "+")
		echoOnly := strings.HasPrefix(base, "c-") || slices.ContainsFunc(extraServers, func(x extraServer) bool { return x.name == base })
		if sc.workload == "echo" || !echoOnly {
			n++
		}
	}
	return n
}

func (s *benchNet) planned() (int, time.Duration) {
	o := s.b.o
	n, total := 0, time.Duration(0)
	for _, sc := range s.scen {
		k := s.implCount(sc) * o.rounds
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
	if s.impls != "" {
		args = append(args, t.impls, s.impls)
	}
	args = append(args, s.extra...)
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
