package main

// TestBenchVsKafka (make bench-vs-kafka, RUNNEL_BENCH_VS_KAFKA=1) runs the
// same `runnel bench` load, with the same client settings, first against
// the runnel binary and then against a single-node Apache Kafka (KRaft, same
// Maven artifacts as the integration tests), on this machine, one after the
// other, and prints a markdown table with the ratios. It samples the
// servers' resident memory from /proc. It reports; it does not fail on the
// targets unless RUNNEL_BENCH_STRICT=1.
//
// Knobs (environment): RUNNEL_BENCH_RECORDS (produce records, default
// 5000000), RUNNEL_BENCH_RUNS (produce runs, the median is reported,
// default 3), RUNNEL_BENCH_E2E_SECONDS (default 10), RUNNEL_BENCH_OUT (also
// write the table to this file), RUNNEL_BENCH_KAFKA_HEAP (default 1g),
// RUNNEL_BENCH_KAFKA_FSYNC=1 (make Kafka fsync every message too).

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
	e2e              benchResult
	peakRSS          int64 // bytes, max VmRSS sampled during the run
	hwm              int64 // bytes, VmHWM at the end (0 if unknown)
	produceRuns      int   // produce is the median of this many runs
	fsync            bool  // Kafka only: log.flush.interval.messages=1
	loadBefore       string
	loadAfter        string
}

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
	records := envInt("RUNNEL_BENCH_RECORDS", 5_000_000)
	e2eSecs := envInt("RUNNEL_BENCH_E2E_SECONDS", 10)
	runs := envInt("RUNNEL_BENCH_RUNS", 3)
	bin := runnelBinary(t)

	// runnel, with its defaults (fsync before ack).
	rs := startRunnel(t, 4)
	runnel := runBenchSuite(t, bin, "runnel", rs.Addr(), func() int { return rs.PID() }, records, e2eSecs, runs)
	rs.Stop(t)

	// Apache Kafka, single node (no fsync before ack: its default).
	heap := os.Getenv("RUNNEL_BENCH_KAFKA_HEAP")
	if heap == "" {
		heap = "1g"
	}
	kopts := kafkatest.Options{Heap: heap, Partitions: 4}
	kafkaFsync := os.Getenv("RUNNEL_BENCH_KAFKA_FSYNC") == "1"
	if kafkaFsync {
		kopts.Props = append(kopts.Props, "log.flush.interval.messages=1")
	}
	kb := kafkatest.StartOpts(t, kopts)
	kpid := findPIDByCmdline(kb.Dir())
	kafka := runBenchSuite(t, bin, "Apache Kafka", kb.Addr(), func() int { return kpid }, records, e2eSecs, runs)
	kb.Stop()

	kafka.fsync = kafkaFsync
	table := benchTable(runnel, kafka)
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

// runBenchSuite runs bench produce, consume and e2e with the built binary
// against addr while sampling the server's RSS.
func runBenchSuite(t *testing.T, bin, name, addr string, pid func() int, records, e2eSecs, runs int64) benchRun {
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
	// Warm up (the JVM's JIT, page cache, connections) on another topic.
	bench(append([]string{"produce", "--topic", "bench-warmup", "--records", strconv.FormatInt(max(records/4, 100_000), 10)}, common...)...)
	// The median of several produce runs: this machine may be shared.
	var produces []benchResult
	for i := range max(runs, 1) {
		topic := fmt.Sprintf("bench-produce-%d", i)
		produces = append(produces, bench(append([]string{"produce", "--topic", topic, "--records", strconv.FormatInt(records, 10)}, common...)...))
	}
	slices.SortFunc(produces, func(a, b benchResult) int { return cmp.Compare(a.RecPerSec, b.RecPerSec) })
	run.produce = produces[len(produces)/2]
	run.produceRuns = len(produces)
	run.consume = bench(append([]string{"consume", "--topic", "bench-produce-0", "--records", strconv.FormatInt(records, 10)}, common...)...)
	run.e2e = bench(append([]string{"e2e", "--topic", "bench-e2e", "--rate", "10000", "--records", strconv.FormatInt(10000*e2eSecs, 10)}, common...)...)
	if p := pid(); p > 0 {
		run.hwm, _ = procStatusBytes(p, "VmHWM")
	}
	close(stop)
	wg.Wait()
	run.peakRSS = peak.Load()
	run.loadAfter = loadAvg()
	return run
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

// benchTargets checks the targets.
func benchTargets(r, k benchRun) []benchTarget {
	ratio := 0.0
	if k.produce.RecPerSec > 0 {
		ratio = r.produce.RecPerSec / k.produce.RecPerSec
	}
	rss := max(r.peakRSS, r.hwm)
	return []benchTarget{
		{ratio >= 1.5, fmt.Sprintf("produce rec/s ≥ 1.5x Apache Kafka: %.2fx", ratio)},
		{r.produce.RecPerSec >= 1e6, fmt.Sprintf("produce ≥ 1,000,000 rec/s: %.0f", r.produce.RecPerSec)},
		{r.e2e.P99Millis > 0 && r.e2e.P99Millis <= 5, fmt.Sprintf("e2e p99 at 10,000 rec/s ≤ 5 ms: %.2f ms", r.e2e.P99Millis)},
		{rss > 0 && rss <= 64<<20, fmt.Sprintf("runnel RSS ≤ 64 MiB: %.1f MiB", float64(rss)/(1<<20))},
	}
}

// benchTable renders the side-by-side markdown table.
func benchTable(r, k benchRun) string {
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
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "Same machine (%s, %d CPUs), one after the other; `runnel bench`, franz-go, 100-byte records, acks=all, 4 partitions, no compression.\n", host, runtime.NumCPU())
	kafkaSync := "does not fsync (its default)"
	if k.fsync {
		kafkaSync = "fsyncs every message (log.flush.interval.messages=1)"
	}
	fmt.Fprintf(&b, "runnel fsyncs before every ack (default `--fsync always`); Apache Kafka %s %s.\n", kafkaVersion(), kafkaSync)
	fmt.Fprintf(&b, "Produce is the median of %d runs of %d records. 1-minute load average before/after: runnel %s/%s, Kafka %s/%s.\n\n",
		r.produceRuns, r.produce.Records, r.loadBefore, r.loadAfter, k.loadBefore, k.loadAfter)
	fmt.Fprintln(&b, "| metric | runnel | Apache Kafka | runnel / Kafka |")
	fmt.Fprintln(&b, "|---|---:|---:|---:|")
	row := func(name, a, c, rt string) { fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name, a, c, rt) }
	row("produce, rec/s", fmt.Sprintf("%.0f", r.produce.RecPerSec), fmt.Sprintf("%.0f", k.produce.RecPerSec), ratio(r.produce.RecPerSec, k.produce.RecPerSec))
	row("produce, MB/s", fmt.Sprintf("%.1f", r.produce.MBPerSec), fmt.Sprintf("%.1f", k.produce.MBPerSec), ratio(r.produce.MBPerSec, k.produce.MBPerSec))
	row("produce→ack p50 / p99 (ms)", fmt.Sprintf("%.2f / %.2f", r.produce.P50Millis, r.produce.P99Millis), fmt.Sprintf("%.2f / %.2f", k.produce.P50Millis, k.produce.P99Millis), ratio(r.produce.P99Millis, k.produce.P99Millis))
	row("bench client CPU during produce (s)", fmt.Sprintf("%.2f", r.produce.ClientCPU), fmt.Sprintf("%.2f", k.produce.ClientCPU), "")
	row("consume, rec/s", fmt.Sprintf("%.0f", r.consume.RecPerSec), fmt.Sprintf("%.0f", k.consume.RecPerSec), ratio(r.consume.RecPerSec, k.consume.RecPerSec))
	row("e2e at 10,000 rec/s: p50 (ms)", fmt.Sprintf("%.2f", r.e2e.P50Millis), fmt.Sprintf("%.2f", k.e2e.P50Millis), ratio(r.e2e.P50Millis, k.e2e.P50Millis))
	row("e2e at 10,000 rec/s: p99 (ms)", fmt.Sprintf("%.2f", r.e2e.P99Millis), fmt.Sprintf("%.2f", k.e2e.P99Millis), ratio(r.e2e.P99Millis, k.e2e.P99Millis))
	row("e2e at 10,000 rec/s: p99.9 (ms)", fmt.Sprintf("%.2f", r.e2e.P999Millis), fmt.Sprintf("%.2f", k.e2e.P999Millis), ratio(r.e2e.P999Millis, k.e2e.P999Millis))
	row("server peak RSS (sampled VmRSS)", mib(r.peakRSS), mib(k.peakRSS), ratio(float64(r.peakRSS), float64(k.peakRSS)))
	row("server VmHWM", mib(r.hwm), mib(k.hwm), ratio(float64(r.hwm), float64(k.hwm)))
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
