package web

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Metrics writes the Prometheus text exposition format (version 0.0.4).
// Families are written in the order first used; HELP/TYPE once per family.
type Metrics struct {
	w    io.Writer
	seen map[string]bool
}

// NewMetrics returns a writer to w.
func NewMetrics(w io.Writer) *Metrics { return &Metrics{w: w, seen: map[string]bool{}} }

// Labels are label name → value pairs.
type Labels map[string]string

func (m *Metrics) head(name, typ, help string) {
	if m.seen[name] {
		return
	}
	m.seen[name] = true
	fmt.Fprintf(m.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// Counter writes one sample of a counter family.
func (m *Metrics) Counter(name, help string, v float64, l Labels) {
	m.head(name, "counter", help)
	m.sample(name, v, l)
}

// Gauge writes one sample of a gauge family.
func (m *Metrics) Gauge(name, help string, v float64, l Labels) {
	m.head(name, "gauge", help)
	m.sample(name, v, l)
}

func (m *Metrics) sample(name string, v float64, l Labels) {
	var b strings.Builder
	b.WriteString(name)
	if len(l) > 0 {
		keys := make([]string, 0, len(l))
		for k := range l {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(k)
			b.WriteString(`="`)
			b.WriteString(escapeLabel(l[k]))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	b.WriteByte('\n')
	io.WriteString(m.w, b.String())
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
