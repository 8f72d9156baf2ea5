package forward

// Duties: which origin partitions this node forwards. Without
// Options.Duties a node forwards its own topics (every local topic a route
// matches). With it, the provider (site replication, wired by cmd/runnel)
// says which origin partitions to forward, its own included, and may hand
// a node another node's partition held here as a mirror: the forwarder
// then sends it as that origin would have, with the origin's node id and
// topic in the runnel-* headers and in {node} and {topic}, and the
// origin's offsets (a mirror stores them at the origin's offsets).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/runnel/runnel/log/meta"
)

// Duty is one origin partition this node must forward, on every route
// whose topics match the origin's topic name.
type Duty struct {
	// Origin is the node id of the partition's origin (this node's own id
	// for its own partitions): runnel-node and {node}.
	Origin string
	// Topic is the topic's name at the origin: route matching,
	// runnel-topic and {topic}.
	Topic     string
	Partition int32
	// Local is the local topic holding the partition at the origin's
	// offsets; "" means Topic (the node's own topics).
	Local string
	// Epoch is the duty epoch; it goes to the cursor log with every
	// progress record. A duty whose epoch changes is stopped and started
	// again.
	Epoch uint64
	// From holds, per route name, the furthest acknowledged cursor known
	// (for example from replicated cursor logs). A route starts the duty
	// at the larger of From and its own saved cursor; without either, at
	// the local partition's log start (its own topics: per Route.Start).
	From map[string]int64
	// Why says why this node forwards it ("own", "takeover", "hand-back"),
	// for status only.
	Why string
}

func (d *Duty) local() string {
	if d.Local == "" {
		return d.Topic
	}
	return d.Local
}

// dutyID identifies a running duty: a change of any field but From and
// Why stops it and starts it again.
type dutyID struct {
	origin, topic, local string
	partition            int32
	epoch                uint64
}

func (d *Duty) id() dutyID {
	return dutyID{origin: d.Origin, topic: d.Topic, local: d.local(), partition: d.Partition, epoch: d.Epoch}
}

// Duties provides the duties of this node (Options.Duties). Methods are
// called from the forwarder's goroutines.
type Duties interface {
	// Duties returns every origin partition this node must forward now.
	// At most one duty per local topic and partition.
	Duties() []Duty
	// Changed returns a channel closed when Duties may return something
	// else.
	Changed() <-chan struct{}
}

// DutyStopper is an optional capability of Duties: Stopped is called
// once for each duty that left Duties() after no route forwards it any
// more: nothing of it in flight, every route's cursor saved (and appended
// to the cursor log). cursors holds each route's final position (the
// next offset it would have sent; every offset below is acknowledged).
// It is called from a forwarder goroutine and must not block.
type DutyStopper interface {
	Stopped(d Duty, cursors map[string]int64)
}

// partDuty says on whose behalf a part forwards: the origin partition
// (origin node and topic name) and the duty epoch. Guarded by route.mu
// like the rest of the part.
type partDuty struct {
	origin  string // node id in runnel-node and {node}
	topic   string // origin topic name in runnel-topic and {topic}
	epoch   uint64
	foreign bool   // another node's partition (a mirror held here)
	id      dutyID // zero without Options.Duties
	why     string
	since   time.Time
	logged  int64 // offset last written to the cursor log; -1 = none

	stopping  bool      // left Duties(): send nothing more, drain, reap
	stopSince time.Time // when stopping began
}

// ownDuty is the duty of a partition of this node's own topic (without
// Options.Duties).
func ownDuty(node, topic string) partDuty {
	return partDuty{origin: node, topic: topic, why: "own", since: time.Now(), logged: -1}
}

// dutySet is the forwarder's copy of the provider's duties and the count
// of routes forwarding each, so Stopped is called once no route does.
type dutySet struct {
	src  Duties
	stop DutyStopper // nil when src does not implement it

	mu      sync.Mutex // guards the fields below
	current map[dutyID]Duty
	running map[dutyID]*dutyRun
	gen     uint64 // bumped at each change of current
}

// dutyRun counts the routes forwarding one duty.
type dutyRun struct {
	d       Duty
	routes  int
	cursors map[string]int64
}

func newDutySet(src Duties) *dutySet {
	s := &dutySet{src: src, current: map[dutyID]Duty{}, running: map[dutyID]*dutyRun{}}
	s.stop, _ = src.(DutyStopper)
	return s
}

// load reads the provider's duties; those that left are reported stopped
// at once when no route forwards them. It returns whether anything
// changed.
func (s *dutySet) load() bool {
	next := map[dutyID]Duty{}
	for _, d := range s.src.Duties() {
		next[d.id()] = d
	}
	var stopped []*dutyRun
	s.mu.Lock()
	changed := len(next) != len(s.current)
	for id := range s.current {
		if _, ok := next[id]; !ok {
			changed = true
			if run := s.running[id]; run != nil && run.routes == 0 {
				delete(s.running, id)
				stopped = append(stopped, run)
			}
		}
	}
	for id, d := range next {
		if _, ok := s.current[id]; !ok {
			changed = true
			if s.running[id] == nil { // (else back before its routes drained)
				s.running[id] = &dutyRun{d: d}
			}
		}
	}
	if changed {
		s.gen++
	}
	s.current = next
	s.mu.Unlock()
	s.report(stopped)
	return changed
}

// snapshot returns the current duties by local partition.
func (s *dutySet) snapshot() map[meta.TopicPartition]Duty {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[meta.TopicPartition]Duty, len(s.current))
	for _, d := range s.current {
		out[meta.TopicPartition{Topic: d.local(), Partition: d.Partition}] = d
	}
	return out
}

// has reports whether id is a current duty.
func (s *dutySet) has(id dutyID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.current[id]
	return ok
}

// acquire counts one more route forwarding id; false when id is no longer
// a current duty (the route must not start it).
func (s *dutySet) acquire(id dutyID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.current[id]; !ok {
		return false
	}
	run := s.running[id]
	if run == nil {
		run = &dutyRun{d: s.current[id]}
		s.running[id] = run
	}
	run.routes++
	return true
}

// release counts one route fewer forwarding id, which stopped at offset
// off; the last one of a duty that left reports it stopped.
func (s *dutySet) release(id dutyID, route string, off int64) {
	s.mu.Lock()
	run := s.running[id]
	if run == nil {
		s.mu.Unlock()
		return
	}
	run.routes--
	if run.cursors == nil {
		run.cursors = map[string]int64{}
	}
	run.cursors[route] = off
	var stopped []*dutyRun
	if _, cur := s.current[id]; !cur && run.routes <= 0 {
		delete(s.running, id)
		stopped = append(stopped, run)
	}
	s.mu.Unlock()
	s.report(stopped)
}

func (s *dutySet) report(runs []*dutyRun) {
	if s.stop == nil {
		return
	}
	for _, run := range runs {
		s.stop.Stopped(run.d, run.cursors)
	}
}

// watch reloads the duties whenever the provider says they changed and
// wakes every route; owned by the Forwarder (it stops with ctx).
func (f *Forwarder) watchDuties(done <-chan struct{}) {
	for {
		ch := f.duties.src.Changed()
		if f.duties.load() {
			for _, r := range f.routes {
				signal(r.dutyc)
			}
		}
		select {
		case <-done:
			return
		case <-ch:
		}
	}
}

// wantPart is a partition a route should forward, with its duty.
type wantPart struct {
	duty Duty
	own  bool
}

// Forwards reports whether any route forwards topic (a topic name at
// its origin), so a duty provider can leave out what no route sends.
func (f *Forwarder) Forwards(topic string) bool {
	for _, r := range f.routes {
		if r.matches(topic) {
			return true
		}
	}
	return false
}

// PartitionStatus is one partition a route forwards, for status.
type PartitionStatus struct {
	Route     string `json:"route"`
	Origin    string `json:"origin"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Local is the local topic read (differs from Topic for a mirror).
	Local string `json:"local"`
	Epoch uint64 `json:"epoch"`
	// Why the node forwards it ("own", "takeover", "hand-back") and since
	// when this route does.
	Why   string    `json:"why"`
	Since time.Time `json:"since"`
	// Acked is the next offset to send after everything acknowledged;
	// HWM the partition's high-water mark last seen.
	Acked int64 `json:"acked"`
	HWM   int64 `json:"hwm"`
	// Stopping: the duty ended, the route drains what is in flight.
	Stopping bool `json:"stopping,omitempty"`
}

// Partitions lists every partition every route forwards, sorted by
// origin, topic, partition and route.
func (f *Forwarder) Partitions() []PartitionStatus {
	var out []PartitionStatus
	for _, r := range f.routes {
		r.mu.Lock()
		for _, p := range r.order {
			out = append(out, PartitionStatus{Route: r.cfg.Name, Origin: p.duty.origin, Topic: p.duty.topic,
				Partition: p.part, Local: p.topic, Epoch: p.duty.epoch, Why: p.duty.why, Since: p.duty.since,
				Acked: p.acked, HWM: p.hwm, Stopping: p.duty.stopping})
		}
		r.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Origin != b.Origin {
			return a.Origin < b.Origin
		}
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		return a.Route < b.Route
	})
	return out
}

// RoutesHash is a short digest of what decides where and how a node's
// records go upstream: every route's name, upstream, topics, target,
// start, priority and paused flag, and each upstream's kind, brokers or
// URL, partitioning and bandwidth cap (not credentials, client ids or
// tuning). A node forwards another node's partitions with its own routes,
// so the boxes of a site must share these; replication advertises the
// hash so a mismatch is found and reported before a takeover.
func RoutesHash(o Options) string {
	c := o.withDefaults()
	var b strings.Builder
	routes := slices.Clone(c.Routes)
	sort.Slice(routes, func(i, j int) bool { return routes[i].Name < routes[j].Name })
	used := map[string]bool{}
	for _, r := range routes {
		fmt.Fprintf(&b, "route %q %q %q %q %q %d %v\n", r.Name, r.Upstream, r.Topics, r.Target, r.Start, r.Priority, r.Paused)
		used[r.Upstream] = true
	}
	names := make([]string, 0, len(used))
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		u := c.Upstreams[n]
		brokers := slices.Clone(u.Brokers)
		sort.Strings(brokers)
		fmt.Fprintf(&b, "upstream %q %q %q %q %q %d\n", n, u.Kind, brokers, u.URL, u.Partitioning, u.BandwidthBytesPerSec)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:8])
}

// stopLocked starts stopping p: nothing more is sent; reap removes it once
// what is in flight is resolved.
func (r *route) stopLocked(p *part, now time.Time) {
	p.duty.stopping, p.duty.stopSince = true, now
	r.stopping++
	r.logger.Debug("forward: duty ends, draining", "topic", p.topic, "partition", p.part,
		"origin", p.duty.origin, "epoch", p.duty.epoch)
}

// drainTimeout bounds how long a stopping partition waits for its
// records in flight (sinks fail a record after DeliveryTimeout, which
// resolves it earlier in practice).
func (r *route) drainTimeout() time.Duration { return r.up.DeliveryTimeout + 5*time.Second }

// reap removes the stopping partitions whose records in flight are all
// resolved (or that waited drainTimeout): it saves the final cursor (an
// own partition's in meta; a mirror's is deleted from meta, so it stops
// holding the mirror's retention, and lives on in the cursor log), appends
// it to the cursor log, and tells the duty set. Called from the route
// goroutine.
func (r *route) reap() {
	r.mu.Lock()
	if r.stopping == 0 {
		r.mu.Unlock()
		return
	}
	now := time.Now()
	var done []*part
	for _, p := range r.order {
		if p.duty.stopping && (p.head == len(p.pend) || now.Sub(p.duty.stopSince) > r.drainTimeout()) {
			done = append(done, p)
		}
	}
	r.mu.Unlock()
	if len(done) == 0 {
		return
	}
	lg := r.f.opts.Log
	r.f.flushMu.Lock()
	own := map[meta.TopicPartition]int64{}
	var recs []CursorRecord
	r.mu.Lock()
	for _, p := range done {
		if !p.duty.foreign {
			own[meta.TopicPartition{Topic: p.topic, Partition: p.part}] = p.acked
		}
		rec := r.progressLocked(p)
		rec.Offset = p.acked
		recs = append(recs, rec)
	}
	r.mu.Unlock()
	var err error
	if len(own) > 0 {
		err = lg.Meta().SetCursors(r.name, own)
	}
	for _, p := range done {
		if p.duty.foreign && err == nil {
			err = lg.Meta().DeleteCursor(r.name, p.topic, p.part)
		}
	}
	if err != nil {
		r.fail(err)
		r.logger.Error("forward: cannot save the cursors of ended duties", "err", err)
	}
	if r.f.opts.CursorTopic != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := AppendCursorRecords(ctx, lg, r.f.opts.CursorTopic, recs...); err != nil {
			r.cursorLogErrs.Add(1)
			r.logger.Error("forward: cannot append the cursors of ended duties to the cursor log", "err", err)
		}
		cancel()
	}
	// The parts leave r.order before flushMu is released: a flush that
	// ran in between would otherwise find a mirror's acked != saved and
	// write the cursor just deleted back to meta.
	offs := make([]int64, len(done))
	r.mu.Lock()
	for i, p := range done {
		tp := meta.TopicPartition{Topic: p.topic, Partition: p.part}
		offs[i] = p.acked
		p.gone = true
		r.stopping--
		r.span -= p.next - p.saved
		delete(r.parts, tp)
		if p.duty.foreign {
			delete(r.loaded, tp)
		} else {
			r.loaded[tp] = p.acked
		}
		r.order = slices.DeleteFunc(r.order, func(q *part) bool { return q == p })
	}
	r.rr = 0
	r.mu.Unlock()
	r.f.flushMu.Unlock()
	for i, p := range done {
		r.logger.Debug("forward: duty ended", "topic", p.topic, "partition", p.part,
			"origin", p.duty.origin, "epoch", p.duty.epoch, "offset", offs[i])
		r.f.duties.release(p.duty.id, r.cfg.Name, offs[i])
	}
	signal(r.dutyc) // a duty waiting for this partition can start now
}

// originsLocked summarizes r's partitions by origin and reason.
func (r *route) originsLocked() []OriginStatus {
	type k struct{ origin, why string }
	idx := map[k]int{}
	var out []OriginStatus
	for _, p := range r.order {
		if p.duty.stopping {
			continue
		}
		key := k{p.duty.origin, p.duty.why}
		i, ok := idx[key]
		if !ok {
			i = len(out)
			idx[key] = i
			out = append(out, OriginStatus{Origin: key.origin, Why: key.why, Since: p.duty.since})
		}
		out[i].Partitions++
		if p.duty.since.Before(out[i].Since) {
			out[i].Since = p.duty.since
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Origin != out[j].Origin {
			return out[i].Origin < out[j].Origin
		}
		return out[i].Why < out[j].Why
	})
	return out
}
