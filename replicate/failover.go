package replicate

// Forwarding failover: which origin partitions this node forwards
// upstream. Failover implements forward.Duties (and DutyStopper) from
// what replication knows: the members and their states, the copies this
// node holds, and the cursor logs (forward.CursorTopic) of every node,
// read from this node's copies of them. The decisions are replicate/duty's;
// this file gathers their inputs, writes claims and releases to this
// node's cursor log, and tells the forwarder.
//
//	members (serf) ─┐
//	copies, ISR ────┼──> duty.Plan ──> claims/releases ──> __runnel_cursors
//	cursor logs ────┘        │                            (mirrored to peers)
//	                         └──> Duties() ──> forward (origin identity,
//	                                           from the replicated cursor)
//
// A node starts (and resumes after a pause of its loop longer than
// PauseGap) with its view gated: it acts only once its copies of every
// alive peer's cursor log have caught up since then, or StaleMax passed,
// so a box back from a SIGSTOP learns it lost its duty before it sends
// again. At start it also waits until it took back from the peers' copies
// what they hold of its partitions (restore.go): its own cursor log is
// one of them, so a box back with a wiped data dir (a replaced SD card)
// forwards from where it stood upstream, give or take one cursor save,
// not from its log start.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/meta"
	"github.com/runnel/runnel/replicate/duty"
	"github.com/runnel/runnel/replicate/member"
	"github.com/runnel/runnel/sync/forward"
)

// FailoverOptions configures a Failover. Zero fields take the defaults.
type FailoverOptions struct {
	// Interval is how often duties are decided again (besides membership
	// changes and duties the forwarder stopped); default 250ms.
	Interval time.Duration
	// StaleMax bounds how long a starting or resumed node waits for its
	// copies of the peers' cursor logs before it acts on what it has;
	// default 30s.
	StaleMax time.Duration
	// PauseGap: the decision loop not running for this long counts as a
	// pause of the node (its view is gated again); default 2s.
	PauseGap time.Duration
	// Logger; nil = the Replicator's.
	Logger *slog.Logger
}

// Failover decides and tracks this node's forwarding duties. Create with
// Replicator.Failover, pass it as forward.Options.Duties, then Start.
type Failover struct {
	r      *Replicator
	opts   FailoverOptions
	logger *slog.Logger

	progress func() []forward.PartitionStatus // the forwarder's, set by Start
	forwards func(topic string) bool          // whether a route sends topic, set by Start

	// mu guards the fields below.
	mu      sync.Mutex
	held    map[forward.DutyKey]*heldDuty
	changed chan struct{}
	stopped []forward.Duty // reported by the forwarder, handled by the loop
	plan    []duty.Decision
	fresh   bool

	wake chan struct{} // one slot
	done chan struct{}
	wg   sync.WaitGroup

	// Loop goroutine only.
	view      *forward.CursorView
	readFrom  map[string]int64
	gateSince time.Time                  // zero: not gated
	stale     map[forward.DutyKey]uint64 // dropped on a stale view: epoch held

	takeovers, handbacks, releases, overlaps, staleDrops, logErrs atomic.Uint64
}

// heldDuty is a duty this node forwards, or is stopping.
type heldDuty struct {
	d     forward.Duty
	state string      // "forwarding", "releasing", "dropping"
	why   duty.Reason // why it was taken, or why it is stopping
	note  duty.Reason // what it waits for while forwarding ("origin catching up")
	since time.Time
}

const (
	stateForwarding = "forwarding"
	stateReleasing  = "releasing"
	stateDropping   = "dropping"
)

// Failover returns the failover of this node (one per Replicator).
func (r *Replicator) Failover(opts FailoverOptions) *Failover {
	if opts.Interval <= 0 {
		opts.Interval = 250 * time.Millisecond
	}
	if opts.StaleMax <= 0 {
		opts.StaleMax = 30 * time.Second
	}
	if opts.PauseGap <= 0 {
		opts.PauseGap = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = r.logger
	}
	return &Failover{r: r, opts: opts, logger: opts.Logger,
		held: map[forward.DutyKey]*heldDuty{}, changed: make(chan struct{}),
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		view: forward.NewCursorView(), readFrom: map[string]int64{}, stale: map[forward.DutyKey]uint64{}}
}

// Duties implements forward.Duties.
func (fo *Failover) Duties() []forward.Duty {
	fo.mu.Lock()
	defer fo.mu.Unlock()
	out := make([]forward.Duty, 0, len(fo.held))
	for _, h := range fo.held {
		if h.state == stateForwarding {
			out = append(out, h.d)
		}
	}
	return out
}

// Changed implements forward.Duties.
func (fo *Failover) Changed() <-chan struct{} {
	fo.mu.Lock()
	defer fo.mu.Unlock()
	return fo.changed
}

// Stopped implements forward.DutyStopper.
func (fo *Failover) Stopped(d forward.Duty, _ map[string]int64) {
	fo.mu.Lock()
	fo.stopped = append(fo.stopped, d)
	fo.mu.Unlock()
	select {
	case fo.wake <- struct{}{}:
	default:
	}
}

func (fo *Failover) notifyLocked() {
	close(fo.changed)
	fo.changed = make(chan struct{})
}

// Start runs the decisions with the forwarder f (how far it forwarded
// each duty, which topics its routes send). It makes this node's cursor
// log if it has none, so peers can tell "nothing forwarded" from "not
// caught up".
func (fo *Failover) Start(f *forward.Forwarder) {
	fo.progress, fo.forwards = f.Partitions, f.Forwards
	if err := fo.r.view.CreateTopic(forward.CursorTopic, CursorTopicConfig()); err != nil && !errors.Is(err, log.ErrTopicExists) {
		fo.logger.Error("failover: cannot create the cursor log", "topic", forward.CursorTopic, "err", err)
	}
	fo.gateSince = time.Now()
	fo.wg.Add(1)
	go fo.loop()
}

// CursorTopicConfig is the cursor log's config on a site: forward's, held
// by every box of the site (up to 64), so any survivor has the cursors.
func CursorTopicConfig() log.TopicConfig {
	c := forward.CursorTopicConfig()
	c.ReplicationFactor = 64
	c.MinInsyncReplicas = 1
	return c
}

// Close stops the decisions (the duties stay as they are). Idempotent.
func (fo *Failover) Close() {
	select {
	case <-fo.done:
		return
	default:
	}
	close(fo.done)
	fo.wg.Wait()
}

func (fo *Failover) loop() {
	defer fo.wg.Done()
	tick := time.NewTicker(fo.opts.Interval)
	defer tick.Stop()
	last := time.Now()
	for {
		changed := fo.r.mem.Changed()
		select {
		case <-fo.done:
			return
		case <-tick.C:
		case <-changed:
		case <-fo.wake:
		}
		now := time.Now()
		if gap := now.Sub(last); gap > fo.opts.PauseGap {
			fo.logger.Warn("failover: this node did not run for a while (paused?); duties wait until the peers' cursor logs are caught up", "gap", gap.Round(time.Millisecond))
			fo.gateSince = now
		}
		last = now
		fo.round(now)
	}
}

// round handles stopped duties, reads the cursor logs, decides and
// applies the decisions.
func (fo *Failover) round(now time.Time) {
	fo.handleStopped()
	// Read before the cursor logs: once the start's taking back is done,
	// this node's own cursor log holds what its copies held (a box back
	// with a wiped data dir forwards from there, not from its log start).
	restoring := fo.r.restoring.Load()
	fo.readCursorLogs()
	members := fo.members()
	fresh := true
	if restoring {
		fresh = false // decided once this node's partitions and cursor log are back
	} else if !fo.gateSince.IsZero() {
		// Nodes whose cursor logs this node holds copies of but that
		// gossip has not reported yet (right after a start) count as
		// alive: their claims must be read before acting.
		gate := append([]duty.Member(nil), members...)
		for _, e := range fo.r.registry.all() {
			if e.Topic == forward.CursorTopic && !slices.ContainsFunc(members, func(m duty.Member) bool { return m.ID == e.Origin }) {
				gate = append(gate, duty.Member{ID: e.Origin, State: duty.Alive})
			}
		}
		fresh = duty.Fresh(fo.gateSince, fo.r.nodeID, gate, fo.caughtUp(gate))
		if !fresh && now.Sub(fo.gateSince) > fo.opts.StaleMax {
			fo.logger.Warn("failover: peers' cursor logs not caught up; acting on what this node knows", "waited", now.Sub(fo.gateSince).Round(time.Second))
			fresh = true
		}
		if fresh {
			fo.gateSince = time.Time{}
		}
	}
	if fresh {
		fo.overlapsAfterPause()
	}
	v := &duty.View{Self: fo.r.nodeID, Members: members, Fresh: fresh}
	parts := fo.partitions()
	cursors := fo.forwarded()
	held := map[forward.DutyKey]duty.Held{}
	busy := map[forward.DutyKey]bool{}
	fo.mu.Lock()
	for k, h := range fo.held {
		if h.state != stateForwarding {
			busy[k] = true
			continue
		}
		held[k] = duty.Held{Epoch: h.d.Epoch, Cursor: cursors[localKey(h.d)]}
	}
	fo.mu.Unlock()
	var todo []duty.Decision
	for i := range parts {
		if busy[parts[i].Key] {
			continue // stopping: decided again once stopped
		}
		var h *duty.Held
		if x, ok := held[parts[i].Key]; ok {
			h = &x
		}
		todo = append(todo, duty.Decide(v, &parts[i], h))
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].Key.String() < todo[j].Key.String() })
	fo.apply(todo, now)
	fo.mu.Lock()
	fo.plan, fo.fresh = todo, fresh
	fo.mu.Unlock()
}

// apply carries out decisions: claims are written (one batch) before the
// duties reach the forwarder.
func (fo *Failover) apply(ds []duty.Decision, now time.Time) {
	var claims []forward.CursorRecord
	var takes []duty.Decision
	for _, d := range ds {
		if d.Action == duty.Take {
			claims = append(claims, forward.CursorRecord{Kind: forward.CursorClaim, Node: fo.r.nodeID,
				Origin: d.Key.Origin, Topic: d.Key.Topic, Partition: d.Key.Partition, Epoch: d.Epoch})
			takes = append(takes, d)
		}
	}
	if len(claims) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := forward.AppendCursorRecords(ctx, fo.r.view, forward.CursorTopic, claims...)
		cancel()
		if err != nil {
			fo.logErrs.Add(1)
			fo.logger.Error("failover: cannot write claims; not taking the duties", "claims", len(claims), "err", err)
			takes = nil
		} else {
			for _, c := range claims {
				c.Time = now.UnixMilli()
				fo.view.Add(c)
			}
		}
	}
	fo.mu.Lock()
	defer fo.mu.Unlock()
	changed := false
	for _, d := range takes {
		k := d.Key
		local := k.Topic
		if k.Origin != fo.r.nodeID {
			local = MirrorName(k.Origin, k.Topic)
		}
		from := fo.view.Cursors(k)
		if k.Origin == fo.r.nodeID {
			from = fo.r.capOwnFrom(k.Topic, k.Partition, from)
		}
		fd := forward.Duty{Origin: k.Origin, Topic: k.Topic, Partition: k.Partition, Local: local,
			Epoch: d.Epoch, From: from, Why: string(d.Why)}
		fo.held[k] = &heldDuty{d: fd, state: stateForwarding, why: d.Why, since: now}
		changed = true
		switch d.Why {
		case duty.ReasonTakeover:
			fo.takeovers.Add(1)
			fo.logger.Warn("failover: takeover: forwarding another node's partition", "origin", k.Origin, "topic", k.Topic, "partition", k.Partition, "epoch", d.Epoch, "from", fd.From)
		case duty.ReasonHandBack:
			fo.handbacks.Add(1)
			fo.logger.Info("failover: hand-back: forwarding own partition again", "topic", k.Topic, "partition", k.Partition, "epoch", d.Epoch, "from", fd.From)
		}
	}
	for _, d := range ds {
		h := fo.held[d.Key]
		switch d.Action {
		case duty.Keep:
			if h != nil {
				h.note = ""
				if d.Why == duty.ReasonCatchingUp {
					h.note = d.Why
				}
			}
		case duty.Release:
			if h != nil && h.state == stateForwarding {
				h.state, h.why = stateReleasing, d.Why
				changed = true
				fo.releases.Add(1)
				fo.logger.Info("failover: hand-back: stopping forwarding for its owner", "origin", d.Key.Origin, "topic", d.Key.Topic, "partition", d.Key.Partition, "epoch", d.Epoch, "owner", d.Owner)
			}
		case duty.Drop:
			if h != nil && h.state == stateForwarding {
				h.state, h.why = stateDropping, d.Why
				changed = true
				if d.Why == duty.ReasonFenced {
					fo.overlaps.Add(1)
					fo.logger.Warn("failover: fenced: another node took this partition; stopping (records forwarded by both meanwhile are duplicates)", "origin", d.Key.Origin, "topic", d.Key.Topic, "partition", d.Key.Partition, "epoch", d.Epoch, "owner", d.Owner)
				} else {
					fo.staleDrops.Add(1)
					fo.stale[d.Key] = d.Epoch
				}
			}
		}
	}
	if changed {
		fo.notifyLocked()
	}
}

// overlapsAfterPause counts, once the view is fresh again, the duties
// dropped on a stale view that another node had claimed meanwhile: this
// node forwarded them after the takeover, until its pause was noticed.
func (fo *Failover) overlapsAfterPause() {
	for k, epoch := range fo.stale {
		if c, ok := fo.view.Claim(k); ok && c.Node != fo.r.nodeID && (forward.Claim{Node: fo.r.nodeID, Epoch: epoch}).Less(c) {
			fo.overlaps.Add(1)
			fo.logger.Warn("failover: fenced after a pause: another node took this partition meanwhile (records forwarded by both are duplicates)",
				"origin", k.Origin, "topic", k.Topic, "partition", k.Partition, "epoch", epoch, "owner", c.Node, "owner_epoch", c.Epoch)
		}
		delete(fo.stale, k)
	}
}

// handleStopped writes the release of each duty handed back once the
// forwarder stopped it (its final cursors are in the cursor log then).
func (fo *Failover) handleStopped() {
	fo.mu.Lock()
	stopped := fo.stopped
	fo.stopped = nil
	var rel []forward.CursorRecord
	for _, d := range stopped {
		k := forward.DutyKey{Origin: d.Origin, Topic: d.Topic, Partition: d.Partition}
		h := fo.held[k]
		if h == nil || h.d.Epoch != d.Epoch || h.state == stateForwarding {
			continue
		}
		if h.state == stateReleasing {
			rel = append(rel, forward.CursorRecord{Kind: forward.CursorRelease, Node: fo.r.nodeID,
				Origin: d.Origin, Topic: d.Topic, Partition: d.Partition, Epoch: d.Epoch})
		}
		delete(fo.held, k)
	}
	fo.mu.Unlock()
	if len(rel) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := forward.AppendCursorRecords(ctx, fo.r.view, forward.CursorTopic, rel...)
	cancel()
	if err != nil {
		// The owner waits for a release it will not see until this node
		// writes another one or is declared failed.
		fo.logErrs.Add(1)
		fo.logger.Error("failover: cannot write releases", "err", err)
		return
	}
	for _, c := range rel {
		fo.view.Add(c)
	}
}

// readCursorLogs folds what is new in this node's cursor log and its
// copies of the peers' into the view.
func (fo *Failover) readCursorLogs() {
	topics := []string{forward.CursorTopic}
	for local, e := range fo.r.registry.all() {
		if e.Topic == forward.CursorTopic {
			topics = append(topics, local)
		}
	}
	for _, t := range topics {
		next, err := forward.ReadCursorLog(fo.r.inner, t, fo.readFrom[t], fo.view)
		if err != nil {
			fo.logger.Debug("failover: read cursor log", "topic", t, "err", err)
			continue
		}
		fo.readFrom[t] = next
	}
}

func (fo *Failover) members() []duty.Member {
	var out []duty.Member
	for _, m := range fo.r.peers() {
		out = append(out, duty.Member{ID: m.NodeID, State: duty.State(m.State), Routes: m.Routes})
	}
	if len(out) == 0 {
		out = append(out, duty.Member{ID: fo.r.nodeID, State: duty.Alive})
	}
	return out
}

// caughtUp says when this node's copy of each peer's cursor log last held
// everything the peer had.
func (fo *Failover) caughtUp(members []duty.Member) map[string]time.Time {
	out := map[string]time.Time{}
	for _, m := range members {
		if m.ID == fo.r.nodeID {
			continue
		}
		if st, ok := fo.r.copyState(m.ID, forward.CursorTopic, 0); ok && !st.caughtUp.IsZero() {
			out[m.ID] = st.caughtUp
		}
	}
	return out
}

// partitions lists the origin partitions this node decides on: its own,
// those it holds a copy of, and those it forwards.
func (fo *Failover) partitions() []duty.Partition {
	self := fo.r.nodeID
	seen := map[forward.DutyKey]bool{}
	var out []duty.Partition
	add := func(p duty.Partition) {
		if seen[p.Key] {
			return
		}
		seen[p.Key] = true
		if c, ok := fo.view.Claim(p.Key); ok {
			p.Claim, p.Claimed = c, true
		}
		out = append(out, p)
	}
	infos := fo.r.inner.Topics()
	byName := map[string]log.TopicInfo{}
	for _, ti := range infos {
		byName[ti.Name] = ti
	}
	for _, ti := range infos {
		if ti.Config.Origin != "" || ti.Name == forward.CursorTopic || !fo.forwards(ti.Name) {
			continue
		}
		for _, pi := range ti.Partitions {
			add(duty.Partition{Key: forward.DutyKey{Origin: self, Topic: ti.Name, Partition: pi.Partition}, OriginEnd: pi.HWM})
		}
	}
	for local, e := range fo.r.registry.all() {
		if e.Topic == forward.CursorTopic || !fo.forwards(e.Topic) {
			continue
		}
		ti, ok := byName[local]
		if !ok {
			continue
		}
		for _, pi := range ti.Partitions {
			k := forward.DutyKey{Origin: e.Origin, Topic: e.Topic, Partition: pi.Partition}
			st, _ := fo.r.copyState(e.Origin, e.Topic, pi.Partition)
			copies, known := fo.r.copies.get(k)
			if !known && (st.assigned || pi.HWM > pi.Start) {
				copies = []string{self} // all this node knows
			}
			if !st.assigned && !(known && slices.Contains(copies, self)) && pi.HWM == pi.Start {
				continue // not held here
			}
			end := int64(-1)
			if st.fetching {
				end = st.originEnd
			}
			add(duty.Partition{Key: k, Copies: copies, OriginEnd: end})
		}
	}
	fo.mu.Lock()
	var heldKeys []forward.DutyKey
	for k := range fo.held {
		heldKeys = append(heldKeys, k)
	}
	fo.mu.Unlock()
	for _, k := range heldKeys {
		add(duty.Partition{Key: k, OriginEnd: -1})
	}
	return out
}

// forwarded returns, per local partition, the furthest acknowledged
// position of any route.
func (fo *Failover) forwarded() map[string]int64 {
	out := map[string]int64{}
	if fo.progress == nil {
		return out
	}
	for _, p := range fo.progress() {
		k := p.Local + "\x00" + strconv.Itoa(int(p.Partition))
		out[k] = max(out[k], p.Acked)
	}
	return out
}

func localKey(d forward.Duty) string {
	l := d.Local
	if l == "" {
		l = d.Topic
	}
	return l + "\x00" + strconv.Itoa(int(d.Partition))
}

// FailoverStatus is a snapshot for /api/peers, `runnel status` and
// metrics.
type FailoverStatus struct {
	// Fresh is false while this node waits for its copies of the peers'
	// cursor logs (after start or a pause).
	Fresh bool `json:"fresh"`
	// Duties are the origin partitions this node forwards (or is
	// stopping), with why and since when.
	Duties []DutyStatus `json:"duties"`
	// Others are origin partitions this node knows of and does not
	// forward: who should, and why (not this node).
	Others []DutyStatus `json:"others,omitempty"`
	// Totals since start.
	Takeovers  uint64 `json:"takeovers"`
	HandBacks  uint64 `json:"hand_backs"`
	Releases   uint64 `json:"releases"`
	Overlaps   uint64 `json:"overlaps"`
	StaleDrops uint64 `json:"stale_drops"`
	LogErrors  uint64 `json:"cursor_log_errors"`
}

// DutyStatus is one origin partition's forwarding as this node sees it.
type DutyStatus struct {
	Origin    string    `json:"origin"`
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Epoch     uint64    `json:"epoch,omitempty"`
	State     string    `json:"state,omitempty"` // forwarding, releasing, dropping, waiting
	Owner     string    `json:"owner,omitempty"`
	Why       string    `json:"why"`
	Since     time.Time `json:"since,omitzero"`
	// Note says what a duty handed back waits for ("origin catching up":
	// the returning origin's log does not reach this node's cursor yet).
	Note string `json:"note,omitempty"`
	// Copies are the nodes holding an in-sync copy, as its origin last
	// announced (others only).
	Copies []string `json:"copies,omitempty"`
}

// Status returns a snapshot.
func (fo *Failover) Status() FailoverStatus {
	fo.mu.Lock()
	defer fo.mu.Unlock()
	st := FailoverStatus{Fresh: fo.fresh, Takeovers: fo.takeovers.Load(), HandBacks: fo.handbacks.Load(),
		Releases: fo.releases.Load(), Overlaps: fo.overlaps.Load(), StaleDrops: fo.staleDrops.Load(), LogErrors: fo.logErrs.Load()}
	for k, h := range fo.held {
		st.Duties = append(st.Duties, DutyStatus{Origin: k.Origin, Topic: k.Topic, Partition: k.Partition,
			Epoch: h.d.Epoch, State: h.state, Owner: fo.r.nodeID, Why: string(h.why), Since: h.since, Note: string(h.note)})
	}
	for _, d := range fo.plan {
		if _, ok := fo.held[d.Key]; ok {
			continue
		}
		switch {
		case d.Action == duty.Wait:
			st.Others = append(st.Others, DutyStatus{Origin: d.Key.Origin, Topic: d.Key.Topic, Partition: d.Key.Partition,
				State: "waiting", Owner: d.Owner, Why: string(d.Why)})
		case d.Action == duty.None && d.Owner != d.Key.Origin:
			// Another survivor forwards it, or nobody can.
			copies, _ := fo.r.copies.get(d.Key)
			st.Others = append(st.Others, DutyStatus{Origin: d.Key.Origin, Topic: d.Key.Topic, Partition: d.Key.Partition,
				Owner: d.Owner, Why: string(d.Why), Copies: copies})
		}
	}
	sort.Slice(st.Duties, func(i, j int) bool { return dutyLess(st.Duties[i], st.Duties[j]) })
	sort.Slice(st.Others, func(i, j int) bool { return dutyLess(st.Others[i], st.Others[j]) })
	if st.Duties == nil {
		st.Duties = []DutyStatus{}
	}
	return st
}

func dutyLess(a, b DutyStatus) bool {
	if a.Origin != b.Origin {
		return a.Origin < b.Origin
	}
	if a.Topic != b.Topic {
		return a.Topic < b.Topic
	}
	return a.Partition < b.Partition
}

// copyBook remembers, per origin partition, the nodes its origin last
// announced as holding copies (besides itself): the in-sync set, or when
// that holds no copy (a copy placed moments before the origin died), the
// replica list. The survivors of a dead origin agree on who holds its
// data from these announcements. The book is kept in meta.db (bucket
// replicate-copies), written when an announcement changes it: survivors
// that restart while the origin is down (a site-wide power cut) still
// agree, and a copy that had fallen out of the in-sync set does not pass
// for one that had not.
type copyBook struct {
	store *meta.Store // nil: memory only
	// wmu orders the writes to the store's bucket (taken before mu), so
	// get never waits behind a write to meta.db.
	wmu sync.Mutex
	// stale (guarded by wmu): a write failed, so the bucket may differ
	// from m; the next note or prune writes it whole first.
	stale bool
	mu    sync.Mutex // guards m
	m     map[forward.DutyKey][]string
}

const copyBookBucket = "replicate-copies"

func copyBookKey(k forward.DutyKey) string {
	return k.Origin + "\x00" + k.Topic + "\x00" + strconv.Itoa(int(k.Partition))
}

// load reads the book kept in meta.db.
func (b *copyBook) load() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[forward.DutyKey][]string{}
	}
	if b.store == nil {
		return nil
	}
	return b.store.KVForEach(copyBookBucket, func(key string, v []byte) error {
		f := strings.Split(key, "\x00")
		if len(f) != 3 {
			return nil
		}
		p, err := strconv.ParseInt(f[2], 10, 32)
		var copies []string
		if err != nil || json.Unmarshal(v, &copies) != nil {
			return nil
		}
		b.m[forward.DutyKey{Origin: f[0], Topic: f[1], Partition: int32(p)}] = copies
		return nil
	})
}

// note records the in-sync sets and replica lists of origin's topic
// (broker ids, by partition).
func (b *copyBook) note(origin, topic string, isr, replicas [][]int32, names map[int32]string) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.mu.Lock()
	if b.m == nil {
		b.m = map[forward.DutyKey][]string{}
	}
	originID := member.BrokerID(origin)
	nodes := func(ids []int32) []string {
		var out []string
		for _, id := range ids {
			if n, ok := names[id]; ok && id != originID {
				out = append(out, n)
			}
		}
		return out
	}
	var writes []meta.KVWrite
	for p := range isr {
		copies := nodes(isr[p])
		if len(copies) == 0 && p < len(replicas) {
			copies = nodes(replicas[p])
		}
		k := forward.DutyKey{Origin: origin, Topic: topic, Partition: int32(p)}
		if old, ok := b.m[k]; ok && slices.Equal(old, copies) {
			continue
		}
		b.m[k] = copies
		if b.store != nil {
			v, _ := json.Marshal(copies)
			writes = append(writes, meta.KVWrite{Key: copyBookKey(k), Value: v})
		}
	}
	b.mu.Unlock()
	return b.applyLocked(writes)
}

// applyLocked writes to the bucket (wmu held): the whole book first if an
// earlier write failed.
func (b *copyBook) applyLocked(writes []meta.KVWrite) error {
	if b.store == nil {
		return nil
	}
	if b.stale {
		b.mu.Lock()
		want := make(map[string][]byte, len(b.m))
		for k, v := range b.m {
			want[copyBookKey(k)], _ = json.Marshal(v)
		}
		b.mu.Unlock()
		writes = writes[:0]
		if err := b.store.KVForEach(copyBookBucket, func(key string, _ []byte) error {
			if _, ok := want[key]; !ok {
				writes = append(writes, meta.KVWrite{Key: key})
			}
			return nil
		}); err != nil {
			return err // still stale
		}
		for k, v := range want {
			writes = append(writes, meta.KVWrite{Key: k, Value: v})
		}
	}
	if len(writes) == 0 {
		return nil
	}
	if err := b.store.KVApply(copyBookBucket, writes); err != nil {
		b.stale = true
		return err
	}
	b.stale = false
	return nil
}

// prune drops origin's topics that keep refuses from the book.
func (b *copyBook) prune(origin string, keep func(topic string) bool) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.mu.Lock()
	var writes []meta.KVWrite
	for k := range b.m {
		if k.Origin == origin && !keep(k.Topic) {
			delete(b.m, k)
			writes = append(writes, meta.KVWrite{Key: copyBookKey(k)})
		}
	}
	b.mu.Unlock()
	return b.applyLocked(writes)
}

func (b *copyBook) get(k forward.DutyKey) ([]string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[k]
	return v, ok
}

// copyInfo is what this node knows of its copy of an origin partition.
type copyInfo struct {
	assigned  bool      // the origin announced this node as a replica
	fetching  bool      // fetched from the origin lately
	originEnd int64     // the origin's end at the last fetch
	caughtUp  time.Time // the copy held everything the origin had when this fetch was sent
}

// copyState reports this node's copy of origin's partition; false when no
// fetcher of origin runs (origin not alive).
func (r *Replicator) copyState(origin, topic string, partition int32) (copyInfo, bool) {
	r.mu.Lock()
	f := r.fetchers[origin]
	r.mu.Unlock()
	if f == nil {
		return copyInfo{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.parts[tp{topic, partition}]
	if p == nil {
		return copyInfo{}, false
	}
	return copyInfo{assigned: p.assigned, fetching: !p.lastFetch.IsZero(), originEnd: p.originHWM, caughtUp: p.caughtUpAsked}, true
}
