package log

import "github.com/runnel/runnel/log/batch"

// producerWindow is how many recent batches per producer are remembered for
// duplicate detection (Kafka's max.in.flight for idempotence).
const producerWindow = 5

// producerState is the idempotence state of one producer id in a partition.
type producerState struct {
	epoch  int16
	last   int32 // last sequence appended
	recent [producerWindow]seqEntry
	n      int // entries used in recent (ring, newest at (head-1))
	head   int
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

// checkProducer validates an idempotent batch against st (nil = unknown
// producer). It returns dupBase >= 0 for a duplicate.
func checkProducer(st *producerState, h *batch.Header) (dupBase int64, err error) {
	if st == nil || h.ProducerEpoch > st.epoch {
		return -1, nil // new producer or new epoch: any sequence starts it
	}
	if h.ProducerEpoch < st.epoch {
		return -1, ErrInvalidProducerEpoch
	}
	ls := lastSeq(h)
	for i := 0; i < st.n; i++ {
		e := st.recent[i]
		if e.first == h.BaseSequence && e.last == ls {
			return e.base, ErrDuplicateSequence
		}
	}
	if h.BaseSequence != nextSeq(st.last) {
		return -1, ErrOutOfOrderSequence
	}
	return -1, nil
}

// record notes an appended idempotent batch.
func (p *partition) recordProducerLocked(h *batch.Header, base int64) {
	if h.ProducerID < 0 {
		return
	}
	if p.producers == nil {
		p.producers = map[int64]*producerState{}
	}
	st := p.producers[h.ProducerID]
	if st == nil || h.ProducerEpoch != st.epoch {
		st = &producerState{epoch: h.ProducerEpoch}
		p.producers[h.ProducerID] = st
	}
	st.last = lastSeq(h)
	st.recent[st.head] = seqEntry{first: h.BaseSequence, last: st.last, base: base}
	st.head = (st.head + 1) % producerWindow
	if st.n < producerWindow {
		st.n++
	}
}
