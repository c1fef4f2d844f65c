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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The test binary is the program when run by testutil.RunMain.
func TestMain(m *testing.M) { testutil.MainOrTests(m, main) }

// A tiny run of every workload: the table, and in the results folder the
// table, the JSON, the chart and the benchstat file.
func TestSmoke(t *testing.T) {
	r, err := rio.New()
	if errors.Is(err, rio.ErrNotSupported) && os.Getenv("RIO_REQUIRE_URING") != "1" {
		t.Skip("io_uring unavailable:", err)
	}
	require.NoError(t, err)
	r.Close()
	dir := t.TempDir()
	out := filepath.Join(dir, "results")
	// Race-enabled binaries sleep 1s at exit unless told otherwise, and
	// every measurement is a child process.
	env := []string{"GORACE=atexit_sleep_ms=0 " + os.Getenv("GORACE")}
	stdout, stderr, err := testutil.RunMain(t, env, "-rounds", "2", "-dur", "100ms", "-file-mib", "4", "-dir", dir,
		"-depths", "2,4", "-hot-workers", "4", "-net-scenarios", "echo1-pinned,echo16-64", "-net-impls", "std,rio",
		"-net-warmup", "50ms", "-peers=false", "-fio=false", "-c=false", "-out", out)
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	t.Logf("%s", stdout)
	for _, want := range []string{"workload", "NOP round trip", "mode=single", "mode=batch32", "O_DIRECT 4 KiB random reads",
		"depth=4", "page-cache-hot", "io.Copy", "TCP echo", "conns=16 msg=64B", "rio file async", "net (epoll)", "rio net", "base",
		"2 rounds of 100ms", "wrote " + out} {
		assert.Contains(t, stdout, want, "output lacks %q", want)
	}
	for _, want := range []string{"round 2/2", "left]"} {
		assert.Contains(t, stderr, want, "no progress lines with an estimate on stderr")
	}
	rep, err := readReport(filepath.Join(out, "results.json"))
	require.NoError(t, err)
	impls := map[string]bool{}
	for _, r := range rep.Rows {
		impls[r.Workload+"/"+r.Impl] = true
		assert.True(t, len(r.Values) == 2 && r.Median > 0, "row %s %s %s: want 2 positive values, have %v", r.Workload, r.Param, r.Impl, r.Values)
		if r.Impl == r.Baseline {
			assert.True(t, r.VsBase != nil && r.VsBase.Ratio == 1, "baseline row %s %s: %+v", r.Workload, r.Param, r.VsBase)
		}
	}
	for _, want := range []string{"nop/rio", "direct/os.File", "direct/rio file", "direct/rio file async", "hot/rio ring",
		"copy/rio file", "echo/net (epoll)", "echo/rio net"} {
		assert.True(t, impls[want], "no %s rows in the JSON", want)
	}
	table, err := os.ReadFile(filepath.Join(out, "table.txt"))
	if assert.NoError(t, err, "table.txt") {
		assert.True(t, bytes.Contains([]byte(stdout), table), "table.txt is not the printed table")
	}
	svg, err := os.ReadFile(filepath.Join(out, "chart.svg"))
	require.NoError(t, err)
	checkSVG(t, svg, rep)
	bench, err := os.ReadFile(filepath.Join(out, "bench.txt"))
	require.NoError(t, err)
	assert.Equal(t, countValues(rep), checkBenchfmt(t, bench), "bench.txt's result lines (actual), the report's rounds (expected)")
	// No data files are left behind.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		assert.False(t, strings.HasPrefix(e.Name(), "riobench-data-"), "left %s behind", e.Name())
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
		_, err := parseFlags(args)
		assert.Error(t, err, "%v: no error", args)
	}
}

func TestQuickDefaults(t *testing.T) {
	o, err := parseFlags([]string{"-quick"})
	require.NoError(t, err)
	assert.Equal(t, 3, o.rounds, "-quick")
	assert.Equal(t, "300ms", o.dur.String(), "-quick")
	assert.Equal(t, 64, o.fileMiB, "-quick")
	assert.Equal(t, quickNetScenarios, strings.Join(o.netScenarios, ","), "-quick")
	o, err = parseFlags([]string{"-quick", "-rounds", "4"})
	assert.NoError(t, err, "-quick -rounds 4")
	assert.Equal(t, 4, o.rounds, "-quick -rounds 4")
	o, err = parseFlags(nil)
	assert.NoError(t, err, "defaults")
	assert.Equal(t, 6, o.rounds, "defaults")
	assert.Equal(t, defaultNetScenarios, strings.Join(o.netScenarios, ","), "defaults")
}

func TestParseChildOutputs(t *testing.T) {
	res, err := parseNopbench("nop_single ops_per_sec=1950000 ns_per_op=512.8\nnop_batch32 ops_per_sec=1.1e7 ns_per_op=90\n")
	assert.NoError(t, err, "parseNopbench")
	if assert.Len(t, res, 2, "parseNopbench") {
		assert.Equal(t, "mode=single", res[0].Param, "parseNopbench")
		assert.Equal(t, "mode=batch32", res[1].Param, "parseNopbench")
		assert.Equal(t, 1.1e7, res[1].Value, "parseNopbench")
	}
	_, err = parseNopbench("nop_single ops_per_sec=x\n")
	assert.Error(t, err, "parseNopbench accepted a bad number")
	line := "3;fio-3.36;riobench;0;0;0;0;61234;0;0\n"
	res, err = parseFioTerse(line)
	if assert.NoError(t, err, "parseFioTerse") {
		assert.Equal(t, 61234.0, res[0].Value, "parseFioTerse")
	}
	res, err = parseResult(`noise` + "\n" + `RESULT [{"param":"single","value":5,"unit":"ops/s"},{"param":"depth=4","value":6,"unit":"IOPS"}]` + "\n")
	if assert.NoError(t, err, "parseResult") {
		assert.Equal(t, "mode=single", res[0].Param, "parseResult")
		assert.Equal(t, "depth=4", res[1].Param, "parseResult")
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
		require.NoError(t, err)
		if ok {
			got = append(got, m)
		}
	}
	require.Len(t, got, 4)
	m := got[0]
	assert.True(t, m.Workload == "echo" && m.Param == "conns=256 msg=64B" && m.Impl == "rio net" && m.Round == 2 && m.Value == 91234.5 &&
		m.Metrics["srv_cpu_us_per_req"] == 9.5 && m.Metrics["p99_us"] == 812 && len(m.Metrics) == 3, "echo run: %+v", m)
	m = got[1]
	assert.True(t, m.Workload == "idle" && m.Value == 43.2 && m.Impl == "net (epoll)", "idle run: %+v", m)
	assert.Equal(t, "C io_uring", got[2].Impl, "C server run: %+v", got[2])
	m = got[3]
	assert.True(t, m.Workload == "net" && m.Param == "scenario=future9" && m.Impl == "gnet GNET_X=1", "unknown scenario and implementation: %+v", m)
	_, _, _, err := netMeasurement([]byte(`{"scenario":"echo1","impl":"rio","run":1,"metrics":{}}`))
	assert.Error(t, err, "a run without rps was accepted")
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
			if !assert.True(t, len(f) >= 4 && len(f)%2 == 0, "line %d: want name, iterations and value-unit pairs: %q", n, line) {
				continue
			}
			assert.Equal(t, "1", f[1], "line %d: iterations", n)
			for i := 2; i < len(f); i += 2 {
				_, err := parseFloat(f[i])
				assert.NoError(t, err, "line %d: value %q", n, f[i])
				assert.True(t, units[f[i+1]], "line %d: unit %q has no Unit line before it", n, f[i+1])
			}
			for _, part := range strings.Split(f[0], "/")[1:] {
				k, v, ok := strings.Cut(part, "=")
				assert.True(t, ok && k != "" && v != "", "line %d: name part %q is not key=value", n, part)
			}
			results++
		case strings.HasPrefix(line, "Unit "):
			assert.True(t, len(f) == 3 && (f[2] == "better=higher" || f[2] == "better=lower"), "line %d: %q", n, line)
			units[f[1]] = true
		default:
			k, _, ok := strings.Cut(line, ": ")
			assert.True(t, ok && k != "" && !strings.ContainsAny(k, " \t") && strings.ToLower(k) == k,
				"line %d: neither a result, a unit nor a configuration line: %q", n, line)
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
	require.NoError(t, os.WriteFile(tool, []byte(script), 0o755))
	o, err := parseFlags([]string{"-rounds", "2", "-dur", "100ms", "-net-impls", "std,rio"})
	require.NoError(t, err)
	r := newRunner(io.Discard)
	b := &bench{o: o, r: r}
	src := &benchNet{b: b, tool: benchNetTool, bin: tool, dir: dir, scen: []netScenario{findScenario("echo16-64")},
		impls: "std,rio", extra: []string{"-x", "loop=/bin/loop -addr 127.0.0.1:0"}}
	r.runAll(context.Background(), []rowSource{src})
	assert.True(t, r.done == 2 && r.total == 2, "done %d of %d, want 2 of 2 (planned 4, the tool failed after 2)", r.done, r.total)
	rows := buildRows(src.groups(), r)
	assert.True(t, len(rows) == 2 && rows[1].Impl == "rio net" && rows[1].VsBase != nil && rows[1].VsBase.Ratio == 1.2, "rows: %+v", rows)
	notes := strings.Join(r.notes, "\n")
	for _, want := range []string{"bench/net skipped c-epoll: gcc not found", "bench/net failed (exit status 1)", "server did not start"} {
		assert.Contains(t, notes, want, "notes lack %q", want)
	}
	got, _ := os.ReadFile(args)
	assert.Equal(t, "-only echo16-64 -runs 2 -dur 100ms -warmup 300ms -impls std,rio -x loop=/bin/loop -addr 127.0.0.1:0\n", string(got), "tool args")
}

// The extra servers (LoopServer, gnet) are built where the checkout has
// them and handed to bench/net with -x and in -impls, by default or when
// -net-impls names them; one the checkout lacks is dropped from -impls
// (bench/net would fail on it) with a note, if it was asked for.
func TestExtraServers(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, name), []byte(text), 0o644))
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
		require.NoError(t, err)
		r := newRunner(io.Discard)
		b := &bench{ctx: context.Background(), o: o, r: r, tmp: t.TempDir()}
		s := &benchNet{b: b, tool: benchNetTool, impls: o.netImpls}
		if s.impls == "" {
			s.impls = benchNetImpls
		}
		s.addExtras(root, true)
		notes := strings.Join(r.notes, "\n")
		assert.Equal(t, tc.impls, s.impls, "-net-impls %q: impls", tc.netImpls)
		if tc.note == "" {
			assert.Empty(t, notes, "-net-impls %q: notes", tc.netImpls)
		} else {
			assert.Contains(t, notes, tc.note, "-net-impls %q: notes", tc.netImpls)
		}
		if !tc.extra {
			assert.Empty(t, s.extra, "-net-impls %q: extra servers", tc.netImpls)
			continue
		}
		want := "loop=" + filepath.Join(b.tmp, "riobench-loop") + " loop-server -addr 127.0.0.1:0"
		if assert.Equal(t, []string{"-x", want}, s.extra, "-net-impls %q: extra servers", tc.netImpls) {
			_, err := os.Stat(filepath.Join(b.tmp, "riobench-loop"))
			assert.NoError(t, err, "the loop server was not built")
		}
	}
	// A bench/net without -x: no extra servers, and a note.
	r := newRunner(io.Discard)
	s := &benchNet{b: &bench{ctx: context.Background(), r: r, tmp: t.TempDir()}, tool: benchNetTool, impls: benchNetImpls}
	s.addExtras(root, false)
	assert.Equal(t, benchNetImpls, s.impls, "without -x: impls")
	assert.Empty(t, s.extra, "without -x: extra")
	assert.Empty(t, r.notes, "without -x: notes")
	// The C and extra servers only echo: the plan counts them there only.
	s.impls = "std,rio,c-uring,gnet,loop+RIONET_X=1"
	assert.Equal(t, 5, s.implCount(findScenario("echo16-64")), "implCount: echo")
	assert.Equal(t, 2, s.implCount(findScenario("http")), "implCount: http")
}
