package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// echoResult is what echo-client prints, one JSON object on one line.
// Everything is over the measured window only: the requests completed in
// it, the latencies of those requests, and the CPU time and context
// switches of the server (if -pid named it) and of the client between the
// window's start and end.
type echoResult struct {
	RPS      float64 `json:"rps"`
	Requests int64   `json:"requests"`
	Window   float64 `json:"window_s"`
	P50      float64 `json:"p50_us"`
	P90      float64 `json:"p90_us"`
	P99      float64 `json:"p99_us"`
	P999     float64 `json:"p999_us"`
	Max      float64 `json:"max_us"`
	// MinShare is the fewest requests one connection completed, as a
	// fraction of the mean: 0 means a connection starved.
	MinShare   float64 `json:"min_conn_share"`
	SrvCPU     float64 `json:"srv_cpu_us_per_req,omitempty"`
	SrvCS      float64 `json:"srv_cs_per_req,omitempty"`
	SrvThreads int     `json:"srv_threads,omitempty"`
	CliCPU     float64 `json:"cli_cpu_us_per_req"`
	CliCS      float64 `json:"cli_cs_per_req"`
	// Other is the CPU time of everything else on the machine during the
	// window, in CPUs: a run with much of it was disturbed.
	Other float64 `json:"other_cpus"`
}

// echoClient runs conns connections, each sending a message and reading
// the echo back in a loop (package net, a goroutine per connection), warms
// up, measures for dur, and prints an echoResult.
func echoClient(args []string) {
	fs := flag.NewFlagSet("echo-client", flag.ExitOnError)
	addr := fs.String("addr", "", "server address")
	conns := fs.Int("conns", 256, "connections")
	size := fs.Int("size", 64, "message size")
	dur := fs.Duration("dur", 3*time.Second, "measured duration")
	warm := fs.Duration("warmup", 500*time.Millisecond, "unmeasured warm-up")
	pid := fs.Int("pid", 0, "server process to sample over the measured window (0: none)")
	fs.Parse(args)
	res, err := runEchoClient(*addr, *conns, *size, *warm, *dur, *pid)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo-client:", err)
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(res)
}

// connStats is one connection's share of the measurement, merged at the
// end: no shared counters on the request path.
type connStats struct {
	n    int64
	hist latHist
}

func runEchoClient(addr string, conns, size int, warm, dur time.Duration, pid int) (*echoResult, error) {
	cs := make([]net.Conn, 0, conns)
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	var measuring, stopping atomic.Bool
	var wg sync.WaitGroup
	stats := make([]*connStats, conns)
	errs := make(chan error, conns)
	for i, c := range cs {
		st := &connStats{}
		stats[i] = st
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			msg := bytes.Repeat([]byte("x"), size)
			got := make([]byte, size)
			for !stopping.Load() {
				t0 := time.Now()
				if _, err := c.Write(msg); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(c, got); err != nil {
					errs <- err
					return
				}
				if measuring.Load() {
					st.n++
					st.hist.add(time.Since(t0))
				}
			}
		}()
	}
	time.Sleep(warm)
	self := os.Getpid()
	var srv0, cli0 procSample
	var err error
	if pid != 0 {
		if srv0, err = sampleProc(pid); err != nil {
			return nil, err
		}
	}
	cli0, _ = sampleProc(self)
	busy0 := machineBusy()
	start := time.Now()
	measuring.Store(true)
	time.Sleep(dur)
	measuring.Store(false)
	el := time.Since(start)
	var srv1 procSample
	if pid != 0 {
		if srv1, err = sampleProc(pid); err != nil {
			return nil, err
		}
	}
	cli1, _ := sampleProc(self)
	busy1 := machineBusy()
	stopping.Store(true)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}

	var all latHist
	var total int64
	counts := make([]int64, 0, conns)
	for _, st := range stats {
		all.merge(&st.hist)
		total += st.n
		counts = append(counts, st.n)
	}
	if total == 0 {
		return nil, fmt.Errorf("no request completed in %v", el)
	}
	res := &echoResult{
		RPS:      float64(total) / el.Seconds(),
		Requests: total,
		Window:   el.Seconds(),
		P50:      all.quantile(0.50),
		P90:      all.quantile(0.90),
		P99:      all.quantile(0.99),
		P999:     all.quantile(0.999),
		Max:      all.quantile(1),
		MinShare: float64(slices.Min(counts)) / (float64(total) / float64(conns)),
	}
	if pid != 0 {
		d := srv1.sub(srv0)
		res.SrvCPU = float64(d.CPU.Microseconds()) / float64(total)
		res.SrvCS = float64(d.Switches) / float64(total)
		res.SrvThreads = d.Threads
	}
	d := cli1.sub(cli0)
	other := busy1 - busy0 - d.CPU
	if pid != 0 {
		other -= srv1.CPU - srv0.CPU
	}
	res.Other = max(other.Seconds()/el.Seconds(), 0)
	res.CliCPU = float64(d.CPU.Microseconds()) / float64(total)
	res.CliCS = float64(d.Switches) / float64(total)
	return res, nil
}

// latHist is a log-linear histogram of latencies in nanoseconds: exact
// below 64 ns, then 64 buckets per power of two (under 1.6% error).
type latHist struct {
	b [64 * 40]uint32
}

const subBits = 6

func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1
	return (e+1)<<subBits + int(v>>e) - 1<<subBits
}

// bucketLow is the smallest value of bucket i.
func bucketLow(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	e := i>>subBits - 1
	return uint64(i&(1<<subBits-1)+1<<subBits) << e
}

func (h *latHist) add(d time.Duration) {
	i := bucketOf(uint64(max(d, 0)))
	i = min(i, len(h.b)-1)
	h.b[i]++
}

func (h *latHist) merge(o *latHist) {
	for i, n := range o.b {
		h.b[i] += n
	}
}

// quantile returns the q-quantile in microseconds (the middle of its
// bucket); q = 1 is the largest value's bucket.
func (h *latHist) quantile(q float64) float64 {
	var total uint64
	for _, n := range h.b {
		total += uint64(n)
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total-1)) + 1
	var seen uint64
	for i, n := range h.b {
		seen += uint64(n)
		if seen >= rank {
			lo, hi := bucketLow(i), bucketLow(i+1)
			return float64(lo+hi) / 2 / 1e3
		}
	}
	return 0
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
