package replicate_test

// Helpers of the site scenarios: starting a keyed site, /api/peers,
// topics, raw produces and reads, the copies to check.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/replicate/sitetest"
)

// startSite starts n nodes with one gossip key, each joining every other
// (joins are retried until one answers), a 3 s replica-lag-time-max, no
// MQTT listener unless extra names one.
func startSite(t *testing.T, n int, extra ...string) *sitetest.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("site test: skipped with -short")
	}
	key := siteKey(t)
	c := sitetest.Start(t, sitetest.Options{Nodes: n, Args: func(nd *sitetest.Node, all []*sitetest.Node) []string {
		return append(siteArgs(key, nd, all), extra...)
	}})
	for _, nd := range c.Nodes {
		waitAlive(t, nd, n)
	}
	// Nodes that start together may find a peer not listening yet at
	// their first restore attempt; until the retry is done they refuse
	// appends to their own partitions (NOT_LEADER_OR_FOLLOWER), which a
	// scenario that cuts a link right away would take for its own result.
	for _, nd := range c.Nodes {
		waitRestored(t, nd)
	}
	return c
}

// siteKey writes a gossip key file and returns its path.
func siteKey(t *testing.T) string {
	t.Helper()
	key := filepath.Join(t.TempDir(), "site.key")
	k := bytes.Repeat([]byte{7}, 32)
	if err := os.WriteFile(key, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return key
}

// siteArgs are startSite's arguments of node nd.
func siteArgs(key string, nd *sitetest.Node, all []*sitetest.Node) []string {
	args := []string{"--node-id", nd.Name, "--gossip-addr", nd.GossipAddr(), "--gossip-key-file", key,
		"--replica-lag-time-max", "3s", "--mqtt-addr", ""}
	for _, o := range all {
		if o != nd {
			args = append(args, "--join", o.GossipAddr())
		}
	}
	return args
}

// startPair starts two nodes that join each other, with a gossip key.
func startPair(t *testing.T, extra ...string) *sitetest.Cluster {
	t.Helper()
	return startSite(t, 2, extra...)
}

// mirrorOf names the other node's copy (two nodes, replication factor 2).
func mirrorOf(c *sitetest.Cluster) func(o sitetest.Copy) []sitetest.Copy {
	return func(o sitetest.Copy) []sitetest.Copy {
		other := c.Node(3 - o.Node.Index)
		return []sitetest.Copy{{Node: other, Topic: o.Node.Name + "." + o.Topic, Partition: o.Partition}}
	}
}

// mirrorsOn names the copies of an origin partition on the given nodes.
func mirrorsOn(nodes ...*sitetest.Node) func(o sitetest.Copy) []sitetest.Copy {
	return func(o sitetest.Copy) []sitetest.Copy {
		var cs []sitetest.Copy
		for _, n := range nodes {
			if n != o.Node {
				cs = append(cs, sitetest.Copy{Node: n, Topic: o.Node.Name + "." + o.Topic, Partition: o.Partition})
			}
		}
		return cs
	}
}

// peersDoc is /api/peers (replicate.Status).
type peersDoc struct {
	NodeID string `json:"node_id"`
	Peers  []struct {
		NodeID string `json:"node_id"`
		State  string `json:"state"`
	} `json:"peers"`
	Partitions []struct {
		Topic     string   `json:"topic"`
		Partition int32    `json:"partition"`
		End       int64    `json:"end"`
		Acked     int64    `json:"acked_end"`
		InSync    []string `json:"in_sync"`
		Mirrors   []struct {
			NodeID     string  `json:"node_id"`
			End        int64   `json:"end"`
			LagRecords int64   `json:"lag_records"`
			LagSeconds float64 `json:"lag_seconds"`
			InSync     bool    `json:"in_sync"`
			Stalled    bool    `json:"stalled"`
		} `json:"mirrors"`
	} `json:"partitions"`
	Copies []struct {
		Origin    string `json:"origin"`
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		End       int64  `json:"end"`
		OriginEnd int64  `json:"origin_end"`
		Stalled   bool   `json:"stalled"`
		Diverged  string `json:"diverged"`
	} `json:"copies"`
	Divergences     uint64 `json:"divergences"`
	Truncations     uint64 `json:"truncations"`
	KeptRecords     uint64 `json:"kept_records"`
	RestoredRecords uint64 `json:"restored_records"`
	Restoring       bool   `json:"restoring"`
}

func peers(n *sitetest.Node) (peersDoc, error) { return peersAs[peersDoc](n) }

// peersAs reads n's /api/peers into a T (each test reads the fields it
// checks).
func peersAs[T any](n *sitetest.Node) (T, error) {
	var doc T
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + n.HTTPAddr() + "/api/peers")
	if err != nil {
		return doc, err
	}
	defer resp.Body.Close()
	return doc, json.NewDecoder(resp.Body).Decode(&doc)
}

// state is the state n gives peer, "" when it lists none.
func (d peersDoc) state(peer string) string {
	for _, p := range d.Peers {
		if p.NodeID == peer {
			return p.State
		}
	}
	return ""
}

// waitFor polls cond every 100 ms until it holds or timeout passes; then
// the test fails with what() (called once, at the end).
func waitFor(t testing.TB, timeout time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitAlive waits until n sees want alive members, itself included.
func waitAlive(t testing.TB, n *sitetest.Node, want int) {
	t.Helper()
	waitAliveWithin(t, n, want, 40*time.Second)
}

// waitAliveWithin is waitAlive with a timeout.
func waitAliveWithin(t testing.TB, n *sitetest.Node, want int, timeout time.Duration) {
	t.Helper()
	var doc peersDoc
	waitFor(t, timeout, func() bool {
		var err error
		doc, err = peers(n)
		alive := 0
		for _, p := range doc.Peers {
			if p.State == "alive" {
				alive++
			}
		}
		return err == nil && alive == want
	}, func() string { return fmt.Sprintf("%s does not see %d alive members: %+v", n.Name, want, doc.Peers) })
}

// waitInSync waits until n's partition of topic has want in-sync copies.
func waitInSync(t testing.TB, n *sitetest.Node, topic string, partition int32, want int) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		if doc, err := peers(n); err == nil {
			for _, p := range doc.Partitions {
				if p.Topic == topic && p.Partition == partition && len(p.InSync) == want {
					return
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	doc, _ := peers(n)
	t.Fatalf("%s %s/%d: not %d in-sync copies: %+v\n%s", n.Name, topic, partition, want, doc, n.LogTail(3000))
}

// mirrorNodes are the node ids n announces as the mirrors of its
// partition (from /api/peers).
func mirrorNodes(t *testing.T, n *sitetest.Node, topic string, partition int32) []string {
	t.Helper()
	doc, err := peers(n)
	if err != nil {
		t.Fatalf("%s /api/peers: %v", n.Name, err)
	}
	for _, p := range doc.Partitions {
		if p.Topic == topic && p.Partition == partition {
			var ids []string
			for _, m := range p.Mirrors {
				ids = append(ids, m.NodeID)
			}
			return ids
		}
	}
	return nil
}

func createTopic(t *testing.T, n *sitetest.Node, topic string, configs map[string]string) {
	t.Helper()
	createTopicN(t, n, topic, 1, 2, configs)
}

func createTopicN(t *testing.T, n *sitetest.Node, topic string, partitions int32, rf int16, configs map[string]string) {
	t.Helper()
	cl := n.Client(t)
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, rf
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("create %s on %s: %v", topic, n.Name, err)
	}
}

// produceRaw sends one record with acks to n and returns the partition's
// error code and base offset (no client retries).
func produceRaw(t *testing.T, n *sitetest.Node, topic string, acks int16, value string) (int16, int64) {
	t.Helper()
	ack := kgo.AllISRAcks()
	if acks == 1 {
		ack = kgo.LeaderAck()
	}
	// franz-go sends raw produce requests with the client's acks.
	cl := n.Client(t, kgo.RequiredAcks(ack), kgo.DisableIdempotentWrite())
	defer cl.Close()
	code, base, err := produceOne(cl, topic, acks, value)
	if err != nil {
		t.Fatalf("produce %s acks=%d: %v", topic, acks, err)
	}
	return code, base
}

// produceOne sends one record with acks to topic/0 on cl's seed broker
// and returns the partition's error code and base offset.
func produceOne(cl *kgo.Client, topic string, acks int16, value string) (int16, int64, error) {
	var b batch.Builder
	b.Add(time.Now().UnixMilli(), nil, []byte(value), nil)
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = acks, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = b.Bytes()
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, -1, err
	}
	p := resp.Topics[0].Partitions[0]
	return p.ErrorCode, p.BaseOffset, nil
}

// produceAcked produces n records with acks=all to partition 0 of topic on
// node and adds each acknowledged one to acks.
func produceAcked(t *testing.T, node *sitetest.Node, acks *sitetest.Acks, topic string, n int, tag string) {
	t.Helper()
	cl := node.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%s-%s-%d", node.Name, tag, i)}
	}
	for _, r := range cl.ProduceSync(ctx, recs...) {
		if r.Err != nil {
			t.Fatalf("produce %s to %s: %v", topic, node.Name, r.Err)
		}
		acks.Add(node, r.Record)
	}
}

// readAt reads the record at offset of topic/0 from n.
func readAt(t *testing.T, n *sitetest.Node, topic string, offset int64) (string, error) {
	t.Helper()
	cl := n.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(offset)}}))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("nothing at %s@%d on %s: %v", topic, offset, n.Name, err)
		}
		for _, r := range fs.Records() {
			if r.Offset == offset {
				return string(r.Value), nil
			}
		}
	}
}

// metadataPartition returns what n's Metadata says of topic/partition:
// the error code, replicas and in-sync set.
func metadataPartition(t *testing.T, n *sitetest.Node, topic string, partition int32) (code int16, replicas, isr []int32) {
	t.Helper()
	cl := n.Client(t)
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("metadata %s on %s: %v", topic, n.Name, err)
	}
	for _, tm := range resp.Topics {
		if tm.Topic == nil || *tm.Topic != topic {
			continue
		}
		if tm.ErrorCode != 0 {
			return tm.ErrorCode, nil, nil
		}
		for _, p := range tm.Partitions {
			if p.Partition == partition {
				return p.ErrorCode, p.Replicas, p.ISR
			}
		}
	}
	return kerr.UnknownTopicOrPartition.Code, nil, nil
}

// offsets returns n's log start and high-water mark of topic/partition
// (ListOffsets, as a consumer sees them).
func offsets(t *testing.T, n *sitetest.Node, topic string, partition int32) (start, hwm int64) {
	t.Helper()
	start, hwm, err := offsetsErr(t, n, topic, partition)
	if err != nil {
		t.Fatal(err)
	}
	return start, hwm
}

// offsetsErr is offsets with the error returned.
func offsetsErr(t *testing.T, n *sitetest.Node, topic string, partition int32) (start, hwm int64, err error) {
	t.Helper()
	cl := n.Client(t)
	defer cl.Close()
	get := func(ts int64) (int64, error) {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = partition, ts
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return 0, fmt.Errorf("list offsets %s/%d on %s: %v", topic, partition, n.Name, err)
		}
		p := resp.Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
			return 0, fmt.Errorf("list offsets %s/%d on %s: %v", topic, partition, n.Name, err)
		}
		return p.Offset, nil
	}
	if start, err = get(-2); err != nil {
		return 0, 0, err
	}
	hwm, err = get(-1)
	return start, hwm, err
}

// logHas reports whether n's log holds s.
func logHas(n *sitetest.Node, s string) bool {
	b, err := os.ReadFile(n.LogPath)
	return err == nil && strings.Contains(string(b), s)
}
