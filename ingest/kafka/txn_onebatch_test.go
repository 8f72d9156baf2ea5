package kafka

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// TestTransactionalProduceOneBatch: a transactional produce with a second
// batch under another producer id is refused (the coordinator checks the
// first batch only; the second would open a transaction nothing ends and
// hold the last stable offset back for good).
func TestTransactionalProduceOneBatch(t *testing.T) {
	l := openLog(t, "")
	ts := startServer(t, l, nil)
	ctx := testCtx(t, 30*time.Second)
	if err := l.CreateTopic("tx", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, ts.addr)
	ip := kmsg.NewPtrInitProducerIDRequest()
	id := "a"
	ip.TransactionalID = &id
	ip.TransactionTimeoutMillis = 60000
	ir, err := ip.RequestWith(ctx, cl)
	if err != nil || ir.ErrorCode != 0 {
		t.Fatal(err, ir)
	}
	ap := kmsg.NewPtrAddPartitionsToTxnRequest()
	ap.TransactionalID, ap.ProducerID, ap.ProducerEpoch = id, ir.ProducerID, ir.ProducerEpoch
	at := kmsg.NewAddPartitionsToTxnRequestTopic()
	at.Topic, at.Partitions = "tx", []int32{0}
	ap.Topics = append(ap.Topics, at)
	if _, err := ap.RequestWith(ctx, cl); err != nil {
		t.Fatal(err)
	}
	var b1, b2 batch.Builder
	b1.SetProducer(ir.ProducerID, ir.ProducerEpoch, 0)
	b1.Add(1, nil, []byte("mine"), nil)
	b2.SetProducer(987654, 0, 0)
	b2.Add(1, nil, []byte("foreign"), nil)
	recs := append(batch.SetAttributes(b1.Bytes(), batch.AttrTransactional), batch.SetAttributes(b2.Bytes(), batch.AttrTransactional)...)
	pr := kmsg.NewPtrProduceRequest()
	pr.Acks = -1
	pr.TransactionID = &id
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "tx"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = recs
	pt.Partitions = append(pt.Partitions, pp)
	pr.Topics = append(pr.Topics, pt)
	resp, err := pr.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("produce code %d", resp.Topics[0].Partitions[0].ErrorCode)
	et := kmsg.NewPtrEndTxnRequest()
	et.TransactionalID, et.ProducerID, et.ProducerEpoch, et.Commit = id, ir.ProducerID, ir.ProducerEpoch, true
	er, err := et.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("endtxn code %d", er.ErrorCode)
	time.Sleep(500 * time.Millisecond)
	_, hwm, _ := l.Offsets("tx", 0)
	lso, err := l.(log.Transactions).StableOffset("tx", 0)
	t.Logf("hwm %d lso %d err %v", hwm, lso, err)
	if lso < hwm {
		t.Errorf("LSO %d stuck below HWM %d: the foreign pid's open transaction is never ended", lso, hwm)
	}
}
