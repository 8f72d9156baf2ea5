package log

import (
	"os"
	"time"

	"github.com/runnel/runnel/log/meta"
)

// retentionLoop applies age and size retention periodically.
func (l *logImpl) retentionLoop() {
	t := time.NewTicker(l.opts.RetentionCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-t.C:
		}
		l.applyRetention()
	}
}

// applyRetention deletes whole segments past their topic's retention,
// keeping what held cursors still need.
func (l *logImpl) applyRetention() {
	holds := l.holdCursors()
	for _, t := range l.topicList() {
		cfg := t.config()
		if cfg.RetentionAge < 0 && cfg.RetentionBytes < 0 || !cfg.Deletes() {
			continue
		}
		for _, p := range t.partitions() {
			n := p.retain(cfg, holds, time.Now())
			l.stats.retentionDeletes.Add(uint64(n))
		}
	}
	// A shared file whose last reference went while it was still being
	// written goes now (cheap when there is none).
	l.shared.collect()
}

// holdCursors returns, per partition, the lowest offset a held cursor
// still needs.
func (l *logImpl) holdCursors() map[meta.TopicPartition]int64 {
	l.holdMu.Lock()
	names := make([]string, 0, len(l.holds))
	for n := range l.holds {
		names = append(names, n)
	}
	l.holdMu.Unlock()
	out := map[meta.TopicPartition]int64{}
	for _, n := range names {
		cs, err := l.meta.Cursors(n)
		if err != nil {
			l.logger.Warn("log: cannot read held cursors; retention waits", "cursor", n, "err", err)
			return nil
		}
		for tp, off := range cs {
			if cur, ok := out[tp]; !ok || off < cur {
				out[tp] = off
			}
		}
	}
	return out
}

// deletable returns the sealed segments that are wholly visible (and so
// safe to delete), oldest first. p.mu must be held.
func (p *partition) deletableLocked() []*segment {
	var out []*segment
	for _, s := range p.segs[:len(p.segs)-1] {
		if s == p.hwmSeg || s.next > p.hwm {
			break
		}
		out = append(out, s)
	}
	return out
}

// retain applies retention to one partition and returns segments deleted.
func (p *partition) retain(cfg TopicConfig, holds map[meta.TopicPartition]int64, now time.Time) int {
	if holds == nil {
		return 0
	}
	hold, held := holds[meta.TopicPartition{Topic: p.t.name, Partition: p.id}]
	p.mu.Lock()
	cands := p.deletableLocked()
	var total int64
	for _, s := range p.segs {
		total += s.size
	}
	sizes := make([]int64, len(cands))
	for i, s := range cands {
		sizes[i] = s.size
	}
	p.mu.Unlock()
	var del []*segment
	for i, s := range cands {
		if held && s.next > hold {
			break
		}
		drop := false
		if cfg.RetentionBytes >= 0 && total-sizes[i] >= cfg.RetentionBytes {
			drop = true
		}
		if !drop && cfg.RetentionAge >= 0 {
			if err := s.ensureIndex(p.l, sizes[i]); err == nil {
				s.mu.Lock()
				ts := s.maxTs
				s.mu.Unlock()
				if ts < 0 && s.virt == nil {
					if st, err := p.l.fs.Stat(s.path); err == nil {
						ts = st.ModTime().UnixMilli()
					}
				}
				drop = ts >= 0 && now.UnixMilli()-ts > cfg.RetentionAge.Milliseconds()
			}
		}
		if !drop {
			break
		}
		del = append(del, s)
		total -= sizes[i]
	}
	if len(del) == 0 {
		return 0
	}
	p.deleteOldest(len(del), "retention")
	return len(del)
}

// deleteOldest removes the n oldest segments (which must be deletable).
func (p *partition) deleteOldest(n int, why string) int {
	p.mu.Lock()
	cands := p.deletableLocked()
	if n > len(cands) {
		n = len(cands)
	}
	gone := cands[:n]
	for _, s := range gone {
		s.deleted = true
	}
	p.segs = p.segs[n:]
	keep := p.unsynced[:0]
	for _, s := range p.unsynced {
		dead := false
		for _, g := range gone {
			dead = dead || g == s
		}
		if !dead {
			keep = append(keep, s)
		}
	}
	p.unsynced = keep
	p.mu.Unlock()
	shared := false
	for _, s := range gone {
		if s.virt != nil {
			p.l.shared.release(s.sharedFiles())
			shared = true
			p.l.logger.Info("log: segment deleted", "topic", p.t.name, "partition", p.id, "offset", s.base, "reason", why)
			continue
		}
		p.l.files.forget(s.path)
		p.l.indexes.forget(s)
		for _, path := range []string{s.path, indexPath(s.path), timeIndexPath(s.path)} {
			if err := p.l.fs.Remove(path); err != nil && !os.IsNotExist(err) {
				p.l.logger.Warn("log: cannot remove segment file", "file", path, "err", err)
			}
		}
		p.l.logger.Info("log: segment deleted", "topic", p.t.name, "partition", p.id, "offset", s.base, "reason", why)
	}
	if shared {
		p.l.shared.collect()
	}
	return n
}
