package main

import (
	"bytes"
	"encoding/xml"
	"flag"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/bench.golden.txt")

func TestMedianAndSummary(t *testing.T) {
	assert.Equal(t, 2.0, median([]float64{3, 1, 2}), "median")
	assert.Equal(t, 2.5, median([]float64{4, 1, 3, 2}), "median")
	v := []float64{5, 1, 3}
	s := summarize(v)
	assert.Equal(t, summary{Median: 3, Min: 1, Max: 5}, s, "summarize")
	assert.Equal(t, 4.0/3, s.spread(), "spread")
	assert.Equal(t, 5.0, v[0], "median sorted its input")
	for in, want := range map[float64]float64{0.7: 1, 130e3: 200e3, 74e3: 100e3, 2.1e6: 5e6, 100: 100, 4.8: 5, 0: 1} {
		assert.Equal(t, want, niceStep(in), "niceStep(%v)", in)
	}
	got, err := intList("256, 1,16")
	assert.NoError(t, err, "intList")
	assert.True(t, len(got) == 3 && got[0] == 1 && got[2] == 256, "intList = %v", got)
	assert.Equal(t, "1 round", plural(1, "round"), "plural")
	assert.Equal(t, "3 rounds", plural(3, "round"), "plural")
}

// The case: the median of per-round ratios could read 1.10× where
// the medians were 1.68M against 1.79M. vs base is the ratio of the
// medians, so it always reads below 1 there, and the per-round range
// beside it holds it.
func TestVsBaseIsRatioOfMedians(t *testing.T) {
	base := []float64{1.79e6, 2.30e6, 1.20e6}
	row := []float64{1.68e6, 2.60e6, 1.35e6} // each round: 0.94, 1.13, 1.13
	c, ok := compare(row, []int{1, 2, 3}, base, []int{1, 2, 3})
	require.True(t, ok, "no comparison")
	assert.Equal(t, median(row)/median(base), c.Ratio, "ratio, want the ratio of medians")
	assert.Less(t, c.Ratio, 1.0, "ratio, want the ratio of medians < 1")
	assert.True(t, c.RatioMin <= c.Ratio && c.Ratio <= c.RatioMax, "range %v–%v does not hold %v", c.RatioMin, c.RatioMax, c.Ratio)
	assert.Equal(t, 3, c.Pairs, "pairs")
	assert.False(t, c.clear(), "rounds disagree, but clear")
	assert.Equal(t, "≈", verdict(&c, false), "rounds disagree, but verdict")
}

// With the same rounds on both sides, the ratio of medians always lies in
// the range of the per-round ratios.
func TestRatioOfMediansWithinRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 2000; trial++ {
		n := 1 + rng.IntN(8)
		a, b, rounds := make([]float64, n), make([]float64, n), make([]int, n)
		for i := range a {
			a[i], b[i], rounds[i] = 0.1+rng.Float64()*10, 0.1+rng.Float64()*10, i+1
		}
		c, _ := compare(a, rounds, b, rounds)
		require.True(t, c.Ratio >= c.RatioMin*(1-1e-12) && c.Ratio <= c.RatioMax*(1+1e-12), "a %v b %v: ratio %v outside %v–%v", a, b, c.Ratio, c.RatioMin, c.RatioMax)
	}
}

func TestPairedRatiosAndVerdict(t *testing.T) {
	// Round 2 of the baseline failed: rounds are paired by number.
	got := pairedRatios([]float64{2, 4, 6}, []int{1, 2, 3}, []float64{1, 3}, []int{1, 3})
	assert.Equal(t, []float64{2, 2}, got, "pairedRatios")
	c, _ := compare([]float64{2, 3}, []int{1, 2}, []float64{1, 1}, []int{1, 2})
	assert.Equal(t, "better", verdict(&c, false), "verdict")
	assert.Equal(t, "worse", verdict(&c, true), "verdict, lower is better")
	one, _ := compare([]float64{2}, []int{1}, []float64{1}, []int{1})
	assert.False(t, one.clear(), "one round cannot be clear")
	_, ok := compare([]float64{1}, []int{1}, nil, nil)
	assert.False(t, ok, "compared with an empty baseline")
	assert.Equal(t, 0.0, coverage(1), "coverage(1)")
	assert.Equal(t, 0.75, coverage(3), "coverage(3)")
	assert.InDelta(t, 0.96875, coverage(6), 1e-12, "coverage(6)")
}

// fixtureReport is a small report with every kind of row: several
// params per unit (NOP), a peer, a network group with secondary metrics,
// a lower-is-better group and a failed round.
func fixtureReport() *report {
	r := newRunner(io.Discard)
	add := func(w, p, impl string, vals []float64, metrics ...map[string]float64) {
		for i, v := range vals {
			m := measurement{Workload: w, Param: p, Impl: impl, Round: i + 1, Value: v}
			if i < len(metrics) {
				m.Metrics = metrics[i]
			}
			r.record(m)
		}
	}
	add("nop", "mode=single", "C liburing", []float64{1.8e6, 1.9e6, 1.7e6})
	add("nop", "mode=single", "rio", []float64{1.4e6, 1.5e6, 1.45e6})
	add("nop", "mode=single", "go-uring", []float64{1.5e6, 1.55e6, 1.6e6})
	add("direct", "depth=32", "os.File", []float64{33e3, 34e3, 32e3}, map[string]float64{"threads": 24}, map[string]float64{"threads": 22}, map[string]float64{"threads": 23})
	add("direct", "depth=32", "rio file", []float64{58e3, 57e3, 60e3}, map[string]float64{"threads": 6}, map[string]float64{"threads": 6}, map[string]float64{"threads": 7})
	add("echo", "conns=256 msg=64B", "net (epoll)", []float64{100e3, 110e3, 105e3},
		map[string]float64{"srv_cpu_us_per_req": 8, "p99_us": 900}, map[string]float64{"srv_cpu_us_per_req": 8.4, "p99_us": 950}, map[string]float64{"srv_cpu_us_per_req": 8.2, "p99_us": 1000})
	add("echo", "conns=256 msg=64B", "rio net", []float64{95e3, 99e3},
		map[string]float64{"srv_cpu_us_per_req": 9, "p99_us": 1100}, map[string]float64{"srv_cpu_us_per_req": 9.1, "p99_us": 1000})
	add("echo", "conns=256 msg=64B", "C io_uring", []float64{150e3, 160e3, 155e3})
	add("idle", "conns=10000", "net (epoll)", []float64{43, 44, 43})
	add("idle", "conns=10000", "rio net", []float64{41, 42, 42})
	groups := []groupInfo{
		{Workload: "nop", Param: "mode=single", Title: "NOP round trip", Baseline: "C liburing", Unit: "ops/s", Source: "riobench"},
		{Workload: "direct", Param: "depth=32", Title: "O_DIRECT 4 KiB random reads", Baseline: "os.File", Unit: "IOPS", Source: "riobench"},
		netGroup(findScenario("echo256-64"), "bench/net"),
		netGroup(findScenario("idle10k"), "bench/net"),
	}
	rep := &report{Version: reportVersion, Started: time.Date(2026, 12, 1, 13, 30, 0, 0, time.UTC), Duration: "3m40s",
		Command: "go run ./cmd/riobench -publish", Commit: "0123456789ab",
		Host:   hostInfo{Kernel: "6.18.44", CPU: "AMD EPYC", CPUs: []int{0, 1}, Virt: "virtual machine", Go: "go1.26.8", GOMAXPROCS: 2, LoadStart: "0.50 0.40 0.30"},
		Config: config{Workloads: []string{"nop", "direct", "echo", "idle"}, Dur: "1s", Rounds: 3, Depths: []int{32}, HotWorkers: 64, Batch: 32, FileMiB: 256, Dir: "/tmp", Pinned: true},
		Groups: groups, Notes: []string{"a note"}}
	rep.Rows = buildRows(groups, r)
	return rep
}

func TestBuildRows(t *testing.T) {
	rep := fixtureReport()
	echo := rep.rowsOf(rep.Groups[2])
	require.Len(t, echo, 3, "echo rows")
	require.Equal(t, "net (epoll)", echo[0].Impl, "echo rows")
	rio := echo[1]
	if assert.NotNil(t, rio.VsBase, "rio net vs base") {
		assert.Equal(t, 2, rio.VsBase.Pairs, "rio net vs base")
		assert.Equal(t, median([]float64{95e3, 99e3})/105e3, rio.VsBase.Ratio, "rio net vs base")
	}
	cpu := rio.Metrics["srv_cpu_us_per_req"]
	if assert.NotNil(t, cpu, "server CPU") {
		assert.Equal(t, 9.05, cpu.Median, "server CPU")
		if assert.NotNil(t, cpu.VsBase, "server CPU vs base") {
			assert.InDelta(t, 9.05/8.2, cpu.VsBase.Ratio, 1e-12, "server CPU vs base")
		}
	}
	assert.Nil(t, echo[2].Metrics, "C io_uring has metrics")
	idle := rep.rowsOf(rep.Groups[3])
	assert.True(t, idle[1].Lower, "idle rio row: %+v", idle[1])
	assert.Equal(t, "better", verdict(idle[1].VsBase, true), "idle rio row: %+v", idle[1])
}

func TestTable(t *testing.T) {
	var b bytes.Buffer
	fixtureReport().printTable(&b)
	out := b.String()
	for _, want := range []string{"3 rounds of 1s per row", "go run ./cmd/riobench -publish", "commit 0123456789ab",
		"NOP round trip", "0.81×", "0.78–0.85", "worse", "server CPU 9.05 µs/req (1.10×)", "p99 1.05 ms (1.11×)",
		"23 threads", "server RSS, idle connections (lower is better)", "probability 75%", "notes:\n  - a note"} {
		assert.Contains(t, out, want, "table lacks %q", want)
	}
	for _, line := range strings.Split(out, "\n") {
		assert.False(t, strings.HasSuffix(line, " "), "trailing space: %q", line)
	}
	assert.NotContains(t, out, "1 rounds")
}

// checkSVG parses the chart as XML and checks that it shows every row
// and says what its axes and bars are.
func checkSVG(t *testing.T, svg []byte, rep *report) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(svg))
	var texts []string
	rects := 0
	root := ""
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		require.NoError(t, err, "chart is not well-formed XML")
		switch tk := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tk.Name.Local
			}
			if tk.Name.Local == "rect" {
				rects++
			}
		case xml.CharData:
			if s := strings.TrimSpace(string(tk)); s != "" {
				texts = append(texts, s)
			}
		}
	}
	assert.Equal(t, "svg", root, "root element")
	assert.Equal(t, len(rep.Rows)+1+countMetric(rep, "srv_cpu_us_per_req"), rects, "rects for %d rows", len(rep.Rows))
	all := strings.Join(texts, "\n")
	for _, r := range rep.Rows {
		assert.Contains(t, all, r.Impl, "chart lacks %s", r.Impl)
	}
	for _, g := range rep.Groups {
		if len(rep.rowsOf(g)) > 0 {
			assert.Contains(t, all, g.Title+", "+g.Param, "chart lacks the panel %s, %s", g.Title, g.Param)
		}
	}
	for _, want := range []string{"linear scale from 0", "higher is better", "whiskers: lowest to highest round",
		plural(rep.Config.Rounds, "round") + " of " + rep.Config.Dur, rep.Command, "Machine: Linux"} {
		assert.Contains(t, all, want, "chart lacks %q", want)
	}
	assert.NotContains(t, all, "1 rounds", "chart says 1 rounds")
}

func countMetric(rep *report, name string) int {
	n := 0
	for _, r := range rep.Rows {
		if _, ok := r.Metrics[name]; ok {
			n++
		}
	}
	return n
}

func TestSVG(t *testing.T) {
	rep := fixtureReport()
	svg := rep.svg()
	checkSVG(t, []byte(svg), rep)
	assert.Contains(t, svg, "server CPU/request", "no server CPU panel")
	assert.Contains(t, svg, "lower is better", "no server CPU panel")
	assert.Equal(t, svg, fixtureReport().svg(), "the chart is not a function of the report")
}

// The benchstat file of the fixture is testdata/bench.golden.txt, which
// bench/stat's test parses with golang.org/x/perf/benchfmt.
func TestBenchfmt(t *testing.T) {
	rep := fixtureReport()
	var b bytes.Buffer
	require.NoError(t, rep.writeBenchfmt(&b))
	assert.Equal(t, countValues(rep), checkBenchfmt(t, b.Bytes()), "result lines (actual) for the rounds (expected)")
	out := b.String()
	for _, want := range []string{
		"BenchmarkEcho/conns=256/msg=64B/impl=rio-net 1 95000 req/s 1100 p99-µs 9 srv-cpu-µs/req\n",
		"BenchmarkNOP/mode=single/impl=C-liburing 1 1.8e+06 ops/s\n",
		"BenchmarkIdleConnsRSS/conns=10000/impl=rio-net 1 41 MiB\n",
		"Unit MiB better=lower\n", "Unit req/s better=higher\n", "riobench-command: go run ./cmd/riobench -publish\n"} {
		assert.Contains(t, out, want, "bench.txt lacks %q", want)
	}
	// Baselines first, so that benchstat -col /impl compares with them.
	i, j := strings.Index(out, "impl=net-epoll"), strings.Index(out, "impl=rio")
	assert.True(t, i >= 0 && j >= i, "the baselines do not come first")
	golden := filepath.Join("testdata", "bench.golden.txt")
	if *update {
		require.NoError(t, os.WriteFile(golden, b.Bytes(), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, b.Bytes()), "bench.txt differs from %s (go test -run TestBenchfmt -update ./cmd/riobench):\n%s", golden, firstDiff(string(want), out))
	assert.Equal(t, "net-epoll", benchToken("net (epoll)"), "benchToken")
	assert.Equal(t, "rio-file-async", benchToken("rio file async"), "benchToken")
}

// A temporary checkout with the three documents, their markers around
// stale text.
func fakeCheckout(t *testing.T) string {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "docs"), 0o755)
	for _, s := range fixtureReport().sections() {
		doc := "# " + s.file + "\n\nrio is 3× faster\n\n" + beginMark(s.name) + "\nold numbers: 2.0×\n" + endMark(s.name) + "\n\nend\n"
		if s.file == "README.md" {
			doc = "# rio\n\nSee below.\n\n" + beginMark(s.name) + "\nold: 0.9×\n" + endMark(s.name) + "\n\nLinux 5.6 or later.\n"
		}
		require.NoError(t, os.WriteFile(filepath.Join(root, s.file), []byte(doc), 0o644))
	}
	return root
}

func TestPublishAndCheck(t *testing.T) {
	root := fakeCheckout(t)
	require.NotEmpty(t, checkPublished(root), "an unpublished checkout passes the check")
	rep := fixtureReport()
	_, err := publish(rep, root)
	require.NoError(t, err)
	require.Empty(t, checkPublished(root), "after publish")
	readme, _ := os.ReadFile(filepath.Join(root, "README.md"))
	for _, want := range []string{"| NOP round trip, mode=single | rio: 1.45M ops/s | C liburing: 1.80M ops/s | 0.81× (0.78–0.85) | worse |",
		"rio net: 97.0k req/s, 9.05 µs CPU/req", "Measured 2026-12-01 13:30 UTC with `go run ./cmd/riobench -publish`: 3 rounds of 1s",
		"(lower is better)", "docs/riobench.svg", "Linux 5.6 or later."} {
		assert.Contains(t, string(readme), want, "README lacks %q", want)
	}
	// Publishing again changes nothing.
	before := string(readme)
	_, err = publish(rep, root)
	require.NoError(t, err)
	after, _ := os.ReadFile(filepath.Join(root, "README.md"))
	assert.Equal(t, before, string(after), "publish is not idempotent")
	// A number edited by hand is caught, and so is a stale chart.
	doc := strings.Replace(before, "0.81×", "0.95×", 1)
	os.WriteFile(filepath.Join(root, "README.md"), []byte(doc), 0o644)
	errs := checkPublished(root)
	if assert.Len(t, errs, 1, "hand-edited README") {
		assert.ErrorContains(t, errs[0], "summary", "hand-edited README")
	}
	os.WriteFile(filepath.Join(root, "README.md"), []byte(before), 0o644)
	os.WriteFile(filepath.Join(root, publishedSVG), []byte("<svg/>"), 0o644)
	errs = checkPublished(root)
	if assert.Len(t, errs, 1, "stale chart") {
		assert.ErrorContains(t, errs[0], "chart", "stale chart")
	}
	// -publish-from re-renders the committed JSON.
	_, err = readReport(filepath.Join(root, publishedJSON))
	assert.NoError(t, err)
}

func TestSections(t *testing.T) {
	doc := "a\n" + beginMark("x") + "\nold\n" + endMark("x") + "\nb\n"
	got, err := replaceSection(doc, "x", "new\n")
	assert.NoError(t, err, "replaceSection")
	assert.Equal(t, "a\n"+beginMark("x")+"\nnew\n"+endMark("x")+"\nb\n", got, "replaceSection")
	txt, err := sectionText(got, "x")
	assert.NoError(t, err, "sectionText")
	assert.Equal(t, "new\n", txt, "sectionText")
	_, err = replaceSection("no markers", "x", "")
	assert.Error(t, err, "no error without markers")
	_, err = replaceSection(doc+doc, "x", "")
	assert.Error(t, err, "no error with two sections")
	errs := unpublishedFigures("README.md", "rio reaches 0.9 to 1.0× with many\n"+beginMark("s")+"\n1.2×\n"+endMark("s")+"\n40k req/s here\nLinux 5.19 or later\n")
	assert.Len(t, errs, 2, "unpublishedFigures")
}

// The committed README, docs and chart are what the committed
// docs/riobench.json renders to, and the README states no figure outside
// the generated sections. After a change of the renderers, run
// go run ./cmd/riobench -publish-from docs/riobench.json.
func TestPublished(t *testing.T) {
	root := repoRoot()
	require.NotEmpty(t, root, "no checkout")
	assert.Empty(t, checkPublished(root), "the committed docs are not what docs/riobench.json renders to")
}
