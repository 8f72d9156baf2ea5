package replicate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/replicate/member"
)

// Taking back at start. Before this node accepts a write, it asks every
// peer it can reach for the copies they hold of its own partitions and
// takes back what a copy holds beyond its own end, where the copy
// continues its log (the copy's history agrees with the node's latest
// epoch up to the node's end):
//
//   - a tail lost to a crash under fsync interval or never, that a copy
//     had synced: the node never gives those offsets other records;
//   - everything, for a node back with an empty or damaged data dir and
//     the same node id (a replaced SD card): its partitions come back at
//     their offsets, which continue where they were.
//
// Its node epoch is then raised past every epoch the copies hold for it,
// so none of its later batches can pass for one of an earlier
// incarnation. A topic missing here is made again with the copy's
// partitions and the origin settings the copy keeps (replication factor,
// min.insync.replicas, retention).
//
// It runs in the background from Start on, with every listener up (boxes
// of a site that restart together take back from each other): until it
// is done, the view refuses appends to this node's partitions and its
// epoch answers for them (log.ErrNotLeader, Kafka's retriable
// NOT_LEADER_OR_FOLLOWER), so no copy is cut back to this node's end
// before its tail was taken back.
//
// The peers asked are those alive once every member serf knows is alive
// or gone, or once RestoreTimeout passed: a copy on a box that is down
// then is not asked. If it holds a longer tail, the epoch check cuts it
// back when it returns (logged and counted), as it does for any copy
// ahead of a box that could not take it back.

// DefaultRestoreTimeout bounds the wait for the site's boxes at start.
const DefaultRestoreTimeout = 15 * time.Second

// restoreStats is what the taking back did (for the start's log line and
// status).
type restoreStats struct {
	peers, partitions int
	records           int64
	topics            []string // made again
	maxEpoch          int32
}

// restore takes back from the peers' copies what they hold of this
// node's partitions beyond its end.
func (r *Replicator) restore(ctx context.Context) {
	began := time.Now()
	deadline := began.Add(r.opts.RestoreTimeout)
	peers := r.waitSite(ctx, deadline)
	var st restoreStats
	st.maxEpoch = -1
	// A peer that starts at the same time may not listen yet: asked
	// again until the deadline.
	for len(peers) > 0 {
		var again []member.Member
		var last error
		for _, p := range peers {
			if ctx.Err() != nil {
				return
			}
			if err := r.restoreFrom(ctx, p, &st); err != nil {
				again, last = append(again, p), err
				continue
			}
			st.peers++
		}
		peers = again
		if len(peers) == 0 {
			break
		}
		if !time.Now().Before(deadline) {
			for _, p := range peers {
				r.logger.Warn("restore: cannot read this node's copies on a peer; going on without them", "peer", p.NodeID, "kafka", p.KafkaAddr, "err", last)
			}
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(300 * time.Millisecond):
		}
	}
	if st.maxEpoch >= 0 {
		if er, ok := r.inner.(log.EpochRaiser); ok {
			if _, err := er.RaiseNodeEpoch(st.maxEpoch + 1); err != nil {
				r.logger.Error("restore: cannot raise the node epoch past the copies'", "epoch", st.maxEpoch+1, "err", err)
			}
		}
	}
	if st.records > 0 || len(st.topics) > 0 {
		r.logger.Warn("restore: took back from the site's copies what this node had lost", "peers", st.peers,
			"partitions", st.partitions, "records", st.records, "topics_made_again", strings.Join(st.topics, ","), "took", time.Since(began).Round(time.Millisecond))
	} else {
		r.logger.Info("restore: the site's copies hold nothing this node lacks", "peers_asked", st.peers, "took", time.Since(began).Round(time.Millisecond))
	}
	r.stats.restoredRecords.Add(uint64(st.records))
}

// waitSite waits until every member serf knows is alive or gone (left),
// with at least one peer when join addresses were given, or until
// RestoreTimeout; it returns the alive peers with a Kafka address.
func (r *Replicator) waitSite(ctx context.Context, deadline time.Time) []member.Member {
	for {
		r.refreshMembers()
		var alive []member.Member
		settled := true
		for _, m := range r.peers() {
			switch {
			case m.Self:
			case m.State == member.Alive:
				if m.KafkaAddr != "" {
					alive = append(alive, m)
				}
			case m.State != member.Left:
				settled = false
			}
		}
		if len(alive) == 0 && len(r.opts.Member.Join) > 0 {
			settled = false
		}
		if settled || !time.Now().Before(deadline) {
			if !settled {
				r.logger.Warn("restore: not every box of the site answers; taking back from those that do", "alive_peers", len(alive), "waited", r.opts.RestoreTimeout)
			}
			return alive
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.mem.Changed():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// restoreFrom takes back what peer's copies of this node's partitions
// hold beyond this node's ends.
func (r *Replicator) restoreFrom(ctx context.Context, peer member.Member, st *restoreStats) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(peer.KafkaAddr),
		kgo.ClientID("runnel-restore-" + r.nodeID),
		kgo.RequestRetries(2),
		kgo.DialTimeout(3 * time.Second),
	}, r.opts.ClientOpts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	br := cl.SeedBrokers()[0]
	mctx, cancel := context.WithTimeout(ctx, r.opts.FetchTimeout)
	kresp, err := br.Request(mctx, kmsg.NewPtrMetadataRequest())
	cancel()
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	md := kresp.(*kmsg.MetadataResponse)
	prefix := r.nodeID + "."
	for _, t := range md.Topics {
		if t.Topic == nil || t.ErrorCode != 0 || len(t.Partitions) == 0 || !strings.HasPrefix(*t.Topic, prefix) {
			continue
		}
		if reps := t.Partitions[0].Replicas; len(reps) == 0 || reps[0] != r.brokerID {
			continue // a local topic of the peer's that happens to share the prefix
		}
		copyName, topic := *t.Topic, strings.TrimPrefix(*t.Topic, prefix)
		made, err := r.ensureOwnTopic(ctx, br, copyName, topic, int32(len(t.Partitions)))
		if err != nil {
			r.logger.Warn("restore: cannot make the topic again", "peer", peer.NodeID, "topic", topic, "err", err)
			continue
		}
		if made {
			st.topics = append(st.topics, topic)
		}
		for _, p := range t.Partitions {
			if !contains(p.Replicas, peer.BrokerID) {
				continue // the peer holds no copy of it (it answers NOT_LEADER_OR_FOLLOWER)
			}
			n, epoch, err := r.restorePartition(ctx, br, copyName, topic, p.Partition)
			st.maxEpoch = max(st.maxEpoch, epoch)
			if n > 0 {
				st.partitions++
				st.records += n
				r.logger.Info("restore: took records back from a copy", "peer", peer.NodeID, "topic", topic, "partition", p.Partition, "records", n)
				if info, err := r.inner.Topic(topic); err == nil {
					if _, end, err := r.inner.Offsets(topic, p.Partition); err == nil {
						r.origin.restored(topic, p.Partition, end, info.Config.MinInsyncReplicas)
					}
				}
			}
			if err != nil {
				r.logger.Warn("restore: cannot take a copy's records back", "peer", peer.NodeID, "topic", topic, "partition", p.Partition, "err", err)
			}
		}
	}
	return nil
}

// ensureOwnTopic makes this node's topic again (from the copy's settings)
// when it is missing, and grows it to the copy's partitions.
func (r *Replicator) ensureOwnTopic(ctx context.Context, br *kgo.Broker, copyName, topic string, partitions int32) (made bool, err error) {
	info, err := r.inner.Topic(topic)
	switch {
	case err == nil:
		if info.Config.Origin != "" {
			return false, fmt.Errorf("%s is node %s's copy here", topic, info.Config.Origin)
		}
		if int32(len(info.Partitions)) < partitions {
			return false, r.inner.AddPartitions(topic, partitions)
		}
		return false, nil
	case !errors.Is(err, log.ErrUnknownTopic):
		return false, err
	}
	cfg := describeTopicSettings(ctx, br, copyName, r.opts.FetchTimeout) // the settings a copy keeps
	cfg.Partitions = partitions
	if err := r.inner.CreateTopic(topic, cfg); err != nil && !errors.Is(err, log.ErrTopicExists) {
		return false, err
	}
	return true, nil
}

// describeTopicSettings asks br for topic's retention, segment size,
// replication factor and min.insync.replicas (DescribeConfigs); what it
// cannot learn stays zero (the log's defaults).
func describeTopicSettings(ctx context.Context, br *kgo.Broker, topic string, timeout time.Duration) log.TopicConfig {
	var cfg log.TopicConfig
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req := kmsg.NewPtrDescribeConfigsRequest()
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeTopic
	res.ResourceName = topic
	res.ConfigNames = []string{"retention.ms", "retention.bytes", "segment.bytes", "replication.factor", "min.insync.replicas",
		"cleanup.policy", "delete.retention.ms", "min.compaction.lag.ms"}
	req.Resources = append(req.Resources, res)
	resp, err := br.Request(dctx, req)
	if err != nil {
		return cfg
	}
	for _, rr := range resp.(*kmsg.DescribeConfigsResponse).Resources {
		for _, c := range rr.Configs {
			if c.Value == nil {
				continue
			}
			if c.Name == "cleanup.policy" {
				// A compacted topic's copy compacts itself, keeping the
				// origin's offsets (and no retention by age alone).
				switch p := log.CleanupPolicy(strings.ReplaceAll(*c.Value, " ", "")); p {
				case log.CleanupCompact, log.CleanupCompactDelete:
					cfg.Cleanup = p
				case "delete,compact":
					cfg.Cleanup = log.CleanupCompactDelete
				}
				continue
			}
			n, err := strconv.ParseInt(*c.Value, 10, 64)
			if err != nil {
				continue
			}
			applySetting(&cfg, c.Name, n)
		}
	}
	return cfg
}

// applySetting sets one Kafka topic setting (as DescribeConfigs gives
// it) in cfg.
func applySetting(cfg *log.TopicConfig, name string, n int64) {
	switch name {
	case "retention.ms":
		cfg.RetentionAge = -1
		if n >= 0 {
			cfg.RetentionAge = max(time.Duration(n)*time.Millisecond, time.Millisecond)
		}
	case "retention.bytes":
		cfg.RetentionBytes = -1
		if n >= 0 {
			cfg.RetentionBytes = max(n, 1)
		}
	case "segment.bytes":
		cfg.SegmentBytes = n
	case "delete.retention.ms":
		cfg.DeleteRetention = max(time.Duration(n)*time.Millisecond, time.Millisecond)
	case "min.compaction.lag.ms":
		cfg.MinCompactionLag = max(time.Duration(n)*time.Millisecond, 0)
	case "replication.factor":
		if n > 1 && n < 1<<15 {
			cfg.ReplicationFactor = int32(n)
		}
	case "min.insync.replicas":
		if n > 1 && n < 1<<15 {
			cfg.MinInsyncReplicas = int32(n)
		}
	}
}

// restorePartition takes back what the copy of topic/partition holds past
// this node's end, when it continues this node's log. It returns the
// records taken and the latest epoch the copy holds (-1: none).
func (r *Replicator) restorePartition(ctx context.Context, br *kgo.Broker, copyName, topic string, partition int32) (int64, int32, error) {
	cstart, cend, err := listOffsets(ctx, br, copyName, partition, r.opts.FetchTimeout)
	if err != nil {
		return 0, -1, err
	}
	if cend <= cstart {
		return 0, -1, nil
	}
	copyEpoch, err := lastEpoch(ctx, br, copyName, partition, cend, r.opts.FetchTimeout)
	if err != nil {
		return 0, -1, err
	}
	start, end, err := r.inner.Offsets(topic, partition)
	if err != nil {
		return 0, copyEpoch, err
	}
	if cend <= end {
		return 0, copyEpoch, nil
	}
	from := end
	if end > start {
		// The copy must continue this node's log: hold its latest epoch
		// up to at least this node's end.
		le, ok := r.inner.(log.LeaderEpochs)
		if !ok {
			return 0, copyEpoch, nil
		}
		hist, err := le.EpochHistory(topic, partition)
		if err != nil || len(hist) == 0 {
			return 0, copyEpoch, err
		}
		mine := hist[len(hist)-1].Epoch
		e, eend, err := epochEnd(ctx, br, copyName, partition, mine, r.opts.FetchTimeout)
		if err != nil {
			return 0, copyEpoch, err
		}
		if e != mine || eend < end {
			r.logger.Warn("restore: a copy does not continue this node's log; not taking from it", "topic", topic, "partition", partition,
				"end", end, "epoch", mine, "copy_epoch", e, "copy_epoch_end", eend)
			return 0, copyEpoch, nil
		}
	} else if cstart > end {
		from = cstart // an empty partition starts at the copy's log start
	}
	var taken int64
	for from < cend {
		data, err := fetchCopy(ctx, br, copyName, partition, from, r.opts.FetchTimeout)
		if err != nil {
			return taken, copyEpoch, err
		}
		data, err = wholeBatchesFrom(data, from)
		if err != nil {
			return taken, copyEpoch, err
		}
		if len(data) == 0 {
			break
		}
		if err := r.inner.AppendAt(ctx, topic, partition, data); err != nil {
			return taken, copyEpoch, fmt.Errorf("store at %d: %w", from, err)
		}
		n := recordsSpan(data)
		taken += n
		from += n
	}
	return taken, copyEpoch, nil
}

// listOffsets returns a partition's log start and end on br.
func listOffsets(ctx context.Context, br *kgo.Broker, topic string, partition int32, timeout time.Duration) (start, end int64, err error) {
	get := func(ts int64) (int64, error) {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = partition, ts, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		lctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		resp, err := br.Request(lctx, req)
		if err != nil {
			return 0, err
		}
		ts2 := resp.(*kmsg.ListOffsetsResponse).Topics
		if len(ts2) != 1 || len(ts2[0].Partitions) != 1 {
			return 0, fmt.Errorf("list offsets %s/%d: malformed answer", topic, partition)
		}
		p := ts2[0].Partitions[0]
		if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
			return 0, fmt.Errorf("list offsets %s/%d: %w", topic, partition, err)
		}
		return p.Offset, nil
	}
	if start, err = get(-2); err != nil {
		return 0, 0, err
	}
	end, err = get(-1)
	return start, end, err
}

// epochEnd asks br's OffsetForLeaderEpoch for one partition.
func epochEnd(ctx context.Context, br *kgo.Broker, topic string, partition, epoch int32, timeout time.Duration) (int32, int64, error) {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.ReplicaID = -1
	t := kmsg.NewOffsetForLeaderEpochRequestTopic()
	t.Topic = topic
	p := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	p.Partition, p.CurrentLeaderEpoch, p.LeaderEpoch = partition, -1, epoch
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	ectx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := br.Request(ectx, req)
	if err != nil {
		return -1, -1, err
	}
	ts := resp.(*kmsg.OffsetForLeaderEpochResponse).Topics
	if len(ts) != 1 || len(ts[0].Partitions) != 1 {
		return -1, -1, fmt.Errorf("offset for leader epoch %s/%d: malformed answer", topic, partition)
	}
	a := ts[0].Partitions[0]
	if err := kerr.ErrorForCode(a.ErrorCode); err != nil {
		return -1, -1, fmt.Errorf("offset for leader epoch %s/%d: %w", topic, partition, err)
	}
	return a.LeaderEpoch, a.EndOffset, nil
}

// fetchCopy is one consumer Fetch of a partition from offset.
func fetchCopy(ctx context.Context, br *kgo.Broker, topic string, partition int32, offset int64, timeout time.Duration) ([]byte, error) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.SessionEpoch = -1, 0, 0, 8<<20, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes, fp.LogStartOffset, fp.CurrentLeaderEpoch = partition, offset, 4<<20, -1, -1
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	fctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := br.Request(fctx, req)
	if err != nil {
		return nil, err
	}
	fr := resp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(fr.ErrorCode); err != nil {
		return nil, err
	}
	if len(fr.Topics) != 1 || len(fr.Topics[0].Partitions) != 1 {
		return nil, fmt.Errorf("fetch %s/%d: malformed answer", topic, partition)
	}
	p := fr.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		return nil, fmt.Errorf("fetch %s/%d at %d: %w", topic, partition, offset, err)
	}
	return p.RecordBatches, nil
}

// lastEpoch is the leader epoch of the batch holding offset end-1.
func lastEpoch(ctx context.Context, br *kgo.Broker, topic string, partition int32, end int64, timeout time.Duration) (int32, error) {
	data, err := fetchCopy(ctx, br, topic, partition, end-1, timeout)
	if err != nil {
		return -1, err
	}
	e := int32(-1)
	for len(data) >= batch.HeaderSize {
		h, err := batch.ParseHeader(data)
		if err != nil || h.Size() > len(data) {
			break
		}
		e = max(e, h.LeaderEpoch)
		data = data[h.Size():]
	}
	return e, nil
}
