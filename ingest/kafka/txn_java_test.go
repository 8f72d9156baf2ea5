package kafka

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel/runnel/log"
)

// TestJavaTransactions runs Apache Kafka's kafka-transactions (list,
// describe) on an open transaction, and the Java producer with a
// transactional id (kafka-producer-perf-test --transactional-id), whose
// records a read_committed consumer then reads.
func TestJavaTransactions(t *testing.T) {
	java, cp := javaClasspath(t)
	ts := startServer(t, openLog(t, ""), nil)
	ctx := testCtx(t, 3*time.Minute)
	if err := ts.log.CreateTopic("jtx", log.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	p := newClient(t, ts.addr, kgo.TransactionalID("go-open"), kgo.DefaultProduceTopic("jtx"))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	out := runJava(t, java, cp, "", 60*time.Second, "org.apache.kafka.tools.TransactionsCommand",
		"--bootstrap-server", ts.addr, "list")
	if !strings.Contains(out, "go-open") || !strings.Contains(out, "Ongoing") {
		t.Fatalf("kafka-transactions list:\n%s", out)
	}
	out = runJava(t, java, cp, "", 60*time.Second, "org.apache.kafka.tools.TransactionsCommand",
		"--bootstrap-server", ts.addr, "describe", "--transactional-id", "go-open")
	if !strings.Contains(out, "Ongoing") || !strings.Contains(out, "jtx-") {
		t.Fatalf("kafka-transactions describe:\n%s", out)
	}
	if err := p.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	out = runJava(t, java, cp, "", 90*time.Second, "org.apache.kafka.tools.ProducerPerformance",
		"--topic", "jtx", "--num-records", "2000", "--record-size", "100", "--throughput", "-1",
		"--transactional-id", "java-perf", "--transaction-duration-ms", "50",
		"--producer-props", "bootstrap.servers="+ts.addr)
	if !strings.Contains(out, "2000 records sent") {
		t.Fatalf("kafka-producer-perf-test --transactional-id:\n%s", out)
	}
	got := consumeAll(t, ctx, ts.addr, "jtx", true)
	if len(got) != 2000 {
		t.Fatalf("read_committed got %d records, want the producer's 2000 (not the aborted one)", len(got))
	}
	out = runJava(t, java, cp, "", 60*time.Second, "org.apache.kafka.tools.TransactionsCommand",
		"--bootstrap-server", ts.addr, "describe", "--transactional-id", "java-perf")
	if !strings.Contains(out, "CompleteCommit") {
		t.Fatalf("kafka-transactions describe after the Java producer:\n%s", out)
	}
}
