package kafka

import (
	"context"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
)

// heldCluster is a site as replicate/ describes it to the server: the
// partitions of copy topics this node does not hold are led by the broker
// in elsewhere (topic/partition → broker id; -1: no alive box holds it).
type heldCluster struct {
	siteCluster
	elsewhere map[string]int32
	addrs     map[int32]string
}

func (c heldCluster) Leader(topic string, partition int32) (bool, int32, string) {
	id, ok := c.elsewhere[topic+"/"+strconv.Itoa(int(partition))]
	if !ok {
		return true, 0, ""
	}
	return false, id, c.addrs[id]
}

// copyTopic makes the copy topic name (of node "o") in l with the given
// values at offset 0 of each listed partition.
func copyTopic(t *testing.T, l log.Log, name string, partitions int32, values map[int32][]string) {
	t.Helper()
	if err := l.CreateTopic(name, log.TopicConfig{Partitions: partitions, Origin: "o"}); err != nil {
		t.Fatal(err)
	}
	for p, vs := range values {
		if err := l.AppendAt(context.Background(), name, p, (&batchBuilder{}).one(vs...)); err != nil {
			t.Fatal(err)
		}
	}
}

// A box holding partition 0 of a copy sends a client asking about copies
// only to the box holding partition 1; a client that names one of the
// box's own topics as well is never sent elsewhere (LEADER_NOT_AVAILABLE
// for partition 1), nor is one asking for all topics; a partition no
// alive box holds answers LEADER_NOT_AVAILABLE.
func TestMetadataCopyPartitionLedByHolder(t *testing.T) {
	lb := openLog(t, "")
	copyTopic(t, lb, "o.c", 2, map[int32][]string{0: {"a0", "a1"}, 1: {"b0", "b1", "b2"}})
	tb := startServer(t, lb, func(o *Options) { o.NodeID = 2 })

	la := openLog(t, "")
	copyTopic(t, la, "o.c", 2, map[int32][]string{0: {"a0", "a1"}}) // partition 1 not held
	copyTopic(t, la, "o.d", 1, nil)
	if err := la.CreateTopic("own", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	cluster := heldCluster{
		elsewhere: map[string]int32{"o.c/1": 2, "o.d/0": -1},
		addrs:     map[int32]string{2: tb.addr},
	}
	ta := startServer(t, la, func(o *Options) { o.NodeID = 1; o.Cluster = cluster })

	meta := func(topics ...string) *kmsg.MetadataResponse {
		t.Helper()
		cl := newClient(t, ta.addr)
		req := kmsg.NewPtrMetadataRequest()
		if topics != nil {
			req.Topics = []kmsg.MetadataRequestTopic{}
		}
		for _, name := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(name)
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(testCtx(t, 10*time.Second), cl.SeedBrokers()[0])
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	part := func(resp *kmsg.MetadataResponse, topic string, p int32) kmsg.MetadataResponseTopicPartition {
		t.Helper()
		for _, rt := range resp.Topics {
			if rt.Topic != nil && *rt.Topic == topic && int(p) < len(rt.Partitions) {
				return rt.Partitions[p]
			}
		}
		t.Fatalf("no %s/%d in %+v", topic, p, resp.Topics)
		return kmsg.MetadataResponseTopicPartition{}
	}
	brokers := func(resp *kmsg.MetadataResponse) []int32 {
		var ids []int32
		for _, b := range resp.Brokers {
			ids = append(ids, b.NodeID)
		}
		return ids
	}
	host, port, _ := net.SplitHostPort(tb.addr)

	resp := meta("o.c", "o.d")
	if p0, p1 := part(resp, "o.c", 0), part(resp, "o.c", 1); p0.Leader != 1 || p0.ErrorCode != 0 || p1.Leader != 2 || p1.ErrorCode != 0 {
		t.Errorf("copies only: o.c/0 leader %d (code %d), o.c/1 leader %d (code %d); want 1 and 2", p0.Leader, p0.ErrorCode, p1.Leader, p1.ErrorCode)
	}
	if d := part(resp, "o.d", 0); d.Leader != -1 || d.ErrorCode != codeLeaderNotAvailable {
		t.Errorf("copies only: o.d/0 (held nowhere) leader %d code %d, want -1 and LEADER_NOT_AVAILABLE", d.Leader, d.ErrorCode)
	}
	if i := slices.IndexFunc(resp.Brokers, func(b kmsg.MetadataResponseBroker) bool { return b.NodeID == 2 }); i < 0 || resp.Brokers[i].Host != host || strconv.Itoa(int(resp.Brokers[i].Port)) != port || len(resp.Brokers) != 2 {
		t.Errorf("copies only: brokers %+v, want 1 and 2 at %s", resp.Brokers, tb.addr)
	}
	for _, resp := range []*kmsg.MetadataResponse{meta("o.c", "own"), meta()} {
		if p1 := part(resp, "o.c", 1); p1.Leader != -1 || p1.ErrorCode != codeLeaderNotAvailable {
			t.Errorf("own topic or all topics: o.c/1 leader %d code %d, want -1 and LEADER_NOT_AVAILABLE", p1.Leader, p1.ErrorCode)
		}
		if p0 := part(resp, "o.c", 0); p0.Leader != 1 || p0.ErrorCode != 0 {
			t.Errorf("own topic or all topics: o.c/0 leader %d code %d, want 1", p0.Leader, p0.ErrorCode)
		}
		if ids := brokers(resp); !slices.Equal(ids, []int32{1}) {
			t.Errorf("own topic or all topics: brokers %v, want this box alone", ids)
		}
	}

	// An unmodified client seeded with this box reads both partitions.
	cl := newClient(t, ta.addr, kgo.ConsumeTopics("o.c"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx := testCtx(t, 20*time.Second)
	got := map[int32][]string{}
	for n := 0; n < 5 && ctx.Err() == nil; {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], string(r.Value))
			n++
		})
	}
	if !slices.Equal(got[0], []string{"a0", "a1"}) || !slices.Equal(got[1], []string{"b0", "b1", "b2"}) {
		t.Fatalf("client seeded with the box holding o.c/0 read %v", got)
	}
}
