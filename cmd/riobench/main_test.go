package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/testutil"
)

// The test binary is the program when run by testutil.RunMain.
func TestMain(m *testing.M) { testutil.MainOrTests(m, main) }

// A tiny run of every workload: the table, and in the results folder the
// table, the JSON, the chart and the benchstat file.
func TestSmoke(t *testing.T) {
	if r, err := rio.New(); err != nil {
		if errors.Is(err, rio.ErrNotSupported) && os.Getenv("RIO_REQUIRE_URING") != "1" {
			t.Skip("io_uring unavailable:", err)
		}
		t.Fatal(err)
	} else {
		r.Close()
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "results")
	// Race-enabled binaries sleep 1s at exit unless told otherwise, and
	// every measurement is a child process.
	env := []string{"GORACE=atexit_sleep_ms=0 " + os.Getenv("GORACE")}
	stdout, stderr, err := testutil.RunMain(t, env, "-rounds", "2", "-dur", "100ms", "-file-mib", "4", "-dir", dir,
		"-depths", "2,4", "-hot-workers", "4", "-net-scenarios", "echo1-pinned,echo16-64", "-net-impls", "std,rio",
		"-net-warmup", "50ms", "-peers=false", "-fio=false", "-c=false", "-out", out)
	if err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	t.Logf("%s", stdout)
	for _, want := range []string{"workload", "NOP round trip", "mode=single", "mode=batch32", "O_DIRECT 4 KiB random reads",
		"depth=4", "page-cache-hot", "io.Copy", "TCP echo", "conns=16 msg=64B", "rio file async", "net (epoll)", "rio net", "base",
		"2 rounds of 100ms", "wrote " + out} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !strings.Contains(stderr, "round 2/2") || !strings.Contains(stderr, "left]") {
		t.Errorf("no progress lines with an estimate on stderr:\n%s", stderr)
	}
	rep, err := readReport(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	impls := map[string]bool{}
	for _, r := range rep.Rows {
		impls[r.Workload+"/"+r.Impl] = true
		if len(r.Values) != 2 || r.Median <= 0 {
			t.Errorf("row %s %s %s: want 2 positive values, have %v", r.Workload, r.Param, r.Impl, r.Values)
		}
		if r.Impl == r.Baseline && (r.VsBase == nil || r.VsBase.Ratio != 1) {
			t.Errorf("baseline row %s %s: %+v", r.Workload, r.Param, r.VsBase)
		}
	}
	for _, want := range []string{"nop/rio", "direct/os.File", "direct/rio file", "direct/rio file async", "hot/rio ring",
		"copy/rio file", "echo/net (epoll)", "echo/rio net"} {
		if !impls[want] {
			t.Errorf("no %s rows in the JSON", want)
		}
	}
	table, err := os.ReadFile(filepath.Join(out, "table.txt"))
	if err != nil || !bytes.Contains([]byte(stdout), table) {
		t.Errorf("table.txt is not the printed table (%v)", err)
	}
	svg, err := os.ReadFile(filepath.Join(out, "chart.svg"))
	if err != nil {
		t.Fatal(err)
	}
	checkSVG(t, svg, rep)
	bench, err := os.ReadFile(filepath.Join(out, "bench.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if n := checkBenchfmt(t, bench); n != countValues(rep) {
		t.Errorf("bench.txt has %d result lines, the report %d rounds", n, countValues(rep))
	}
	// No data files are left behind.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "riobench-data-") {
			t.Errorf("left %s behind", e.Name())
		}
	}
}

func countValues(rep *report) int {
	n := 0
	for _, r := range rep.Rows {
		n += len(r.Values)
	}
	return n
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-workloads", "nope"}, {"-depths", "0"}, {"-rounds", "0"}, {"extra"}} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestQuickDefaults(t *testing.T) {
	o, err := parseFlags([]string{"-quick"})
	if err != nil {
		t.Fatal(err)
	}
	if o.rounds != 3 || o.dur.String() != "300ms" || o.fileMiB != 64 || strings.Join(o.netScenarios, ",") != quickNetScenarios {
		t.Errorf("-quick: %+v", o)
	}
	o, err = parseFlags([]string{"-quick", "-rounds", "4"})
	if err != nil || o.rounds != 4 {
		t.Errorf("-quick -rounds 4: rounds %d, %v", o.rounds, err)
	}
	o, err = parseFlags(nil)
	if err != nil || o.rounds != 6 || strings.Join(o.netScenarios, ",") != defaultNetScenarios {
		t.Errorf("defaults: %+v, %v", o, err)
	}
}

func TestParseChildOutputs(t *testing.T) {
	res, err := parseNopbench("nop_single ops_per_sec=1950000 ns_per_op=512.8\nnop_batch32 ops_per_sec=1.1e7 ns_per_op=90\n")
	if err != nil || len(res) != 2 || res[0].Param != "mode=single" || res[1].Param != "mode=batch32" || res[1].Value != 1.1e7 {
		t.Errorf("parseNopbench: %+v, %v", res, err)
	}
	if _, err := parseNopbench("nop_single ops_per_sec=x\n"); err == nil {
		t.Error("parseNopbench accepted a bad number")
	}
	line := "3;fio-3.36;riobench;0;0;0;0;61234;0;0\n"
	if res, err := parseFioTerse(line); err != nil || res[0].Value != 61234 {
		t.Errorf("parseFioTerse: %+v, %v", res, err)
	}
	res, err = parseResult(`noise` + "\n" + `RESULT [{"param":"single","value":5,"unit":"ops/s"},{"param":"depth=4","value":6,"unit":"IOPS"}]` + "\n")
	if err != nil || res[0].Param != "mode=single" || res[1].Param != "depth=4" {
		t.Errorf("parseResult: %+v, %v", res, err)
	}
}

// bench/net's JSON lines (one per run, then summaries) become
// measurements of the scenario's group.
func TestNetMeasurement(t *testing.T) {
	lines := `{"scenario":"echo256-64","impl":"rio","run":2,"metrics":{"rps":91234.5,"p99_us":812,"srv_cpu_us_per_req":9.5,"srv_cs_per_req":0.8}}
{"scenario":"idle10k","impl":"std","run":1,"metrics":{"rss_mib":43.2}}
{"scenario":"echo256-64","impl":"c-uring","run":1,"metrics":{"rps":150000}}
{"scenario":"future9","impl":"gnet+GNET_X=1","run":3,"metrics":{"rps":7}}
{"scenario":"echo256-64","impl":"rio","summary":true,"metrics":{"rps":90000}}
| scenario | server |`
	var got []measurement
	for _, l := range strings.Split(lines, "\n") {
		m, _, ok, err := netMeasurement([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			got = append(got, m)
		}
	}
	if len(got) != 4 {
		t.Fatalf("got %d measurements, want 4: %+v", len(got), got)
	}
	if m := got[0]; m.Workload != "echo" || m.Param != "conns=256 msg=64B" || m.Impl != "rio net" || m.Round != 2 || m.Value != 91234.5 ||
		m.Metrics["srv_cpu_us_per_req"] != 9.5 || m.Metrics["p99_us"] != 812 || len(m.Metrics) != 3 {
		t.Errorf("echo run: %+v", m)
	}
	if m := got[1]; m.Workload != "idle" || m.Value != 43.2 || m.Impl != "net (epoll)" {
		t.Errorf("idle run: %+v", m)
	}
	if m := got[2]; m.Impl != "C io_uring" {
		t.Errorf("C server run: %+v", m)
	}
	if m := got[3]; m.Workload != "net" || m.Param != "scenario=future9" || m.Impl != "gnet GNET_X=1" {
		t.Errorf("unknown scenario and implementation: %+v", m)
	}
	if _, _, _, err := netMeasurement([]byte(`{"scenario":"echo1","impl":"rio","run":1,"metrics":{}}`)); err == nil {
		t.Error("a run without rps was accepted")
	}
}

// checkBenchfmt checks data line by line against the Go benchmark format
// (golang.org/design/14313-benchmark-format) and returns the number of
// result lines. bench/stat parses the golden file with x/perf's benchfmt
// too.
func checkBenchfmt(t *testing.T, data []byte) int {
	t.Helper()
	results := 0
	units := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		f := strings.Fields(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "Benchmark"):
			if len(f) < 4 || len(f)%2 != 0 {
				t.Errorf("line %d: want name, iterations and value-unit pairs: %q", n, line)
				continue
			}
			if f[1] != "1" {
				t.Errorf("line %d: iterations %q", n, f[1])
			}
			for i := 2; i < len(f); i += 2 {
				if _, err := parseFloat(f[i]); err != nil {
					t.Errorf("line %d: value %q: %v", n, f[i], err)
				}
				if !units[f[i+1]] {
					t.Errorf("line %d: unit %q has no Unit line before it", n, f[i+1])
				}
			}
			for _, part := range strings.Split(f[0], "/")[1:] {
				if k, v, ok := strings.Cut(part, "="); !ok || k == "" || v == "" {
					t.Errorf("line %d: name part %q is not key=value", n, part)
				}
			}
			results++
		case strings.HasPrefix(line, "Unit "):
			if len(f) != 3 || (f[2] != "better=higher" && f[2] != "better=lower") {
				t.Errorf("line %d: %q", n, line)
			}
			units[f[1]] = true
		default:
			k, _, ok := strings.Cut(line, ": ")
			if !ok || k == "" || strings.ContainsAny(k, " \t") || strings.ToLower(k) != k {
				t.Errorf("line %d: neither a result, a unit nor a configuration line: %q", n, line)
			}
		}
	}
	return results
}

func parseFloat(s string) (float64, error) { return strconv.ParseFloat(s, 64) }

// The bench/net source runs its tool with the run's settings, records
// every run line as it comes, turns the tool's "skipping" lines and its
// failure into notes, and counts one step per run.
func TestBenchNetRun(t *testing.T) {
	dir := t.TempDir()
	tool := filepath.Join(dir, "tool")
	args := filepath.Join(dir, "args")
	script := `#!/bin/sh
echo "$@" > ` + args + `
echo "skipping c-epoll: gcc not found" >&2
echo '{"scenario":"echo16-64","impl":"std","run":1,"metrics":{"rps":100,"srv_cpu_us_per_req":8}}'
echo '{"scenario":"echo16-64","impl":"rio","run":1,"metrics":{"rps":120,"srv_cpu_us_per_req":7}}'
echo '{"scenario":"echo16-64","impl":"rio","summary":true,"metrics":{"rps":120}}'
echo "echo16-64: server did not start" >&2
exit 1
`
	if err := os.WriteFile(tool, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"-rounds", "2", "-dur", "100ms", "-net-impls", "std,rio"})
	if err != nil {
		t.Fatal(err)
	}
	r := newRunner(io.Discard)
	b := &bench{o: o, r: r}
	src := &benchNet{b: b, tool: benchNetTool, bin: tool, dir: dir, scen: []netScenario{findScenario("echo16-64")},
		impls: "std,rio", extra: []string{"-x", "loop=/bin/loop -addr 127.0.0.1:0"}}
	r.runAll(context.Background(), []rowSource{src})
	if r.done != 2 || r.total != 2 {
		t.Errorf("done %d of %d, want 2 of 2 (planned 4, the tool failed after 2)", r.done, r.total)
	}
	rows := buildRows(src.groups(), r)
	if len(rows) != 2 || rows[1].Impl != "rio net" || rows[1].VsBase == nil || rows[1].VsBase.Ratio != 1.2 {
		t.Errorf("rows: %+v", rows)
	}
	notes := strings.Join(r.notes, "\n")
	for _, want := range []string{"bench/net skipped c-epoll: gcc not found", "bench/net failed (exit status 1)", "server did not start"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	got, _ := os.ReadFile(args)
	if want := "-only echo16-64 -runs 2 -dur 100ms -warmup 300ms -impls std,rio -x loop=/bin/loop -addr 127.0.0.1:0\n"; string(got) != want {
		t.Errorf("tool args %q, want %q", got, want)
	}
}

// The extra servers (LoopServer, gnet) are built where the checkout has
// them and handed to bench/net with -x and in -impls, by default or when
// -net-impls names them; one the checkout lacks is dropped from -impls
// (bench/net would fail on it) with a note, if it was asked for.
func TestExtraServers(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A checkout with a loop server and no bench/gnet.
	write("go.mod", "module example.com/fake\n\ngo 1.24\n")
	write("bench/loop/main.go", "package main\n\nfunc main() { println(\"listening 127.0.0.1:1\") }\n")
	for _, tc := range []struct {
		netImpls, impls, note string
		extra                 bool
	}{
		{"", benchNetImpls + ",loop", "", true},
		{"std,loop", "std,loop", "", true},
		{"std,rio", "std,rio", "", false},
		{"std,gnet,rio", "std,rio", "no gnet rows: bench/gnet is not in this checkout", false},
	} {
		o, err := parseFlags([]string{"-net-impls", tc.netImpls})
		if err != nil {
			t.Fatal(err)
		}
		r := newRunner(io.Discard)
		b := &bench{ctx: context.Background(), o: o, r: r, tmp: t.TempDir()}
		s := &benchNet{b: b, tool: benchNetTool, impls: o.netImpls}
		if s.impls == "" {
			s.impls = benchNetImpls
		}
		s.addExtras(root, true)
		notes := strings.Join(r.notes, "\n")
		if s.impls != tc.impls || (tc.note == "" && notes != "") || !strings.Contains(notes, tc.note) {
			t.Errorf("-net-impls %q: impls %q, notes %q; want %q, a note %q", tc.netImpls, s.impls, notes, tc.impls, tc.note)
		}
		if !tc.extra {
			if len(s.extra) != 0 {
				t.Errorf("-net-impls %q: extra servers %q", tc.netImpls, s.extra)
			}
			continue
		}
		want := "loop=" + filepath.Join(b.tmp, "riobench-loop") + " loop-server -addr 127.0.0.1:0"
		if len(s.extra) != 2 || s.extra[0] != "-x" || s.extra[1] != want {
			t.Errorf("-net-impls %q: extra servers %q, want [-x %s]", tc.netImpls, s.extra, want)
		} else if _, err := os.Stat(filepath.Join(b.tmp, "riobench-loop")); err != nil {
			t.Errorf("the loop server was not built: %v", err)
		}
	}
	// A bench/net without -x: no extra servers, and a note.
	r := newRunner(io.Discard)
	s := &benchNet{b: &bench{ctx: context.Background(), r: r, tmp: t.TempDir()}, tool: benchNetTool, impls: benchNetImpls}
	s.addExtras(root, false)
	if s.impls != benchNetImpls || len(s.extra) != 0 || len(r.notes) != 0 {
		t.Errorf("without -x: impls %q, extra %q, notes %q", s.impls, s.extra, r.notes)
	}
	// The C and extra servers only echo: the plan counts them there only.
	s.impls = "std,rio,c-uring,gnet,loop+RIONET_X=1"
	if e, h := s.implCount(findScenario("echo16-64")), s.implCount(findScenario("http")); e != 5 || h != 2 {
		t.Errorf("implCount: echo %d, http %d; want 5, 2", e, h)
	}
}
