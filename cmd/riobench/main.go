// Command riobench measures rio side by side with the standard library
// (os.File, Go's epoll netpoller) and, where they are installed or
// buildable, reference programs: a C program using liburing (bench/c), fio,
// and the Go io_uring library github.com/godzie44/go-uring (bench/peers).
//
//	go run ./cmd/riobench                       # the default suite, < 2 minutes
//	go run ./cmd/riobench -workloads nop,echo -rounds 5 -dur 2s
//	go run ./cmd/riobench -json out.json -svg out.svg
//
// Every measurement runs in a child process (riobench re-executes itself,
// or runs the reference program), bounded in time. For each row group the
// implementations run in alternation, in reversed order every other round
// (A B, B A, A B, ...), so that drift of this shared machine hits them
// alike; the table shows the median of the rounds and its ratio to the
// group's baseline. See docs/riobench.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	workloads  map[string]bool
	dur        time.Duration
	rounds     int
	conns      []int
	httpConns  int
	msg        int
	depths     []int
	hotWorkers int
	batch      int
	fileMiB    int
	dir        string
	jsonOut    string
	svgOut     string
	pin        bool
	useC       bool
	useFio     bool
	usePeers   bool
	verbose    bool
	httpClient string
}

var allWorkloads = []string{"nop", "direct", "hot", "copy", "echo", "http"}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "child" {
		childMain(os.Args[2])
		return
	}
	var o options
	var workloads, conns, depths string
	flag.StringVar(&workloads, "workloads", strings.Join(allWorkloads, ","), "comma-separated workloads to run: "+strings.Join(allWorkloads, ", "))
	flag.DurationVar(&o.dur, "dur", time.Second, "duration of one measurement (NOP: of each of its two modes, halved)")
	flag.IntVar(&o.rounds, "rounds", 3, "alternating rounds per row; the table shows their median")
	flag.StringVar(&conns, "conns", "1,16,256", "TCP echo connection counts")
	flag.IntVar(&o.httpConns, "http-conns", 64, "HTTP hello client connections")
	flag.IntVar(&o.msg, "msg", 64, "TCP echo message size in bytes")
	flag.StringVar(&depths, "depths", "32", "O_DIRECT random read queue depths (goroutines or operations in flight), e.g. 1,32,256 for the chart")
	flag.IntVar(&o.hotWorkers, "hot-workers", 64, "goroutines (or queue depth) for page-cache-hot random reads")
	flag.IntVar(&o.batch, "batch", 32, "NOPs per batch in the batched NOP row")
	flag.IntVar(&o.fileMiB, "file-mib", 256, "size of the data files for the read and copy workloads, in MiB")
	flag.StringVar(&o.dir, "dir", os.TempDir(), "directory for data files (on the disk to measure; O_DIRECT needs a real file system, not tmpfs)")
	flag.StringVar(&o.jsonOut, "json", "", "write the results as JSON to this file")
	flag.StringVar(&o.svgOut, "svg", "", "write an SVG chart (echo req/s by connections, O_DIRECT IOPS by depth) to this file")
	flag.BoolVar(&o.pin, "pin", true, "pin the NOP and network processes to CPUs (sched_setaffinity)")
	flag.BoolVar(&o.useC, "c", true, "build and run the C liburing NOP reference (bench/c) if cc and liburing are available")
	flag.BoolVar(&o.useFio, "fio", true, "run fio reference rows if fio is installed")
	flag.BoolVar(&o.usePeers, "peers", true, "build and run the go-uring peer (bench/peers) if Go can build it")
	flag.StringVar(&o.httpClient, "http-client", "go", "HTTP load generator: go (riobench's own keep-alive client) or wrk (must be installed)")
	flag.BoolVar(&o.verbose, "v", false, "print every child command and its error output")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: riobench [flags]\n\nRuns rio side by side with os.File, Go's netpoller and reference programs, and prints medians and ratios.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	o.workloads = map[string]bool{}
	for _, w := range strings.Split(workloads, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		if !contains(allWorkloads, w) {
			fmt.Fprintf(os.Stderr, "riobench: unknown workload %q (have %s)\n", w, strings.Join(allWorkloads, ", "))
			os.Exit(2)
		}
		o.workloads[w] = true
	}
	var err error
	if o.conns, err = intList(conns); err != nil {
		fatalf("-conns: %v", err)
	}
	if o.depths, err = intList(depths); err != nil {
		fatalf("-depths: %v", err)
	}
	if o.httpClient != "go" && o.httpClient != "wrk" {
		fatalf("-http-client must be go or wrk")
	}
	if o.rounds < 1 || o.dur <= 0 || o.fileMiB < 1 || o.batch < 1 || o.hotWorkers < 1 || o.httpConns < 1 || o.msg < 1 {
		fatalf("-rounds, -dur, -file-mib, -batch, -hot-workers, -http-conns and -msg must be positive")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := newBench(ctx, o)
	defer b.cleanup()
	if err := b.setup(); err != nil {
		b.cleanup()
		fatalf("%v", err)
	}
	b.run()
	if ctx.Err() != nil {
		b.cleanup()
		fmt.Fprintln(os.Stderr, "riobench: interrupted")
		os.Exit(130)
	}
	rep := b.report()
	rep.printTable(os.Stdout)
	if o.jsonOut != "" {
		if err := rep.writeJSON(o.jsonOut); err != nil {
			fmt.Fprintf(os.Stderr, "riobench: %v\n", err)
		} else {
			fmt.Printf("wrote %s\n", o.jsonOut)
		}
	}
	if o.svgOut != "" {
		if err := rep.writeSVG(o.svgOut); err != nil {
			fmt.Fprintf(os.Stderr, "riobench: %v\n", err)
		} else {
			fmt.Printf("wrote %s\n", o.svgOut)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
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
