package replicate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// Leader epochs on the mirror side (KIP-101/KIP-279 with the origin's
// incarnations as leaders): before a copy fetches again after anything
// that may have changed its origin's log (a new fetcher: the origin
// restarted, moved or came back; a failed request; a batch refused as
// older than the copy's epoch; an end past the origin's), it compares its
// latest epoch with the origin's history (OffsetForLeaderEpoch). Where
// the origin says that epoch ends before the copy does, the origin lost
// records it had not synced (fsync interval or never) and took none of
// them back from this copy: the copy is cut back to the origin's
// history, which is logged as one line and counted
// (runnel_replication_truncations_total), and fetching goes on from
// there. Nothing is served past a point where the copy and its origin
// might differ.

// epochGate is the log's log.LeaderEpochs as the view shows them: the
// Kafka server answers OffsetForLeaderEpoch from it, for this node's
// partitions and for the copies it holds alike.
type epochGate struct {
	v  *view
	le log.LeaderEpochs
}

func (g epochGate) NodeEpoch() int32 { return g.le.NodeEpoch() }

// EpochEnd implements log.LeaderEpochs. While the start's taking back
// runs, this node's own partitions do not answer: a copy asking would cut
// back the very tail about to be taken from it.
func (g epochGate) EpochEnd(topic string, partition int32, epoch int32) (int32, int64, error) {
	if g.v.r.restoring.Load() {
		if _, mirror := g.v.mirror(topic); !mirror {
			return -1, -1, errRestoring
		}
	}
	return g.le.EpochEnd(topic, partition, epoch)
}

// EpochHistory implements log.LeaderEpochs.
func (g epochGate) EpochHistory(topic string, partition int32) ([]log.EpochStart, error) {
	return g.le.EpochHistory(topic, partition)
}

// epochQuery is one copy partition to check: its latest epoch and end.
type epochQuery struct {
	k          tp
	epoch      int32
	start, end int64
}

// unverifyAll makes every copy of this fetcher check its origin's epochs
// again before it fetches (a request failed: the origin may have
// restarted behind it).
func (f *fetcher) unverifyAll() {
	f.mu.Lock()
	for _, p := range f.parts {
		p.verified = false
	}
	f.mu.Unlock()
}

// verify checks the unverified copies against the origin's epoch
// histories, cuts back those that hold what the origin does not, and
// marks the others verified. It reports an error when the origin could
// not be asked (the copies stay unverified).
func (f *fetcher) verify(ctx context.Context) error {
	le, ok := f.r.inner.(log.LeaderEpochs)
	var qs []epochQuery
	emptied := map[string]bool{} // topics with a partition found empty (so verified) here
	f.mu.Lock()
	for k, p := range f.parts {
		if p.verified || !p.assigned || p.diverged != "" || f.topics[k.topic] == nil || f.topics[k.topic].conflict {
			continue
		}
		if !ok || f.noEpochs {
			p.verified = true
			continue
		}
		local := MirrorName(f.peer.NodeID, k.topic)
		start, end, err := f.r.inner.Offsets(local, k.partition)
		if err != nil {
			continue // not made yet: ensureTopic comes first
		}
		hist, err := le.EpochHistory(local, k.partition)
		if err != nil {
			continue
		}
		if end == start || len(hist) == 0 {
			p.verified = true // nothing held to disagree
			emptied[k.topic] = true
			continue
		}
		qs = append(qs, epochQuery{k: k, epoch: hist[len(hist)-1].Epoch, start: start, end: end})
	}
	f.mu.Unlock()
	if len(qs) == 0 {
		// A partition emptied by the last round may have been the only
		// one left to agree.
		f.adoptDataDir(emptied)
		return nil
	}
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.ReplicaID = f.r.brokerID
	byTopic := map[string]int{}
	for _, q := range qs {
		i, ok := byTopic[q.k.topic]
		if !ok {
			i = len(req.Topics)
			byTopic[q.k.topic] = i
			t := kmsg.NewOffsetForLeaderEpochRequestTopic()
			t.Topic = q.k.topic
			req.Topics = append(req.Topics, t)
		}
		p := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		p.Partition, p.CurrentLeaderEpoch, p.LeaderEpoch = q.k.partition, -1, q.epoch
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
	}
	rctx, cancel := context.WithTimeout(ctx, f.r.opts.FetchTimeout)
	defer cancel()
	kresp, err := f.cl.SeedBrokers()[0].Request(rctx, req)
	if err != nil {
		if errors.Is(err, kerr.UnsupportedVersion) || strings.Contains(err.Error(), "broker is too old") {
			// franz-go refuses a request key the origin did not
			// advertise before sending it.
			f.legacy()
			return nil
		}
		return fmt.Errorf("offset for leader epoch: %w", err)
	}
	// Copies made under another of the origin's data dirs are compared
	// by content first (see sameHistory); checked says, per topic, that
	// every partition asked about passed.
	other, checked := map[string]bool{}, map[string]bool{}
	reg := f.r.registry.all()
	for _, q := range qs {
		if _, seen := other[q.k.topic]; !seen {
			e, ok := reg[MirrorName(f.peer.NodeID, q.k.topic)]
			other[q.k.topic] = ok && e.DataDir != "" && f.peer.DataDir != "" && e.DataDir != f.peer.DataDir
			if other[q.k.topic] {
				checked[q.k.topic] = true
			}
		}
	}
	resp := kresp.(*kmsg.OffsetForLeaderEpochResponse)
	answers := map[tp]kmsg.OffsetForLeaderEpochResponseTopicPartition{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			answers[tp{t.Topic, p.Partition}] = p
		}
	}
	for _, q := range qs {
		a, ok := answers[q.k]
		if !ok {
			continue
		}
		switch a.ErrorCode {
		case 0:
		case kerr.UnsupportedVersion.Code:
			f.legacy()
			return nil
		case kerr.UnknownTopicOrPartition.Code:
			f.refreshSoon()
			continue
		default:
			f.setErr(fmt.Errorf("offset for leader epoch %s/%d: %v", q.k.topic, q.k.partition, kerr.ErrorForCode(a.ErrorCode)))
			continue
		}
		if other[q.k.topic] {
			at, err := f.sameHistory(ctx, le, q)
			if err != nil {
				if ctx.Err() == nil {
					f.setErr(fmt.Errorf("compare %s/%d with the origin: %w", q.k.topic, q.k.partition, err))
				}
				checked[q.k.topic] = false
				continue
			}
			if at < q.end {
				f.truncate(ctx, q, at, -1)
				checked[q.k.topic] = false
				continue
			}
		}
		f.settle(ctx, le, q, a.LeaderEpoch, a.EndOffset)
	}
	for topic := range emptied {
		if _, ok := checked[topic]; !ok {
			checked[topic] = true
		}
	}
	f.adoptDataDir(checked)
	return nil
}

// adoptDataDir records the copy of each topic marked true, made under
// another of its origin's data dirs, as made under the current one once
// every partition of it agrees with the origin (allVerified).
func (f *fetcher) adoptDataDir(topics map[string]bool) {
	if len(topics) == 0 {
		return
	}
	reg := f.r.registry.all()
	for topic, ok := range topics {
		local := MirrorName(f.peer.NodeID, topic)
		e, found := reg[local]
		if !ok || !found || e.DataDir == "" || f.peer.DataDir == "" || e.DataDir == f.peer.DataDir || !f.allVerified(topic) {
			continue
		}
		f.r.registry.put(local, registryEntry{Origin: f.peer.NodeID, Topic: topic, DataDir: f.peer.DataDir})
		f.r.logger.Info("mirror: copy agrees with its origin's new data dir", "peer", f.peer.NodeID, "topic", local)
	}
}

// allVerified reports whether every partition of the copy of topic that
// holds records is held, verified and not diverged.
func (f *fetcher) allVerified(topic string) bool {
	info, err := f.r.inner.Topic(MirrorName(f.peer.NodeID, topic))
	if err != nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, pi := range info.Partitions {
		p := f.parts[tp{topic, pi.Partition}]
		if p == nil {
			if pi.HWM > pi.Start {
				return false
			}
			continue
		}
		if !p.assigned && pi.HWM > pi.Start || p.assigned && (!p.verified || p.diverged != "") {
			return false
		}
	}
	return true
}

// legacy: the origin keeps no leader epochs (an older runnel): copies go
// on unverified, as before epochs, and it is said once.
func (f *fetcher) legacy() {
	f.mu.Lock()
	first := !f.noEpochs
	f.noEpochs = true
	for _, p := range f.parts {
		p.verified = true
	}
	f.mu.Unlock()
	if first {
		f.r.logger.Warn("mirror: the origin serves no leader epochs; its copies cannot detect a lost tail", "peer", f.peer.NodeID)
	}
}

// settle acts on the origin's answer for one copy: (epoch, end) is the
// origin's largest epoch <= the copy's latest and where it ends there.
func (f *fetcher) settle(ctx context.Context, le log.LeaderEpochs, q epochQuery, epoch int32, end int64) {
	local := MirrorName(f.peer.NodeID, q.k.topic)
	cut := q.end
	switch {
	case epoch < 0:
		// The origin holds nothing of the copy's latest epoch (it lost
		// all of it): that epoch goes, the one before is checked next.
		hist, err := le.EpochHistory(local, q.k.partition)
		if err != nil || len(hist) == 0 {
			return
		}
		cut = hist[len(hist)-1].StartOffset
	case epoch == q.epoch:
		cut = min(end, q.end)
	default:
		// The origin's history moved to a later epoch before the copy's
		// latest ends: keep what both hold of epoch.
		_, localEnd, err := le.EpochEnd(local, q.k.partition, epoch)
		if err != nil {
			return
		}
		cut = min(end, localEnd, q.end)
	}
	if cut >= q.end {
		f.mu.Lock()
		if p := f.parts[q.k]; p != nil {
			p.verified = true
			p.aheadChecks = 0
		}
		f.mu.Unlock()
		return
	}
	f.truncate(ctx, q, cut, epoch)
}

// truncate cuts a copy back to offset cut (it stays unverified: the next
// round checks the epoch now latest).
func (f *fetcher) truncate(ctx context.Context, q epochQuery, cut int64, originEpoch int32) {
	local := MirrorName(f.peer.NodeID, q.k.topic)
	tr, ok := f.r.inner.(log.Truncater)
	if !ok {
		f.diverge(q.k, fmt.Sprintf("holds offsets %d..%d that the origin's history does not (epoch %d), and the log cannot truncate", cut, q.end-1, q.epoch))
		return
	}
	// A cut inside a batch takes the whole batch (Kafka's truncation
	// does too): a batch is never split.
	if cut > q.start && cut < q.end {
		if data, err := f.r.inner.Read(local, q.k.partition, cut, 1); err == nil {
			if h, err := batch.ParseHeader(data); err == nil && h.BaseOffset < cut {
				cut = max(h.BaseOffset, q.start)
			}
		}
	}
	if _, err := f.keepCut(ctx, q.k, max(cut, q.start), q.end); err != nil {
		if ctx.Err() == nil {
			f.diverge(q.k, fmt.Sprintf("holds offsets %d..%d that the origin's history does not, and keeping them before the cut failed: %v", max(cut, q.start), q.end-1, err))
		}
		return
	}
	if cut <= q.start {
		// Nothing of the copy is the origin's any more: made again.
		f.r.stats.truncations.Add(1)
		f.r.stats.truncatedRecords.Add(uint64(q.end - q.start))
		f.r.logger.Warn("mirror: copy diverged from its origin from its first offset on; copying it again", "peer", f.peer.NodeID, "topic", local, "partition", q.k.partition, "copy_start", q.start, "copy_end", q.end, "epoch", q.epoch)
		f.emptyCopy(ctx, q.k, q.start, "diverged from the origin's history")
		return
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := tr.Truncate(tctx, local, q.k.partition, cut, nil)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			f.diverge(q.k, fmt.Sprintf("holds offsets %d..%d that the origin's history does not, and cutting them failed: %v", cut, q.end-1, err))
		}
		return
	}
	f.forgetKept(q.k)
	f.r.stats.truncations.Add(1)
	f.r.stats.truncatedRecords.Add(uint64(q.end - cut))
	f.r.logger.Warn("mirror: copy cut back to its origin's history: the origin lost records it had not synced and did not take them back",
		"peer", f.peer.NodeID, "topic", local, "partition", q.k.partition, "from", cut, "to", q.end, "records", q.end-cut, "copy_epoch", q.epoch, "origin_epoch", originEpoch)
	f.mu.Lock()
	if p := f.parts[q.k]; p != nil {
		p.localEnd = cut
		p.fetchFrom = -1
	}
	f.mu.Unlock()
}

// An origin back with a new data dir (a replaced SD card with the same
// node id) starts its epochs again, or raises them past only the copies
// it could take back from: a copy it did not reach may hold epochs whose
// numbers the new incarnation reuses for other records, and comparing
// epoch numbers alone would keep those records where the origin now has
// others. So a copy made under another of its origin's data dirs is
// first compared by content: the batch at each start of an epoch of the
// copy must be the origin's, byte for byte (CRC, offsets, length). The
// first one that is not, or that the origin does not hold, is where the
// copy is cut, or at the start of the origin's batch holding it where
// that begins lower (what the copy held from there is kept first, see
// keepCut; a copy so emptied whose start lies inside the origin's batch
// is made again from 0, see remakeCopy); then
// the epochs are compared as for any copy. Once every partition of the
// copy passed, the copy is recorded as made under the origin's current
// data dir. A compacted topic's batches differ once either side cleaned
// them: such a copy may be cut and made again although it agreed, which
// costs a copy and a kept duplicate, never a record.

// belowStart: the offset asked is below the origin's log start.
type belowStart struct{ start int64 }

func (e belowStart) Error() string { return fmt.Sprintf("below the origin's log start %d", e.start) }

// sameHistory compares the copy of q with the origin at the start of each
// of the copy's epochs. It returns the first offset where they differ, or
// q.end when they agree at all; an error when the origin could not tell.
func (f *fetcher) sameHistory(ctx context.Context, le log.LeaderEpochs, q epochQuery) (int64, error) {
	local := MirrorName(f.peer.NodeID, q.k.topic)
	hist, err := le.EpochHistory(local, q.k.partition)
	if err != nil {
		return 0, err
	}
	originStart := int64(-1)
	for _, h := range hist {
		at := max(h.StartOffset, q.start, originStart)
		if at >= q.end {
			break
		}
		for range 2 {
			data, err := f.r.inner.Read(local, q.k.partition, at, 1)
			if err != nil {
				return 0, err
			}
			mine, err := batch.ParseHeader(data)
			if err != nil {
				return 0, err
			}
			theirs, ok, err := f.originBatch(ctx, q.k, at)
			var below belowStart
			if errors.As(err, &below) && below.start > at {
				// The origin's retention passed it there: compared at the
				// origin's log start instead.
				originStart, at = below.start, below.start
				if at >= q.end {
					return q.end, nil
				}
				continue
			}
			if err != nil {
				return 0, err
			}
			if !ok || theirs.BaseOffset != mine.BaseOffset || theirs.BatchLength != mine.BatchLength || theirs.CRC != mine.CRC {
				if ok && theirs.BaseOffset < mine.BaseOffset {
					// The origin's batch holding at begins below the
					// copy's: what the copy holds from there is not the
					// origin's either (a cut at at would leave the copy
					// ending inside the origin's batch).
					return theirs.BaseOffset, nil
				}
				return mine.BaseOffset, nil
			}
			break
		}
	}
	return q.end, nil
}

// debugReplicaID is Kafka's debugging consumer id: a Fetch with it reads
// what a follower reads (past the acknowledged end consumers see) and is
// no copy's progress (ingest/kafka.DebugReplicaID).
const debugReplicaID = -2

// originBatch reads the header of the origin's batch holding offset at
// (a debugging Fetch: a follower's would move this copy's progress on the
// origin, a consumer's stops at the acknowledged end). ok is false when
// the origin holds no such batch; belowStart when at is below its log
// start.
func (f *fetcher) originBatch(ctx context.Context, k tp, at int64) (batch.Header, bool, error) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = debugReplicaID
	req.ReplicaState.ID = debugReplicaID
	req.MaxWaitMillis = 0
	req.MinBytes = 0
	req.MaxBytes = 1
	req.SessionEpoch = -1
	t := kmsg.NewFetchRequestTopic()
	t.Topic = k.topic
	p := kmsg.NewFetchRequestTopicPartition()
	p.Partition, p.FetchOffset, p.LogStartOffset, p.PartitionMaxBytes = k.partition, at, -1, 1
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	rctx, cancel := context.WithTimeout(ctx, f.r.opts.FetchTimeout)
	defer cancel()
	kresp, err := f.cl.SeedBrokers()[0].Request(rctx, req)
	if err != nil {
		return batch.Header{}, false, err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 {
		return batch.Header{}, false, kerr.ErrorForCode(resp.ErrorCode)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			switch {
			case rp.ErrorCode == kOffsetOutOfRange && at < rp.LogStartOffset:
				return batch.Header{}, false, belowStart{rp.LogStartOffset}
			case rp.ErrorCode == kOffsetOutOfRange:
				return batch.Header{}, false, nil
			case rp.ErrorCode != 0:
				return batch.Header{}, false, kerr.ErrorForCode(rp.ErrorCode)
			}
			for b := rp.RecordBatches; len(b) >= batch.HeaderSize; {
				h, err := batch.ParseHeader(b)
				if err != nil || h.Size() < batch.HeaderSize {
					return batch.Header{}, false, fmt.Errorf("the origin's batch at %d: %v", at, err)
				}
				if h.LastOffset() >= at {
					return h, true, nil
				}
				if h.Size() > len(b) {
					break
				}
				b = b[h.Size():]
			}
			if at < rp.HighWatermark {
				return batch.Header{}, false, fmt.Errorf("the origin served no batch at %d, below its end %d", at, rp.HighWatermark)
			}
			return batch.Header{}, false, nil
		}
	}
	return batch.Header{}, false, fmt.Errorf("the origin's Fetch answer names no %s/%d", k.topic, k.partition)
}
