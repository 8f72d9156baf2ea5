package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/logtest"
)

// lossyLog appends for real but reports every nth success as a retriable
// failure, as if the response had been lost: the client retries a batch
// that is already stored.
type lossyLog struct {
	log.Log
	every int64
	n     atomic.Int64
	lost  atomic.Int64
}

func (l *lossyLog) AppendAsync(topic string, partition int32, b []byte, done func(int64, error)) {
	l.Log.AppendAsync(topic, partition, b, func(base int64, err error) {
		if err == nil && l.n.Add(1)%l.every == 0 {
			l.lost.Add(1)
			err = log.ErrClosed // answered NOT_LEADER_OR_FOLLOWER: retriable
		}
		done(base, err)
	})
}

func TestIdempotentProducerRetries(t *testing.T) {
	ll := &lossyLog{Log: openLog(t, ""), every: 5}
	ts := startServer(t, ll, nil)
	ctx := testCtx(t, 30*time.Second)
	if err := ll.CreateTopic("idem", log.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	p := newClient(t, ts.addr, kgo.DefaultProduceTopic("idem"), kgo.RetryBackoffFn(func(int) time.Duration { return time.Millisecond }),
		kgo.ProducerLinger(time.Millisecond), kgo.MaxBufferedRecords(50), kgo.MetadataMinAge(10*time.Millisecond))
	const n = 2000
	var failed atomic.Int64
	for i := 0; i < n; i++ {
		p.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i % 2)), Value: []byte(fmt.Sprint(i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if failed.Load() > 0 {
		t.Fatalf("%d records failed", failed.Load())
	}
	if ll.lost.Load() == 0 {
		t.Fatal("no response was lost: the test did not exercise retries")
	}
	// Exactly n records, each once, in produce order per partition.
	c := newClient(t, ts.addr, kgo.ConsumeTopics("idem"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]bool{}
	last := map[int32]int{0: -1, 1: -1}
	for len(seen) < n {
		fs := c.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if seen[string(r.Value)] {
				t.Fatalf("duplicate record %s at offset %d", r.Value, r.Offset)
			}
			seen[string(r.Value)] = true
			var v int
			fmt.Sscan(string(r.Value), &v)
			if v <= last[r.Partition] {
				t.Fatalf("partition %d: %d after %d", r.Partition, v, last[r.Partition])
			}
			last[r.Partition] = v
		})
	}
	for _, pt := range []int32{0, 1} {
		_, hwm, _ := ll.Offsets("idem", pt)
		if hwm != n/2 {
			t.Fatalf("partition %d holds %d records, want %d", pt, hwm, n/2)
		}
	}
	t.Logf("%d lost responses retried without duplicates", ll.lost.Load())
}

func TestInitProducerIDNeverReused(t *testing.T) {
	dir := t.TempDir()
	var ids []int64
	for round := 0; round < 2; round++ {
		l := openLog(t, dir)
		ts := startServer(t, l, nil)
		cl := newClient(t, ts.addr)
		for i := 0; i < 3; i++ {
			resp, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(context.Background(), cl)
			if err != nil || resp.ErrorCode != 0 {
				t.Fatalf("InitProducerID: %v %v", err, resp)
			}
			ids = append(ids, resp.ProducerID)
		}
		cl.Close()
		ts.Close()
		l.Close()
	}
	seen := map[int64]bool{}
	for _, id := range ids {
		if seen[id] || id < 0 {
			t.Fatalf("producer id %d reused or negative: %v", id, ids)
		}
		seen[id] = true
	}
}

func TestAcksZero(t *testing.T) {
	ts := startServer(t, openLog(t, ""), nil)
	ctx := testCtx(t, 20*time.Second)
	p := newClient(t, ts.addr, kgo.DefaultProduceTopic("a0"), kgo.AllowAutoTopicCreation(),
		kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	const n = 300
	for i := 0; i < n; i++ {
		p.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// acks=0 has no response; wait until the log holds everything.
	for {
		if _, hwm, err := ts.log.Offsets("a0", 0); err == nil && hwm == n {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("records produced with acks=0 never arrived")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A request on the same connection after acks=0 still gets answered.
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, p); err != nil {
		t.Fatal(err)
	}
}

// TestProduceErrorMapping checks each log error's Kafka code.
func TestProduceErrorMapping(t *testing.T) {
	ml := logtest.New(t)
	ts := startServer(t, ml, func(o *Options) { o.AutoCreateTopics = false })
	if err := ml.CreateTopic("m", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	r := dialRaw(t, ts.addr)
	goodBatch := func() []byte { return (&batchBuilder{}).one("v") }
	cases := []struct {
		err  error
		want int16
	}{
		{nil, codeNone},
		{log.ErrDiskFull, codeKafkaStorageError},
		{fmt.Errorf("%w: fsync: EIO", log.ErrReadOnly), codeKafkaStorageError},
		{log.ErrOutOfOrderSequence, codeOutOfOrderSequence},
		{fmt.Errorf("%w: crc", log.ErrCorruptBatch), codeCorruptMessage},
		{log.ErrBatchTooLarge, codeMessageTooLarge},
		{log.ErrInvalidProducerEpoch, codeInvalidProducerEpoch},
		{log.ErrUnknownPartition, codeUnknownTopicOrPartition},
		{errors.New("surprise"), codeUnknownServerError},
	}
	for i, tc := range cases {
		ml.SetAppendFault(func(string, int32) error { return tc.err })
		req := kmsg.NewPtrProduceRequest()
		req.Version = 9
		req.Acks = -1
		req.TimeoutMillis = 1000
		req.Topics = []kmsg.ProduceRequestTopic{{Topic: "m", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: goodBatch()}}}}
		resp := r.roundTrip(req, int32(i)).(*kmsg.ProduceResponse)
		got := resp.Topics[0].Partitions[0]
		if got.ErrorCode != tc.want {
			t.Errorf("%v: code %d, want %d", tc.err, got.ErrorCode, tc.want)
		}
		if tc.err != nil && got.ErrorMessage == nil {
			t.Errorf("%v: no error message", tc.err)
		}
	}
	ml.SetAppendFault(nil)
	// Unknown topic without auto-creation.
	req := kmsg.NewPtrProduceRequest()
	req.Version = 7
	req.Acks = 1
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: "nope", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: goodBatch()}}}}
	resp := r.roundTrip(req, 100).(*kmsg.ProduceResponse)
	if c := resp.Topics[0].Partitions[0].ErrorCode; c != codeUnknownTopicOrPartition {
		t.Fatalf("unknown topic: code %d", c)
	}
	// A duplicate is a success with the original base offset.
	ml.SetAppendFault(func(string, int32) error { return nil })
	b1 := (&batchBuilder{pid: 7}).one("x")
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: "m", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: b1}}}}
	first := r.roundTrip(req, 101).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	b2 := (&batchBuilder{pid: 7}).one("x")
	req.Topics[0].Partitions[0].Records = b2
	dup := r.roundTrip(req, 102).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	if first.ErrorCode != 0 || dup.ErrorCode != 0 || dup.BaseOffset != first.BaseOffset {
		t.Fatalf("duplicate: first %+v dup %+v", first, dup)
	}
}

// TestInitProducerIDAboveTheLogs: a box whose data came back without its
// meta.db (replicate's restore) starts its producer id counter again; the
// ids still in the log's idempotence state must not be handed out, or a
// new producer's first batches would be answered as duplicates of the old
// producer's and never stored.
func TestInitProducerIDAboveTheLogs(t *testing.T) {
	l := openLog(t, "")
	if err := l.CreateTopic("t", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	var b batch.Builder
	b.SetProducer(4242, 0, 0)
	b.Add(1000, nil, []byte("restored"), nil)
	if _, err := l.Append(context.Background(), "t", 0, b.Bytes()); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, l, nil)
	cl := newClient(t, ts.addr)
	resp, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(context.Background(), cl)
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("InitProducerID: %v %v", err, resp)
	}
	if resp.ProducerID <= 4242 {
		t.Fatalf("producer id %d handed out: the log holds producer 4242's state", resp.ProducerID)
	}
}
