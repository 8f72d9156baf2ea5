package kafka

import (
	"context"
	"encoding/binary"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/runnel/runnel/log"
)

// parkedFetch is a Fetch (v12) of partition 0 of topic that waits up to
// maxWait ms for 1 GiB: it stays parked until maxWait, as no test writes
// that much.
func parkedFetch(topic string, maxWait int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.MaxWaitMillis = maxWait
	req.MinBytes = 1 << 30
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	return req
}

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
		req := parkedFetch("quiet", 60_000)
		req.Rack = strings.Repeat("r", 600<<10)
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

// TestConnFetchesBounded: a connection that pipelines Fetches which wait
// for data that never comes has at most maxConnFetches of them in flight
// (the reader waits for a turn), and a wait longer than MaxFetchWait is cut
// to it, so every one is answered, empty, in order. 20 such Fetches held
// 20 goroutines and their requests until their max_wait_ms ran out.
func TestConnFetchesBounded(t *testing.T) {
	l := openLog(t, t.TempDir())
	if err := l.CreateTopic("quiet", log.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, l, func(o *Options) { o.MaxFetchWait = time.Second })
	rc := dialRaw(t, s.addr)
	if err := rc.apiVersions(); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	const n = 20
	for i := range n {
		rc.write(frame(parkedFetch("quiet", math.MaxInt32), int32(100+i)))
	}
	time.Sleep(500 * time.Millisecond) // the first turns parked, the reader waiting
	// maxConnFetches (4) goroutines, give or take the runtime's own; one
	// per Fetch would be 20.
	if grown := runtime.NumGoroutine() - before; grown > n/2 {
		t.Fatalf("%d goroutines more with %d Fetches parked on one connection (at most %d Fetches in flight)", grown, n, maxConnFetches)
	}
	for i := range n {
		body, err := rc.readFrame()
		if err != nil {
			t.Fatalf("Fetch %d of %d not answered: %v", i+1, n, err)
		}
		if corr := int32(binary.BigEndian.Uint32(body)); corr != int32(100+i) {
			t.Fatalf("answer %d has correlation id %d", i, corr)
		}
	}
}

// TestUnauthenticatedFramesOwnBudget: frames before SASL authentication
// draw on a budget of their own (an eighth of the request budget, at
// least one 512 KiB frame), so peers without credentials that announce
// frames and send nothing cannot hold back a logged-in producer. Three
// such 400 KiB frames filled a 1 MiB budget, and the producer's request
// waited behind them until their bodies timed out.
func TestUnauthenticatedFramesOwnBudget(t *testing.T) {
	l := openLog(t, t.TempDir())
	s := startServer(t, l, func(o *Options) {
		o.MaxQueuedRequestBytes = 1 << 20
		o.SASLPlain = map[string]string{"edge": "s3cret"}
	})
	for range 3 {
		rc := dialRaw(t, s.addr)
		rc.write([]byte{0, 6, 0x40, 0}) // a 400 KiB frame announced, nothing sent
	}
	time.Sleep(300 * time.Millisecond)
	cl := newClient(t, s.addr, kgo.SASL(plain.Auth{User: "edge", Pass: "s3cret"}.AsMechanism()), kgo.DefaultProduceTopic("t"), kgo.AllowAutoTopicCreation())
	// Shorter than the connect timeout (10 s) that ends the frames above.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := cl.ProduceSync(ctx, kgo.StringRecord("through")).FirstErr(); err != nil {
		t.Fatalf("a logged-in produce beside three unauthenticated 400 KiB frames: %v after %v", err, time.Since(start))
	}
}
