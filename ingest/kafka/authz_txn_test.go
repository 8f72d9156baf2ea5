package kafka

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/runnel/runnel/ingest/access"
	"github.com/runnel/runnel/ingest/users"
	"github.com/runnel/runnel/log"
)

// TestTransactionsAuthorized: a transactional id is a resource of its own.
// A user with Write on topic t but no rule for the id is refused at
// InitProducerId with TRANSACTIONAL_ID_AUTHORIZATION_FAILED; a user with
// Write on the id but not on topic u cannot add u to its transaction; a
// user with both commits. DescribeTransactions and ListTransactions show
// an id only to users who may describe it.
func TestTransactionsAuthorized(t *testing.T) {
	var entries []users.Entry
	for _, u := range []string{"noid", "etl", "viewer"} {
		e, err := users.NewEntry(u, "pw-"+u)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	st, err := users.NewStore(entries, nil)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := access.NewPolicy([]access.Rule{
		{User: "noid", Kind: access.Topic, Pattern: "t", Ops: access.Write | access.Read},
		{User: "etl", Kind: access.Topic, Pattern: "t", Ops: access.Write | access.Read},
		{User: "etl", Kind: access.Topic, Pattern: "u", Ops: access.Read},
		{User: "etl", Kind: access.TransactionalID, Pattern: "etl-*", Ops: access.Write},
		{User: "viewer", Kind: access.TransactionalID, Pattern: "*", Ops: access.Describe},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := openLog(t, "")
	for _, topic := range []string{"t", "u"} {
		if err := l.CreateTopic(topic, log.TopicConfig{Partitions: 1}); err != nil {
			t.Fatal(err)
		}
	}
	ts := startServer(t, l, func(o *Options) { o.Users, o.Access = st, pol })
	ctx := testCtx(t, 60*time.Second)
	as := func(u string, opts ...kgo.Opt) *kgo.Client {
		return newClient(t, ts.addr, append([]kgo.Opt{kgo.SASL(scram.Auth{User: u, Pass: "pw-" + u}.AsSha256Mechanism()),
			kgo.RequestRetries(0), kgo.RetryTimeout(2 * time.Second)}, opts...)...)
	}

	// No rule for the id: InitProducerId is refused.
	cl := as("noid")
	init := kmsg.NewPtrInitProducerIDRequest()
	id := "etl-1"
	init.TransactionalID, init.TransactionTimeoutMillis = &id, 60000
	resp, err := init.RequestWith(ctx, cl)
	if err != nil || resp.ErrorCode != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Fatalf("InitProducerId without rights on the id: %v %+v", err, resp)
	}

	// Rights on the id, not Write on u: AddPartitionsToTxn refuses u.
	etl := as("etl")
	resp, err = init.RequestWith(ctx, etl)
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("InitProducerId with rights: %v %+v", err, resp)
	}
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = id, resp.ProducerID, resp.ProducerEpoch
	for _, topic := range []string{"t", "u"} {
		at := kmsg.NewAddPartitionsToTxnRequestTopic()
		at.Topic, at.Partitions = topic, []int32{0}
		add.Topics = append(add.Topics, at)
	}
	aresp, err := add.RequestWith(ctx, etl)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]int16{}
	for _, rt := range aresp.Topics {
		for _, rp := range rt.Partitions {
			codes[rt.Topic] = rp.ErrorCode
		}
	}
	if codes["u"] != kerr.TopicAuthorizationFailed.Code || codes["t"] != kerr.OperationNotAttempted.Code {
		t.Fatalf("AddPartitionsToTxn t and u: %v, want t OPERATION_NOT_ATTEMPTED, u TOPIC_AUTHORIZATION_FAILED", codes)
	}

	// Both rights: a transaction commits.
	tx := as("etl", kgo.TransactionalID("etl-2"), kgo.DefaultProduceTopic("t"))
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := tx.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	// A franz-go producer without rights on its id fails at once.
	bad := as("noid", kgo.TransactionalID("etl-3"), kgo.DefaultProduceTopic("t"))
	err = bad.BeginTransaction()
	if err == nil {
		err = bad.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr()
	}
	if !errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		t.Fatalf("transactional produce without rights on the id: %v", err)
	}

	// Describe: the viewer sees etl-2, noid does not.
	for _, c := range []struct {
		user string
		want int16
	}{{"viewer", 0}, {"noid", kerr.TransactionalIDAuthorizationFailed.Code}} {
		d := kmsg.NewPtrDescribeTransactionsRequest()
		d.TransactionalIDs = []string{"etl-2"}
		dr, err := d.RequestWith(ctx, as(c.user))
		if err != nil || len(dr.TransactionStates) != 1 || dr.TransactionStates[0].ErrorCode != c.want {
			t.Fatalf("%s: DescribeTransactions: %v %+v, want code %d", c.user, err, dr, c.want)
		}
		lr, err := kmsg.NewPtrListTransactionsRequest().RequestWith(ctx, as(c.user))
		if err != nil {
			t.Fatal(err)
		}
		if seen := len(lr.TransactionStates) > 0; seen != (c.want == 0) {
			t.Fatalf("%s: ListTransactions shows %d ids", c.user, len(lr.TransactionStates))
		}
	}
}
