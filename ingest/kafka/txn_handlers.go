package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The transaction APIs: request decoding and answers around the
// coordinator (txn.go).

// API keys of the transaction coordinator. Never renumber: Kafka's.
const (
	keyAddPartitionsToTxn   = 24
	keyAddOffsetsToTxn      = 25
	keyEndTxn               = 26
	keyTxnOffsetCommit      = 28
	keyDescribeTransactions = 65
	keyListTransactions     = 66
)

// txnVersions are the versions served. AddPartitionsToTxn v4+ and EndTxn
// v5+ are the broker-to-broker verification and transactions v2 of
// KIP-890, which clients use only when the broker advertises the
// transaction.version feature (runnel does not).
var txnVersions = map[int16][2]int16{
	keyAddPartitionsToTxn:   {0, 3},
	keyAddOffsetsToTxn:      {0, 4},
	keyEndTxn:               {0, 4},
	keyTxnOffsetCommit:      {0, 4},
	keyDescribeTransactions: {0, 0},
	keyListTransactions:     {0, 1},
}

// newTxnRequest is newRequest for the transaction keys.
func newTxnRequest(key int16) kmsg.Request {
	switch key {
	case keyAddPartitionsToTxn:
		return kmsg.NewPtrAddPartitionsToTxnRequest()
	case keyAddOffsetsToTxn:
		return kmsg.NewPtrAddOffsetsToTxnRequest()
	case keyEndTxn:
		return kmsg.NewPtrEndTxnRequest()
	case keyTxnOffsetCommit:
		return kmsg.NewPtrTxnOffsetCommitRequest()
	case keyDescribeTransactions:
		return kmsg.NewPtrDescribeTransactionsRequest()
	case keyListTransactions:
		return kmsg.NewPtrListTransactionsRequest()
	}
	return nil
}

// handleTxn answers a transaction request; ok false when req is none.
func (c *conn) handleTxn(req kmsg.Request) (kmsg.Response, bool) {
	t := c.s.txns
	switch r := req.(type) {
	case *kmsg.AddPartitionsToTxnRequest:
		resp := r.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
		var tps []txnTP
		for _, rt := range r.Topics {
			for _, p := range rt.Partitions {
				tps = append(tps, txnTP{rt.Topic, p})
			}
		}
		codes := t.addPartitions(r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Version, tps)
		i := 0
		for _, rt := range r.Topics {
			ot := kmsg.NewAddPartitionsToTxnResponseTopic()
			ot.Topic = rt.Topic
			for _, p := range rt.Partitions {
				op := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				op.Partition, op.ErrorCode = p, codes[i]
				c.countErr(op.ErrorCode)
				i++
				ot.Partitions = append(ot.Partitions, op)
			}
			resp.Topics = append(resp.Topics, ot)
		}
		return resp, true
	case *kmsg.AddOffsetsToTxnRequest:
		resp := r.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
		resp.ErrorCode = t.addOffsets(r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Version, r.Group)
		c.countErr(resp.ErrorCode)
		return resp, true
	case *kmsg.TxnOffsetCommitRequest:
		resp := r.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		var offs []txnOffset
		for _, rt := range r.Topics {
			for _, p := range rt.Partitions {
				o := txnOffset{txnTP: txnTP{rt.Topic, p.Partition}, Offset: p.Offset}
				if p.Metadata != nil {
					o.Metadata = *p.Metadata
				}
				offs = append(offs, o)
			}
		}
		code := codeNone
		if gc, ok := c.s.opts.Groups.(TxnCommitChecker); ok && r.Version >= 3 {
			code = gc.CheckTxnCommit(r.Group, r.MemberID, r.InstanceID, r.Generation)
		}
		if code == codeNone {
			code = t.commitOffsets(r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Version, r.Group, offs)
		}
		c.countErr(code)
		for _, rt := range r.Topics {
			ot := kmsg.NewTxnOffsetCommitResponseTopic()
			ot.Topic = rt.Topic
			for _, p := range rt.Partitions {
				op := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				op.Partition, op.ErrorCode = p.Partition, code
				ot.Partitions = append(ot.Partitions, op)
			}
			resp.Topics = append(resp.Topics, ot)
		}
		return resp, true
	case *kmsg.EndTxnRequest:
		resp := r.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = t.endTxn(r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Version, r.Commit)
		c.countErr(resp.ErrorCode)
		return resp, true
	case *kmsg.DescribeTransactionsRequest:
		resp := r.ResponseKind().(*kmsg.DescribeTransactionsResponse)
		for _, id := range r.TransactionalIDs {
			ts := kmsg.NewDescribeTransactionsResponseTransactionState()
			ts.TransactionalID = id
			rec, ok := t.describe(id)
			if !ok {
				ts.ErrorCode = codeTransactionalIDNotFound
				ts.ProducerID, ts.ProducerEpoch = -1, -1
				resp.TransactionStates = append(resp.TransactionStates, ts)
				continue
			}
			ts.State, ts.TimeoutMillis = rec.State, rec.TimeoutMs
			ts.ProducerID, ts.ProducerEpoch = rec.PID, rec.Epoch
			ts.StartTimestamp = -1
			if rec.State == txnOngoing || rec.State == txnPrepareCommit || rec.State == txnPrepareAbort {
				ts.StartTimestamp = rec.StartMs
			}
			byTopic := map[string]int{}
			for _, tp := range rec.Partitions {
				i, ok := byTopic[tp.Topic]
				if !ok {
					i = len(ts.Topics)
					byTopic[tp.Topic] = i
					tt := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
					tt.Topic = tp.Topic
					ts.Topics = append(ts.Topics, tt)
				}
				ts.Topics[i].Partitions = append(ts.Topics[i].Partitions, tp.Partition)
			}
			resp.TransactionStates = append(resp.TransactionStates, ts)
		}
		return resp, true
	case *kmsg.ListTransactionsRequest:
		resp := r.ResponseKind().(*kmsg.ListTransactionsResponse)
		known := map[string]bool{txnEmpty: true, txnOngoing: true, txnPrepareCommit: true, txnPrepareAbort: true,
			txnCompleteCommit: true, txnCompleteAbort: true, "Dead": true, "PrepareEpochFence": true}
		for _, f := range r.StateFilters {
			if !known[f] {
				resp.UnknownStateFilters = append(resp.UnknownStateFilters, f)
			}
		}
		for _, rw := range t.list(r.StateFilters, r.ProducerIDFilters, r.DurationFilterMillis) {
			ls := kmsg.NewListTransactionsResponseTransactionState()
			ls.TransactionalID, ls.ProducerID, ls.TransactionState = rw.id, rw.rec.PID, rw.rec.State
			resp.TransactionStates = append(resp.TransactionStates, ls)
		}
		return resp, true
	}
	return nil, false
}

// TxnCommitChecker is an optional capability of a GroupHandler (found by
// type assertion; ingest/kafka/group.Coordinator has it): it validates
// the member and generation of a TxnOffsetCommit (v3+), so a zombie of
// an older generation cannot commit offsets in a transaction.
type TxnCommitChecker interface {
	CheckTxnCommit(group, member string, instanceID *string, generation int32) int16
}

// codeUnstableOffsetCommit: an offset of the partition waits for its
// transaction to end (retriable). Never change: Kafka's.
const codeUnstableOffsetCommit int16 = 88

// markUnstable answers UNSTABLE_OFFSET_COMMIT, in an OffsetFetch that
// requires stable offsets, for every partition whose offset an open
// transaction has staged: the consumer retries until it ends, and so
// never starts from an offset the transaction is about to move.
func (c *conn) markUnstable(req kmsg.Request, resp kmsg.Response) {
	r, ok := req.(*kmsg.OffsetFetchRequest)
	if !ok || !r.RequireStable {
		return
	}
	out, ok := resp.(*kmsg.OffsetFetchResponse)
	if !ok {
		return
	}
	t := c.s.txns
	if r.Version < 8 {
		pending := t.pendingOffsets(r.Group)
		for i := range out.Topics {
			rt := &out.Topics[i]
			for j := range rt.Partitions {
				if rp := &rt.Partitions[j]; pending[txnTP{rt.Topic, rp.Partition}] {
					rp.ErrorCode, rp.Offset = codeUnstableOffsetCommit, -1
				}
			}
		}
		return
	}
	for i := range out.Groups {
		g := &out.Groups[i]
		pending := t.pendingOffsets(g.Group)
		for j := range g.Topics {
			rt := &g.Topics[j]
			for k := range rt.Partitions {
				if rp := &rt.Partitions[k]; pending[txnTP{rt.Topic, rp.Partition}] {
					rp.ErrorCode, rp.Offset = codeUnstableOffsetCommit, -1
				}
			}
		}
	}
}

// countErr counts an error answer in the server's stats.
func (c *conn) countErr(code int16) {
	if code != codeNone {
		c.s.stats.errors.Add(1)
	}
}

// initTransactionalProducer serves InitProducerId with a transactional id.
func (c *conn) initTransactionalProducer(req *kmsg.InitProducerIDRequest, resp *kmsg.InitProducerIDResponse) {
	timeout := req.TransactionTimeoutMillis
	pid, epoch, code := c.s.txns.initProducer(*req.TransactionalID, timeout, req.ProducerID, req.ProducerEpoch, req.Version)
	resp.ProducerID, resp.ProducerEpoch, resp.ErrorCode = pid, epoch, code
	c.countErr(code)
}
