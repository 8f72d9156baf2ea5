package log

import (
	"fmt"
	"math"
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
//
// It runs when there is work and sleeps otherwise: an append wakes it, a
// cycle starts at once when the disk is idle, and whatever arrives during
// a cycle's syncs goes into the next one. The only deliberate wait is the
// commit delay's hold (see hold); the only other timer is the one of the
// earliest due "interval" sync.
type committer struct {
	l *logImpl

	mu      sync.Mutex // guards dirty, set, lazy, nextDue, later, feeds, stopped
	dirty   []*partition
	set     map[*partition]bool
	lazy    map[*partition]time.Time // "interval" partitions with unsynced data: when their sync is due
	nextDue time.Time                // earliest time in lazy (zero: none)
	later   []func()                 // callbacks for appends that never reached a partition
	feeds   []func()                 // FeedNextCommit functions for the next cycle
	stopped bool                     // the final cycle ran: deliverLater calls at once

	wake chan struct{} // one-slot

	// pending counts bytes written under "always" since the last cycle
	// took its snapshot.
	pending atomic.Int64
	// independent counts bytes written under "always" by partitions whose
	// last sync is at least IndependentAfter old, or reported so by a
	// feed (see hold).
	independent atomic.Uint64
	// busySince is when the cycle now writing and syncing began (Unix
	// nanoseconds; 0 between cycles): Stats.CommitRunning, which the
	// service watchdog reads to tell a hung fsync from a slow one.
	busySince atomic.Int64
	// gathered counts bytes feeds hold for the next cycle (Gathering).
	gathered atomic.Int64
	// While a commit is held (holding), appends wake the committer only
	// once pending (and gathered) bytes reach wakeBytes.
	holding   atomic.Bool
	wakeBytes atomic.Int64

	// owned by the committer goroutine
	rate     float64   // independent bytes per second, decaying average
	rateAt   time.Time // when rate was last updated
	rateBase uint64    // independent at rateAt
	holdT    *time.Timer
	dueT     *time.Timer
	dueAt    time.Time // what dueT is armed for (zero: not armed)
	// reused by every cycle (cleared after it): no allocation per
	// partition and cycle
	planBuf []commitPlan
	plans   []*commitPlan
	ready   []waiter
}

// syncWorkers is how many fdatasyncs of different files run at once.
const syncWorkers = 4

func newCommitter(l *logImpl) *committer {
	return &committer{l: l, set: map[*partition]bool{}, lazy: map[*partition]time.Time{}, wake: make(chan struct{}, 1)}
}

// poke wakes the committer.
func (c *committer) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *committer) markDirty(p *partition) {
	c.mu.Lock()
	if !c.set[p] {
		c.set[p] = true
		c.dirty = append(c.dirty, p)
	}
	c.mu.Unlock()
	if c.holding.Load() && c.pending.Load()+c.gathered.Load() < c.wakeBytes.Load() {
		return // a held commit waits for more (hold)
	}
	c.poke()
}

// gathering implements CommitFeeder.Gathering.
func (c *committer) gathering(n int, independent bool) {
	g := c.gathered.Add(int64(n))
	if independent {
		c.independent.Add(uint64(n))
	}
	if c.holding.Load() && c.pending.Load()+g >= c.wakeBytes.Load() {
		c.poke()
	}
}

// noteAppendLocked counts an append of n bytes under "always" for the
// holds; awaited: its writer waits for this acknowledgement (never
// independent, however old the partition's last sync). Called with p.mu
// held.
func (c *committer) noteAppendLocked(p *partition, n int, awaited bool) {
	c.pending.Add(int64(n))
	if !awaited && !p.fed.Load() && time.Since(p.lastSync) >= IndependentAfter {
		// Not a writer coming back for its next append.
		c.independent.Add(uint64(n))
	}
}

// markLazy notes that an "interval" partition has unsynced bytes: its
// sync is due one FsyncInterval after the first of them. Called with p.mu
// held.
func (c *committer) markLazy(p *partition, interval time.Duration) {
	c.mu.Lock()
	if _, ok := c.lazy[p]; ok {
		c.mu.Unlock()
		return
	}
	due := time.Now().Add(interval)
	c.lazy[p] = due
	earlier := c.nextDue.IsZero() || due.Before(c.nextDue)
	if earlier {
		c.nextDue = due
	}
	c.mu.Unlock()
	if earlier {
		c.poke() // arm the timer for it
	}
}

// outOfFilesRetry is how soon a commit that could not open a file (out of
// descriptors) is tried again.
const outOfFilesRetry = 50 * time.Millisecond

// outOfFilesAckWait is how long appends wait for a sync that cannot open
// its files before they fail (retriably).
const outOfFilesAckWait = 5 * time.Second

// retryLater makes a cycle commit p again after d, through the timer of
// the "interval" syncs. Called with p.mu held (c.mu is taken under p.mu,
// never the other way round).
func (c *committer) retryLater(p *partition, d time.Duration) {
	due := time.Now().Add(d)
	c.mu.Lock()
	if at, ok := c.lazy[p]; !ok || due.Before(at) {
		c.lazy[p] = due
	}
	if c.nextDue.IsZero() || due.Before(c.nextDue) {
		c.nextDue = due
	}
	c.mu.Unlock()
}

// feedNext implements CommitFeeder.FeedNextCommit.
func (c *committer) feedNext(fn func()) bool {
	c.mu.Lock()
	if c.stopped || c.l.closed.Load() {
		c.mu.Unlock()
		return false
	}
	c.feeds = append(c.feeds, fn)
	c.mu.Unlock()
	if !c.holding.Load() {
		c.poke()
	}
	return true
}

// runFeeds calls the functions registered by FeedNextCommit (their
// appends join the cycle that follows).
func (c *committer) runFeeds() {
	c.mu.Lock()
	feeds := c.feeds
	c.feeds = nil
	c.mu.Unlock()
	for i, fn := range feeds {
		fn()
		feeds[i] = nil
	}
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
	c.poke()
}

// run is the committer loop; it returns after a final cycle that syncs
// every partition once the log is closing.
func (c *committer) run() {
	for {
		var due <-chan time.Time
		if !c.dueAt.IsZero() {
			due = c.dueT.C
		}
		final := false
		select {
		case <-c.wake:
		case <-due:
			c.dueAt = time.Time{}
		case <-c.l.quit:
			final = true
		}
		if !final {
			final = c.hold()
		}
		c.gathered.Store(0) // the feeds append them now
		c.runFeeds()
		c.cycle(final)
		c.armDue()
		if final {
			// Nobody runs callbacks after this: answer late ones inline.
			c.mu.Lock()
			c.stopped = true
			later, feeds := c.later, c.feeds
			c.later, c.feeds = nil, nil
			c.mu.Unlock()
			for _, fn := range feeds {
				fn() // registered during the final cycle: appends fail with ErrClosed
			}
			for _, fn := range later {
				fn()
			}
			return
		}
	}
}

// armDue sets the timer for the earliest due "interval" sync.
func (c *committer) armDue() {
	c.mu.Lock()
	next := c.nextDue
	c.mu.Unlock()
	if next.IsZero() || next.Equal(c.dueAt) {
		return
	}
	d := time.Until(next)
	if c.dueT == nil {
		c.dueT = time.NewTimer(d)
	} else {
		c.dueT.Reset(d) // Go 1.23+ timers: no stale value after Reset
	}
	c.dueAt = next
}

// The commit delay (doc.go, "Acknowledgement and the commit delay"). A
// commit starts as soon as the committer is free, except when appends of
// writers that are not waiting for an acknowledgement (independent: their
// partition's last sync is at least IndependentAfter old, or a feed says
// so) arrive fast enough to bring a small commit to holdTarget bytes,
// gathering at least holdMinGain more within Options.CommitDelay. The
// commit then waits until holdTarget is pending (woken by the append that
// brings it there) or for the time the rate says that takes, at most
// CommitDelay. Each hold is counted in Stats (CommitsDelayed,
// CommitDelayNanos). Writers that each wait for their ack never count
// toward the rate, so a writer that waits alone, or many that each wait,
// commit at once.
const (
	// holdTarget: with shared segments a commit costs the pages it
	// dirties (its bytes and, again, the partial page the previous one
	// left): 16 KiB makes that about 1.3 bytes per byte. The journal
	// pads each commit to whole pages: one page is enough.
	holdTargetShared  = 16 << 10
	holdTargetJournal = 4 << 10
	holdMinGain       = 4 << 10
	// rateTau is the time constant of the independent-rate average.
	rateTau = 100 * time.Millisecond
)

// updateRate folds the independent bytes since the last update into the
// decaying average c.rate (bytes per second).
func (c *committer) updateRate(now time.Time) {
	n := c.independent.Load()
	if c.rateAt.IsZero() {
		c.rateAt, c.rateBase = now, n
		return
	}
	dt := now.Sub(c.rateAt)
	if dt <= 0 {
		return
	}
	r := float64(n-c.rateBase) / dt.Seconds()
	w := 1 - math.Exp(-float64(dt)/float64(rateTau))
	c.rate += w * (r - c.rate)
	c.rateAt, c.rateBase = now, n
}

// hold applies the commit delay before a cycle; it reports whether the
// log is closing.
func (c *committer) hold() (quit bool) {
	now := time.Now()
	c.updateRate(now)
	limit := c.l.opts.CommitDelay
	p := c.pending.Load() + c.gathered.Load()
	if limit <= 0 || p <= 0 || c.rate*limit.Seconds() < holdMinGain {
		return false
	}
	target := int64(holdTargetJournal)
	if c.l.shared.usable() {
		target = holdTargetShared
	}
	if p >= target {
		return false
	}
	d := min(limit, time.Duration(float64(target-p)/c.rate*float64(time.Second)))
	c.wakeBytes.Store(target)
	c.holding.Store(true)
	defer c.holding.Store(false)
	if c.holdT == nil {
		c.holdT = time.NewTimer(d)
	} else {
		c.holdT.Reset(d)
	}
	defer c.holdT.Stop()
	waited := false
	defer func() {
		if waited {
			c.l.stats.commitsDelayed.Add(1)
			c.l.stats.commitDelayNanos.Add(uint64(time.Since(now)))
		}
	}()
	for c.pending.Load()+c.gathered.Load() < target {
		waited = true
		select {
		case <-c.wake:
		case <-c.holdT.C:
			return false
		case <-c.l.quit:
			return true
		}
	}
	return false
}

// cycle runs one group commit: it takes the partitions to commit, plans
// each one's commit, makes the planned bytes durable (shared files, then
// the journal, then segment files) and finishes the plans (high-water
// marks, waiting appends).
func (c *committer) cycle(final bool) {
	c.pending.Store(0)
	parts, due, later := c.take(final)
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
		if pl := &planBuf[i]; p.plan(pl, final, due[p], c.l.journal) {
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
	c.busySince.Store(time.Now().UnixNano())
	defer c.busySince.Store(0)
	c.syncShared(plans)
	c.commitJournal(plans)
	syncDirect(plans)
	c.finish(plans)
	c.maybeRotateJournal(final)
}

// take returns the partitions of this cycle: the dirty ones, the
// "interval" partitions now due (all of them when final; p.mu is never
// taken under c.mu: writers hold p.mu when they mark a partition); and the
// functions queued to run before the cycle.
func (c *committer) take(final bool) (parts []*partition, due map[*partition]bool, later []func()) {
	c.mu.Lock()
	parts = c.dirty
	c.dirty = nil
	for _, p := range parts {
		delete(c.set, p)
	}
	if now := time.Now(); len(c.lazy) > 0 && (final || !c.nextDue.After(now)) {
		due = map[*partition]bool{}
		c.nextDue = time.Time{}
		for p, at := range c.lazy {
			if final || !at.After(now) {
				due[p] = true
				delete(c.lazy, p)
			} else if c.nextDue.IsZero() || at.Before(c.nextDue) {
				c.nextDue = at
			}
		}
	}
	later = c.later
	c.later = nil
	c.mu.Unlock()
	if len(due) > 0 {
		in := make(map[*partition]bool, len(parts))
		for _, p := range parts {
			in[p] = true
		}
		for p := range due {
			if !in[p] {
				parts = append(parts, p)
			}
		}
	}
	return parts, due, later
}

// syncShared makes the plans' entries in shared files durable first (a
// plan may also sync files that follow its shared bytes): one fdatasync
// for every partition's entries.
func (c *committer) syncShared(plans []*commitPlan) {
	shared := false
	for _, pl := range plans {
		shared = shared || len(pl.virt) > 0
	}
	if !shared {
		return
	}
	if err := c.l.shared.sync(); err != nil {
		for _, pl := range plans {
			if len(pl.virt) > 0 {
				pl.err = err
			}
		}
	}
}

// commitJournal writes the small commits to the journal with one write and
// one sync for all of them. If that fails, they sync their segment files
// directly instead.
func (c *committer) commitJournal(plans []*commitPlan) {
	var journaled []*commitPlan
	for _, pl := range plans {
		if pl.jdata != nil && pl.err == nil {
			journaled = append(journaled, pl)
		}
	}
	if len(journaled) == 0 {
		return
	}
	if err := c.l.journal.commit(journaled); err != nil {
		c.l.logger.Error("log: journal commit failed; this commit syncs segment files directly", "err", err)
		for _, pl := range journaled {
			pl.jdata = nil
			pl.direct = true
		}
	}
}

// syncDirect fdatasyncs the segment files of the large commits, a few at
// a time.
func syncDirect(plans []*commitPlan) {
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
}

// finish ends each plan (high-water mark, waiting appends answered) and
// wakes the readers of partitions whose high-water mark moved.
func (c *committer) finish(plans []*commitPlan) {
	changed := false
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

// plan snapshots into pl (empty, see clear) what must be made durable;
// false when there is nothing to do. due: the partition's "interval" sync
// is due.
func (p *partition) plan(pl *commitPlan, final, due bool, j *journal) bool {
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
	case cfg.Fsync == FsyncInterval && (due || time.Since(p.lastSync) >= cfg.FsyncInterval):
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
	if small := p.l.opts.JournalSmallBytes; act.virt == nil {
		p.largeCommits = 0
		if act.size-act.covered < small {
			p.smallCommits++
		} else {
			p.smallCommits = 0
		}
	} else if act.size-act.synced >= sharedLargeFactor*small {
		p.largeCommits++
	} else {
		p.largeCommits = 0
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
	giveUp := false // fail the waiting appends: their sync waits for a descriptor too long
	if pl.sync && pl.err == nil && p.roErr == nil {
		p.lastSync = time.Now()
		p.stuckSince = time.Time{}
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
	} else if pl.sync && pl.err != nil && isOutOfFiles(pl.err) && p.roErr == nil {
		// A file or directory could not be opened for its sync: the
		// bytes are written and nothing failed, so the waiters wait for
		// a later cycle (no storage fault, nothing goes read-only).
		if pl.dirSync {
			p.dirDirty = true
		}
		if p.stuckSince.IsZero() {
			p.stuckSince = time.Now()
		}
		giveUp = time.Since(p.stuckSince) >= outOfFilesAckWait
		p.l.committer.retryLater(p, outOfFilesRetry)
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
	if giveUp && p.roErr == nil && !p.closed {
		// As a Kafka produce that timed out: the batches may still
		// become durable (and visible) with a later sync; an idempotent
		// producer's retry is found a duplicate.
		gerr := fmt.Errorf("%w (not durable after %v: %v)", ErrTooManyOpenFiles, outOfFilesAckWait, pl.err)
		for _, w := range p.waiters {
			w.err = gerr
			ready = append(ready, w)
		}
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
