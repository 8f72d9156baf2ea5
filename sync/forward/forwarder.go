package forward

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/meta"
)

// Forwarder runs every route. Create with New, then Start; Shutdown or
// Close stops it.
type Forwarder struct {
	opts     Options
	routes   []*route
	limiters map[string]*limiter // per upstream; nil entry = no cap
	duties   *dutySet            // nil without Options.Duties

	flushMu sync.Mutex // serializes cursor writes

	sinkMu      sync.Mutex // guards sinks, sinksClosed
	sinks       map[string]Sink
	sinksClosed bool

	runMu   sync.Mutex // guards cancel, started, closed
	cancel  context.CancelFunc
	started bool
	closed  bool
	wg      sync.WaitGroup

	// giveUp is closed when Shutdown's ctx ends: stopping routes stop
	// waiting for the acknowledgements in flight.
	giveUp chan struct{}
}

// New checks opts and builds a Forwarder; nothing runs until Start.
func New(opts Options) (*Forwarder, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	f := &Forwarder{
		opts:     opts.withDefaults(),
		limiters: map[string]*limiter{},
		sinks:    map[string]Sink{},
		giveUp:   make(chan struct{}),
	}
	for name, u := range f.opts.Upstreams {
		f.limiters[name] = newLimiter(u.BandwidthBytesPerSec)
	}
	if f.opts.Duties != nil {
		f.duties = newDutySet(f.opts.Duties)
	}
	for _, rc := range f.opts.Routes {
		f.routes = append(f.routes, newRoute(f, rc))
	}
	return f, nil
}

// Start starts one goroutine per route (plus its cursor flusher) and
// returns at once. They stop when ctx ends or at Shutdown (which also
// waits for them and saves the cursors). An unreachable or misconfigured
// upstream never fails Start: it shows in Routes and is retried.
func (f *Forwarder) Start(ctx context.Context) error {
	f.runMu.Lock()
	defer f.runMu.Unlock()
	if f.closed {
		return ErrClosed
	}
	if f.started {
		return ErrStarted
	}
	f.started = true
	ctx, f.cancel = context.WithCancel(ctx)
	if f.duties != nil {
		f.duties.load()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.watchDuties(ctx.Done())
		}()
	}
	for _, r := range f.routes {
		f.opts.Log.HoldRetention(r.name)
		r.clampCursors()
		f.wg.Add(2)
		go func() {
			defer f.wg.Done()
			r.run(ctx)
		}()
		go func() {
			defer f.wg.Done()
			r.flusher(ctx)
		}()
	}
	return nil
}

// sink returns (creating on first use) the Sink of upstream name.
func (f *Forwarder) sink(name string) (Sink, error) {
	f.sinkMu.Lock()
	defer f.sinkMu.Unlock()
	if s, ok := f.sinks[name]; ok {
		return s, nil
	}
	if f.sinksClosed {
		return nil, ErrClosed
	}
	u := f.opts.Upstreams[name]
	mk := f.opts.Sinks[u.Kind]
	if mk == nil {
		return nil, fmt.Errorf("%w %q (upstream %q)", ErrNoSink, u.Kind, name)
	}
	s, err := mk(name, u, f.opts.Logger.With("upstream", name))
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", name, err)
	}
	f.sinks[name] = s
	return s, nil
}

// Shutdown stops every route from sending, waits for the records in
// flight on a connected link to be acknowledged, saves the cursors and
// closes the sinks. When ctx ends first it stops waiting for the
// upstreams: it closes the sinks (which fails what is in flight and ends
// any network call a route is blocked in), saves the cursors of what was
// acknowledged by then (the rest is sent again after the next start:
// at-least-once) and returns an error saying what it gave up. Idempotent:
// later calls return nil.
func (f *Forwarder) Shutdown(ctx context.Context) error {
	f.runMu.Lock()
	if f.closed {
		f.runMu.Unlock()
		return nil
	}
	f.closed = true
	cancel := f.cancel
	f.runMu.Unlock()
	if cancel != nil {
		cancel()
	}
	routesDone := make(chan struct{})
	go func() { f.wg.Wait(); close(routesDone) }()
	var errs []error
	select {
	case <-routesDone:
		errs = closeSinks(ctx, f.takeSinks())
	case <-ctx.Done():
		inflight := 0
		for _, r := range f.routes {
			r.mu.Lock()
			inflight += r.inflight
			r.mu.Unlock()
		}
		errs = append(errs, fmt.Errorf("forward: stop: %d records in flight not acknowledged by the deadline (sent again after the next start): %w", inflight, ctx.Err()))
		close(f.giveUp) // routes stop waiting for acks and save their cursors
		closed := make(chan []error, 1)
		go func() { closed <- closeSinks(context.Background(), f.takeSinks()) }()
		<-routesDone // prompt: nothing a route waits for outlives its sink
		select {
		case e := <-closed:
			errs = append(errs, e...)
		default: // still closing: not waited for
		}
	}
	return errors.Join(errs...)
}

// takeSinks removes every sink (none is created after).
func (f *Forwarder) takeSinks() map[string]Sink {
	f.sinkMu.Lock()
	defer f.sinkMu.Unlock()
	f.sinksClosed = true
	sinks := f.sinks
	f.sinks = map[string]Sink{}
	return sinks
}

// closeSinks closes every sink at once and returns their errors, or stops
// waiting when ctx ends.
func closeSinks(ctx context.Context, sinks map[string]Sink) []error {
	results := make(chan error, len(sinks))
	for name, s := range sinks {
		go func() {
			if err := s.Close(); err != nil {
				results <- fmt.Errorf("close upstream %q: %w", name, err)
				return
			}
			results <- nil
		}()
	}
	var errs []error
	for range sinks {
		select {
		case err := <-results:
			if err != nil {
				errs = append(errs, err)
			}
		case <-ctx.Done():
			return append(errs, fmt.Errorf("forward: stop: an upstream connection was still closing at the deadline: %w", ctx.Err()))
		}
	}
	return errs
}

// Close is Shutdown without a deadline: it waits for every record in
// flight on a connected link to be acknowledged or to fail (at most the
// upstream's DeliveryTimeout).
func (f *Forwarder) Close() error { return f.Shutdown(context.Background()) }

// Routes returns a snapshot of every route, in configuration order.
func (f *Forwarder) Routes() []RouteStatus {
	out := make([]RouteStatus, 0, len(f.routes))
	now := time.Now()
	for _, r := range f.routes {
		out = append(out, r.status(now))
	}
	return out
}

// Stats sums the routes' counters.
func (f *Forwarder) Stats() Stats {
	s := Stats{Routes: len(f.routes)}
	for _, r := range f.routes {
		s.SentRecords += r.sent.Load()
		s.AckedRecords += r.ackedN.Load()
		s.AckedBytes += r.ackedB.Load()
		s.Errors += r.errs.Load()
		s.Dropped += r.dropped.Load()
		s.CursorLogErrors += r.cursorLogErrs.Load()
		r.mu.Lock()
		for _, p := range r.order {
			s.LagRecords += max(p.hwm-p.acked, 0)
		}
		r.mu.Unlock()
	}
	return s
}

type lagPart struct {
	topic string
	part  int32
	from  int64
	ts    int64 // timestamp of the record at from; 0 = unknown
}

func (r *route) status(now time.Time) RouteStatus {
	lg := r.f.opts.Log
	st := RouteStatus{
		Name: r.cfg.Name, Upstream: r.cfg.Upstream, Kind: r.up.Kind, Priority: r.cfg.Priority,
		SentRecords: r.sent.Load(), AckedRecords: r.ackedN.Load(), AckedBytes: r.ackedB.Load(),
		Errors: r.errs.Load(), Retries: r.retries.Load(), Dropped: r.dropped.Load(),
		RecordsPerSec: loadF(&r.rateR), BytesPerSec: loadF(&r.rateB),
	}
	r.mu.Lock()
	st.State, st.StateSince, st.DownSince = r.state, r.stateSince, r.downSince
	st.Partitions = len(r.order)
	st.InFlight = r.inflight
	st.LastError, st.LastErrorTime, st.LastAck = r.lastErr, r.lastErrAt, r.lastAck
	st.Origins = r.originsLocked()
	var lag []lagPart
	for _, p := range r.order {
		l := lagPart{topic: p.topic, part: p.part, from: p.acked}
		switch {
		case p.head < len(p.pend):
			l.ts = p.pend[p.head].ts
		case p.tsOff == p.acked:
			l.ts = p.ts
		}
		lag = append(lag, l)
	}
	r.mu.Unlock()
	var oldest int64 = math.MaxInt64
	for _, l := range lag {
		_, hwm, err := lg.Offsets(l.topic, l.part)
		if err != nil || hwm <= l.from {
			continue
		}
		st.LagRecords += hwm - l.from
		if l.ts != 0 {
			oldest = min(oldest, l.ts)
			continue
		}
		// Unsent and not in flight: read the first batch once per cursor
		// position (cached in the part).
		if b, err := lg.Read(l.topic, l.part, l.from, 1); err == nil && len(b) >= batch.HeaderSize {
			if h, err := batch.ParseHeader(b); err == nil {
				oldest = min(oldest, h.BaseTimestamp)
				r.mu.Lock()
				if p := r.parts[meta.TopicPartition{Topic: l.topic, Partition: l.part}]; p != nil && p.acked == l.from {
					p.tsOff, p.ts = l.from, h.BaseTimestamp
				}
				r.mu.Unlock()
			}
		}
	}
	if oldest != math.MaxInt64 {
		st.OldestUnsentAge = max(now.Sub(time.UnixMilli(oldest)), 0)
	}
	if st.AckedRecords > 0 {
		st.LagBytes = st.LagRecords * int64(st.AckedBytes/st.AckedRecords)
	}
	return st
}

// SetPaused pauses or resumes a route by name at run time (the data
// stays held in the log while paused). ErrUnknownRoute if none matches.
func (f *Forwarder) SetPaused(name string, paused bool) error {
	for _, r := range f.routes {
		if r.cfg.Name == name {
			r.paused.Store(paused)
			signal(r.wake)
			return nil
		}
	}
	return fmt.Errorf("%w: %q", ErrUnknownRoute, name)
}

// RouteNames lists the configured route names sorted (for status tools).
func (f *Forwarder) RouteNames() []string {
	var n []string
	for _, r := range f.routes {
		n = append(n, r.cfg.Name)
	}
	sort.Strings(n)
	return n
}

func storeF(a *atomic.Uint64, v float64) { a.Store(math.Float64bits(v)) }
func loadF(a *atomic.Uint64) float64     { return math.Float64frombits(a.Load()) }
