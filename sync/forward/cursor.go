package forward

// Cursors: saving acknowledged progress to meta.

import (
	"context"

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

// flushNow writes every acknowledged cursor that changed.
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
	if len(offs) == 0 {
		return
	}
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
