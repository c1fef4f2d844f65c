package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// groupInfo describes a group of rows: the implementations measured side
// by side for one workload at one parameter, compared with the baseline.
type groupInfo struct {
	Workload string `json:"workload"` // nop, direct, hot, copy, echo, http, idle, ...
	Param    string `json:"param"`    // space-separated key=value pairs: "depth=32", "conns=256 msg=64B"
	Title    string `json:"title"`
	Baseline string `json:"baseline"` // the implementation the others are divided by
	Unit     string `json:"unit"`     // of the primary value
	Lower    bool   `json:"lower_is_better,omitempty"`
	Source   string `json:"source"` // riobench, or bench/net
}

func (g groupInfo) key() string { return g.Workload + "/" + g.Param }

// measurement is the result of one round of one implementation: the
// primary value in its group's unit, and secondary metrics (see
// metricDefs) where the source has them.
type measurement struct {
	Workload, Param, Impl string
	Round                 int // from 1
	Value                 float64
	Metrics               map[string]float64
}

// A rowSource measures some groups and reports every measurement to the
// runner as it is made. New rows are a new source, or new groups of an
// existing one: the report, the chart, the benchstat file and the
// published sections are built from the groups and measurements alone.
type rowSource interface {
	// groups lists the groups the source measures, in table order.
	groups() []groupInfo
	// planned is how many measurements run will make (runner.step calls)
	// and about how long each takes, for the progress line's estimate.
	planned() (n int, each time.Duration)
	// run makes the measurements, calling r.record for the results and
	// r.step once per measurement. It returns when done or ctx is done.
	run(ctx context.Context, r *runner)
}

type rowKey struct{ workload, param, impl string }

// rowData is what the runner collected for one row.
type rowData struct {
	rounds  []int
	values  []float64
	metrics []map[string]float64 // per round, parallel to values
}

// runner runs the sources one after the other, collects their results and
// prints progress with an estimate of the time left.
type runner struct {
	out     io.Writer // progress and notes
	begun   time.Time // start of the first measurement
	total   int       // planned measurements
	done    int
	estAll  time.Duration // estimated time of every planned measurement
	estDone time.Duration // estimated time of those done
	rows    map[rowKey]*rowData
	order   []rowKey
	notes   []string
}

func newRunner(out io.Writer) *runner {
	return &runner{out: out, rows: map[rowKey]*rowData{}}
}

func (r *runner) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.notes = append(r.notes, s)
	fmt.Fprintf(r.out, "riobench: %s\n", s)
}

// runAll runs every source. Planned measurements a source did not make
// (it failed, or was interrupted) are taken out of the estimate.
func (r *runner) runAll(ctx context.Context, sources []rowSource) {
	for _, s := range sources {
		n, each := s.planned()
		r.total += n
		r.estAll += time.Duration(n) * each
	}
	r.begun = time.Now()
	for _, s := range sources {
		if ctx.Err() != nil {
			return
		}
		n, each := s.planned()
		before := r.done
		s.run(ctx, r)
		if missed := n - (r.done - before); missed > 0 {
			r.total -= missed
			r.estAll -= time.Duration(missed) * each
		}
	}
}

// record stores one measurement.
func (r *runner) record(m measurement) {
	k := rowKey{m.Workload, m.Param, m.Impl}
	d := r.rows[k]
	if d == nil {
		d = &rowData{}
		r.rows[k] = d
		r.order = append(r.order, k)
	}
	d.rounds = append(d.rounds, m.Round)
	d.values = append(d.values, m.Value)
	d.metrics = append(d.metrics, m.Metrics)
}

// step counts one measurement done (each: its planned duration) and
// prints a progress line with the time left: the planned time of what
// remains, scaled by how the measurements so far compared with their plan.
func (r *runner) step(each time.Duration, format string, args ...any) {
	r.done++
	r.estDone += each
	el := time.Since(r.begun)
	left := r.estAll - r.estDone
	if r.estDone > 0 {
		left = time.Duration(float64(left) * float64(el) / float64(r.estDone))
	}
	fmt.Fprintf(r.out, "[%3d/%3d %s, ~%s left] %s\n", r.done, r.total, clock(el), clock(max(left, 0)), fmt.Sprintf(format, args...))
}

// clock formats d as m:ss.
func clock(d time.Duration) string {
	s := int(d.Round(time.Second).Seconds())
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// impl is one implementation of an alternating unit: rio, the standard
// library or a reference program. run performs one measurement in a child
// process and returns its samples.
type impl struct {
	name string
	run  func(ctx context.Context) ([]sample, error)
}

// altUnit is a set of implementations that run in alternation. Their
// samples go to the groups of workload at the sample's param, or param
// when the sample has none (a NOP child reports two params at once).
type altUnit struct {
	workload, param string
	impls           []impl
}

// altSource runs units of riobench's own child processes: for each unit,
// rounds of all its implementations, in reversed order every other round
// (A B C, C B A, ...), so that every implementation sees the same mix of
// early and late, and a round's ratio compares runs seconds apart.
type altSource struct {
	gs      []groupInfo
	units   []altUnit
	rounds  int
	each    time.Duration
	timeout time.Duration // of one child
}

func (s *altSource) groups() []groupInfo { return s.gs }

func (s *altSource) planned() (int, time.Duration) {
	n := 0
	for _, u := range s.units {
		n += len(u.impls) * s.rounds
	}
	return n, s.each
}

func (s *altSource) run(ctx context.Context, r *runner) {
	failed := map[string]string{}
	for _, u := range s.units {
		for round := 1; round <= s.rounds; round++ {
			order := append([]impl(nil), u.impls...)
			if round%2 == 0 {
				for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
					order[i], order[j] = order[j], order[i]
				}
			}
			for _, im := range order {
				if ctx.Err() != nil {
					return
				}
				label := fmt.Sprintf("%-6s %-10s %-15s round %d/%d", u.workload, u.param, im.name, round, s.rounds)
				if msg, bad := failed[im.name]; bad {
					r.step(s.each, "%s: skipped (failed before: %s)", label, msg)
					continue
				}
				cctx, cancel := context.WithTimeout(ctx, s.timeout)
				res, err := im.run(cctx)
				cancel()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					failed[im.name] = err.Error()
					r.note("%s %s %s: %v", u.workload, u.param, im.name, err)
					r.step(s.each, "%s: failed", label)
					continue
				}
				var shown []string
				for _, smp := range res {
					p := smp.Param
					if p == "" {
						p = u.param
					}
					r.record(measurement{Workload: u.workload, Param: p, Impl: im.name, Round: round, Value: smp.Value, Metrics: smp.Extra})
					v := human(smp.Value) + " " + smp.Unit
					if p != u.param {
						v = p + " " + v
					}
					shown = append(shown, v)
				}
				r.step(s.each, "%s: %s", label, strings.Join(shown, ", "))
			}
		}
	}
}
