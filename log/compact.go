package log

import (
	"encoding/binary"
	"math"

	"github.com/runnel/runnel/log/batch"
)

// compactor decides which records of a compacted partition stay and
// builds the cleaned bytes of a segment. Offsets never change: a batch
// that keeps every record is copied as it is; one that loses some is
// split into batches of its kept runs (each with the base offset of its
// first record, so every batch stays dense: count = lastOffsetDelta+1);
// the offsets of removed records are covered by empty batches (no
// records, lastOffsetDelta spanning the gap: Kafka's compacted-empty
// batch, which every client skips), one per run of removed offsets of
// one leader epoch. So batches still chain (baseOffset = previous
// lastOffset + 1), and recovery, the indexes, the epoch checks and the
// mirrors' AppendAt see a segment like any other.
type compactor struct {
	keys        map[keyHash]int64 // latest offset of each key
	tombHorizon int64             // tombstones whose timestamp is before this (ms) go

	out     []byte // the cleaned segment being built
	removed int64  // records removed from it
	gap     gapRun
	b       batch.Builder
	// spill takes the pending output (out) when it grows past
	// cleanerBufBytes (cleanWriter.spill).
	spill func(c *compactor, final bool) error
}

// gapRun is a run of removed offsets not yet written as an empty batch.
type gapRun struct {
	open       bool
	base, last int64
	epoch      int32
	maxTs      int64
}

// note records the keys of one batch in the map (mapping pass).
// Transactional and control batches neither supersede nor are removed:
// whether their records count is the transaction's outcome.
func (c *compactor) note(b []byte, h *batch.Header) error {
	if h.Control() || h.Transactional() || h.RecordCount == 0 {
		return nil
	}
	recs, err := batch.Records(b)
	if err != nil {
		return err
	}
	for i := range recs {
		if recs[i].Key != nil {
			c.keys[hashKey(recs[i].Key)] = recs[i].Offset
		}
	}
	return nil
}

// keep reports whether a record stays: a record without a key, the
// latest of its key (a tombstone only until tombHorizon).
func (c *compactor) keep(r *batch.Record) bool {
	if r.Key == nil {
		return true
	}
	latest, ok := c.keys[hashKey(r.Key)]
	if ok && latest > r.Offset {
		return false
	}
	return r.Value != nil || r.Timestamp >= c.tombHorizon
}

func (c *compactor) reset() {
	c.out = c.out[:0]
	c.removed = 0
	c.gap = gapRun{}
}

// filter adds one batch of the segment being cleaned to out.
func (c *compactor) filter(b []byte, h *batch.Header) error {
	if err := c.filterBatch(b, h); err != nil {
		return err
	}
	if len(c.out) >= cleanerBufBytes && c.spill != nil {
		return c.spill(c, false)
	}
	return nil
}

func (c *compactor) filterBatch(b []byte, h *batch.Header) error {
	if h.Control() || h.Transactional() || h.RecordCount == 0 {
		c.copyBatch(b)
		return nil
	}
	recs, err := batch.Records(b)
	if err != nil {
		return err
	}
	all := true
	for i := range recs {
		if !c.keep(&recs[i]) {
			all = false
			break
		}
	}
	if all {
		c.copyBatch(b)
		return nil
	}
	for i := 0; i < len(recs); {
		if !c.keep(&recs[i]) {
			c.addGap(recs[i].Offset, h.LeaderEpoch, recs[i].Timestamp)
			c.removed++
			i++
			continue
		}
		j := i
		for j < len(recs) && c.keep(&recs[j]) {
			j++
		}
		c.flushGap()
		c.out = append(c.out, c.subBatch(h, recs[i:j], int32(recs[i].Offset-h.BaseOffset))...)
		i = j
	}
	return nil
}

func (c *compactor) copyBatch(b []byte) {
	c.flushGap()
	c.out = append(c.out, b...)
}

// subBatch encodes kept records of the batch h as a batch of their own.
func (c *compactor) subBatch(h *batch.Header, recs []batch.Record, delta int32) []byte {
	c.b.Reset()
	c.b.Codec = h.Codec()
	if h.ProducerID >= 0 {
		seq := h.BaseSequence
		if seq >= 0 {
			seq += delta
		}
		c.b.SetProducer(h.ProducerID, h.ProducerEpoch, seq)
	} else {
		c.b.ProducerID = -1
	}
	for i := range recs {
		c.b.Add(recs[i].Timestamp, recs[i].Key, recs[i].Value, recs[i].Headers)
	}
	out := c.b.Bytes()
	binary.BigEndian.PutUint64(out[batch.OffBaseOffset:], uint64(recs[0].Offset))
	binary.BigEndian.PutUint32(out[batch.OffLeaderEpoch:], uint32(h.LeaderEpoch))
	if h.LogAppendTime() {
		attrs := binary.BigEndian.Uint16(out[batch.OffAttributes:]) | 0x08
		binary.BigEndian.PutUint16(out[batch.OffAttributes:], attrs)
		binary.BigEndian.PutUint64(out[batch.OffMaxTimestamp:], uint64(h.MaxTimestamp))
		binary.BigEndian.PutUint32(out[batch.OffCRC:], batch.Checksum(out))
	}
	return out
}

// addGap extends the pending run of removed offsets with offset (or
// starts a new one).
func (c *compactor) addGap(offset int64, epoch int32, ts int64) {
	g := &c.gap
	if g.open && (g.last+1 != offset || g.epoch != epoch || offset-g.base >= math.MaxInt32) {
		c.flushGap()
	}
	if !g.open {
		*g = gapRun{open: true, base: offset, last: offset, epoch: epoch, maxTs: ts}
		return
	}
	g.last = offset
	g.maxTs = max(g.maxTs, ts)
}

// flushGap writes the pending run of removed offsets as an empty batch.
func (c *compactor) flushGap() {
	g := &c.gap
	if !g.open {
		return
	}
	c.out = append(c.out, batch.Empty(g.base, g.last, g.epoch, g.maxTs)...)
	*g = gapRun{}
}
