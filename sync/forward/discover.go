package forward

// Topic discovery: which partitions a route covers and where each starts.

import (
	"path"
	"strconv"
	"strings"

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

// refresh picks up new topics and partitions and forgets deleted ones.
// New partitions get their start cursor saved at once.
func (r *route) refresh() {
	lg := r.f.opts.Log
	seen := map[meta.TopicPartition]bool{}
	fresh := map[meta.TopicPartition]int64{}
	for _, ti := range lg.Topics() {
		if !r.matches(ti.Name) {
			continue
		}
		for _, pi := range ti.Partitions {
			tp := meta.TopicPartition{Topic: ti.Name, Partition: pi.Partition}
			seen[tp] = true
			r.mu.Lock()
			p := r.parts[tp]
			if p != nil {
				p.hwm = pi.HWM
				r.mu.Unlock()
				continue
			}
			r.mu.Unlock()
			start, ok := r.loaded[tp]
			if !ok {
				start = pi.Start
				if r.firstStart && r.cfg.Start == StartLatest {
					start = pi.HWM
				}
				fresh[tp] = start
			}
			p = &part{topic: ti.Name, part: pi.Partition, next: start, acked: start, saved: start, hwm: pi.HWM,
				duty: ownDuty(r.f.opts.NodeID, ti.Name)}
			p.target = render(r.cfg.Target, ti.Name, r.f.opts.NodeID, r.f.opts.Site)
			p.keyed = hasKey(p.target)
			p.hdrs = [3]Header{
				{Key: HeaderNode, Value: []byte(r.f.opts.NodeID)},
				{Key: HeaderTopic, Value: []byte(ti.Name)},
				{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(pi.Partition)))},
			}
			r.mu.Lock()
			r.parts[tp] = p
			r.order = append(r.order, p)
			r.mu.Unlock()
			r.logger.Debug("forward: partition added", "topic", ti.Name, "partition", pi.Partition, "offset", start)
		}
	}
	// Partitions that appeared while the route already ran start at the
	// beginning: "latest" only applies to what existed at first start.
	r.firstStart = false
	r.mu.Lock()
	kept := r.order[:0]
	for _, p := range r.order {
		tp := meta.TopicPartition{Topic: p.topic, Partition: p.part}
		if !seen[tp] {
			// Deleted (the log dropped its cursors too): a topic created
			// again under the name starts from its beginning.
			p.gone = true
			r.span -= p.next - p.saved
			delete(r.parts, tp)
			delete(r.loaded, tp)
			continue
		}
		kept = append(kept, p)
	}
	for i := len(kept); i < len(r.order); i++ {
		r.order[i] = nil
	}
	r.order = kept
	r.mu.Unlock()
	if len(fresh) > 0 {
		if err := lg.Meta().SetCursors(r.name, fresh); err != nil {
			r.setErr(err)
		}
		for tp, o := range fresh {
			r.loaded[tp] = o
		}
	}
}
