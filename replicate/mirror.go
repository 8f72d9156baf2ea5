package replicate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/replicate/member"
)

// The mirror side: one fetcher per alive peer. It reads the peer's
// Metadata to learn which of its partitions this node holds (the origin
// places its copies; the replica list it announces is the truth), keeps a
// local topic "<origin>.<topic>" per mirrored topic, and fetches with
// follower Fetch requests (ReplicaID = this node's broker id) from each
// partition's local end. The batches are stored byte for byte at the
// origin's offsets (log.AppendAt, fsync always); the next fetch offset
// tells the origin they are durable here. That round trip is what an
// acks=all produce waits for, so nothing else runs between a fetch's
// answer and the next fetch: the origin's Metadata is read by a goroutine
// of its own (metaLoop), never in the fetch loop.

// Kafka error codes the fetcher acts on. Never change: they are Kafka's.
const (
	kOffsetOutOfRange   int16 = 1
	kUnknownTopicOrPart int16 = 3
)

// MirrorName is the local name of origin's topic on its mirrors
// (MirrorMaker 2's remote-topic convention "<source>.<topic>").
func MirrorName(origin, topic string) string { return origin + "." + topic }

// mirrorPart is this node's copy of one origin partition.
type mirrorPart struct {
	assigned    bool
	originStart int64
	originHWM   int64
	localEnd    int64
	fetchFrom   int64 // >= 0: next fetch starts here (an empty copy joins at the origin's log start)
	lastFetch   time.Time
	caughtUp    time.Time // last time the copy held all the origin had
	// caughtUpAsked is when the fetch that found the copy caught up was
	// sent: the copy holds everything the origin had then. (A response
	// read late, after this node was paused, is not news.)
	caughtUpAsked time.Time
	diverged      string
	// verified: the copy's latest epoch was checked against the
	// origin's history since the last event that may have changed it
	// (see epochs.go); only verified copies fetch.
	verified bool
	// aheadChecks counts epoch checks in a row that an end past the
	// origin's did not resolve.
	aheadChecks int
}

// originTopic is what the origin announces about one of its topics.
type originTopic struct {
	partitions int32
	replicas   [][]int32
	isr        [][]int32
	configAt   time.Time
	conflict   bool // a local topic of the mirror's name exists
}

type fetcher struct {
	r      *Replicator
	peer   member.Member
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
	// metaWake asks metaLoop for a refresh now; refreshed tells the
	// fetch loop one ended (both one-slot).
	metaWake  chan struct{}
	refreshed chan struct{}

	// mu guards the fields below.
	mu      sync.Mutex
	parts   map[tp]*mirrorPart // by origin topic name
	topics  map[string]*originTopic
	lastErr string
	// noEpochs: the origin serves no leader epochs.
	noEpochs bool
}

func (r *Replicator) startFetcher(peer member.Member) (*fetcher, error) {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(peer.KafkaAddr),
		kgo.ClientID("runnel-mirror-" + r.nodeID),
		kgo.RequestRetries(0),
		kgo.DialTimeout(3 * time.Second),
	}, r.opts.ClientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &fetcher{r: r, peer: peer, cl: cl, cancel: cancel, done: make(chan struct{}),
		metaWake: make(chan struct{}, 1), refreshed: make(chan struct{}, 1),
		parts: map[tp]*mirrorPart{}, topics: map[string]*originTopic{}}
	go f.run(ctx)
	return f, nil
}

func (f *fetcher) stop() {
	f.cancel()
	<-f.done
	f.cl.Close()
}

func (f *fetcher) setErr(err error) {
	f.mu.Lock()
	changed := f.lastErr != err.Error()
	f.lastErr = err.Error()
	f.mu.Unlock()
	if changed {
		f.r.logger.Warn("mirror: fetch from peer failed; retrying", "peer", f.peer.NodeID, "kafka", f.peer.KafkaAddr, "err", err)
	}
}

func (f *fetcher) run(ctx context.Context) {
	defer close(f.done)
	var meta sync.WaitGroup
	meta.Go(func() { f.metaLoop(ctx) })
	defer meta.Wait()
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		if backoff > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
		if err := f.verify(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			f.setErr(err)
			backoff = min(max(2*backoff, 200*time.Millisecond), 5*time.Second)
			continue
		}
		req := f.request()
		if req == nil {
			// Nothing to fetch (yet): wait for metaLoop's next reading
			// of the origin's Metadata (never ask for one: a peer with
			// nothing to copy would be asked without pause).
			backoff = 0
			select {
			case <-f.refreshed: // a stale signal
			default:
			}
			select {
			case <-ctx.Done():
				return
			case <-f.refreshed:
			case <-time.After(f.r.opts.MetadataInterval):
			}
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, f.r.opts.FetchMaxWait+f.r.opts.FetchTimeout)
		sent := time.Now()
		resp, err := f.cl.SeedBrokers()[0].Request(fctx, req)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			f.setErr(err)
			// The origin may have restarted behind the failure: its
			// epochs are checked again before the next fetch.
			f.unverifyAll()
			backoff = min(max(2*backoff, 200*time.Millisecond), 5*time.Second)
			continue
		}
		f.mu.Lock()
		f.lastErr = ""
		f.mu.Unlock()
		backoff = 0
		if f.apply(ctx, req, resp.(*kmsg.FetchResponse), sent) {
			f.refreshSoon()
		}
	}
}

// refreshSoon asks metaLoop to read the origin's Metadata now.
func (f *fetcher) refreshSoon() {
	select {
	case f.metaWake <- struct{}{}:
	default:
	}
}

// metaLoop reads the origin's Metadata every MetadataInterval, and when
// the fetch loop asks (refreshSoon), retrying failures with a backoff.
func (f *fetcher) metaLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.metaWake:
		}
		next := f.r.opts.MetadataInterval
		if err := f.refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			f.setErr(err)
			backoff = min(max(2*backoff, 200*time.Millisecond), 5*time.Second)
			next = backoff
		} else {
			backoff = 0
			select {
			case f.refreshed <- struct{}{}:
			default:
			}
		}
		if backoff > 0 {
			// A wake does not cut a failure's backoff short.
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			next = 0
		}
		t.Reset(next)
	}
}

// request builds the next follower fetch, or nil when nothing is held.
func (f *fetcher) request() *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = f.r.brokerID
	req.ReplicaState.ID = f.r.brokerID
	req.MaxWaitMillis = int32(f.r.opts.FetchMaxWait / time.Millisecond)
	req.MinBytes = 1
	req.MaxBytes = 8 << 20
	req.SessionEpoch = -1
	f.mu.Lock()
	defer f.mu.Unlock()
	byTopic := map[string]int{}
	for k, p := range f.parts {
		if !p.assigned || !p.verified || p.diverged != "" || f.topics[k.topic] == nil || f.topics[k.topic].conflict {
			continue
		}
		_, end, err := f.r.inner.Offsets(MirrorName(f.peer.NodeID, k.topic), k.partition)
		if err != nil {
			continue
		}
		p.localEnd = end
		from := end
		if p.fetchFrom > end {
			from = p.fetchFrom
		}
		i, ok := byTopic[k.topic]
		if !ok {
			i = len(req.Topics)
			byTopic[k.topic] = i
			t := kmsg.NewFetchRequestTopic()
			t.Topic = k.topic
			req.Topics = append(req.Topics, t)
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = k.partition
		rp.FetchOffset = from
		rp.LogStartOffset = -1
		rp.PartitionMaxBytes = 1 << 20
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	if len(req.Topics) == 0 {
		return nil
	}
	return req
}

// apply stores what a fetch returned. It reports whether the metadata
// should be read again (an unknown partition).
func (f *fetcher) apply(ctx context.Context, req *kmsg.FetchRequest, resp *kmsg.FetchResponse, sent time.Time) (refresh bool) {
	if resp.ErrorCode != 0 {
		f.setErr(fmt.Errorf("fetch: error code %d", resp.ErrorCode))
		return true
	}
	asked := map[tp]int64{}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			asked[tp{t.Topic, p.Partition}] = p.FetchOffset
		}
	}
	var wg sync.WaitGroup
	remade := map[string]bool{}
	for ti := range resp.Topics {
		t := &resp.Topics[ti]
		for pi := range t.Partitions {
			rp := &t.Partitions[pi]
			k := tp{t.Topic, rp.Partition}
			from, ok := asked[k]
			if !ok || remade[k.topic] {
				continue // a topic whose copy is being made again takes nothing more from this response
			}
			switch rp.ErrorCode {
			case 0:
			case kUnknownTopicOrPart:
				refresh = true
				continue
			case kOffsetOutOfRange:
				remade[k.topic] = f.outOfRange(ctx, k, from, rp.LogStartOffset, rp.HighWatermark)
				continue
			default:
				f.setErr(fmt.Errorf("fetch %s/%d: error code %d", k.topic, k.partition, rp.ErrorCode))
				continue
			}
			data, err := wholeBatchesFrom(rp.RecordBatches, from)
			if err != nil {
				if f.emptyAt(k, from) {
					// An emptied copy whose start lies inside one of the
					// origin's batches (its new history's batches do not
					// line up with the old ones): a partition starts
					// again only at or past its log start, so the topic's
					// copy is made again.
					f.remakeCopy(ctx, k, err.Error())
					remade[k.topic] = true
					continue
				}
				f.diverge(k, err.Error())
				continue
			}
			wg.Add(1)
			f.store(ctx, k, from, data, rp.LogStartOffset, rp.HighWatermark, sent, wg.Done)
		}
	}
	wg.Wait()
	return refresh
}

// store appends data (batches from offset from) to the local copy and
// calls done once it is durable (or refused). The partitions of one
// fetch are all written before any waits (log.AtAppender), so they share
// one commit: one sync per fetch.
func (f *fetcher) store(ctx context.Context, k tp, from int64, data []byte, originStart, originHWM int64, sent time.Time, done func()) {
	local := MirrorName(f.peer.NodeID, k.topic)
	if len(data) == 0 {
		f.stored(ctx, k, from, data, originStart, originHWM, sent, nil)
		done()
		return
	}
	if at, ok := f.r.inner.(log.AtAppender); ok {
		at.AppendAtAsync(local, k.partition, data, func(err error) {
			// On the log's committer: the bookkeeping runs beside it.
			go func() {
				defer done()
				f.stored(ctx, k, from, data, originStart, originHWM, sent, err)
			}()
		})
		return
	}
	go func() {
		defer done()
		f.stored(ctx, k, from, data, originStart, originHWM, sent, f.r.inner.AppendAt(ctx, local, k.partition, data))
	}()
}

// stored records the outcome of storing data (batches from offset from;
// err from the append) in the copy's state.
func (f *fetcher) stored(ctx context.Context, k tp, from int64, data []byte, originStart, originHWM int64, sent time.Time, err error) {
	local := MirrorName(f.peer.NodeID, k.topic)
	end := from
	if len(data) > 0 {
		if err != nil {
			if ctx.Err() == nil {
				f.r.logger.Warn("mirror: cannot store fetched batches", "peer", f.peer.NodeID, "topic", local, "partition", k.partition, "offset", from, "err", err)
				f.mu.Lock()
				if p := f.parts[k]; p != nil {
					switch {
					case errors.Is(err, log.ErrNotNextOffset):
						p.fetchFrom = -1
					case errors.Is(err, log.ErrStaleEpoch):
						// The origin's epochs went back under the copy:
						// its history is checked before more is taken.
						p.verified = false
					}
				}
				f.mu.Unlock()
			}
			return
		}
		end = from + recordsSpan(data)
		f.r.stats.mirroredBytes.Add(uint64(len(data)))
	}
	now := time.Now()
	f.mu.Lock()
	if p := f.parts[k]; p != nil {
		p.originStart, p.originHWM, p.localEnd = originStart, originHWM, end
		p.lastFetch = now
		if end >= originHWM {
			p.caughtUp, p.caughtUpAsked = now, sent
		}
		if p.fetchFrom >= 0 && end > p.fetchFrom {
			p.fetchFrom = -1
		}
	}
	f.mu.Unlock()
}

// outOfRange handles OFFSET_OUT_OF_RANGE for a fetch from offset from.
func (f *fetcher) outOfRange(ctx context.Context, k tp, from, originStart, originHWM int64) (remade bool) {
	local := MirrorName(f.peer.NodeID, k.topic)
	start, end, err := f.r.inner.Offsets(local, k.partition)
	if err != nil {
		return false
	}
	switch {
	case start == end && end > originHWM && originHWM >= 0:
		// An empty copy past the origin's end: it was emptied when it
		// diverged, and the origin's new history ends below its old log
		// start. A partition starts again only at or past its log start,
		// so the topic's whole copy is made again, once what its other
		// partitions hold that is not known to be the origin's is kept.
		f.remakeCopy(ctx, k, fmt.Sprintf("the origin's history ends at %d, below this empty copy's start %d", originHWM, end))
		return true
	case end > originHWM && originHWM >= 0:
		// The origin lost a tail it had not synced: its epoch history
		// says how much of the copy to keep. An end past the origin's
		// that the check leaves standing is a divergence.
		f.mu.Lock()
		p := f.parts[k]
		again := p != nil && p.aheadChecks < 2
		if again {
			p.aheadChecks++
			p.verified = false
		}
		f.mu.Unlock()
		if !again {
			f.diverge(k, fmt.Sprintf("this copy ends at offset %d, past the origin's end %d, and the origin's epoch history does not explain it", end, originHWM))
		}
	case start == end && originStart > end:
		// An empty copy joins at the origin's log start.
		f.mu.Lock()
		if p := f.parts[k]; p != nil && p.fetchFrom != originStart {
			p.fetchFrom = originStart
			f.r.logger.Info("mirror: copy starts at the origin's log start", "peer", f.peer.NodeID, "topic", local, "partition", k.partition, "offset", originStart)
		}
		f.mu.Unlock()
	case originStart > end:
		// The origin's retention passed this copy's end while it was
		// away: the copy is emptied and joins again at the log start.
		f.r.logger.Warn("mirror: the origin's log start passed this copy's end; copying the partition again", "peer", f.peer.NodeID, "topic", local, "partition", k.partition, "copy_end", end, "origin_start", originStart)
		return f.emptyCopy(ctx, k, start, "origin retention passed the copy")
	}
	return false
}

// emptyAt reports whether k's copy holds nothing and starts at offset.
func (f *fetcher) emptyAt(k tp, offset int64) bool {
	start, end, err := f.r.inner.Offsets(MirrorName(f.peer.NodeID, k.topic), k.partition)
	return err == nil && start == end && end == offset
}

// remakeCopy deletes the copy of k's topic to make it again from the
// origin, after keeping (keepCut) the records of each partition that is
// not verified against the origin. Where keeping fails, k's partition
// stops as diverged and nothing is deleted.
func (f *fetcher) remakeCopy(ctx context.Context, k tp, why string) {
	local := MirrorName(f.peer.NodeID, k.topic)
	info, err := f.r.inner.Topic(local)
	if err != nil {
		return
	}
	for _, pi := range info.Partitions {
		if pi.HWM <= pi.Start {
			continue
		}
		pk := tp{k.topic, pi.Partition}
		f.mu.Lock()
		p := f.parts[pk]
		agrees := p != nil && p.assigned && p.verified && p.diverged == ""
		f.mu.Unlock()
		if agrees {
			continue
		}
		if _, err := f.keepCut(ctx, pk, pi.Start, pi.HWM); err != nil {
			if ctx.Err() != nil {
				return // stopping: the next fetcher goes on from what was kept
			}
			f.diverge(k, fmt.Sprintf("%s, and keeping partition %d's records before copying the topic again failed: %v", why, pi.Partition, err))
			return
		}
	}
	f.r.logger.Warn("mirror: copying the topic again", "peer", f.peer.NodeID, "topic", local, "partition", k.partition, "reason", why)
	if !f.dropTopic(k.topic, why) {
		return // the copy is still there: its kept ranges' records say how far they are kept
	}
	for _, pi := range info.Partitions {
		f.forgetKept(tp{k.topic, pi.Partition})
	}
}

// emptyCopy cuts one partition's copy back to its log start: nothing it
// holds is the origin's any more, and the next fetch makes it again (an
// empty copy joins at the origin's log start). Only that partition goes:
// the topic's other copies may be all the site holds of their records.
// Where the log cannot cut, the topic's whole copy is made again
// (remakeCopy).
func (f *fetcher) emptyCopy(ctx context.Context, k tp, start int64, why string) (remade bool) {
	local := MirrorName(f.peer.NodeID, k.topic)
	tr, ok := f.r.inner.(log.Truncater)
	if !ok {
		f.remakeCopy(ctx, k, why)
		return true
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := tr.Truncate(tctx, local, k.partition, start, nil)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		f.r.logger.Warn("mirror: cannot empty a copy; copying the topic again", "peer", f.peer.NodeID, "topic", local, "partition", k.partition, "err", err)
		f.remakeCopy(ctx, k, why)
		return true
	}
	f.forgetKept(k)
	f.mu.Lock()
	if p := f.parts[k]; p != nil {
		p.localEnd = start
		p.fetchFrom = -1
		p.verified = false
		p.aheadChecks = 0
	}
	f.mu.Unlock()
	f.r.logger.Info("mirror: copy emptied", "peer", f.peer.NodeID, "topic", local, "partition", k.partition, "reason", why)
	return false
}

func (f *fetcher) diverge(k tp, why string) {
	f.mu.Lock()
	p := f.parts[k]
	first := p != nil && p.diverged == ""
	if p != nil {
		p.diverged = why
	}
	f.mu.Unlock()
	if first {
		f.r.stats.divergences.Add(1)
		f.r.logger.Error("mirror: copy diverged from its origin; fetching stopped for this partition", "peer", f.peer.NodeID, "topic", MirrorName(f.peer.NodeID, k.topic), "partition", k.partition, "reason", why)
	}
}

// dropTopic deletes the local copy of an origin topic; false when it
// could not.
func (f *fetcher) dropTopic(topic, why string) bool {
	local := MirrorName(f.peer.NodeID, topic)
	if err := f.r.inner.DeleteTopic(local); err != nil && !errors.Is(err, log.ErrUnknownTopic) {
		f.r.logger.Warn("mirror: cannot delete copy", "topic", local, "err", err)
		return false
	}
	f.r.registry.remove(local)
	f.r.held.forget(local)
	f.mu.Lock()
	delete(f.topics, topic)
	for k := range f.parts {
		if k.topic == topic {
			delete(f.parts, k)
		}
	}
	f.mu.Unlock()
	f.refreshSoon()
	f.r.logger.Info("mirror: copy deleted", "peer", f.peer.NodeID, "topic", local, "reason", why)
	return true
}

// refresh reads the origin's Metadata: its topics, their replica sets
// (which partitions this node holds) and in-sync sets.
func (f *fetcher) refresh(ctx context.Context) error {
	mctx, cancel := context.WithTimeout(ctx, f.r.opts.FetchTimeout)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = nil // all
	resp, err := f.cl.SeedBrokers()[0].Request(mctx, req)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	md := resp.(*kmsg.MetadataResponse)
	origin := f.peer.BrokerID
	// The listener must be the peer's, replicating: a box restarted at
	// that address without replication (or another node) announces
	// another broker id, and its topics must not be taken as the
	// origin's (a copy is deleted only when its origin deleted the topic).
	if !slices.ContainsFunc(md.Brokers, func(b kmsg.MetadataResponseBroker) bool { return b.NodeID == origin }) {
		return fmt.Errorf("the Kafka listener at %s is not node %s's (no broker %d in its metadata)", f.peer.KafkaAddr, f.peer.NodeID, origin)
	}
	seen := map[string]bool{}
	type want struct {
		topic string
		n     int32
	}
	var create []want
	type isrOf struct {
		topic         string
		isr, replicas [][]int32
	}
	var isrs []isrOf
	f.mu.Lock()
	for _, t := range md.Topics {
		if t.Topic == nil || t.ErrorCode != 0 || len(t.Partitions) == 0 || t.IsInternal {
			continue
		}
		if reps := t.Partitions[0].Replicas; len(reps) == 0 || reps[0] != origin {
			continue // the origin's copy of a third node's topic
		}
		name := *t.Topic
		seen[name] = true
		ot := f.topics[name]
		if ot == nil {
			ot = &originTopic{}
			f.topics[name] = ot
		}
		ot.partitions = int32(len(t.Partitions))
		ot.replicas = make([][]int32, len(t.Partitions))
		ot.isr = make([][]int32, len(t.Partitions))
		holds := make([]bool, len(t.Partitions))
		held := false
		for _, p := range t.Partitions {
			if p.Partition < 0 || int(p.Partition) >= len(t.Partitions) {
				continue
			}
			ot.replicas[p.Partition] = p.Replicas
			ot.isr[p.Partition] = p.ISR
			k := tp{name, p.Partition}
			mp := f.parts[k]
			assigned := contains(p.Replicas, f.r.brokerID)
			holds[p.Partition] = assigned
			if mp == nil && assigned {
				mp = &mirrorPart{fetchFrom: -1}
				f.parts[k] = mp
			}
			if mp != nil {
				if mp.assigned != assigned {
					f.r.logger.Info("mirror: assignment changed", "peer", f.peer.NodeID, "topic", MirrorName(f.peer.NodeID, name), "partition", p.Partition, "held", assigned)
				}
				mp.assigned = assigned
				held = held || assigned
			}
		}
		f.r.held.note(MirrorName(f.peer.NodeID, name), holds)
		if held {
			create = append(create, want{name, ot.partitions})
		}
		isrs = append(isrs, isrOf{name, ot.isr, ot.replicas})
	}
	f.mu.Unlock()
	names := map[int32]string{}
	for _, m := range f.r.peers() {
		names[m.BrokerID] = m.NodeID
	}
	for _, x := range isrs {
		if err := f.r.copies.note(f.peer.NodeID, x.topic, x.isr, x.replicas, names); err != nil {
			f.r.logger.Warn("mirror: cannot store which nodes hold copies", "peer", f.peer.NodeID, "topic", x.topic, "err", err)
		}
	}

	for _, w := range create {
		f.ensureTopic(ctx, w.topic, w.n)
	}
	// Topics deleted at the origin are deleted here, unless the origin
	// lost its data (a new data dir id): then the copies are all that is
	// left of it.
	dd := f.peer.DataDir
	copied := map[string]bool{}
	for _, e := range f.r.registry.of(f.peer.NodeID) {
		copied[e.Topic] = true
		if seen[e.Topic] {
			continue
		}
		if e.DataDir != "" && dd != "" && e.DataDir != dd {
			continue
		}
		f.dropTopic(e.Topic, "deleted at the origin")
		delete(copied, e.Topic)
	}
	// Which nodes hold copies of a topic the origin no longer has and
	// this node holds no copy of is nobody's concern here.
	if err := f.r.copies.prune(f.peer.NodeID, func(topic string) bool { return seen[topic] || copied[topic] }); err != nil {
		f.r.logger.Warn("mirror: cannot store which nodes hold copies", "peer", f.peer.NodeID, "err", err)
	}
	return nil
}

// ensureTopic makes (or grows) the local copy of an origin topic and
// follows the origin's retention.
func (f *fetcher) ensureTopic(ctx context.Context, topic string, partitions int32) {
	local := MirrorName(f.peer.NodeID, topic)
	info, err := f.r.inner.Topic(local)
	switch {
	case err == nil && info.Config.Origin != f.peer.NodeID:
		f.mu.Lock()
		ot := f.topics[topic]
		first := ot != nil && !ot.conflict
		if ot != nil {
			ot.conflict = true
		}
		f.mu.Unlock()
		if first {
			f.r.logger.Error("mirror: a local topic has the mirror's name; not mirroring it", "peer", f.peer.NodeID, "topic", local)
		}
		return
	case errors.Is(err, log.ErrUnknownTopic):
		cfg := f.originConfig(ctx, topic)
		cfg.Partitions = partitions
		if err := f.r.inner.CreateTopic(local, cfg); err != nil && !errors.Is(err, log.ErrTopicExists) {
			f.r.logger.Warn("mirror: cannot create copy", "peer", f.peer.NodeID, "topic", local, "err", err)
			return
		}
		f.r.registry.put(local, registryEntry{Origin: f.peer.NodeID, Topic: topic, DataDir: f.peer.DataDir})
		f.mu.Lock()
		if ot := f.topics[topic]; ot != nil {
			ot.configAt = time.Now()
		}
		f.mu.Unlock()
		f.r.logger.Info("mirror: copy created", "peer", f.peer.NodeID, "topic", local, "partitions", partitions)
		return
	case err != nil:
		return
	}
	if int32(len(info.Partitions)) < partitions {
		if err := f.r.inner.AddPartitions(local, partitions); err != nil {
			f.r.logger.Warn("mirror: cannot grow copy", "topic", local, "err", err)
		}
	}
	f.mu.Lock()
	ot := f.topics[topic]
	due := ot != nil && time.Since(ot.configAt) > f.r.opts.ConfigInterval
	if due {
		ot.configAt = time.Now()
	}
	f.mu.Unlock()
	if due {
		cfg := f.originConfig(ctx, topic)
		cur := info.Config
		if cfg.RetentionAge != cur.RetentionAge || cfg.RetentionBytes != cur.RetentionBytes || cfg.SegmentBytes != cur.SegmentBytes && cfg.SegmentBytes != 0 ||
			cfg.ReplicationFactor != cur.ReplicationFactor && cfg.ReplicationFactor != 0 || cfg.MinInsyncReplicas != cur.MinInsyncReplicas && cfg.MinInsyncReplicas != 0 {
			cur.RetentionAge, cur.RetentionBytes = cfg.RetentionAge, cfg.RetentionBytes
			if cfg.ReplicationFactor != 0 {
				cur.ReplicationFactor = cfg.ReplicationFactor
			}
			if cfg.MinInsyncReplicas != 0 {
				cur.MinInsyncReplicas = cfg.MinInsyncReplicas
			}
			if cfg.SegmentBytes != 0 {
				cur.SegmentBytes = cfg.SegmentBytes
			}
			if err := f.r.inner.SetTopicConfig(local, cur); err == nil {
				f.r.logger.Info("mirror: retention follows the origin's", "topic", local, "retention", cur.RetentionAge, "retention_bytes", cur.RetentionBytes)
			}
		}
	}
}

// originConfig reads the origin topic's retention settings (a copy keeps
// what the origin keeps) and its replication factor and
// min.insync.replicas (kept for a restore of the origin, see restore.go);
// a mirror always syncs before it fetches more.
func (f *fetcher) originConfig(ctx context.Context, topic string) log.TopicConfig {
	cfg := describeTopicSettings(ctx, f.cl.SeedBrokers()[0], topic, f.r.opts.FetchTimeout)
	cfg.Origin, cfg.Fsync = f.peer.NodeID, log.FsyncAlways
	return cfg
}

// wholeBatchesFrom returns the whole batches of data from offset from on
// (a fetch may begin with the batch holding from, and end with a partial
// batch). The first kept batch must begin at from: a copy is stored in
// the origin's batch boundaries.
func wholeBatchesFrom(data []byte, from int64) ([]byte, error) {
	b := data
	for len(b) >= batch.HeaderSize {
		h, err := batch.ParseHeader(b)
		if err != nil {
			return nil, fmt.Errorf("fetched batch header: %v", err)
		}
		if h.Size() > len(b) || h.LastOffset() >= from {
			if h.Size() <= len(b) && h.BaseOffset < from && h.RecordCount == 0 && !h.Control() {
				// Compaction at the origin merged removed offsets of
				// several batches into one empty batch: this copy takes
				// its part from from on.
				rest := b[h.Size():]
				b = append(batch.Empty(from, h.LastOffset(), h.LeaderEpoch, h.MaxTimestamp), rest...)
			}
			break
		}
		b = b[h.Size():]
	}
	n := 0
	first := true
	for len(b)-n >= batch.HeaderSize {
		h, err := batch.ParseHeader(b[n:])
		if err != nil || h.Size() > len(b)-n || h.Size() < batch.HeaderSize {
			break
		}
		if first && h.BaseOffset != from {
			return nil, fmt.Errorf("the origin's batch at offset %d begins at %d, inside this copy's last batch", from, h.BaseOffset)
		}
		first = false
		n += h.Size()
	}
	return b[:n], nil
}

// recordsSpan is the offsets covered by concatenated batches.
func recordsSpan(b []byte) int64 {
	var first, last int64 = -1, -1
	for len(b) >= batch.HeaderSize {
		h, err := batch.ParseHeader(b)
		if err != nil || h.Size() > len(b) {
			break
		}
		if first < 0 {
			first = h.BaseOffset
		}
		last = h.LastOffset()
		b = b[h.Size():]
	}
	if first < 0 {
		return 0
	}
	return last - first + 1
}

func contains(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
