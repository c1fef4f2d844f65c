package stat

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
	"golang.org/x/perf/benchproc"
)

const golden = "../../cmd/riobench/testdata/bench.golden.txt"

// Every line of the golden file parses, every unit says which way is
// better, and the rows split into the implementations riobench wrote.
func TestGoldenParses(t *testing.T) {
	f, err := os.Open(golden)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := benchfmt.NewReader(f, golden)
	var results []*benchfmt.Result
	for r.Scan() {
		switch rec := r.Result(); rec := rec.(type) {
		case *benchfmt.SyntaxError:
			t.Errorf("syntax error: %v", rec)
		case *benchfmt.Result:
			results = append(results, rec.Clone())
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if len(results) == 0 {
		t.Fatal("no results")
	}
	units := r.Units()
	for _, res := range results {
		if res.Iters != 1 {
			t.Errorf("%s: %d iterations", res.Name, res.Iters)
		}
		for _, v := range res.Values {
			if units.GetBetter(v.OrigUnit) == 0 && units.GetBetter(v.Unit) == 0 {
				t.Errorf("%s: unit %q has no better= metadata", res.Name, v.OrigUnit)
			}
		}
		if cmd := string(res.GetConfig("riobench-command")); !strings.HasPrefix(cmd, "go run ./cmd/riobench") {
			t.Errorf("%s: riobench-command %q", res.Name, cmd)
		}
	}

	// benchstat -col /impl: the first implementation of each table is its
	// group's baseline, since riobench writes the baselines first.
	var parser benchproc.ProjectionParser
	col, err := parser.Parse("/impl", nil)
	if err != nil {
		t.Fatal(err)
	}
	var cols []benchproc.Key
	samples := map[string][]float64{}
	for _, res := range results {
		c := col.Project(res)
		found := false
		for _, k := range cols {
			if k == c {
				found = true
			}
		}
		if !found {
			cols = append(cols, c)
		}
		samples[string(res.Name)] = append(samples[string(res.Name)], res.Values[0].Value)
	}
	if first := cols[0].StringValues(); first != "C-liburing" {
		t.Errorf("first implementation %q, want the NOP baseline C-liburing", first)
	}
	want := []string{"C-liburing", "os.File", "net-epoll"}
	for i, w := range want {
		if got := cols[i].StringValues(); got != w {
			t.Errorf("implementation %d: %q, want baseline %q", i, got, w)
		}
	}
	// benchstat's own summary of one row agrees with riobench's median.
	s := benchmath.AssumeNothing.Summary(benchmath.NewSample(samples["NOP/mode=single/impl=rio"], &benchmath.DefaultThresholds), 0.95)
	if s.Center != 1.45e6 {
		t.Errorf("benchstat's center of NOP rio: %v, riobench's median 1.45e6", s.Center)
	}
}
