// Package replicate makes the runnel boxes of one site hold copies of each
// other's partitions, so losing one box loses nothing acknowledged with
// acks=all.
//
// Each partition has one origin, the node that ingests it and the only
// one that ever appends to it; no consensus is needed and a network split
// cannot fork a log. Peers found by gossip (replicate/member, serf) mirror
// it read-only: a mirror fetches the origin's batches over the Kafka wire
// protocol (follower Fetch requests) and stores them byte for byte at the
// origin's offsets in a local topic named "<origin node id>.<topic>",
// syncing before it fetches more. The origin learns how far each copy is
// durable from the mirror's next fetch offset; that drives the in-sync
// set and Kafka acks=-1 (log.AllAppender on the log.Log this package
// wraps around the node's log, see view).
//
// Placement: for each of its partitions with replication.factor rf, the
// origin picks the rf-1 alive peers with the highest rendezvous score of
// (origin, topic, partition, peer) and announces them in its Metadata
// replica lists; mirrors follow that announcement. A lost mirror is
// replaced by the next peer in score order, which copies from the
// origin's log start. Copies of a dead origin stay as they are.
//
// Leader epochs keep copies and origins from ever disagreeing on an
// offset: a copy checks its origin's epoch history before it fetches
// again and cuts back what the origin lost (epochs.go); a starting node
// takes back from its copies what it lost, or all of it after a wiped
// data dir, before it accepts a write (restore.go).
package replicate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/meta"
	"github.com/runnel/runnel/replicate/member"
	"github.com/runnel/runnel/sync/forward"
)

// Options configures a Replicator. Log and Member are required.
type Options struct {
	// Log is the node's log; the Replicator writes mirrors to it and
	// hands ingest a wrapped view of it (Replicator.Log).
	Log log.Log
	// Member configures gossip; NodeID, Incarnation and DataDirID are
	// filled in by Start from Log's meta when empty.
	Member member.Options
	// LagTimeMax: a copy not caught up for this long leaves the in-sync
	// set (Kafka's replica.lag.time.max.ms; default 10s).
	LagTimeMax time.Duration
	// FetchMaxWait is the follower fetch long poll (default 500ms).
	FetchMaxWait time.Duration
	// FetchTimeout bounds a peer request beyond FetchMaxWait (default 5s);
	// a copy with no answer for twice that is reported stalled.
	FetchTimeout time.Duration
	// MetadataInterval is how often a mirror rereads its origin's topics
	// (default 2s).
	MetadataInterval time.Duration
	// ConfigInterval is how often a mirror rereads its origin's retention
	// (default 1m).
	ConfigInterval time.Duration
	// RestoreTimeout bounds how long the start waits for the site's other
	// boxes before it takes back from their copies what they hold of this
	// node's partitions (see restore.go; default 15s).
	RestoreTimeout time.Duration
	// ClientOpts are added to the Kafka client that fetches from peers
	// (TLS, SASL of the peers' Kafka listeners).
	ClientOpts []kgo.Opt
	// Logger; nil = slog.Default().
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultLagTimeMax       = 10 * time.Second
	DefaultFetchMaxWait     = 500 * time.Millisecond
	DefaultFetchTimeout     = 5 * time.Second
	DefaultMetadataInterval = 2 * time.Second
	DefaultConfigInterval   = time.Minute
)

// Replicator runs membership, the mirrors this node holds and the
// tracking of its own partitions' copies.
type Replicator struct {
	opts     Options
	inner    log.Log
	view     *view
	origin   *origin
	registry *registry
	mem      *member.Membership
	logger   *slog.Logger
	nodeID   string
	brokerID int32
	stats    stats

	members atomic.Pointer[[]member.Member]
	copies  copyBook // copies the origins last announced
	held    holdings // the copy partitions this node holds
	// restoring: the start's taking back from the copies is not done;
	// the view refuses appends to this node's partitions.
	restoring atomic.Bool
	cancel    context.CancelFunc // stops the taking back
	// restoredEnds: each own partition's end when the restore finished,
	// before appends resumed, until its first duty (capOwnFrom); guarded
	// by endsMu.
	endsMu       sync.Mutex
	restoredEnds map[tp]int64

	// mu guards fetchers.
	mu       sync.Mutex
	fetchers map[string]*fetcher // by origin node id

	done chan struct{}
	wg   sync.WaitGroup
}

type stats struct {
	notEnough        atomic.Uint64
	mirroredBytes    atomic.Uint64
	divergences      atomic.Uint64
	truncations      atomic.Uint64
	truncatedRecords atomic.Uint64
	keptRecords      atomic.Uint64
	restoredRecords  atomic.Uint64
}

// ErrInvalidOptions is wrapped by Start for bad options.
var ErrInvalidOptions = errors.New("replicate: invalid options")

// Start joins the site and starts mirroring.
func Start(ctx context.Context, opts Options) (*Replicator, error) {
	if opts.Log == nil {
		return nil, fmt.Errorf("%w: Log is required", ErrInvalidOptions)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.LagTimeMax <= 0 {
		opts.LagTimeMax = DefaultLagTimeMax
	}
	if opts.FetchMaxWait <= 0 {
		opts.FetchMaxWait = DefaultFetchMaxWait
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = DefaultFetchTimeout
	}
	if opts.MetadataInterval <= 0 {
		opts.MetadataInterval = DefaultMetadataInterval
	}
	if opts.ConfigInterval <= 0 {
		opts.ConfigInterval = DefaultConfigInterval
	}
	if opts.RestoreTimeout <= 0 {
		opts.RestoreTimeout = DefaultRestoreTimeout
	}
	store := opts.Log.Meta()
	if opts.Member.NodeID == "" {
		id, err := store.NodeID("")
		if err != nil {
			return nil, err
		}
		opts.Member.NodeID = id
	}
	if err := member.ValidNodeID(opts.Member.NodeID); err != nil {
		return nil, fmt.Errorf("%w: %v (site replication uses it in topic names; set --node-id)", ErrInvalidOptions, err)
	}
	inc, dd, err := startState(store)
	if err != nil {
		return nil, fmt.Errorf("replicate: state: %v", err)
	}
	if opts.Member.Incarnation == 0 {
		opts.Member.Incarnation = inc
	}
	if opts.Member.DataDirID == "" {
		opts.Member.DataDirID = dd
	}
	if opts.Member.Logger == nil {
		opts.Member.Logger = opts.Logger
	}
	r := &Replicator{
		opts:     opts,
		inner:    opts.Log,
		logger:   opts.Logger,
		nodeID:   opts.Member.NodeID,
		brokerID: member.BrokerID(opts.Member.NodeID),
		registry: &registry{store: store},
		copies:   copyBook{store: store},
		fetchers: map[string]*fetcher{},
		done:     make(chan struct{}),
	}
	if err := r.copies.load(); err != nil {
		return nil, fmt.Errorf("replicate: copies: %v", err)
	}
	r.origin = newOrigin(r)
	r.view = newView(r)
	r.origin.loadAcked()
	r.origin.loadAssigned()
	r.restoring.Store(true)
	empty := []member.Member{}
	r.members.Store(&empty)
	mem, err := member.Start(ctx, opts.Member)
	if err != nil {
		return nil, err
	}
	r.mem = mem
	r.refreshMembers()
	rctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(2)
	go r.loop()
	go func() {
		defer r.wg.Done()
		r.restore(rctx)
		r.noteRestoredEnds()
		r.restoring.Store(false)
	}()
	return r, nil
}

// Log is the view of the node's log that ingest, consumers, the
// forwarder and HTTP use (see view).
func (r *Replicator) Log() log.Log {
	// The log's optional capabilities stay visible through the view (the
	// Kafka listener serves OffsetForLeaderEpoch only over a log with
	// epochs, answering for this node's partitions only once the start's
	// restore is done; MQTT ingest feeds the log's next commit when it
	// can).
	le, epochs := r.inner.(log.LeaderEpochs)
	cf, feeds := r.inner.(log.CommitFeeder)
	ge := epochGate{v: r.view, le: le}
	switch {
	case epochs && feeds:
		return struct {
			*view
			log.LeaderEpochs
			log.CommitFeeder
		}{r.view, ge, cf}
	case epochs:
		return struct {
			*view
			log.LeaderEpochs
		}{r.view, ge}
	case feeds:
		return struct {
			*view
			log.CommitFeeder
		}{r.view, cf}
	}
	return r.view
}

// NodeID is this node's id; BrokerID its Kafka broker id.
func (r *Replicator) NodeID() string  { return r.nodeID }
func (r *Replicator) BrokerID() int32 { return r.brokerID }

// Close stops mirroring, answers every acks=all wait with
// ErrNotEnoughReplicas and leaves the site. Idempotent.
func (r *Replicator) Close() error {
	select {
	case <-r.done:
		return nil
	default:
	}
	close(r.done)
	r.cancel()
	r.wg.Wait()
	r.origin.saveAcked()
	r.mu.Lock()
	fs := r.fetchers
	r.fetchers = map[string]*fetcher{}
	r.mu.Unlock()
	for _, f := range fs {
		f.stop()
	}
	r.origin.failAll(log.ErrNotEnoughReplicas)
	return r.mem.Close()
}

func (r *Replicator) refreshMembers() {
	ms := r.mem.Members()
	r.members.Store(&ms)
}

func (r *Replicator) peers() []member.Member { return *r.members.Load() }

// knownNode reports whether id is this node, a member or a mirrored origin.
func (r *Replicator) knownNode(id string) bool {
	if id == r.nodeID {
		return true
	}
	for _, m := range r.peers() {
		if m.NodeID == id {
			return true
		}
	}
	return r.registry.hasOrigin(id)
}

// loop follows membership: a fetcher per alive peer, ISR re-evaluation.
// The change channel is taken before the members are read, so a change
// that lands between the read and the wait still wakes the loop; the
// fetchers are also reconciled on every tick, so no missed wake-up can
// leave a peer without its fetcher.
func (r *Replicator) loop() {
	defer r.wg.Done()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	ticks := 0
	for {
		changed := r.mem.Changed()
		r.refreshMembers()
		r.reconcile()
		r.origin.evaluateAll()
		select {
		case <-r.done:
			return
		case <-changed:
		case <-tick.C:
			if ticks++; ticks%5 == 0 {
				r.origin.saveAcked()
			}
		}
	}
}

// reconcile starts a fetcher for every alive peer with a Kafka address
// and stops those of peers gone or moved.
func (r *Replicator) reconcile() {
	want := map[string]member.Member{}
	for _, m := range r.peers() {
		if !m.Self && m.State == member.Alive && m.KafkaAddr != "" {
			want[m.NodeID] = m
		}
	}
	var stop []*fetcher
	r.mu.Lock()
	for id, f := range r.fetchers {
		m, ok := want[id]
		if !ok || m.KafkaAddr != f.peer.KafkaAddr || m.Boot != f.peer.Boot || m.DataDir != f.peer.DataDir {
			stop = append(stop, f)
			delete(r.fetchers, id)
		}
	}
	r.mu.Unlock()
	// A peer's old fetcher ends before its new one starts: two would
	// check, cut and keep the same copies at once.
	for _, f := range stop {
		f.stop()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, m := range want {
		if r.fetchers[id] != nil {
			continue
		}
		f, err := r.startFetcher(m)
		if err != nil {
			r.logger.Warn("mirror: cannot start fetching from peer", "peer", id, "err", err)
			continue
		}
		r.fetchers[id] = f
	}
}

// startState raises the incarnation and returns it with the data dir id
// (made once).
func startState(store *meta.Store) (uint64, string, error) {
	var inc uint64
	var dd string
	err := store.KVForEach(stateBucket, func(k string, v []byte) error {
		switch k {
		case "incarnation":
			inc, _ = strconv.ParseUint(string(v), 10, 64)
		case "data-dir-id":
			dd = string(v)
		}
		return nil
	})
	if err != nil {
		return 0, "", err
	}
	inc++
	if dd == "" {
		var b [8]byte
		rand.Read(b[:])
		dd = hex.EncodeToString(b[:])
	}
	err = store.KVApply(stateBucket, []meta.KVWrite{
		{Key: "incarnation", Value: []byte(strconv.FormatUint(inc, 10))},
		{Key: "data-dir-id", Value: []byte(dd)},
	})
	return inc, dd, err
}

const (
	stateBucket    = "replicate"
	registryBucket = "replicate-mirrors"
)

// registry remembers the local copies: local topic → origin, the origin's
// topic and the origin's data dir id when the copy was made.
type registry struct {
	store *meta.Store
	// mu serializes writes.
	mu sync.Mutex
}

type registryEntry struct {
	Origin  string `json:"origin"`
	Topic   string `json:"topic"`
	DataDir string `json:"data_dir,omitempty"`
}

func (g *registry) all() map[string]registryEntry {
	out := map[string]registryEntry{}
	g.store.KVForEach(registryBucket, func(k string, v []byte) error {
		var e registryEntry
		if json.Unmarshal(v, &e) == nil {
			out[k] = e
		}
		return nil
	})
	return out
}

func (g *registry) of(origin string) map[string]registryEntry {
	out := map[string]registryEntry{}
	for k, e := range g.all() {
		if e.Origin == origin {
			out[k] = e
		}
	}
	return out
}

func (g *registry) hasOrigin(origin string) bool { return len(g.of(origin)) > 0 }

func (g *registry) put(local string, e registryEntry) {
	g.mu.Lock()
	defer g.mu.Unlock()
	v, _ := json.Marshal(e)
	g.store.KVApply(registryBucket, []meta.KVWrite{{Key: local, Value: v}})
}

func (g *registry) remove(local string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.store.KVApply(registryBucket, []meta.KVWrite{{Key: local}})
}

// Replicas implements the Kafka server's Cluster: the origin first, then
// the mirrors; the in-sync set; replicas not alive.
func (r *Replicator) Replicas(topic string, partition int32) (replicas, isr, offline []int32, ok bool) {
	info, err := r.inner.Topic(topic)
	if err != nil {
		return nil, nil, nil, false
	}
	if info.Config.Origin == "" {
		inSync, mirrors := r.origin.isr(topic, partition, info.Config.ReplicationFactor)
		replicas = []int32{r.brokerID}
		for _, m := range mirrors {
			replicas = append(replicas, m.BrokerID)
		}
		return replicas, append([]int32{r.brokerID}, inSync...), []int32{}, true
	}
	alive := map[int32]bool{}
	for _, m := range r.peers() {
		if m.State == member.Alive {
			alive[m.BrokerID] = true
		}
	}
	r.mu.Lock()
	f := r.fetchers[info.Config.Origin]
	r.mu.Unlock()
	var origTopic string
	if e, ok := r.registry.all()[topic]; ok {
		origTopic = e.Topic
	}
	if f != nil {
		stallAfter := 2 * (r.opts.FetchMaxWait + r.opts.FetchTimeout)
		f.mu.Lock()
		if ot := f.topics[origTopic]; ot != nil && int(partition) < len(ot.replicas) {
			replicas = append([]int32(nil), ot.replicas[partition]...)
			isr = append([]int32(nil), ot.isr[partition]...)
			// The origin's in-sync set as last read; this node's own copy
			// is not in sync while it cannot fetch, whatever it said.
			if p := f.parts[tp{origTopic, partition}]; p != nil && time.Since(p.lastFetch) > stallAfter {
				isr = slices.DeleteFunc(isr, func(id int32) bool { return id == r.brokerID })
			}
		}
		f.mu.Unlock()
	}
	if replicas == nil {
		replicas, isr = r.lastAnnounced(info.Config.Origin, origTopic, topic, partition, alive)
	}
	offline = []int32{}
	for _, id := range replicas {
		if !alive[id] {
			offline = append(offline, id)
		}
	}
	return replicas, isr, offline, true
}

// lastAnnounced is the replica and in-sync sets of a copy partition
// while its origin is away (or not read yet): the replicas are the origin,
// the copies it last announced (see copyBook) and this node when it holds
// one; in sync are the announced copies alive (they held everything
// acknowledged when the origin was last heard from; failover trusts the
// same list).
func (r *Replicator) lastAnnounced(origin, origTopic, local string, partition int32, alive map[int32]bool) (replicas, isr []int32) {
	originID := member.BrokerID(origin)
	replicas = []int32{originID}
	isr = []int32{}
	if alive[originID] {
		isr = append(isr, originID)
	}
	if names, ok := r.copies.get(forward.DutyKey{Origin: origin, Topic: origTopic, Partition: partition}); ok {
		for _, n := range names {
			id := member.BrokerID(n)
			if id == originID || slices.Contains(replicas, id) {
				continue
			}
			replicas = append(replicas, id)
			if alive[id] {
				isr = append(isr, id)
			}
		}
	}
	if r.held.holds(local, partition) && !slices.Contains(replicas, r.brokerID) {
		replicas = append(replicas, r.brokerID)
	}
	return replicas, isr
}

// Leader implements the Kafka server's Cluster: this node serves every
// partition it holds (its own, and the copies their origins placed
// here); a partition of a copy it does not hold is served by the first
// alive box of its in-sync set (see Replicas) other than the origin,
// which holds the data under the topic's own name, not the copy's; -1
// when there is none.
func (r *Replicator) Leader(topic string, partition int32) (here bool, id int32, addr string) {
	info, err := r.inner.Topic(topic)
	if err != nil || info.Config.Origin == "" || r.held.holds(topic, partition) {
		return true, r.brokerID, ""
	}
	_, isr, _, _ := r.Replicas(topic, partition)
	originID := member.BrokerID(info.Config.Origin)
	brokers := r.Brokers()
	for _, id := range isr {
		if id == r.brokerID || id == originID {
			continue
		}
		if addr := brokers[id]; addr != "" {
			return false, id, addr
		}
	}
	return false, -1, ""
}

// Brokers implements Cluster: alive members' Kafka addresses.
func (r *Replicator) Brokers() map[int32]string {
	out := map[int32]string{}
	for _, m := range r.peers() {
		if m.State == member.Alive && m.KafkaAddr != "" {
			out[m.BrokerID] = m.KafkaAddr
		}
	}
	return out
}

// FollowerFetched implements Cluster.
func (r *Replicator) FollowerFetched(replica int32, topic string, partition int32, offset int64) {
	r.origin.fetched(replica, topic, partition, offset)
}

// FollowerLog implements Cluster: followers read this node's durable end.
func (r *Replicator) FollowerLog() log.Log { return r.inner }

// noteRestoredEnds records each own partition's end as the restore left
// it (appends still refused).
func (r *Replicator) noteRestoredEnds() {
	ends := map[tp]int64{}
	for _, ti := range r.inner.Topics() {
		if ti.Config.Origin != "" {
			continue
		}
		for _, pi := range ti.Partitions {
			ends[tp{ti.Name, pi.Partition}] = pi.HWM
		}
	}
	r.endsMu.Lock()
	r.restoredEnds = ends
	r.endsMu.Unlock()
}

// capOwnFrom caps the replicated cursors of an own partition's first
// duty after the start at the partition's end when the restore finished.
// A cursor log (restored from the peers) may say a route forwarded up to
// N while the partition came back shorter: its unsynced tail lost to a
// power cut (fsync interval or never) or a wiped data dir, and not held by
// any copy. The records appended from that end on are new (runnel-epoch
// says so upstream); starting at N would skip those below it. Later duties
// of the partition use the cursors as they are.
func (r *Replicator) capOwnFrom(topic string, partition int32, from map[string]int64) map[string]int64 {
	r.endsMu.Lock()
	end, ok := r.restoredEnds[tp{topic, partition}]
	delete(r.restoredEnds, tp{topic, partition})
	r.endsMu.Unlock()
	if !ok {
		return from
	}
	for route, off := range from {
		if off > end {
			r.logger.Warn("failover: a route's replicated cursor is past where this partition came back; forwarding from its end",
				"route", route, "topic", topic, "partition", partition, "cursor", off, "end", end)
			from[route] = end
		}
	}
	return from
}
