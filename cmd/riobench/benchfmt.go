package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// The benchstat file: every round of every row as a line of the Go
// benchmark format (https://go.dev/design/14313-benchmark-format), so that
// golang.org/x/perf/cmd/benchstat can compare the implementations of one
// run, or two runs:
//
//	benchstat -col /impl bench.txt               # implementations side by side
//	benchstat old/bench.txt new/bench.txt        # two runs, every row
//
// A row is BenchmarkWorkload/key=value/.../impl=name; each line carries
// one round: an iteration count of 1, the primary value and unit, and the
// secondary metrics of that round. "Unit" lines tell benchstat which
// direction is better. The baselines' lines come first, so that
// benchstat -col /impl compares each group with its baseline.

var benchNames = map[string]string{
	"nop":    "NOP",
	"direct": "DirectRead4K",
	"hot":    "HotRead4K",
	"copy":   "Copy",
	"echo":   "Echo",
	"http":   "HTTPHello",
	"idle":   "IdleConnsRSS",
}

// benchName is the benchmark name of a row.
func benchName(r row) string {
	base, ok := benchNames[r.Workload]
	if !ok {
		base = benchToken(strings.ToUpper(r.Workload[:1]) + r.Workload[1:])
	}
	parts := []string{"Benchmark" + base}
	for _, kv := range strings.Fields(r.Param) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			k, v = "mode", kv
		}
		parts = append(parts, benchToken(k)+"="+benchToken(v))
	}
	parts = append(parts, "impl="+benchToken(r.Impl))
	return strings.Join(parts, "/")
}

// benchToken makes s fit a benchmark name: no spaces, slashes or other
// separators ("net (epoll)" becomes "net-epoll").
func benchToken(s string) string {
	var b strings.Builder
	dash := false
	for _, c := range s {
		switch {
		case unicode.IsLetter(c) || unicode.IsDigit(c) || c == '.' || c == '_' || c == '+':
			b.WriteRune(c)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// benchUnit makes a unit fit the format (no spaces).
func benchUnit(u string) string { return strings.ReplaceAll(u, " ", "-") }

func benchValue(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// writeBenchfmt writes the report in the Go benchmark format.
func (rep *report) writeBenchfmt(w io.Writer) error {
	var b strings.Builder
	cfg := [][2]string{
		{"goos", "linux"},
		{"pkg", "github.com/gorio/rio/cmd/riobench"},
		{"cpu", rep.Host.CPU},
		{"kernel", rep.Host.Kernel},
		{"go", rep.Host.Go},
		{"riobench-started", rep.Started.UTC().Format("2006-01-02T15:04:05Z")},
		{"riobench-command", rep.Command},
		{"riobench-rounds", fmt.Sprintf("%d of %s", rep.Config.Rounds, rep.Config.Dur)},
	}
	if rep.Commit != "" {
		cfg = append(cfg, [2]string{"riobench-commit", rep.Commit})
	}
	for _, kv := range cfg {
		fmt.Fprintf(&b, "%s: %s\n", kv[0], strings.ReplaceAll(kv[1], "\n", " "))
	}
	var units []string
	better := map[string]string{}
	addUnit := func(u string, lower bool) {
		if !slices.Contains(units, u) {
			units = append(units, u)
			better[u] = "higher"
			if lower {
				better[u] = "lower"
			}
		}
	}
	for _, r := range rep.Rows {
		addUnit(benchUnit(r.Unit), r.Lower)
		for _, name := range metricOrder {
			if _, ok := r.Metrics[name]; ok {
				addUnit(metricDefs[name].bench, metricDefs[name].lower)
			}
		}
	}
	for _, u := range units {
		fmt.Fprintf(&b, "Unit %s better=%s\n", u, better[u])
	}
	// The baselines first: benchstat -col /impl orders its columns by
	// first appearance, and compares with the first.
	rows := slices.Clone(rep.Rows)
	sort.SliceStable(rows, func(i, j int) bool {
		return rows[i].Impl == rows[i].Baseline && rows[j].Impl != rows[j].Baseline
	})
	for _, r := range rows {
		name := benchName(r)
		for i, v := range r.Values {
			fmt.Fprintf(&b, "%s 1 %s %s", name, benchValue(v), benchUnit(r.Unit))
			for _, m := range metricOrder {
				mr, ok := r.Metrics[m]
				if !ok {
					continue
				}
				if k := slices.Index(mr.Rounds, r.Rounds[i]); k >= 0 {
					fmt.Fprintf(&b, " %s %s", benchValue(mr.Values[k]), metricDefs[m].bench)
				}
			}
			b.WriteByte('\n')
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
