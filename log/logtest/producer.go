package logtest

import (
	"fmt"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// producerWindow is how many recent batches per producer are remembered for
// duplicate detection, as in the log.
const producerWindow = 5

// producer is the idempotence state of one producer id in a partition.
type producer struct {
	epoch  int16
	last   int32 // last sequence appended
	recent [producerWindow]seqEntry
	n      int // entries used in recent
	head   int // where the next entry goes
}

type seqEntry struct {
	first, last int32
	base        int64
}

func lastSeq(h *batch.Header) int32 {
	s := int64(h.BaseSequence) + int64(h.LastOffsetDelta)
	if s > 1<<31-1 {
		s -= 1 << 31
	}
	return int32(s)
}

func nextSeq(s int32) int32 {
	if s == 1<<31-1 {
		return 0
	}
	return s + 1
}

// check validates an idempotent batch against st (nil: a producer the
// partition has not seen). dup >= 0 with ErrDuplicateSequence for a repeat
// of one of the last five batches.
func (st *producer) check(h *batch.Header) (dup int64, err error) {
	if st == nil || h.ProducerEpoch > st.epoch {
		return -1, nil // new producer or new epoch: any sequence starts it
	}
	if h.ProducerEpoch < st.epoch {
		return -1, log.ErrInvalidProducerEpoch
	}
	ls := lastSeq(h)
	for i := range st.n {
		if e := st.recent[i]; e.first == h.BaseSequence && e.last == ls {
			return e.base, log.ErrDuplicateSequence
		}
	}
	if h.BaseSequence != nextSeq(st.last) {
		return -1, log.ErrOutOfOrderSequence
	}
	return -1, nil
}

// checkProducers checks every idempotent batch of one append before
// anything is written; a later batch of the same producer continues an
// earlier one of the append.
func (p *part) checkProducers(hs []batch.Header) (int64, error) {
	var overlay map[int64]*producer
	for i := range hs {
		h := &hs[i]
		if h.ProducerID < 0 {
			continue
		}
		st := p.producers[h.ProducerID]
		if o, ok := overlay[h.ProducerID]; ok {
			st = o
		}
		dup, err := st.check(h)
		if err == log.ErrDuplicateSequence && len(hs) > 1 {
			return -1, fmt.Errorf("%w: duplicate inside a multi-batch append", log.ErrOutOfOrderSequence)
		}
		if err != nil {
			return dup, err
		}
		if len(hs) > 1 {
			if overlay == nil {
				overlay = map[int64]*producer{}
			}
			overlay[h.ProducerID] = &producer{epoch: h.ProducerEpoch, last: lastSeq(h)}
		}
	}
	return -1, nil
}

// recordProducer notes an appended idempotent batch at base.
func (p *part) recordProducer(h *batch.Header, base int64) {
	if h.ProducerID < 0 {
		return
	}
	st := p.producers[h.ProducerID]
	if st == nil || h.ProducerEpoch != st.epoch {
		st = &producer{epoch: h.ProducerEpoch}
		p.producers[h.ProducerID] = st
	}
	st.last = lastSeq(h)
	st.recent[st.head] = seqEntry{first: h.BaseSequence, last: st.last, base: base}
	st.head = (st.head + 1) % producerWindow
	st.n = min(st.n+1, producerWindow)
}
