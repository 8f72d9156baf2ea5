package kafka

import (
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// isolationReadCommitted is Fetch's and ListOffsets' isolation level 1.
const isolationReadCommitted = 1

// stableOffset is the partition's last stable offset, or hwm when the log
// does not track transactions.
func stableOffset(lg log.Log, topic string, partition int32, hwm int64) (int64, error) {
	tx, ok := lg.(log.Transactions)
	if !ok {
		return hwm, nil
	}
	lso, err := tx.StableOffset(topic, partition)
	if err != nil {
		return -1, err
	}
	return min(lso, hwm), nil
}

// readCommitted turns a read for a read_committed fetch: data cut to the
// batches before lso (a transaction's batches after it are not decided
// yet), and the aborted transactions holding records in what is left,
// which the client drops.
func readCommitted(lg log.Log, topic string, partition int32, fetchOffset, lso int64, data []byte) ([]byte, []kmsg.FetchResponseTopicPartitionAbortedTransaction, error) {
	n, end := 0, fetchOffset
	for n+batch.HeaderSize <= len(data) {
		base := int64(binary.BigEndian.Uint64(data[n+batch.OffBaseOffset:]))
		size := int(binary.BigEndian.Uint32(data[n+batch.OffBatchLength:])) + batch.LogOverhead
		last := base + int64(binary.BigEndian.Uint32(data[n+batch.OffLastOffsetDelta:]))
		if last >= lso || n+size > len(data) {
			break
		}
		n += size
		end = last + 1
	}
	data = data[:n]
	tx, ok := lg.(log.Transactions)
	if !ok || n == 0 {
		return data, []kmsg.FetchResponseTopicPartitionAbortedTransaction{}, nil
	}
	ab, err := tx.AbortedTxns(topic, partition, fetchOffset, end)
	if err != nil {
		return nil, nil, err
	}
	out := make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, 0, len(ab))
	for _, a := range ab {
		x := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
		x.ProducerID, x.FirstOffset = a.ProducerID, a.FirstOffset
		out = append(out, x)
	}
	return data, out, nil
}

// readCommitted applies read_committed to the answer rp of one partition
// (read and with its HWM set).
func (c *conn) readCommitted(lg log.Log, topic string, p *kmsg.FetchRequestTopicPartition, rp *kmsg.FetchResponseTopicPartition) error {
	lso, err := stableOffset(lg, topic, p.Partition, rp.HighWatermark)
	if err == nil {
		rp.LastStableOffset = lso
		rp.RecordBatches, rp.AbortedTransactions, err = readCommitted(lg, topic, p.Partition, p.FetchOffset, lso, rp.RecordBatches)
	}
	if err != nil {
		rp.ErrorCode = codeKafkaStorageError
		rp.RecordBatches = noRecords
		c.s.stats.errors.Add(1)
	}
	return err
}
