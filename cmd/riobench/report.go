package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// report is everything a run measured and how: riobench's JSON output,
// and the only input of the table, the chart, the benchstat file and the
// published sections of the README and docs.
type report struct {
	Version  int         `json:"version"`
	Started  time.Time   `json:"started"`
	Duration string      `json:"duration"`
	Command  string      `json:"command"`
	Commit   string      `json:"commit,omitempty"` // git commit of the checkout, "+dirty" if it had changes
	Host     hostInfo    `json:"host"`
	Config   config      `json:"config"`
	Groups   []groupInfo `json:"groups"`
	Rows     []row       `json:"rows"`
	Notes    []string    `json:"notes,omitempty"`
}

const reportVersion = 2

type hostInfo struct {
	Kernel     string `json:"kernel"`
	CPU        string `json:"cpu"`
	CPUs       []int  `json:"cpus"`
	Virt       string `json:"virtualization,omitempty"`
	Go         string `json:"go"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	LoadStart  string `json:"load_start,omitempty"` // /proc/loadavg when the run began
	LoadEnd    string `json:"load_end,omitempty"`
}

type config struct {
	Workloads    []string `json:"workloads"`
	Dur          string   `json:"dur"`
	Rounds       int      `json:"rounds"`
	Quick        bool     `json:"quick,omitempty"`
	Depths       []int    `json:"depths"`
	HotWorkers   int      `json:"hot_workers"`
	Batch        int      `json:"batch"`
	FileMiB      int      `json:"file_mib"`
	Dir          string   `json:"dir"`
	Pinned       bool     `json:"pinned"`
	NetScenarios []string `json:"net_scenarios,omitempty"`
	NetImpls     string   `json:"net_impls,omitempty"`
	NetWarmup    string   `json:"net_warmup,omitempty"`
}

// row is one implementation in one group: its rounds, their median and
// range, and its comparison with the group's baseline.
type row struct {
	Workload string    `json:"workload"`
	Param    string    `json:"param"`
	Impl     string    `json:"impl"`
	Unit     string    `json:"unit"`
	Lower    bool      `json:"lower_is_better,omitempty"`
	Rounds   []int     `json:"rounds"` // the round of each value
	Values   []float64 `json:"values"`
	summary
	Baseline string      `json:"baseline,omitempty"`
	VsBase   *comparison `json:"vs_base,omitempty"`
	// Metrics are the secondary measurements, by metricDefs name.
	Metrics map[string]*metricRow `json:"metrics,omitempty"`
}

type metricRow struct {
	Rounds []int     `json:"rounds"`
	Values []float64 `json:"values"`
	summary
	VsBase *comparison `json:"vs_base,omitempty"`
}

func (r row) key() string { return r.Workload + "/" + r.Param }

// metricDef describes a secondary metric.
type metricDef struct {
	label string // in the table and chart
	unit  string
	lower bool   // lower is better
	bench string // unit in the benchstat file
	show  bool   // in the table's note column
	ratio bool   // with its ratio to the baseline's
	whole bool   // a count: shown without decimals
}

// metricDefs are the secondary metrics riobench knows how to show; others
// (bench/net may add some) are kept in the JSON only.
var metricDefs = map[string]metricDef{
	"threads":            {label: "threads", unit: "", lower: true, bench: "threads", show: true, whole: true},
	"p50_us":             {label: "p50", unit: "µs", lower: true, bench: "p50-µs"},
	"p99_us":             {label: "p99", unit: "µs", lower: true, bench: "p99-µs", show: true, ratio: true},
	"srv_cpu_us_per_req": {label: "server CPU", unit: "µs/req", lower: true, bench: "srv-cpu-µs/req", show: true, ratio: true},
	"srv_cs_per_req":     {label: "server switches", unit: "/req", lower: true, bench: "srv-switches/req", show: true},
	"cli_cpu_us_per_req": {label: "client CPU", unit: "µs/req", lower: true, bench: "cli-cpu-µs/req"},
}

// metricOrder is the order of metricDefs in the table and benchstat file.
var metricOrder = []string{"threads", "p50_us", "p99_us", "srv_cpu_us_per_req", "srv_cs_per_req", "cli_cpu_us_per_req"}

// buildRows turns the runner's results into rows: groups in the order
// given, the baseline first in each, then the others in the order they
// first reported.
func buildRows(groups []groupInfo, r *runner) []row {
	var rows []row
	for _, g := range groups {
		var keys []rowKey
		for _, k := range r.order {
			if k.workload == g.Workload && k.param == g.Param {
				keys = append(keys, k)
			}
		}
		sort.SliceStable(keys, func(i, j int) bool { return keys[i].impl == g.Baseline && keys[j].impl != g.Baseline })
		base := r.rows[rowKey{g.Workload, g.Param, g.Baseline}]
		for _, k := range keys {
			d := r.rows[k]
			rw := row{Workload: g.Workload, Param: g.Param, Impl: k.impl, Unit: g.Unit, Lower: g.Lower,
				Rounds: d.rounds, Values: d.values, summary: summarize(d.values)}
			if base != nil {
				if c, ok := compare(d.values, d.rounds, base.values, base.rounds); ok {
					rw.Baseline, rw.VsBase = g.Baseline, &c
				}
			}
			rw.Metrics = metricRows(d, base)
			rows = append(rows, rw)
		}
	}
	return rows
}

// metricRows gathers the secondary metrics of a row's rounds and compares
// each with the baseline's.
func metricRows(d, base *rowData) map[string]*metricRow {
	collect := func(d *rowData, name string) (rounds []int, vals []float64) {
		for i, m := range d.metrics {
			if v, ok := m[name]; ok {
				rounds, vals = append(rounds, d.rounds[i]), append(vals, v)
			}
		}
		return
	}
	var names []string
	for _, m := range d.metrics {
		for k := range m {
			if !slices.Contains(names, k) {
				names = append(names, k)
			}
		}
	}
	if len(names) == 0 {
		return nil
	}
	out := map[string]*metricRow{}
	for _, n := range names {
		rounds, vals := collect(d, n)
		mr := &metricRow{Rounds: rounds, Values: vals, summary: summarize(vals)}
		if base != nil && base != d {
			br, bv := collect(base, n)
			if c, ok := compare(vals, rounds, bv, br); ok {
				mr.VsBase = &c
			}
		}
		out[n] = mr
	}
	return out
}

// group returns the group of row r.
func (rep *report) group(r row) groupInfo {
	for _, g := range rep.Groups {
		if g.Workload == r.Workload && g.Param == r.Param {
			return g
		}
	}
	return groupInfo{Workload: r.Workload, Param: r.Param, Title: r.Workload, Unit: r.Unit, Lower: r.Lower}
}

// rowsOf returns the rows of group g, the baseline first.
func (rep *report) rowsOf(g groupInfo) []row {
	var out []row
	for _, r := range rep.Rows {
		if r.key() == g.key() {
			out = append(out, r)
		}
	}
	return out
}

func (rep *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readReport(path string) (*report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if rep.Version != reportVersion {
		return nil, fmt.Errorf("%s: report version %d, this riobench reads version %d", path, rep.Version, reportVersion)
	}
	return &rep, nil
}

// human formats a rate with a k/M suffix, to three significant digits.
func human(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case a >= 10e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case a >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case a >= 100e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	case a >= 10e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case a >= 1e3:
		return fmt.Sprintf("%.2fk", v/1e3)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// plural is "1 round", "3 rounds".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// ratioText is "1.21×".
func ratioText(x float64) string { return fmt.Sprintf("%.2f×", x) }

// rangeText is "1.05–1.30", the per-round ratios' range.
func rangeText(c *comparison) string {
	return fmt.Sprintf("%.2f–%.2f", c.RatioMin, c.RatioMax)
}

// verdict says what a comparison shows, in words: "faster" and "slower"
// need every round to agree; otherwise the rows are within this run's
// noise.
func verdict(c *comparison, lower bool) string {
	if !c.clear() {
		return "≈"
	}
	better := c.RatioMin > 1
	if lower {
		better = !better
	}
	if better {
		return "better"
	}
	return "worse"
}

// when is the report's start, for footers: "2026-12-01 13:30 UTC".
func (rep *report) when() string { return rep.Started.UTC().Format("2006-01-02 15:04 UTC") }

// machine is "Linux 6.18.44, AMD EPYC, 2 CPUs, virtual machine (KVM), go1.26.8".
func (rep *report) machine() string {
	parts := []string{"Linux " + rep.Host.Kernel, rep.Host.CPU, plural(len(rep.Host.CPUs), "CPU")}
	if rep.Host.Virt != "" {
		parts = append(parts, rep.Host.Virt)
	}
	parts = append(parts, rep.Host.Go)
	return strings.Join(parts, ", ")
}

// how is "5 rounds of 1s per row, implementations alternating".
func (rep *report) how() string {
	return fmt.Sprintf("%s of %s per row, implementations alternating", plural(rep.Config.Rounds, "round"), rep.Config.Dur)
}
