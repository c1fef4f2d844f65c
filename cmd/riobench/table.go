package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// metricText is a secondary metric's median for the table, with its ratio
// to the baseline's: "p99 210 µs (0.93×)".
func metricText(name string, m *metricRow, isBase bool) string {
	d := metricDefs[name]
	v := human(m.Median)
	if d.whole {
		v = fmt.Sprintf("%.0f", m.Median)
	}
	if d.unit == "µs" && m.Median >= 1000 {
		d.unit, v = "ms", human(m.Median/1000)
	}
	var s string
	switch {
	case d.unit == "":
		s = v + " " + d.label
	case strings.HasPrefix(d.unit, "/"):
		s = d.label + " " + v + d.unit
	default:
		s = d.label + " " + v + " " + d.unit
	}
	if d.ratio && m.VsBase != nil && !isBase {
		s += " (" + ratioText(m.VsBase.Ratio) + ")"
	}
	return s
}

// note is the table's note column: the shown secondary metrics.
func (r row) note() string {
	var parts []string
	for _, name := range metricOrder {
		if m, ok := r.Metrics[name]; ok && metricDefs[name].show {
			parts = append(parts, metricText(name, m, r.Impl == r.Baseline))
		}
	}
	return strings.Join(parts, ", ")
}

// printTable writes the results table: one block per group, the baseline
// first, then the legend and the notes.
func (rep *report) printTable(w io.Writer) { rep.writeTable(w, true) }

func (rep *report) writeTable(w io.Writer, legend bool) {
	fmt.Fprintf(w, "riobench %s: %s; %s; took %s\n", rep.when(), rep.machine(), rep.how(), rep.Duration)
	fmt.Fprintf(w, "command: %s", rep.Command)
	if rep.Commit != "" {
		fmt.Fprintf(w, " (commit %s)", rep.Commit)
	}
	fmt.Fprint(w, "\n\n")
	var tb strings.Builder
	tw := tabwriter.NewWriter(&tb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tparam\timpl\tmedian\tunit\tvs base\trounds' ratios\t\tspread\tnote")
	for i, g := range rep.Groups {
		rows := rep.rowsOf(g)
		if len(rows) == 0 {
			continue
		}
		if i > 0 {
			fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t\t")
		}
		title, param := g.Title, g.Param
		if g.Lower {
			title += " (lower is better)"
		}
		for _, r := range rows {
			ratio, rng, ver := "", "", ""
			switch {
			case r.Impl == g.Baseline:
				ratio = "base"
			case r.VsBase != nil:
				ratio, rng, ver = ratioText(r.VsBase.Ratio), rangeText(r.VsBase), verdict(r.VsBase, g.Lower)
			}
			spread := "-"
			if len(r.Values) > 1 && r.Median > 0 {
				spread = fmt.Sprintf("%.0f%%", 100*r.spread())
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", title, param, r.Impl, human(r.Median), r.Unit, ratio, rng, ver, spread, r.note())
			title, param = "", ""
		}
	}
	tw.Flush()
	for _, line := range strings.SplitAfter(tb.String(), "\n") {
		fmt.Fprint(w, strings.TrimRight(line, " \n"))
		if strings.HasSuffix(line, "\n") {
			fmt.Fprintln(w)
		}
	}
	if legend {
		fmt.Fprint(w, "\n"+rep.legend()+"\n")
	}
	if len(rep.Notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range rep.Notes {
			fmt.Fprintf(w, "  - %s\n", n)
		}
	}
}

// legend explains the table's columns (and the published tables').
func (rep *report) legend() string {
	n := rep.Config.Rounds
	s := fmt.Sprintf(`median: of the %s of the row. vs base: this row's median divided by the baseline row's
  median (for "lower is better" rows, below 1 is better).
rounds' ratios: the lowest and highest ratio of one round of the row to the baseline's
  round run next to it; "better" or "worse" if every round agreed, "≈" if the rows
  were within this run's noise.`, plural(n, "round"))
	if n > 1 {
		s += fmt.Sprintf(`
  With %d independent rounds, the range of the rounds holds their median with
  probability %.0f%%.`, n, 100*coverage(n))
	}
	s += `
spread: (max - min) / median of the row's rounds. A large spread means the machine was
  noisy: rerun with more -rounds and a longer -dur before reading much into a ratio.`
	return s
}
