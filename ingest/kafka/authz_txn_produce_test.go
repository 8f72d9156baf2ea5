package kafka

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/runnel/runnel/ingest/access"
	"github.com/runnel/runnel/ingest/users"
	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// TestTransactionalProduceNeedsIDRights: a user with Write on a topic but
// no rule for a transactional id cannot produce into that id's open
// transaction (TRANSACTIONAL_ID_AUTHORIZATION_FAILED, nothing stored).
func TestTransactionalProduceNeedsIDRights(t *testing.T) {
	var entries []users.Entry
	for _, u := range []string{"noid", "etl"} {
		e, _ := users.NewEntry(u, "pw-"+u)
		entries = append(entries, e)
	}
	st, _ := users.NewStore(entries, nil)
	pol, err := access.NewPolicy([]access.Rule{
		{User: "noid", Kind: access.Topic, Pattern: "t", Ops: access.Write | access.Read},
		{User: "etl", Kind: access.Topic, Pattern: "t", Ops: access.Write | access.Read},
		{User: "etl", Kind: access.TransactionalID, Pattern: "etl-*", Ops: access.Write},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := openLog(t, "")
	l.CreateTopic("t", log.TopicConfig{Partitions: 1})
	ts := startServer(t, l, func(o *Options) { o.Users, o.Access = st, pol })
	ctx := testCtx(t, 60*time.Second)
	as := func(u string) *kgo.Client {
		return newClient(t, ts.addr, kgo.SASL(scram.Auth{User: u, Pass: "pw-" + u}.AsSha256Mechanism()), kgo.RequestRetries(0))
	}
	etl := as("etl")
	id := "etl-1"
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID, init.TransactionTimeoutMillis = &id, 60000
	ir, err := init.RequestWith(ctx, etl)
	if err != nil || ir.ErrorCode != 0 {
		t.Fatal(err, ir)
	}
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = id, ir.ProducerID, ir.ProducerEpoch
	at := kmsg.NewAddPartitionsToTxnRequestTopic()
	at.Topic, at.Partitions = "t", []int32{0}
	add.Topics = append(add.Topics, at)
	if _, err := add.RequestWith(ctx, etl); err != nil {
		t.Fatal(err)
	}
	var b batch.Builder
	b.SetProducer(ir.ProducerID, ir.ProducerEpoch, 0)
	b.Add(1, nil, []byte("injected by noid"), nil)
	pr := kmsg.NewPtrProduceRequest()
	pr.Acks = -1
	pr.TransactionID = &id
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "t"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = batch.SetAttributes(b.Bytes(), batch.AttrTransactional)
	pt.Partitions = append(pt.Partitions, pp)
	pr.Topics = append(pr.Topics, pt)
	resp, err := pr.RequestWith(ctx, as("noid"))
	if err != nil {
		t.Fatal(err)
	}
	code := resp.Topics[0].Partitions[0].ErrorCode
	_, hwm, _ := l.Offsets("t", 0)
	t.Logf("noid transactional produce into etl-1: code %d, hwm %d", code, hwm)
	if code == 0 {
		t.Errorf("a user without Write on the transactional id produced into its transaction")
	}
}
