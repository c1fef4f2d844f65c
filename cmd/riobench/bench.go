package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// impl is one row source of a group: rio, the standard library or a
// reference program. run performs one measurement.
type impl struct {
	name string
	run  func(ctx context.Context) ([]sample, error)
}

// group is a set of implementations measured in alternation, whose rows
// the table compares with the baseline's.
type group struct {
	workload string // nop, direct, ...
	key      string // the group's parameter (depth=32, conns=16); rows without their own param get it
	x        int    // the parameter as a number, for the chart (depth, connections)
	baseline string
	impls    []impl
}

type bench struct {
	ctx     context.Context
	o       options
	self    string
	tmp     string // temporary directory for builds
	dataDir string // temporary directory for data files
	direct  string // O_DIRECT data file
	hot     string // page-cache-resident data file
	pinned  [][]byte
	cBin    string // C liburing NOP program, if built
	fioBin  string
	peerBin string // go-uring peer program, if built
	wrkBin  string // wrk, if it is the HTTP client
	notes   []string
	groups  []group
	results map[rowKey][]float64
	extras  map[rowKey]map[string][]float64
	units   map[rowKey]string
	failed  map[rowKey]string
	order   []rowKey
	started time.Time
	done    int
	total   int
	nopCPU  []int
	srvCPU  []int
	cliCPU  []int
	oneCPU  []int // both sides of a single connection
}

type rowKey struct {
	workload, param, impl string
}

func newBench(ctx context.Context, o options) *bench {
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	b := &bench{ctx: ctx, o: o, self: self,
		results: map[rowKey][]float64{}, extras: map[rowKey]map[string][]float64{},
		units: map[rowKey]string{}, failed: map[rowKey]string{}}
	if o.pin {
		cpus := allowedCPUs()
		last := cpus[len(cpus)-1]
		b.nopCPU = []int{last}
		b.srvCPU = []int{cpus[0]}
		b.cliCPU = []int{last}
		b.oneCPU = []int{last}
	}
	return b
}

func (b *bench) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	b.notes = append(b.notes, s)
	fmt.Fprintf(os.Stderr, "riobench: %s\n", s)
}

func (b *bench) progress(format string, args ...any) {
	el := time.Since(b.started).Round(time.Second)
	fmt.Fprintf(os.Stderr, "[%3d/%3d %5s] %s\n", b.done, b.total, el, fmt.Sprintf(format, args...))
}

func (b *bench) cleanup() {
	for _, m := range b.pinned {
		syscall.Munlock(m)
		syscall.Munmap(m)
	}
	b.pinned = nil
	if b.dataDir != "" {
		os.RemoveAll(b.dataDir)
		b.dataDir = ""
	}
	if b.tmp != "" {
		os.RemoveAll(b.tmp)
		b.tmp = ""
	}
}

// setup builds the reference programs, writes the data files and lists
// the groups to run.
func (b *bench) setup() error {
	b.started = time.Now()
	w := b.o.workloads
	var err error
	if b.tmp, err = os.MkdirTemp("", "riobench-"); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "riobench: Linux %s, %s, CPUs %v, %s, GOMAXPROCS %d\n",
		kernelRelease(), cpuModel(), allowedCPUs(), runtime.Version(), runtime.GOMAXPROCS(0))
	root := repoRoot()
	if w["nop"] && b.o.useC {
		b.buildC(root)
	}
	if b.o.useFio && (w["direct"] || w["hot"]) {
		if b.fioBin = lookPath("fio"); b.fioBin == "" {
			b.note("fio reference rows: fio is not installed (apt-get install -y fio)")
		}
	}
	if w["http"] && b.o.httpClient == "wrk" {
		if b.wrkBin = lookPath("wrk"); b.wrkBin == "" {
			return errors.New("-http-client wrk: wrk is not installed (apt-get install -y wrk)")
		}
	}
	if b.o.usePeers && (w["nop"] || w["direct"] || w["hot"]) {
		b.buildPeers(root)
	}
	if _, ok := listeners["rio"]; !ok && (w["echo"] || w["http"]) {
		b.note("rio net rows: this riobench was built without rio's net adapter (github.com/gorio/rio/net); only the standard library runs (see cmd/riobench/rionet.go)")
	}
	if w["direct"] || w["hot"] || w["copy"] {
		if b.dataDir, err = os.MkdirTemp(b.o.dir, "riobench-data-"); err != nil {
			return err
		}
		if w["direct"] {
			b.progress("writing %d MiB O_DIRECT data file in %s", b.o.fileMiB, b.o.dir)
			if b.direct, err = b.writeData("direct", false); err != nil {
				return err
			}
		}
		if w["hot"] || w["copy"] {
			b.progress("writing %d MiB page-cache-hot data file in %s", b.o.fileMiB, b.o.dir)
			if b.hot, err = b.writeData("hot", true); err != nil {
				return err
			}
		}
	}
	b.addGroups()
	for _, g := range b.groups {
		b.total += len(g.impls) * b.o.rounds
	}
	return nil
}

// buildC compiles bench/c/nopbench.c with liburing into the temporary
// directory.
func (b *bench) buildC(root string) {
	src := filepath.Join(root, "bench", "c", "nopbench.c")
	cc := lookPath("cc")
	switch {
	case root == "":
		b.note("C liburing reference: not available (no rio checkout found for bench/c; run riobench from the repository)")
		return
	case cc == "":
		b.note("C liburing reference: not available (no C compiler `cc`)")
		return
	}
	if _, err := os.Stat(src); err != nil {
		b.note("C liburing reference: not available (%v)", err)
		return
	}
	bin := filepath.Join(b.tmp, "nopbench")
	out, err := exec.CommandContext(b.ctx, cc, "-O2", "-o", bin, src, "-luring").CombinedOutput()
	if err != nil {
		b.note("C liburing reference: not available (cc -luring failed; apt-get install -y liburing-dev): %s", firstLine(out, err))
		return
	}
	b.cBin = bin
}

// buildPeers builds the go-uring comparison program of bench/peers, a
// module of its own.
func (b *bench) buildPeers(root string) {
	dir := filepath.Join(root, "bench", "peers")
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); root == "" || err != nil {
		b.note("go-uring peer rows: not available (bench/peers not found; run riobench from the repository)")
		return
	}
	gobin := lookPath("go")
	if gobin == "" {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	b.progress("building the go-uring peer (bench/peers)")
	bin := filepath.Join(b.tmp, "riobench-peers")
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.note("go-uring peer rows: not available (go build in bench/peers failed): %s", firstLine(out, err))
		return
	}
	b.peerBin = bin
}

func firstLine(out []byte, err error) string {
	s := strings.TrimSpace(string(out))
	if s == "" {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// writeData writes a file of random data. Either way it is written back
// and dropped from the page cache: O_DIRECT reads of dirty or cached pages
// take slower paths (io_uring punts them to io-wq workers). A hot file is
// then mapped and locked (mmap+mlock) for the whole run, as this machine's
// kernel evicts unmapped page cache after about a minute.
func (b *bench) writeData(name string, hot bool) (string, error) {
	path := filepath.Join(b.dataDir, name)
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	rng := rand.New(rand.NewPCG(uint64(len(name)), 42))
	size := int64(b.o.fileMiB) << 20
	for off := int64(0); off < size; off += int64(len(buf)) {
		for i := 0; i+8 <= len(buf); i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8; j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := f.Write(buf[:min(int64(len(buf)), size-off)]); err != nil {
			return "", err
		}
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	fadviseDontNeed(int(f.Fd()))
	if hot {
		m, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED|syscall.MAP_POPULATE)
		if err != nil {
			return "", fmt.Errorf("mmap %s: %w", path, err)
		}
		if err := syscall.Mlock(m); err != nil {
			b.note("mlock of the hot file failed (%v); the mapping alone keeps it mostly resident", err)
		}
		b.pinned = append(b.pinned, m)
	}
	return path, nil
}

// addGroups lists the groups of the selected workloads.
func (b *bench) addGroups() {
	o := b.o
	w := o.workloads
	dur := o.dur
	if w["nop"] {
		g := group{workload: "nop", baseline: "rio"}
		nopDur := dur / 2
		if b.cBin != "" {
			g.baseline = "C liburing"
			g.impls = append(g.impls, impl{"C liburing", func(ctx context.Context) ([]sample, error) { return b.runC(ctx, nopDur) }})
		}
		g.impls = append(g.impls, impl{"rio", b.self1(spec{Role: "nop", Impl: "rio", Dur: nopDur, Batch: o.batch, CPUs: b.nopCPU})})
		if b.peerBin != "" {
			g.impls = append(g.impls, impl{"go-uring", b.peer(spec{Role: "nop", Impl: "go-uring", Dur: nopDur, Batch: o.batch, CPUs: b.nopCPU})})
		}
		b.groups = append(b.groups, g)
	}
	if w["direct"] {
		for _, d := range o.depths {
			g := group{workload: "direct", key: fmt.Sprintf("depth=%d", d), x: d, baseline: "os.File"}
			s := spec{Role: "direct", Dur: dur, File: b.direct, Depth: d}
			g.impls = append(g.impls,
				impl{"os.File", b.self1(with(s, "os"))},
				impl{"rio file", b.self1(with(s, "rio"))},
				impl{"rio file async", b.self1(with(s, "rio-async"))})
			if b.peerBin != "" {
				g.impls = append(g.impls, impl{"go-uring", b.peer(with(s, "go-uring"))})
			}
			if b.fioBin != "" {
				g.impls = append(g.impls, impl{"fio io_uring", b.fio(b.direct, true, d)})
			}
			b.groups = append(b.groups, g)
		}
	}
	if w["hot"] {
		d := o.hotWorkers
		g := group{workload: "hot", key: fmt.Sprintf("depth=%d", d), x: d, baseline: "os.File"}
		s := spec{Role: "hot", Dur: dur, File: b.hot, Depth: d}
		g.impls = append(g.impls,
			impl{"os.File", b.self1(with(s, "os"))},
			impl{"rio file", b.self1(with(s, "rio"))},
			impl{"rio ring", b.self1(with(s, "rio-ring"))})
		if b.peerBin != "" {
			g.impls = append(g.impls, impl{"go-uring", b.peer(with(s, "go-uring"))})
		}
		if b.fioBin != "" {
			g.impls = append(g.impls, impl{"fio io_uring", b.fio(b.hot, false, d)})
		}
		b.groups = append(b.groups, g)
	}
	if w["copy"] {
		g := group{workload: "copy", key: fmt.Sprintf("%dMiB", o.fileMiB), baseline: "os.File"}
		s := spec{Role: "copy", Dur: dur, File: b.hot, Dst: filepath.Join(b.dataDir, "copy-dst")}
		g.impls = append(g.impls, impl{"os.File", b.self1(with(s, "os"))}, impl{"rio file", b.self1(with(s, "rio"))})
		b.groups = append(b.groups, g)
	}
	netImpls := []string{"std"}
	if _, ok := listeners["rio"]; ok {
		netImpls = append(netImpls, "rio")
	}
	label := map[string]string{"std": "net (epoll)", "rio": "rio net"}
	if w["echo"] {
		for _, c := range o.conns {
			g := group{workload: "echo", key: fmt.Sprintf("conns=%d", c), x: c, baseline: label["std"]}
			srvCPU, cliCPU := b.srvCPU, b.cliCPU
			if c == 1 {
				srvCPU, cliCPU = b.oneCPU, b.oneCPU // latency: both on one CPU
			}
			for _, n := range netImpls {
				srv := spec{Role: "echo-server", Impl: n, CPUs: srvCPU, MaxLife: 3*dur + time.Minute}
				cli := spec{Role: "echo-client", Dur: dur, Conns: c, Msg: o.msg, CPUs: cliCPU}
				g.impls = append(g.impls, impl{label[n], b.netPair(srv, cli)})
			}
			b.groups = append(b.groups, g)
		}
	}
	if w["http"] {
		g := group{workload: "http", key: fmt.Sprintf("conns=%d", o.httpConns), x: o.httpConns, baseline: label["std"]}
		for _, n := range netImpls {
			srv := spec{Role: "http-server", Impl: n, CPUs: b.srvCPU, MaxLife: 3*dur + time.Minute}
			if b.wrkBin != "" {
				g.impls = append(g.impls, impl{label[n], b.serverAnd(srv, b.wrk)})
				continue
			}
			cli := spec{Role: "http-client", Dur: dur, Conns: o.httpConns, CPUs: b.cliCPU}
			g.impls = append(g.impls, impl{label[n], b.netPair(srv, cli)})
		}
		b.groups = append(b.groups, g)
	}
}

func with(s spec, implName string) spec {
	s.Impl = implName
	return s
}

// run measures every group: for each group, rounds of all its
// implementations, in reversed order every other round.
func (b *bench) run() {
	for _, g := range b.groups {
		for round := 0; round < b.o.rounds; round++ {
			order := make([]impl, len(g.impls))
			copy(order, g.impls)
			if round%2 == 1 {
				for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
					order[i], order[j] = order[j], order[i]
				}
			}
			for _, im := range order {
				if b.ctx.Err() != nil {
					return
				}
				b.done++
				if msg, bad := b.failed[rowKey{g.workload, g.key, im.name}]; bad {
					b.progress("%-6s %-10s %-16s round %d/%d: skipped (%s)", g.workload, g.key, im.name, round+1, b.o.rounds, msg)
					continue
				}
				ctx, cancel := context.WithTimeout(b.ctx, 3*b.o.dur+90*time.Second)
				res, err := im.run(ctx)
				cancel()
				if err != nil {
					if b.ctx.Err() != nil {
						return
					}
					msg := err.Error()
					b.failed[rowKey{g.workload, g.key, im.name}] = msg
					b.note("%s %s %s: %s", g.workload, g.key, im.name, msg)
					continue
				}
				var shown []string
				for _, s := range res {
					param := s.Param
					if param == "" {
						param = g.key
					}
					k := rowKey{g.workload, param, im.name}
					if _, seen := b.results[k]; !seen {
						b.order = append(b.order, k)
					}
					b.results[k] = append(b.results[k], s.Value)
					b.units[k] = s.Unit
					for name, v := range s.Extra {
						if b.extras[k] == nil {
							b.extras[k] = map[string][]float64{}
						}
						b.extras[k][name] = append(b.extras[k][name], v)
					}
					shown = append(shown, fmt.Sprintf("%s %s %s", param, human(s.Value), s.Unit))
				}
				b.progress("%-6s %-16s round %d/%d: %s", g.workload, im.name, round+1, b.o.rounds, strings.Join(shown, ", "))
			}
		}
	}
}

// child runs cmd and parses its "RESULT <json>" line.
func (b *bench) child(cmd *exec.Cmd, pinAfterStart []int) ([]sample, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if b.o.verbose {
		fmt.Fprintf(os.Stderr, "riobench: run %s\n", strings.Join(cmd.Args, " "))
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if len(pinAfterStart) > 0 {
		setAffinity(cmd.Process.Pid, pinAfterStart)
	}
	err := cmd.Wait()
	if b.o.verbose && stderr.Len() > 0 {
		os.Stderr.Write(stderr.Bytes())
	}
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, firstLine(stderr.Bytes(), err))
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
			var res []sample
			if err := json.Unmarshal([]byte(rest), &res); err != nil {
				return nil, fmt.Errorf("bad result %q: %v", rest, err)
			}
			return res, nil
		}
	}
	return nil, fmt.Errorf("no result in output: %s", firstLine(stdout.Bytes(), errors.New("empty output")))
}

// self1 runs one measurement in a child riobench.
func (b *bench) self1(s spec) func(ctx context.Context) ([]sample, error) {
	return func(ctx context.Context) ([]sample, error) {
		arg, _ := json.Marshal(s)
		return b.child(exec.CommandContext(ctx, b.self, "child", string(arg)), nil)
	}
}

// peer runs one measurement in the go-uring peer program.
func (b *bench) peer(s spec) func(ctx context.Context) ([]sample, error) {
	return func(ctx context.Context) ([]sample, error) {
		arg, _ := json.Marshal(s)
		return b.child(exec.CommandContext(ctx, b.peerBin, string(arg)), nil)
	}
}

// runC runs bench/c's nopbench for d per mode and parses its two lines.
func (b *bench) runC(ctx context.Context, d time.Duration) ([]sample, error) {
	cmd := exec.CommandContext(ctx, b.cBin, strconv.FormatFloat(d.Seconds(), 'f', 3, 64), strconv.Itoa(b.o.batch))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if len(b.nopCPU) > 0 {
		setAffinity(cmd.Process.Pid, b.nopCPU) // single-threaded; nopbench warms up first
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("%v: %s", err, firstLine(stderr.Bytes(), err))
	}
	var res []sample
	for _, line := range strings.Split(stdout.String(), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		param := strings.TrimPrefix(f[0], "nop_")
		for _, kv := range f[1:] {
			if v, ok := strings.CutPrefix(kv, "ops_per_sec="); ok {
				x, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return nil, fmt.Errorf("bad nopbench output %q", line)
				}
				res = append(res, sample{Param: param, Value: x, Unit: "ops/s"})
			}
		}
	}
	if len(res) != 2 {
		return nil, fmt.Errorf("bad nopbench output %q", stdout.String())
	}
	return res, nil
}

// fio runs fio's io_uring engine on path: 4 KiB random reads at iodepth
// depth, one job, for the measurement's duration.
func (b *bench) fio(path string, direct bool, depth int) func(ctx context.Context) ([]sample, error) {
	return func(ctx context.Context) ([]sample, error) {
		args := []string{"--name=riobench", "--filename=" + path, "--ioengine=io_uring", "--rw=randread", "--bs=4k",
			"--iodepth=" + strconv.Itoa(depth), fmt.Sprintf("--runtime=%dms", b.o.dur.Milliseconds()), "--time_based",
			"--output-format=terse", "--terse-version=3"}
		if direct {
			args = append(args, "--direct=1")
		} else {
			args = append(args, "--direct=0", "--invalidate=0")
		}
		out, err := exec.CommandContext(ctx, b.fioBin, args...).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return nil, fmt.Errorf("fio: %v: %s", err, firstLine(ee.Stderr, err))
			}
			return nil, err
		}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Split(line, ";")
			if len(f) > 8 && f[0] == "3" {
				iops, err := strconv.ParseFloat(f[7], 64)
				if err != nil {
					return nil, fmt.Errorf("bad fio output %q", line)
				}
				return []sample{{Value: iops, Unit: "IOPS"}}, nil
			}
		}
		return nil, fmt.Errorf("no terse line in fio output")
	}
}

// netPair starts a server child, then a client child against it.
func (b *bench) netPair(srv, cli spec) func(ctx context.Context) ([]sample, error) {
	return b.serverAnd(srv, func(ctx context.Context, addr string) ([]sample, error) {
		cli.Addr = addr
		return b.self1(cli)(ctx)
	})
}

// serverAnd starts a server child, runs client against its address, and
// stops the server when the client is done. Both are bounded in time.
func (b *bench) serverAnd(srv spec, client func(ctx context.Context, addr string) ([]sample, error)) func(ctx context.Context) ([]sample, error) {
	return func(ctx context.Context) ([]sample, error) {
		arg, _ := json.Marshal(srv)
		cmd := exec.CommandContext(ctx, b.self, "child", string(arg))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		defer func() {
			stdin.Close()
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}()
		addr := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
					addr <- a
				}
			}
			io.Copy(io.Discard, stdout)
		}()
		var a string
		select {
		case a = <-addr:
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("server did not start: %s", firstLine(stderr.Bytes(), errors.New("timeout")))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		res, err := client(ctx, a)
		if err != nil && stderr.Len() > 0 {
			err = fmt.Errorf("%v (server: %s)", err, firstLine(stderr.Bytes(), nil))
		}
		return res, err
	}
}

var wrkRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// wrk drives the HTTP server with wrk (one thread, -http-conns
// connections, pinned like the Go client) instead of riobench's own client.
func (b *bench) wrk(ctx context.Context, addr string) ([]sample, error) {
	secs := max(1, int(b.o.dur.Round(time.Second).Seconds()))
	argv := []string{b.wrkBin, "-t1", fmt.Sprintf("-c%d", b.o.httpConns), fmt.Sprintf("-d%ds", secs), "http://" + addr + "/"}
	taskset := lookPath("taskset")
	if len(b.cliCPU) > 0 && taskset != "" {
		argv = append([]string{taskset, "-c", cpuList(b.cliCPU)}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if len(b.cliCPU) > 0 && taskset == "" {
		setAffinity(cmd.Process.Pid, b.cliCPU) // best effort: wrk's threads may start first
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("wrk: %v: %s", err, firstLine(stderr.Bytes(), err))
	}
	m := wrkRPS.FindSubmatch(stdout.Bytes())
	if m == nil {
		return nil, fmt.Errorf("wrk: no Requests/sec in its output")
	}
	rps, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return nil, err
	}
	return []sample{{Param: fmt.Sprintf("conns=%d", b.o.httpConns), Value: rps, Unit: "req/s"}}, nil
}
