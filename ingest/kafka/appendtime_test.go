package kafka

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestLogAppendTime: a topic created with message.timestamp.type
// LogAppendTime (Kafka's topic config) gives consumers the time each batch
// was appended, marked as such, while a CreateTime topic keeps the
// producer's; the produce response carries that append time
// (log_append_time_ms; -1 for CreateTime), a duplicate's answer the
// original's; DescribeConfigs reports the setting; an unknown value is
// refused.
func TestLogAppendTime(t *testing.T) {
	ts := startServer(t, openLog(t, ""), nil)
	ctx := testCtx(t, 30*time.Second)
	cl := newClient(t, ts.addr)
	create := func(topic, tsType string) int16 {
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 1, 1
		if tsType != "" {
			c := kmsg.NewCreateTopicsRequestTopicConfig()
			c.Name, c.Value = "message.timestamp.type", &tsType
			rt.Configs = append(rt.Configs, c)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || len(resp.Topics) != 1 {
			t.Fatalf("CreateTopics %s: %v", topic, err)
		}
		return resp.Topics[0].ErrorCode
	}
	if code := create("stamped", "LogAppendTime"); code != 0 {
		t.Fatalf("create stamped: code %d", code)
	}
	if code := create("plain", ""); code != 0 {
		t.Fatalf("create plain: code %d", code)
	}
	if code := create("bad", "WallClock"); code == 0 {
		t.Fatal("message.timestamp.type=WallClock accepted")
	}
	dreq := kmsg.NewPtrDescribeConfigsRequest()
	dr := kmsg.NewDescribeConfigsRequestResource()
	dr.ResourceType, dr.ResourceName, dr.ConfigNames = kmsg.ConfigResourceTypeTopic, "stamped", []string{"message.timestamp.type"}
	dreq.Resources = append(dreq.Resources, dr)
	dresp, err := dreq.RequestWith(ctx, cl)
	if err != nil || len(dresp.Resources) != 1 || len(dresp.Resources[0].Configs) != 1 ||
		dresp.Resources[0].Configs[0].Value == nil || *dresp.Resources[0].Configs[0].Value != "LogAppendTime" {
		t.Fatalf("DescribeConfigs: %v %+v", err, dresp)
	}

	producerTs := time.UnixMilli(1_000_000)
	before := time.Now().Add(-time.Second)
	for _, topic := range []string{"stamped", "plain"} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v"), Timestamp: producerTs}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		topic    string
		appended bool
	}{{"stamped", true}, {"plain", false}} {
		cons := newClient(t, ts.addr, kgo.ConsumeTopics(c.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		fs := cons.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatalf("%s: %v", c.topic, err)
		}
		recs := fs.Records()
		if len(recs) != 1 {
			t.Fatalf("%s: %d records", c.topic, len(recs))
		}
		r := recs[0]
		if c.appended {
			if r.Attrs.TimestampType() != 1 || r.Timestamp.Before(before) || r.Timestamp.After(time.Now().Add(time.Second)) {
				t.Fatalf("%s: timestamp %v type %d, want the append time (type 1)", c.topic, r.Timestamp, r.Attrs.TimestampType())
			}
		} else if r.Attrs.TimestampType() != 0 || !r.Timestamp.Equal(producerTs) {
			t.Fatalf("%s: timestamp %v type %d, want the producer's %v (type 0)", c.topic, r.Timestamp, r.Attrs.TimestampType(), producerTs)
		}
	}

	// The produce response: log_append_time_ms is the time the batch was
	// stamped with (what consumers read), -1 for CreateTime; a duplicate
	// (idempotent retry) answers the original's offset and time.
	produce := func(topic string, bb *batchBuilder) kmsg.ProduceResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 5000
		req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: bb.one("raw")}}}}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("produce to %s: %v %+v", topic, err, resp)
		}
		return resp.Topics[0].Partitions[0]
	}
	before = time.Now()
	first := produce("stamped", &batchBuilder{pid: 9, ts: 1_000_000})
	after := time.Now()
	if first.LogAppendTime < before.UnixMilli() || first.LogAppendTime > after.UnixMilli() {
		t.Fatalf("stamped: log_append_time_ms %d, want the append time in [%d, %d]", first.LogAppendTime, before.UnixMilli(), after.UnixMilli())
	}
	time.Sleep(20 * time.Millisecond)
	if dup := produce("stamped", &batchBuilder{pid: 9, ts: 1_000_000}); dup.BaseOffset != first.BaseOffset || dup.LogAppendTime != first.LogAppendTime {
		t.Fatalf("duplicate: offset %d time %d, want the original's %d and %d", dup.BaseOffset, dup.LogAppendTime, first.BaseOffset, first.LogAppendTime)
	}
	if plain := produce("plain", &batchBuilder{ts: 1_000_000}); plain.LogAppendTime != -1 {
		t.Fatalf("plain: log_append_time_ms %d, want -1 (CreateTime)", plain.LogAppendTime)
	}
	cons := newClient(t, ts.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"stamped": {0: kgo.NewOffset().At(first.BaseOffset)}}))
	fs := cons.PollFetches(ctx)
	if err := fs.Err(); err != nil || len(fs.Records()) == 0 {
		t.Fatalf("fetch stamped@%d: %v", first.BaseOffset, err)
	}
	if r := fs.Records()[0]; r.Offset != first.BaseOffset || r.Timestamp.UnixMilli() != first.LogAppendTime {
		t.Fatalf("consumer reads offset %d at %d, the produce response said %d", r.Offset, r.Timestamp.UnixMilli(), first.LogAppendTime)
	}
}
