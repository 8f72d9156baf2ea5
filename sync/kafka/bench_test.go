package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/sync/kafka"
	"github.com/runnel/runnel/sync/kafka/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel/runnel/log/vfs/vfstest"
)

// One broker shared by every benchmark run of the process (b.N probing
// re-runs a benchmark several times); TestMain kills it.
var bench struct {
	once   sync.Once
	broker *kafkatest.Broker
	dir    string
	err    error
	topics atomic.Int64
}

func benchBroker(b *testing.B) *kafkatest.Broker {
	bench.once.Do(func() {
		bench.dir, bench.err = os.MkdirTemp("", "runnel-bench-kafka-")
		if bench.err == nil {
			bench.broker, bench.err = kafkatest.New(bench.dir, kafkatest.Options{Partitions: 4, StandardJVM: true})
		}
	})
	if bench.err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatalf("kafka unavailable: %v", bench.err)
		}
		b.Skipf("kafka unavailable: %v", bench.err)
	}
	return bench.broker
}

func stopBenchBroker() {
	if bench.broker != nil {
		bench.broker.Kill()
	}
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
}

const benchValueSize = 100

func benchValue(i int) []byte {
	v := make([]byte, benchValueSize)
	benchValueInto(v, i)
	return v
}

// benchValueInto writes record i's value into v (len benchValueSize):
// "sensor-%06d temperature=%d.%d humidity=%d " then letters from byte 48,
// built without fmt so generating values costs little next to producing.
func benchValueInto(v []byte, i int) {
	b := append(v[:0], "sensor-"...)
	b = strconv.AppendInt(b, int64(1000000+i%1000), 10)
	copy(b[7:], b[8:]) // drop the leading 1: six digits, zero-padded
	b = b[:len(b)-1]
	b = append(b, " temperature="...)
	b = strconv.AppendInt(b, int64(20+i%15), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(i%10), 10)
	b = append(b, " humidity="...)
	b = strconv.AppendInt(b, int64(40+i%30), 10)
	b = append(b, ' ')
	clear(v[len(b):48])
	for j := 48; j < benchValueSize; j++ {
		v[j] = byte('a' + (i+j)%26)
	}
}

// BenchmarkDrain measures the forwarder draining a backlog of b.N records
// of 100 bytes (4 partitions, in a real log) into a local Apache Kafka,
// against a plain franz-go producer sending the same values to the same
// broker in the same run. Both sides use the same kgo options (kafka.Opts:
// zstd at kgo's default level, acks=all, idempotent writes, kgo's default
// linger and batch size, the same partitioner: record i goes to partition
// i%4 as the forwarder's origin partitioning does). The plain producer's
// values are built before its clock starts. Each plain variant runs once
// before and once after the forwarder (the mean is the reference: the
// shared machine's speed drifts). Metrics: fwd-rec/s; plain-rec/s and
// ratio against a producer of bare records; plain-hdr-rec/s and
// ratio-same-records against one sending the same four origin headers
// the forwarder must add (the forwarder's own cost); headers-cost is
// plain-hdr/plain (what the origin headers cost any producer). Use e.g.
// -benchtime=1000000x (the target is 10,000,000).
func BenchmarkDrain(b *testing.B) {
	vfstest.RequireRealDisk(b, os.TempDir())
	br := benchBroker(b)
	n := b.N
	id := bench.topics.Add(1)
	plainTopic, fwdTopic := fmt.Sprintf("plain-%d", id), fmt.Sprintf("fwd-%d", id)
	ctx := context.Background()
	for _, tp := range []string{plainTopic, fwdTopic} {
		if err := kafkatest.CreateTopic(ctx, br.Addr(), tp, 4); err != nil {
			b.Fatal(err)
		}
	}
	up := forward.Upstream{Kind: "kafka", Brokers: []string{br.Addr()}}.WithDefaults("bench")

	// The backlog, in a real log.
	lg, err := log.Open(&log.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer lg.Close()
	if err := lg.CreateTopic(fwdTopic, log.TopicConfig{Partitions: 4}); err != nil {
		b.Fatal(err)
	}
	var bl batch.Builder
	for p := 0; p < 4; p++ {
		for i := p; i < n; i += 4 {
			bl.Add(time.Now().UnixMilli(), nil, benchValue(i), nil)
			if bl.Len() == 1000 || i+4 >= n {
				if _, err := lg.Append(ctx, fwdTopic, int32(p), bl.Bytes()); err != nil {
					b.Fatal(err)
				}
				bl.Reset()
			}
		}
	}

	// Plain producer, run before and after the forwarder (the mean is the
	// reference: the shared machine's speed drifts).
	opts, err := kafka.Opts(up)
	if err != nil {
		b.Fatal(err)
	}
	// The plain producer's values are built before its clock starts (the
	// forwarder reads its values from the log, also built beforehand).
	values := make([]byte, n*benchValueSize)
	for i := 0; i < n; i++ {
		benchValueInto(values[i*benchValueSize:(i+1)*benchValueSize], i)
	}
	plainRun := func(withHeaders bool) time.Duration {
		cl, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic(plainTopic))...)
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		var failed atomic.Int64
		t0 := time.Now()
		for i := 0; i < n; i++ {
			r := &kgo.Record{Partition: int32(i % 4), Value: values[i*benchValueSize : (i+1)*benchValueSize : (i+1)*benchValueSize]}
			if withHeaders { // the same origin headers the forwarder adds
				r.Headers = []kgo.RecordHeader{{Key: forward.HeaderNode, Value: []byte("bench")},
					{Key: forward.HeaderTopic, Value: []byte(fwdTopic)}, {Key: forward.HeaderPartition, Value: []byte{'0' + byte(i%4)}},
					{Key: forward.HeaderOffset, Value: strconv.AppendInt(nil, int64(i/4), 10)}}
			}
			cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
				if err != nil {
					failed.Add(1)
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		if failed.Load() > 0 {
			b.Fatalf("plain producer: %d records failed", failed.Load())
		}
		return time.Since(t0)
	}
	b.StopTimer()
	plain := plainRun(false)
	same := plainRun(true)
	b.StartTimer()

	// Forwarder.
	b.SetBytes(benchValueSize)
	b.ReportAllocs()
	b.ResetTimer()
	f, err := forward.New(forward.Options{
		Log: lg, NodeID: "bench", Logger: testLogger(b),
		Upstreams: map[string]forward.Upstream{forward.DefaultUpstream: up},
		Routes:    []forward.Route{{Name: "drain", Topics: []string{fwdTopic}, MaxInFlight: benchWindow(), MaxInFlightBytes: 64 << 20}},
		Sinks:     map[string]forward.NewSinkFunc{"kafka": kafka.NewSink},
	})
	if err != nil {
		b.Fatal(err)
	}
	t1 := time.Now()
	pprof.Do(ctx, pprof.Labels("phase", "fwd"), func(ctx context.Context) { f.Start(ctx) })
	for f.Stats().AckedRecords < uint64(n) {
		if time.Since(t1) > 10*time.Minute {
			b.Fatalf("drain stuck: %+v", f.Routes()[0])
		}
		time.Sleep(time.Millisecond)
	}
	fwd := time.Since(t1)
	b.StopTimer()
	f.Close()
	plain = (plain + plainRun(false)) / 2
	same = (same + plainRun(true)) / 2
	fr, pr, sr := float64(n)/fwd.Seconds(), float64(n)/plain.Seconds(), float64(n)/same.Seconds()
	b.ReportMetric(fr, "fwd-rec/s")
	b.ReportMetric(pr, "plain-rec/s")
	b.ReportMetric(fr/pr, "ratio")
	b.ReportMetric(sr, "plain-hdr-rec/s")
	b.ReportMetric(fr/sr, "ratio-same-records")
	b.ReportMetric(sr/pr, "headers-cost")
}

func benchWindow() int {
	if v := os.Getenv("RUNNEL_BENCH_WINDOW"); v != "" {
		var n int
		fmt.Sscan(v, &n)
		return n
	}
	return 0
}

// latencySink records, per acknowledged record, the time since sent
// returns for it.
type latencySink struct {
	forward.Sink
	sent func(*forward.Record) time.Time
	mu   sync.Mutex
	lats []time.Duration
}

func (s *latencySink) Send(ctx context.Context, rec *forward.Record, done func(error)) {
	t0 := s.sent(rec)
	s.Sink.Send(ctx, rec, func(err error) {
		if err == nil {
			d := time.Since(t0)
			s.mu.Lock()
			s.lats = append(s.lats, d)
			s.mu.Unlock()
		}
		done(err)
	})
}

// BenchmarkLiveLatency appends b.N records of 100 bytes at 10,000
// records/s (an append of 10 records every millisecond, round robin over
// 4 partitions, fsync always) while the link is up, and reports the
// p50/p99 age of a record when the upstream acknowledges it, counted
// from the time its append was due (open loop: a late append counts its
// delay), and the rate the appends reached (rec/s; the latencies hold
// for that rate). Target p99 ≤ 100 ms. Use e.g. -benchtime=100000x (10 s).
func BenchmarkLiveLatency(b *testing.B) {
	vfstest.RequireRealDisk(b, os.TempDir())
	const rate, perAppend, partitions = 10000, 10, 4
	interval := time.Second * perAppend / rate
	br := benchBroker(b)
	ctx := context.Background()
	topic := fmt.Sprintf("live-%d", bench.topics.Add(1))
	if err := kafkatest.CreateTopic(ctx, br.Addr(), topic, partitions); err != nil {
		b.Fatal(err)
	}
	lg, err := log.Open(&log.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer lg.Close()
	cfg := log.TopicConfig{Partitions: partitions}
	if os.Getenv("RUNNEL_BENCH_FSYNC") != "" {
		cfg.Fsync = log.FsyncPolicy(os.Getenv("RUNNEL_BENCH_FSYNC"))
	}
	if err := lg.CreateTopic(topic, cfg); err != nil {
		b.Fatal(err)
	}
	// Append k (records k*perAppend...) is due at start + k*interval and
	// goes to partition k%partitions, where its records take the offsets
	// (k/partitions)*perAppend... (a fresh topic; appends to a partition
	// complete in order).
	var start time.Time
	due := func(k int) time.Time { return start.Add(time.Duration(k) * interval) }
	ls := &latencySink{sent: func(r *forward.Record) time.Time {
		return due(int(r.Offset/perAppend)*partitions + int(r.Partition))
	}}
	f, err := forward.New(forward.Options{
		Log: lg, NodeID: "bench", Logger: testLogger(b),
		Upstreams: map[string]forward.Upstream{forward.DefaultUpstream: {Kind: "kafka", Brokers: []string{br.Addr()}}},
		Routes:    []forward.Route{{Name: "live", Topics: []string{topic}}},
		Sinks: map[string]forward.NewSinkFunc{"kafka": func(n string, u forward.Upstream, l *slog.Logger) (forward.Sink, error) {
			s, err := kafka.NewSink(n, u, l)
			ls.Sink = s
			return ls, err
		}},
	})
	if err != nil {
		b.Fatal(err)
	}
	f.Start(ctx)
	defer f.Close()
	var failed atomic.Int64
	var bl batch.Builder
	b.ResetTimer()
	start = time.Now()
	var last time.Time // when the last append was made
	for k, i := 0, 0; i < b.N; {
		// Every append that is due now (catching up after a late wake-up).
		for ; i < b.N && !due(k).After(time.Now()); k++ {
			for j := 0; j < perAppend && i < b.N; j, i = j+1, i+1 {
				bl.Add(time.Now().UnixMilli(), nil, benchValue(i), nil)
			}
			p, want := int32(k%partitions), int64(k/partitions*perAppend)
			lg.AppendAsync(topic, p, append([]byte(nil), bl.Bytes()...), func(base int64, err error) {
				if err != nil || base != want {
					failed.Add(1)
				}
			})
			bl.Reset()
			last = time.Now()
		}
		time.Sleep(time.Until(due(k)))
	}
	reached := float64(b.N) / last.Sub(start).Seconds()
	for f.Stats().AckedRecords < uint64(b.N) {
		if time.Since(last) > time.Minute {
			b.Fatalf("%d of %d records acknowledged upstream a minute after the last append", f.Stats().AckedRecords, b.N)
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d appends failed or got an unexpected offset", n)
	}
	ls.mu.Lock()
	lats := append([]time.Duration(nil), ls.lats...)
	ls.mu.Unlock()
	slices.Sort(lats)
	b.ReportMetric(reached, "rec/s")
	b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkBandwidthCap forwards a backlog of 100-byte records to the
// local Apache Kafka through an upstream capped at 1 MiB/s and reports
// the acknowledged rate of record bytes (key, value and headers before
// compression, what Upstream.BandwidthBytesPerSec caps) as a percentage
// of the cap (cap-%), over b.N seconds after the first half second (the
// limiter's initial burst). Use e.g. -benchtime=3x (3 s).
func BenchmarkBandwidthCap(b *testing.B) {
	vfstest.RequireRealDisk(b, os.TempDir())
	const capBps = 1 << 20
	br := benchBroker(b)
	ctx := context.Background()
	topic := fmt.Sprintf("cap-%d", bench.topics.Add(1))
	if err := kafkatest.CreateTopic(ctx, br.Addr(), topic, 4); err != nil {
		b.Fatal(err)
	}
	lg, err := log.Open(&log.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer lg.Close()
	if err := lg.CreateTopic(topic, log.TopicConfig{Partitions: 4}); err != nil {
		b.Fatal(err)
	}
	// More than the cap lets through in the run (each record accounts
	// for at least its 100-byte value).
	n := (b.N + 2) * capBps / benchValueSize
	var bl batch.Builder
	for p := 0; p < 4; p++ {
		for i := p; i < n; i += 4 {
			bl.Add(time.Now().UnixMilli(), nil, benchValue(i), nil)
			if bl.Len() == 1000 || i+4 >= n {
				if _, err := lg.Append(ctx, topic, int32(p), bl.Bytes()); err != nil {
					b.Fatal(err)
				}
				bl.Reset()
			}
		}
	}
	f, err := forward.New(forward.Options{
		Log: lg, NodeID: "bench", Logger: testLogger(b),
		Upstreams: map[string]forward.Upstream{forward.DefaultUpstream: {Kind: "kafka", Brokers: []string{br.Addr()}, BandwidthBytesPerSec: capBps}},
		Routes:    []forward.Route{{Name: "capped", Topics: []string{topic}}},
		Sinks:     map[string]forward.NewSinkFunc{"kafka": kafka.NewSink},
	})
	if err != nil {
		b.Fatal(err)
	}
	f.Start(ctx)
	defer f.Close()
	time.Sleep(500 * time.Millisecond)
	b.ResetTimer()
	b0, t0 := f.Stats().AckedBytes, time.Now()
	time.Sleep(time.Duration(b.N) * time.Second)
	st, t1 := f.Stats(), time.Now()
	b.StopTimer()
	if st.AckedRecords >= uint64(n) {
		b.Fatalf("the backlog of %d records ran out before the measurement ended", n)
	}
	rate := float64(st.AckedBytes-b0) / t1.Sub(t0).Seconds()
	b.ReportMetric(rate, "B/s")
	b.ReportMetric(100*rate/capBps, "cap-%")
}
