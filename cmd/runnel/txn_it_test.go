package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestTransactExactlyOnceKill9 runs franz-go's GroupTransactSession
// consume-transform-produce loop, two members in one group, against a
// real runnel serve that is kill -9'd twice while they run: the output
// topic, read with read_committed, holds every input record transformed
// exactly once.
func TestTransactExactlyOnceKill9(t *testing.T) {
	s := startRunnel(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const n = 3000
	prod, err := kgo.NewClient(kgo.SeedBrokers(s.Addr()), kgo.DefaultProduceTopic("eos-in"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		prod.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i % 7)), Value: []byte(strconv.Itoa(i))}, nil)
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	prod.Close()

	// The loop: poll, produce one output record per input record, commit
	// the input offsets with the output in one transaction.
	var processed sync.Map // input value → seen (progress only)
	// Two members of one group, each with its own transactional id:
	// rebalances move partitions between them, and the kills force
	// both to rejoin.
	stop := make(chan struct{})
	loopDone := make(chan error, 2)
	for m := 1; m <= 2; m++ {
		go func() {
			loopDone <- transformLoop(ctx, s.Addr(), fmt.Sprintf("eos-loop-%d", m), stop, &processed)
		}()
	}
	count := func() int {
		c := 0
		processed.Range(func(_, _ any) bool { c++; return true })
		return c
	}
	for _, at := range []int{n / 4, n / 2} {
		for count() < at {
			select {
			case err := <-loopDone:
				t.Fatalf("loop ended early: %v\n%s", err, s.LogTail())
			case <-time.After(20 * time.Millisecond):
			}
			if ctx.Err() != nil {
				t.Fatalf("no progress: %d processed\n%s", count(), s.LogTail())
			}
		}
		s.Kill9(t)
		if err := s.start(); err != nil {
			t.Fatalf("restart: %v\n%s", err, s.LogTail())
		}
	}
	// Let the loop finish the input.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		out := readCommitted(t, ctx, s.Addr(), "eos-out")
		if len(out) >= n || time.Now().After(deadline) {
			close(stop)
			for range 2 {
				if err := <-loopDone; err != nil {
					t.Fatalf("loop: %v", err)
				}
			}
			out = readCommitted(t, ctx, s.Addr(), "eos-out")
			seen := map[string]int{}
			for _, v := range out {
				seen[v]++
			}
			for i := 0; i < n; i++ {
				if c := seen["out-"+strconv.Itoa(i)]; c != 1 {
					t.Errorf("out-%d appears %d times", i, c)
				}
			}
			t.Logf("read_committed: %d records; the log holds %d data records (aborted transactions included)",
				len(out), len(readUncommitted(t, ctx, s.Addr(), "eos-out")))
			if len(out) != n {
				t.Fatalf("%d committed output records, want %d\n%s", len(out), n, s.LogTail())
			}
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// transformLoop is the consume-transform-produce loop of franz-go's
// GroupTransactSession, run until stop is closed.
func transformLoop(ctx context.Context, addr, txnID string, stop <-chan struct{}, processed *sync.Map) error {
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(addr),
		kgo.TransactionalID(txnID),
		kgo.ConsumerGroup("eos-group"),
		kgo.ConsumeTopics("eos-in"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.AllowAutoTopicCreation(),
		kgo.DefaultProduceTopic("eos-out"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.TransactionTimeout(20*time.Second),
		kgo.RetryTimeout(time.Minute),
	)
	if err != nil {
		return err
	}
	defer sess.Close()
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := sess.PollRecords(pctx, 50)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if fs.Empty() {
			continue
		}
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		var perr error
		var mu sync.Mutex
		var wg sync.WaitGroup
		fs.EachRecord(func(r *kgo.Record) {
			wg.Add(1)
			sess.Produce(ctx, &kgo.Record{Key: r.Key, Value: []byte("out-" + string(r.Value))}, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					perr = errors.Join(perr, err)
					mu.Unlock()
				}
				wg.Done()
			})
		})
		wg.Wait()
		// A transaction stays open a moment with its records stored,
		// so a kill -9 finds some open.
		time.Sleep(30 * time.Millisecond)
		committed, err := sess.End(ctx, perr == nil)
		if err == nil && committed {
			fs.EachRecord(func(r *kgo.Record) { processed.Store(string(r.Value), true) })
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// readCommitted reads a whole topic with isolation read_committed.
func readCommitted(t *testing.T, ctx context.Context, addr, topic string) []string {
	return readIsolated(t, ctx, addr, topic, kgo.ReadCommitted())
}

// readUncommitted reads a whole topic with isolation read_uncommitted.
func readUncommitted(t *testing.T, ctx context.Context, addr, topic string) []string {
	return readIsolated(t, ctx, addr, topic, kgo.ReadUncommitted())
}

func readIsolated(t *testing.T, ctx context.Context, addr, topic string, iso kgo.IsolationLevel) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(iso), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []string
	idle := 0
	for idle < 3 && ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		got := 0
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)); got++ })
		if got == 0 {
			idle++
		}
	}
	return out
}

// TestTransactionStateKill9: an open transaction survives a kill -9 of
// runnel serve (coordinator state and the partition's LSO); the next
// producer with the same transactional id aborts it and fences the old
// producer.
func TestTransactionStateKill9(t *testing.T) {
	s := startRunnel(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	newTxn := func() *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr()), kgo.TransactionalID("k9"), kgo.DefaultProduceTopic("k9"),
			kgo.AllowAutoTopicCreation(), kgo.RetryTimeout(30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	old := newTxn()
	for i, end := range []bool{true, false} {
		if err := old.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := old.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("txn-%d", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if end {
			if err := old.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
		}
	}
	// txn-1 is open.
	s.Kill9(t)
	if err := s.start(); err != nil {
		t.Fatalf("restart: %v\n%s", err, s.LogTail())
	}
	adm, err := kgo.NewClient(kgo.SeedBrokers(s.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	lt := kmsg.NewPtrListTransactionsRequest()
	lr, err := lt.RequestWith(ctx, adm)
	if err != nil || len(lr.TransactionStates) != 1 || lr.TransactionStates[0].TransactionState != "Ongoing" {
		t.Fatalf("ListTransactions after kill -9: %v %+v", err, lr)
	}
	if got := readCommitted(t, ctx, s.Addr(), "k9"); strings.Join(got, ",") != "txn-0" {
		t.Fatalf("read_committed after kill -9: %v, want txn-0 only (txn-1 still open)", got)
	}
	cur := newTxn()
	if err := cur.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cur.ProduceSync(ctx, &kgo.Record{Value: []byte("txn-2")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cur.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	err = old.EndTransaction(ctx, kgo.TryCommit)
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("old producer's commit after the new one's init: %v, want fenced", err)
	}
	if got := readCommitted(t, ctx, s.Addr(), "k9"); strings.Join(got, ",") != "txn-0,txn-2" {
		t.Fatalf("read_committed: %v, want txn-0,txn-2", got)
	}
}
