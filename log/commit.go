package log

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// committer is the one goroutine that makes appends durable and
// acknowledges them (group commit). Writers append to the page cache under
// their partition's lock and mark the partition dirty; each cycle the
// committer takes every dirty partition, makes the new bytes durable (small
// ones through one write+fdatasync of the node journal, large ones by an
// fdatasync of each segment, spread over a few helper goroutines), then
// advances the HWMs and calls the waiting callbacks in append order.
type committer struct {
	l *logImpl

	mu      sync.Mutex // guards dirty, set, lazy, later, stopped
	dirty   []*partition
	set     map[*partition]bool
	lazy    map[*partition]bool // "interval" partitions with unsynced data
	later   []func()            // callbacks for appends that never reached a partition
	stopped bool                // the final cycle ran: deliverLater calls at once

	wake chan struct{} // one-slot

	arrivals atomic.Uint64 // appends queued (for the gather step)
	acked    atomic.Uint64 // appends acknowledged since the last gather
	pending  atomic.Int64  // bytes written under "always" since the last cycle
	// wakeAt: appends wake the committer only from this arrival count on
	// (0: every append; see awaitAcked).
	wakeAt atomic.Uint64

	// owned by the committer goroutine
	lastArrivals uint64
	lastCycle    time.Time
	ackBase      uint64 // arrivals counted before the last cycle's acks
	timer        *time.Timer
	// reused by every cycle (cleared after it): no allocation per
	// partition and cycle
	planBuf []commitPlan
	plans   []*commitPlan
	ready   []waiter
}

// syncWorkers is how many fdatasyncs of different files run at once.
const syncWorkers = 4

func newCommitter(l *logImpl) *committer {
	return &committer{l: l, set: map[*partition]bool{}, lazy: map[*partition]bool{}, wake: make(chan struct{}, 1)}
}

func (c *committer) markDirty(p *partition) {
	n := c.arrivals.Add(1)
	c.mu.Lock()
	if !c.set[p] {
		c.set[p] = true
		c.dirty = append(c.dirty, p)
	}
	c.mu.Unlock()
	if n < c.wakeAt.Load() {
		return // the committer waits for a later append (awaitAcked)
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *committer) markLazy(p *partition) {
	c.mu.Lock()
	c.lazy[p] = true
	c.mu.Unlock()
}

func (c *committer) deliverLater(fn func()) {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		fn()
		return
	}
	c.later = append(c.later, fn)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// run is the committer loop; it returns after a final cycle that syncs
// every partition once the log is closing.
func (c *committer) run() {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		final := false
		select {
		case <-c.wake:
		case <-tick.C:
		case <-c.l.quit:
			final = true
		}
		if !final {
			c.gather()
		}
		c.cycle(final)
		if final {
			// Nobody runs callbacks after this: answer late ones inline.
			c.mu.Lock()
			c.stopped = true
			later := c.later
			c.later = nil
			c.mu.Unlock()
			for _, fn := range later {
				fn()
			}
			return
		}
	}
}

// Group commit gathering (see doc.go, "The trickle case"). First the
// writers the last cycle acknowledged get to append again (awaitAcked).
// Then, before a cycle that would sync only a few small appends (under
// gatherBelow bytes; the journal writes a whole page anyway) the committer
// waits while appends keep arriving, so one sync serves more of them.
// Cycles with more start at once: writers that keep the log busy batch
// themselves during the previous sync, and waiting would only keep the
// disk idle. It stops at gatherTarget pending bytes, when
// Options.CommitWindow has passed, or after a quiet step with no new
// append: the step is four times the mean gap between appends since the
// previous cycle (within [gatherMinStep, gatherMaxStep]), so writers that
// all wait for their ack (a closed loop: nobody else is coming) lose only
// a short step, while an open-loop trickle is gathered for the whole
// window. With shared segments (store once) a commit's cost is the pages
// it dirties, so cycles under gatherBelowShared gather up to it; see
// doc.go, "Store once".
const (
	gatherBelow       = 1 << 10
	gatherBelowShared = 16 << 10
	// closedLoopWithin: writers acknowledged by a cycle that are all back
	// this soon are waiting for their acks (a closed loop).
	closedLoopWithin = 500 * time.Microsecond
	// awaitAckedWithin bounds awaitAcked. Timers under a millisecond fire
	// after about one when the process is otherwise idle, but on time when
	// it is busy: exactly when writers are slow to come back, a shorter
	// bound would be the one that holds.
	awaitAckedWithin = time.Millisecond
	gatherTarget     = 64 << 10
	gatherMinStep    = 100 * time.Microsecond
	gatherMaxStep    = time.Millisecond
)

// awaitAcked lets the writers the last cycle acknowledged append again
// before the next cycle starts. Writers that wait for their acks (a closed
// loop) then share one commit, where starting at once splits them into two
// alternating groups of half-full commits (each group appends during the
// other's fdatasync). It waits until as many appends arrived since those
// acknowledgements as there were, woken by the append that completes the
// count (not by a step timer: under a millisecond a timer sleeps a whole
// millisecond when the process is otherwise idle), at most
// awaitAckedWithin: acknowledged appenders that do not come back (an open
// loop, a paced sender) cost at most that once per cycle (counted in the
// gather's CommitWindow).
func (c *committer) awaitAcked(comeBack uint64) {
	target := c.ackBase + comeBack
	window := min(c.l.opts.CommitWindow, awaitAckedWithin)
	if comeBack == 0 || window <= 0 || c.arrivals.Load() >= target {
		return
	}
	c.wakeAt.Store(target)
	defer c.wakeAt.Store(0)
	c.resetTimer(window)
	defer c.timer.Stop()
	for c.arrivals.Load() < target {
		select {
		case <-c.wake:
		case <-c.timer.C:
			return
		case <-c.l.quit:
			return
		}
	}
}

func (c *committer) resetTimer(d time.Duration) {
	if c.timer == nil {
		c.timer = time.NewTimer(d)
	} else {
		c.timer.Reset(d)
	}
}

func (c *committer) gather() {
	comeBack := c.acked.Swap(0) // writers acknowledged by the last cycle
	begin := time.Now()
	c.awaitAcked(comeBack)
	window := c.l.opts.CommitWindow
	now := c.arrivals.Load()
	prev, since := c.lastArrivals, time.Since(c.lastCycle)
	defer func() {
		c.lastArrivals = c.arrivals.Load()
		c.lastCycle = time.Now()
	}()
	// One append per cycle (a lone sequential writer): nobody to wait for.
	below := int64(gatherBelow)
	if c.l.shared.usable() {
		// Stored once, a commit's cost is the pages it dirties, its last
		// partial page again at the next commit: gather more.
		below = gatherBelowShared
	}
	if window <= 0 || now-prev < 2 || c.pending.Load() >= below {
		return
	}
	step := 4 * since / time.Duration(now-prev)
	step = min(max(step, gatherMinStep), gatherMaxStep)
	// sharedStep is the quiet step with shared storage: a paced or bursty
	// trickle (senders that wake every millisecond or so) must not look
	// quiet, so 24 mean gaps since the last gather (at most 3ms). Writers
	// that all wait for their acks come back densely (gaps of
	// microseconds) and are caught by closedLoopWithin first.
	sharedStep := func(n uint64) time.Duration {
		return min(max(24*time.Since(c.lastCycle)/time.Duration(n-prev), gatherMinStep), 3*gatherMaxStep)
	}
	if below > gatherBelow {
		step = sharedStep(now)
		if comeBack > 0 && now-c.ackBase >= comeBack && c.pending.Load() >= gatherBelow {
			return // every writer the last cycle acknowledged is back (see below)
		}
	}
	start := time.Now()
	deadline := begin.Add(window)
	var wake chan struct{} // appends wake the gather (shared: see below)
	if below > gatherBelow {
		wake = c.wake
	}
	last := now
	c.resetTimer(step)
	defer c.timer.Stop()
	target := int64(gatherTarget)
	if below > gatherBelow {
		target = below
	}
	for c.pending.Load() < target && time.Now().Before(deadline) {
		fired := false
		select {
		case <-c.l.quit:
			return
		case <-c.timer.C:
			fired = true
		case <-wake:
		}
		n := c.arrivals.Load()
		if below > gatherBelow && comeBack > 0 && n-c.ackBase >= comeBack && time.Since(start) < closedLoopWithin &&
			c.pending.Load() >= gatherBelow {
			// Every writer the last cycle acknowledged is back at once:
			// writers that wait for their acks, nobody else is coming.
			// (Not for tiny commits: a trickle whose last commit was a
			// few records must not settle at that size.)
			return
		}
		if !fired {
			continue
		}
		if n == last && (below == gatherBelow || n-prev >= comeBack) {
			// Quiet. With shared storage only once as many appends came
			// as the last cycle acknowledged: writers that wait for
			// their acks are all back (nobody else is coming), while a
			// trickle keeps its commits as full as the last one.
			return
		}
		last = n
		if below > gatherBelow {
			step = sharedStep(n)
		}
		c.timer.Reset(step)
	}
}

// cycle runs one group commit.
func (c *committer) cycle(final bool) {
	c.pending.Store(0)
	c.mu.Lock()
	parts := c.dirty
	c.dirty = nil
	for _, p := range parts {
		delete(c.set, p)
	}
	lazy := make([]*partition, 0, len(c.lazy))
	for p := range c.lazy {
		lazy = append(lazy, p)
	}
	later := c.later
	c.later = nil
	c.mu.Unlock()
	// Due "interval" partitions (p.mu is never taken under c.mu: writers
	// hold p.mu when they mark a partition).
	now := time.Now()
	var due []*partition
	for _, p := range lazy {
		if final || now.Sub(p.lastSyncTime()) >= p.t.config().FsyncInterval {
			due = append(due, p)
		}
	}
	if len(due) > 0 {
		c.mu.Lock()
		for _, p := range due {
			delete(c.lazy, p)
		}
		c.mu.Unlock()
		inParts := make(map[*partition]bool, len(parts))
		for _, p := range parts {
			inParts[p] = true
		}
		for _, p := range due {
			if !inParts[p] {
				parts = append(parts, p)
			}
		}
	}
	for _, fn := range later {
		fn()
	}
	if final {
		parts = nil
		for _, t := range c.l.topicList() {
			parts = append(parts, t.partitions()...)
		}
	}
	if len(parts) == 0 {
		c.maybeRotateJournal(false)
		return
	}
	if cap(c.planBuf) < len(parts) {
		c.planBuf = make([]commitPlan, len(parts))
	}
	planBuf := c.planBuf[:len(parts)]
	plans := c.plans[:0]
	for i, p := range parts {
		if pl := &planBuf[i]; p.plan(pl, final, c.l.journal) {
			plans = append(plans, pl)
		}
	}
	defer func() {
		for i := range planBuf {
			planBuf[i].clear()
		}
		clear(plans)
		c.plans = plans[:0]
	}()
	// Shared storage first (a plan may also sync files that follow its
	// shared bytes): one fdatasync for every partition's entries.
	shared := false
	for _, pl := range plans {
		shared = shared || len(pl.virt) > 0
	}
	if shared {
		if err := c.l.shared.sync(); err != nil {
			for _, pl := range plans {
				if len(pl.virt) > 0 {
					pl.err = err
				}
			}
		}
	}
	// Small commits: one journal write and sync for all of them.
	var journaled []*commitPlan
	for _, pl := range plans {
		if pl.jdata != nil && pl.err == nil {
			journaled = append(journaled, pl)
		}
	}
	if len(journaled) > 0 {
		if err := c.l.journal.commit(journaled); err != nil {
			c.l.logger.Error("log: journal commit failed; this commit syncs segment files directly", "err", err)
			for _, pl := range journaled {
				pl.jdata = nil
				pl.direct = true
			}
		}
	}
	// Large commits: fdatasync each file, a few at a time.
	var wg sync.WaitGroup
	sem := make(chan struct{}, syncWorkers)
	for _, pl := range plans {
		if !pl.direct || pl.err != nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(pl *commitPlan) {
			defer wg.Done()
			defer func() { <-sem }()
			pl.err = pl.p.syncPlan(pl)
		}(pl)
	}
	wg.Wait()
	changed := false
	c.ackBase = c.arrivals.Load() // appends after this one are writers coming back (awaitAcked)
	for _, pl := range plans {
		var moved bool
		c.ready, moved = pl.p.finish(pl, c.ready[:0])
		changed = changed || moved
	}
	clear(c.ready[:cap(c.ready)]) // no callbacks kept alive
	if cap(c.ready) > maxKeptReady {
		c.ready = nil
	}
	if changed {
		c.l.notifyMoved(plans)
	}
	c.maybeRotateJournal(final)
}

// commitPlan is what one cycle does for one partition.
type commitPlan struct {
	p       *partition
	sync    bool          // make the bytes up to target durable
	direct  bool          // by fdatasync of the segment files
	jdata   []byte        // or by writing these bytes to the journal
	jpos    int64         // position of jdata in the active segment
	virt    []segSnapshot // virtual segments (entries in shared files) to make durable
	segs    []segSnapshot // segments to sync (direct)
	dirSync bool          // sync the partition directory first
	target  int64         // offset up to which the commit makes data durable
	hwmSeg  *segment      // where target lies
	hwmPos  int64
	err     error
}

// clear empties pl for the next cycle, keeping the backing arrays of its
// slices.
func (pl *commitPlan) clear() {
	clear(pl.virt)
	clear(pl.segs)
	*pl = commitPlan{virt: pl.virt[:0], segs: pl.segs[:0]}
}

// Buffers kept for reuse are bounded, so that a burst does not pin large
// arrays (per partition: there may be thousands).
const (
	maxKeptWaiters    = 8       // a partition's waiter array
	maxKeptJournalBuf = 1 << 10 // a partition's journal buffer (bytes)
	maxKeptReady      = 1 << 10 // the committer's callbacks of one partition
)

type segSnapshot struct {
	seg  *segment
	size int64
}

func (p *partition) lastSyncTime() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastSync
}

// plan snapshots into pl (empty, see clear) what must be made durable;
// false when there is nothing to do.
func (p *partition) plan(pl *commitPlan, final bool, j *journal) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	cfg := p.t.config()
	pl.p, pl.target, pl.hwmSeg, pl.hwmPos = p, p.next, p.active(), p.active().size
	hasData := p.dirDirty
	for _, s := range p.unsynced {
		if s.covered < s.size || final && s.synced < s.size {
			hasData = true
		}
	}
	if p.roErr != nil || p.closed && !final {
		hasData = false
	}
	switch {
	case !hasData:
	case final || cfg.Fsync == FsyncAlways:
		pl.sync = true
	case p.awaitingSyncLocked():
		// Appends queued under "always" before the topic was switched
		// to interval/never still wait for durability.
		pl.sync = true
	case cfg.Fsync == FsyncInterval && time.Since(p.lastSync) >= cfg.FsyncInterval:
		pl.sync = true
	}
	if !pl.sync {
		return len(p.waiters) > 0
	}
	var files []*segment
	for _, s := range p.unsynced {
		if s.virt == nil {
			files = append(files, s)
			pl.segs = append(pl.segs, segSnapshot{s, s.size})
		} else if s.synced < s.size {
			pl.virt = append(pl.virt, segSnapshot{s, s.size})
		}
	}
	act := p.active()
	if act.virt == nil {
		if act.size-act.covered < p.l.opts.JournalSmallBytes {
			p.smallCommits++
		} else {
			p.smallCommits = 0
		}
	}
	if len(files) == 0 && !p.dirDirty {
		// Only shared bytes (or nothing) to make durable.
	} else if j != nil && !final && !p.dirDirty && !p.jbufBad && p.jbufSeg == act && len(files) == 1 &&
		files[0] == act && p.jbufPos == act.covered && p.jbufPos+int64(len(p.jbuf)) == act.size && len(p.jbuf) > 0 && j.usable() {
		pl.jdata, pl.jpos = p.jbuf, p.jbufPos
		p.jbuf = nil
	} else {
		pl.direct = true
		pl.dirSync = p.dirDirty
		p.dirDirty = false
		p.jbuf = p.jbuf[:0]
	}
	p.jbufBad = false
	p.jbufSeg = nil
	return true
}

// syncPlan fdatasyncs the files of a direct plan (outside p.mu).
func (p *partition) syncPlan(pl *commitPlan) error {
	l := p.l
	if pl.dirSync {
		if err := p.syncDir(); err != nil {
			return err
		}
	}
	for _, s := range pl.segs {
		cf, err := p.openForSync(s.seg)
		if cf == nil && err == nil {
			continue // deleted since the snapshot
		}
		if err != nil {
			return fmt.Errorf("open %s for sync: %w", s.seg.rel, err)
		}
		err = l.fdatasync(cf.f)
		l.files.release(cf)
		if err != nil {
			return fmt.Errorf("fdatasync %s: %w", s.seg.rel, err)
		}
	}
	return nil
}

// openForSync opens seg for an fdatasync unless retention deleted it
// (nil, nil): opening read-write would recreate the file.
func (p *partition) openForSync(seg *segment) (*cachedFile, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if seg.deleted || p.closed && !p.l.closed.Load() {
		return nil, nil
	}
	return p.l.files.get(seg.path, true)
}

// finish applies a plan's outcome and delivers callbacks; it reports
// whether the HWM moved. ready is scratch space for the callbacks (returned
// for reuse).
func (p *partition) finish(pl *commitPlan, ready []waiter) ([]waiter, bool) {
	p.mu.Lock()
	if pl.jdata != nil && p.jbuf == nil && cap(pl.jdata) <= maxKeptJournalBuf {
		// The journal copied the bytes: the buffer takes the next ones.
		p.jbuf = pl.jdata[:0]
	}
	moved := false
	if pl.sync && pl.err == nil && p.roErr == nil {
		p.lastSync = time.Now()
		for _, v := range pl.virt {
			if v.size > v.seg.synced {
				v.seg.synced, v.seg.covered = v.size, v.size
			}
		}
		if len(pl.virt) > 0 {
			keep := p.unsynced[:0]
			for _, s := range p.unsynced {
				if s.synced < s.size || s.virt == nil && s.covered < s.size {
					keep = append(keep, s)
				}
			}
			p.unsynced = keep
		}
		if pl.direct {
			for _, s := range pl.segs {
				if s.seg.sealed && s.size == s.seg.size {
					p.l.kickCheckpoint() // a whole segment became durable
				}
				if s.size > s.seg.synced {
					s.seg.synced = s.size
				}
				if s.size > s.seg.covered {
					s.seg.covered = s.size
				}
			}
			// Keep only segments that grew since the snapshot.
			keep := p.unsynced[:0]
			for _, s := range p.unsynced {
				if s.synced < s.size {
					keep = append(keep, s)
				}
			}
			p.unsynced = keep
		} else if act := pl.hwmSeg; act.virt == nil {
			if pl.hwmPos > act.covered {
				act.covered = pl.hwmPos
			}
		}
		if pl.target > p.durable {
			p.durable = pl.target
			p.durableSeg, p.durablePos = pl.hwmSeg, pl.hwmPos
		}
		if pl.target >= p.hwm {
			moved = pl.target > p.hwm
			p.hwm, p.hwmSeg, p.hwmPos = pl.target, pl.hwmSeg, pl.hwmPos
		}
	} else if pl.sync && pl.err != nil {
		p.failLockedQuiet(pl.err)
	}
	ws := p.waiters
	i := 0
	for ; i < len(ws); i++ {
		w := ws[i]
		if (w.err == nil || w.afterCommit) && w.end > p.hwm {
			break
		}
		ready = append(ready, w)
	}
	clear(ws[:i]) // no callbacks kept alive
	switch {
	case i < len(ws):
		p.waiters = ws[i:]
	case cap(ws) <= maxKeptWaiters:
		p.waiters = ws[:0] // the next appends reuse the array
	default:
		p.waiters = nil
	}
	if p.roErr != nil || (p.closed && p.l.closed.Load()) {
		rerr := ErrClosed
		if p.roErr != nil {
			rerr = p.readOnlyErr()
		}
		for _, w := range p.waiters {
			w.err = rerr
			ready = append(ready, w)
		}
		p.waiters = nil
	} else if p.closed {
		for _, w := range p.waiters {
			w.err = fmt.Errorf("%w: %s (deleted)", ErrUnknownTopic, p.t.name)
			ready = append(ready, w)
		}
		p.waiters = nil
	}
	p.mu.Unlock()
	p.l.committer.acked.Add(uint64(len(ready)))
	for _, w := range ready {
		if w.err != nil {
			w.done(w.base, w.err)
		} else {
			w.done(w.base, nil)
		}
	}
	return ready, moved
}

// failLockedQuiet is failLocked without waking the committer (it is the
// caller).
func (p *partition) failLockedQuiet(err error) {
	if p.roErr != nil {
		return
	}
	p.roErr = err
	p.l.logger.Error("log: partition is read-only after an I/O error", "topic", p.t.name, "partition", p.id, "err", err)
}
