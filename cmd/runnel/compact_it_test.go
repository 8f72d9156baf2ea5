package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestIntegrationCompactedTopic creates a compacted topic through the
// Kafka API (runnel topic create --config cleanup.policy=compact), writes
// many values per key with kcat (and tombstones for two keys, with a
// delete.retention.ms of 1 ms), waits for the cleaner, and reads back
// with kcat and with franz-go: the latest value of every live key, the
// deleted keys gone, offsets only growing and the end offset unchanged;
// /metrics shows the cleaner's work.
func TestIntegrationCompactedTopic(t *testing.T) {
	kcat := needTool(t, "kcat")
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	srv := startRunnel(t, 1, "--cleaner-interval", "300ms")
	topic := "it-latest"
	mustCLI(t, "", "topic", "create", topic, "--partitions", "1", "--brokers", srv.Addr(),
		"--config", "cleanup.policy=compact", "--config", "segment.bytes=16384", "--config", "delete.retention.ms=1",
		"--config", "min.cleanable.dirty.ratio=0.1")
	const keys, rounds = 25, 120
	latest := map[string]string{}
	var in strings.Builder
	for r := range rounds {
		for k := range keys {
			v := fmt.Sprintf("reading %d of device %d", r, k)
			fmt.Fprintf(&in, "dev-%d|%s\n", k, v)
			latest[fmt.Sprintf("dev-%d", k)] = v
		}
	}
	runTool(t, 60*time.Second, in.String(), kcat, "-b", srv.Addr(), "-t", topic, "-P", "-K", "|", "-X", "linger.ms=5")
	// Tombstones (kcat -Z: an empty value is sent as null), then more
	// values so their segment is sealed.
	runTool(t, 30*time.Second, "dev-3|\ndev-7|\n", kcat, "-b", srv.Addr(), "-t", topic, "-P", "-K", "|", "-Z")
	delete(latest, "dev-3")
	delete(latest, "dev-7")
	in.Reset()
	for r := range 1000 {
		fmt.Fprintf(&in, "other-%d|filler %d\n", r, r)
		latest[fmt.Sprintf("other-%d", r)] = fmt.Sprintf("filler %d", r)
	}
	runTool(t, 30*time.Second, in.String(), kcat, "-b", srv.Addr(), "-t", topic, "-P", "-K", "|")
	total := keys*rounds + 2 + 1000

	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// franz-go: poll until the cleaner has removed most of the history.
	type rec struct {
		off  int64
		k, v string
		null bool
	}
	readAll := func() []rec {
		c, err := kgo.NewClient(kgo.SeedBrokers(srv.Addr()), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var out []rec
		for {
			fs := c.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				t.Fatalf("franz-go fetch: %v (read %d)", err, len(out))
			}
			fs.EachRecord(func(r *kgo.Record) { out = append(out, rec{r.Offset, string(r.Key), string(r.Value), r.Value == nil}) })
			if len(out) > 0 && out[len(out)-1].off == int64(total-1) {
				return out
			}
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	var got []rec
	for {
		got = readAll()
		if len(got) < 1500 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(got) >= 1500 {
		t.Fatalf("franz-go still reads %d of %d records after 90 s: the cleaner did not compact\n%s", len(got), total, srv.LogTail())
	}
	check := func(who string, recs []rec) {
		t.Helper()
		seen := map[string]string{}
		last := int64(-1)
		for _, r := range recs {
			if r.off <= last {
				t.Fatalf("%s: offset %d after %d", who, r.off, last)
			}
			last = r.off
			seen[r.k] = r.v
		}
		if last != int64(total-1) {
			t.Fatalf("%s: last offset %d, want %d (offsets must not move)", who, last, total-1)
		}
		for k, v := range latest {
			if seen[k] != v {
				t.Fatalf("%s: key %s reads %q last, want %q", who, k, seen[k], v)
			}
		}
		for _, k := range []string{"dev-3", "dev-7"} {
			if v, ok := seen[k]; ok {
				t.Fatalf("%s: deleted key %s still read (%q) after delete.retention.ms", who, k, v)
			}
		}
	}
	check("franz-go", got)
	out := runTool(t, 30*time.Second, "", kcat, "-b", srv.Addr(), "-t", topic, "-C", "-e", "-o", "beginning", "-q", "-f", `%o|%k|%s\n`)
	var kc []rec
	for _, l := range lines(out) {
		f := strings.SplitN(l, "|", 3)
		if len(f) != 3 {
			t.Fatalf("kcat line %q", l)
		}
		o, _ := strconv.ParseInt(f[0], 10, 64)
		kc = append(kc, rec{off: o, k: f[1], v: f[2]})
	}
	check("kcat", kc)
	resp, err := http.Get("http://" + srv.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"runnel_log_cleaner_removed_records_total", "runnel_log_cleaner_written_bytes_total", "runnel_partition_dirty_ratio{"} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("/metrics lacks %s", want)
		}
	}
	t.Logf("%d records appended, %d read after compaction (franz-go), %d (kcat)", total, len(got), len(kc))
}
