package replicate_test

// Site scenarios with real `runnel serve` processes in network namespaces
// (replicate/sitetest) and franz-go clients.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/replicate/sitetest"
)

func TestMain(m *testing.M) { os.Exit(sitetest.Main(m)) }

// startPair starts two nodes that join each other, with a gossip key.
func startPair(t *testing.T, extra ...string) *sitetest.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("site test: skipped with -short")
	}
	key := filepath.Join(t.TempDir(), "site.key")
	k := bytes.Repeat([]byte{7}, 32)
	if err := os.WriteFile(key, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := sitetest.Start(t, sitetest.Options{Nodes: 2, Args: func(n *sitetest.Node, all []*sitetest.Node) []string {
		other := all[2-n.Index]
		return append([]string{"--node-id", n.Name, "--gossip-addr", n.GossipAddr(), "--gossip-key-file", key,
			"--join", other.GossipAddr(), "--replica-lag-time-max", "3s", "--mqtt-addr", ""}, extra...)
	}})
	return c
}

// mirrorOf names the other node's copy (two nodes, replication factor 2).
func mirrorOf(c *sitetest.Cluster) func(o sitetest.Copy) []sitetest.Copy {
	return func(o sitetest.Copy) []sitetest.Copy {
		other := c.Node(3 - o.Node.Index)
		return []sitetest.Copy{{Node: other, Topic: o.Node.Name + "." + o.Topic, Partition: o.Partition}}
	}
}

type peersDoc struct {
	Peers []struct {
		NodeID string `json:"node_id"`
		State  string `json:"state"`
	} `json:"peers"`
	Partitions []struct {
		Topic     string   `json:"topic"`
		Partition int32    `json:"partition"`
		InSync    []string `json:"in_sync"`
	} `json:"partitions"`
}

func peers(n *sitetest.Node) (peersDoc, error) {
	var doc peersDoc
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + n.HTTPAddr() + "/api/peers")
	if err != nil {
		return doc, err
	}
	defer resp.Body.Close()
	return doc, json.NewDecoder(resp.Body).Decode(&doc)
}

// waitInSync waits until n's partition of topic has want in-sync copies.
func waitInSync(t *testing.T, n *sitetest.Node, topic string, partition int32, want int) {
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

func createTopic(t *testing.T, n *sitetest.Node, topic string, configs map[string]string) {
	t.Helper()
	cl := n.Client(t)
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 1, 2
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
		t.Fatalf("produce %s acks=%d: %v", topic, acks, err)
	}
	p := resp.Topics[0].Partitions[0]
	return p.ErrorCode, p.BaseOffset
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

// An acks=all acknowledgement means the record is on the other box: the
// origin is killed (-9) right after each ack, and the record is read on
// the survivor at the same offset with the same bytes.
func TestAcksAllSurvivesOriginKill9(t *testing.T) {
	iters := 20
	if s := os.Getenv("RUNNEL_SOAK_ITERS"); s != "" {
		iters, _ = strconv.Atoi(s)
	}
	c := startPair(t)
	n1, n2 := c.Node(1), c.Node(2)
	createTopic(t, n1, "t", nil)
	acks := &sitetest.Acks{}
	for i := 0; i < iters; i++ {
		waitInSync(t, n1, "t", 0, 2)
		cl := n1.Client(t)
		value := fmt.Sprintf("ack-%d", i)
		rec := &kgo.Record{Topic: "t", Value: []byte(value)}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := cl.ProduceSync(ctx, rec).FirstErr() // franz-go: acks=all
		cancel()
		if err != nil {
			t.Fatalf("iteration %d: produce: %v", i, err)
		}
		n1.Kill9(t)
		cl.Close()
		acks.Add(n1, rec)
		got, err := readAt(t, n2, "n1.t", rec.Offset)
		if err != nil || got != value {
			t.Fatalf("iteration %d: %s at offset %d on n2: %q, %v (want %q)", i, "n1.t", rec.Offset, got, err, value)
		}
		n1.Restart(t)
	}
	rep := c.CheckUntil(t, 30*time.Second, sitetest.Check{Acked: acks, Mirrors: mirrorOf(c)})
	if !rep.OK() {
		t.Fatal(rep)
	}
}

// With min.insync.replicas=2, a box cut off from its peer answers acks=all
// with NOT_ENOUGH_REPLICAS (never a silent local ack) while acks=1 goes on
// working on both sides; healed, the copies converge.
func TestMinInsyncTwoCutOff(t *testing.T) {
	c := startPair(t)
	n1, n2 := c.Node(1), c.Node(2)
	createTopic(t, n1, "safe", map[string]string{"min.insync.replicas": "2"})
	createTopic(t, n2, "local", nil)
	waitInSync(t, n1, "safe", 0, 2)
	cl1, cl2 := n1, n2
	if code, _ := produceRaw(t, cl1, "safe", -1, "before"); code != 0 {
		t.Fatalf("acks=all with both boxes: %v", kerr.ErrorForCode(code))
	}

	c.Cut(t, n1, n2)
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _ := produceRaw(t, cl1, "safe", -1, "cut")
		if code == kerr.NotEnoughReplicas.Code {
			break
		}
		if code != 0 && code != kerr.RequestTimedOut.Code {
			t.Fatalf("acks=all while cut off: %v, want NOT_ENOUGH_REPLICAS", kerr.ErrorForCode(code))
		}
		if time.Now().After(deadline) {
			t.Fatalf("acks=all still answered %v 30 s after the cut", kerr.ErrorForCode(code))
		}
	}
	if code, _ := produceRaw(t, cl1, "safe", 1, "local-ack"); code != 0 {
		t.Fatalf("acks=1 on the cut-off box: %v", kerr.ErrorForCode(code))
	}
	if code, _ := produceRaw(t, cl2, "local", 1, "other side"); code != 0 {
		t.Fatalf("acks=1 on the other box: %v", kerr.ErrorForCode(code))
	}

	c.Heal(t, n1, n2)
	waitInSync(t, n1, "safe", 0, 2)
	if code, _ := produceRaw(t, cl1, "safe", -1, "after"); code != 0 {
		t.Fatalf("acks=all after heal: %v", kerr.ErrorForCode(code))
	}
	rep := c.CheckUntil(t, 30*time.Second, sitetest.Check{
		Origins: []sitetest.Copy{{Node: n1, Topic: "safe"}, {Node: n2, Topic: "local"}},
		Mirrors: mirrorOf(c),
	})
	if !rep.OK() {
		t.Fatal(rep)
	}
}
