package replicate_test

// Site scenarios of the in-sync set and the acknowledged end: a copy that
// stops fetching leaves the in-sync set after replica-lag-time-max and
// comes back once caught up; a paused box causes no failure handling
// beyond that window; consumers and the forwarder of a topic with
// min.insync.replicas=2 never see what fewer copies hold.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/replicate/member"
	"github.com/runnel/runnel/replicate/sitetest"
)

// inSync is n's in-sync node ids of topic/partition from /api/peers.
func inSync(n *sitetest.Node, topic string, partition int32) []string {
	doc, err := peers(n)
	if err != nil {
		return nil
	}
	for _, p := range doc.Partitions {
		if p.Topic == topic && p.Partition == partition {
			return p.InSync
		}
	}
	return nil
}

// metric returns the value of the first /metrics line that starts with
// prefix, "" when none does.
func metric(n *sitetest.Node, prefix string) string {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + n.HTTPAddr() + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			return strings.TrimSpace(l[len(prefix):])
		}
	}
	return ""
}

// A copy that stops fetching (its Kafka connections to the origin cut,
// gossip still flowing, so serf holds it alive) leaves the in-sync set
// after replica-lag-time-max (3 s here): Metadata, /api/peers and the
// metrics say so, and an acks=all produce waits for it until then, no
// longer. Healed, it catches up and rejoins.
func TestISRShrinksAfterLagTimeAndRejoins(t *testing.T) {
	t.Parallel()
	c := startPair(t)
	n1, n2 := c.Node(1), c.Node(2)
	createTopic(t, n1, "t", nil)
	waitInSync(t, n1, "t", 0, 2)
	acks := &sitetest.Acks{}
	produceAcked(t, n1, acks, "t", 20, "a")
	b1, b2 := member.BrokerID("n1"), member.BrokerID("n2")
	isrMetadata := func() []int32 {
		_, _, isr := metadataPartition(t, n1, "t", 0)
		slices.Sort(isr)
		return isr
	}
	both := []int32{min(b1, b2), max(b1, b2)}
	if got := isrMetadata(); !slices.Equal(got, both) {
		t.Fatalf("metadata ISR %v before the cut, want %v", got, both)
	}
	const inSyncMetric = `runnel_replication_in_sync_copies{partition="0",topic="t"} `
	if got := metric(n1, inSyncMetric); got != "2" {
		t.Fatalf("metric %s= %q, want 2", inSyncMetric, got)
	}

	c.CutPort(t, sitetest.KafkaPort, n1, n2)
	cut := time.Now()
	// An acks=all produce now waits for n2 until n2 leaves the in-sync
	// set, then is answered (min.insync.replicas=1).
	code, _ := produceRaw(t, n1, "t", -1, "during-cut")
	waited := time.Since(cut)
	if code != 0 {
		t.Fatalf("acks=all during the cut: %v", kerr.ErrorForCode(code))
	}
	if waited < time.Second {
		t.Errorf("acks=all answered %v after the cut: it did not wait for the in-sync copy", waited)
	}
	waitFor(t, 15*time.Second, func() bool { return slices.Equal(isrMetadata(), []int32{b1}) },
		func() string {
			return fmt.Sprintf("metadata ISR %v %v after the cut, want [%d]", isrMetadata(), time.Since(cut), b1)
		})
	if shrunk := time.Since(cut); shrunk < 2*time.Second {
		t.Errorf("n2 left the in-sync set %v after the cut, before replica-lag-time-max (3s)", shrunk)
	}
	if got := inSync(n1, "t", 0); !slices.Equal(got, []string{"n1"}) {
		t.Errorf("/api/peers in_sync %v during the cut, want [n1]", got)
	}
	if got := metric(n1, inSyncMetric); got != "1" {
		t.Errorf("metric %s= %q during the cut, want 1", inSyncMetric, got)
	}
	if doc, _ := peers(n1); doc.state("n2") != "alive" {
		t.Fatalf("n1 holds n2 %q: the cut reached gossip, the test proves nothing", doc.state("n2"))
	}
	// Both ends flag the stalled copy within twice its fetch timeout
	// (500 ms long poll + 5 s): the copy on n2, the mirror on n1.
	stalled := func() (copyStalled, mirrorStalled bool) {
		if d, err := peers(n2); err == nil {
			for _, cp := range d.Copies {
				copyStalled = copyStalled || cp.Topic == "n1.t" && cp.Stalled
			}
		}
		if d, err := peers(n1); err == nil {
			for _, p := range d.Partitions {
				for _, m := range p.Mirrors {
					mirrorStalled = mirrorStalled || p.Topic == "t" && m.NodeID == "n2" && m.Stalled
				}
			}
		}
		return
	}
	waitFor(t, 14*time.Second, func() bool { a, b := stalled(); return a && b },
		func() string { a, b := stalled(); return fmt.Sprintf("copy stalled %v, mirror stalled %v", a, b) })
	if d := time.Since(cut); d > 13*time.Second {
		t.Errorf("the stalled copy was flagged %v after the cut, want within twice its fetch timeout (11 s)", d)
	}
	const stalledMetric = `runnel_replication_mirror_stalled{partition="0",peer="n2",topic="t"} `
	if got := metric(n1, stalledMetric); got != "1" {
		t.Errorf("metric %s= %q, want 1", stalledMetric, got)
	}
	if got := metric(n2, `runnel_replication_copy_stalled{partition="0",peer="n1",topic="n1.t"} `); got != "1" {
		t.Errorf("copy stalled metric %q, want 1", got)
	}
	if got := metric(n1, `runnel_replication_mirror_lag_records{partition="0",peer="n2",topic="t"} `); got == "" || got == "0" {
		t.Errorf("mirror lag records metric %q, want the records n2 lacks", got)
	}
	// Answered at once now: nothing to wait for.
	for i := 0; i < 5; i++ {
		if code, _ := produceRaw(t, n1, "t", -1, fmt.Sprintf("shrunk-%d", i)); code != 0 {
			t.Fatalf("acks=all with n2 out of the in-sync set: %v", kerr.ErrorForCode(code))
		}
	}

	c.HealPort(t, sitetest.KafkaPort, n1, n2)
	waitFor(t, 30*time.Second, func() bool { return slices.Equal(isrMetadata(), both) },
		func() string { return fmt.Sprintf("metadata ISR %v after the heal, want %v", isrMetadata(), both) })
	waitInSync(t, n1, "t", 0, 2)
	produceAcked(t, n1, acks, "t", 20, "b")
	rep := c.CheckUntil(t, 20*time.Second, sitetest.Check{Acked: acks, Mirrors: mirrorOf(c)})
	if !rep.OK() {
		t.Fatal(rep)
	}
}

// For a topic with min.insync.replicas=2 the high-water mark consumers
// and the forwarder read up to is the acknowledged end: records that only
// the origin holds (acks=1 while the copy cannot fetch) are not served
// and not sent upstream until the copy holds them.
func TestAckedEndHidesWhatOneBoxHolds(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("site test: skipped with -short")
	}
	// The upstream: kfake on the test process's address in the site's
	// subnet (nodes reach it there).
	var upstream *kfake.Cluster
	c := sitetestStartWithUpstream(t, &upstream)
	n1, n2 := c.Node(1), c.Node(2)
	createTopic(t, n1, "safe", map[string]string{"min.insync.replicas": "2"})
	waitInSync(t, n1, "safe", 0, 2)
	for i := 0; i < 5; i++ {
		if code, _ := produceRaw(t, n1, "safe", -1, fmt.Sprintf("both-%d", i)); code != 0 {
			t.Fatalf("acks=all: %v", kerr.ErrorForCode(code))
		}
	}
	if _, hwm := offsets(t, n1, "safe", 0); hwm != 5 {
		t.Fatalf("n1's safe/0 high-water mark %d, want 5", hwm)
	}
	waitUpstream(t, upstream, "safe", 5)

	c.CutPort(t, sitetest.KafkaPort, n1, n2)
	for i := 0; i < 3; i++ {
		if code, _ := produceRaw(t, n1, "safe", 1, fmt.Sprintf("one-%d", i)); code != 0 {
			t.Fatalf("acks=1 while n2 cannot fetch: %v", kerr.ErrorForCode(code))
		}
	}
	// 4 s: past replica-lag-time-max, long enough for a consumer long
	// poll and the forwarder to have seen anything visible.
	time.Sleep(4 * time.Second)
	if n := upstreamCount(t, upstream, "safe"); n != 5 {
		t.Errorf("the upstream got %d records of safe, want 5: the forwarder sent what one box holds", n)
	}
	if _, hwm := offsets(t, n1, "safe", 0); hwm != 5 {
		t.Errorf("n1 shows high-water mark %d with offsets 5.. on one box only", hwm)
	}
	if got, hwm := fetchFrom(t, n1, "safe", 5); len(got) != 0 || hwm != 5 {
		t.Errorf("a consumer of n1 reads %v (high-water mark %d) past the acknowledged end 5", got, hwm)
	}
	if t.Failed() {
		t.FailNow()
	}

	c.HealPort(t, sitetest.KafkaPort, n1, n2)
	waitFor(t, 30*time.Second, func() bool { _, hwm := offsets(t, n1, "safe", 0); return hwm == 8 },
		func() string {
			_, hwm := offsets(t, n1, "safe", 0)
			return fmt.Sprintf("n1's high-water mark %d after the heal, want 8", hwm)
		})
	waitUpstream(t, upstream, "safe", 8)
}

// sitetestStartWithUpstream starts two keyed nodes that forward topic
// safe to a kfake cluster listening on the test process's site address.
func sitetestStartWithUpstream(t *testing.T, upstream **kfake.Cluster) *sitetest.Cluster {
	t.Helper()
	// The subnet is known once the network exists: the nodes start after
	// kfake.
	c := sitetest.Start(t, sitetest.Options{Nodes: 2, NoStart: true})
	hostIP := c.HostIP().String()
	listen := func(network, _ string) (net.Listener, error) {
		return net.Listen(network, net.JoinHostPort(hostIP, "0"))
	}
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1), kfake.ListenFn(listen))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(kc.Close)
	*upstream = kc
	key := siteKey(t)
	for _, n := range c.Nodes {
		n.Start(t, append(siteArgs(key, n, c.Nodes), "--upstream-kafka", kc.ListenAddrs()[0], "--forward", "safe")...)
	}
	for _, n := range c.Nodes {
		waitAlive(t, n, 2)
	}
	return c
}

// upstreamRecords reads every record of topic/0 from the upstream.
func upstreamRecords(t *testing.T, kc *kfake.Cluster, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		got := fs.Records()
		if len(got) == 0 {
			return recs
		}
		recs = append(recs, got...)
	}
}

func upstreamCount(t *testing.T, kc *kfake.Cluster, topic string) int {
	return len(upstreamRecords(t, kc, topic))
}

func waitUpstream(t *testing.T, kc *kfake.Cluster, topic string, want int) {
	t.Helper()
	var n int
	waitFor(t, 30*time.Second, func() bool { n = upstreamCount(t, kc, topic); return n >= want },
		func() string { return fmt.Sprintf("the upstream has %d records of %s, want %d", n, topic, want) })
	if n != want {
		t.Fatalf("the upstream has %d records of %s, want %d", n, topic, want)
	}
}

// fetchFrom is one consumer Fetch of topic/0 at offset: the records'
// offsets and the high-water mark.
func fetchFrom(t *testing.T, n *sitetest.Node, topic string, offset int64) ([]int64, int64) {
	t.Helper()
	cl := n.Client(t)
	defer cl.Close()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.SessionEpoch = -1, 500, 1, 1<<20, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.FetchOffset, fp.PartitionMaxBytes, fp.LogStartOffset = offset, 1<<20, -1
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		t.Fatalf("fetch %s@%d on %s: %v", topic, offset, n.Name, err)
	}
	bs, _, err := sitetest.ParseBatches(p.RecordBatches)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for _, b := range bs {
		for o := max(b.Base, offset); o <= b.Last; o++ {
			offs = append(offs, o)
		}
	}
	return offs, p.HighWatermark
}

// A copy holder that returns with the higher placement score takes its
// partition back only once it is in sync: until then the copy that stood
// in for it stays announced and in the in-sync set (Kafka adds a new
// replica before it removes the old one), so with min.insync.replicas=2
// no acks=all produce fails while the returning copy catches up.
func TestReturningMirrorTakesOverOnceInSync(t *testing.T) {
	t.Parallel()
	c := startSite(t, 3)
	n1 := c.Node(1)
	first, _ := standIn(t, c)
	// What the returning copy must catch up on: 16,000 records of about
	// 1 KB (franz-go compresses them with snappy, so far less is fetched).
	big := strings.Repeat("x", 1000)
	for i := range 16 {
		produceAckedTo(t, n1, &sitetest.Acks{}, "t", 0, 1000, fmt.Sprintf("%s%d", big, i))
	}

	// Sampled while the box starts: it may catch up before Start returns.
	cl := n1.Client(t, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite())
	defer cl.Close()
	produce := func() int16 {
		code, _, err := produceOne(cl, "t", -1, "returning")
		if err != nil {
			return -1
		}
		return code
	}
	var smallest, last []string
	var lastMirrors []string
	failed := map[string]int{}
	samples := 0
	done := make(chan bool)
	go func() {
		deadline := time.Now().Add(90 * time.Second)
		seenAlive := false
		for time.Now().Before(deadline) {
			doc, err := peers(n1)
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			seenAlive = seenAlive || doc.state(first.Name) == "alive"
			var isr, mirrors []string
			for _, p := range doc.Partitions {
				if p.Topic == "t" && p.Partition == 0 {
					isr = p.InSync
					for _, m := range p.Mirrors {
						mirrors = append(mirrors, m.NodeID)
					}
				}
			}
			last, lastMirrors = isr, mirrors
			if seenAlive {
				samples++
				if smallest == nil || len(isr) < len(smallest) {
					smallest = isr
				}
				if code := produce(); code != 0 {
					failed[kerr.ErrorForCode(code).Error()]++
				}
			}
			if slices.Equal(mirrors, []string{first.Name}) && slices.Contains(isr, first.Name) {
				done <- true
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		done <- false
	}()
	first.Restart(t)
	if !<-done {
		t.Fatalf("%s did not take t/0 back: placed on %v, in sync %v", first.Name, lastMirrors, last)
	}
	t.Logf("%d samples from %s alive to back in sync; smallest in-sync set %v", samples, first.Name, smallest)
	if len(smallest) < 2 {
		t.Errorf("the in-sync set shrank to %v while %s caught up", smallest, first.Name)
	}
	if len(failed) > 0 {
		t.Errorf("acks=all produces failed while %s caught up: %v", first.Name, failed)
	}
}

// A mirror that stands in for a returning one stays assigned across a
// restart of the origin: n1's copy of t/0 is placed on one box, which is
// killed, so the other box takes it; the first one comes back behind by
// about 12 MB, fetched at 4 Mbit/s (about 25 s), and while it catches up
// n1 is killed (-9) and started again. The stand-in must be back in n1's
// in-sync set before the returning box has caught up: n1 keeps the
// mirrors it assigned in meta.db (bucket replicate-assigned). Placement
// alone would assign the lagging box only, and with min.insync.replicas
// 2 every acks=all write would fail until it caught up.
func TestStandInSurvivesOriginRestart(t *testing.T) {
	t.Parallel()
	c := startSite(t, 3)
	n1 := c.Node(1)
	first, stand := standIn(t, c)
	// Uncompressed (franz-go compresses with snappy by default, and
	// these values would shrink to almost nothing).
	pcl := n1.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	big := strings.Repeat("x", 1000)
	for i := range 12 {
		recs := make([]*kgo.Record, 1000)
		for j := range recs {
			recs[j] = &kgo.Record{Topic: "t", Partition: 0, Value: fmt.Appendf(nil, "%s-%d-%d", big, i, j)}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		err := pcl.ProduceSync(ctx, recs...).FirstErr()
		cancel()
		if err != nil {
			t.Fatalf("produce the backlog: %v", err)
		}
	}
	pcl.Close()
	first.LimitRate(t, "4mbit")
	first.Restart(t)
	waitFor(t, 40*time.Second, func() bool {
		m, isr := mirrorNodes(t, n1, "t", 0), inSync(n1, "t", 0)
		return slices.Contains(m, first.Name) && slices.Contains(m, stand.Name) && slices.Contains(isr, stand.Name) && !slices.Contains(isr, first.Name)
	}, func() string {
		return fmt.Sprintf("n1 places t/0 on %v, in sync %v; want %s placed and %s standing in", mirrorNodes(t, n1, "t", 0), inSync(n1, "t", 0), first.Name, stand.Name)
	})
	time.Sleep(2 * time.Second) // the assignment is saved about once a second
	n1.Kill9(t)
	n1.Restart(t) // after Kill9: the start after a crash, same arguments
	var last []string
	for deadline := time.Now().Add(60 * time.Second); ; {
		isr := inSync(n1, "t", 0)
		if isr != nil {
			last = isr
		}
		if slices.Contains(isr, stand.Name) {
			if slices.Contains(isr, first.Name) {
				t.Logf("%s was in sync again at the same time as %s (in sync %v): too fast to tell", stand.Name, first.Name, isr)
			}
			break
		}
		if slices.Contains(isr, first.Name) {
			t.Fatalf("after n1's restart %s caught up before %s, which stood in for it, was in sync again (in sync %v, placed on %v)",
				first.Name, stand.Name, isr, mirrorNodes(t, n1, "t", 0))
		}
		if time.Now().After(deadline) {
			t.Fatalf("after n1's restart neither copy of t/0 is in sync: %v", last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// An acks=all write succeeds while the returning box catches up.
	cl := n1.Client(t, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite())
	if code, _, err := produceOne(cl, "t", -1, "after restart"); err != nil || code != 0 {
		t.Errorf("acks=all produce after n1's restart: code %d (%v), err %v; in sync %v", code, kerr.ErrorForCode(code), err, inSync(n1, "t", 0))
	}
	first.LimitRate(t, "")
}

// placedAndOther returns the box n1 placed its one copy of topic/0 on and
// the other box of a three-box site.
func placedAndOther(t *testing.T, c *sitetest.Cluster, topic string) (placed, other *sitetest.Node) {
	t.Helper()
	ids := mirrorNodes(t, c.Node(1), topic, 0)
	if len(ids) != 1 {
		t.Fatalf("n1's %s/0 has mirrors %v, want one", topic, ids)
	}
	for _, n := range c.Nodes[1:] {
		if n.Name == ids[0] {
			placed = n
		} else {
			other = n
		}
	}
	return placed, other
}

// standIn kills the box holding n1's copy of t/0 (min.insync.replicas 2)
// and waits until the other box holds it in sync: it returns both.
func standIn(t *testing.T, c *sitetest.Cluster) (first, stand *sitetest.Node) {
	t.Helper()
	n1 := c.Node(1)
	createTopic(t, n1, "t", map[string]string{"min.insync.replicas": "2"})
	waitInSync(t, n1, "t", 0, 2)
	first, stand = placedAndOther(t, c, "t")
	first.Kill9(t)
	waitFor(t, 40*time.Second, func() bool {
		ids := mirrorNodes(t, n1, "t", 0)
		return len(ids) == 1 && ids[0] == stand.Name && len(inSync(n1, "t", 0)) == 2
	}, func() string {
		return fmt.Sprintf("n1 places t/0 on %v, in sync %v; want %s in sync", mirrorNodes(t, n1, "t", 0), inSync(n1, "t", 0), stand.Name)
	})
	return first, stand
}
