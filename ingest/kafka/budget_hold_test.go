package kafka

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
)

// TestParkedFetchesHoldNoBudget: a Fetch parked for its max_wait does not
// hold its frame's bytes in the request budget once decoded. Two Fetches
// padded to 600 KiB (a long rack id), each waiting up to a minute for
// data that never comes, filled a 1 MiB budget, and every other request
// of every client waited behind them for that minute.
func TestParkedFetchesHoldNoBudget(t *testing.T) {
	l := openLog(t, t.TempDir())
	if err := l.CreateTopic("quiet", log.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := l.CreateTopic("busy", log.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, l, func(o *Options) { o.MaxQueuedRequestBytes = 1 << 20 })
	for i := range 2 {
		rc := dialRaw(t, s.addr)
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(12)
		req.MaxWaitMillis = 60_000
		req.MinBytes = 1 << 30
		req.Rack = strings.Repeat("r", 600<<10)
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = "quiet"
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.PartitionMaxBytes = 1 << 20
		ft.Partitions = append(ft.Partitions, fp)
		req.Topics = append(req.Topics, ft)
		rc.write(frame(req, int32(i)))
	}
	time.Sleep(500 * time.Millisecond) // both parked
	cl := newClient(t, s.addr, kgo.DefaultProduceTopic("busy"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := cl.ProduceSync(ctx, kgo.StringRecord("through")).FirstErr(); err != nil {
		t.Fatalf("produce beside two parked 600 KiB fetches: %v after %v", err, time.Since(start))
	}
	if held := s.Stats().QueuedRequestBytes; held >= 600<<10 {
		t.Fatalf("%d request bytes held while the fetches wait", held)
	}
}
