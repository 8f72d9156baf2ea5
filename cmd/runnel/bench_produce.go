package main

// bench produce: records as fast as acks come back (or at --rate).

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// produceStats is what a produce loop counted.
type produceStats struct {
	acked, failed atomic.Int64
	mu            sync.Mutex // guards firstErr
	firstErr      error
}

func (s *produceStats) fail(err error) {
	s.failed.Add(1)
	s.mu.Lock()
	if s.firstErr == nil {
		s.firstErr = err
	}
	s.mu.Unlock()
}

func (s *produceStats) firstError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.firstErr == nil {
		return ""
	}
	return s.firstErr.Error()
}

// produceLoop produces o.records records (or until o.duration passes),
// paced by o.rate, with values from value(i), records reused through a
// pool. It returns the records produced and the time from the first
// Produce to the last ack.
//
// ackLat gets produce→ack latencies of a sample: reading the clock costs
// about as much as producing a record on some VMs, so when unpaced the
// clock is read once per clockEvery records and only the record that got
// the fresh reading is timed (hundreds of thousands of samples per run).
func produceLoop(ctx context.Context, cl *kgo.Client, o *benchOptions, value func(i int64, buf []byte) []byte, ackLat *latencyHist, st *produceStats) (int64, time.Duration) {
	pool := sync.Pool{New: func() any { return new(kgo.Record) }}
	var wg sync.WaitGroup
	done := func(r *kgo.Record, err error) {
		if err != nil {
			st.fail(err)
		} else {
			st.acked.Add(1)
		}
		pool.Put(r)
		wg.Done()
	}
	timed := func(r *kgo.Record, err error) {
		if err == nil {
			ackLat.record(time.Since(r.Timestamp))
		}
		done(r, err)
	}
	clockEvery := int64(64)
	if o.rate > 0 && o.rate <= 100_000 {
		clockEvery = 1
	}
	p := newPacer(o.rate)
	start := p.start
	var deadline time.Time
	if o.duration > 0 {
		deadline = start.Add(o.duration)
	}
	now := start
	var i int64
	for ; o.records == 0 || i < o.records; i++ {
		if err := p.wait(ctx, i); err != nil {
			break
		}
		promise := done
		if i%clockEvery == 0 {
			now = time.Now()
			if !deadline.IsZero() && now.After(deadline) {
				break
			}
			promise = timed
		}
		r := pool.Get().(*kgo.Record)
		buf := r.Value
		*r = kgo.Record{Topic: o.topic, Timestamp: now}
		r.Value = value(i, buf)
		wg.Add(1)
		cl.Produce(ctx, r, promise)
	}
	_ = cl.Flush(ctx)
	wg.Wait()
	return i, time.Since(start)
}

func benchProduce(ctx context.Context, o *benchOptions, stderr io.Writer) (benchResult, error) {
	cl, err := o.client.newClient(o.producerOpts()...)
	if err != nil {
		return benchResult{}, err
	}
	defer cl.Close()
	n, err := ensureTopic(ctx, o.client, cl, o.topic, o.partitions)
	if err != nil {
		return benchResult{}, err
	}
	// Warm up: connections, producer id, metadata, one round trip per partition.
	var warm produceStats
	var warmLat latencyHist
	wo := *o
	wo.records, wo.duration, wo.rate = int64(max(1000, 10*n)), 0, 0
	shared := randomValue(o.recordSize)
	sharedValue := func(int64, []byte) []byte { return shared }
	produceLoop(ctx, cl, &wo, sharedValue, &warmLat, &warm)
	if warm.failed.Load() > 0 {
		return benchResult{}, fmt.Errorf("warm-up produce failed: %s", warm.firstError())
	}

	cpu0 := cpuSeconds()
	var st produceStats
	var lat latencyHist
	_, elapsed := produceLoop(ctx, cl, o, sharedValue, &lat, &st)
	res := benchResult{
		Mode: "produce", Topic: o.topic, Partitions: n, Acks: o.acks, RecordSize: o.recordSize,
		Latency: "produce→ack", Errors: st.failed.Load(), FirstError: st.firstError(), TargetRate: o.rate,
	}
	res.finish(st.acked.Load(), elapsed, &lat)
	res.ClientCPU = cpuSeconds() - cpu0
	if ctx.Err() != nil && res.Records == 0 {
		return res, ctx.Err()
	}
	return res, nil
}
