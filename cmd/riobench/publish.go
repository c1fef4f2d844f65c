package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Publishing: the numbers a newcomer reads in README.md, docs/benchmarks.md
// and docs/riobench.md are generated from one run's JSON, committed as
// docs/riobench.json with its chart docs/riobench.svg. `riobench -publish`
// makes a run and publishes it; `riobench -publish-from FILE` publishes a
// run's results.json (or re-renders docs/riobench.json) without
// measuring. Each generated part of a document sits between
//
//	<!-- riobench:begin NAME -->
//	<!-- riobench:end NAME -->
//
// and TestPublished checks that every such part, and the chart, is what
// docs/riobench.json renders to, and that the README states no ratio or
// rate outside them.

const (
	publishedJSON = "docs/riobench.json"
	publishedSVG  = "docs/riobench.svg"
)

// section is one generated part of a document.
type section struct {
	file, name, text string
}

// sections renders every generated part from rep.
func (rep *report) sections() []section {
	return []section{
		{"README.md", "summary", rep.readmeSummary()},
		{"docs/benchmarks.md", "table", rep.benchmarksTable()},
		{"docs/riobench.md", "example", rep.riobenchExample()},
	}
}

func beginMark(name string) string { return "<!-- riobench:begin " + name + " -->" }
func endMark(name string) string   { return "<!-- riobench:end " + name + " -->" }

// replaceSection returns doc with the text between name's markers
// replaced by text.
func replaceSection(doc, name, text string) (string, error) {
	b, e := beginMark(name), endMark(name)
	i := strings.Index(doc, b)
	j := strings.Index(doc, e)
	if i < 0 || j < i {
		return "", fmt.Errorf("no %s ... %s", b, e)
	}
	if strings.Count(doc, b) > 1 || strings.Count(doc, e) > 1 {
		return "", fmt.Errorf("%s appears more than once", b)
	}
	return doc[:i+len(b)] + "\n" + text + doc[j:], nil
}

// sectionText returns the text between name's markers.
func sectionText(doc, name string) (string, error) {
	b, e := beginMark(name), endMark(name)
	i := strings.Index(doc, b)
	j := strings.Index(doc, e)
	if i < 0 || j < i {
		return "", fmt.Errorf("no %s ... %s", b, e)
	}
	return strings.TrimPrefix(doc[i+len(b):j], "\n"), nil
}

// publish writes rep as the published run of the checkout at root: the
// JSON, the chart, and every generated section.
func publish(rep *report, root string) ([]string, error) {
	if err := rep.writeJSON(filepath.Join(root, publishedJSON)); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(root, publishedSVG), []byte(rep.svg()), 0o644); err != nil {
		return nil, err
	}
	written := []string{publishedJSON, publishedSVG}
	for _, s := range rep.sections() {
		path := filepath.Join(root, s.file)
		b, err := os.ReadFile(path)
		if err != nil {
			return written, err
		}
		doc, err := replaceSection(string(b), s.name, s.text)
		if err != nil {
			return written, fmt.Errorf("%s: %v", s.file, err)
		}
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			return written, err
		}
		written = append(written, s.file+" ("+s.name+")")
	}
	return written, nil
}

// checkPublished compares the checkout's documents with what its
// published JSON renders to, and returns every difference.
func checkPublished(root string) []error {
	rep, err := readReport(filepath.Join(root, publishedJSON))
	if err != nil {
		return []error{err}
	}
	var errs []error
	if b, err := os.ReadFile(filepath.Join(root, publishedSVG)); err != nil {
		errs = append(errs, err)
	} else if string(b) != rep.svg() {
		errs = append(errs, fmt.Errorf("%s is not the chart of %s", publishedSVG, publishedJSON))
	}
	docs := map[string]string{}
	for _, s := range rep.sections() {
		if _, ok := docs[s.file]; !ok {
			b, err := os.ReadFile(filepath.Join(root, s.file))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			docs[s.file] = string(b)
		}
		got, err := sectionText(docs[s.file], s.name)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", s.file, err))
			continue
		}
		if got != s.text {
			errs = append(errs, fmt.Errorf("%s: section %q differs from what %s renders to:\n%s", s.file, s.name, publishedJSON, firstDiff(got, s.text)))
		}
	}
	if readme, ok := docs["README.md"]; ok {
		errs = append(errs, unpublishedFigures("README.md", readme)...)
	}
	return errs
}

// figure matches a measured figure in prose: a ratio, a percentage or a
// rate ("0.9×", "1.2x", "95%", "40k req/s", "3.3 GiB/s").
var figure = regexp.MustCompile(`[0-9][0-9.,]*\s*(×|x\b|%|[kKMG]?\s*(req/s|IOPS|ops/s|[KMG]i?B/s|ns/op|µs))`)

// unpublishedFigures reports measured figures of doc outside its
// generated sections: those are not checked against a run.
func unpublishedFigures(file, doc string) []error {
	var errs []error
	rest := doc
	for {
		i := strings.Index(rest, "<!-- riobench:begin ")
		outside := rest
		if i >= 0 {
			outside = rest[:i]
		}
		for _, line := range strings.Split(outside, "\n") {
			if m := figure.FindString(line); m != "" {
				errs = append(errs, fmt.Errorf("%s: %q states a figure (%q) outside the generated sections; put it in one, or drop it", file, strings.TrimSpace(line), m))
			}
		}
		if i < 0 {
			return errs
		}
		j := strings.Index(rest[i:], "<!-- riobench:end ")
		if j < 0 {
			return append(errs, fmt.Errorf("%s: unterminated generated section", file))
		}
		rest = rest[i+j+len("<!-- riobench:end "):]
	}
}

// firstDiff shows the first line where got and want differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n  committed: %s\n  generated: %s", i+1, gl, wl)
		}
	}
	return "(whitespace)"
}

// measuredLine says when, how and on what rep was measured, for every
// generated section.
func (rep *report) measuredLine() string {
	s := fmt.Sprintf("Measured %s with `%s`: %s; the run took %s. Machine: %s",
		rep.when(), rep.Command, rep.how(), rep.Duration, rep.machine())
	if rep.Host.LoadStart != "" {
		s += ", load average " + rep.Host.LoadStart + " at the start"
	}
	if rep.Commit != "" {
		s += "; commit " + rep.Commit
	}
	return s + "."
}

// readmeSummary is README's table: every rio row against its group's
// baseline, and the chart.
func (rep *report) readmeSummary() string {
	var b strings.Builder
	b.WriteString("| workload | rio | compared with | rio ÷ it (rounds' range) | in every round |\n|---|---|---|---|---|\n")
	for _, g := range rep.Groups {
		rows := rep.rowsOf(g)
		var base *row
		for i := range rows {
			if rows[i].Impl == g.Baseline {
				base = &rows[i]
			}
		}
		for _, r := range rows {
			if r.Impl == g.Baseline || !strings.HasPrefix(r.Impl, "rio") || base == nil || r.VsBase == nil {
				continue
			}
			what := g.Title + ", " + g.Param
			if g.Lower {
				what += " (lower is better)"
			}
			mine := fmt.Sprintf("%s: %s %s", r.Impl, human(r.Median), r.Unit)
			theirs := fmt.Sprintf("%s: %s %s", base.Impl, human(base.Median), base.Unit)
			ratio := fmt.Sprintf("%s (%s)", ratioText(r.VsBase.Ratio), rangeText(r.VsBase))
			if m, ok := r.Metrics["srv_cpu_us_per_req"]; ok && m.VsBase != nil {
				mine += fmt.Sprintf(", %s µs CPU/req", human(m.Median))
				theirs += fmt.Sprintf(", %s µs CPU/req", human(base.Metrics["srv_cpu_us_per_req"].Median))
				ratio += fmt.Sprintf("; CPU/req %s (%s)", ratioText(m.VsBase.Ratio), rangeText(m.VsBase))
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", what, mine, theirs, ratio, verdictWords(verdict(r.VsBase, g.Lower)))
		}
	}
	b.WriteString("\n" + rep.measuredLine() + "\n\n")
	fmt.Fprintf(&b, "Each figure is the median of the rounds. The ratio is rio's median divided by the other's; "+
		"in brackets, the lowest and highest ratio of one round to the other's round run beside it. "+
		"That range is this run's noise: %s "+
		"\"within noise\" means the rounds did not agree on which was better.\n\n", rep.noiseSentence())
	fmt.Fprintf(&b, "Every row, every peer (%s), the spreads and the secondary metrics are in "+
		"[docs/benchmarks.md](docs/benchmarks.md#the-whole-suite-go-run-cmdriobench); how to read them, in "+
		"[docs/riobench.md](docs/riobench.md#reading-the-numbers).\n\n", strings.Join(rep.peers(), ", "))
	b.WriteString(`![Every riobench workload: median of the rounds as bars, lowest to highest round as whiskers, rio against each peer](docs/riobench.svg)
`)
	return b.String()
}

// noiseSentence says how far a rerun of the run's command can be
// expected to move.
func (rep *report) noiseSentence() string {
	n := rep.Config.Rounds
	if n < 2 {
		return "with one round there is no range, and a rerun can differ by any amount."
	}
	return fmt.Sprintf("if the rounds were independent, the range would hold the ratio's true median with %.0f%% confidence (%s), "+
		"but a busy neighbour on this shared machine lasts longer than a round, and a rerun hours later can land outside it.",
		100*coverage(n), plural(n, "round"))
}

// peers lists the implementations that are neither rio nor a baseline.
func (rep *report) peers() []string {
	var out []string
	for _, r := range rep.Rows {
		if r.Impl != r.Baseline && !strings.HasPrefix(r.Impl, "rio") && !slices.Contains(out, r.Impl) {
			out = append(out, r.Impl)
		}
	}
	return out
}

func verdictWords(v string) string {
	if v == "≈" {
		return "within noise"
	}
	return v
}

// benchmarksTable is docs/benchmarks.md's full table.
func (rep *report) benchmarksTable() string {
	var t bytes.Buffer
	rep.printTable(&t)
	return rep.measuredLine() + "\n\n```\n" + strings.TrimRight(t.String(), "\n") + "\n```\n\n" +
		"The raw rounds, the host and the configuration are in [riobench.json](riobench.json); " +
		"`benchstat` can read any run's bench.txt (see [riobench.md](riobench.md#outputs)).\n\n" +
		"![Every riobench workload: median of the rounds as bars, lowest to highest round as whiskers, rio against each peer](riobench.svg)\n"
}

// riobenchExample is docs/riobench.md's excerpt: one group of the table.
func (rep *report) riobenchExample() string {
	ex := *rep
	ex.Notes = nil
	for _, g := range rep.Groups {
		if g.Workload == "direct" && len(rep.rowsOf(g)) > 0 {
			ex.Groups = []groupInfo{g}
			break
		}
	}
	if len(ex.Groups) > 1 && len(rep.Groups) > 0 {
		ex.Groups = rep.Groups[:1]
	}
	var t bytes.Buffer
	ex.writeTable(&t, false)
	return "An excerpt of the published run (" + rep.when() + ", `" + rep.Command + "`):\n\n```\n" + strings.TrimRight(t.String(), "\n") + "\n```\n"
}

var errNoRoot = errors.New("no rio checkout found: run riobench from the repository to publish")
