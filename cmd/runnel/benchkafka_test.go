package main

// TestBenchVsKafka (make bench-vs-kafka, RUNNEL_BENCH_VS_KAFKA=1) runs the
// same loads, with the same client settings, first against runnel and then
// against a single-node Apache Kafka (KRaft, the Maven artifacts of the
// integration tests) started with the JVM flags of its own launcher
// (kafka-server-start.sh: -Xmx1G -Xms1G, G1, full JIT; kafkatest's
// StandardJVM), on this machine, one after the other, and prints a
// markdown table with the ratios and the settings of each figure:
//
//   - `runnel bench produce` (franz-go), median of RUNNEL_BENCH_RUNS runs;
//   - Kafka's Java producer perf tool (org.apache.kafka.tools.
//     ProducerPerformance from kafka-tools, as kafka-producer-perf-test.sh
//     runs it): 3,000,000 × 100 B, acks=all, linger.ms=5,
//     batch.size=65536, 4 partitions; median of RUNNEL_BENCH_RUNS runs;
//   - `runnel bench consume`;
//   - `runnel bench e2e` at 10,000 and at 200 records/s (paced): the
//     produce→consume latency percentiles.
//
// Both servers run with their defaults: runnel fsyncs before every ack,
// Kafka does not fsync (log.flush.interval.messages is Long.MAX_VALUE, its
// default). The fdatasync latency of the data directory's disk is measured
// in the same run. It samples the servers' resident memory from /proc. It
// reports; it fails on the targets only with RUNNEL_BENCH_STRICT=1.
//
// Knobs (environment): RUNNEL_BIN (a prebuilt runnel to measure instead
// of this tree's; the load tools stay this tree's), RUNNEL_BENCH_RECORDS
// (bench produce records, default 5000000), RUNNEL_BENCH_PERF_RECORDS
// (ProducerPerformance records, default 3000000), RUNNEL_BENCH_RUNS
// (default 3), RUNNEL_BENCH_E2E_SECONDS (at 10,000 rec/s, default 10),
// RUNNEL_BENCH_E2E_SLOW_SECONDS (at 200 rec/s, default 30),
// RUNNEL_BENCH_OUT (also write the table to this file),
// RUNNEL_BENCH_KAFKA_FSYNC=1 (make Kafka fsync every message too).

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel/runnel/sync/kafka/kafkatest"
)

// benchRun is one server's measurements.
type benchRun struct {
	name             string
	produce, consume benchResult
	produceRuns      int // produce is the median of this many runs
	perf             perfResult
	perfRuns         []float64 // rec/s of each ProducerPerformance run, sorted
	e2e, e2eSlow     benchResult
	peakRSS          int64 // bytes, max VmRSS sampled during the run
	hwm              int64 // bytes, VmHWM at the end (0 if unknown)
	loadBefore       string
	loadAfter        string
}

// perfResult is the summary line of Kafka's ProducerPerformance.
type perfResult struct {
	records   int64
	recPerSec float64
	mbPerSec  float64
	line      string
	// CPU seconds of the server (utime+stime over the run; 0: unknown)
	// and of the tool's JVM, and the run's wall time: on a small box
	// the client and the server share the cores, so the server's CPU
	// per record bounds what the client gets.
	serverCPU, clientCPU, wall float64
}

// benchKnobs are the sizes of one run of the suite.
type benchKnobs struct {
	records, perfRecords int64
	runs                 int64
	e2eSecs, e2eSlowSecs int64
}

const (
	e2eRate, e2eSlowRate = 10_000, 200
	// ProducerPerformance's settings.
	perfHeap  = "512M" // kafka-producer-perf-test.sh's KAFKA_HEAP_OPTS
	perfProps = "acks=all linger.ms=5 batch.size=65536"
)

// loadAvg returns the 1-minute load average (how shared the machine was).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func envInt(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil && v > 0 {
		return v
	}
	return def
}

func TestBenchVsKafka(t *testing.T) {
	if os.Getenv("RUNNEL_BENCH_VS_KAFKA") != "1" {
		t.Skip("set RUNNEL_BENCH_VS_KAFKA=1 (make bench-vs-kafka) to run the comparison")
	}
	k := benchKnobs{
		records:     envInt("RUNNEL_BENCH_RECORDS", 5_000_000),
		perfRecords: envInt("RUNNEL_BENCH_PERF_RECORDS", 3_000_000),
		runs:        envInt("RUNNEL_BENCH_RUNS", 3),
		e2eSecs:     envInt("RUNNEL_BENCH_E2E_SECONDS", 10),
		e2eSlowSecs: envInt("RUNNEL_BENCH_E2E_SLOW_SECONDS", 30),
	}
	client := runnelBinary(t)
	serverDesc := serverUnderTest(t)
	if _, err := kafkatest.Libs(); err != nil {
		t.Fatalf("Apache Kafka's jars: %v (sync/kafka/kafkatest/fetch.sh)", err)
	}
	probe := t.TempDir()
	fsDesc := checkDataFS(t, probe)
	syncLat := measureFdatasync(t, probe)

	// runnel, with its defaults (fsync before ack).
	rs := startRunnel(t, 4)
	runnel := runBenchSuite(t, client, "runnel", rs.Addr(), func() int { return rs.PID() }, k)
	rs.Stop(t)

	// Apache Kafka, single node, as its launcher starts it.
	kopts := kafkatest.Options{Partitions: 4, StandardJVM: true}
	kafkaFsync := os.Getenv("RUNNEL_BENCH_KAFKA_FSYNC") == "1"
	if kafkaFsync {
		kopts.Props = append(kopts.Props, "log.flush.interval.messages=1")
	}
	kb := kafkatest.StartOpts(t, kopts)
	kpid := findPIDByCmdline(kb.Dir())
	kafka := runBenchSuite(t, client, "Apache Kafka", kb.Addr(), func() int { return kpid }, k)
	kb.Stop()

	env := benchEnv{server: serverDesc, fs: fsDesc, sync: syncLat, kafkaJVM: kb.JVMFlags(), kafkaFsync: kafkaFsync, knobs: k}
	table := benchTable(env, runnel, kafka)
	fmt.Println(table)
	if out := os.Getenv("RUNNEL_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(table), 0o644); err != nil {
			t.Errorf("write %s: %v", out, err)
		}
	}
	if os.Getenv("RUNNEL_BENCH_STRICT") == "1" {
		for _, miss := range benchTargets(runnel, kafka) {
			if !miss.ok {
				t.Errorf("target missed: %s", miss.text)
			}
		}
	}
}

// runBenchSuite runs the loads against addr while sampling the server's
// RSS.
func runBenchSuite(t *testing.T, bin, name, addr string, pid func() int, k benchKnobs) benchRun {
	t.Helper()
	run := benchRun{name: name, loadBefore: loadAvg()}
	var peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			if p := pid(); p > 0 {
				if rss, _ := procStatusBytes(p, "VmRSS"); rss > peak.Load() {
					peak.Store(rss)
				}
			}
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	bench := func(args ...string) benchResult {
		t.Helper()
		args = append([]string{"bench"}, append(args, "--brokers", addr, "--json")...)
		out := runTool(t, 10*time.Minute, "", bin, args...)
		var r benchResult
		if err := json.Unmarshal([]byte(lastLine(out)), &r); err != nil {
			t.Fatalf("%s: bench output %q: %v", name, out, err)
		}
		t.Logf("%s: %s", name, lastLine(out))
		return r
	}
	common := []string{"--record-size", "100", "--partitions", "4", "--acks", "all"}
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	// Warm up (the JVM's JIT, page cache, connections) on another topic.
	bench(append([]string{"produce", "--topic", "bench-warmup", "--records", n(max(k.records/4, 100_000))}, common...)...)
	// The median of several runs: this machine may be shared.
	var produces []benchResult
	for i := range max(k.runs, 1) {
		topic := fmt.Sprintf("bench-produce-%d", i)
		produces = append(produces, bench(append([]string{"produce", "--topic", topic, "--records", n(k.records)}, common...)...))
	}
	slices.SortFunc(produces, func(a, b benchResult) int { return cmp.Compare(a.RecPerSec, b.RecPerSec) })
	run.produce = produces[len(produces)/2]
	run.produceRuns = len(produces)
	var perfs []perfResult
	for i := range max(k.runs, 1) {
		perfs = append(perfs, producerPerf(t, name, addr, fmt.Sprintf("bench-perf-%d", i), k.perfRecords, pid()))
	}
	slices.SortFunc(perfs, func(a, b perfResult) int { return cmp.Compare(a.recPerSec, b.recPerSec) })
	run.perf = perfs[len(perfs)/2]
	for _, p := range perfs {
		run.perfRuns = append(run.perfRuns, p.recPerSec)
	}
	run.consume = bench(append([]string{"consume", "--topic", "bench-produce-0", "--records", n(k.records)}, common...)...)
	run.e2e = bench(append([]string{"e2e", "--topic", "bench-e2e", "--rate", n(e2eRate), "--records", n(e2eRate * k.e2eSecs)}, common...)...)
	run.e2eSlow = bench(append([]string{"e2e", "--topic", "bench-e2e-slow", "--rate", n(e2eSlowRate), "--records", n(e2eSlowRate * k.e2eSlowSecs)}, common...)...)
	if p := pid(); p > 0 {
		run.hwm, _ = procStatusBytes(p, "VmHWM")
	}
	close(stop)
	wg.Wait()
	run.peakRSS = peak.Load()
	run.loadAfter = loadAvg()
	return run
}

// perfLine matches ProducerPerformance's summary line.
var perfLine = regexp.MustCompile(`^(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\)`)

// producerPerf runs Kafka's Java producer perf tool as
// kafka-producer-perf-test.sh does, on a new 4-partition topic.
func producerPerf(t *testing.T, name, addr, topic string, records int64, pid int) perfResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := kafkatest.CreateTopic(ctx, addr, topic, 4); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	args := []string{"--topic", topic, "--num-records", strconv.FormatInt(records, 10), "--record-size", "100",
		"--throughput", "-1", "--producer-props", "bootstrap.servers=" + addr}
	args = append(args, strings.Fields(perfProps)...)
	cmd, err := kafkatest.ToolCommand(ctx, perfHeap, "org.apache.kafka.tools.ProducerPerformance", args...)
	if err != nil {
		t.Fatal(err)
	}
	ticks0, terr := procCPUTicks(pid)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: ProducerPerformance: %v\n%s", name, err, tail(string(out), 3000))
	}
	var r perfResult
	r.wall = time.Since(start).Seconds()
	r.clientCPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	if ticks1, err := procCPUTicks(pid); err == nil && terr == nil {
		r.serverCPU = float64(ticks1-ticks0) / clockTicks
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		// The summary is the last line that matches (progress lines
		// every 5 s have the same start).
		if m := perfLine.FindStringSubmatch(sc.Text()); m != nil {
			r.records, _ = strconv.ParseInt(m[1], 10, 64)
			r.recPerSec, _ = strconv.ParseFloat(m[2], 64)
			r.mbPerSec, _ = strconv.ParseFloat(m[3], 64)
			r.line = sc.Text()
		}
	}
	if r.records != records {
		t.Fatalf("%s: ProducerPerformance sent %d of %d records:\n%s", name, r.records, records, tail(string(out), 3000))
	}
	t.Logf("%s: ProducerPerformance: %s (server CPU %.2f s, tool's JVM CPU %.2f s, wall %.2f s)", name, r.line, r.serverCPU, r.clientCPU, r.wall)
	return r
}

func lastLine(s string) string {
	l := lines(s)
	if len(l) == 0 {
		return ""
	}
	return l[len(l)-1]
}

// procStatusBytes reads a "kB" field (VmRSS, VmHWM) of /proc/PID/status.
func procStatusBytes(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			break
		}
		n, err := strconv.ParseInt(fs[0], 10, 64)
		return n * 1024, err
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", field, pid)
}

// findPIDByCmdline returns the pid of a process of ours whose command line
// mentions needle (the Kafka JVM started in its own temp dir), or 0.
func findPIDByCmdline(needle string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), needle) && strings.Contains(string(b), "kafka.Kafka") {
			return pid
		}
	}
	return 0
}

type benchTarget struct {
	ok   bool
	text string
}

// benchTargets checks the targets of the issues that set them.
func benchTargets(r, k benchRun) []benchTarget {
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	rss := max(r.peakRSS, r.hwm)
	pr := ratio(r.produce.RecPerSec, k.produce.RecPerSec)
	jr := ratio(r.perf.recPerSec, k.perf.recPerSec)
	return []benchTarget{
		{pr >= 1.5, fmt.Sprintf("bench produce rec/s ≥ 1.5x Apache Kafka: %.2fx", pr)},
		{jr >= 1.5, fmt.Sprintf("Java ProducerPerformance rec/s ≥ 1.5x Apache Kafka: %.2fx", jr)},
		{r.produce.RecPerSec >= 1e6, fmt.Sprintf("bench produce ≥ 1,000,000 rec/s: %.0f", r.produce.RecPerSec)},
		{r.e2e.P99Millis > 0 && r.e2e.P99Millis <= 5, fmt.Sprintf("e2e p99 at 10,000 rec/s ≤ 5 ms: %.2f ms", r.e2e.P99Millis)},
		{r.e2e.P99Millis > 0 && r.e2e.P99Millis < k.e2e.P99Millis, fmt.Sprintf("e2e p99 at 10,000 rec/s below Apache Kafka's: %.2f vs %.2f ms", r.e2e.P99Millis, k.e2e.P99Millis)},
		{rss > 0 && rss <= 64<<20, fmt.Sprintf("runnel RSS ≤ 64 MiB: %.1f MiB", float64(rss)/(1<<20))},
	}
}

// benchEnv is what the table says about the run's setting.
type benchEnv struct {
	server     string // the runnel under test
	fs         string // the data directories' file system
	sync       []syncLatency
	kafkaJVM   []string
	kafkaFsync bool
	knobs      benchKnobs
}

// benchTable renders the side-by-side markdown table, each row with the
// command and settings that produced it.
func benchTable(env benchEnv, r, k benchRun) string {
	var b strings.Builder
	ratio := func(a, c float64) string {
		if c == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2fx", a/c)
	}
	mib := func(n int64) string {
		if n == 0 {
			return "—"
		}
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	kn := env.knobs
	fmt.Fprintf(&b, "\n## Kafka API: runnel vs Apache Kafka %s, one run (make bench-vs-kafka)\n\n", kafkaVersion())
	fmt.Fprintf(&b, "- machine: %s; servers one after the other; 1-minute load average before/after: runnel %s/%s, Kafka %s/%s\n",
		machine(), r.loadBefore, r.loadAfter, k.loadBefore, k.loadAfter)
	fmt.Fprintf(&b, "- data directories: %s\n", env.fs)
	for _, s := range env.sync {
		fmt.Fprintf(&b, "- fdatasync of 100 B on that disk, %s\n", s)
	}
	fmt.Fprintf(&b, "- runnel: %s, `runnel serve --default-partitions 4` with its defaults: fsync before every ack\n", env.server)
	kafkaSync := "no fsync before an ack (log.flush.interval.messages=Long.MAX_VALUE, its default)"
	if env.kafkaFsync {
		kafkaSync = "fsync of every message (log.flush.interval.messages=1)"
	}
	fmt.Fprintf(&b, "- Apache Kafka: single node (KRaft), num.partitions=4, %s; JVM as kafka-server-start.sh starts it: `%s`\n",
		kafkaSync, strings.Join(env.kafkaJVM, " "))
	fmt.Fprintf(&b, "- every topic has 4 partitions; records of 100 bytes; acks=all; no compression; each runnel bench produce/consume/e2e uses franz-go with `runnel bench`'s defaults (linger 0, max-buffered 250000, batch 1 MB)\n\n")
	fmt.Fprintln(&b, "| metric | runnel | Apache Kafka | runnel / Kafka | command (settings) |")
	fmt.Fprintln(&b, "|---|---:|---:|---:|---|")
	row := func(name, a, c, rt, cmd string) { fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", name, a, c, rt, cmd) }
	rate := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	ms2 := func(v float64) string { return fmt.Sprintf("%.2f", v) }
	prod := fmt.Sprintf("`runnel bench produce -n %d -s 100 -p 4 -a all`, median of %d runs (after a warm-up run)", kn.records, r.produceRuns)
	row("bench produce, rec/s", rate(r.produce.RecPerSec), rate(k.produce.RecPerSec), ratio(r.produce.RecPerSec, k.produce.RecPerSec), prod)
	row("bench produce, MB/s", fmt.Sprintf("%.1f", r.produce.MBPerSec), fmt.Sprintf("%.1f", k.produce.MBPerSec), ratio(r.produce.MBPerSec, k.produce.MBPerSec), "same runs")
	runs := func(v []float64) string {
		var ss []string
		for _, x := range v {
			ss = append(ss, fmt.Sprintf("%.0f", x))
		}
		return strings.Join(ss, ", ")
	}
	perf := fmt.Sprintf("`kafka-producer-perf-test.sh --num-records %d --record-size 100 --throughput -1 --producer-props %s` (ProducerPerformance, kafka-tools %s, JVM -Xmx%s + kafka-run-class.sh flags), median of %d runs (runnel: %s; Kafka: %s)",
		kn.perfRecords, perfProps, kafkaVersion(), perfHeap, len(r.perfRuns), runs(r.perfRuns), runs(k.perfRuns))
	row("Java ProducerPerformance, rec/s", rate(r.perf.recPerSec), rate(k.perf.recPerSec), ratio(r.perf.recPerSec, k.perf.recPerSec), perf)
	row("Java ProducerPerformance, MB/s", fmt.Sprintf("%.1f", r.perf.mbPerSec), fmt.Sprintf("%.1f", k.perf.mbPerSec), ratio(r.perf.mbPerSec, k.perf.mbPerSec), "same runs")
	perRec := func(p perfResult) float64 { return p.serverCPU * 1e6 / float64(max(p.records, 1)) }
	row("Java ProducerPerformance: server CPU per record, µs", fmt.Sprintf("%.2f", perRec(r.perf)), fmt.Sprintf("%.2f", perRec(k.perf)), ratio(perRec(r.perf), perRec(k.perf)),
		"same median run: the server's utime+stime over the tool's run")
	cores := func(p perfResult) float64 { return p.clientCPU / max(p.wall, 1e-9) }
	row("Java ProducerPerformance: the tool's JVM, cores busy", fmt.Sprintf("%.2f", cores(r.perf)), fmt.Sprintf("%.2f", cores(k.perf)), "",
		fmt.Sprintf("same median run: the JVM's CPU time / wall time (JVM start included), of %d cores the server shares", runtime.NumCPU()))
	row("bench consume, rec/s", rate(r.consume.RecPerSec), rate(k.consume.RecPerSec), ratio(r.consume.RecPerSec, k.consume.RecPerSec),
		fmt.Sprintf("`runnel bench consume -n %d` of the first produce run's topic", kn.records))
	e2e := func(res benchResult) string { return fmt.Sprintf("%.0f", res.RecPerSec) }
	for _, e := range []struct {
		rate     int
		secs     int64
		rn, kf   benchResult
		headline string
	}{{e2eRate, kn.e2eSecs, r.e2e, k.e2e, "10,000"}, {e2eSlowRate, kn.e2eSlowSecs, r.e2eSlow, k.e2eSlow, "200"}} {
		cmd := fmt.Sprintf("`runnel bench e2e --rate %d -n %d -s 100 -p 4 -a all` (paced; produce call → consumer poll; first second left out)", e.rate, int64(e.rate)*e.secs)
		row(fmt.Sprintf("e2e at %s rec/s: rate reached, rec/s", e.headline), e2e(e.rn), e2e(e.kf), "", cmd)
		row(fmt.Sprintf("e2e at %s rec/s: p50, ms", e.headline), ms2(e.rn.P50Millis), ms2(e.kf.P50Millis), ratio(e.rn.P50Millis, e.kf.P50Millis), "same run")
		row(fmt.Sprintf("e2e at %s rec/s: p99, ms", e.headline), ms2(e.rn.P99Millis), ms2(e.kf.P99Millis), ratio(e.rn.P99Millis, e.kf.P99Millis), "same run")
		row(fmt.Sprintf("e2e at %s rec/s: p99.9, ms", e.headline), ms2(e.rn.P999Millis), ms2(e.kf.P999Millis), ratio(e.rn.P999Millis, e.kf.P999Millis), "same run")
	}
	row("server peak RSS (VmRSS sampled every 50 ms)", mib(r.peakRSS), mib(k.peakRSS), ratio(float64(r.peakRSS), float64(k.peakRSS)), "during all of the above")
	row("server VmHWM", mib(r.hwm), mib(k.hwm), ratio(float64(r.hwm), float64(k.hwm)), "at the end")
	fmt.Fprintln(&b, "\nProduce→ack latencies of the unpaced produce runs are not shown: with up to 250,000 records buffered they measure the client's queue, not the server.")
	fmt.Fprintln(&b, "\nTargets:")
	for _, tg := range benchTargets(r, k) {
		mark := "met"
		if !tg.ok {
			mark = "MISSED"
		}
		fmt.Fprintf(&b, "- %s — %s\n", tg.text, mark)
	}
	return b.String()
}

func kafkaVersion() string {
	libs, err := kafkatest.Libs()
	if err != nil {
		return "4.x"
	}
	m, _ := filepath.Glob(filepath.Join(libs, "kafka-clients-*.jar"))
	if len(m) == 0 {
		return "4.x"
	}
	return strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m[0]), "kafka-clients-"), ".jar")
}
