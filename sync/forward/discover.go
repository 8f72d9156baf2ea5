package forward

// Topic discovery: which partitions a route covers and where each starts.

import (
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/meta"
)

// matches reports whether topic belongs to the route.
func (r *route) matches(topic string) bool {
	for _, p := range r.cfg.Topics {
		if p == topic {
			return true
		}
		if strings.HasPrefix(topic, "__") {
			continue
		}
		if ok, _ := path.Match(p, topic); ok {
			return true
		}
	}
	return false
}

// loadCursors reads the route's saved cursors once at start.
func (r *route) loadCursors() error {
	c, err := r.f.opts.Log.Meta().Cursors(r.name)
	if err != nil {
		return err
	}
	r.loaded = c
	r.firstStart = len(c) == 0
	return nil
}

// clampCursors moves saved cursors that lie beyond their partition's HWM
// back to it, and saves them at once. That happens after the log lost an
// unsynced tail (fsync interval/never, or damage) while the cursor, in
// bbolt, survived: without the clamp, records appended again at the lost
// offsets would be skipped. Start calls it before any route runs (and
// before ingest listeners start, see cmd/runnel).
func (r *route) clampCursors() {
	lg := r.f.opts.Log
	saved, err := lg.Meta().Cursors(r.name)
	if err != nil {
		return
	}
	fixed := map[meta.TopicPartition]int64{}
	for tp, off := range saved {
		_, hwm, err := lg.Offsets(tp.Topic, tp.Partition)
		if err == nil && off > hwm {
			fixed[tp] = hwm
			r.logger.Warn("forward: cursor beyond the log end (tail lost), moving back", "topic", tp.Topic,
				"partition", tp.Partition, "offset", off, "hwm", hwm)
		}
	}
	if len(fixed) > 0 {
		if err := lg.Meta().SetCursors(r.name, fixed); err != nil {
			r.logger.Error("forward: save clamped cursors", "err", err)
		}
	}
}

// refresh picks up new topics and partitions (or duties) and forgets
// deleted ones; partitions that are no longer duties start stopping (see
// reap). New partitions get their start cursor saved at once.
func (r *route) refresh() {
	lg := r.f.opts.Log
	infos := map[meta.TopicPartition]log.PartitionInfo{}
	want := map[meta.TopicPartition]wantPart{}
	node := r.f.opts.NodeID
	if ds := r.f.duties; ds != nil {
		for _, ti := range lg.Topics() {
			for _, pi := range ti.Partitions {
				infos[meta.TopicPartition{Topic: ti.Name, Partition: pi.Partition}] = pi
			}
		}
		for tp, d := range ds.snapshot() {
			if _, ok := infos[tp]; ok && r.matches(d.Topic) {
				want[tp] = wantPart{duty: d, own: d.Origin == node}
			}
		}
	} else {
		for _, ti := range lg.Topics() {
			if !r.matches(ti.Name) {
				continue
			}
			for _, pi := range ti.Partitions {
				tp := meta.TopicPartition{Topic: ti.Name, Partition: pi.Partition}
				infos[tp] = pi
				want[tp] = wantPart{duty: Duty{Origin: node, Topic: ti.Name, Partition: pi.Partition}, own: true}
			}
		}
	}
	fresh := map[meta.TopicPartition]int64{}
	now := time.Now()
	for tp, w := range want {
		pi := infos[tp]
		r.mu.Lock()
		p := r.parts[tp]
		if p != nil {
			p.hwm = pi.HWM
			switch {
			case r.f.duties == nil:
			case p.duty.id != w.duty.id():
				if !p.duty.stopping {
					r.stopLocked(p, now) // the new duty starts once this one is reaped
				}
			case p.duty.stopping:
				// The same duty is back before the partition drained.
				p.duty.stopping = false
				r.stopping--
				p.duty.why = w.duty.Why
			default:
				p.duty.why = w.duty.Why
			}
			r.mu.Unlock()
			continue
		}
		r.mu.Unlock()
		if r.f.duties != nil && !r.f.duties.acquire(w.duty.id()) {
			continue // left the duties since the snapshot
		}
		saved, ok := r.loaded[tp]
		start := int64(-1)
		if ok {
			start = saved
		}
		if from, ok := w.duty.From[r.cfg.Name]; ok && from > start {
			start = from
		}
		if start < 0 {
			start = pi.Start
			if w.own && r.firstStart && r.cfg.Start == StartLatest {
				start = pi.HWM
			}
		}
		if !ok || start != saved {
			fresh[tp] = start
		}
		p = &part{topic: tp.Topic, part: tp.Partition, next: start, acked: start, saved: start, hwm: pi.HWM}
		if r.f.duties != nil {
			d := w.duty
			p.duty = partDuty{origin: d.Origin, topic: d.Topic, epoch: d.Epoch, foreign: !w.own, id: d.id(),
				why: d.Why, since: now, logged: -1}
		} else {
			p.duty = ownDuty(node, tp.Topic)
		}
		p.target = render(r.cfg.Target, p.duty.topic, p.duty.origin, r.f.opts.Site)
		p.keyed = hasKey(p.target)
		p.hdrs = [3]Header{
			{Key: HeaderNode, Value: []byte(p.duty.origin)},
			{Key: HeaderTopic, Value: []byte(p.duty.topic)},
			{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(tp.Partition)))},
		}
		r.mu.Lock()
		r.parts[tp] = p
		r.order = append(r.order, p)
		r.mu.Unlock()
		r.logger.Debug("forward: partition added", "topic", tp.Topic, "partition", tp.Partition, "offset", start,
			"origin", p.duty.origin, "epoch", p.duty.epoch)
	}
	// Partitions that appeared while the route already ran start at the
	// beginning: "latest" only applies to what existed at first start.
	r.firstStart = false
	var released []*part
	r.mu.Lock()
	kept := r.order[:0]
	for _, p := range r.order {
		tp := meta.TopicPartition{Topic: p.topic, Partition: p.part}
		if _, ok := infos[tp]; !ok {
			// Deleted (the log dropped its cursors too): a topic created
			// again under the name starts from its beginning.
			p.gone = true
			r.span -= p.next - p.saved
			delete(r.parts, tp)
			delete(r.loaded, tp)
			released = append(released, p)
			continue
		}
		if _, ok := want[tp]; !ok && !p.duty.stopping {
			r.stopLocked(p, now)
		}
		kept = append(kept, p)
	}
	for i := len(kept); i < len(r.order); i++ {
		r.order[i] = nil
	}
	r.order = kept
	r.mu.Unlock()
	if r.f.duties != nil {
		for _, p := range released {
			r.f.duties.release(p.duty.id, r.cfg.Name, p.acked)
		}
	}
	if len(fresh) > 0 {
		if err := lg.Meta().SetCursors(r.name, fresh); err != nil {
			r.setErr(err)
		}
		for tp, o := range fresh {
			r.loaded[tp] = o
		}
	}
}
