package replicate

import "github.com/runnel/runnel/log"

// The view passes the log's transaction state through (log.Transactions),
// with the LSO never past what the view shows (an acks=all topic's
// visible end).

// StableOffset implements log.Transactions.
func (v *view) StableOffset(topic string, partition int32) (int64, error) {
	_, hwm, err := v.Offsets(topic, partition)
	if err != nil {
		return -1, err
	}
	tx, ok := v.Log.(log.Transactions)
	if !ok {
		return hwm, nil
	}
	lso, err := tx.StableOffset(topic, partition)
	if err != nil {
		return -1, err
	}
	return min(lso, hwm), nil
}

// AbortedTxns implements log.Transactions.
func (v *view) AbortedTxns(topic string, partition int32, from, to int64) ([]log.AbortedTxn, error) {
	tx, ok := v.Log.(log.Transactions)
	if !ok {
		return nil, nil
	}
	return tx.AbortedTxns(topic, partition, from, to)
}
