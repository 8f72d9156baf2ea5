package kafkatest_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/runnel/runnel/sync/kafka/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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

// TestHost starts a broker on another address: it listens and advertises
// there (Metadata names it, so clients that can reach only that address
// work), and not on 127.0.0.1.
func TestHost(t *testing.T) {
	const host = "127.0.0.2"
	b := kafkatest.StartOpts(t, kafkatest.Options{Host: host})
	h, port, err := net.SplitHostPort(b.Addr())
	if err != nil || h != host {
		t.Fatalf("Addr %q, want host %s (%v)", b.Addr(), host, err)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), time.Second); err == nil {
		c.Close()
		t.Fatalf("broker also listens on 127.0.0.1:%s", port)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic("h"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 1 || md.Brokers[0].Host != host || strconv.Itoa(int(md.Brokers[0].Port)) != port {
		t.Fatalf("Metadata advertises %+v, want %s", md.Brokers, b.Addr())
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}
