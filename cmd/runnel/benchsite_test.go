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
// RUNNEL_BENCH_OUT (also write the table to this file),
// RUNNEL_BENCH_BASE_BIN (a `runnel serve` binary of another version: its
// two-node site is measured the same way first, and the table gives
// both, with their ratios, from one run), RUNNEL_BENCH_SKIP_RSS=1 (no
// three-node memory run).

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

	// Two runnel nodes: rf 2, min.insync 2, fsync always. With a baseline
	// binary (RUNNEL_BENCH_BASE_BIN) its site is measured the same way
	// first, in the same run.
	twoNodes := func(bin string) (r siteRunnel) {
		nodes := startSiteBin(t, bin, 2, "--default-min-insync-replicas", "2", "--replica-lag-time-max", "10s")
		a, b := nodes[0], nodes[1]
		bench("runnel", a.kafka, "produce", "--topic", "site-warmup", "--records", "200000")
		r.produce = bench("runnel", a.kafka, "produce", "--topic", "site-produce", "--records", n(records))
		createTopic(t, a, "site-rate", 4, 2, nil)
		waitCopies(t, b, "a.site-rate", 4)
		lag, stop := copyLag(t, b.kafka, "a.site-rate")
		r.rate = bench("runnel", a.kafka, "produce", "--topic", "site-rate", "--rate", n(siteRate), "--records", n(siteRate*rateSecs))
		r.mirrorLag = stop()
		r.lagSamples = lag.count()
		if got := lag.count(); got < uint64(siteRate*rateSecs) {
			t.Errorf("the copy on b showed %d of %d records", got, siteRate*rateSecs)
		}
		for _, nd := range nodes {
			nd.Stop(t)
		}
		return r
	}
	if base := os.Getenv("RUNNEL_BENCH_BASE_BIN"); base != "" {
		res.baseBin = base
		res.base = twoNodes(base)
	}
	res.runnel = twoNodes("")
	if os.Getenv("RUNNEL_BENCH_SKIP_RSS") != "1" {
		rssNodes(t, &res, bench, n, rateSecs)
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

// rssNodes measures the resident memory of a node holding copies of two
// peers (three nodes, rf 3) while each peer takes 5,000 rec/s.
func rssNodes(t *testing.T, res *siteBench, bench func(name, addr string, args ...string) benchResult, n func(int64) string, rateSecs int64) {
	// Three nodes, rf 3: c holds copies of a's and b's partitions while
	// each takes 5,000 rec/s.
	nodes := startSite(t, 3, "--default-min-insync-replicas", "2", "--replica-lag-time-max", "10s")
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

}

// siteRunnel is what TestBenchSite measured of one two-node runnel site.
type siteRunnel struct {
	produce, rate benchResult
	mirrorLag     [3]time.Duration // p50, p99, max
	lagSamples    uint64
}

// siteBench is what TestBenchSite measured.
type siteBench struct {
	runnel, base             siteRunnel // base: RUNNEL_BENCH_BASE_BIN's, when set
	baseBin                  string
	kafkaProduce, kafkaRate  benchResult
	rssIdle, rssPeak, rssHWM int64
	kafkaJVM                 []string
	kafkaFsync               bool
	load, loadAfter          string
}

func (r siteBench) misses() []string {
	var m []string
	if ratio := r.runnel.produce.RecPerSec / max(r.kafkaProduce.RecPerSec, 1); ratio < 1.5 {
		m = append(m, fmt.Sprintf("acks=all rec/s %.2fx Kafka's, want at least 1.5x", ratio))
	}
	if r.runnel.rate.P99Millis > 10 {
		m = append(m, fmt.Sprintf("produce p99 at 10,000 rec/s %.2f ms, want at most 10", r.runnel.rate.P99Millis))
	}
	if r.runnel.mirrorLag[1] > 50*time.Millisecond {
		m = append(m, fmt.Sprintf("mirror lag p99 %v, want at most 50 ms", r.runnel.mirrorLag[1]))
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
	withBase := r.baseBin != ""
	fmt.Fprintf(&b, "Site replication, acks=all, 100 B records, 4 partitions; 2 nodes each side, replication factor 2, min.insync.replicas 2 (load average %s before, %s after)\n\n", r.load, r.loadAfter)
	if withBase {
		fmt.Fprintf(&b, "| metric | runnel | runnel baseline | Apache Kafka | runnel / Kafka | baseline / Kafka | runnel / baseline |\n|---|---:|---:|---:|---:|---:|---:|\n")
	} else {
		fmt.Fprintf(&b, "| metric | runnel | Apache Kafka | runnel / Kafka |\n|---|---:|---:|---:|\n")
	}
	row := func(metric, cur, base, kafka string, ratioK, ratioBK, ratioB string) {
		if withBase {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", metric, cur, base, kafka, ratioK, ratioBK, ratioB)
		} else {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", metric, cur, kafka, ratioK)
		}
	}
	x := func(a, c float64) string { return fmt.Sprintf("%.2fx", a/max(c, 1e-9)) }
	cur, base := r.runnel, r.base
	row(fmt.Sprintf("produce, rec/s (`bench produce --records %d`)", records),
		fmt.Sprintf("%.0f", cur.produce.RecPerSec), fmt.Sprintf("%.0f", base.produce.RecPerSec), fmt.Sprintf("%.0f", r.kafkaProduce.RecPerSec),
		x(cur.produce.RecPerSec, r.kafkaProduce.RecPerSec), x(base.produce.RecPerSec, r.kafkaProduce.RecPerSec), x(cur.produce.RecPerSec, base.produce.RecPerSec))
	pp := func(res benchResult) string { return fmt.Sprintf("%.2f / %.2f", res.P50Millis, res.P99Millis) }
	row("produce→ack p50 / p99 (ms), same run", pp(cur.produce), pp(base.produce), pp(r.kafkaProduce), "", "", "")
	ppm := func(res benchResult) string {
		return fmt.Sprintf("%.2f / %.2f / %.2f", res.P50Millis, res.P99Millis, res.MaxMillis)
	}
	row(fmt.Sprintf("at 10,000 rec/s for %d s: produce→ack p50 / p99 / max (ms)", rateSecs), ppm(cur.rate), ppm(base.rate), ppm(r.kafkaRate),
		x(cur.rate.P99Millis, r.kafkaRate.P99Millis)+" (p99)", x(base.rate.P99Millis, r.kafkaRate.P99Millis)+" (p99)",
		x(cur.rate.P50Millis, base.rate.P50Millis)+" (p50), "+x(cur.rate.P99Millis, base.rate.P99Millis)+" (p99)")
	lag := func(s siteRunnel) string {
		return fmt.Sprintf("%.2f / %.2f / %.2f (%d records)", millis(s.mirrorLag[0]), millis(s.mirrorLag[1]), millis(s.mirrorLag[2]), s.lagSamples)
	}
	row("at 10,000 rec/s: mirror lag (producer timestamp → readable on the copy's box) p50 / p99 / max (ms)", lag(cur), lag(base), "", "", "",
		x(millis(cur.mirrorLag[0]), millis(base.mirrorLag[0]))+" (p50), "+x(millis(cur.mirrorLag[1]), millis(base.mirrorLag[1]))+" (p99)")
	if r.rssPeak > 0 {
		row("RSS of a node holding copies of two peers at 5,000 rec/s each (rf 3): idle / peak VmRSS / VmHWM", fmt.Sprintf("%s / %s / %s", mib(r.rssIdle), mib(r.rssPeak), mib(r.rssHWM)), "", "", "", "", "")
	}
	fmt.Fprintf(&b, "\nrunnel: fsync always on both nodes (the ack waits for the copy's fsync)")
	if withBase {
		fmt.Fprintf(&b, "; baseline: `runnel serve` from %s", r.baseBin)
	}
	fmt.Fprintf(&b, ". Apache Kafka: %s; JVM %s.\n", kfs, strings.Join(r.kafkaJVM, " "))
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
