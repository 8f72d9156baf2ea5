package group

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/meta"
)

// partitionsOf returns how many partitions topic has (0 when unknown), or
// -1 when no log is configured (every partition is accepted).
func (c *Coordinator) partitionsOf(topic string, cache map[string]int32) int32 {
	if c.opts.Log == nil {
		return -1
	}
	if n, ok := cache[topic]; ok {
		return n
	}
	var n int32
	if ti, err := c.opts.Log.Topic(topic); err == nil {
		n = int32(len(ti.Partitions))
	} else if !errors.Is(err, log.ErrUnknownTopic) {
		c.logger.Warn("group: cannot describe topic", "topic", topic, "err", err)
	}
	cache[topic] = n
	return n
}

// commitCheckLocked decides whether an OffsetCommit may store offsets.
func (c *Coordinator) commitCheckLocked(req *kmsg.OffsetCommitRequest) int16 {
	if cg := c.cgroups[req.Group]; cg != nil {
		return consumerCommitCheckLocked(cg, req)
	}
	g := c.groups[req.Group]
	simple := req.Version == 0 || req.Generation < 0 && req.MemberID == ""
	if g == nil {
		if simple {
			return codeNone
		}
		// The group has no members (after a restart, or every member
		// left): the committer must rejoin.
		if req.Generation < 0 {
			return codeUnknownMemberID
		}
		return codeIllegalGeneration
	}
	if req.InstanceID != nil {
		if id, ok := g.static[*req.InstanceID]; ok && id != req.MemberID {
			return codeFencedInstanceID
		}
	}
	if simple && len(g.members) == 0 {
		return codeNone
	}
	if g.state == stateCompleting {
		return codeRebalanceInProgress
	}
	m := g.members[req.MemberID]
	if m == nil {
		return codeUnknownMemberID
	}
	if req.Generation != g.generation {
		return codeIllegalGeneration
	}
	m.lastSeen = time.Now()
	return codeNone
}

// offsetCommit serves OffsetCommit: offsets are stored in meta, and the
// answer is sent once they are durable.
func (c *Coordinator) offsetCommit(req *kmsg.OffsetCommitRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	answerAll := func(code int16) kmsg.Response {
		resp.Topics = resp.Topics[:0]
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		if code != codeNone {
			c.stats.commitErrs.Add(uint64(countPartitions(req)))
		}
		return resp
	}
	// The empty group id is valid here (as in Kafka, for compatibility
	// with old offset-storing clients); no member can join it.

	c.mu.Lock()
	code := codeCoordinatorNotAvailable
	if !c.closed {
		code = c.commitCheckLocked(req)
	}
	var gate *commitGate
	if code == codeNone {
		gate = c.gates[req.Group]
		if gate == nil {
			gate = &commitGate{done: make(chan struct{})}
			c.gates[req.Group] = gate
		}
		gate.n++
	}
	c.mu.Unlock()
	if code != codeNone {
		return answerAll(code)
	}
	defer func() {
		c.mu.Lock()
		if gate.n--; gate.n == 0 {
			close(gate.done)
			delete(c.gates, req.Group)
		}
		c.mu.Unlock()
	}()

	offs := map[meta.TopicPartition]meta.GroupOffset{}
	parts := map[string]int32{}
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		n := c.partitionsOf(t.Topic, parts)
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			switch {
			case n >= 0 && (p.Partition < 0 || p.Partition >= n):
				rp.ErrorCode = codeUnknownTopicOrPartition
			case p.Metadata != nil && len(*p.Metadata) > MaxMetadataBytes:
				rp.ErrorCode = codeOffsetMetadataTooLarge
			default:
				md := ""
				if p.Metadata != nil {
					md = strings.Clone(*p.Metadata)
				}
				offs[meta.TopicPartition{Topic: strings.Clone(t.Topic), Partition: p.Partition}] = meta.GroupOffset{Offset: p.Offset, Metadata: md}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(offs) > 0 {
		if err := c.opts.Meta.CommitOffsetsBatched(req.Group, offs); err != nil {
			c.logger.Error("group: cannot store committed offsets", "group", req.Group, "err", err)
			for i := range resp.Topics {
				for j := range resp.Topics[i].Partitions {
					if rp := &resp.Topics[i].Partitions[j]; rp.ErrorCode == codeNone {
						rp.ErrorCode = codeCoordinatorNotAvailable
					}
				}
			}
		} else {
			c.stats.commits.Add(1)
			c.stats.commitParts.Add(uint64(len(offs)))
		}
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != codeNone {
				c.stats.commitErrs.Add(1)
			}
		}
	}
	return resp
}

func countPartitions(req *kmsg.OffsetCommitRequest) int {
	n := 0
	for _, t := range req.Topics {
		n += len(t.Partitions)
	}
	return n
}

// awaitCommits waits until OffsetCommits of group accepted before now are
// stored.
func (c *Coordinator) awaitCommits(ctx context.Context, group string) {
	c.mu.Lock()
	gate := c.gates[group]
	c.mu.Unlock()
	if gate == nil {
		return
	}
	select {
	case <-gate.done:
	case <-ctx.Done():
	case <-c.closing:
	}
}

// fetchedTopic is one topic's answer to an OffsetFetch, in the shape common
// to every version.
type fetchedTopic struct {
	topic string
	parts []fetchedPartition
}

type fetchedPartition struct {
	partition int32
	offset    int64
	metadata  string
}

// fetchGroup reads group's committed offsets for topics (nil = all).
func (c *Coordinator) fetchGroup(ctx context.Context, group string, topics []kmsg.OffsetFetchRequestTopic) ([]fetchedTopic, int16) {
	c.awaitCommits(ctx, group)
	offs, err := c.opts.Meta.GroupOffsets(group)
	if err != nil {
		c.logger.Error("group: cannot read committed offsets", "group", group, "err", err)
		return nil, codeCoordinatorNotAvailable
	}
	if topics == nil {
		byTopic := map[string][]fetchedPartition{}
		for tp, o := range offs {
			byTopic[tp.Topic] = append(byTopic[tp.Topic], fetchedPartition{tp.Partition, o.Offset, o.Metadata})
		}
		out := make([]fetchedTopic, 0, len(byTopic))
		for t, ps := range byTopic {
			// sort.Slice: slices.SortFunc links one more copy of the sort for each element type
			sort.Slice(ps, func(i, j int) bool { return ps[i].partition < ps[j].partition })
			out = append(out, fetchedTopic{t, ps})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].topic < out[j].topic })
		return out, codeNone
	}
	out := make([]fetchedTopic, 0, len(topics))
	for _, t := range topics {
		ft := fetchedTopic{topic: t.Topic}
		for _, p := range t.Partitions {
			fp := fetchedPartition{partition: p, offset: -1}
			if o, ok := offs[meta.TopicPartition{Topic: t.Topic, Partition: p}]; ok {
				fp.offset, fp.metadata = o.Offset, o.Metadata
			}
			ft.parts = append(ft.parts, fp)
		}
		out = append(out, ft)
	}
	return out, codeNone
}

// offsetFetch serves OffsetFetch, one group (v0-7) or many (v8+).
// RequireStable is applied by the server around it (ingest/kafka marks
// the partitions whose offsets a transaction has staged).
func (c *Coordinator) offsetFetch(ctx context.Context, req *kmsg.OffsetFetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version < 8 {
		topics := req.Topics
		if topics == nil && req.Version < 2 {
			topics = []kmsg.OffsetFetchRequestTopic{}
		}
		fts, code := c.fetchGroup(ctx, req.Group, topics)
		if req.Version >= 2 {
			resp.ErrorCode = code
		}
		for _, ft := range fts {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = ft.topic
			for _, fp := range ft.parts {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset = fp.partition, fp.offset
				md := fp.metadata
				rp.Metadata = &md
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		if code != codeNone && req.Version < 2 {
			// v0-1 carry errors per partition only.
			for _, t := range req.Topics {
				rt := kmsg.NewOffsetFetchResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewOffsetFetchResponseTopicPartition()
					rp.Partition, rp.Offset, rp.ErrorCode = p, -1, code
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
		}
		return resp
	}
	for _, rg := range req.Groups {
		g := kmsg.NewOffsetFetchResponseGroup()
		g.Group = rg.Group
		var topics []kmsg.OffsetFetchRequestTopic
		if rg.Topics != nil {
			topics = make([]kmsg.OffsetFetchRequestTopic, 0, len(rg.Topics))
			for _, t := range rg.Topics {
				topics = append(topics, kmsg.OffsetFetchRequestTopic{Topic: t.Topic, Partitions: t.Partitions})
			}
		}
		c.mu.Lock()
		code := c.consumerFetchCheckLocked(req.Version, rg.Group, rg.MemberID, rg.MemberEpoch)
		c.mu.Unlock()
		if code != codeNone {
			g.ErrorCode = code
			resp.Groups = append(resp.Groups, g)
			continue
		}
		fts, code := c.fetchGroup(ctx, rg.Group, topics)
		g.ErrorCode = code
		for _, ft := range fts {
			rt := kmsg.NewOffsetFetchResponseGroupTopic()
			rt.Topic = ft.topic
			for _, fp := range ft.parts {
				rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
				rp.Partition, rp.Offset = fp.partition, fp.offset
				md := fp.metadata
				rp.Metadata = &md
				rt.Partitions = append(rt.Partitions, rp)
			}
			g.Topics = append(g.Topics, rt)
		}
		resp.Groups = append(resp.Groups, g)
	}
	return resp
}

// subscribedTopicsLocked returns the topics g's members subscribe to (consumer
// protocol), and false when g has members of another protocol type.
func subscribedTopicsLocked(g *group) (map[string]bool, bool) {
	out := map[string]bool{}
	if g == nil || len(g.members) == 0 {
		return out, true
	}
	if g.protocolType != "consumer" {
		return nil, false
	}
	for _, m := range g.members {
		md := m.metadata(g.protocol)
		if md == nil && len(m.protocols) > 0 {
			md = m.protocols[0].Metadata
		}
		var cm kmsg.ConsumerMemberMetadata
		if err := cm.ReadFrom(md); err != nil {
			// Unparseable: treat as subscribed to everything.
			return nil, false
		}
		for _, t := range cm.Topics {
			out[t] = true
		}
	}
	return out, true
}

// offsetDelete serves OffsetDelete: committed offsets of topics no member
// subscribes to are removed.
func (c *Coordinator) offsetDelete(req *kmsg.OffsetDeleteRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	if req.Group == "" {
		resp.ErrorCode = codeInvalidGroupID
		return resp
	}
	c.mu.Lock()
	inMemory := c.groups[req.Group] != nil || c.cgroups[req.Group] != nil
	subscribed, ok := subscribedTopicsLocked(c.groups[req.Group])
	if cg := c.cgroups[req.Group]; cg != nil && ok {
		subs, _ := c.subscribedLocked(cg)
		for _, ts := range subs {
			for _, t := range ts {
				subscribed[t] = true
			}
		}
	}
	c.mu.Unlock()
	if !ok {
		resp.ErrorCode = codeNonEmptyGroup
		return resp
	}
	if !inMemory {
		offs, err := c.opts.Meta.GroupOffsets(req.Group)
		if err != nil {
			resp.ErrorCode = codeCoordinatorNotAvailable
			return resp
		}
		if len(offs) == 0 {
			resp.ErrorCode = codeGroupIDNotFound
			return resp
		}
	}
	var dead []meta.TopicPartition
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			if subscribed[t.Topic] {
				rp.ErrorCode = codeGroupSubscribedToTopic
			} else {
				dead = append(dead, meta.TopicPartition{Topic: t.Topic, Partition: p.Partition})
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(dead) > 0 {
		if err := c.opts.Meta.DeleteGroupOffsets(req.Group, dead); err != nil {
			c.logger.Error("group: cannot delete committed offsets", "group", req.Group, "err", err)
			resp.ErrorCode = codeCoordinatorNotAvailable
			resp.Topics = nil
		}
	}
	return resp
}
