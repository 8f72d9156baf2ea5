package main

// TestBenchSite (make bench-site, RUNNEL_BENCH_SITE=1) measures site
// replication on this machine, in one run, and prints a markdown table:
//
//   - acks=all throughput: `runnel bench produce` (franz-go, 100-byte
//     records, 4 partitions, acks=all, the bench tool's client settings)
//     against two runnel nodes on loopback addresses (replication factor
//     2, min.insync.replicas 2, fsync always on both: the origin's ack
//     waits for the copy's fsync), then against two Apache Kafka brokers
//     (KRaft: one combined controller+broker and one broker, replication
//     factor 2, min.insync.replicas 2, the JVM flags of Kafka's launcher;
//     Kafka's default flush policy, no fsync, unless
//     RUNNEL_BENCH_KAFKA_FSYNC=1), same client settings;
//   - at 10,000 rec/s, acks=all: the produce→ack p99 (bench produce
//     --rate) and the mirror lag: a consumer on the copy's box reads
//     "<origin>.<topic>" and records now − the record's timestamp (set
//     by the producer when it hands the record over), for every record;
//   - the resident memory (peak VmRSS, sampled every 50 ms, and VmHWM) of
//     a node holding copies of two peers (three nodes, replication factor
//     3) while each peer takes 5,000 rec/s (10,000 in all).
//
// It reports; it fails on the targets only with RUNNEL_BENCH_STRICT=1.
// Knobs: RUNNEL_BENCH_RECORDS (throughput records, default 2,000,000),
// RUNNEL_BENCH_RATE_SECONDS (the 10,000 rec/s runs, default 20),
// RUNNEL_BENCH_OUT (also write the table to this file).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/sync/kafka/kafkatest"
)

const siteRate = 10_000

func TestBenchSite(t *testing.T) {
	if os.Getenv("RUNNEL_BENCH_SITE") != "1" {
		t.Skip("set RUNNEL_BENCH_SITE=1 (make bench-site) to run the site benchmark")
	}
	records := envInt("RUNNEL_BENCH_RECORDS", 2_000_000)
	rateSecs := envInt("RUNNEL_BENCH_RATE_SECONDS", 20)
	client := runnelBinary(t)
	if _, err := kafkatest.Libs(); err != nil {
		t.Fatalf("Apache Kafka's jars: %v (sync/kafka/kafkatest/fetch.sh)", err)
	}
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	common := []string{"--record-size", "100", "--partitions", "4", "--acks", "all"}
	bench := func(name, addr string, args ...string) benchResult {
		t.Helper()
		args = append([]string{"bench"}, append(append(args, common...), "--brokers", addr, "--json")...)
		out := runTool(t, 15*time.Minute, "", client, args...)
		var r benchResult
		if err := json.Unmarshal([]byte(lastLine(out)), &r); err != nil {
			t.Fatalf("%s: bench output %q: %v", name, out, err)
		}
		t.Logf("%s: %s", name, lastLine(out))
		return r
	}
	res := siteBench{load: loadAvg()}

	// Two runnel nodes: rf 2, min.insync 2, fsync always.
	nodes := startSite(t, 2, "--default-min-insync-replicas", "2", "--replica-lag-time-max", "10s")
	a, b := nodes[0], nodes[1]
	bench("runnel", a.kafka, "produce", "--topic", "site-warmup", "--records", "200000")
	res.runnelProduce = bench("runnel", a.kafka, "produce", "--topic", "site-produce", "--records", n(records))
	createTopic(t, a, "site-rate", 4, 2, nil)
	waitCopies(t, b, "a.site-rate", 4)
	lag, stop := copyLag(t, b.kafka, "a.site-rate")
	res.runnelRate = bench("runnel", a.kafka, "produce", "--topic", "site-rate", "--rate", n(siteRate), "--records", n(siteRate*rateSecs))
	res.mirrorLag = stop()
	res.lagSamples = lag.count()
	if got := lag.count(); got < uint64(siteRate*rateSecs) {
		t.Errorf("the copy on b showed %d of %d records", got, siteRate*rateSecs)
	}
	for _, nd := range nodes {
		nd.Stop(t)
	}

	// Three nodes, rf 3: c holds copies of a's and b's partitions while
	// each takes 5,000 rec/s.
	nodes = startSite(t, 3, "--default-min-insync-replicas", "2", "--replica-lag-time-max", "10s")
	a, b, c := nodes[0], nodes[1], nodes[2]
	createTopic(t, a, "site-mem", 4, 3, nil)
	createTopic(t, b, "site-mem", 4, 3, nil)
	waitCopies(t, c, "a.site-mem", 4)
	waitCopies(t, c, "b.site-mem", 4)
	res.rssIdle, _ = procStatusBytes(c.PID(), "VmRSS")
	var peak atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			if rss, _ := procStatusBytes(c.PID(), "VmRSS"); rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-done:
				return
			case <-tk.C:
			}
		}
	})
	var lw sync.WaitGroup
	for _, o := range []*siteNode{a, b} {
		lw.Go(func() {
			bench("runnel", o.kafka, "produce", "--topic", "site-mem", "--rate", n(siteRate/2), "--records", n(siteRate/2*rateSecs))
		})
	}
	lw.Wait()
	close(done)
	wg.Wait()
	res.rssPeak = peak.Load()
	res.rssHWM, _ = procStatusBytes(c.PID(), "VmHWM")
	for _, nd := range nodes {
		nd.Stop(t)
	}

	// Two Apache Kafka brokers, rf 2, min.insync 2, Kafka's launcher flags.
	props := []string{"default.replication.factor=2", "min.insync.replicas=2"}
	res.kafkaFsync = os.Getenv("RUNNEL_BENCH_KAFKA_FSYNC") == "1"
	if res.kafkaFsync {
		props = append(props, "log.flush.interval.messages=1")
	}
	k1 := kafkatest.StartOpts(t, kafkatest.Options{Partitions: 4, StandardJVM: true, Props: props})
	k2 := kafkatest.StartOpts(t, kafkatest.Options{Partitions: 4, StandardJVM: true, Props: props, NodeID: 2, Voter: k1.Voter()})
	waitBrokers(t, k1.Addr(), 2)
	res.kafkaJVM = k1.JVMFlags()
	bench("Apache Kafka", k1.Addr(), "produce", "--topic", "site-warmup", "--records", "200000")
	res.kafkaProduce = bench("Apache Kafka", k1.Addr(), "produce", "--topic", "site-produce", "--records", n(records))
	res.kafkaRate = bench("Apache Kafka", k1.Addr(), "produce", "--topic", "site-rate", "--rate", n(siteRate), "--records", n(siteRate*rateSecs))
	k2.Stop()
	k1.Stop()
	res.loadAfter = loadAvg()

	table := res.table(records, rateSecs)
	fmt.Println(table)
	if out := os.Getenv("RUNNEL_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(table), 0o644); err != nil {
			t.Errorf("write %s: %v", out, err)
		}
	}
	if os.Getenv("RUNNEL_BENCH_STRICT") == "1" {
		for _, m := range res.misses() {
			t.Errorf("target missed: %s", m)
		}
	}
}

// siteBench is what TestBenchSite measured.
type siteBench struct {
	runnelProduce, runnelRate benchResult
	kafkaProduce, kafkaRate   benchResult
	mirrorLag                 [3]time.Duration // p50, p99, max
	lagSamples                uint64
	rssIdle, rssPeak, rssHWM  int64
	kafkaJVM                  []string
	kafkaFsync                bool
	load, loadAfter           string
}

func (r siteBench) misses() []string {
	var m []string
	if ratio := r.runnelProduce.RecPerSec / max(r.kafkaProduce.RecPerSec, 1); ratio < 1.5 {
		m = append(m, fmt.Sprintf("acks=all rec/s %.2fx Kafka's, want at least 1.5x", ratio))
	}
	if r.runnelRate.P99Millis > 10 {
		m = append(m, fmt.Sprintf("produce p99 at 10,000 rec/s %.2f ms, want at most 10", r.runnelRate.P99Millis))
	}
	if r.mirrorLag[1] > 50*time.Millisecond {
		m = append(m, fmt.Sprintf("mirror lag p99 %v, want at most 50 ms", r.mirrorLag[1]))
	}
	if r.rssPeak > 64<<20 {
		m = append(m, fmt.Sprintf("RSS of a node mirroring two peers %.1f MiB, want at most 64", float64(r.rssPeak)/(1<<20)))
	}
	return m
}

func (r siteBench) table(records, rateSecs int64) string {
	var b strings.Builder
	mib := func(v int64) string { return fmt.Sprintf("%.1f MiB", float64(v)/(1<<20)) }
	kfs := "no fsync (its default flush policy)"
	if r.kafkaFsync {
		kfs = "log.flush.interval.messages=1"
	}
	fmt.Fprintf(&b, "Site replication, acks=all, 100 B records, 4 partitions; 2 nodes each side, replication factor 2, min.insync.replicas 2 (load average %s before, %s after)\n\n", r.load, r.loadAfter)
	fmt.Fprintf(&b, "| metric | runnel | Apache Kafka | runnel / Kafka |\n|---|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| produce, rec/s (`bench produce --records %d`) | %.0f | %.0f | %.2fx |\n", records, r.runnelProduce.RecPerSec, r.kafkaProduce.RecPerSec, r.runnelProduce.RecPerSec/max(r.kafkaProduce.RecPerSec, 1))
	fmt.Fprintf(&b, "| produce→ack p50 / p99 (ms), same run | %.2f / %.2f | %.2f / %.2f | |\n", r.runnelProduce.P50Millis, r.runnelProduce.P99Millis, r.kafkaProduce.P50Millis, r.kafkaProduce.P99Millis)
	fmt.Fprintf(&b, "| at 10,000 rec/s for %d s: produce→ack p50 / p99 / max (ms) | %.2f / %.2f / %.2f | %.2f / %.2f / %.2f | %.2fx (p99) |\n", rateSecs,
		r.runnelRate.P50Millis, r.runnelRate.P99Millis, r.runnelRate.MaxMillis, r.kafkaRate.P50Millis, r.kafkaRate.P99Millis, r.kafkaRate.MaxMillis, r.runnelRate.P99Millis/max(r.kafkaRate.P99Millis, 1e-9))
	fmt.Fprintf(&b, "| at 10,000 rec/s: mirror lag (producer timestamp → readable on the copy's box) p50 / p99 / max (ms) | %.2f / %.2f / %.2f (%d records) | | |\n",
		millis(r.mirrorLag[0]), millis(r.mirrorLag[1]), millis(r.mirrorLag[2]), r.lagSamples)
	fmt.Fprintf(&b, "| RSS of a node holding copies of two peers at 5,000 rec/s each (rf 3): idle / peak VmRSS / VmHWM | %s / %s / %s | | |\n", mib(r.rssIdle), mib(r.rssPeak), mib(r.rssHWM))
	fmt.Fprintf(&b, "\nrunnel: fsync always on both nodes (the ack waits for the copy's fsync). Apache Kafka: %s; JVM %s.\n", kfs, strings.Join(r.kafkaJVM, " "))
	return b.String()
}

// waitCopies waits until n holds every partition of the copy topic.
func waitCopies(t *testing.T, n *siteNode, copyTopic string, partitions int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		held := 0
		for _, c := range getPeers(t, n).Copies {
			if c.Topic == copyTopic {
				held++
			}
		}
		if held >= partitions {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d partitions of %s, want %d", n.id, held, copyTopic, partitions)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// copyLag consumes topic on addr from its end and records, per record,
// now − its timestamp; stop ends it and returns p50, p99 and max.
func copyLag(t *testing.T, addr, topic string) (*latencyHist, func() [3]time.Duration) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	h := &latencyHist{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) { h.record(now.Sub(r.Timestamp)) })
		}
	}()
	// Let the consumer find its offsets before the load starts.
	time.Sleep(2 * time.Second)
	return h, func() [3]time.Duration {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			before := h.count()
			time.Sleep(500 * time.Millisecond)
			if h.count() == before {
				break
			}
		}
		cancel()
		<-done
		cl.Close()
		return [3]time.Duration{h.quantile(0.5), h.quantile(0.99), h.maxLatency()}
	}
}

// waitBrokers waits until the Kafka cluster at addr lists want brokers.
func waitBrokers(t *testing.T, addr string, want int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
		cancel()
		got := 0
		if err == nil {
			got = len(md.Brokers)
		}
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Kafka at %s lists %d brokers, want %d (%v)", addr, got, want, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
