package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

func fetchReq(topic string, parts []int32, offset int64, minBytes, maxWait, maxBytes, partMax int32) *kmsg.FetchRequest {
	f := kmsg.NewPtrFetchRequest()
	f.Version = 11
	f.MinBytes, f.MaxWaitMillis, f.MaxBytes = minBytes, maxWait, maxBytes
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	for _, p := range parts {
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = p, offset, partMax
		ft.Partitions = append(ft.Partitions, fp)
	}
	f.Topics = append(f.Topics, ft)
	return f
}

func TestFetchLongPoll(t *testing.T) {
	l := openLog(t, "")
	if err := l.CreateTopic("lp", log.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, l, nil)
	r := dialRaw(t, ts.addr)

	// Nothing there: the answer comes after MaxWait, empty, with the HWM.
	start := time.Now()
	resp := r.roundTrip(fetchReq("lp", []int32{0, 1}, 0, 1, 300, 1<<20, 1<<20), 1).(*kmsg.FetchResponse)
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Fatalf("empty long poll answered after %v, want ~300ms", d)
	}
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || len(p.RecordBatches) != 0 || p.HighWatermark != 0 {
		t.Fatalf("empty fetch: %+v", p)
	}

	// Data arriving during the wait ends it at once.
	go func() {
		time.Sleep(200 * time.Millisecond)
		l.Append(context.Background(), "lp", 1, (&batchBuilder{}).one("late"))
	}()
	start = time.Now()
	resp = r.roundTrip(fetchReq("lp", []int32{0, 1}, 0, 1, 10000, 1<<20, 1<<20), 2).(*kmsg.FetchResponse)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("long poll answered after %v, data came at 200ms", d)
	}
	p1 := resp.Topics[0].Partitions[1]
	recs, err := batch.Records(p1.RecordBatches)
	if err != nil || len(recs) != 1 || string(recs[0].Value) != "late" || p1.HighWatermark != 1 || p1.LastStableOffset != 1 {
		t.Fatalf("partition 1: %v %+v", err, p1)
	}

	// MinBytes above what is there: waits the full MaxWait, then answers
	// with what there is.
	start = time.Now()
	resp = r.roundTrip(fetchReq("lp", []int32{1}, 0, 1<<20, 300, 1<<20, 1<<20), 3).(*kmsg.FetchResponse)
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("MinBytes not honoured: answered after %v", d)
	}
	if len(resp.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatal("no data after MaxWait")
	}

	// Max bytes: many batches, a small partition limit returns whole
	// batches only, at least one.
	for i := 0; i < 20; i++ {
		l.Append(context.Background(), "lp", 0, (&batchBuilder{}).one("0123456789012345678901234567890123456789"))
	}
	resp = r.roundTrip(fetchReq("lp", []int32{0}, 0, 1, 100, 1<<20, 10), 4).(*kmsg.FetchResponse)
	data := resp.Topics[0].Partitions[0].RecordBatches
	hs, err := batch.ValidateAll(data)
	if err != nil || len(hs) != 1 {
		t.Fatalf("partition max 10 bytes: %d batches, %v", len(hs), err)
	}
	resp = r.roundTrip(fetchReq("lp", []int32{0}, 0, 1, 100, 1<<20, 1<<20), 5).(*kmsg.FetchResponse)
	if hs, err := batch.ValidateAll(resp.Topics[0].Partitions[0].RecordBatches); err != nil || len(hs) != 20 {
		t.Fatalf("full fetch: %d batches, %v", len(hs), err)
	}

	// Out of range and unknown partitions answer at once with an error.
	start = time.Now()
	resp = r.roundTrip(fetchReq("lp", []int32{0}, 999, 1, 10000, 1<<20, 1<<20), 6).(*kmsg.FetchResponse)
	if c := resp.Topics[0].Partitions[0].ErrorCode; c != codeOffsetOutOfRange || time.Since(start) > 2*time.Second {
		t.Fatalf("offset out of range: code %d after %v", c, time.Since(start))
	}
	resp = r.roundTrip(fetchReq("nope", []int32{0}, 0, 1, 10000, 1<<20, 1<<20), 7).(*kmsg.FetchResponse)
	if c := resp.Topics[0].Partitions[0].ErrorCode; c != codeUnknownTopicOrPartition {
		t.Fatalf("unknown topic: code %d", c)
	}
	if ts.Stats().FetchBytes == 0 {
		t.Fatal("FetchBytes not counted")
	}
}
