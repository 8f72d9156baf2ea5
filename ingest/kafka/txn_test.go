package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/ingest/kafka/group"
	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// produceTxn runs one transaction of n records on cl and ends it.
func produceTxn(t *testing.T, ctx context.Context, cl *kgo.Client, topic, prefix string, n int, commit bool) {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf("%s-%d", prefix, i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatal(err)
	}
}

// consumeAll reads topic from the start until the end the consumer's
// isolation level lets it see (idle for a moment).
func consumeAll(t *testing.T, ctx context.Context, addr, topic string, committed bool) []string {
	t.Helper()
	opts := []kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200 * time.Millisecond)}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl := newClient(t, addr, opts...)
	var out []string
	idle := 0
	for idle < 3 {
		fctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := cl.PollFetches(fctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)); n++ })
		for _, e := range fs.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				t.Fatalf("fetch %s/%d: %v", e.Topic, e.Partition, e.Err)
			}
		}
		if n == 0 {
			idle++
		}
	}
	return out
}

func TestTransactionsReadCommitted(t *testing.T) {
	l := openLog(t, "")
	ts := startServer(t, l, nil)
	ctx := testCtx(t, 60*time.Second)
	if err := l.CreateTopic("tx", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	p := newClient(t, ts.addr, kgo.TransactionalID("t1"), kgo.DefaultProduceTopic("tx"))
	produceTxn(t, ctx, p, "tx", "c1", 10, true)
	produceTxn(t, ctx, p, "tx", "a1", 5, false)
	produceTxn(t, ctx, p, "tx", "c2", 4, true)
	// An open transaction holds the LSO.
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Topic: "tx", Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := consumeAll(t, ctx, ts.addr, "tx", true)
	if len(got) != 14 || got[0] != "c1-0" || got[10] != "c2-0" {
		t.Fatalf("read_committed got %d records %v, want c1-0..9, c2-0..3", len(got), got)
	}
	all := consumeAll(t, ctx, ts.addr, "tx", false)
	if len(all) != 20 {
		t.Fatalf("read_uncommitted got %d records, want 20", len(all))
	}
	// ListOffsets read_committed answers the LSO: the open
	// transaction's first offset (10+1+5+1+4+1 = 22).
	adm := newClient(t, ts.addr)
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.IsolationLevel = 1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "tx"
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Timestamp = -1
	lt.Partitions = append(lt.Partitions, lp)
	lo.Topics = append(lo.Topics, lt)
	resp, err := lo.RequestWith(ctx, adm)
	if err != nil {
		t.Fatal(err)
	}
	if off := resp.Topics[0].Partitions[0].Offset; off != 22 {
		t.Fatalf("read_committed ListOffsets = %d, want 22", off)
	}
	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if got := consumeAll(t, ctx, ts.addr, "tx", true); len(got) != 15 || got[14] != "open" {
		t.Fatalf("after commit read_committed got %d records %v", len(got), got)
	}
	if st := ts.Stats().Txn; st.Commits != 3 || st.Aborts != 1 || st.Open != 0 {
		t.Fatalf("stats %+v, want 3 commits, 1 abort, none open", st)
	}
}

func TestTransactionZombieFenced(t *testing.T) {
	l := openLog(t, "")
	ts := startServer(t, l, nil)
	ctx := testCtx(t, 60*time.Second)
	if err := l.CreateTopic("z", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	old := newClient(t, ts.addr, kgo.TransactionalID("zid"), kgo.DefaultProduceTopic("z"))
	if err := old.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := old.ProduceSync(ctx, &kgo.Record{Value: []byte("zombie")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// A new producer with the same transactional id fences the old one
	// and aborts its open transaction.
	cur := newClient(t, ts.addr, kgo.TransactionalID("zid"), kgo.DefaultProduceTopic("z"))
	produceTxn(t, ctx, cur, "z", "new", 3, true)
	err := old.ProduceSync(ctx, &kgo.Record{Value: []byte("zombie2")}).FirstErr()
	if err == nil {
		err = old.EndTransaction(ctx, kgo.TryCommit)
	}
	if !errors.Is(err, kerr.InvalidProducerEpoch) && !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("zombie: %v, want INVALID_PRODUCER_EPOCH or PRODUCER_FENCED", err)
	}
	got := consumeAll(t, ctx, ts.addr, "z", true)
	if len(got) != 3 || got[0] != "new-0" {
		t.Fatalf("read_committed got %v, want new-0..2", got)
	}
}

func TestTransactionTimeoutAborts(t *testing.T) {
	l := openLog(t, "")
	ts := startServer(t, l, nil)
	ctx := testCtx(t, 60*time.Second)
	if err := l.CreateTopic("to", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	p := newClient(t, ts.addr, kgo.TransactionalID("tid"), kgo.DefaultProduceTopic("to"), kgo.TransactionTimeout(time.Second))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("late")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		lso, err := l.(log.Transactions).StableOffset("to", 0)
		if err != nil {
			t.Fatal(err)
		}
		if lso == 2 { // the record and the abort marker
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("LSO %d after the timeout, want 2", lso)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := p.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Fatal("commit after the timeout abort succeeded")
	}
	if got := consumeAll(t, ctx, ts.addr, "to", true); len(got) != 0 {
		t.Fatalf("read_committed got %v after the abort", got)
	}
	if st := ts.Stats().Txn; st.TimedOut != 1 || st.Aborts != 1 || st.Open != 0 {
		t.Fatalf("stats %+v, want one timed-out abort and none open", st)
	}
}

// TestTxnOffsetsStagedUntilCommit: TxnOffsetCommit from an older
// generation is refused; staged offsets are not the group's until the
// transaction commits, and an OffsetFetch that requires stable offsets is
// answered UNSTABLE_OFFSET_COMMIT meanwhile.
func TestTxnOffsetsStagedUntilCommit(t *testing.T) {
	l := openLog(t, "")
	coord, err := group.New(group.Options{Meta: l.Meta(), Log: l})
	if err != nil {
		t.Fatal(err)
	}
	defer coord.Close()
	ts := startServer(t, l, func(o *Options) { o.Groups = coord })
	ctx := testCtx(t, 30*time.Second)
	if err := l.CreateTopic("in", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, ts.addr)
	id := "offs"
	ip := kmsg.NewPtrInitProducerIDRequest()
	ip.TransactionalID, ip.TransactionTimeoutMillis = &id, 60000
	ipr, err := ip.RequestWith(ctx, cl)
	if err != nil || ipr.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v %d", err, ipr.ErrorCode)
	}
	ao := kmsg.NewPtrAddOffsetsToTxnRequest()
	ao.TransactionalID, ao.ProducerID, ao.ProducerEpoch, ao.Group = id, ipr.ProducerID, ipr.ProducerEpoch, "g"
	if r, err := ao.RequestWith(ctx, cl); err != nil || r.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn: %v %+v", err, r)
	}
	commit := func(gen int32, member string) int16 {
		oc := kmsg.NewPtrTxnOffsetCommitRequest()
		oc.TransactionalID, oc.Group, oc.ProducerID, oc.ProducerEpoch = id, "g", ipr.ProducerID, ipr.ProducerEpoch
		oc.Generation, oc.MemberID = gen, member
		tt := kmsg.NewTxnOffsetCommitRequestTopic()
		tt.Topic = "in"
		tp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		tp.Partition, tp.Offset = 0, 42
		tt.Partitions = append(tt.Partitions, tp)
		oc.Topics = append(oc.Topics, tt)
		r, err := oc.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return r.Topics[0].Partitions[0].ErrorCode
	}
	if code := commit(5, "zombie"); code != 22 && code != 25 {
		t.Fatalf("TxnOffsetCommit from an unknown generation: code %d, want ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID", code)
	}
	if code := commit(-1, ""); code != 0 {
		t.Fatalf("TxnOffsetCommit: code %d", code)
	}
	fetch := func(stable bool) (int64, int16) {
		of := kmsg.NewPtrOffsetFetchRequest()
		of.Version = 7
		of.Group, of.RequireStable = "g", stable
		ot := kmsg.NewOffsetFetchRequestTopic()
		ot.Topic, ot.Partitions = "in", []int32{0}
		of.Topics = append(of.Topics, ot)
		r, err := of.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		p := r.Topics[0].Partitions[0]
		return p.Offset, p.ErrorCode
	}
	if off, code := fetch(false); off != -1 || code != 0 {
		t.Fatalf("offset before the commit: %d (code %d), want -1", off, code)
	}
	if _, code := fetch(true); code != codeUnstableOffsetCommit {
		t.Fatalf("stable fetch before the commit: code %d, want UNSTABLE_OFFSET_COMMIT", code)
	}
	et := kmsg.NewPtrEndTxnRequest()
	et.TransactionalID, et.ProducerID, et.ProducerEpoch, et.Commit = id, ipr.ProducerID, ipr.ProducerEpoch, true
	if r, err := et.RequestWith(ctx, cl); err != nil || r.ErrorCode != 0 {
		t.Fatalf("EndTxn: %v %+v", err, r)
	}
	if off, code := fetch(true); off != 42 || code != 0 {
		t.Fatalf("offset after the commit: %d (code %d), want 42", off, code)
	}
}

// TestProduceTxnAttrsChecked: control batches from a client, and
// transactional batches without a transactional id, are refused (either
// would leave an open transaction no coordinator ends).
func TestProduceTxnAttrsChecked(t *testing.T) {
	l := openLog(t, "")
	ts := startServer(t, l, nil)
	ctx := testCtx(t, 30*time.Second)
	if err := l.CreateTopic("attrs", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, ts.addr)
	var b batch.Builder
	b.SetProducer(1, 0, 0)
	b.Add(1, nil, []byte("v"), nil)
	for name, records := range map[string][]byte{
		"control":       batch.Marker(1, 0, true, 1),
		"transactional": batch.SetAttributes(b.Bytes(), batch.AttrTransactional),
	} {
		pr := kmsg.NewPtrProduceRequest()
		pr.Acks = -1
		pt := kmsg.NewProduceRequestTopic()
		pt.Topic = "attrs"
		pp := kmsg.NewProduceRequestTopicPartition()
		pp.Records = records
		pt.Partitions = append(pt.Partitions, pp)
		pr.Topics = append(pr.Topics, pt)
		resp, err := pr.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != codeInvalidRecord {
			t.Errorf("%s batch without a transactional id: code %d, want INVALID_RECORD", name, code)
		}
	}
	if _, hwm, _ := l.Offsets("attrs", 0); hwm != 0 {
		t.Fatalf("refused batches were written: HWM %d", hwm)
	}
}
