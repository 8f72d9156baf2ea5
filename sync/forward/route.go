package forward

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/meta"
)

// CursorPrefix prefixes a route's cursor name in meta ("forward/<route>").
// Never change.
const CursorPrefix = "forward/"

// errAbandoned resolves records not sent because an earlier one failed.
var errAbandoned = errors.New("forward: not sent after an earlier failure")

// pending is one record sent and not yet acknowledged.
type pending struct {
	off  int64
	ts   int64 // record timestamp (ms), for the age of the oldest unsent
	size int32
	done bool
}

// part is a route's progress on one local partition. All fields are
// guarded by route.mu.
type part struct {
	topic  string
	part   int32
	target string // rendered upstream topic (may still hold {key})
	keyed  bool   // target holds {key}
	hdrs   [3]Header

	next  int64 // next offset to read and send
	acked int64 // every offset below is acknowledged
	saved int64 // cursor last written to meta
	hwm   int64 // last seen high-water mark
	seen  int64 // HWM taken before the last pump: an idle wait watches past it

	pend []pending // in send order; pend[head:] outstanding
	head int
	seq0 uint64 // sequence number of pend[head]
	gen  uint64 // bumped on rewind; acks of older generations are ignored
	gone bool   // topic or partition disappeared

	// Timestamp of the record at offset tsOff (status cache).
	tsOff, ts int64

	// Offsets below skipped were counted as undecodable (a rewind or a
	// re-read meets the same batch again; it is counted once).
	skipped int64

	// After a read error the partition is skipped until readRetry.
	readRetry time.Time
	readFails int

	// duty: the origin partition forwarded and on which terms.
	duty partDuty
}

// route forwards the topics of one Route to one upstream.
type route struct {
	f      *Forwarder
	cfg    Route
	up     Upstream
	name   string // cursor name
	logger *slog.Logger
	lim    *limiter
	wake   chan struct{} // one slot: an ack arrived
	flushc chan struct{} // one slot: ask the flusher to save cursors
	dutyc  chan struct{} // one slot: Options.Duties changed

	mu         sync.Mutex // guards the fields below and every *part
	parts      map[meta.TopicPartition]*part
	order      []*part // round-robin order
	rr         int     // where the next pump starts in order
	span       int64   // Σ next-saved: offsets sent but not saved
	inflight   int     // records sent and not acknowledged
	inflightB  int64   // their bytes
	failed     bool    // an ack failed: drain, rewind, back off
	probing    bool    // after an error: one record in flight until an ack
	state      string
	stateSince time.Time // when state was entered
	downSince  time.Time // start of the current spell of starting/backing-off; zero otherwise
	lastErr    string
	lastErrAt  time.Time
	lastAck    time.Time
	firstStart bool                          // no cursor existed for this route at start
	nextPing   time.Time                     // when an idle route checks its link next
	loaded     map[meta.TopicPartition]int64 // saved cursors (route goroutine only)
	stopping   int                           // parts whose duty ended, not reaped yet
	lastSnap   time.Time                     // last full write to the cursor log

	failedFlag atomic.Bool // r.failed, readable without the lock
	paused     atomic.Bool

	sent, ackedN, ackedB, errs, retries, dropped atomic.Uint64
	cursorLogErrs                                atomic.Uint64
	rateR, rateB                                 atomic.Uint64 // float64 bits
}

func newRoute(f *Forwarder, cfg Route) *route {
	r := &route{
		f:      f,
		cfg:    cfg,
		up:     f.opts.Upstreams[cfg.Upstream],
		name:   CursorPrefix + cfg.Name,
		logger: f.opts.Logger.With("route", cfg.Name),
		lim:    f.limiters[cfg.Upstream],
		wake:   make(chan struct{}, 1),
		flushc: make(chan struct{}, 1),
		dutyc:  make(chan struct{}, 1),
		parts:  map[meta.TopicPartition]*part{},
		state:  StateStarting,
	}
	r.stateSince, r.downSince = time.Now(), time.Now()
	if cfg.Paused {
		r.state, r.downSince = StatePaused, time.Time{}
		r.paused.Store(true)
	}
	return r
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (r *route) setErr(err error) {
	r.mu.Lock()
	r.lastErr, r.lastErrAt = err.Error(), time.Now()
	r.mu.Unlock()
}

func (r *route) setState(s string) {
	r.mu.Lock()
	r.setStateLocked(s)
	r.mu.Unlock()
}

// setStateLocked moves the route to state s; the since-time changes only
// when the state does, the down-since time only when the route enters or
// leaves its starting/backing-off spell.
func (r *route) setStateLocked(s string) {
	if r.state == s {
		return
	}
	now := time.Now()
	r.state, r.stateSince = s, now
	switch s {
	case StateStarting, StateBackingOff:
		if r.downSince.IsZero() {
			r.downSince = now
		}
	default:
		r.downSince = time.Time{}
	}
}

// run is the route goroutine.
func (r *route) run(ctx context.Context) {
	opts := &r.f.opts
	bo := backoff{min: opts.BackoffMin, max: opts.BackoffMax}
	refresh := time.NewTicker(opts.TopicRefreshInterval)
	defer refresh.Stop()
	flush := time.NewTicker(opts.CursorFlushInterval)
	defer flush.Stop()
	lastRate := time.Now()
	var lastN, lastB uint64

	for ctx.Err() == nil {
		if err := r.loadCursors(); err == nil {
			break
		} else {
			r.setErr(err)
			r.logger.Error("forward: cannot read cursors", "err", err)
			if !sleepCtx(ctx, bo.next()) {
				return
			}
		}
	}
	if ctx.Err() != nil {
		r.setState(StateClosed)
		return
	}
	bo.reset()
	// tw wakes the route when the topic set changes (a matching topic
	// may have appeared), w when a partition it waits on moves past what
	// the last pump saw.
	tw, w := log.NewWaiter(), log.NewWaiter()
	rescan := func() {
		tw.Reset()
		opts.Log.WatchTopics(tw) // before reading the topics: no change is missed
		r.refresh()
	}
	rescan()

	quietTick := false // the last tick saw no acknowledgement
	tick := func() {
		rescan()
		now := time.Now()
		if el := now.Sub(lastRate).Seconds(); el > 0 {
			a, b := r.ackedN.Load(), r.ackedB.Load()
			storeF(&r.rateR, float64(a-lastN)/el)
			storeF(&r.rateB, float64(b-lastB)/el)
			quietTick = a == lastN
			lastN, lastB, lastRate = a, b, now
		}
	}
	var sink Sink
	snapshot := true // take the HWMs before the next pump (see waitIdle)
	for ctx.Err() == nil {
		if r.paused.Load() {
			r.setState(StatePaused)
			select {
			case <-ctx.Done():
			case <-r.wake:
			case <-tw.C(): // a matching topic created or deleted: status shows it
				rescan()
			case <-r.dutyc:
				r.refresh()
			}
			r.reap()
			if !r.paused.Load() {
				r.setState(StateStarting)
			}
			continue
		}
		if sink == nil {
			s, err := r.f.sink(r.cfg.Upstream)
			if err != nil {
				r.fail(err)
				r.setState(StateBackingOff)
				d := bo.next()
				if bo.n <= 3 || bo.n%20 == 0 {
					r.logger.Warn("forward: cannot set up the upstream client, backing off", "err", err,
						"wait", d.Round(time.Millisecond), "attempt", bo.n)
				}
				if !sleepCtx(ctx, d) {
					break
				}
				continue
			}
			sink = s
		}
		r.mu.Lock()
		failed := r.failed
		r.mu.Unlock()
		if failed {
			if !r.recover(ctx) {
				break
			}
			r.setState(StateBackingOff)
			d := bo.next()
			if bo.n <= 3 || bo.n%20 == 0 { // a long outage logs now and then
				r.logger.Warn("forward: upstream error, backing off", "err", r.lastError(),
					"wait", d.Round(time.Millisecond), "attempt", bo.n)
			}
			if !sleepCtx(ctx, d) {
				break
			}
			r.mu.Lock()
			r.probing = true
			r.setStateLocked(StateStarting)
			r.nextPing = time.Time{}
			r.mu.Unlock()
			continue
		}
		r.mu.Lock()
		if r.state == StateConnected && r.probing {
			r.probing = false
		}
		if r.state == StateConnected {
			bo.reset()
		}
		r.mu.Unlock()

		if snapshot {
			r.snapshotHWMs()
		}
		n := r.pump(ctx, sink)
		r.maybeFlush(false)
		r.reap()

		select {
		case <-refresh.C:
			tick()
		default:
		}
		select {
		case <-flush.C:
			r.maybeFlush(true)
		default:
		}
		if n > 0 {
			snapshot = false
			continue
		}
		if !snapshot {
			// Waiting needs HWMs taken before a pump that found nothing.
			snapshot = true
			continue
		}
		if r.idlePing(ctx, sink, &bo) {
			continue
		}
		quiet := quietTick && r.quiet()
		if quiet {
			// Nothing to refresh, rate or save until the log, an ack or
			// a ping wakes the route: the tickers stop.
			refresh.Stop()
			flush.Stop()
		}
		r.watchParts(w)
		select {
		case <-ctx.Done():
		case <-w.C():
		case <-tw.C():
			rescan()
		case <-r.wake:
		case <-refresh.C:
			tick()
		case <-flush.C:
			r.maybeFlush(true)
		case <-r.pingTimer(quiet, sink):
		case <-r.snapshotTimer(quiet):
			r.flushNow() // here, so the next wait sees the new snapshot time
		case <-r.dutyc:
			r.refresh()
		}
		if quiet {
			refresh.Reset(opts.TopicRefreshInterval)
			flush.Reset(opts.CursorFlushInterval)
		}
	}
	r.shutdown()
}

// idlePing checks the link of a route with nothing to send (so its state
// says connected or backing-off even when idle, and a lost link shows
// within about Upstream.ProbeInterval): at once when the state is unknown,
// then every ProbeInterval; after a failure with backoff, at most
// ProbeInterval apart (so the link's return shows as soon). It returns
// true when ctx ended during the ping (the caller re-checks).
func (r *route) idlePing(ctx context.Context, sink Sink, bo *backoff) bool {
	pg, ok := sink.(Pinger)
	if !ok {
		return false
	}
	r.mu.Lock()
	due := r.inflight == 0 && !r.failed && time.Now().After(r.nextPing)
	r.mu.Unlock()
	if !due {
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, min(r.up.DeliveryTimeout, pingTimeout))
	err := pg.Ping(pctx)
	cancel()
	if ctx.Err() != nil {
		return true
	}
	r.mu.Lock()
	if err == nil {
		if r.state != StateConnected {
			r.setStateLocked(StateConnected)
			bo.reset()
		}
		r.probing = false
		r.nextPing = time.Now().Add(r.up.ProbeInterval)
		r.mu.Unlock()
		return false
	}
	lost := r.state == StateConnected
	d := bo.next()
	r.setStateLocked(StateBackingOff)
	r.lastErr, r.lastErrAt = "ping: "+err.Error(), time.Now()
	r.nextPing = time.Now().Add(min(d, r.up.ProbeInterval)) // a return shows as fast as a loss
	r.mu.Unlock()
	if lost {
		r.logger.Warn("forward: idle upstream stopped answering", "err", err)
	}
	return false
}

// pingTimeout bounds one idle ping (DeliveryTimeout does when shorter).
const pingTimeout = 5 * time.Second

// shutdown waits for in-flight acknowledgements on a connected link (until
// Forwarder.Shutdown gives up), then saves the cursors.
func (r *route) shutdown() {
wait:
	for {
		r.mu.Lock()
		// (r.failed may be set by records abandoned at shutdown; the
		// state says whether the link worked.)
		n, up := r.inflight, r.state == StateConnected
		r.mu.Unlock()
		if n == 0 || !up {
			// Nothing to wait for, or a link that is down: do not delay
			// the shutdown; unacknowledged records are simply resent.
			break
		}
		select {
		case <-r.wake: // every ack signals it
		case <-r.f.giveUp:
			break wait
		}
	}
	r.flushNow()
	r.setState(StateClosed)
}

// recover waits until every in-flight record is resolved, then rewinds
// every partition to its acknowledged cursor. false when ctx ended.
func (r *route) recover(ctx context.Context) bool {
	warned := false
	start := time.Now()
	for {
		r.mu.Lock()
		n := r.inflight
		if n == 0 {
			for _, p := range r.order {
				r.rewindLocked(p)
			}
			r.failed = false
			r.failedFlag.Store(false)
			r.mu.Unlock()
			r.retries.Add(1)
			return true
		}
		r.mu.Unlock()
		if !warned && time.Since(start) > 2*r.up.DeliveryTimeout+5*time.Second {
			warned = true
			r.logger.Warn("forward: records still in flight long after an error", "in_flight", n)
		}
		select {
		case <-ctx.Done():
			return false
		case <-r.wake:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (r *route) rewindLocked(p *part) {
	r.span -= p.next - p.acked
	p.next = p.acked
	p.pend = p.pend[:0]
	p.head = 0
	p.gen++
}

// fail records an error that makes the route back off.
func (r *route) fail(err error) {
	r.errs.Add(1)
	r.mu.Lock()
	r.lastErr, r.lastErrAt = err.Error(), time.Now()
	r.mu.Unlock()
}

func (r *route) lastError() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

// ack resolves record seq of p (generation gen).
func (r *route) ack(p *part, gen, seq uint64, size int32, err error) {
	r.mu.Lock()
	r.inflight--
	r.inflightB -= int64(size)
	if gen != p.gen || p.gone {
		r.mu.Unlock()
		signal(r.wake)
		return
	}
	i := p.head + int(seq-p.seq0)
	if err != nil {
		if !r.failed && err != errAbandoned {
			r.errs.Add(1)
			r.lastErr, r.lastErrAt = err.Error(), time.Now()
		}
		r.failed = true
		r.failedFlag.Store(true)
		r.mu.Unlock()
		signal(r.wake)
		return
	}
	if i >= p.head && i < len(p.pend) {
		p.pend[i].done = true
	}
	acked := r.ackedN.Add(1)
	r.ackedB.Add(uint64(size))
	if acked%64 == 0 || r.inflight == 0 {
		// A clock read per record is dear; the last ack of a burst is
		// always timed.
		r.lastAck = time.Now()
	}
	if r.state != StateConnected && !r.failed {
		r.setStateLocked(StateConnected)
	}
	for p.head < len(p.pend) && p.pend[p.head].done {
		p.acked = p.pend[p.head].off + 1
		p.head++
		p.seq0++
	}
	if p.head == len(p.pend) {
		p.pend = p.pend[:0]
		p.head = 0
		p.acked = p.next
	} else if p.head > 4096 && p.head > len(p.pend)/2 {
		n := copy(p.pend, p.pend[p.head:])
		p.pend = p.pend[:n]
		p.head = 0
	}
	half := r.span-int64(r.inflight) >= int64(r.cfg.MaxInFlight/2)
	r.mu.Unlock()
	signal(r.wake)
	if half {
		signal(r.flushc)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
