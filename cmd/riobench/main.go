// Command riobench measures rio side by side with the standard library
// (os.File, Go's epoll netpoller) and, where they are installed or
// buildable, reference programs: a C program using liburing (bench/c), fio,
// the Go io_uring library github.com/godzie44/go-uring (bench/peers), and
// for the network rows everything bench/net runs (package net, rionet, C
// epoll and io_uring servers) and the event-loop servers (rionet's
// LoopServer, gnet) riobench hands it.
//
//	go run ./cmd/riobench                 # the default suite
//	go run ./cmd/riobench -quick          # under a minute
//	go run ./cmd/riobench -workloads nop,echo -rounds 7 -dur 2s
//	go run ./cmd/riobench -publish        # and rewrite the README's and docs' numbers
//
// Every measurement runs in a child process (riobench re-executes itself,
// or runs the reference program or bench/net), bounded in time. For each
// row group the implementations run in alternation, in reversed order
// every other round (A B, B A, A B, ...), so that drift of this shared
// machine hits them alike. The table, the JSON, an SVG chart and a
// benchstat file go to a results folder. See docs/riobench.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	workloads    map[string]bool
	dur          time.Duration
	rounds       int
	quick        bool
	depths       []int
	hotWorkers   int
	batch        int
	fileMiB      int
	dir          string
	out          string
	pin          bool
	useC         bool
	useFio       bool
	usePeers     bool
	verbose      bool
	netScenarios []string
	netImpls     string
	netWarmup    time.Duration
	publish      bool
	publishFrom  string
	root         string
}

var allWorkloads = []string{"nop", "direct", "hot", "copy", "echo", "http", "idle"}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "child" {
		childMain(os.Args[2])
		return
	}
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "riobench: %v\n", err)
		os.Exit(2)
	}
	os.Exit(runMain(o))
}

// parseFlags parses the command line. -quick changes the defaults of
// -rounds, -dur, -file-mib and -net-scenarios; flags given explicitly win.
func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("riobench", flag.ContinueOnError)
	var workloads, depths, scenarios string
	fs.StringVar(&workloads, "workloads", strings.Join(allWorkloads, ","), "comma-separated workloads to run: "+strings.Join(allWorkloads, ", "))
	fs.DurationVar(&o.dur, "dur", time.Second, "duration of one measurement (NOP: of its two modes together)")
	fs.IntVar(&o.rounds, "rounds", 6, "alternating rounds per row; the table shows their median and range")
	fs.BoolVar(&o.quick, "quick", false, "a run of under a minute: -rounds 3 -dur 300ms -file-mib 64 -net-scenarios "+quickNetScenarios)
	fs.StringVar(&depths, "depths", "32", "O_DIRECT random read queue depths (goroutines or operations in flight), e.g. 1,32,256")
	fs.IntVar(&o.hotWorkers, "hot-workers", 64, "goroutines (or queue depth) for page-cache-hot random reads")
	fs.IntVar(&o.batch, "batch", 32, "NOPs per batch in the batched NOP row")
	fs.IntVar(&o.fileMiB, "file-mib", 256, "size of the data files for the read and copy workloads, in MiB")
	fs.StringVar(&o.dir, "dir", os.TempDir(), "directory for data files (on the disk to measure; O_DIRECT needs a real file system, not tmpfs)")
	fs.StringVar(&o.out, "out", "", "results folder (default ./riobench-results/<date>-<time>)")
	fs.BoolVar(&o.pin, "pin", true, "pin the NOP processes to one CPU (the network scenarios pin as bench/net defines them)")
	fs.BoolVar(&o.useC, "c", true, "build and run the C liburing NOP reference (bench/c) if cc and liburing are available")
	fs.BoolVar(&o.useFio, "fio", true, "run fio reference rows if fio is installed")
	fs.BoolVar(&o.usePeers, "peers", true, "build and run the go-uring peer (bench/peers) if Go can build it")
	fs.StringVar(&scenarios, "net-scenarios", defaultNetScenarios, "bench/net scenarios for the echo, http and idle workloads (\"all\": every one riobench knows)")
	fs.StringVar(&o.netImpls, "net-impls", "", "bench/net -impls (default: "+benchNetImpls+", and loop and gnet where the checkout has them)")
	fs.DurationVar(&o.netWarmup, "net-warmup", 300*time.Millisecond, "unmeasured warm-up of each network run")
	fs.BoolVar(&o.publish, "publish", false, "after the run, write docs/riobench.json and docs/riobench.svg and rewrite the generated sections of README.md, docs/benchmarks.md and docs/riobench.md")
	fs.StringVar(&o.publishFrom, "publish-from", "", "publish this results.json (or docs/riobench.json, to re-render) without measuring")
	fs.BoolVar(&o.verbose, "v", false, "print every child command and its error output")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: riobench [flags]\n\nRuns rio side by side with os.File, Go's netpoller and reference programs, and writes\nthe table, JSON, an SVG chart and a benchstat file to a results folder.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		if !set["rounds"] {
			o.rounds = 3
		}
		if !set["dur"] {
			o.dur = 300 * time.Millisecond
		}
		if !set["file-mib"] {
			o.fileMiB = 64
		}
		if !set["net-scenarios"] {
			scenarios = quickNetScenarios
		}
		if !set["net-warmup"] {
			o.netWarmup = 200 * time.Millisecond
		}
	}
	o.workloads = map[string]bool{}
	for _, w := range strings.Split(workloads, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		if !slices.Contains(allWorkloads, w) {
			return o, fmt.Errorf("unknown workload %q (have %s)", w, strings.Join(allWorkloads, ", "))
		}
		o.workloads[w] = true
	}
	if scenarios == "all" {
		for _, s := range netScenarios {
			o.netScenarios = append(o.netScenarios, s.name)
		}
	} else {
		for _, s := range strings.Split(scenarios, ",") {
			if s = strings.TrimSpace(s); s != "" {
				o.netScenarios = append(o.netScenarios, s)
			}
		}
	}
	var err error
	if o.depths, err = intList(depths); err != nil {
		return o, fmt.Errorf("-depths: %v", err)
	}
	if o.rounds < 1 || o.dur <= 0 || o.fileMiB < 1 || o.batch < 1 || o.hotWorkers < 1 || o.netWarmup < 0 {
		return o, errors.New("-rounds, -dur, -file-mib, -batch and -hot-workers must be positive")
	}
	o.root = repoRoot()
	return o, nil
}

// runMain runs riobench with o and returns the exit status.
func runMain(o options) int {
	if o.publishFrom != "" {
		rep, err := readReport(o.publishFrom)
		if err != nil {
			fmt.Fprintf(os.Stderr, "riobench: %v\n", err)
			return 1
		}
		return publishReport(rep, o.root)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := newRunner(os.Stderr)
	rep := &report{Version: reportVersion, Started: time.Now(), Command: commandLine(os.Args[1:])}
	rep.Host = hostInfo{Kernel: kernelRelease(), CPU: cpuModel(), CPUs: allowedCPUs(), Virt: virtualization(),
		Go: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0), LoadStart: loadAverage()}
	rep.Commit = gitCommit(o.root)
	rep.Config = o.config()
	fmt.Fprintf(os.Stderr, "riobench: %s; %s\n", rep.machine(), rep.how())
	b := newBench(ctx, o, r)
	defer b.cleanup()
	sources, err := b.setup()
	if err != nil {
		b.cleanup()
		fmt.Fprintf(os.Stderr, "riobench: %v\n", err)
		return 1
	}
	r.runAll(ctx, sources)
	interrupted := ctx.Err() != nil
	if interrupted {
		r.note("interrupted after %d of %d measurements; the results are partial", r.done, r.total)
	}
	b.cleanup()
	rep.Duration = time.Since(rep.Started).Round(time.Second).String()
	rep.Host.LoadEnd = loadAverage()
	for _, s := range sources {
		rep.Groups = append(rep.Groups, s.groups()...)
	}
	rep.Rows = buildRows(rep.Groups, r)
	rep.Notes = r.notes
	dir, files, err := writeOutputs(rep, o.out)
	rep.printTable(os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "riobench: %v\n", err)
		return 1
	}
	fmt.Printf("\nwrote %s:\n", dir)
	for _, f := range files {
		fmt.Printf("  %-13s %s\n", f[0], f[1])
	}
	fmt.Printf("compare two runs: benchstat A/bench.txt B/bench.txt; the implementations of one: benchstat -col /impl %s\n",
		filepath.Join(dir, "bench.txt"))
	if interrupted {
		return 130
	}
	if o.publish {
		return publishReport(rep, o.root)
	}
	return 0
}

func publishReport(rep *report, root string) int {
	if root == "" {
		fmt.Fprintf(os.Stderr, "riobench: %v\n", errNoRoot)
		return 1
	}
	written, err := publish(rep, root)
	for _, w := range written {
		fmt.Printf("published %s\n", w)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "riobench: publish: %v\n", err)
		return 1
	}
	return 0
}

// writeOutputs writes the table, the JSON, the chart and the benchstat
// file into dir (default: a new folder under ./riobench-results).
func writeOutputs(rep *report, dir string) (string, [][2]string, error) {
	if dir == "" {
		dir = filepath.Join("riobench-results", rep.Started.Format("20060102-150405"))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return dir, nil, err
	}
	var table strings.Builder
	rep.printTable(&table)
	var bench strings.Builder
	if err := rep.writeBenchfmt(&bench); err != nil {
		return dir, nil, err
	}
	files := [][2]string{
		{"table.txt", "the table printed above"},
		{"results.json", "every round of every row, medians, ratios, host, configuration, notes"},
		{"chart.svg", "every group: medians as bars, lowest to highest round as whiskers"},
		{"bench.txt", "every round in the Go benchmark format, for benchstat"},
	}
	if err := os.WriteFile(filepath.Join(dir, "table.txt"), []byte(table.String()), 0o644); err != nil {
		return dir, nil, err
	}
	if err := rep.writeJSON(filepath.Join(dir, "results.json")); err != nil {
		return dir, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "chart.svg"), []byte(rep.svg()), 0o644); err != nil {
		return dir, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.txt"), []byte(bench.String()), 0o644); err != nil {
		return dir, nil, err
	}
	return dir, files, nil
}

func (o options) config() config {
	c := config{Dur: o.dur.String(), Rounds: o.rounds, Quick: o.quick, Depths: o.depths, HotWorkers: o.hotWorkers,
		Batch: o.batch, FileMiB: o.fileMiB, Dir: o.dir, Pinned: o.pin, NetImpls: o.netImpls}
	for _, w := range allWorkloads {
		if o.workloads[w] {
			c.Workloads = append(c.Workloads, w)
		}
	}
	if o.workloads["echo"] || o.workloads["http"] || o.workloads["idle"] {
		c.NetScenarios, c.NetWarmup = o.netScenarios, o.netWarmup.String()
	}
	return c
}

// commandLine is the command that reproduces the run, as a user would
// type it from the repository.
func commandLine(args []string) string {
	parts := []string{"go run ./cmd/riobench"}
	for _, a := range args {
		if strings.ContainsAny(a, " \t'\"$") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	sort.Ints(out)
	return out, nil
}
