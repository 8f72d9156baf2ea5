package forward

// Cursors: saving acknowledged progress to meta, and to the cursor log.

import (
	"context"
	"time"

	"github.com/runnel/runnel/log/meta"
)

// maybeFlush asks the flusher to save cursors when due (force) or when
// half the window is acknowledged but unsaved.
func (r *route) maybeFlush(force bool) {
	r.mu.Lock()
	due := force || r.span >= int64(r.cfg.MaxInFlight/2)
	r.mu.Unlock()
	if due {
		signal(r.flushc)
	}
}

// flusher saves cursors when asked; owned by the route.
func (r *route) flusher(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.flushc:
			r.flushNow()
		}
	}
}

// flushNow writes every acknowledged cursor that changed to meta, then
// appends what meta holds to the cursor log (when one is configured).
func (r *route) flushNow() {
	r.f.flushMu.Lock() // one writer per route at a time (flusher vs shutdown)
	defer r.f.flushMu.Unlock()
	r.mu.Lock()
	offs := map[meta.TopicPartition]int64{}
	for _, p := range r.order {
		if p.acked != p.saved {
			offs[meta.TopicPartition{Topic: p.topic, Partition: p.part}] = p.acked
		}
	}
	r.mu.Unlock()
	if len(offs) > 0 {
		if err := r.f.opts.Log.Meta().SetCursors(r.name, offs); err != nil {
			r.fail(err)
			r.logger.Error("forward: cannot save cursors", "err", err)
			return
		}
		r.mu.Lock()
		for tp, o := range offs {
			if p := r.parts[tp]; p != nil && o > p.saved {
				r.span -= o - p.saved
				p.saved = o
			}
		}
		r.mu.Unlock()
		signal(r.wake)
	}
	r.logCursorsLocked()
}

// logCursorsLocked appends the saved cursors that the cursor log does not
// hold yet (all of them every CursorSnapshotInterval) as one batch. A
// failure is counted and logged; forwarding goes on (meta holds the
// cursors; peers learn them at the next save that works). The caller
// holds f.flushMu.
func (r *route) logCursorsLocked() {
	topic := r.f.opts.CursorTopic
	if topic == "" {
		return
	}
	now := time.Now()
	snap := now.Sub(r.lastSnap) >= r.f.opts.CursorSnapshotInterval
	r.mu.Lock()
	var recs []CursorRecord
	var parts []*part
	for _, p := range r.order {
		if p.saved == p.duty.logged && !snap {
			continue
		}
		recs = append(recs, r.progressLocked(p))
		parts = append(parts, p)
	}
	r.mu.Unlock()
	if len(recs) == 0 {
		if snap {
			r.lastSnap = now
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := AppendCursorRecords(ctx, r.f.opts.Log, topic, recs...)
	cancel()
	if err != nil {
		if n := r.cursorLogErrs.Add(1); n <= 3 || n%100 == 0 {
			r.logger.Error("forward: cannot append to the cursor log", "err", err, "failures", n)
		}
		return
	}
	if snap {
		r.lastSnap = now
	}
	r.mu.Lock()
	for i, p := range parts {
		p.duty.logged = recs[i].Offset
	}
	r.mu.Unlock()
}

// progressLocked is p's saved cursor as a cursor log record.
func (r *route) progressLocked(p *part) CursorRecord {
	return CursorRecord{Kind: CursorProgress, Node: r.f.opts.NodeID, Origin: p.duty.origin,
		Topic: p.duty.topic, Partition: p.part, Route: r.cfg.Name, Offset: p.saved, Epoch: p.duty.epoch}
}

// snapshotTimer is what a quiet route (its tickers stopped) waits on for
// its next full write to the cursor log; nil when not quiet or without a
// cursor log.
func (r *route) snapshotTimer(quiet bool) <-chan time.Time {
	if !quiet || r.f.opts.CursorTopic == "" {
		return nil
	}
	r.f.flushMu.Lock()
	next := r.lastSnap.Add(r.f.opts.CursorSnapshotInterval)
	r.f.flushMu.Unlock()
	return time.After(max(time.Until(next), 0))
}
