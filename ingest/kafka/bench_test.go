package kafka

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/vfs/vfstest"
)

// BenchmarkProduce: franz-go, 100-byte records, acks=-1 (idempotent), 4
// partitions, the real log with fsync "always" (durable before the ack).
// Target: >= 1M rec/s.
func BenchmarkProduce(b *testing.B) {
	vfstest.RequireRealDisk(b, os.TempDir())
	l := openLog(b, "")
	if err := l.CreateTopic("bench", log.TopicConfig{Partitions: 4}); err != nil {
		b.Fatal(err)
	}
	ts := startServer(b, l, nil)
	cl := newClient(b, ts.addr, kgo.DefaultProduceTopic("bench"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.MaxBufferedRecords(1<<20), kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(0))
	value := make([]byte, 100)
	var failed atomic.Int64
	cb := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
		}
	}
	ctx := context.Background()
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		cl.Produce(ctx, &kgo.Record{Value: value}, cb)
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d records failed", failed.Load())
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rec/s")
}

// BenchmarkFetch consumes pre-produced 100-byte records with franz-go.
func BenchmarkFetch(b *testing.B) {
	l := openLog(b, "")
	if err := l.CreateTopic("bench", log.TopicConfig{Partitions: 4}); err != nil {
		b.Fatal(err)
	}
	ts := startServer(b, l, nil)
	p := newClient(b, ts.addr, kgo.DefaultProduceTopic("bench"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.MaxBufferedRecords(1<<20))
	ctx := context.Background()
	value := make([]byte, 100)
	for i := 0; i < b.N; i++ {
		p.Produce(ctx, &kgo.Record{Value: value}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	c := newClient(b, ts.addr, kgo.ConsumeTopics("bench"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	b.SetBytes(int64(len(value)))
	b.ResetTimer()
	start := time.Now()
	for got := 0; got < b.N; {
		fs := c.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			b.Fatal(err)
		}
		got += fs.NumRecords()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rec/s")
}
