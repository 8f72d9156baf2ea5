package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func benchJSON(t *testing.T, args ...string) benchResult {
	t.Helper()
	out := mustCLI(t, "", "bench", append(args, "--json")...)
	var r benchResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("bench %v: bad JSON %q: %v", args, out, err)
	}
	return r
}

func TestCLIBenchModes(t *testing.T) {
	b := cliServer(t).Addr()
	p := benchJSON(t, "produce", "--brokers", b, "--records", "20000", "--record-size", "50", "--partitions", "3")
	if p.Records != 20000 || p.Errors != 0 || p.RecPerSec <= 0 || p.MBPerSec <= 0 || p.Partitions != 3 {
		t.Fatalf("produce result: %+v", p)
	}
	if p.Samples != 20000/64+1 || p.P50Millis > p.P99Millis || p.P99Millis > p.P999Millis || p.P999Millis > p.MaxMillis {
		t.Fatalf("produce latencies: %+v", p)
	}
	mustCLI(t, "", "topic", "describe", "runnel-bench", "--brokers", b)

	c := benchJSON(t, "consume", "--brokers", b, "--records", "30000", "--record-size", "50")
	if c.Records != 30000 || c.RecPerSec <= 0 {
		t.Fatalf("consume result: %+v", c)
	}
	e := benchJSON(t, "e2e", "--brokers", b, "--records", "2000", "--rate", "4000", "--warmup", "0", "--partitions", "2")
	if e.Records != 2000 || e.Samples != 2000 || e.P99Millis <= 0 || e.Errors != 0 {
		t.Fatalf("e2e result: %+v", e)
	}
	// Pacing: 2000 records at 4000/s take about 0.5 s.
	if e.Seconds < 0.45 || e.Seconds > 5 {
		t.Fatalf("e2e at 4000 rec/s for 2000 records took %.2f s", e.Seconds)
	}
	out := mustCLI(t, "", "bench", "produce", "--brokers", b, "--duration", "300ms", "--record-size", "10")
	if !strings.Contains(out, "rec/s") || !strings.Contains(out, "p99") {
		t.Fatalf("human output: %q", out)
	}
	if r := runCLI(t, "", "bench", "e2e", "--record-size", "8"); r.code != 2 {
		t.Fatalf("e2e with 8-byte records: %+v", r)
	}
}
