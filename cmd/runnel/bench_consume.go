package main

// bench consume: read --records records from the start of the topic.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func benchConsume(ctx context.Context, o *benchOptions, stderr io.Writer) (benchResult, error) {
	admin, err := o.client.newClient(o.producerOpts()...)
	if err != nil {
		return benchResult{}, err
	}
	defer admin.Close()
	n, err := ensureTopic(ctx, o.client, admin, o.topic, o.partitions)
	if err != nil {
		return benchResult{}, err
	}
	tms, _, err := fetchMetadata(ctx, admin, []string{o.topic})
	if err != nil || len(tms) != 1 {
		return benchResult{}, fmt.Errorf("metadata of %q: %v", o.topic, err)
	}
	offs, err := listOffsets(ctx, admin, tms)
	if err != nil {
		return benchResult{}, err
	}
	var have int64
	for _, po := range offs[o.topic] {
		if po.err != nil {
			return benchResult{}, fmt.Errorf("offsets of %q: %w", o.topic, po.err)
		}
		have += po.end - po.start
	}
	if missing := o.records - have; missing > 0 {
		fmt.Fprintf(stderr, "bench consume: producing %d records to %q first\n", missing, o.topic)
		po := *o
		po.records, po.duration, po.rate = missing, 0, 0
		shared := randomValue(o.recordSize)
		var st produceStats
		var lat latencyHist
		produceLoop(ctx, admin, &po, func(int64, []byte) []byte { return shared }, &lat, &st)
		if st.failed.Load() > 0 {
			return benchResult{}, fmt.Errorf("fill produce failed: %s", st.firstError())
		}
	}
	admin.Close()

	starts := map[int32]kgo.Offset{}
	for _, p := range tms[0].partitions {
		starts[p] = kgo.NewOffset().AtStart()
	}
	cl, err := o.client.newClient(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{o.topic: starts}))
	if err != nil {
		return benchResult{}, err
	}
	defer cl.Close()
	res := benchResult{Mode: "consume", Topic: o.topic, Partitions: n, Acks: o.acks, RecordSize: o.recordSize}
	cpu0 := cpuSeconds()
	var got, bytes int64
	start := time.Now()
	var deadline time.Time
	if o.duration > 0 {
		deadline = start.Add(o.duration)
	}
	for got < o.records && ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)) {
		fetches := cl.PollRecords(ctx, 0)
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.Canceled) && !kerr.IsRetriable(err) && ferr == nil {
				ferr = err
			}
		})
		if ferr != nil {
			return res, fmt.Errorf("fetch: %w", ferr)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			got++
			bytes += int64(len(r.Value))
		})
	}
	res.finish(min(got, o.records), time.Since(start), nil)
	res.ClientCPU = cpuSeconds() - cpu0
	if got < o.records {
		return res, fmt.Errorf("consumed %d of %d records: %v", got, o.records, ctx.Err())
	}
	return res, nil
}
