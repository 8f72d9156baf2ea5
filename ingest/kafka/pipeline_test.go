package kafka

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
)

// slowLog delays every append's completion, as a slow fsync would.
type slowLog struct {
	log.Log
	delay time.Duration
}

func (l *slowLog) AppendAsync(topic string, partition int32, b []byte, done func(int64, error)) {
	l.Log.AppendAsync(topic, partition, b, func(base int64, err error) {
		time.AfterFunc(l.delay, func() { done(base, err) })
	})
}

// TestProducePipelined: requests on one connection are read and appended
// without waiting for earlier ones to be durable; responses come back in
// request order with offsets in append order.
func TestProducePipelined(t *testing.T) {
	sl := &slowLog{Log: openLog(t, ""), delay: 400 * time.Millisecond}
	if err := sl.CreateTopic("pipe", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, sl, nil)
	r := dialRaw(t, ts.addr)
	const n = 8
	var all []byte
	for i := 0; i < n; i++ {
		req := kmsg.NewPtrProduceRequest()
		req.Version = 9
		req.Acks = -1
		req.TimeoutMillis = 5000
		req.Topics = []kmsg.ProduceRequestTopic{{Topic: "pipe", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: (&batchBuilder{}).one("a", "b")}}}}
		all = append(all, frame(req, int32(100+i))...)
	}
	start := time.Now()
	r.write(all)
	for i := 0; i < n; i++ {
		body, err := r.readFrame()
		if err != nil {
			t.Fatal(err)
		}
		corr := int32(uint32(body[0])<<24 | uint32(body[1])<<16 | uint32(body[2])<<8 | uint32(body[3]))
		if corr != int32(100+i) {
			t.Fatalf("response %d has correlation id %d", i, corr)
		}
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		if err := resp.ReadFrom(body[5:]); err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.BaseOffset != int64(2*i) {
			t.Fatalf("response %d: code %d base %d, want base %d", i, p.ErrorCode, p.BaseOffset, 2*i)
		}
	}
	if d := time.Since(start); d > time.Duration(n/2)*sl.delay {
		t.Fatalf("%d produces took %v: not pipelined (each waits %v)", n, d, sl.delay)
	}
}
