package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// The chart: one panel per group (every workload, every implementation),
// and for the network groups a second panel with the server's CPU time per
// request (on loopback with two CPUs the client caps req/s, and the CPU a
// request costs the server is the measure that does not depend on it).
// Each panel draws a horizontal bar per implementation at its median, a
// whisker from the lowest to the highest round, and the ratio to the
// baseline with the range of the per-round ratios. Axes are linear from 0
// and say so, with the unit and whether higher or lower is better. The
// footer says when, how and on what the run was made, and its command.

type bar struct {
	label        string
	med, lo, hi  float64
	text         string // "46.1k  1.34× (1.20–1.41)"
	baseline, me bool   // the group's baseline; an implementation of rio
}

type panel struct {
	title string
	axis  string // "IOPS, higher is better (linear scale from 0)"
	bars  []bar
}

// chartPanels lays the report out as panels.
func (rep *report) chartPanels() []panel {
	var panels []panel
	for _, g := range rep.Groups {
		rows := rep.rowsOf(g)
		if len(rows) == 0 {
			continue
		}
		p := panel{title: g.Title + ", " + g.Param, axis: axisLabel(g.Unit, g.Lower)}
		for _, r := range rows {
			p.bars = append(p.bars, makeBar(r.Impl, r.summary, r.VsBase, r.Impl == g.Baseline, g.Unit))
		}
		panels = append(panels, p)
		const cpu = "srv_cpu_us_per_req"
		q := panel{title: g.Title + ", " + g.Param + ": server CPU/request", axis: axisLabel("µs CPU per request", true)}
		for _, r := range rows {
			if m, ok := r.Metrics[cpu]; ok {
				q.bars = append(q.bars, makeBar(r.Impl, m.summary, m.VsBase, r.Impl == g.Baseline, "µs"))
			}
		}
		if len(q.bars) > 0 {
			panels = append(panels, q)
		}
	}
	return panels
}

func axisLabel(unit string, lower bool) string {
	better := "higher is better"
	if lower {
		better = "lower is better"
	}
	return unit + ", " + better + " (linear scale from 0)"
}

func makeBar(name string, s summary, c *comparison, isBase bool, unit string) bar {
	b := bar{label: name, med: s.Median, lo: s.Min, hi: s.Max, baseline: isBase, me: strings.HasPrefix(name, "rio")}
	b.text = human(s.Median)
	switch {
	case isBase:
		b.text += "  base"
	case c != nil:
		b.text += "  " + ratioText(c.Ratio) + " (" + rangeText(c) + ")"
	}
	return b
}

// barColor: rio red, the baseline blue, every other peer grey.
func barColor(b bar) string {
	switch {
	case b.me:
		return "#d62728"
	case b.baseline:
		return "#1f77b4"
	}
	return "#8c8c8c"
}

// svg draws the chart.
func (rep *report) svg() string {
	panels := rep.chartPanels()
	const (
		cols              = 3
		pw                = 500 // panel width
		labelW            = 112 // implementation names
		textW             = 158 // value and ratio right of the bars
		barH, gap, header = 16, 6, 34
		axisH             = 44
		footH             = 64
	)
	// Row heights: the tallest panel of each row of the grid.
	var rowH []int
	for i, p := range panels {
		h := header + len(p.bars)*(barH+gap) + axisH
		if i%cols == 0 {
			rowH = append(rowH, h)
		} else if h > rowH[len(rowH)-1] {
			rowH[len(rowH)-1] = h
		}
	}
	W := cols * pw
	if len(panels) < cols {
		W = max(1, len(panels)) * pw
	}
	H := footH + 10
	for _, h := range rowH {
		H += h
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", W, H, W, H)
	sb.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	y0 := 0
	for i, p := range panels {
		if i > 0 && i%cols == 0 {
			y0 += rowH[i/cols-1]
		}
		ox, oy := (i%cols)*pw, y0
		x0, x1 := float64(ox+labelW), float64(ox+pw-textW)
		hi := 0.0
		for _, b := range p.bars {
			hi = math.Max(hi, math.Max(b.hi, b.med))
		}
		step := niceStep(hi / 4)
		ticks := max(1, int(math.Ceil(hi/step*(1-1e-12))))
		xmax := step * float64(ticks)
		xpos := func(v float64) float64 { return x0 + v/xmax*(x1-x0) }
		fmt.Fprintf(&sb, `<text x="%d" y="%d" font-size="12" font-weight="bold">%s</text>`+"\n", ox+8, oy+18, esc(p.title))
		top := float64(oy + header)
		bottom := top + float64(len(p.bars)*(barH+gap))
		for k := 0; k <= ticks; k++ {
			v := step * float64(k)
			x := xpos(v)
			tick := human(v)
			if k == 0 {
				tick = "0"
			}
			fmt.Fprintf(&sb, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e2e2e2"/>`+"\n", x, top-4, x, bottom)
			fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#444">%s</text>`+"\n", x, bottom+13, tick)
		}
		fmt.Fprintf(&sb, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", x0, bottom, x1, bottom)
		fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#444">%s</text>`+"\n", (x0+x1)/2, bottom+28, esc(p.axis))
		for j, b := range p.bars {
			y := top + float64(j*(barH+gap))
			col := barColor(b)
			fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-6, y+barH-4, esc(b.label))
			fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s" fill-opacity="0.8"/>`+"\n", x0, y, xpos(b.med)-x0, barH, col)
			ym := y + barH/2
			fmt.Fprintf(&sb, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", xpos(b.lo), ym, xpos(b.hi), ym)
			for _, v := range []float64{b.lo, b.hi} {
				fmt.Fprintf(&sb, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", xpos(v), ym-4, xpos(v), ym+4)
			}
			fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f">%s</text>`+"\n", x1+6, y+barH-4, esc(b.text))
		}
	}
	if len(rowH) > 0 {
		y0 += rowH[len(rowH)-1]
	}
	foot := rep.chartFooter()
	for k, line := range foot {
		fmt.Fprintf(&sb, `<text x="8" y="%d" font-size="11" fill="#333">%s</text>`+"\n", y0+16+k*15, esc(line))
	}
	sb.WriteString("</svg>\n")
	return sb.String()
}

// chartFooter is the chart's last lines: what the bars are, and when,
// how and on what the numbers were measured.
func (rep *report) chartFooter() []string {
	lines := []string{
		fmt.Sprintf("riobench, %s: %s; took %s. Command: %s", rep.when(), rep.how(), rep.Duration, rep.Command),
		"Bars: median of the rounds (red: rio, blue: the baseline, grey: other peers); whiskers: lowest to highest round. Ratios: median / the baseline's median, in brackets the lowest and highest per-round ratio.",
		"Machine: " + rep.machine(),
	}
	if rep.Commit != "" {
		lines[2] += "; commit " + rep.Commit
	}
	if rep.Host.LoadStart != "" {
		lines[2] += "; load average " + rep.Host.LoadStart + " at the start"
	}
	return lines
}

func esc(s string) string { return html.EscapeString(s) }

// niceStep rounds v up to 1, 2 or 5 times a power of ten: the distance
// between two ticks of an axis.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v*(1-1e-12) {
			return m * p
		}
	}
	return 10 * p
}
