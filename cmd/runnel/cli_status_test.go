package main

import (
	"strings"
	"testing"
	"time"
)

// TestCLIStatus runs `runnel status` against a real `runnel serve` with a
// route to an upstream that refuses connections: the Kafka side (brokers,
// topics) and the node's /api/status document as the server writes it.
func TestCLIStatus(t *testing.T) {
	srv := startRunnel(t, 1, "--node-id", "edge-7", "--upstream-kafka", freeAddr(t), "--forward", "s1")
	b := srv.Addr()
	mustCLI(t, "x\ny\n", "produce", "s1", "--brokers", b)
	var out string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out = mustCLI(t, "", "status", "--brokers", b, "--http", srv.HTTPAddr())
		if strings.Contains(out, "state: backing-off") && strings.Contains(out, "connection refused") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the route never reported its refused upstream:\n%s", out)
		}
	}
	for _, want := range []string{"Brokers:", "Cluster: runnel-edge-7", "node_id: edge-7", "routes: (1)", "name: forward-s1",
		"lag_records: 2", "damaged: none", "not_ready: none", "ready: true", "disk_short: false"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	for _, re := range []string{
		`(?m)^\s+uptime_seconds: \d+ \((\d+h)?(\d+m)?\d+s\)$`,
		`(?m)^\s+disk_free_bytes: [1-9]\d* \(\d+\.\d (B|KiB|MiB|GiB|TiB)\)$`,
		`(?m)^\s+last_error: .*connection refused`,
		`(?m)^s1\s+1\s+2\s+2$`,
	} {
		if !regexpMatch(re, out) {
			t.Errorf("status output does not match %s:\n%s", re, out)
		}
	}
	if strings.Contains(out, "null") {
		t.Errorf("status output shows a raw JSON null:\n%s", out)
	}
	// Without the HTTP side (another Kafka server) status still works.
	out = mustCLI(t, "", "status", "--brokers", b, "--http", freeAddr(t))
	if !strings.Contains(out, "unavailable") || !strings.Contains(out, "s1") {
		t.Errorf("status without HTTP:\n%s", out)
	}
	out = mustCLI(t, "", "status", "--brokers", b, "--http", "")
	if strings.Contains(out, "Node") {
		t.Errorf("status --http '' still asked HTTP:\n%s", out)
	}
	if r := runCLI(t, "", "status", "--brokers", "127.0.0.1:1", "--timeout", "1s", "--http", ""); r.code != 1 {
		t.Errorf("status against a closed port: %+v", r)
	}
}
