package main

// Site replication with real `runnel serve` processes, each on its own
// loopback address (127.0.0.2, .3, ...), and real clients (franz-go, kcat).

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/replicate/member"
)

// siteNode is one box of a test site.
type siteNode struct {
	*runnelServer
	id     string
	ip     string
	gossip string
}

// freeAddrOn returns a free TCP port on ip (UDP is assumed free too).
func freeAddrOn(t testing.TB, ip string) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for i := 0; i < 100; i++ {
		l, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatalf("free port on %s: %v", ip, err)
		}
		addr := l.Addr().String()
		l.Close()
		u, err := net.ListenPacket("udp", addr)
		if err == nil {
			u.Close()
			if !handedOut.take(addr) {
				continue
			}
			return addr
		}
	}
	t.Fatalf("no free TCP+UDP port on %s", ip)
	return ""
}

// newSiteNode prepares (does not start) node id on 127.0.0.<host>.
func newSiteNode(t testing.TB, id string, host int, extra ...string) *siteNode {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	ip := fmt.Sprintf("127.0.0.%d", host)
	dir := t.TempDir()
	n := &siteNode{id: id, ip: ip, gossip: freeAddrOn(t, ip)}
	n.runnelServer = &runnelServer{
		bin: runnelBinary(t), dir: dir,
		kafka: freeAddrOn(t, ip), http: freeAddrOn(t, ip), mqtt: freeAddrOn(t, ip),
		logPath:      filepath.Join(dir, "server.log"),
		startTimeout: 30 * time.Second, stopTimeout: 15 * time.Second,
	}
	n.extra = append([]string{"--node-id", id, "--gossip-addr", n.gossip, "--replica-lag-time-max", "3s"}, extra...)
	t.Cleanup(func() { n.kill() })
	return n
}

// startSite starts n nodes, each joining the first.
func startSite(t testing.TB, n int, extra ...string) []*siteNode {
	t.Helper()
	return startSiteBin(t, "", n, extra...)
}

// startSiteBin is startSite with the `runnel serve` binary bin ("": this
// tree's).
func startSiteBin(t testing.TB, bin string, n int, extra ...string) []*siteNode {
	t.Helper()
	var nodes []*siteNode
	for i := 0; i < n; i++ {
		id := string(rune('a' + i))
		args := append([]string(nil), extra...)
		if i > 0 {
			args = append(args, "--join", nodes[0].gossip)
		}
		nd := newSiteNode(t, id, 2+i, args...)
		if bin != "" {
			nd.bin = bin
		}
		if err := nd.start(); err != nil {
			t.Fatalf("start node %s: %v\n%s", id, err, nd.LogTail())
		}
		nodes = append(nodes, nd)
	}
	for _, nd := range nodes {
		waitPeers(t, nd, n)
	}
	return nodes
}

// peersDoc is /api/peers.
type peersDoc struct {
	NodeID string `json:"node_id"`
	Peers  []struct {
		NodeID    string `json:"node_id"`
		State     string `json:"state"`
		KafkaAddr string `json:"kafka_addr"`
		Gossip    string `json:"gossip_addr"`
	} `json:"peers"`
	Partitions []struct {
		Topic     string   `json:"topic"`
		Partition int32    `json:"partition"`
		End       int64    `json:"end"`
		InSync    []string `json:"in_sync"`
		Mirrors   []struct {
			NodeID string `json:"node_id"`
			End    int64  `json:"end"`
		} `json:"mirrors"`
	} `json:"partitions"`
	Copies []struct {
		Origin    string `json:"origin"`
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		End       int64  `json:"end"`
		OriginEnd int64  `json:"origin_end"`
		Diverged  string `json:"diverged"`
	} `json:"copies"`
}

func getPeers(t testing.TB, n *siteNode) peersDoc {
	t.Helper()
	var doc peersDoc
	resp, err := http.Get("http://" + n.http + "/api/peers")
	if err != nil {
		return doc
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&doc)
	return doc
}

func alivePeers(doc peersDoc) int {
	n := 0
	for _, p := range doc.Peers {
		if p.State == "alive" {
			n++
		}
	}
	return n
}

// waitPeers waits until n sees want alive members (itself included).
func waitPeers(t testing.TB, n *siteNode, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if alivePeers(getPeers(t, n)) == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("node %s does not see %d alive members: %+v\n%s", n.id, want, getPeers(t, n), n.LogTail())
}

func siteClient(t testing.TB, n *siteNode, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(n.kafka)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func createTopic(t testing.TB, n *siteNode, topic string, partitions int32, rf int16, configs map[string]string) {
	t.Helper()
	cl := siteClient(t, n)
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
		t.Fatalf("create %s: %v %v", topic, err, resp.Topics[0].ErrorMessage)
	}
}

// rawFetch returns the stored batches of a partition from offset from up
// to the end, exactly as the server stores them.
func rawFetch(t testing.TB, addr, topic string, partition int32, from int64) (data []byte, hwm int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(2))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	off := from
	for {
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.SessionEpoch = 0, 0, 16<<20, -1
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = topic
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes, fp.LogStartOffset = partition, off, 4<<20, -1
		ft.Partitions = append(ft.Partitions, fp)
		req.Topics = append(req.Topics, ft)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := cl.SeedBrokers()[0].Request(ctx, req)
		cancel()
		if err != nil {
			t.Fatalf("fetch %s %s/%d@%d: %v", addr, topic, partition, off, err)
		}
		rp := resp.(*kmsg.FetchResponse).Topics[0].Partitions[0]
		if rp.ErrorCode != 0 {
			t.Fatalf("fetch %s %s/%d@%d: %v", addr, topic, partition, off, kerr.ErrorForCode(rp.ErrorCode))
		}
		hwm = rp.HighWatermark
		if len(rp.RecordBatches) == 0 {
			return data, hwm
		}
		data = append(data, rp.RecordBatches...)
		off = lastOffsetAfter(rp.RecordBatches)
		if off >= hwm {
			return data, hwm
		}
	}
}

// lastOffsetAfter returns the offset after the last batch of b.
func lastOffsetAfter(b []byte) int64 {
	var next int64
	for len(b) >= 61 {
		base := int64(be64(b[0:]))
		size := int(be32(b[8:])) + 12
		last := int32(be32(b[23:]))
		next = base + int64(last) + 1
		if size > len(b) {
			break
		}
		b = b[size:]
	}
	return next
}

func be64(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 | uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}
func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// checkCopies is the site checker: every copy any node lists is a
// byte-identical prefix of its origin's partition, and (when complete)
// every acknowledged offset is on it.
func checkCopies(t testing.TB, nodes []*siteNode, wantComplete bool) {
	t.Helper()
	byID := map[string]*siteNode{}
	for _, n := range nodes {
		byID[n.id] = n
	}
	for _, n := range nodes {
		if n.PID() == 0 {
			continue
		}
		for _, c := range getPeers(t, n).Copies {
			o := byID[c.Origin]
			if o == nil || o.PID() == 0 {
				continue
			}
			origTopic := strings.TrimPrefix(c.Topic, c.Origin+".")
			mine, myEnd := rawFetch(t, n.kafka, c.Topic, c.Partition, 0)
			theirs, theirEnd := rawFetch(t, o.kafka, origTopic, c.Partition, 0)
			if c.Diverged != "" {
				t.Errorf("%s's copy %s/%d diverged: %s", n.id, c.Topic, c.Partition, c.Diverged)
			}
			if !bytes.HasPrefix(theirs, mine) {
				t.Errorf("%s's copy %s/%d (%d bytes, end %d) is not a byte prefix of %s's %s/%d (%d bytes, end %d)",
					n.id, c.Topic, c.Partition, len(mine), myEnd, o.id, origTopic, c.Partition, len(theirs), theirEnd)
			}
			if wantComplete && myEnd != theirEnd {
				t.Errorf("%s's copy %s/%d ends at %d, the origin at %d", n.id, c.Topic, c.Partition, myEnd, theirEnd)
			}
		}
	}
}

// waitCaughtUp waits until every copy listed on every running node has
// its origin's end.
func waitCaughtUp(t testing.TB, nodes []*siteNode, copies int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		total, behind := 0, 0
		for _, n := range nodes {
			if n.PID() == 0 {
				continue
			}
			for _, c := range getPeers(t, n).Copies {
				total++
				if c.End < c.OriginEnd || c.OriginEnd == 0 {
					behind++
				}
			}
		}
		if total >= copies && behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("copies not caught up: %d listed (want %d), %d behind", total, copies, behind)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func produceN(t testing.TB, cl *kgo.Client, topic string, n int, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("%s-%d", prefix, i))}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %s: %v", topic, err)
	}
}

// Three boxes: each one's topic is mirrored by the peers the origin
// places it on (replication factor 2), byte for byte at the same offsets,
// readable under "<origin>.<topic>" with an unmodified client.
func TestSiteMirrorsByteIdentical(t *testing.T) {
	nodes := startSite(t, 3)
	for _, n := range nodes {
		createTopic(t, n, "t", 4, 2, nil)
	}
	for _, n := range nodes {
		produceN(t, siteClient(t, n), "t", 3000, n.id)
	}
	// 3 origins x 4 partitions, one copy each.
	waitCaughtUp(t, nodes, 12)
	checkCopies(t, nodes, true)

	// kcat reads a peer's data on a mirror at the origin's offsets.
	if _, err := exec.LookPath("kcat"); err == nil {
		for _, n := range nodes {
			for _, c := range getPeers(t, n).Copies {
				if c.End == 0 {
					continue
				}
				out := runTool(t, 30*time.Second, "", "kcat", "-b", n.kafka, "-C", "-t", c.Topic, "-p", fmt.Sprint(c.Partition), "-o", "-1", "-e", "-f", "%o %s\n")
				want := fmt.Sprintf("%d %s-", c.End-1, c.Origin)
				if !strings.HasPrefix(strings.TrimSpace(out), want) {
					t.Errorf("kcat on %s %s/%d: %q, want %q...", n.id, c.Topic, c.Partition, out, want)
				}
			}
		}
	}

	// Metadata names the origin first and lists the copies in sync.
	cl := siteClient(t, nodes[0])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	self := member.BrokerID("a")
	for _, tm := range md.Topics {
		for _, p := range tm.Partitions {
			if len(p.Replicas) != 2 || len(p.ISR) != 2 {
				t.Errorf("%s/%d: replicas %v isr %v, want 2 each", *tm.Topic, p.Partition, p.Replicas, p.ISR)
			}
			if *tm.Topic == "t" && p.Replicas[0] != self {
				t.Errorf("t/%d: replicas %v do not name a first", p.Partition, p.Replicas)
			}
			if strings.HasPrefix(*tm.Topic, "b.") && p.Replicas[0] != member.BrokerID("b") {
				t.Errorf("%s/%d: replicas %v do not name b first", *tm.Topic, p.Partition, p.Replicas)
			}
		}
	}
}

// A mirror is read-only: a produce to it is refused with
// NOT_LEADER_OR_FOLLOWER, and a local topic with a mirror's name cannot
// be created.
func TestSiteMirrorReadOnly(t *testing.T) {
	nodes := startSite(t, 2)
	a, b := nodes[0], nodes[1]
	createTopic(t, a, "t", 1, 2, nil)
	produceN(t, siteClient(t, a), "t", 10, "a")
	waitCaughtUp(t, nodes, 1)

	cl := siteClient(t, b)
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "a.t"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = mkRawBatch("x")
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("produce to mirror a.t on b: %v, want NOT_LEADER_OR_FOLLOWER", kerr.ErrorForCode(code))
	}
	// The mirror holds exactly the origin's 10 records.
	if _, hwm := rawFetch(t, b.kafka, "a.t", 0, 0); hwm != 10 {
		t.Fatalf("mirror end %d, want 10", hwm)
	}
	// A local topic named like a's mirror is refused on b.
	creq := kmsg.NewPtrCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "a.other", 1, -1
	creq.Topics = append(creq.Topics, ct)
	cresp, err := creq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := cresp.Topics[0].ErrorCode; code != kerr.InvalidTopicException.Code {
		t.Fatalf("create a.other on b: %v, want INVALID_TOPIC_EXCEPTION", kerr.ErrorForCode(code))
	}
}

func mkRawBatch(value string) []byte {
	var b batch.Builder
	b.Add(time.Now().UnixMilli(), nil, []byte(value), nil)
	return b.Bytes()
}

// A node without the site's gossip key cannot join; a node with no key
// refuses a non-loopback gossip address unless told --gossip-insecure.
func TestSiteGossipKey(t *testing.T) {
	dir := t.TempDir()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i * 7)
	}
	keyFile := filepath.Join(dir, "site.key")
	os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
	other := filepath.Join(dir, "other.key")
	key[0]++
	os.WriteFile(other, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)

	a := newSiteNode(t, "a", 2, "--gossip-key-file", keyFile)
	if err := a.start(); err != nil {
		t.Fatalf("start a: %v\n%s", err, a.LogTail())
	}
	b := newSiteNode(t, "b", 3, "--gossip-key-file", keyFile, "--join", a.gossip)
	if err := b.start(); err != nil {
		t.Fatalf("start b: %v\n%s", err, b.LogTail())
	}
	waitPeers(t, a, 2)
	for _, c := range []struct{ id, key string }{{"c", ""}, {"d", other}} {
		args := []string{"--join", a.gossip}
		if c.key != "" {
			args = append(args, "--gossip-key-file", c.key)
		}
		n := newSiteNode(t, c.id, 4, args...)
		if err := n.start(); err != nil {
			t.Fatalf("start %s: %v\n%s", c.id, err, n.LogTail())
		}
		time.Sleep(3 * time.Second)
		if got := alivePeers(getPeers(t, a)); got != 2 {
			t.Errorf("node %s (key %q) joined a's site: %d alive members", c.id, c.key, got)
		}
		if got := alivePeers(getPeers(t, n)); got != 1 {
			t.Errorf("node %s (key %q) sees %d alive members", c.id, c.key, got)
		}
		n.kill()
	}

	// No key on a non-loopback address: refused at start.
	out, err := exec.Command(runnelBinary(t), "serve", "--data-dir", filepath.Join(dir, "x"), "--kafka-addr", "127.0.0.9:0",
		"--mqtt-addr", "", "--http-addr", "", "--gossip-addr", "0.0.0.0:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--gossip-key-file") {
		t.Fatalf("no key on 0.0.0.0: err %v, output %s", err, out)
	}
}

// Two live boxes with one node id: the second is refused loudly. A box
// that comes back with its node id at a new address rejoins.
func TestSiteNodeIDClashAndMove(t *testing.T) {
	nodes := startSite(t, 2)
	a, b := nodes[0], nodes[1]
	dup := newSiteNode(t, "b", 4, "--join", a.gossip)
	err := dup.start()
	if err == nil {
		t.Fatalf("a second live box with node id b started\n%s", dup.LogTail())
	}
	if !strings.Contains(dup.LogTail(), "node id in use by another live box") {
		t.Fatalf("second box b: %v, log lacks the clash\n%s", err, dup.LogTail())
	}
	waitPeers(t, a, 2)

	// b dies and comes back on another address with its data.
	b.kill()
	moved := newSiteNode(t, "b", 5, "--join", a.gossip)
	moved.dir = b.dir
	moved.logPath = b.logPath
	if err := moved.start(); err != nil {
		t.Fatalf("b at a new address: %v\n%s", err, moved.LogTail())
	}
	deadline := time.Now().Add(45 * time.Second)
	for {
		doc := getPeers(t, a)
		ok := false
		for _, p := range doc.Peers {
			if p.NodeID == "b" && p.State == "alive" && strings.HasPrefix(p.Gossip, "127.0.0.5:") {
				ok = true
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a does not see b alive at 127.0.0.5: %+v\n%s", doc, a.LogTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
