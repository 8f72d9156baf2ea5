package kafka_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/sync/kafka/kafkatest"
)

// txnBatch is a transactional batch of producer pid holding vals.
func txnBatch(pid int64, seq int32, vals ...string) []byte {
	var b batch.Builder
	b.SetProducer(pid, 0, seq)
	for _, v := range vals {
		b.Add(1700000000000, nil, []byte(v), nil)
	}
	return batch.SetAttributes(b.Bytes(), batch.AttrTransactional)
}

func plainBatch(vals ...string) []byte {
	var b batch.Builder
	for _, v := range vals {
		b.Add(1700000000000, nil, []byte(v), nil)
	}
	return b.Bytes()
}

// TestForwardCommittedOnly forwards a partition holding a committed, an
// aborted and an open transaction: upstream gets the committed records and
// the plain ones in order, no marker, nothing of the aborted transaction,
// and the open one only once it commits.
func TestForwardCommittedOnly(t *testing.T) {
	t.Run("kfake", func(t *testing.T) { forwardCommittedOnly(t, newKfake(t).ListenAddrs()) })
	t.Run("kafka", func(t *testing.T) {
		b := kafkatest.StartOpts(t, kafkatest.Options{Partitions: 1})
		forwardCommittedOnly(t, []string{b.Addr()})
	})
}

func forwardCommittedOnly(t *testing.T, brokers []string) {
	lg, err := log.Open(&log.Options{Dir: t.TempDir(), MinFreeBytes: -1,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	ctx := context.Background()
	if err := lg.CreateTopic("tx", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	appendAll := func(bs ...[]byte) {
		for _, b := range bs {
			if _, err := lg.Append(ctx, "tx", 0, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendAll(
		txnBatch(1, 0, "a0", "a1"),
		txnBatch(2, 0, "x0"), // aborted below
		txnBatch(1, 2, "a2"),
		batch.Marker(1, 0, true, 1700000000000),
		txnBatch(2, 1, "x1"),
		batch.Marker(2, 0, false, 1700000000000),
		plainBatch("p0"),
		txnBatch(3, 0, "o0"), // open
		plainBatch("p1"),
	)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("site-a.tx"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	startForwarder(t, lg, fwdConfig{brokers: brokers, routes: []forward.Route{{
		Name: "main", Topics: []string{"tx"}, Target: "{site}.{topic}",
	}}})
	var got []string
	read := func(want int) {
		deadline := time.Now().Add(15 * time.Second)
		for len(got) < want && time.Now().Before(deadline) {
			pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
			cancel()
		}
		// A moment more: nothing else may come.
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		cancel()
	}
	read(4)
	if s := strings.Join(got, ","); s != "a0,a1,a2,p0" {
		t.Fatalf("upstream got %s, want a0,a1,a2,p0 (stopped before the open transaction)", s)
	}
	appendAll(batch.Marker(3, 0, true, 1700000000000))
	read(6)
	if s := strings.Join(got, ","); s != "a0,a1,a2,p0,o0,p1" {
		t.Fatalf("upstream got %s after the commit, want a0,a1,a2,p0,o0,p1", s)
	}
}
