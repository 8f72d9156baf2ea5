package kafka

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log/batch"
)

// TestProduceUndecodableRecords: a batch whose CRC is right but whose
// records do not decode (here: an offset delta that skips) is refused with
// INVALID_RECORD (87, not retriable; CORRUPT_MESSAGE before produce v8) and
// a message naming the record, nothing of it is stored, and the connection
// and partition go on working.
func TestProduceUndecodableRecords(t *testing.T) {
	ts := startServer(t, openLog(t, ""), nil)
	ctx := testCtx(t, 20*time.Second)
	good := newClient(t, ts.addr, kgo.DefaultProduceTopic("bad"), kgo.AllowAutoTopicCreation())
	if err := good.ProduceSync(ctx, &kgo.Record{Value: []byte("before")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var b batch.Builder
	b.Add(1, nil, []byte("a"), nil)
	b.Add(2, nil, []byte("b"), nil)
	bad := b.Bytes()
	// Second record's offset delta (attrs, tsDelta, offDelta after its
	// length byte): 1 → 5.
	second := batch.HeaderSize + 1 + int(bad[batch.HeaderSize])/2
	bad[second+3] = 10
	binary.BigEndian.PutUint32(bad[batch.OffCRC:], batch.Checksum(bad))
	if _, err := batch.Validate(bad); err != nil {
		t.Fatalf("crafted batch must pass the CRC check: %v", err)
	}

	req := kmsg.NewPtrProduceRequest()
	req.Version = 9
	req.Acks = -1
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "bad"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = 0
	rp.Records = bad
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	r := dialRaw(t, ts.addr)
	resp := r.roundTrip(req, 7).(*kmsg.ProduceResponse)
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != codeInvalidRecord || p.ErrorMessage == nil || !strings.Contains(*p.ErrorMessage, "record 1: batch: malformed record: offset delta 5, want 1") {
		t.Fatalf("got error %d %v, want INVALID_RECORD naming record 1", p.ErrorCode, p.ErrorMessage)
	}
	req.Version = 7
	if p := r.roundTrip(req, 8).(*kmsg.ProduceResponse).Topics[0].Partitions[0]; p.ErrorCode != codeCorruptMessage {
		t.Fatalf("produce v7: error %d, want CORRUPT_MESSAGE", p.ErrorCode)
	}

	if err := good.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cons := newClient(t, ts.addr, kgo.ConsumeTopics("bad"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	for len(got) < 2 {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if len(got) != 2 || got[0] != "before" || got[1] != "after" {
		t.Fatalf("stored %q, want [before after]", got)
	}
}
