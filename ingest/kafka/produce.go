package kafka

import (
	"encoding/binary"
	"errors"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/ingest/produce"
	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// produce hands every partition's batches to log.AppendAsync, in request
// order, and finishes sl when the last append completed. It never blocks on
// durability, so the reader goes on to the next request at once.
func (c *conn) produce(sl *slot, req *kmsg.ProduceRequest) {
	s := c.s
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	sl.resp = resp
	sl.noResp = req.Acks == 0

	reqErr := codeNone
	var reqMsg *string
	if req.Acks != 0 && req.Acks != 1 && req.Acks != -1 {
		reqErr = codeInvalidRequiredAcks
	}

	// acks=-1 waits for the site's in-sync copies when the log can.
	acks := produce.AcksLeader
	if req.Acks == -1 {
		acks = produce.AcksAll
	}

	var pending atomic.Int32
	pending.Store(1) // released after the loop
	done := func() {
		if pending.Add(-1) == 0 {
			sl.finish()
		}
	}
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for ti := range req.Topics {
		t := &req.Topics[ti]
		rt := &resp.Topics[ti]
		*rt = kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
		topicErr := reqErr
		if topicErr == codeNone {
			topicErr = s.ensureTopic(t.Topic, s.opts.AutoCreateTopics && c.mayCreate(t.Topic))
		}
		for pi := range t.Partitions {
			p := &t.Partitions[pi]
			rp := &rt.Partitions[pi]
			*rp = kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			if topicErr != codeNone {
				rp.ErrorCode = topicErr
				rp.ErrorMessage = reqMsg
				s.stats.produceErrors.Add(1)
				s.stats.errors.Add(1)
				continue
			}
			// Like a Kafka broker, decode every record before storing
			// the batch: one that does not decode would fail every reader
			// later (consumers, forwarding, MQTT publish routes). The
			// answer is Kafka's too: INVALID_RECORD (not retriable) from
			// produce v8 on, CORRUPT_MESSAGE before.
			if err := batch.CheckRecords(p.Records); err != nil {
				rp.ErrorCode = codeCorruptMessage
				if req.Version >= 8 {
					rp.ErrorCode = codeInvalidRecord
					rp.ErrorMessage = strp("runnel: invalid record: " + err.Error())
				}
				s.stats.produceErrors.Add(1)
				s.stats.errors.Add(1)
				continue
			}
			if msg := checkTxnAttrs(p.Records, req.TransactionID != nil); msg != "" {
				rp.ErrorCode = codeCorruptMessage
				if req.Version >= 8 {
					rp.ErrorCode, rp.ErrorMessage = codeInvalidRecord, strp(msg)
				}
				s.stats.produceErrors.Add(1)
				s.stats.errors.Add(1)
				continue
			}
			var txnDone func()
			if req.TransactionID != nil {
				// A transaction's batch goes only where its open
				// transaction says, from its current epoch.
				code, msg, release := s.txns.checkProduce(*req.TransactionID, t.Topic, p.Partition, p.Records)
				if code != codeNone {
					rp.ErrorCode, rp.ErrorMessage = code, strp(msg)
					s.stats.produceErrors.Add(1)
					s.stats.errors.Add(1)
					continue
				}
				txnDone = release
			}
			nrec := countRecords(p.Records)
			nbytes := len(p.Records)
			topic := t.Topic
			pending.Add(1)
			s.produce.AppendAsync(topic, p.Partition, p.Records, acks, func(base int64, err error) {
				if txnDone != nil {
					txnDone()
				}
				rp.BaseOffset = base
				if err != nil && !errors.Is(err, log.ErrDuplicateSequence) {
					rp.BaseOffset = -1
					rp.ErrorCode = errorCode(err)
					if req.Version >= 8 {
						rp.ErrorMessage = strp(err.Error())
					}
					s.stats.produceErrors.Add(1)
					s.stats.errors.Add(1)
				} else if err == nil {
					s.stats.produceRecords.Add(uint64(nrec))
					s.stats.produceBytes.Add(uint64(nbytes))
				}
				done()
			})
		}
	}
	done()
}

// countRecords sums the record counts of the batch headers in b (no record
// is decoded; a malformed tail is left to the log to reject).
func countRecords(b []byte) int {
	n := 0
	for len(b) >= batch.HeaderSize {
		size := int(int32(binary.BigEndian.Uint32(b[batch.OffBatchLength:]))) + batch.LogOverhead
		n += int(int32(binary.BigEndian.Uint32(b[batch.OffRecordCount:])))
		if size < batch.HeaderSize || size > len(b) {
			break
		}
		b = b[size:]
	}
	return n
}

func strp(s string) *string { return &s }
