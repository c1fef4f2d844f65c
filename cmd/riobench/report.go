package main

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one line of the results: the rounds of one implementation in one
// group, their median, and the ratio of that median to the baseline's.
type row struct {
	Workload string    `json:"workload"`
	Param    string    `json:"param"`
	Impl     string    `json:"impl"`
	Unit     string    `json:"unit"`
	Values   []float64 `json:"values"`
	Median   float64   `json:"median"`
	Min      float64   `json:"min"`
	Max      float64   `json:"max"`
	Baseline string    `json:"baseline"`
	// Ratio is the median over rounds of Values[i] / the baseline's
	// Values[i]: the rounds are paired because they ran next to each other,
	// so drift of the machine between rounds cancels. 0 if no baseline.
	Ratio float64 `json:"ratio,omitempty"`
	// RatioOfMedians is Median / the baseline's Median.
	RatioOfMedians float64            `json:"ratio_of_medians,omitempty"`
	X              int                `json:"x,omitempty"`     // depth or connections, for charts
	Extra          map[string]float64 `json:"extra,omitempty"` // medians of extra metrics (peak OS threads)
}

type report struct {
	Started  time.Time `json:"started"`
	Duration string    `json:"duration"`
	Host     struct {
		Kernel     string `json:"kernel"`
		CPU        string `json:"cpu"`
		CPUs       []int  `json:"cpus"`
		Go         string `json:"go"`
		GOMAXPROCS int    `json:"gomaxprocs"`
	} `json:"host"`
	Config struct {
		Workloads  []string `json:"workloads"`
		Dur        string   `json:"dur"`
		Rounds     int      `json:"rounds"`
		Conns      []int    `json:"conns"`
		HTTPConns  int      `json:"http_conns"`
		HTTPClient string   `json:"http_client"`
		Msg        int      `json:"msg"`
		Depths     []int    `json:"depths"`
		HotDepth   int      `json:"hot_workers"`
		Batch      int      `json:"batch"`
		FileMiB    int      `json:"file_mib"`
		Dir        string   `json:"dir"`
		Pinned     bool     `json:"pinned"`
	} `json:"config"`
	Rows  []row    `json:"rows"`
	Notes []string `json:"notes"`
}

var workloadTitle = map[string]string{
	"nop":    "NOP",
	"direct": "O_DIRECT 4K randread",
	"hot":    "hot 4K randread",
	"copy":   "sequential copy",
	"echo":   "TCP echo",
	"http":   "HTTP hello",
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func (b *bench) report() *report {
	rep := &report{Started: b.started, Duration: time.Since(b.started).Round(time.Second).String(), Notes: b.notes}
	rep.Host.Kernel = kernelRelease()
	rep.Host.CPU = cpuModel()
	rep.Host.CPUs = allowedCPUs()
	rep.Host.Go = runtime.Version()
	rep.Host.GOMAXPROCS = runtime.GOMAXPROCS(0)
	c := &rep.Config
	for _, w := range allWorkloads {
		if b.o.workloads[w] {
			c.Workloads = append(c.Workloads, w)
		}
	}
	c.Dur, c.Rounds, c.Conns, c.HTTPConns, c.HTTPClient, c.Msg = b.o.dur.String(), b.o.rounds, b.o.conns, b.o.httpConns, b.o.httpClient, b.o.msg
	c.Depths, c.HotDepth, c.Batch, c.FileMiB, c.Dir, c.Pinned = b.o.depths, b.o.hotWorkers, b.o.batch, b.o.fileMiB, b.o.dir, b.o.pin

	// Rows in group order, the baseline first within each group.
	for _, g := range b.groups {
		var params []string
		for _, k := range b.order {
			if k.workload == g.workload && (g.key == "" || k.param == g.key) && !contains(params, k.param) {
				params = append(params, k.param)
			}
		}
		for _, p := range params {
			names := []string{g.baseline}
			for _, im := range g.impls {
				if im.name != g.baseline {
					names = append(names, im.name)
				}
			}
			base := 0.0
			baseVals := b.results[rowKey{g.workload, p, g.baseline}]
			if len(baseVals) > 0 {
				base = median(baseVals)
			}
			for _, n := range names {
				k := rowKey{g.workload, p, n}
				v, ok := b.results[k]
				if !ok {
					continue
				}
				r := row{Workload: g.workload, Param: p, Impl: n, Unit: b.units[k], Values: v, Median: median(v), X: g.x}
				r.Min, r.Max = v[0], v[0]
				for _, x := range v {
					r.Min, r.Max = math.Min(r.Min, x), math.Max(r.Max, x)
				}
				if base > 0 {
					r.Baseline = g.baseline
					r.RatioOfMedians = r.Median / base
					r.Ratio = r.RatioOfMedians
					if len(v) == len(baseVals) {
						ratios := make([]float64, len(v))
						for i := range v {
							ratios[i] = v[i] / baseVals[i]
						}
						r.Ratio = median(ratios)
					}
				}
				for name, xs := range b.extras[k] {
					if r.Extra == nil {
						r.Extra = map[string]float64{}
					}
					r.Extra[name] = median(xs)
				}
				rep.Rows = append(rep.Rows, r)
			}
		}
	}
	return rep
}

// human formats a rate with a k/M suffix.
func human(v float64) string {
	switch {
	case v >= 10e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 10e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func (rep *report) printTable(w io.Writer) {
	fmt.Fprintf(w, "\nriobench: Linux %s, %s, CPUs %v, %s; %d rounds of %s each, alternating; took %s\n\n",
		rep.Host.Kernel, rep.Host.CPU, rep.Host.CPUs, rep.Host.Go, rep.Config.Rounds, rep.Config.Dur, rep.Duration)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tparam\timpl\tmedian\tunit\tvs base\tspread\tnote")
	prev := ""
	for _, r := range rep.Rows {
		title, param := workloadTitle[r.Workload], r.Param
		if cur := r.Workload + "/" + r.Param; cur == prev {
			title, param = "", ""
		} else if prev != "" && !strings.HasPrefix(prev, r.Workload+"/") {
			fmt.Fprintln(tw, "\t\t\t\t\t\t\t")
		}
		prev = r.Workload + "/" + r.Param
		ratio := "-"
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2fx", r.Ratio)
			if r.Impl == r.Baseline {
				ratio = "base"
			}
		}
		spread := "-"
		if len(r.Values) > 1 && r.Median > 0 {
			spread = fmt.Sprintf("%.0f%%", 100*(r.Max-r.Min)/r.Median)
		}
		note := ""
		if t, ok := r.Extra["threads"]; ok {
			note = fmt.Sprintf("%.0f threads", t)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", title, param, r.Impl, human(r.Median), r.Unit, ratio, spread, note)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nmedian: of the rounds. vs base: median over rounds of this row / the baseline row in the same round (higher is better).\nspread: (max-min)/median over the rounds; a large spread means a noisy machine: rerun with more -rounds.")
	if len(rep.Notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range rep.Notes {
			fmt.Fprintf(w, "  - %s\n", n)
		}
	}
}

func (rep *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writeSVG draws one panel per swept workload (TCP echo by connections,
// O_DIRECT reads by depth): the median of each implementation, one line
// each, against the parameter on a log scale.
func (rep *report) writeSVG(path string) error {
	type series struct {
		impl string
		pts  map[int]float64
	}
	type panel struct {
		workload string
		xs       []int
		series   []*series
		unit     string
	}
	var panels []*panel
	for _, w := range []string{"echo", "direct", "http", "hot"} {
		p := &panel{workload: w}
		byImpl := map[string]*series{}
		for _, r := range rep.Rows {
			if r.Workload != w || r.X == 0 {
				continue
			}
			s := byImpl[r.Impl]
			if s == nil {
				s = &series{impl: r.Impl, pts: map[int]float64{}}
				byImpl[r.Impl] = s
				p.series = append(p.series, s)
			}
			s.pts[r.X] = r.Median
			p.unit = r.Unit
			if !containsInt(p.xs, r.X) {
				p.xs = append(p.xs, r.X)
			}
		}
		sort.Ints(p.xs)
		// A panel for a sweep; the single-point workloads only if there
		// is nothing else to draw.
		if len(p.xs) > 1 || (len(p.xs) == 1 && (w == "echo" || w == "direct")) {
			panels = append(panels, p)
		}
	}
	if len(panels) == 0 {
		return fmt.Errorf("svg: no echo or O_DIRECT results to chart")
	}
	const pw, ph, ml, mr, mt, mb = 460, 320, 70, 30, 40, 90
	W := pw * len(panels)
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, ph+30, W, ph+30)
	fmt.Fprintf(&sb, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&sb, `<text x="8" y="%d" font-size="11" fill="#555">riobench, Linux %s, %d CPUs, %s; medians of %d rounds of %s</text>`+"\n",
		ph+20, html.EscapeString(rep.Host.Kernel), len(rep.Host.CPUs), html.EscapeString(rep.Host.Go), rep.Config.Rounds, rep.Config.Dur)
	colors := map[string]string{"rio net": "#d62728", "rio file": "#d62728", "rio file async": "#ff7f0e", "rio ring": "#e377c2",
		"net (epoll)": "#1f77b4", "os.File": "#1f77b4", "go-uring": "#2ca02c", "fio io_uring": "#7f7f7f", "C liburing": "#7f7f7f"}
	palette := []string{"#9467bd", "#8c564b", "#17becf", "#bcbd22"}
	for i, p := range panels {
		ox := i * pw
		x0, x1, y0, y1 := float64(ox+ml), float64(ox+pw-mr), float64(ph-mb), float64(mt)
		ymax := 0.0
		for _, s := range p.series {
			for _, v := range s.pts {
				ymax = math.Max(ymax, v)
			}
		}
		ymax = niceCeil(ymax)
		xpos := func(x int) float64 {
			if len(p.xs) == 1 {
				return (x0 + x1) / 2
			}
			lo, hi := math.Log(float64(p.xs[0])), math.Log(float64(p.xs[len(p.xs)-1]))
			return x0 + (math.Log(float64(x))-lo)/(hi-lo)*(x1-x0)
		}
		ypos := func(v float64) float64 { return y0 - v/ymax*(y0-y1) }
		title := workloadTitle[p.workload]
		xlabel := "connections"
		if p.workload == "direct" || p.workload == "hot" {
			xlabel = "queue depth (goroutines or ops in flight)"
		}
		fmt.Fprintf(&sb, `<text x="%d" y="20" font-size="14" font-weight="bold">%s (%s)</text>`+"\n", ox+ml, html.EscapeString(title), html.EscapeString(p.unit))
		fmt.Fprintf(&sb, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", x0, y0, x1, y0)
		fmt.Fprintf(&sb, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", x0, y0, x0, y1)
		for k := 0; k <= 4; k++ {
			v := ymax * float64(k) / 4
			y := ypos(v)
			fmt.Fprintf(&sb, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/>`+"\n", x0, y, x1, y)
			fmt.Fprintf(&sb, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-5, y+4, human(v))
		}
		for _, x := range p.xs {
			fmt.Fprintf(&sb, `<text x="%.1f" y="%.0f" text-anchor="middle">%d</text>`+"\n", xpos(x), y0+16, x)
		}
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" text-anchor="middle">%s</text>`+"\n", (x0+x1)/2, y0+32, xlabel)
		for j, s := range p.series {
			col, ok := colors[s.impl]
			if !ok {
				col = palette[j%len(palette)]
			}
			var pts []string
			for _, x := range p.xs {
				if v, ok := s.pts[x]; ok {
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", xpos(x), ypos(v)))
					fmt.Fprintf(&sb, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", xpos(x), ypos(v), col)
				}
			}
			if len(pts) > 1 {
				fmt.Fprintf(&sb, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), col)
			}
			ly := y0 + 48 + float64(j/2)*16
			lx := x0 + float64(j%2)*180
			fmt.Fprintf(&sb, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="2"/>`+"\n", lx, ly-4, lx+18, ly-4, col)
			fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f">%s</text>`+"\n", lx+24, ly, html.EscapeString(s.impl))
		}
	}
	sb.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
