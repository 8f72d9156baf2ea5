package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/runnel/runnel/log/batch"
)

func TestCLIProduceConsumeRoundTrip(t *testing.T) {
	b := cliServer(t).Addr()
	mustCLI(t, "", "topic", "create", "rt", "--partitions", "4", "--brokers", b)
	var in strings.Builder
	for i := range 200 {
		fmt.Fprintf(&in, "key%d:value %d\r\n", i%17, i)
	}
	mustCLI(t, in.String(), "produce", "rt", "--key-separator", ":", "--acks", "all", "--brokers", b)

	out := mustCLI(t, "", "consume", "rt", "--from-beginning", "--exit", "--format", `%p %o %k %v\n`, "--brokers", b)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 200 {
		t.Fatalf("consumed %d lines, want 200:\n%s", len(lines), out)
	}
	lastValue := map[string]int{} // per key: values must come in produce order
	nextOffset := map[int32]int64{}
	for _, l := range lines {
		var p int32
		var off int64
		var k string
		var v int
		if _, err := fmt.Sscanf(l, "%d %d %s value %d", &p, &off, &k, &v); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if want := batch.Partition([]byte(k), 4); p != want {
			t.Errorf("key %q in partition %d, murmur2 says %d", k, p, want)
		}
		if prev, ok := lastValue[k]; ok && v <= prev {
			t.Errorf("key %q: value %d after %d", k, v, prev)
		}
		lastValue[k] = v
		if off < nextOffset[p] {
			t.Errorf("partition %d: offset %d after %d", p, off, nextOffset[p]-1)
		}
		nextOffset[p] = off + 1
	}

	// -n stops early; --offset -N reads the tail of one partition.
	out = mustCLI(t, "", "consume", "rt", "--from-beginning", "-n", "5", "--brokers", b)
	if n := strings.Count(out, "\n"); n != 5 {
		t.Fatalf("-n 5 printed %d lines", n)
	}
	p := batch.Partition([]byte("key3"), 4)
	out = mustCLI(t, "", "consume", "rt", "--partition", fmt.Sprint(p), "--offset", "-2", "--exit", "--format", `%o\n`, "--brokers", b)
	if got, want := out, fmt.Sprintf("%d\n%d\n", nextOffset[p]-2, nextOffset[p]-1); got != want {
		t.Fatalf("tail of partition %d: %q, want %q", p, got, want)
	}
}

func TestCLIConsumeGroupCommits(t *testing.T) {
	b := cliServer(t).Addr()
	mustCLI(t, "", "topic", "create", "g", "--partitions", "2", "--brokers", b)
	var in strings.Builder
	for i := range 50 {
		fmt.Fprintf(&in, "v%d\n", i)
	}
	mustCLI(t, in.String(), "produce", "g", "--brokers", b)
	seen := map[string]bool{}
	for _, n := range []string{"20", "20"} {
		out := mustCLI(t, "", "consume", "g", "--group", "grp", "--from-beginning", "-n", n, "--brokers", b)
		for _, v := range strings.Fields(out) {
			if seen[v] {
				t.Fatalf("record %q consumed twice by the group", v)
			}
			seen[v] = true
		}
	}
	out := mustCLI(t, "", "consume", "g", "--group", "grp", "--from-beginning", "--exit", "--brokers", b)
	for _, v := range strings.Fields(out) {
		if seen[v] {
			t.Fatalf("record %q consumed twice by the group", v)
		}
		seen[v] = true
	}
	if len(seen) != 50 {
		t.Fatalf("group consumed %d distinct records, want 50", len(seen))
	}
	if r := runCLI(t, "", "consume", "nope", "--brokers", b, "--timeout", "2s"); r.code != 1 {
		t.Fatalf("consume of a missing topic: %+v", r)
	}
}

func TestCLIProduceOptions(t *testing.T) {
	b := cliServer(t).Addr()
	mustCLI(t, "", "topic", "create", "opts", "--partitions", "3", "--brokers", b)
	for _, acks := range []string{"0", "1", "-1", "all"} {
		mustCLI(t, "a-"+acks+"\n", "produce", "opts", "--acks", acks, "--partition", "2", "--key", "K", "--header", "h=1", "--header", "src=test", "-z", "zstd", "--brokers", b)
	}
	out := mustCLI(t, "", "consume", "opts", "--partition", "2", "--offset", "earliest", "--exit", "--format", `%k %v [%h]\n`, "--brokers", b)
	for _, acks := range []string{"0", "1", "-1", "all"} {
		if !strings.Contains(out, "K a-"+acks+" [h=1,src=test]\n") {
			t.Errorf("acks=%s record missing or wrong:\n%s", acks, out)
		}
	}
	// A dead broker fails within --timeout (the delivery timeout is
	// longer), exit 1.
	start := time.Now()
	r := runCLI(t, "x\n", "produce", "t", "--brokers", "127.0.0.1:1", "--timeout", "1s")
	if r.code != 1 || !strings.Contains(r.stderr, "no broker of 127.0.0.1:1 answered within --timeout 1s") || time.Since(start) > 20*time.Second {
		t.Errorf("produce to a dead broker: %+v after %v", r, time.Since(start))
	}
}

// TestCLIConsumeOffsetOutOfRange: --offset past a partition's end reads
// what arrives next (not the partition from its beginning, the client's
// reset), and one before its first kept record reads from there, each
// with a warning.
func TestCLIConsumeOffsetOutOfRange(t *testing.T) {
	b := cliServer(t).Addr()
	mustCLI(t, "", "topic", "create", "past", "--brokers", b)
	mustCLI(t, "a\nb\nc\n", "produce", "past", "--brokers", b)
	got := make(chan cliResult, 1)
	go func() {
		got <- runCLI(t, "", "consume", "past", "--partition", "0", "--offset", "100", "-n", "1", "--format", `%o %v\n`, "--brokers", b)
	}()
	time.Sleep(2 * time.Second) // the consumer is at the end
	mustCLI(t, "late\n", "produce", "past", "--brokers", b)
	r := <-got
	if r.code != 0 || r.stdout != "3 late\n" || !strings.Contains(r.stderr, "offset 100 is past the end (3)") {
		t.Fatalf("exit %d, stdout %q, stderr %q: want \"3 late\" and a warning", r.code, r.stdout, r.stderr)
	}
}

// TestCLIProduceMissingPartition: --partition beyond the topic's count is
// refused with the count, before any record is sent.
func TestCLIProduceMissingPartition(t *testing.T) {
	b := cliServer(t).Addr()
	if out := mustCLI(t, "", "topic", "create", "one", "--brokers", b); !strings.Contains(out, `created topic "one" with 1 partition`+"\n") {
		t.Fatalf("topic create said %q", out)
	}
	r := runCLI(t, "x\n", "produce", "one", "--partition", "5", "--brokers", b)
	if r.code == 0 || !strings.Contains(r.stderr, `topic "one" has no partition 5 (it has 1)`) {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestVersionArgs: version takes no arguments (exit 2) and has help.
func TestVersionArgs(t *testing.T) {
	var out, errb strings.Builder
	if code := run(context.Background(), []string{"version", "--bogus"}, nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unexpected argument "--bogus"`) {
		t.Errorf("version --bogus: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"version", "--help"}, nil, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "Usage: runnel version") {
		t.Errorf("version --help: exit %d, stdout %q", code, out.String())
	}
}
