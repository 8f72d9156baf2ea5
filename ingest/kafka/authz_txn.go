package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/ingest/access"
)

// Authorization of the transaction APIs, as Kafka's: a transactional id
// is a resource of its own (access.TransactionalID, Kafka's
// TRANSACTIONAL_ID): Write to use it (InitProducerId, AddPartitionsToTxn,
// AddOffsetsToTxn, TxnOffsetCommit, EndTxn), Describe to see it
// (DescribeTransactions, ListTransactions). The partitions a transaction
// takes need Write on their topic; the offsets it commits need Read on the
// group and on each topic.

// authzTxn checks a transaction request; see authorize for the contract.
func (c *conn) authzTxn(sl *slot, req kmsg.Request) bool {
	txnOK := func(id string, op access.Op) bool { return c.may(access.TransactionalID, id, op) }
	switch r := req.(type) {
	case *kmsg.InitProducerIDRequest:
		if r.TransactionalID != nil && !txnOK(*r.TransactionalID, access.Write) {
			resp := r.ResponseKind().(*kmsg.InitProducerIDResponse)
			resp.ErrorCode, resp.ProducerID, resp.ProducerEpoch = codeTransactionalIDAuthFailed, -1, -1
			sl.resp = resp
			return true
		}
	case *kmsg.AddPartitionsToTxnRequest:
		idOK := txnOK(r.TransactionalID, access.Write)
		denied := false
		for _, t := range r.Topics {
			denied = denied || !c.may(access.Topic, t.Topic, access.Write)
		}
		if idOK && !denied {
			return false
		}
		// As Kafka: the refused topics get their error, the others
		// OPERATION_NOT_ATTEMPTED; nothing is added.
		resp := r.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
		for _, t := range r.Topics {
			code := codeOperationNotAttempted
			switch {
			case !idOK:
				code = codeTransactionalIDAuthFailed
			case !c.may(access.Topic, t.Topic, access.Write):
				code = codeTopicAuthorizationFailed
			}
			rt := kmsg.NewAddPartitionsToTxnResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		sl.resp = resp
		return true
	case *kmsg.AddOffsetsToTxnRequest:
		code := int16(0)
		switch {
		case !txnOK(r.TransactionalID, access.Write):
			code = codeTransactionalIDAuthFailed
		case !c.may(access.Group, r.Group, access.Read):
			code = codeGroupAuthorizationFailed
		}
		if code != 0 {
			resp := r.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
			resp.ErrorCode = code
			sl.resp = resp
			return true
		}
	case *kmsg.EndTxnRequest:
		if !txnOK(r.TransactionalID, access.Write) {
			resp := r.ResponseKind().(*kmsg.EndTxnResponse)
			resp.ErrorCode = codeTransactionalIDAuthFailed
			sl.resp = resp
			return true
		}
	case *kmsg.TxnOffsetCommitRequest:
		all := int16(0)
		switch {
		case !txnOK(r.TransactionalID, access.Write):
			all = codeTransactionalIDAuthFailed
		case !c.may(access.Group, r.Group, access.Read):
			all = codeGroupAuthorizationFailed
		}
		denied := false
		for _, t := range r.Topics {
			denied = denied || !c.may(access.Topic, t.Topic, access.Read)
		}
		if all == 0 && !denied {
			return false
		}
		resp := r.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		for _, t := range r.Topics {
			code := all
			if code == 0 {
				code = codeOperationNotAttempted
				if !c.may(access.Topic, t.Topic, access.Read) {
					code = codeTopicAuthorizationFailed
				}
			}
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		sl.resp = resp
		return true
	case *kmsg.DescribeTransactionsRequest:
		var denied []string
		r.TransactionalIDs, denied = split(r.TransactionalIDs, func(id string) bool { return txnOK(id, access.Describe) })
		if len(denied) == 0 {
			return false
		}
		add := func(resp kmsg.Response) {
			rr := resp.(*kmsg.DescribeTransactionsResponse)
			for _, id := range denied {
				st := kmsg.NewDescribeTransactionsResponseTransactionState()
				st.TransactionalID, st.ErrorCode, st.ProducerID, st.ProducerEpoch = id, codeTransactionalIDAuthFailed, -1, -1
				rr.TransactionStates = append(rr.TransactionStates, st)
			}
		}
		if len(r.TransactionalIDs) == 0 {
			resp := r.ResponseKind().(*kmsg.DescribeTransactionsResponse)
			add(resp)
			sl.resp = resp
			return true
		}
		sl.fix = add
	case *kmsg.ListTransactionsRequest:
		sl.fix = func(resp kmsg.Response) {
			rr := resp.(*kmsg.ListTransactionsResponse)
			rr.TransactionStates, _ = split(rr.TransactionStates, func(st kmsg.ListTransactionsResponseTransactionState) bool {
				return txnOK(st.TransactionalID, access.Describe)
			})
		}
	}
	return false
}

// authzConsumerGroup checks the consumer group protocol's requests
// (KIP-848): Read on the group to heartbeat, Describe on each subscribed
// topic (a subscription by regex: Describe on the cluster), Describe on
// each group described.
func (c *conn) authzConsumerGroup(sl *slot, req kmsg.Request) bool {
	switch r := req.(type) {
	case *kmsg.ConsumerGroupHeartbeatRequest:
		code := int16(0)
		if !c.may(access.Group, r.Group, access.Read) {
			code = codeGroupAuthorizationFailed
		} else if r.SubscribedTopicRegex != nil && *r.SubscribedTopicRegex != "" && !c.may(access.Cluster, access.ClusterName, access.Describe) {
			// A regex is matched against every topic: it needs Describe
			// on the cluster (the matches are not filtered per topic).
			code = codeTopicAuthorizationFailed
		} else {
			for _, t := range r.SubscribedTopicNames {
				if !c.may(access.Topic, t, access.Describe) {
					code = codeTopicAuthorizationFailed
					break
				}
			}
		}
		if code != 0 {
			resp := r.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
			resp.ErrorCode, resp.ErrorMessage = code, c.denyMsg()
			sl.resp = resp
			return true
		}
	case *kmsg.ConsumerGroupDescribeRequest:
		var denied []string
		r.Groups, denied = split(r.Groups, func(g string) bool { return c.may(access.Group, g, access.Describe) })
		if len(denied) == 0 {
			return false
		}
		msg := c.denyMsg()
		add := func(resp kmsg.Response) {
			rr := resp.(*kmsg.ConsumerGroupDescribeResponse)
			for _, g := range denied {
				rg := kmsg.NewConsumerGroupDescribeResponseGroup()
				rg.Group, rg.ErrorCode, rg.ErrorMessage = g, codeGroupAuthorizationFailed, msg
				rr.Groups = append(rr.Groups, rg)
			}
		}
		if len(r.Groups) == 0 {
			resp := r.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
			add(resp)
			sl.resp = resp
			return true
		}
		sl.fix = add
	}
	return false
}
