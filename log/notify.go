package log

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// A Waiter is one goroutine's wakeup for a wait on any number of
// partitions at once (a Kafka Fetch spanning many partitions, a mirror
// following a peer's partitions, a forwarding route): Log.Watch and
// Log.WatchTopics register it, and its channel C receives a signal when
// something it watches moved. It costs no goroutine, and a wait allocates
// nothing once the Waiter exists: keep one per waiting goroutine and Reset
// it before each wait.
//
// The usual loop:
//
//	w := log.NewWaiter()
//	for {
//		w.Reset()
//		// read; if there is nothing new, for each partition of interest:
//		l.Watch(w, topic, partition, hwmSeen)
//		select {
//		case <-w.C():
//		case <-ctx.Done():
//		}
//	}
//
// A signal says "look again", never what changed; a spurious signal is
// possible (a registration of the previous wait firing just as Reset
// runs). Reset and the Watch calls of one wait come from one goroutine;
// Signal may be called from any.
type Waiter struct {
	c   chan struct{} // one slot
	gen atomic.Uint64 // bumped by Reset: older registrations are stale
}

// NewWaiter returns a Waiter with nothing registered.
func NewWaiter() *Waiter { return &Waiter{c: make(chan struct{}, 1)} }

// C receives a signal when a watched partition or the topic set moved.
func (w *Waiter) C() <-chan struct{} { return w.c }

// Reset ends the previous wait: every registration not yet fired is
// dropped (lazily: a log forgets it at its next notification or
// registration) and a pending signal is discarded.
func (w *Waiter) Reset() {
	w.gen.Add(1)
	select {
	case <-w.c:
	default:
	}
}

// Signal wakes the waiter. Logs call it; a caller may too, to fold events
// of its own (an acknowledgement, a shutdown) into the same wait.
func (w *Waiter) Signal() {
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// WaitHWM waits until the HWM of the partition is past after (HWM > after)
// and returns it, reusing w (which it Resets). Errors: those of Watch and
// Offsets (ErrUnknownTopic once the topic is deleted, ErrClosed), ctx.Err().
// A topic deleted and created again is waited on anew.
func (w *Waiter) WaitHWM(ctx context.Context, l Log, topic string, partition int32, after int64) (int64, error) {
	for {
		w.Reset()
		if err := l.Watch(w, topic, partition, after); err != nil {
			return 0, err
		}
		_, hwm, err := l.Offsets(topic, partition)
		if err != nil {
			return 0, err
		}
		if hwm > after {
			return hwm, nil
		}
		select {
		case <-w.c:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// WatchList is the set of Waiters watching one value that only grows (a
// partition's HWM, a log's topic-set version). Every implementation of Log
// keeps one per partition, so all of them wake waiters the same way: a
// registration fires once, when Notify passes its threshold or Close runs,
// and is then dropped. Notify with nobody registered is one atomic load
// and takes no lock; nothing allocates per notification. The zero value
// is ready. Safe for concurrent use.
type WatchList struct {
	n atomic.Int32 // len(regs), read without the lock by Notify

	mu     sync.Mutex // guards regs, closed
	regs   []watchReg // live and stale registrations
	closed bool       // Close ran: registrations fire at once
}

type watchReg struct {
	w     *Waiter
	gen   uint64 // w.gen at registration
	after int64
}

// Add registers w until Notify passes after (value > after). now is the
// watched value, read by the caller under the lock that orders its
// updates before their Notify: when now > after already, or the list is
// closed, w is signalled at once instead.
func (wl *WatchList) Add(w *Waiter, after, now int64) {
	if now > after {
		w.Signal()
		return
	}
	gen := w.gen.Load()
	wl.mu.Lock()
	defer wl.mu.Unlock()
	if wl.closed {
		w.Signal()
		return
	}
	// Drop stale registrations while here, so a value that never moves
	// does not collect one per wait.
	keep := wl.regs[:0]
	for _, r := range wl.regs {
		if r.w.gen.Load() == r.gen {
			keep = append(keep, r)
		}
	}
	clear(wl.regs[len(keep):])
	wl.regs = append(keep, watchReg{w: w, gen: gen, after: after})
	wl.n.Store(int32(len(wl.regs)))
}

// Active reports whether a registration may be waiting: a caller that must
// take a lock to read the value for Notify checks this first.
func (wl *WatchList) Active() bool { return wl.n.Load() > 0 }

// Notify signals (and drops) every registration whose threshold value has
// passed, and drops stale ones.
func (wl *WatchList) Notify(value int64) {
	if wl.n.Load() == 0 {
		return
	}
	wl.mu.Lock()
	defer wl.mu.Unlock()
	keep := wl.regs[:0]
	for _, r := range wl.regs {
		switch {
		case r.w.gen.Load() != r.gen:
		case value > r.after:
			r.w.Signal()
		default:
			keep = append(keep, r)
		}
	}
	clear(wl.regs[len(keep):])
	wl.regs = keep
	if len(keep) == 0 && cap(keep) > 64 {
		wl.regs = nil
	}
	wl.n.Store(int32(len(wl.regs)))
}

// Close signals every registration and makes later Adds signal at once:
// the watched thing is gone (topic deleted, log closed).
func (wl *WatchList) Close() {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	wl.closed = true
	for _, r := range wl.regs {
		if r.w.gen.Load() == r.gen {
			r.w.Signal()
		}
	}
	wl.regs = nil
	wl.n.Store(0)
}

// Watch implements Log.
func (l *logImpl) Watch(w *Waiter, topic string, partition int32, after int64) error {
	p, err := l.part(topic, partition)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.watch.Add(w, after, p.hwm)
	p.mu.Unlock()
	return nil
}

// WatchTopics implements Log.
func (l *logImpl) WatchTopics(w *Waiter) {
	l.topicVerMu.Lock()
	v := l.topicVer
	l.topicWatch.Add(w, v, v)
	l.topicVerMu.Unlock()
}

// topicsChanged wakes the WatchTopics waiters; called after the change.
func (l *logImpl) topicsChanged() {
	l.topicVerMu.Lock()
	l.topicVer++
	v := l.topicVer
	l.topicVerMu.Unlock()
	l.topicWatch.Notify(v)
}

// notifyMoved wakes the watchers of the partitions a commit cycle made
// durable. A partition nobody watches costs one atomic load.
func (l *logImpl) notifyMoved(plans []*commitPlan) {
	for _, pl := range plans {
		p := pl.p
		if !p.watch.Active() {
			continue
		}
		p.mu.Lock()
		hwm := p.hwm
		p.mu.Unlock()
		p.watch.Notify(hwm)
	}
}

// WatchAppends implements AppendWatcher.
func (l *logImpl) WatchAppends(w *Waiter, after uint64) {
	l.appends.Add(w, int64(after), int64(after))
	if l.stats.appendedBatches.Load() > after {
		w.Signal() // an append between the caller's read and the registration
	}
}

// sleepUntilAppend waits for an append after seen (a value of
// stats.appendedBatches), for at most d (0: no limit); false when the log
// closes. Background loops with work only while appends come sleep here.
func (l *logImpl) sleepUntilAppend(w *Waiter, seen uint64, d time.Duration) bool {
	w.Reset()
	l.appends.Add(w, int64(seen), int64(seen))
	if l.stats.appendedBatches.Load() > seen {
		w.Signal() // an append between the caller's read and the registration
	}
	var limit <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		limit = t.C
	}
	select {
	case <-w.C():
	case <-limit:
	case <-l.quit:
		return false
	}
	return true
}
