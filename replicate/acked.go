package replicate

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/runnel/runnel/log/meta"
)

// The acknowledged end survives a restart (Kafka's high-watermark
// checkpoint): each partition's is written to meta about once a second
// when it moved, and on Close. A node back from a restart serves its
// topics with min.insync.replicas > 1 up to where they were acknowledged
// (no further than its own end) without waiting for its copies to fetch
// again; what it appends later needs its copies as before. A copy taken
// back at start (restore.go) is on two boxes, this one and the copy's:
// that much counts as acknowledged for min.insync.replicas <= 2.

const ackedBucket = "replicate-acked"

// The mirrors each partition was last assigned (originPart.assigned)
// survive a restart too, saved with the acknowledged ends: while a placed
// mirror catches up, the ones that stood in for it stay assigned after
// the origin restarts (origin.isr), instead of placement alone deciding
// again and leaving the partition without an in-sync copy until the
// placed one has caught up.
const assignedBucket = "replicate-assigned"

func ackedKey(k tp) string { return k.topic + "\x00" + strconv.Itoa(int(k.partition)) }

// loadAcked reads the stored acknowledged ends, each capped at the
// partition's end now (a tail lost since is not acknowledged any more).
func (o *origin) loadAcked() {
	o.r.inner.Meta().KVForEach(ackedBucket, func(key string, v []byte) error {
		topic, ps, ok := strings.Cut(key, "\x00")
		p, err1 := strconv.ParseInt(ps, 10, 32)
		acked, err2 := strconv.ParseInt(string(v), 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil
		}
		_, hwm, err := o.r.inner.Offsets(topic, int32(p))
		if err != nil {
			return nil
		}
		o.mu.Lock()
		part := o.partLocked(tp{topic, int32(p)})
		part.acked = min(acked, hwm)
		part.saved = acked
		o.mu.Unlock()
		return nil
	})
}

// loadAssigned reads the stored assigned mirrors of this node's own
// partitions.
func (o *origin) loadAssigned() {
	o.r.inner.Meta().KVForEach(assignedBucket, func(key string, v []byte) error {
		topic, ps, ok := strings.Cut(key, "\x00")
		p, err := strconv.ParseInt(ps, 10, 32)
		var ids []string
		if !ok || err != nil || json.Unmarshal(v, &ids) != nil {
			return nil
		}
		if info, err := o.r.inner.Topic(topic); err != nil || info.Config.Origin != "" {
			return nil
		}
		o.mu.Lock()
		part := o.partLocked(tp{topic, int32(p)})
		part.assigned = ids
		part.savedAssigned = slices.Clone(ids) // isr reuses assigned's array
		o.mu.Unlock()
		return nil
	})
}

// saveAcked writes the acknowledged ends that moved since the last save,
// and the assigned mirrors that changed.
func (o *origin) saveAcked() {
	var ws, as []meta.KVWrite
	var saved []savedList
	o.saveMu.Lock()
	defer o.saveMu.Unlock()
	o.mu.Lock()
	for k, p := range o.parts {
		if p.acked >= 0 && p.acked != p.saved {
			ws = append(ws, meta.KVWrite{Key: ackedKey(k), Value: []byte(strconv.FormatInt(p.acked, 10))})
			p.saved = p.acked
		}
		if !slices.Equal(p.assigned, p.savedAssigned) {
			v, _ := json.Marshal(p.assigned)
			as = append(as, meta.KVWrite{Key: ackedKey(k), Value: v})
			saved = append(saved, savedList{p, slices.Clone(p.assigned)})
		}
	}
	o.mu.Unlock()
	if len(ws) > 0 {
		if err := o.r.inner.Meta().KVApply(ackedBucket, ws); err != nil {
			o.r.logger.Warn("replicate: cannot store acknowledged ends", "err", err)
		}
	}
	if len(as) > 0 {
		if err := o.r.inner.Meta().KVApply(assignedBucket, as); err != nil {
			o.r.logger.Warn("replicate: cannot store assigned mirrors", "err", err)
			return // tried again at the next save
		}
		o.mu.Lock()
		for _, s := range saved {
			s.p.savedAssigned = s.ids
		}
		o.mu.Unlock()
	}
}

// savedList is an assignment written by saveAcked.
type savedList struct {
	p   *originPart
	ids []string
}

// forgetAcked drops a deleted topic's stored ends.
func (o *origin) forgetAcked(partitions []tp) {
	var ws []meta.KVWrite
	for _, k := range partitions {
		ws = append(ws, meta.KVWrite{Key: ackedKey(k)})
	}
	if len(ws) > 0 {
		o.r.inner.Meta().KVApply(ackedBucket, ws)
		o.r.inner.Meta().KVApply(assignedBucket, ws)
	}
}

// restored raises a partition's acknowledged end to end after the start
// took records back from a copy up to there (they are on this box and
// the copy's).
func (o *origin) restored(topic string, partition int32, end int64, minISR int32) {
	if minISR > 2 {
		return
	}
	o.mu.Lock()
	p := o.partLocked(tp{topic, partition})
	if end > p.acked {
		p.acked = end
		p.watch.Notify(end)
	}
	o.mu.Unlock()
}
