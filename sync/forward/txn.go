package forward

import (
	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// txnFilter decides which batches of one read of a partition go
// upstream: only committed data. Transaction markers (control batches)
// never do; a transaction's batches only once it committed: forwarding
// stops at the last stable offset and passes over the batches of aborted
// transactions, as a read_committed consumer does. Non-transactional
// batches are not looked at, so a topic without transactions pays
// nothing.
type txnFilter struct {
	lg      log.Log
	topic   string
	part    int32
	from    int64 // the read's first offset
	loaded  bool
	lso     int64 // -1: the log tracks no transactions
	aborted []log.AbortedTxn
}

// check returns skip (pass over the batch), stop (the batch is not
// decided yet: nothing from it on may go), or the log's error.
func (f *txnFilter) check(h *batch.Header) (skip, stop bool, err error) {
	if !h.Transactional() && !h.Control() {
		return false, false, nil
	}
	if !f.loaded {
		f.loaded, f.lso = true, -1
		if tx, ok := f.lg.(log.Transactions); ok {
			if f.lso, err = tx.StableOffset(f.topic, f.part); err != nil {
				return false, false, err
			}
			if f.aborted, err = tx.AbortedTxns(f.topic, f.part, f.from, f.lso); err != nil {
				return false, false, err
			}
		}
	}
	if f.lso >= 0 && h.BaseOffset >= f.lso {
		return false, true, nil
	}
	if h.Control() {
		return true, false, nil
	}
	for _, a := range f.aborted {
		if a.ProducerID == h.ProducerID && a.FirstOffset <= h.BaseOffset && h.BaseOffset < a.LastOffset {
			return true, false, nil
		}
	}
	return false, false, nil
}
