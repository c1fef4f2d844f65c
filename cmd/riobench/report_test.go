package main

import (
	"bytes"
	"encoding/xml"
	"flag"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/bench.golden.txt")

func TestMedianAndSummary(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
	v := []float64{5, 1, 3}
	s := summarize(v)
	if s != (summary{Median: 3, Min: 1, Max: 5}) || s.spread() != 4.0/3 {
		t.Errorf("summarize = %+v, spread %v", s, s.spread())
	}
	if v[0] != 5 {
		t.Error("median sorted its input")
	}
	for in, want := range map[float64]float64{0.7: 1, 130e3: 200e3, 74e3: 100e3, 2.1e6: 5e6, 100: 100, 4.8: 5, 0: 1} {
		if got := niceStep(in); got != want {
			t.Errorf("niceStep(%v) = %v, want %v", in, got, want)
		}
	}
	if got, err := intList("256, 1,16"); err != nil || len(got) != 3 || got[0] != 1 || got[2] != 256 {
		t.Errorf("intList = %v, %v", got, err)
	}
	if plural(1, "round") != "1 round" || plural(3, "round") != "3 rounds" {
		t.Error("plural")
	}
}

// The case: the median of per-round ratios could read 1.10× where
// the medians were 1.68M against 1.79M. vs base is the ratio of the
// medians, so it always reads below 1 there, and the per-round range
// beside it holds it.
func TestVsBaseIsRatioOfMedians(t *testing.T) {
	base := []float64{1.79e6, 2.30e6, 1.20e6}
	row := []float64{1.68e6, 2.60e6, 1.35e6} // each round: 0.94, 1.13, 1.13
	c, ok := compare(row, []int{1, 2, 3}, base, []int{1, 2, 3})
	if !ok {
		t.Fatal("no comparison")
	}
	if want := median(row) / median(base); c.Ratio != want || c.Ratio >= 1 {
		t.Errorf("ratio %v, want the ratio of medians %v (< 1)", c.Ratio, want)
	}
	if c.RatioMin > c.Ratio || c.Ratio > c.RatioMax || c.Pairs != 3 {
		t.Errorf("range %v–%v does not hold %v", c.RatioMin, c.RatioMax, c.Ratio)
	}
	if c.clear() || verdict(&c, false) != "≈" {
		t.Errorf("rounds disagree, but verdict %q", verdict(&c, false))
	}
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
		if c.Ratio < c.RatioMin*(1-1e-12) || c.Ratio > c.RatioMax*(1+1e-12) {
			t.Fatalf("a %v b %v: ratio %v outside %v–%v", a, b, c.Ratio, c.RatioMin, c.RatioMax)
		}
	}
}

func TestPairedRatiosAndVerdict(t *testing.T) {
	// Round 2 of the baseline failed: rounds are paired by number.
	got := pairedRatios([]float64{2, 4, 6}, []int{1, 2, 3}, []float64{1, 3}, []int{1, 3})
	if len(got) != 2 || got[0] != 2 || got[1] != 2 {
		t.Errorf("pairedRatios = %v", got)
	}
	c, _ := compare([]float64{2, 3}, []int{1, 2}, []float64{1, 1}, []int{1, 2})
	if verdict(&c, false) != "better" || verdict(&c, true) != "worse" {
		t.Errorf("verdicts %q %q", verdict(&c, false), verdict(&c, true))
	}
	one, _ := compare([]float64{2}, []int{1}, []float64{1}, []int{1})
	if one.clear() {
		t.Error("one round cannot be clear")
	}
	if _, ok := compare([]float64{1}, []int{1}, nil, nil); ok {
		t.Error("compared with an empty baseline")
	}
	if coverage(1) != 0 || coverage(3) != 0.75 || math.Abs(coverage(6)-0.96875) > 1e-12 {
		t.Errorf("coverage %v %v %v", coverage(1), coverage(3), coverage(6))
	}
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
	if len(echo) != 3 || echo[0].Impl != "net (epoll)" {
		t.Fatalf("echo rows: %+v", echo)
	}
	rio := echo[1]
	if rio.VsBase == nil || rio.VsBase.Pairs != 2 || rio.VsBase.Ratio != median([]float64{95e3, 99e3})/105e3 {
		t.Errorf("rio net vs base: %+v", rio.VsBase)
	}
	cpu := rio.Metrics["srv_cpu_us_per_req"]
	if cpu == nil || cpu.Median != 9.05 || cpu.VsBase == nil || math.Abs(cpu.VsBase.Ratio-9.05/8.2) > 1e-12 {
		t.Errorf("server CPU: %+v", cpu)
	}
	if echo[2].Metrics != nil {
		t.Errorf("C io_uring has metrics %v", echo[2].Metrics)
	}
	idle := rep.rowsOf(rep.Groups[3])
	if !idle[1].Lower || verdict(idle[1].VsBase, true) != "better" {
		t.Errorf("idle rio row: %+v", idle[1])
	}
}

func TestTable(t *testing.T) {
	var b bytes.Buffer
	fixtureReport().printTable(&b)
	out := b.String()
	for _, want := range []string{"3 rounds of 1s per row", "go run ./cmd/riobench -publish", "commit 0123456789ab",
		"NOP round trip", "0.81×", "0.78–0.85", "worse", "server CPU 9.05 µs/req (1.10×)", "p99 1.05 ms (1.11×)",
		"23 threads", "server RSS, idle connections (lower is better)", "probability 75%", "notes:\n  - a note"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasSuffix(line, " ") {
			t.Errorf("trailing space: %q", line)
		}
	}
	if strings.Contains(out, "1 rounds") {
		t.Error("1 rounds")
	}
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
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v", err)
		}
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
	if root != "svg" {
		t.Errorf("root element %q", root)
	}
	if rects != len(rep.Rows)+1+countMetric(rep, "srv_cpu_us_per_req") {
		t.Errorf("%d rects for %d rows", rects, len(rep.Rows))
	}
	all := strings.Join(texts, "\n")
	for _, r := range rep.Rows {
		if !strings.Contains(all, r.Impl) {
			t.Errorf("chart lacks %s", r.Impl)
		}
	}
	for _, g := range rep.Groups {
		if len(rep.rowsOf(g)) > 0 && !strings.Contains(all, g.Title+", "+g.Param) {
			t.Errorf("chart lacks the panel %s, %s", g.Title, g.Param)
		}
	}
	for _, want := range []string{"linear scale from 0", "higher is better", "whiskers: lowest to highest round",
		plural(rep.Config.Rounds, "round") + " of " + rep.Config.Dur, rep.Command, "Machine: Linux"} {
		if !strings.Contains(all, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	if strings.Contains(all, "1 rounds") {
		t.Error("chart says 1 rounds")
	}
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
	if !strings.Contains(svg, "server CPU/request") || !strings.Contains(svg, "lower is better") {
		t.Error("no server CPU panel")
	}
	if svg != fixtureReport().svg() {
		t.Error("the chart is not a function of the report")
	}
}

// The benchstat file of the fixture is testdata/bench.golden.txt, which
// bench/stat's test parses with golang.org/x/perf/benchfmt.
func TestBenchfmt(t *testing.T) {
	rep := fixtureReport()
	var b bytes.Buffer
	if err := rep.writeBenchfmt(&b); err != nil {
		t.Fatal(err)
	}
	if n := checkBenchfmt(t, b.Bytes()); n != countValues(rep) {
		t.Errorf("%d result lines for %d rounds", n, countValues(rep))
	}
	out := b.String()
	for _, want := range []string{
		"BenchmarkEcho/conns=256/msg=64B/impl=rio-net 1 95000 req/s 1100 p99-µs 9 srv-cpu-µs/req\n",
		"BenchmarkNOP/mode=single/impl=C-liburing 1 1.8e+06 ops/s\n",
		"BenchmarkIdleConnsRSS/conns=10000/impl=rio-net 1 41 MiB\n",
		"Unit MiB better=lower\n", "Unit req/s better=higher\n", "riobench-command: go run ./cmd/riobench -publish\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("bench.txt lacks %q", want)
		}
	}
	// Baselines first, so that benchstat -col /impl compares with them.
	if i, j := strings.Index(out, "impl=net-epoll"), strings.Index(out, "impl=rio"); i < 0 || j < i {
		t.Error("the baselines do not come first")
	}
	golden := filepath.Join("testdata", "bench.golden.txt")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, b.Bytes()) {
		t.Errorf("bench.txt differs from %s (go test -run TestBenchfmt -update ./cmd/riobench):\n%s", golden, firstDiff(string(want), out))
	}
	if benchToken("net (epoll)") != "net-epoll" || benchToken("rio file async") != "rio-file-async" {
		t.Error("benchToken")
	}
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
		if err := os.WriteFile(filepath.Join(root, s.file), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestPublishAndCheck(t *testing.T) {
	root := fakeCheckout(t)
	if errs := checkPublished(root); len(errs) == 0 {
		t.Fatal("an unpublished checkout passes the check")
	}
	rep := fixtureReport()
	if _, err := publish(rep, root); err != nil {
		t.Fatal(err)
	}
	if errs := checkPublished(root); len(errs) != 0 {
		t.Fatalf("after publish: %v", errs)
	}
	readme, _ := os.ReadFile(filepath.Join(root, "README.md"))
	for _, want := range []string{"| NOP round trip, mode=single | rio: 1.45M ops/s | C liburing: 1.80M ops/s | 0.81× (0.78–0.85) | worse |",
		"rio net: 97.0k req/s, 9.05 µs CPU/req", "Measured 2026-12-01 13:30 UTC with `go run ./cmd/riobench -publish`: 3 rounds of 1s",
		"(lower is better)", "docs/riobench.svg", "Linux 5.6 or later."} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README lacks %q:\n%s", want, readme)
		}
	}
	// Publishing again changes nothing.
	before := string(readme)
	if _, err := publish(rep, root); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(root, "README.md")); string(after) != before {
		t.Error("publish is not idempotent")
	}
	// A number edited by hand is caught, and so is a stale chart.
	doc := strings.Replace(before, "0.81×", "0.95×", 1)
	os.WriteFile(filepath.Join(root, "README.md"), []byte(doc), 0o644)
	if errs := checkPublished(root); len(errs) != 1 || !strings.Contains(errs[0].Error(), "summary") {
		t.Errorf("hand-edited README: %v", errs)
	}
	os.WriteFile(filepath.Join(root, "README.md"), []byte(before), 0o644)
	os.WriteFile(filepath.Join(root, publishedSVG), []byte("<svg/>"), 0o644)
	if errs := checkPublished(root); len(errs) != 1 || !strings.Contains(errs[0].Error(), "chart") {
		t.Errorf("stale chart: %v", errs)
	}
	// -publish-from re-renders the committed JSON.
	if _, err := readReport(filepath.Join(root, publishedJSON)); err != nil {
		t.Error(err)
	}
}

func TestSections(t *testing.T) {
	doc := "a\n" + beginMark("x") + "\nold\n" + endMark("x") + "\nb\n"
	got, err := replaceSection(doc, "x", "new\n")
	if err != nil || got != "a\n"+beginMark("x")+"\nnew\n"+endMark("x")+"\nb\n" {
		t.Errorf("replaceSection = %q, %v", got, err)
	}
	if txt, err := sectionText(got, "x"); err != nil || txt != "new\n" {
		t.Errorf("sectionText = %q, %v", txt, err)
	}
	if _, err := replaceSection("no markers", "x", ""); err == nil {
		t.Error("no error without markers")
	}
	if _, err := replaceSection(doc+doc, "x", ""); err == nil {
		t.Error("no error with two sections")
	}
	errs := unpublishedFigures("README.md", "rio reaches 0.9 to 1.0× with many\n"+beginMark("s")+"\n1.2×\n"+endMark("s")+"\n40k req/s here\nLinux 5.19 or later\n")
	if len(errs) != 2 {
		t.Errorf("unpublishedFigures: %v", errs)
	}
}

// The committed README, docs and chart are what the committed
// docs/riobench.json renders to, and the README states no figure outside
// the generated sections. After a change of the renderers, run
// go run ./cmd/riobench -publish-from docs/riobench.json.
func TestPublished(t *testing.T) {
	root := repoRoot()
	if root == "" {
		t.Fatal("no checkout")
	}
	for _, err := range checkPublished(root) {
		t.Error(err)
	}
}
