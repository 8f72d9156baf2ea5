package log

import (
	"fmt"
	"os"
)

// Mirrors (TopicConfig.Origin set) are written only by AppendAt, at the
// origin node's offsets. A mirror made after the origin's retention
// deleted its oldest segments starts where the origin's log starts: the
// first AppendAt on an empty partition may begin past its next offset.

// emptyLocked reports whether the partition holds nothing and waits for
// nothing (one empty segment, no queued append).
func (p *partition) emptyLocked() bool {
	act := p.active()
	return len(p.segs) == 1 && act.size == 0 && p.next == act.base && p.hwm == p.next &&
		len(p.waiters) == 0 && len(p.unsynced) == 0
}

// rebaseLocked starts the empty partition at base. The old empty segment
// file is removed before the new one is created, so a crash leaves at most
// one of them (none: the partition reopens empty at 0 and the mirror
// rebases again).
func (p *partition) rebaseLocked(base int64) error {
	old := p.active()
	old.deleted = true
	if old.virt == nil {
		p.l.files.forget(old.path)
		if err := p.l.fs.Remove(old.path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove %s: %w", old.rel, err)
		}
	}
	ns := newSegment(p.dir, p.rel, base)
	cf, err := p.l.files.get(ns.path, true)
	if err != nil {
		return fmt.Errorf("create segment %d: %w", base, err)
	}
	p.l.files.release(cf)
	if err := p.syncDir(); err != nil {
		return err
	}
	ns.next = base
	p.segs = []*segment{ns}
	p.next = base
	p.hwm, p.hwmSeg, p.hwmPos = base, ns, 0
	p.durable, p.durableSeg, p.durablePos = base, ns, 0
	p.l.logger.Info("log: mirror partition starts at the origin's log start", "topic", p.t.name, "partition", p.id, "offset", base)
	return nil
}
