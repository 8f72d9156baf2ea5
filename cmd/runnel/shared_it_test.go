package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIntegrationSharedSegmentsKill9: with shared segments (the default), records
// produced by kcat one at a time (each its own small commit) land in the
// shared segment files, survive kill -9, and read back in order.
func TestIntegrationSharedSegmentsKill9(t *testing.T) {
	needTool(t, "kcat")
	s := startRunnel(t, 2)
	const n = 300
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "k%d:v-%04d\n", i%7, i)
	}
	// -X linger.ms=0: a produce request, so a small commit, per message.
	runTool(t, 60*time.Second, in.String(), "kcat", "-P", "-b", s.Addr(), "-t", "trickle", "-K", ":", "-X", "linger.ms=0")
	files, _ := filepath.Glob(filepath.Join(s.dir, "data", "~shared", "*.slog"))
	if len(files) == 0 {
		t.Fatalf("no shared segment files under %s", s.dir)
	}
	s.Kill9(t)
	s.Restart(t)
	out := runTool(t, 60*time.Second, "", "kcat", "-C", "-b", s.Addr(), "-t", "trickle", "-o", "beginning", "-e", "-q", "-f", "%k:%s\n")
	got := lines(out)
	if len(got) != n {
		t.Fatalf("read back %d records, want %d", len(got), n)
	}
	// Per key (one partition each), values in produce order.
	last := map[string]int{}
	for _, l := range got {
		var k string
		var v int
		if _, err := fmt.Sscanf(strings.Replace(l, ":v-", " ", 1), "%s %d", &k, &v); err != nil {
			t.Fatalf("bad record %q", l)
		}
		if p, ok := last[k]; ok && v <= p {
			t.Fatalf("key %s: %d after %d", k, v, p)
		}
		last[k] = v
	}
}
