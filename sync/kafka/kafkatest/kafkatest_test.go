package kafkatest_test

import (
	"context"
	"testing"
	"time"

	"github.com/runnel/runnel/sync/kafka/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestStartProduceRestart starts a broker, produces and consumes, kills
// it, restarts it and reads the same records back (data survived).
func TestStartProduceRestart(t *testing.T) {
	b := kafkatest.Start(t)
	b.CreateTopic("t", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := 0; i < 10; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	b.Stop()
	if b.Running() {
		t.Fatal("running after Stop")
	}
	b.Restart()
	if !b.Running() {
		t.Fatal("not running after Restart")
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics("t"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	n := 0
	for n < 10 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of 10 records: %v", n, ctx.Err())
		}
		fs.EachRecord(func(*kgo.Record) { n++ })
	}
	if n != 10 {
		t.Fatalf("got %d records, want 10", n)
	}
}
