package main

// runnel bench produce|consume|e2e: a franz-go load generator that measures
// any Kafka-API server (runnel or Apache Kafka) with the same client
// settings, printing rec/s, MB/s and latency percentiles.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var benchCmd = command{
	name: "bench",
	args: "produce|consume|e2e [flags]",
	summary: `Load generator (franz-go) for runnel or any Kafka-API server.

Subcommands:
  produce   write --records records of --record-size bytes as fast as the
            server acknowledges them; latency is produce call → ack
  consume   read --records records from the start of the topic (producing
            the missing ones first); throughput only
  e2e       produce at --rate records/s while a consumer reads them; latency
            is produce call → consumer poll, from a timestamp in the value`,
}

// runBench implements `runnel bench SUBCOMMAND ...`.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return benchCmd.fail(stderr, usageErrorf("missing subcommand: produce, consume or e2e"))
	}
	switch args[0] {
	case "produce", "consume", "e2e":
		return runBenchMode(ctx, args[0], args[1:], stdout, stderr)
	case "-h", "--help", "help":
		benchCmd.printUsage(stdout, benchCmd.newFlagSet())
		return exitOK
	default:
		return benchCmd.fail(stderr, usageErrorf("unknown subcommand %q: want produce, consume or e2e", args[0]))
	}
}

// benchOptions are the flags of every bench mode.
type benchOptions struct {
	mode        string
	client      *clientFlags
	topic       string
	records     int64 // 0: unlimited (with duration)
	recordSize  int
	partitions  int32
	acks        string
	compression string
	rate        float64 // records/s; 0: as fast as possible
	duration    time.Duration
	maxBuffered int
	linger      time.Duration
	batchBytes  int32
	warmup      time.Duration
	jsonOut     bool
	cpuProfile  string
}

func runBenchMode(ctx context.Context, mode string, args []string, stdout, stderr io.Writer) int {
	c := command{name: "bench " + mode, summary: benchSummary(mode)}
	fs := c.newFlagSet()
	o := benchOptions{mode: mode, client: addClientFlags(fs)}
	defTopic, defRecords := "runnel-bench", int64(1_000_000)
	if mode == "e2e" {
		defTopic, defRecords = "runnel-bench-e2e", 100_000
	}
	fs.StringVarP(&o.topic, "topic", "t", defTopic, "topic (created with --partitions when missing)")
	fs.Int64VarP(&o.records, "records", "n", defRecords, "number of records (with --duration: at most this many)")
	fs.IntVarP(&o.recordSize, "record-size", "s", 100, "value size in bytes")
	fs.Int32VarP(&o.partitions, "partitions", "p", 4, "partitions when the topic is created")
	fs.StringVarP(&o.acks, "acks", "a", "all", "producer acks: 0, 1, -1 or all")
	fs.StringVarP(&o.compression, "compression", "z", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	defRate := 0.0
	if mode == "e2e" {
		defRate = 10_000
	}
	fs.Float64VarP(&o.rate, "rate", "r", defRate, "records per second to produce (0: as fast as possible)")
	fs.DurationVarP(&o.duration, "duration", "d", 0, "stop producing after this long (0: after --records)")
	fs.IntVar(&o.maxBuffered, "max-buffered", 250_000, "producer: records buffered before Produce blocks")
	fs.DurationVar(&o.linger, "linger", 0, "producer: how long a batch may wait for more records")
	fs.Int32Var(&o.batchBytes, "batch-bytes", 1_000_000, "producer: max bytes of one partition's batch")
	defWarm := time.Duration(0)
	if mode == "e2e" {
		defWarm = time.Second
	}
	fs.DurationVar(&o.warmup, "warmup", defWarm, "e2e: leave records of the first WARMUP out of the latencies")
	fs.BoolVar(&o.jsonOut, "json", false, "print the result as one JSON object")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the load generator to this file")
	if done, code := c.parse(fs, args, stdout, stderr); done {
		return code
	}
	if err := o.validate(fs); err != nil {
		return c.fail(stderr, err)
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return c.fail(stderr, err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return c.fail(stderr, err)
		}
		defer pprof.StopCPUProfile()
	}
	var (
		res benchResult
		err error
	)
	switch mode {
	case "produce":
		res, err = benchProduce(ctx, &o, stderr)
	case "consume":
		res, err = benchConsume(ctx, &o, stderr)
	case "e2e":
		res, err = benchE2E(ctx, &o, stderr)
	}
	if err != nil {
		return c.fail(stderr, err)
	}
	if o.jsonOut {
		b, _ := json.Marshal(res)
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		res.print(stdout)
	}
	if res.Errors > 0 {
		return exitError
	}
	return exitOK
}

func benchSummary(mode string) string {
	switch mode {
	case "produce":
		return "Produce records as fast as the server acknowledges them; print rec/s, MB/s and produce→ack latency percentiles."
	case "consume":
		return "Consume records from the start of the topic (producing the missing ones first); print rec/s and MB/s."
	default:
		return "Produce at --rate while consuming; print the produce→consume latency percentiles (timestamp carried in the value)."
	}
}

func (o *benchOptions) validate(fs *pflag.FlagSet) error {
	if fs.NArg() != 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	if o.topic == "" {
		return usageErrorf("--topic is empty")
	}
	if o.duration > 0 && !fs.Changed("records") {
		o.records = 0 // the duration decides
	}
	if o.records < 0 || (o.records == 0 && o.duration <= 0) {
		return usageErrorf("--records must be positive (or use --duration)")
	}
	if o.mode == "consume" && o.records == 0 {
		return usageErrorf("bench consume needs --records")
	}
	minSize := 0
	if o.mode == "e2e" {
		minSize = e2eStampSize
	}
	if o.recordSize < minSize || o.recordSize > 64<<20 {
		return usageErrorf("--record-size must be in [%d, 64MiB], got %d", minSize, o.recordSize)
	}
	if o.partitions <= 0 {
		return usageErrorf("--partitions must be positive, got %d", o.partitions)
	}
	if o.rate < 0 {
		return usageErrorf("--rate must be >= 0")
	}
	if o.maxBuffered <= 0 || o.batchBytes <= 0 {
		return usageErrorf("--max-buffered and --batch-bytes must be positive")
	}
	if _, err := acksOpts(o.acks); err != nil {
		return err
	}
	if _, err := compressionOpt(o.compression); err != nil {
		return err
	}
	return nil
}

// producerOpts are the franz-go producer settings every mode uses.
func (o *benchOptions) producerOpts() []kgo.Opt {
	acks, _ := acksOpts(o.acks)
	codec, _ := compressionOpt(o.compression)
	return append(acks,
		kgo.ProducerBatchCompression(codec),
		kgo.DefaultProduceTopic(o.topic),
		kgo.MaxBufferedRecords(o.maxBuffered),
		kgo.ProducerLinger(o.linger),
		kgo.ProducerBatchMaxBytes(o.batchBytes),
	)
}

// benchResult is what a bench run measured. Latencies are in milliseconds.
type benchResult struct {
	Mode       string  `json:"mode"`
	Topic      string  `json:"topic"`
	Partitions int     `json:"partitions"`
	Acks       string  `json:"acks"`
	Records    int64   `json:"records"`
	RecordSize int     `json:"record_size"`
	Errors     int64   `json:"errors"`
	Seconds    float64 `json:"seconds"`
	RecPerSec  float64 `json:"rec_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec"`
	Latency    string  `json:"latency,omitempty"` // what the latencies measure
	Samples    uint64  `json:"latency_samples,omitempty"`
	P50Millis  float64 `json:"p50_ms,omitempty"`
	P99Millis  float64 `json:"p99_ms,omitempty"`
	P999Millis float64 `json:"p999_ms,omitempty"`
	MaxMillis  float64 `json:"max_ms,omitempty"`
	MeanMillis float64 `json:"mean_ms,omitempty"`
	FirstError string  `json:"first_error,omitempty"`
	TargetRate float64 `json:"target_rate,omitempty"`
	ProduceP99 float64 `json:"produce_p99_ms,omitempty"` // e2e: produce→ack p99
	ProduceP50 float64 `json:"produce_p50_ms,omitempty"`
	ClientCPU  float64 `json:"client_cpu_seconds,omitempty"` // user+sys CPU of this process while measuring
}

// cpuSeconds returns the user+system CPU time this process used so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// finish fills throughput and latency fields.
func (r *benchResult) finish(records int64, elapsed time.Duration, h *latencyHist) {
	r.Records = records
	r.Seconds = elapsed.Seconds()
	if r.Seconds > 0 {
		r.RecPerSec = float64(records) / r.Seconds
		r.MBPerSec = float64(records) * float64(r.RecordSize) / r.Seconds / 1e6
	}
	if h != nil && h.count() > 0 {
		r.Samples = h.count()
		r.P50Millis = millis(h.quantile(0.50))
		r.P99Millis = millis(h.quantile(0.99))
		r.P999Millis = millis(h.quantile(0.999))
		r.MaxMillis = millis(h.maxLatency())
		r.MeanMillis = millis(h.mean())
	}
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// print writes the human-readable result.
func (r *benchResult) print(w io.Writer) {
	fmt.Fprintf(w, "bench %s: %d records x %d B, acks=%s, %d partitions, topic %s\n",
		r.Mode, r.Records, r.RecordSize, r.Acks, r.Partitions, r.Topic)
	fmt.Fprintf(w, "  throughput: %.0f rec/s, %.1f MB/s (%.3f s)\n", r.RecPerSec, r.MBPerSec, r.Seconds)
	if r.Samples > 0 {
		fmt.Fprintf(w, "  latency (%s): p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms, mean %.3f ms (%d samples)\n",
			r.Latency, r.P50Millis, r.P99Millis, r.P999Millis, r.MaxMillis, r.MeanMillis, r.Samples)
	}
	if r.ProduceP99 > 0 {
		fmt.Fprintf(w, "  produce→ack: p50 %.3f ms, p99 %.3f ms\n", r.ProduceP50, r.ProduceP99)
	}
	if r.ClientCPU > 0 {
		fmt.Fprintf(w, "  client CPU: %.2f s (%.0f%% of one core)\n", r.ClientCPU, 100*r.ClientCPU/max(r.Seconds, 1e-9))
	}
	if r.Errors > 0 {
		fmt.Fprintf(w, "  errors: %d (first: %s)\n", r.Errors, r.FirstError)
	}
}

// randomValue returns n incompressible bytes.
func randomValue(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// ensureTopic creates topic with partitions unless it exists, waits until
// every partition has a leader, and returns the partition count.
func ensureTopic(ctx context.Context, cf *clientFlags, cl *kgo.Client, topic string, partitions int32) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, max(cf.timeout, 30*time.Second))
	defer cancel()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = int32(cf.timeout.Milliseconds())
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, -1
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(rctx, cl)
	if err != nil {
		return 0, fmt.Errorf("create topic %q: %w", topic, err)
	}
	for _, t := range resp.Topics {
		if err := errorCodeErr(t.ErrorCode, t.ErrorMessage); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return 0, fmt.Errorf("create topic %q: %w", topic, err)
		}
	}
	for {
		tms, errs, err := fetchMetadata(rctx, cl, []string{topic})
		if err == nil && errs[topic] == nil && len(tms) == 1 && len(tms[0].partitions) > 0 {
			ready := true
			for _, l := range tms[0].leaders {
				ready = ready && l >= 0
			}
			if ready {
				return len(tms[0].partitions), nil
			}
		}
		select {
		case <-rctx.Done():
			return 0, fmt.Errorf("topic %q not ready: %w (last error: %v)", topic, rctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pacer spaces records at a fixed rate; the zero rate never waits.
type pacer struct {
	start    time.Time
	interval float64 // ns per record
}

func newPacer(rate float64) pacer {
	p := pacer{start: time.Now()}
	if rate > 0 {
		p.interval = 1e9 / rate
	}
	return p
}

// wait blocks until record i is due (sleeping only when ≥ 200 µs ahead, so
// records go out in small bursts rather than missing the rate).
func (p pacer) wait(ctx context.Context, i int64) error {
	if p.interval == 0 {
		return ctx.Err()
	}
	due := p.start.Add(time.Duration(float64(i) * p.interval))
	if d := time.Until(due); d > 200*time.Microsecond {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
