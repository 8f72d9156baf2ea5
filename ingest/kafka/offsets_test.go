package kafka

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
)

func TestListOffsetsByTimestamp(t *testing.T) {
	ts := startServer(t, openLog(t, ""), nil)
	ctx := testCtx(t, 20*time.Second)
	if err := ts.log.CreateTopic("ts", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	p := newClient(t, ts.addr, kgo.DefaultProduceTopic("ts"), kgo.ProducerLinger(20*time.Millisecond))
	base := time.UnixMilli(1_700_000_000_000)
	// 100 records 1s apart; several records share a batch, so the lookup
	// must find the exact record, not just the batch.
	var rs []*kgo.Record
	for i := 0; i < 100; i++ {
		rs = append(rs, &kgo.Record{Value: []byte(fmt.Sprint(i)), Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	for i := 0; i < 100; i += 10 {
		if err := p.ProduceSync(ctx, rs[i:i+10]...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	lookup := func(ts int64) (int64, int64) {
		t.Helper()
		req := kmsg.NewPtrListOffsetsRequest()
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "ts"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = ts
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		got := resp.Topics[0].Partitions[0]
		if got.ErrorCode != 0 {
			t.Fatalf("ListOffsets(%d): error %d", ts, got.ErrorCode)
		}
		return got.Offset, got.Timestamp
	}
	for _, tc := range []struct {
		ts         int64
		off, recTs int64
	}{
		{-2, 0, -1},
		{-1, 100, -1},
		{base.UnixMilli(), 0, base.UnixMilli()},
		{base.UnixMilli() - 5000, 0, base.UnixMilli()},
		{base.Add(37 * time.Second).UnixMilli(), 37, base.Add(37 * time.Second).UnixMilli()},
		{base.Add(37*time.Second).UnixMilli() - 1, 37, base.Add(37 * time.Second).UnixMilli()},
		{base.Add(99 * time.Second).UnixMilli(), 99, base.Add(99 * time.Second).UnixMilli()},
		{base.Add(100 * time.Second).UnixMilli(), -1, -1},
	} {
		off, recTs := lookup(tc.ts)
		if off != tc.off || recTs != tc.recTs {
			t.Errorf("ListOffsets(%d) = %d@%d, want %d@%d", tc.ts, off, recTs, tc.off, tc.recTs)
		}
	}
	// Consuming from a timestamp starts at the exact record.
	c := newClient(t, ts.addr, kgo.ConsumeTopics("ts"), kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(base.Add(42*time.Second).UnixMilli())))
	fs := c.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	if recs := fs.Records(); len(recs) == 0 || string(recs[0].Value) != "42" {
		t.Fatalf("consume from timestamp: first record %v", recs)
	}
}
