package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

var updateREADME = flag.Bool("update", false, "rewrite the README's configuration table from the key table")

const (
	readmePath       = "../../README.md"
	readmeTableBegin = "<!-- BEGIN configuration keys"
	readmeTableEnd   = "<!-- END configuration keys -->"
)

// configTable renders the README's configuration reference from the keys.
func configTable() string {
	var b strings.Builder
	b.WriteString("| key | flag, `RUNNEL_` variable, flat file key | default | meaning |\n|---|---|---|---|\n")
	for _, k := range newServeConfig().table {
		name := "(file only)"
		if k.flag != "" {
			name = "`" + k.flag + "`"
		}
		def := k.defDoc
		if def == "" && k.def != "" {
			def = "`" + k.def + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", k.path, name, def, strings.ReplaceAll(k.doc, "|", `\|`))
	}
	return b.String()
}

// TestREADMEConfigTable: the README's configuration reference is the key
// table, so a key cannot be missing from it, documented but absent, or
// documented with another default. -update rewrites it.
func TestREADMEConfigTable(t *testing.T) {
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(readme, []byte(readmeTableBegin))
	j := bytes.Index(readme, []byte(readmeTableEnd))
	if i < 0 || j < i {
		t.Fatalf("README lacks the %q … %q markers", readmeTableBegin, readmeTableEnd)
	}
	i += bytes.IndexByte(readme[i:], '\n') + 1
	got, want := string(readme[i:j]), configTable()
	if *updateREADME {
		out := append(append(append([]byte{}, readme[:i]...), want...), readme[j:]...)
		if err := os.WriteFile(readmePath, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got == want {
		return
	}
	// Name the keys that differ before the whole diff.
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\|.*$")
	rows := func(s string) map[string]string {
		m := map[string]string{}
		for _, r := range row.FindAllStringSubmatch(s, -1) {
			m[r[1]] = r[0]
		}
		return m
	}
	g, w := rows(got), rows(want)
	for k, line := range w {
		switch gl, ok := g[k]; {
		case !ok:
			t.Errorf("README lacks key %s", k)
		case gl != line:
			t.Errorf("README row of %s differs:\n got  %s\n want %s", k, gl, line)
		}
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			t.Errorf("README documents %s, which is not a configuration key", k)
		}
	}
	t.Errorf("README configuration table is out of date; run: go test ./cmd/runnel -run TestREADMEConfigTable -update")
}
