package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel/runnel/sync/kafka/kafkatest"
)

// txnBench is one run of the transactional produce load.
type txnBench struct {
	txns    int64
	records int64
	elapsed time.Duration
}

func (r txnBench) txnsPerSec() float64 { return float64(r.txns) / r.elapsed.Seconds() }

// txnLoad runs producers transactional producers (franz-go, defaults but
// the transactional id), each committing txns transactions of 100
// records of 100 bytes to topic.
func txnLoad(t *testing.T, addr, topic string, producers int, txns int) txnBench {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	value := []byte(strings.Repeat("x", 100))
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	clients := make([]*kgo.Client, producers)
	for i := range clients {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
			kgo.TransactionalID(fmt.Sprintf("bench-%s-%d-%d", topic, i, time.Now().UnixNano())))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		clients[i] = cl
		// Warm up: init the producer id and the connections.
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	for _, cl := range clients {
		wg.Add(1)
		go func(cl *kgo.Client) {
			defer wg.Done()
			for n := 0; n < txns; n++ {
				if err := cl.BeginTransaction(); err != nil {
					errs <- err
					return
				}
				for i := 0; i < 100; i++ {
					cl.Produce(ctx, &kgo.Record{Value: value}, nil)
				}
				if err := cl.Flush(ctx); err != nil {
					errs <- err
					return
				}
				if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
					errs <- err
					return
				}
			}
		}(cl)
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatalf("transactional load on %s: %v", addr, err)
	}
	return txnBench{txns: int64(producers * txns), records: int64(producers * txns * 100), elapsed: elapsed}
}

// TestBenchTxnVsKafka compares transactional produce (100 records of 100
// bytes per transaction, commit each) on runnel (defaults: fsync before
// ack) and Apache Kafka (single node, its launcher's JVM flags and
// defaults) in the same run, with 1 and 4 producers.
func TestBenchTxnVsKafka(t *testing.T) {
	if os.Getenv("RUNNEL_BENCH_TXN") != "1" {
		t.Skip("set RUNNEL_BENCH_TXN=1 (make bench-txn) to run the comparison")
	}
	if _, err := kafkatest.Libs(); err != nil {
		t.Fatalf("Apache Kafka's jars: %v (sync/kafka/kafkatest/fetch.sh)", err)
	}
	txns := int(envInt("RUNNEL_BENCH_TXNS", 300))
	cells := []int{1, 4}
	rs := startRunnel(t, 4)
	var rr []txnBench
	for _, p := range cells {
		rr = append(rr, txnLoad(t, rs.Addr(), fmt.Sprintf("txn-%d", p), p, txns))
	}
	rs.Stop(t)
	kb := kafkatest.StartOpts(t, kafkatest.Options{Partitions: 4, StandardJVM: true})
	var kr []txnBench
	for _, p := range cells {
		kr = append(kr, txnLoad(t, kb.Addr(), fmt.Sprintf("txn-%d", p), p, txns))
	}
	kb.Stop()
	var b strings.Builder
	fmt.Fprintf(&b, "transactional produce: %d transactions per producer, 100 records of 100 B each, commit each; franz-go defaults\n", txns)
	fmt.Fprintf(&b, "runnel: defaults (fsync before ack); Apache Kafka %s: single node, JVM %s, defaults (no fsync per write)\n", kafkaVersion(), strings.Join(kb.JVMFlags(), " "))
	fmt.Fprintf(&b, "| producers | runnel txn/s | Kafka txn/s | runnel / Kafka |\n|---|---|---|---|\n")
	for i, p := range cells {
		fmt.Fprintf(&b, "| %d | %.0f | %.0f | %.2f |\n", p, rr[i].txnsPerSec(), kr[i].txnsPerSec(), rr[i].txnsPerSec()/kr[i].txnsPerSec())
	}
	fmt.Println(b.String())
	if out := os.Getenv("RUNNEL_BENCH_OUT"); out != "" {
		os.WriteFile(out, []byte(b.String()), 0o644)
	}
}
