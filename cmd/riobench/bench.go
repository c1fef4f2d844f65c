package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// bench holds what a run needs besides its options: the temporary
// directories, the built reference programs and the data files.
type bench struct {
	ctx     context.Context
	o       options
	r       *runner
	self    string
	tmp     string // temporary directory for builds
	dataDir string // temporary directory for data files
	direct  string // O_DIRECT data file
	hot     string // page-cache-resident data file
	pinned  [][]byte
	cBin    string // C liburing NOP program, if built
	fioBin  string
	peerBin string // go-uring peer program, if built
	nopCPU  []int
}

func newBench(ctx context.Context, o options, r *runner) *bench {
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	b := &bench{ctx: ctx, o: o, r: r, self: self}
	if o.pin {
		cpus := allowedCPUs()
		b.nopCPU = []int{cpus[len(cpus)-1]}
	}
	return b
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(b.r.out, "riobench: %s\n", fmt.Sprintf(format, args...))
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

// setup builds the reference programs, writes the data files and returns
// the sources to run.
func (b *bench) setup() ([]rowSource, error) {
	w := b.o.workloads
	var err error
	if b.tmp, err = os.MkdirTemp("", "riobench-"); err != nil {
		return nil, err
	}
	root := b.o.root
	if w["nop"] && b.o.useC {
		b.buildC(root)
	}
	if b.o.useFio && (w["direct"] || w["hot"]) {
		if b.fioBin = lookPath("fio"); b.fioBin == "" {
			b.r.note("fio reference rows: fio is not installed (apt-get install -y fio)")
		}
	}
	if b.o.usePeers && (w["nop"] || w["direct"] || w["hot"]) {
		b.buildPeers(root)
	}
	var sources []rowSource
	if src := b.fileSource(); src != nil {
		sources = append(sources, src)
		if w["direct"] || w["hot"] || w["copy"] {
			if b.dataDir, err = os.MkdirTemp(b.o.dir, "riobench-data-"); err != nil {
				return nil, err
			}
			if w["direct"] {
				b.progress("writing the %d MiB O_DIRECT data file in %s", b.o.fileMiB, b.o.dir)
				if b.direct, err = b.writeData("direct", false); err != nil {
					return nil, err
				}
			}
			if w["hot"] || w["copy"] {
				b.progress("writing the %d MiB page-cache-hot data file in %s", b.o.fileMiB, b.o.dir)
				if b.hot, err = b.writeData("hot", true); err != nil {
					return nil, err
				}
			}
		}
	}
	if net := b.netSource(root); net != nil {
		sources = append(sources, net)
	}
	return sources, nil
}

// buildC compiles bench/c/nopbench.c with liburing into the temporary
// directory.
func (b *bench) buildC(root string) {
	src := filepath.Join(root, "bench", "c", "nopbench.c")
	cc := lookPath("cc")
	switch {
	case root == "":
		b.r.note("C liburing reference: not available (no rio checkout found for bench/c; run riobench from the repository)")
		return
	case cc == "":
		b.r.note("C liburing reference: not available (no C compiler `cc`)")
		return
	}
	if _, err := os.Stat(src); err != nil {
		b.r.note("C liburing reference: not available (%v)", err)
		return
	}
	bin := filepath.Join(b.tmp, "nopbench")
	out, err := exec.CommandContext(b.ctx, cc, "-O2", "-o", bin, src, "-luring").CombinedOutput()
	if err != nil {
		b.r.note("C liburing reference: not available (cc -luring failed; apt-get install -y liburing-dev): %s", firstLine(out, err))
		return
	}
	b.cBin = bin
}

// goBuild builds the main package in dir (a directory of the checkout)
// into the temporary directory as name. module is the directory of its
// go.mod, where the build runs.
func (b *bench) goBuild(module, pkg, name string) (string, error) {
	bin := filepath.Join(b.tmp, name)
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", bin, pkg)
	cmd.Dir = module
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %s", pkg, firstLine(out, err))
	}
	return bin, nil
}

// buildPeers builds the go-uring comparison program of bench/peers, a
// module of its own.
func (b *bench) buildPeers(root string) {
	dir := filepath.Join(root, "bench", "peers")
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); root == "" || err != nil {
		b.r.note("go-uring peer rows: not available (bench/peers not found; run riobench from the repository)")
		return
	}
	b.progress("building the go-uring peer (bench/peers)")
	bin, err := b.goBuild(dir, ".", "riobench-peers")
	if err != nil {
		b.r.note("go-uring peer rows: not available: %v", err)
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
	if err := fadviseDontNeed(int(f.Fd())); err != nil {
		b.r.note("fadvise(DONTNEED) of %s: %v", path, err)
	}
	if hot {
		m, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED|syscall.MAP_POPULATE)
		if err != nil {
			return "", fmt.Errorf("mmap %s: %w", path, err)
		}
		if err := syscall.Mlock(m); err != nil {
			b.r.note("mlock of the hot file failed (%v); the mapping alone keeps it mostly resident", err)
		}
		b.pinned = append(b.pinned, m)
	}
	return path, nil
}

// fileSource is the core ring and file/ workloads, run in riobench's own
// child processes: nil if none is selected. Its groups are listed before
// the data files exist; the run functions read the paths when they run.
func (b *bench) fileSource() *altSource {
	o := b.o
	w := o.workloads
	dur := o.dur
	src := &altSource{rounds: o.rounds, each: dur + 150*time.Millisecond, timeout: 3*dur + 90*time.Second}
	add := func(g groupInfo) {
		g.Source = "riobench"
		src.gs = append(src.gs, g)
	}
	if w["nop"] {
		base := "rio"
		if b.cBin != "" {
			base = "C liburing"
		}
		add(groupInfo{Workload: "nop", Param: "mode=single", Title: "NOP round trip", Baseline: base, Unit: "ops/s"})
		add(groupInfo{Workload: "nop", Param: fmt.Sprintf("mode=batch%d", o.batch), Title: fmt.Sprintf("NOPs in batches of %d", o.batch), Baseline: base, Unit: "ops/s"})
		u := altUnit{workload: "nop"}
		nopDur := dur / 2
		if b.cBin != "" {
			u.impls = append(u.impls, impl{"C liburing", func(ctx context.Context) ([]sample, error) { return b.runC(ctx, nopDur) }})
		}
		s := spec{Role: "nop", Dur: nopDur, Batch: o.batch}
		u.impls = append(u.impls, impl{"rio", b.self1(with(s, "rio"), b.nopCPU)})
		if b.peerBin != "" {
			u.impls = append(u.impls, impl{"go-uring", b.peer(with(s, "go-uring"), b.nopCPU)})
		}
		src.units = append(src.units, u)
	}
	if w["direct"] {
		for _, d := range o.depths {
			p := fmt.Sprintf("depth=%d", d)
			add(groupInfo{Workload: "direct", Param: p, Title: "O_DIRECT 4 KiB random reads", Baseline: "os.File", Unit: "IOPS"})
			s := spec{Role: "direct", Dur: dur, Depth: d}
			u := altUnit{workload: "direct", param: p, impls: []impl{
				{"os.File", b.self1(with(s, "os"), nil)},
				{"rio file", b.self1(with(s, "rio"), nil)},
				{"rio file async", b.self1(with(s, "rio-async"), nil)}}}
			src.units = append(src.units, b.withRefs(u, s))
		}
	}
	if w["hot"] {
		d := o.hotWorkers
		p := fmt.Sprintf("depth=%d", d)
		add(groupInfo{Workload: "hot", Param: p, Title: "page-cache-hot 4 KiB random reads", Baseline: "os.File", Unit: "IOPS"})
		s := spec{Role: "hot", Dur: dur, Depth: d}
		u := altUnit{workload: "hot", param: p, impls: []impl{
			{"os.File", b.self1(with(s, "os"), nil)},
			{"rio file", b.self1(with(s, "rio"), nil)},
			{"rio ring", b.self1(with(s, "rio-ring"), nil)}}}
		src.units = append(src.units, b.withRefs(u, s))
	}
	if w["copy"] {
		p := fmt.Sprintf("size=%dMiB", o.fileMiB)
		add(groupInfo{Workload: "copy", Param: p, Title: "io.Copy file to file", Baseline: "os.File", Unit: "MiB/s"})
		s := spec{Role: "copy", Dur: dur}
		src.units = append(src.units, altUnit{workload: "copy", param: p, impls: []impl{
			{"os.File", b.self1(with(s, "os"), nil)}, {"rio file", b.self1(with(s, "rio"), nil)}}})
	}
	if len(src.units) == 0 {
		return nil
	}
	return src
}

// withRefs adds the reference rows of a random read unit: go-uring and
// fio, where they are available.
func (b *bench) withRefs(u altUnit, s spec) altUnit {
	if b.peerBin != "" {
		u.impls = append(u.impls, impl{"go-uring", b.peer(with(s, "go-uring"), nil)})
	}
	if b.fioBin != "" {
		u.impls = append(u.impls, impl{"fio io_uring", b.fio(s.Role == "direct", s.Depth)})
	}
	return u
}

func with(s spec, implName string) spec {
	s.Impl = implName
	return s
}

// files fills in the data file paths of s, known once setup wrote them.
func (b *bench) files(s spec) spec {
	switch s.Role {
	case "direct":
		s.File = b.direct
	case "hot":
		s.File = b.hot
	case "copy":
		s.File, s.Dst = b.hot, filepath.Join(b.dataDir, "copy-dst")
	}
	return s
}

// child runs cmd, pinned to cpus (none: unpinned), and parses its
// "RESULT <json>" line.
func (b *bench) child(cmd *exec.Cmd, cpus []int) ([]sample, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if b.o.verbose {
		fmt.Fprintf(os.Stderr, "riobench: run %s (CPUs %v)\n", strings.Join(cmd.Args, " "), cpus)
	}
	if err := startOn(cmd, cpus); err != nil {
		return nil, err
	}
	err := cmd.Wait()
	if b.o.verbose && stderr.Len() > 0 {
		os.Stderr.Write(stderr.Bytes())
	}
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, firstLine(stderr.Bytes(), err))
	}
	return parseResult(stdout.String())
}

// parseResult finds the "RESULT <json []sample>" line of a child's output.
func parseResult(out string) ([]sample, error) {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
			var res []sample
			if err := json.Unmarshal([]byte(rest), &res); err != nil {
				return nil, fmt.Errorf("bad result %q: %v", rest, err)
			}
			for i := range res {
				// The go-uring peer names the NOP modes bare.
				if p := res[i].Param; p != "" && !strings.Contains(p, "=") {
					res[i].Param = "mode=" + p
				}
			}
			return res, nil
		}
	}
	return nil, fmt.Errorf("no result in output: %s", firstLine([]byte(out), errors.New("empty output")))
}

// self1 runs one measurement in a child riobench.
func (b *bench) self1(s spec, cpus []int) func(ctx context.Context) ([]sample, error) {
	return func(ctx context.Context) ([]sample, error) {
		arg, _ := json.Marshal(b.files(s))
		return b.child(exec.CommandContext(ctx, b.self, "child", string(arg)), cpus)
	}
}

// peer runs one measurement in the go-uring peer program.
func (b *bench) peer(s spec, cpus []int) func(ctx context.Context) ([]sample, error) {
	return func(ctx context.Context) ([]sample, error) {
		arg, _ := json.Marshal(b.files(s))
		return b.child(exec.CommandContext(ctx, b.peerBin, string(arg)), cpus)
	}
}

// runC runs bench/c's nopbench for d per mode and parses its two lines.
func (b *bench) runC(ctx context.Context, d time.Duration) ([]sample, error) {
	cmd := exec.CommandContext(ctx, b.cBin, strconv.FormatFloat(d.Seconds(), 'f', 3, 64), strconv.Itoa(b.o.batch))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := startOn(cmd, b.nopCPU); err != nil {
		return nil, err
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("%v: %s", err, firstLine(stderr.Bytes(), err))
	}
	return parseNopbench(stdout.String())
}

// parseNopbench reads nopbench's "nop_<mode> ops_per_sec=... ..." lines.
func parseNopbench(out string) ([]sample, error) {
	var res []sample
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		mode := strings.TrimPrefix(f[0], "nop_")
		for _, kv := range f[1:] {
			if v, ok := strings.CutPrefix(kv, "ops_per_sec="); ok {
				x, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return nil, fmt.Errorf("bad nopbench output %q", line)
				}
				res = append(res, sample{Param: "mode=" + mode, Value: x, Unit: "ops/s"})
			}
		}
	}
	if len(res) != 2 {
		return nil, fmt.Errorf("bad nopbench output %q", out)
	}
	return res, nil
}

// fio runs fio's io_uring engine on the direct or hot file: 4 KiB random
// reads at iodepth depth, one job, for the measurement's duration.
func (b *bench) fio(direct bool, depth int) func(ctx context.Context) ([]sample, error) {
	return func(ctx context.Context) ([]sample, error) {
		path := b.hot
		if direct {
			path = b.direct
		}
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
		return parseFioTerse(string(out))
	}
}

// parseFioTerse reads the read IOPS (field 8) of fio's terse version 3
// output.
func parseFioTerse(out string) ([]sample, error) {
	for _, line := range strings.Split(out, "\n") {
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
