package replicate

import (
	"encoding/binary"
	"hash/fnv"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/replicate/member"
)

// The origin side: which peers mirror each of this node's partitions
// (placement), how far each copy is durable (learned from the peers'
// fetch offsets), the in-sync set, and the acks=all waits.

type tp struct {
	topic     string
	partition int32
}

// follower is one mirror's progress on one partition of this node.
type follower struct {
	// end: everything before it is durable on the mirror (its fetch
	// offset: a mirror fetches N only once N-1 is on its stable storage).
	end       int64
	lastFetch time.Time
	// caughtUp is the last time the mirror had everything this node had
	// (Kafka's lastCaughtUpTime): its fetch reached the HWM of now, or
	// the HWM at its previous fetch.
	caughtUp          time.Time
	prevHWM           int64
	prevFetch         time.Time
	inSync            bool
	caughtUpAtLeastOn bool
}

// waiter is an acks=all produce waiting for copies.
type waiter struct {
	end  int64 // every in-sync copy must hold up to here
	base int64
	min  int32 // the topic's min.insync.replicas
	done func(int64, error)
}

type originPart struct {
	followers map[int32]*follower // by broker id
	waiters   []waiter
	acked     int64 // acknowledged end (durable on min.insync copies)
	// assigned: the node ids of the mirrors isr last returned.
	assigned      []string
	savedAssigned []string      // assigned as last stored (acked.go)
	saved         int64         // acked as last stored (acked.go)
	watch         log.WatchList // view.Watch waiters; values are acked
}

// origin tracks this node's partitions' copies.
type origin struct {
	r *Replicator

	// mu guards parts.
	mu    sync.Mutex
	parts map[tp]*originPart

	// saveMu (taken before mu) orders saveAcked's writes with forget's
	// deletes: a save that read a topic's state before it was deleted
	// must not write it back after.
	saveMu sync.Mutex
}

func newOrigin(r *Replicator) *origin {
	return &origin{r: r, parts: map[tp]*originPart{}}
}

func (o *origin) partLocked(k tp) *originPart {
	p := o.parts[k]
	if p == nil {
		p = &originPart{followers: map[int32]*follower{}, acked: -1, saved: -1}
		o.parts[k] = p
	}
	return p
}

// score ranks member for a partition of origin (rendezvous hashing: the
// highest scores hold the copies; a member's loss moves only its share).
func score(origin, topic string, partition int32, member string) uint64 {
	h := fnv.New64a()
	io.WriteString(h, origin)
	h.Write([]byte{0})
	io.WriteString(h, topic)
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(partition))
	h.Write(b[:])
	io.WriteString(h, member)
	return h.Sum64()
}

// placement returns the mirrors of one of this node's partitions: the
// rf-1 alive peers with the highest rendezvous scores.
func placement(self string, peers []member.Member, topic string, partition int32, rf int32) []member.Member {
	if rf <= 1 {
		return nil
	}
	type cand struct {
		m member.Member
		s uint64
	}
	var cs []cand
	for _, m := range peers {
		if m.Self || m.State != member.Alive || m.KafkaAddr == "" {
			continue
		}
		cs = append(cs, cand{m, score(self, topic, partition, m.NodeID)})
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].s > cs[j].s })
	n := min(int(rf-1), len(cs))
	out := make([]member.Member, n)
	for i := range out {
		out[i] = cs[i].m
	}
	return out
}

// fetched records a follower fetch (Cluster.FollowerFetched).
func (o *origin) fetched(replica int32, topic string, partition int32, offset int64) {
	_, hwm, err := o.r.inner.Offsets(topic, partition)
	if err != nil {
		return
	}
	now := time.Now()
	o.mu.Lock()
	p := o.partLocked(tp{topic, partition})
	f := p.followers[replica]
	if f == nil {
		f = &follower{end: -1}
		p.followers[replica] = f
	}
	if offset > f.end || offset < f.end {
		f.end = offset
	}
	f.lastFetch = now
	switch {
	case offset >= hwm:
		f.caughtUp = now
	case !f.prevFetch.IsZero() && offset >= f.prevHWM:
		f.caughtUp = f.prevFetch
	}
	f.prevHWM, f.prevFetch = hwm, now
	o.mu.Unlock()
	o.evaluate(topic, partition)
}

// isr returns the in-sync mirrors of a partition (broker ids) and the
// assigned ones, given the topic's replication factor.
//
// The assigned mirrors are the placement's, and while one of those is not
// in sync, also up to rf-1 mirrors of the last answer that are still
// alive: a peer that returns with a higher score takes its copy back only
// once it has caught up (Kafka's reassignment adds a replica before it
// removes one, and keeps the old one assigned while it lags). Dropping
// the copy that stood in for it at once would leave fewer in-sync copies
// than min.insync.replicas while the returning one catches up, or
// acknowledge acks=all writes that only this node holds.
func (o *origin) isr(topic string, partition int32, rf int32) (inSync []int32, mirrors []member.Member) {
	peers := o.r.peers()
	mirrors = placement(o.r.nodeID, peers, topic, partition, rf)
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.parts[tp{topic, partition}]
	if p == nil {
		return nil, mirrors
	}
	synced := func(m member.Member) bool {
		f := p.followers[m.BrokerID]
		return f != nil && !f.caughtUp.IsZero() && now.Sub(f.caughtUp) <= o.r.opts.LagTimeMax
	}
	if !all(mirrors, synced) {
		// At most rf-1 stand-ins, those in sync first: churn while a
		// placed copy cannot catch up does not pile them up.
		placed := len(mirrors)
		for _, wantSynced := range []bool{true, false} {
			for _, id := range p.assigned {
				if len(mirrors)-placed >= int(rf-1) {
					break
				}
				if slices.ContainsFunc(mirrors, func(m member.Member) bool { return m.NodeID == id }) {
					continue
				}
				i := slices.IndexFunc(peers, func(m member.Member) bool {
					return m.NodeID == id && !m.Self && m.State == member.Alive && m.KafkaAddr != ""
				})
				if i >= 0 && synced(peers[i]) == wantSynced {
					mirrors = append(mirrors, peers[i])
				}
			}
		}
	}
	for _, m := range mirrors {
		if synced(m) {
			inSync = append(inSync, m.BrokerID)
		}
	}
	// While the node starts (its restore waits for the site's boxes) the
	// members it knows may be few: the assignment it saved stays as it
	// is until then, so its stand-ins are not forgotten.
	if !o.r.restoring.Load() {
		p.assigned = p.assigned[:0]
		for _, m := range mirrors {
			p.assigned = append(p.assigned, m.NodeID)
		}
	}
	return inSync, mirrors
}

func all[T any](s []T, f func(T) bool) bool {
	for _, v := range s {
		if !f(v) {
			return false
		}
	}
	return true
}

// evaluate completes the acks=all waits of a partition that now hold, or
// fail, and moves its acknowledged end.
func (o *origin) evaluate(topic string, partition int32) {
	info, err := o.r.inner.Topic(topic)
	if err != nil || info.Config.Origin != "" {
		return
	}
	rf, minISR := info.Config.ReplicationFactor, info.Config.MinInsyncReplicas
	_, hwm, err := o.r.inner.Offsets(topic, partition)
	if err != nil {
		return
	}
	inSync, _ := o.isr(topic, partition, rf)
	var ready []func()
	o.mu.Lock()
	p := o.partLocked(tp{topic, partition})
	// The end every in-sync copy holds (this node's durable end first).
	low := hwm
	for _, id := range inSync {
		if f := p.followers[id]; f != nil && f.end < low {
			low = f.end
		}
	}
	copies := int32(1 + len(inSync))
	if copies >= minISR && low > p.acked {
		p.acked = low
		p.watch.Notify(low)
	}
	keep := p.waiters[:0]
	for _, w := range p.waiters {
		switch {
		case copies < w.min:
			// The in-sync set shrank under the floor after the append
			// (Kafka: NOT_ENOUGH_REPLICAS_AFTER_APPEND; the batch is
			// stored here, a retry may duplicate it).
			w := w
			ready = append(ready, func() { w.done(-1, log.ErrNotEnoughReplicas) })
		case low >= w.end:
			w := w
			ready = append(ready, func() { w.done(w.base, nil) })
		default:
			keep = append(keep, w)
		}
	}
	p.waiters = keep
	o.mu.Unlock()
	for _, f := range ready {
		f()
	}
}

// evaluateAll re-checks every partition with waiters or followers (a
// mirror fell out of sync by time, or membership changed).
func (o *origin) evaluateAll() {
	o.mu.Lock()
	keys := make([]tp, 0, len(o.parts))
	for k := range o.parts {
		keys = append(keys, k)
	}
	o.mu.Unlock()
	for _, k := range keys {
		o.evaluate(k.topic, k.partition)
	}
}

// appendAll is log.AllAppender: append here, then wait for the in-sync
// copies.
func (o *origin) appendAll(topic string, partition int32, batches []byte, done func(int64, error)) {
	info, err := o.r.inner.Topic(topic)
	if err != nil || info.Config.Origin != "" || info.Config.ReplicationFactor <= 1 && info.Config.MinInsyncReplicas <= 1 {
		// Unknown topic, a mirror (refused by the log) or no copies
		// asked for: a local append answers.
		o.r.inner.AppendAsync(topic, partition, batches, done)
		return
	}
	minISR := info.Config.MinInsyncReplicas
	inSync, _ := o.isr(topic, partition, info.Config.ReplicationFactor)
	if int32(1+len(inSync)) < minISR {
		o.r.stats.notEnough.Add(1)
		done(-1, log.ErrNotEnoughReplicas)
		return
	}
	records := recordsIn(batches)
	// The producer waits for the copies too: its commit here is never
	// held back to gather trickling appends (log.AwaitedAppender).
	appendAsync := o.r.inner.AppendAsync
	if aw, ok := o.r.inner.(log.AwaitedAppender); ok {
		appendAsync = aw.AppendAsyncAwaited
	}
	appendAsync(topic, partition, batches, func(base int64, err error) {
		if err != nil {
			done(base, err)
			return
		}
		o.mu.Lock()
		p := o.partLocked(tp{topic, partition})
		p.waiters = append(p.waiters, waiter{end: base + records, base: base, min: minISR, done: done})
		o.mu.Unlock()
		o.evaluate(topic, partition)
	})
}

// ackedEnd returns the acknowledged end of a partition whose topic needs
// more than one copy, and false when it has none yet.
func (o *origin) ackedEnd(topic string, partition int32) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	if p := o.parts[tp{topic, partition}]; p != nil {
		return p.acked
	}
	return -1
}

// watchAcked registers w until the acknowledged end of the partition
// passes after (view.Watch).
func (o *origin) watchAcked(w *log.Waiter, topic string, partition int32, after int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.partLocked(tp{topic, partition})
	p.watch.Add(w, after, p.acked)
}

// forget drops a deleted topic's state, failing its waiters.
func (o *origin) forget(topic string) {
	var ready []waiter
	var gone []tp
	o.saveMu.Lock()
	o.mu.Lock()
	for k, p := range o.parts {
		if k.topic == topic {
			ready = append(ready, p.waiters...)
			p.watch.Close()
			delete(o.parts, k)
			gone = append(gone, k)
		}
	}
	o.mu.Unlock()
	o.forgetAcked(gone)
	o.saveMu.Unlock()
	for _, w := range ready {
		w.done(-1, log.ErrUnknownTopic)
	}
}

// failAll answers every waiter (Close).
func (o *origin) failAll(err error) {
	var ready []waiter
	o.mu.Lock()
	for _, p := range o.parts {
		ready = append(ready, p.waiters...)
		p.waiters = nil
		p.watch.Close()
	}
	o.mu.Unlock()
	for _, w := range ready {
		w.done(-1, err)
	}
}

// recordsIn sums the records of concatenated batches (headers only).
func recordsIn(b []byte) int64 {
	var n int64
	for len(b) >= batch.HeaderSize {
		h, err := batch.ParseHeader(b)
		if err != nil || h.Size() > len(b) || h.Size() < batch.HeaderSize {
			break
		}
		n += int64(h.LastOffsetDelta) + 1
		b = b[h.Size():]
	}
	return n
}
