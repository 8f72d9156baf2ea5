package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
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

	pend []pending // in send order; pend[head:] outstanding
	head int
	seq0 uint64 // sequence number of pend[head]
	gen  uint64 // bumped on rewind; acks of older generations are ignored
	gone bool   // topic or partition disappeared

	// Timestamp of the record at offset tsOff (status cache).
	tsOff, ts int64

	// After a read error the partition is skipped until readRetry.
	readRetry time.Time
	readFails int
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
	lastErr    string
	lastErrAt  time.Time
	lastAck    time.Time
	firstStart bool      // no cursor existed for this route at start
	nextPing   time.Time // when an idle route checks its link next
	loaded     map[meta.TopicPartition]int64

	failedFlag atomic.Bool // r.failed, readable without the lock
	paused     atomic.Bool

	sent, ackedN, ackedB, errs, retries, dropped atomic.Uint64
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
		parts:  map[meta.TopicPartition]*part{},
		state:  StateStarting,
	}
	if cfg.Paused {
		r.state = StatePaused
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

// matches reports whether topic belongs to the route.
func (r *route) matches(topic string) bool {
	for _, p := range r.cfg.Topics {
		if p == topic {
			return true
		}
		if strings.HasPrefix(topic, "__") {
			continue
		}
		if ok, _ := path.Match(p, topic); ok {
			return true
		}
	}
	return false
}

// loadCursors reads the route's saved cursors once at start.
func (r *route) loadCursors() error {
	c, err := r.f.opts.Log.Meta().Cursors(r.name)
	if err != nil {
		return err
	}
	r.loaded = c
	r.firstStart = len(c) == 0
	return nil
}

// refresh picks up new topics and partitions and forgets deleted ones.
// New partitions get their start cursor saved at once.
func (r *route) refresh() {
	lg := r.f.opts.Log
	seen := map[meta.TopicPartition]bool{}
	fresh := map[meta.TopicPartition]int64{}
	for _, ti := range lg.Topics() {
		if !r.matches(ti.Name) {
			continue
		}
		for _, pi := range ti.Partitions {
			tp := meta.TopicPartition{Topic: ti.Name, Partition: pi.Partition}
			seen[tp] = true
			r.mu.Lock()
			p := r.parts[tp]
			if p != nil {
				p.hwm = pi.HWM
				r.mu.Unlock()
				continue
			}
			r.mu.Unlock()
			start, ok := r.loaded[tp]
			if !ok {
				start = pi.Start
				if r.firstStart && r.cfg.Start == StartLatest {
					start = pi.HWM
				}
				fresh[tp] = start
			}
			p = &part{topic: ti.Name, part: pi.Partition, next: start, acked: start, saved: start, hwm: pi.HWM}
			p.target = render(r.cfg.Target, ti.Name, r.f.opts.NodeID, r.f.opts.Site)
			p.keyed = hasKey(p.target)
			p.hdrs = [3]Header{
				{Key: HeaderNode, Value: []byte(r.f.opts.NodeID)},
				{Key: HeaderTopic, Value: []byte(ti.Name)},
				{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(pi.Partition)))},
			}
			r.mu.Lock()
			r.parts[tp] = p
			r.order = append(r.order, p)
			r.mu.Unlock()
			r.logger.Debug("forward: partition added", "topic", ti.Name, "partition", pi.Partition, "offset", start)
		}
	}
	// Partitions that appeared while the route already ran start at the
	// beginning: "latest" only applies to what existed at first start.
	r.firstStart = false
	r.mu.Lock()
	kept := r.order[:0]
	for _, p := range r.order {
		tp := meta.TopicPartition{Topic: p.topic, Partition: p.part}
		if !seen[tp] {
			// Deleted (the log dropped its cursors too): a topic created
			// again under the name starts from its beginning.
			p.gone = true
			r.span -= p.next - p.saved
			delete(r.parts, tp)
			delete(r.loaded, tp)
			continue
		}
		kept = append(kept, p)
	}
	for i := len(kept); i < len(r.order); i++ {
		r.order[i] = nil
	}
	r.order = kept
	r.mu.Unlock()
	if len(fresh) > 0 {
		if err := lg.Meta().SetCursors(r.name, fresh); err != nil {
			r.setErr(err)
		}
		for tp, o := range fresh {
			r.loaded[tp] = o
		}
	}
}

func (r *route) setErr(err error) {
	r.mu.Lock()
	r.lastErr, r.lastErrAt = err.Error(), time.Now()
	r.mu.Unlock()
}

func (r *route) setState(s string) {
	r.mu.Lock()
	r.state = s
	r.mu.Unlock()
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
	r.refresh()

	tick := func() {
		r.refresh()
		now := time.Now()
		if el := now.Sub(lastRate).Seconds(); el > 0 {
			a, b := r.ackedN.Load(), r.ackedB.Load()
			storeF(&r.rateR, float64(a-lastN)/el)
			storeF(&r.rateB, float64(b-lastB)/el)
			lastN, lastB, lastRate = a, b, now
		}
	}
	var sink Sink
	for ctx.Err() == nil {
		changed := opts.Log.Changed()
		if r.paused.Load() {
			r.setState(StatePaused)
			select {
			case <-ctx.Done():
			case <-r.wake:
			case <-refresh.C:
				r.refresh()
			}
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
				if !sleepCtx(ctx, bo.next()) {
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
			r.state = StateStarting
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

		n := r.pump(ctx, sink)
		r.maybeFlush(false)

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
			continue
		}
		if r.idlePing(ctx, sink, &bo) {
			continue
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-r.wake:
		case <-refresh.C:
			tick()
		case <-flush.C:
			r.maybeFlush(true)
		}
	}
	r.shutdown()
}

// idlePing checks the link of a route with nothing to send (so its state
// says connected or backing-off even when idle): at once when the state is
// unknown, then every idlePingEvery, or with backoff after a failure. It
// returns true when it slept (the caller re-checks for work).
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
	pctx, cancel := context.WithTimeout(ctx, min(r.up.DeliveryTimeout, 5*time.Second))
	err := pg.Ping(pctx)
	cancel()
	if ctx.Err() != nil {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		if r.state != StateConnected {
			r.state = StateConnected
			bo.reset()
		}
		r.probing = false
		r.nextPing = time.Now().Add(idlePingEvery)
		return false
	}
	d := bo.next()
	r.state = StateBackingOff
	r.lastErr, r.lastErrAt = "ping: "+err.Error(), time.Now()
	r.nextPing = time.Now().Add(d)
	return false
}

// idlePingEvery is how often an idle, connected route checks its link.
const idlePingEvery = 30 * time.Second

// shutdown waits briefly for in-flight acknowledgements, then saves the
// cursors.
func (r *route) shutdown() {
	deadline := time.Now().Add(r.f.grace)
	for time.Now().Before(deadline) {
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
		case <-r.wake:
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !r.f.noFinalFlush {
		r.flushNow()
	}
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

// room is how many more records and bytes may be sent now.
func (r *route) roomLocked() (int, int64) {
	if r.probing {
		if r.inflight > 0 {
			return 0, 0
		}
		return 1, r.cfg.MaxInFlightBytes
	}
	return int(int64(r.cfg.MaxInFlight) - r.span), r.cfg.MaxInFlightBytes - r.inflightB
}

// pump reads and sends at most one chunk per partition; it returns the
// number of records sent.
func (r *route) pump(ctx context.Context, sink Sink) int {
	r.mu.Lock()
	// Start after the partition served first last time, so a small window
	// is shared by every partition.
	n := len(r.order)
	parts := make([]*part, 0, n)
	for i := range n {
		parts = append(parts, r.order[(r.rr+i)%n])
	}
	if n > 0 {
		r.rr = (r.rr + 1) % n
	}
	r.mu.Unlock()
	total := 0
	for _, p := range parts {
		if ctx.Err() != nil {
			return total
		}
		r.mu.Lock()
		failed := r.failed
		roomN, roomB := r.roomLocked()
		next, gone := p.next, p.gone
		r.mu.Unlock()
		if failed {
			return total
		}
		if roomN <= 0 || roomB <= 0 {
			r.maybeFlush(false)
			return total
		}
		if gone {
			continue
		}
		r.mu.Lock()
		wait := !p.readRetry.IsZero() && time.Now().Before(p.readRetry)
		r.mu.Unlock()
		if wait {
			continue
		}
		// A fair share of the window, so one partition's backlog does not
		// starve the others.
		share := max(roomN/len(parts), min(roomN, 64))
		total += r.sendChunk(ctx, sink, p, next, share, roomB)
	}
	return total
}

// sendChunk reads from next and sends up to roomN records / roomB bytes.
func (r *route) sendChunk(ctx context.Context, sink Sink, p *part, next int64, roomN int, roomB int64) int {
	lg := r.f.opts.Log
	r.mu.Lock()
	gen := p.gen
	r.mu.Unlock()
	maxRead := min(r.cfg.ReadBytes, int(min(roomB, 1<<30)))
	if r.lim != nil {
		// Under a bandwidth cap take about what the cap passes in 100 ms,
		// so partitions and higher-priority routes get their turn soon.
		maxRead = min(maxRead, max(r.lim.chunk(), 4096))
	}
	data, err := lg.Read(p.topic, p.part, next, max(maxRead, 1))
	if err != nil {
		r.readError(p, next, err)
		return 0
	}
	if len(data) == 0 {
		return 0
	}
	r.mu.Lock()
	p.readFails, p.readRetry = 0, time.Time{}
	r.mu.Unlock()
	var recs []*Record
	var sizes []int32
	var sl slab
	var bytes int64
	end := next
	for len(data) >= batch.HeaderSize && len(recs) < roomN {
		h, err := batch.ParseHeader(data)
		if err != nil && len(recs) == 0 && end == next {
			r.readError(p, next, fmt.Errorf("parse batch: %w", err))
			return 0
		}
		if err != nil || h.Size() > len(data) {
			break
		}
		if h.LastOffset() < end {
			data = data[h.Size():]
			continue
		}
		rs, err := batch.Records(data[:h.Size()])
		if err != nil {
			r.readError(p, next, err)
			return 0
		}
		full := false
		for i := range rs {
			br := &rs[i]
			if br.Offset < end {
				continue
			}
			if len(recs) >= roomN || (len(recs) > 0 && (bytes >= roomB || bytes >= int64(maxRead))) {
				full = true
				break
			}
			rec := r.toRecord(p, br, gen, &sl)
			sz := rec.Size()
			recs = append(recs, rec)
			sizes = append(sizes, int32(sz))
			bytes += int64(sz)
			end = br.Offset + 1
		}
		if full {
			break
		}
		// Control batches and records skipped above still move us on.
		end = max(end, h.LastOffset()+1)
		data = data[h.Size():]
	}
	if len(recs) == 0 {
		if end > next {
			r.mu.Lock()
			if p.next == next && !r.failed {
				r.span += end - next
				p.next = end
				if p.head == len(p.pend) {
					p.acked = end
				}
			}
			r.mu.Unlock()
		}
		return 0
	}
	r.mu.Lock()
	if p.next != next || r.failed || p.gone || p.gen != gen {
		r.mu.Unlock()
		return 0
	}
	seq := p.seq0 + uint64(len(p.pend)-p.head)
	for i, rec := range recs {
		p.pend = append(p.pend, pending{off: rec.Offset, ts: rec.Timestamp, size: sizes[i]})
	}
	r.span += end - next
	p.next = end
	r.inflight += len(recs)
	r.inflightB += bytes
	r.mu.Unlock()

	chunk := r.lim.chunk()
	acc := 0
	for i, rec := range recs {
		if r.lim != nil {
			if acc <= 0 {
				want := 0
				for j := i; j < len(recs) && want < chunk; j++ {
					want += int(sizes[j])
				}
				if err := r.lim.wait(ctx, r.cfg.Priority, want); err != nil {
					for j := i; j < len(recs); j++ {
						r.ack(p, gen, seq+uint64(j), sizes[j], errAbandoned)
					}
					r.sent.Add(uint64(i))
					return i
				}
				acc = want
			}
			acc -= int(sizes[i])
		}
		if r.failedFlag.Load() {
			// An earlier record failed: sending more of this partition could
			// let later records land before the resend of the failed one.
			for j := i; j < len(recs); j++ {
				r.ack(p, gen, seq+uint64(j), sizes[j], errAbandoned)
			}
			r.sent.Add(uint64(i))
			return i
		}
		s := seq + uint64(i)
		sz := sizes[i]
		sink.Send(ctx, rec, func(err error) { r.ack(p, gen, s, sz, err) })
	}
	r.sent.Add(uint64(len(recs)))
	return len(recs)
}

func (r *route) toRecord(p *part, br *batch.Record, gen uint64, sl *slab) *Record {
	hs := sl.headers(len(br.Headers) + 4)
	for _, h := range br.Headers {
		hs = append(hs, Header{Key: h.Key, Value: h.Value})
	}
	hs = append(hs, p.hdrs[:]...)
	hs = append(hs, Header{Key: HeaderOffset, Value: sl.itoa(br.Offset)})
	t := p.target
	if p.keyed {
		t = withKey(t, br.Key)
	}
	rec := sl.record()
	*rec = Record{Topic: t, Key: br.Key, Value: br.Value, Timestamp: br.Timestamp,
		Headers: hs, Partition: p.part, Offset: br.Offset, Attempt: gen}
	return rec
}

// slab hands out Records, header slices and offset strings from shared
// arrays, so a chunk costs a few allocations instead of three per record.
// Each piece has its own capacity limit (appends never overwrite another).
type slab struct {
	recs []Record
	hdrs []Header
	buf  []byte
}

func (s *slab) record() *Record {
	if len(s.recs) == cap(s.recs) {
		s.recs = make([]Record, 0, 256)
	}
	s.recs = s.recs[:len(s.recs)+1]
	return &s.recs[len(s.recs)-1]
}

func (s *slab) headers(n int) []Header {
	if cap(s.hdrs)-len(s.hdrs) < n {
		s.hdrs = make([]Header, 0, max(2048, n))
	}
	l := len(s.hdrs)
	s.hdrs = s.hdrs[:l+n]
	return s.hdrs[l : l : l+n]
}

func (s *slab) itoa(v int64) []byte {
	if cap(s.buf)-len(s.buf) < 20 {
		s.buf = make([]byte, 0, 8192)
	}
	l := len(s.buf)
	s.buf = strconv.AppendInt(s.buf, v, 10)
	return s.buf[l:len(s.buf):len(s.buf)]
}

// readError handles a failed log read at offset next.
func (r *route) readError(p *part, next int64, err error) {
	lg := r.f.opts.Log
	switch {
	case errors.Is(err, log.ErrOffsetOutOfRange):
		start, hwm, oerr := lg.Offsets(p.topic, p.part)
		if oerr != nil {
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if p.next != next {
			return
		}
		switch {
		case next < start:
			lost := start - next
			r.dropped.Add(uint64(lost))
			r.span += start - next
			p.next = start
			if p.head == len(p.pend) {
				p.acked = start
			}
			r.lastErr, r.lastErrAt = "records dropped from the log before they were forwarded", time.Now()
			r.logger.Error("forward: records dropped from the log before they were forwarded",
				"topic", p.topic, "partition", p.part, "offset", next, "lost", lost, "log_start", start)
		case next > hwm:
			r.logger.Warn("forward: cursor beyond the log end, moving back", "topic", p.topic,
				"partition", p.part, "offset", next, "hwm", hwm)
			// Nothing in flight can be above hwm; restart from hwm.
			r.span -= next - hwm
			p.next = hwm
			if p.acked > hwm {
				p.acked = hwm
			}
			if p.saved > hwm {
				r.span += p.saved - hwm
				p.saved = hwm
			}
		}
	case errors.Is(err, log.ErrUnknownTopic), errors.Is(err, log.ErrUnknownPartition):
		// Deleted: the next refresh forgets it.
	case errors.Is(err, log.ErrClosed):
		// Shutting down (the log closes after the forwarder).
	default:
		r.errs.Add(1)
		r.setErr(err)
		r.mu.Lock()
		p.readFails++
		n := p.readFails
		bo := backoff{min: r.f.opts.BackoffMin, max: r.f.opts.BackoffMax, n: n - 1}
		p.readRetry = time.Now().Add(bo.next())
		r.mu.Unlock()
		if n <= 3 || n%100 == 0 {
			r.logger.Error("forward: log read failed", "topic", p.topic, "partition", p.part, "offset", next, "err", err, "failures", n)
		}
	}
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
	r.ackedN.Add(1)
	r.ackedB.Add(uint64(size))
	r.lastAck = time.Now()
	if r.state != StateConnected && !r.failed {
		r.state = StateConnected
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
