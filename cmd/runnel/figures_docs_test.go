package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// figuresBlock returns the lines between the "figures:begin" and
// "figures:end" markers of file, each with prefix removed.
func figuresBlock(t *testing.T, file, prefix string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.Contains(l, "figures:begin"):
			in = true
		case strings.Contains(l, "figures:end"):
			if !in {
				t.Fatalf("%s: figures:end before figures:begin", file)
			}
			return out
		case in:
			out = append(out, strings.TrimPrefix(strings.TrimPrefix(l, strings.TrimRight(prefix, "\t ")), "\t"))
		}
	}
	t.Fatalf("%s: no figures:begin ... figures:end block", file)
	return nil
}

// TestFiguresTables: README.md and log/doc.go quote one table of figures
// (make bench-docs writes both from one run of cmd/scripts/bench.sh): the same
// lines in both, its rows the figures cmd/scripts/bench.sh lists, in its
// order, each with a measured value and the go test command bench.sh runs
// for that benchmark.
func TestFiguresTables(t *testing.T) {
	readme := figuresBlock(t, "../../README.md", "")
	doc := figuresBlock(t, "../../log/doc.go", "//\t")
	if len(readme) != len(doc) {
		t.Errorf("README.md has %d lines of figures, log/doc.go %d", len(readme), len(doc))
	}
	for i := range min(len(readme), len(doc)) {
		if readme[i] != doc[i] {
			t.Errorf("figures line %d differs:\nREADME.md:   %s\nlog/doc.go:  %s", i+1, readme[i], doc[i])
		}
	}

	script, err := os.ReadFile("../scripts/bench.sh")
	if err != nil {
		t.Fatal(err)
	}
	// The benchmarks bench.sh runs: `bench 'PATTERN' BENCHTIME PACKAGE`.
	type run struct{ pattern, cmd string }
	var runs []run
	for _, m := range regexp.MustCompile(`(?m)^bench '([^']+)' (\S+) (\S+)`).FindAllStringSubmatch(string(script), -1) {
		runs = append(runs, run{m[1], "go test -run '^$' -bench '" + m[1] + "' -benchtime " + m[2] + " " + m[3]})
	}
	// The figures it reports: "label|benchmark|unit" in figures().
	m := regexp.MustCompile(`(?s)figures\(\) \{\n\tcat <<'EOF'\n(.*?)\nEOF\n`).FindStringSubmatch(string(script))
	if m == nil || len(runs) == 0 {
		t.Fatal("cmd/scripts/bench.sh: no figures() list or no bench lines")
	}
	type figure struct{ label, bench, unit string }
	var figs []figure
	for _, l := range strings.Split(m[1], "\n") {
		f := strings.Split(l, "|")
		if len(f) != 3 {
			t.Fatalf("cmd/scripts/bench.sh figures(): bad line %q", l)
		}
		figs = append(figs, figure{f[0], f[1], f[2]})
	}

	var rows [][]string
	for _, l := range readme {
		if !strings.HasPrefix(l, "| ") || strings.HasPrefix(l, "| figure |") {
			continue
		}
		cells := strings.Split(strings.Trim(l, "| "), " | ")
		if len(cells) != 4 {
			t.Fatalf("README.md figures row %q: want 4 cells", l)
		}
		rows = append(rows, cells)
	}
	if len(rows) != len(figs) {
		t.Fatalf("README.md has %d figures, cmd/scripts/bench.sh lists %d: run make bench-docs", len(rows), len(figs))
	}
	for i, f := range figs {
		label, value, unit, cmd := rows[i][0], rows[i][1], rows[i][2], strings.Trim(rows[i][3], "`")
		if label != f.label || unit != f.unit {
			t.Errorf("figure %d: README.md has %q in %s, cmd/scripts/bench.sh %q in %s", i+1, label, unit, f.label, f.unit)
		}
		if _, err := strconv.ParseFloat(value, 64); err != nil {
			t.Errorf("figure %q: value %q is not a measurement", label, value)
		}
		top := strings.TrimSuffix(strings.SplitN(f.bench, "/", 2)[0], "*")
		want := ""
		for _, r := range runs {
			// '.' runs a whole package (ingest/kafka/group): never
			// the command of a figure that a named run measures.
			if r.pattern != "." && regexp.MustCompile(r.pattern).MatchString(top) {
				want = r.cmd
				break
			}
		}
		if cmd != want {
			t.Errorf("figure %q: command %q, but cmd/scripts/bench.sh measures %s with %q", label, cmd, top, want)
		}
	}
}
