package log

import (
	"errors"
	"fmt"

	"github.com/runnel/runnel/log/batch"
)

// producerWindow is how many recent batches per producer are remembered for
// duplicate detection (Kafka's max.in.flight for idempotence).
const producerWindow = 5

// Producers is one partition's idempotent-producer state: per producer
// id, its epoch, last sequence and last producerWindow batches, as Kafka
// keeps them. The log keeps one per partition, and log/logtest's
// in-memory log uses the same type, so both apply the same rules. The
// zero value is ready. Not safe for concurrent use: the partition's lock
// guards it.
type Producers struct {
	m map[int64]*producerState
}

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
	if st != nil && h.ProducerEpoch < st.epoch {
		return -1, ErrInvalidProducerEpoch
	}
	if st == nil || h.ProducerEpoch > st.epoch || st.n == 0 || h.Control() {
		// A new producer, a new epoch, or an epoch whose first batch
		// this is (a transaction marker started it): any sequence
		// starts it. A marker (control batch) has no sequence.
		return -1, nil
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

// Check applies the idempotent-producer rules to every batch of one
// append before anything is written; a later batch of the same producer
// continues an earlier one of the append. A repeat of one of a producer's
// last five batches returns that batch's base offset and
// ErrDuplicateSequence (inside a multi-batch append it is
// ErrOutOfOrderSequence); a sequence gap ErrOutOfOrderSequence, an older
// epoch ErrInvalidProducerEpoch.
func (ps *Producers) Check(hdrs []batch.Header) (int64, error) {
	var overlay map[int64]*producerState
	for i := range hdrs {
		h := &hdrs[i]
		if h.ProducerID < 0 {
			continue
		}
		st := ps.m[h.ProducerID]
		if o, ok := overlay[h.ProducerID]; ok {
			st = o
		}
		dup, err := checkProducer(st, h)
		if err != nil {
			if errors.Is(err, ErrDuplicateSequence) && (i > 0 || len(hdrs) > 1) {
				return -1, fmt.Errorf("%w: duplicate inside a multi-batch append", ErrOutOfOrderSequence)
			}
			return dup, err
		}
		if len(hdrs) > 1 && !h.Control() {
			if overlay == nil {
				overlay = map[int64]*producerState{}
			}
			o := &producerState{epoch: h.ProducerEpoch, last: lastSeq(h), n: 1}
			o.recent[0] = seqEntry{first: h.BaseSequence, last: o.last, base: -1}
			overlay[h.ProducerID] = o
		}
	}
	return -1, nil
}

// Record notes an appended idempotent batch at base (batches without a
// producer id are ignored).
func (ps *Producers) Record(h *batch.Header, base int64) {
	if h.ProducerID < 0 {
		return
	}
	if ps.m == nil {
		ps.m = map[int64]*producerState{}
	}
	st := ps.m[h.ProducerID]
	if h.Control() {
		// A transaction marker moves the producer to its epoch (a
		// coordinator that fenced the producer wrote it with the new
		// one) and leaves its sequences alone.
		if st == nil || h.ProducerEpoch > st.epoch {
			ps.m[h.ProducerID] = &producerState{epoch: h.ProducerEpoch}
		}
		return
	}
	if st == nil || h.ProducerEpoch != st.epoch {
		st = &producerState{epoch: h.ProducerEpoch}
		ps.m[h.ProducerID] = st
	}
	st.last = lastSeq(h)
	st.recent[st.head] = seqEntry{first: h.BaseSequence, last: st.last, base: base}
	st.head = (st.head + 1) % producerWindow
	if st.n < producerWindow {
		st.n++
	}
}

// Reset forgets every producer (after a truncation: producers start over).
func (ps *Producers) Reset() { ps.m = nil }

// ProducerIDFloor is implemented by logs that know the producer ids their
// partitions hold idempotence state for. A Kafka server hands out new
// producer ids at or above the floor: an id the log still remembers, given
// to a new producer, would make its first batches look like duplicates of
// the old producer's (answered, never stored). That happens when a box's
// data comes back from the site's copies (replicate's restore) while its
// producer id counter (meta.db) starts again.
type ProducerIDFloor interface {
	// ProducerIDFloor returns the smallest producer id that is safe to
	// hand out, or an error while that is not known yet (a restore is
	// bringing batches back); the caller answers a retriable error.
	ProducerIDFloor() (int64, error)
}

// notePID raises the log's highest producer id to id.
func (l *logImpl) notePID(id int64) {
	for {
		cur := l.maxPID.Load()
		if id <= cur || l.maxPID.CompareAndSwap(cur, id) {
			return
		}
	}
}

// ProducerIDFloor implements ProducerIDFloor: one above the highest
// producer id of any batch appended or recovered since open (the
// idempotence state of every partition is a subset of those).
func (l *logImpl) ProducerIDFloor() (int64, error) { return l.maxPID.Load() + 1, nil }
