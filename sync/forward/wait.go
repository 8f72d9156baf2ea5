package forward

// Waiting for work: an idle route sleeps until the log signals a change in
// one of its partitions or in the topic set, an acknowledgement arrives,
// or (connected and idle) its link is due for a ping. It takes no wakeup
// of its own while there is nothing to do.

import (
	"time"

	"github.com/runnel/runnel/log"
)

// snapshotHWMs records each partition's HWM before a pump. A pump that
// then sends nothing leaves the route waiting for an HWM past these
// (watchParts): data that arrived during the pump wakes it at once, data
// the window held back does not wake it again and again.
func (r *route) snapshotHWMs() {
	lg := r.f.opts.Log
	r.mu.Lock()
	parts := append([]*part(nil), r.order...)
	r.mu.Unlock()
	for _, p := range parts {
		_, hwm, err := lg.Offsets(p.topic, p.part)
		r.mu.Lock()
		if err == nil {
			p.seen = hwm
		} else {
			p.seen = -1 // gone: the topic watch brings the change
		}
		r.mu.Unlock()
	}
}

// watchParts registers w (reset first) on every partition of the route,
// past its snapshot HWM.
func (r *route) watchParts(w *log.Waiter) {
	lg := r.f.opts.Log
	w.Reset()
	r.mu.Lock()
	parts := append([]*part(nil), r.order...)
	r.mu.Unlock()
	for _, p := range parts {
		r.mu.Lock()
		seen := p.seen
		r.mu.Unlock()
		if seen < 0 {
			continue
		}
		lg.Watch(w, p.topic, p.part, seen) // an error: the topic is gone, the topic watch wakes the route
	}
}

// quiet reports whether the route has nothing to refresh, save or retry
// on a timer: nothing in flight, every acknowledged offset saved, no
// error, no partition waiting to retry a read.
func (r *route) quiet() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inflight > 0 || r.span != 0 || r.failed || r.probing {
		return false
	}
	for _, p := range r.order {
		if !p.readRetry.IsZero() {
			return false
		}
	}
	return true
}

// pingTimer is what a quiet route waits on for its next idle ping (nil:
// no wakeup, when not quiet or the sink has no Ping).
func (r *route) pingTimer(quiet bool, sink Sink) <-chan time.Time {
	if !quiet {
		return nil
	}
	if _, ok := sink.(Pinger); !ok {
		return nil
	}
	r.mu.Lock()
	d := time.Until(r.nextPing)
	r.mu.Unlock()
	return time.After(max(d, 0))
}
