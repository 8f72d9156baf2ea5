package main

// bench e2e: produce at --rate while a consumer reads; the latency of each
// record is from its Produce call (a timestamp in the value) to the poll
// that returned it, measured on the same clock.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// e2eStampSize is the size of the timestamp at the head of an e2e value:
// 8 bytes magic, 8 bytes UnixNano (big endian).
const e2eStampSize = 16

// e2eMagic marks values written by bench e2e.
const e2eMagic = 0x72756e6e656c6532 // "runnele2"

func benchE2E(ctx context.Context, o *benchOptions, stderr io.Writer) (benchResult, error) {
	prod, err := o.client.newClient(o.producerOpts()...)
	if err != nil {
		return benchResult{}, err
	}
	defer prod.Close()
	n, err := ensureTopic(ctx, o.client, prod, o.topic, o.partitions)
	if err != nil {
		return benchResult{}, err
	}
	tms, _, err := fetchMetadata(ctx, prod, []string{o.topic})
	if err != nil || len(tms) != 1 {
		return benchResult{}, fmt.Errorf("metadata of %q: %v", o.topic, err)
	}
	offs, err := listOffsets(ctx, prod, tms)
	if err != nil {
		return benchResult{}, err
	}
	// Start exactly at the current ends so no produced record is missed.
	starts := map[int32]kgo.Offset{}
	for _, p := range tms[0].partitions {
		po := offs[o.topic][p]
		if po.err != nil {
			return benchResult{}, fmt.Errorf("offsets of %q/%d: %w", o.topic, p, po.err)
		}
		starts[p] = kgo.NewOffset().At(po.end)
	}
	cons, err := o.client.newClient(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{o.topic: starts}),
		kgo.FetchMaxWait(time.Second),
	)
	if err != nil {
		return benchResult{}, err
	}
	defer cons.Close()

	var e2eLat, ackLat latencyHist
	warmEnd := time.Now().Add(o.warmup).UnixNano()
	var got atomic.Int64
	done := make(chan struct{})
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var consErr error // written by the consumer goroutine, read after done
	go func() {
		defer close(done)
		for cctx.Err() == nil {
			fetches := cons.PollFetches(cctx)
			now := time.Now().UnixNano()
			fetches.EachError(func(_ string, _ int32, err error) {
				if !errors.Is(err, context.Canceled) && !kerr.IsRetriable(err) && consErr == nil {
					consErr = err
				}
			})
			fetches.EachRecord(func(r *kgo.Record) {
				if len(r.Value) < e2eStampSize || binary.BigEndian.Uint64(r.Value) != e2eMagic {
					return
				}
				ts := int64(binary.BigEndian.Uint64(r.Value[8:]))
				if ts >= warmEnd {
					e2eLat.record(time.Duration(now - ts))
				}
				got.Add(1)
			})
			if consErr != nil {
				return
			}
		}
	}()

	cpu0 := cpuSeconds()
	filler := randomValue(o.recordSize)
	value := func(_ int64, buf []byte) []byte {
		if cap(buf) < o.recordSize {
			buf = make([]byte, o.recordSize)
		}
		buf = buf[:o.recordSize]
		copy(buf, filler)
		binary.BigEndian.PutUint64(buf, e2eMagic)
		binary.BigEndian.PutUint64(buf[8:], uint64(time.Now().UnixNano()))
		return buf
	}
	var st produceStats
	sent, elapsed := produceLoop(ctx, prod, o, value, &ackLat, &st)
	acked := st.acked.Load()
	// Give the consumer up to 30 s to catch up, then stop it.
	for wait := time.Now().Add(30 * time.Second); got.Load() < acked && time.Now().Before(wait); {
		select {
		case <-done:
			wait = time.Time{}
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	<-done
	res := benchResult{
		Mode: "e2e", Topic: o.topic, Partitions: n, Acks: o.acks, RecordSize: o.recordSize,
		Latency: "produce→consume", Errors: st.failed.Load(), FirstError: st.firstError(), TargetRate: o.rate,
	}
	res.finish(got.Load(), elapsed, &e2eLat)
	res.ClientCPU = cpuSeconds() - cpu0
	res.ProduceP50 = millis(ackLat.quantile(0.5))
	res.ProduceP99 = millis(ackLat.quantile(0.99))
	if consErr != nil {
		return res, fmt.Errorf("consume: %w", consErr)
	}
	if got.Load() < acked {
		return res, fmt.Errorf("consumed %d of %d acknowledged records (%d sent)", got.Load(), acked, sent)
	}
	return res, nil
}
