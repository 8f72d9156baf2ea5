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
			part, records := p.Partition, p.Records
			s.produce.AppendAsync(topic, part, records, acks, func(base int64, err error) {
				if txnDone != nil {
					txnDone()
				}
				rp.BaseOffset = base
				if errors.Is(err, log.ErrDuplicateSequence) {
					// Answered with the original batch's append time,
					// read back from the log (not from this callback:
					// it runs on a log goroutine).
					go func() {
						rp.LogAppendTime = s.storedAppendTime(topic, part, base)
						done()
					}()
					return
				}
				if err != nil {
					rp.BaseOffset = -1
					rp.ErrorCode = errorCode(err)
					if req.Version >= 8 {
						rp.ErrorMessage = strp(err.Error())
					}
					s.stats.produceErrors.Add(1)
					s.stats.errors.Add(1)
				} else {
					rp.LogAppendTime = appendTime(records)
					s.stats.produceRecords.Add(uint64(nrec))
					s.stats.produceBytes.Add(uint64(nbytes))
				}
				done()
			})
		}
	}
	done()
}

// appendTime is the log append time the log stamped into the first batch
// of b as it appended it (in place, as the offsets: topics with
// message.timestamp.type LogAppendTime), or -1 (CreateTime), as Kafka
// answers log_append_time_ms. Producers may not set the attribute (Kafka
// refuses such batches), so a set one is the log's.
func appendTime(b []byte) int64 {
	if len(b) < batch.HeaderSize || binary.BigEndian.Uint16(b[batch.OffAttributes:])&batch.AttrLogAppendTime == 0 {
		return -1
	}
	return int64(binary.BigEndian.Uint64(b[batch.OffMaxTimestamp:]))
}

// storedAppendTime is appendTime of the batch stored at offset off
// (a duplicate's original), -1 when it cannot be read.
func (s *Server) storedAppendTime(topic string, part int32, off int64) int64 {
	b, err := s.log.Read(topic, part, off, 1)
	if err != nil {
		return -1
	}
	return appendTime(b)
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
