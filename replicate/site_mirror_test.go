package replicate_test

// Site scenarios of the copies' life: a lost copy replaced, a topic
// deleted at its origin, the copies of a dead origin kept.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/replicate/sitetest"
)

// A copy whose box is lost for good is replaced: the origin places the
// partition on the next peer, which copies it from the origin's log start
// (retention already moved it past 0), joins the in-sync set, and holds
// every later acks=all record byte for byte.
func TestLostMirrorReplaced(t *testing.T) {
	t.Parallel()
	c := startSite(t, 3)
	n1 := c.Node(1)
	createTopicN(t, n1, "t", 1, 2, map[string]string{"segment.bytes": "1024", "retention.bytes": "1024"})
	waitInSync(t, n1, "t", 0, 2)
	old := &sitetest.Acks{}
	for i := 0; i < 40; i++ {
		produceAcked(t, n1, old, "t", 20, fmt.Sprintf("old%d", i))
	}
	lost, next := placedAndOther(t, c, "t")
	// Retention (checked every 30 s) moves the origin's log start.
	var start, end int64
	waitFor(t, 75*time.Second, func() bool {
		start, end = offsets(t, n1, "t", 0)
		return start > 0
	}, func() string { return fmt.Sprintf("n1's t/0 log start still %d (end %d)", start, end) })
	rep := c.CheckUntil(t, 20*time.Second, sitetest.Check{Origins: []sitetest.Copy{{Node: n1, Topic: "t"}}, Mirrors: mirrorsOn(lost)})
	if !rep.OK() {
		t.Fatalf("before the loss: %v", rep)
	}

	lost.Kill9(t)
	waitFor(t, 40*time.Second, func() bool {
		ids := mirrorNodes(t, n1, "t", 0)
		return len(ids) == 1 && ids[0] == next.Name
	}, func() string {
		return fmt.Sprintf("n1 still places t/0 on %v, want [%s]", mirrorNodes(t, n1, "t", 0), next.Name)
	})
	waitInSync(t, n1, "t", 0, 2)
	start, end = offsets(t, n1, "t", 0)
	var cs, ce int64
	waitFor(t, 20*time.Second, func() bool {
		cs, ce = offsets(t, next, "n1.t", 0)
		return ce >= end
	}, func() string {
		return fmt.Sprintf("%s's n1.t/0 is [%d,%d), the origin's [%d,%d)", next.Name, cs, ce, start, end)
	})
	if cs == 0 || cs > start {
		t.Errorf("%s's new copy starts at %d; the origin's log start was %d when it began", next.Name, cs, start)
	}
	if !logHas(next, "copy starts at the origin's log start") {
		t.Errorf("%s did not log where its copy starts", next.Name)
	}

	acks := &sitetest.Acks{}
	produceAcked(t, n1, acks, "t", 50, "new")
	rep = c.CheckUntil(t, 30*time.Second, sitetest.Check{Acked: acks, Mirrors: mirrorsOn(next)})
	if !rep.OK() {
		t.Fatal(rep)
	}
}

// A topic deleted at its origin is deleted on its mirrors; made again, it
// is copied afresh.
func TestTopicDeletedAtOriginDeletedOnMirror(t *testing.T) {
	t.Parallel()
	c := startPair(t)
	n1, n2 := c.Node(1), c.Node(2)
	createTopic(t, n1, "gone", nil)
	waitInSync(t, n1, "gone", 0, 2)
	first := &sitetest.Acks{}
	produceAcked(t, n1, first, "gone", 30, "first")
	rep := c.CheckUntil(t, 20*time.Second, sitetest.Check{Acked: first, Mirrors: mirrorOf(c)})
	if !rep.OK() {
		t.Fatal(rep)
	}

	deleteTopic(t, n1, "gone")
	listed := func() bool {
		doc, _ := peers(n2)
		for _, cp := range doc.Copies {
			if cp.Topic == "n1.gone" {
				return true
			}
		}
		return false
	}
	waitFor(t, 20*time.Second, func() bool {
		code, _, _ := metadataPartition(t, n2, "n1.gone", 0)
		return code == kerr.UnknownTopicOrPartition.Code && !listed() && logHas(n2, "copy deleted")
	}, func() string {
		code, _, _ := metadataPartition(t, n2, "n1.gone", 0)
		return fmt.Sprintf("n2's n1.gone: metadata %v, listed in /api/peers %v, deletion logged %v",
			kerr.ErrorForCode(code), listed(), logHas(n2, "copy deleted"))
	})

	createTopic(t, n1, "gone", nil)
	waitInSync(t, n1, "gone", 0, 2)
	second := &sitetest.Acks{}
	produceAcked(t, n1, second, "gone", 10, "second")
	rep = c.CheckUntil(t, 20*time.Second, sitetest.Check{Acked: second, Mirrors: mirrorOf(c)})
	if !rep.OK() {
		t.Fatal(rep)
	}
	if _, end := offsets(t, n2, "n1.gone", 0); end != 10 {
		t.Fatalf("n2's copy of the new topic ends at %d, want 10", end)
	}
}

func deleteTopic(t *testing.T, n *sitetest.Node, topic string) {
	t.Helper()
	cl := n.Client(t)
	defer cl.Close()
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TopicNames = []string{topic}
	rt := kmsg.NewDeleteTopicsRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10000
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("delete %s on %s: %v", topic, n.Name, err)
	}
}

// The copies of an origin that is down are never reaped: not while serf
// holds it failed, not after the copy's own box restarts meanwhile, not
// after a clean leave. They stay readable, and the origin, back, goes on
// where it was.
func TestDeadOriginCopiesKept(t *testing.T) {
	t.Parallel()
	c := startPair(t)
	n1, n2 := c.Node(1), c.Node(2)
	createTopic(t, n1, "t", nil)
	waitInSync(t, n1, "t", 0, 2)
	acks := &sitetest.Acks{}
	produceAcked(t, n1, acks, "t", 40, "a")
	check := func(what string) {
		t.Helper()
		rep := c.CheckUntil(t, 20*time.Second, sitetest.Check{Acked: acks, Mirrors: mirrorOf(c)})
		if !rep.OK() {
			t.Fatalf("%s: %v", what, rep)
		}
	}
	check("before")

	killed := time.Now()
	n1.Kill9(t)
	waitFor(t, 30*time.Second, func() bool {
		doc, err := peers(n2)
		return err == nil && doc.state("n1") == "failed"
	}, func() string { return "n2 does not hold n1 failed" })
	// The README's failure-detection figure (serf's LAN defaults).
	t.Logf("n2 held n1 failed %.1f s after its kill -9", time.Since(killed).Seconds())
	time.Sleep(6 * time.Second) // three metadata intervals
	check("n1 failed")

	n2.Restart(t)
	time.Sleep(6 * time.Second)
	check("n2 restarted while n1 is down")

	n1.Restart(t)
	waitInSync(t, n1, "t", 0, 2)
	produceAcked(t, n1, acks, "t", 10, "b")
	check("n1 back")

	// A clean stop leaves the site: still not a deletion.
	n1.Stop(t)
	waitFor(t, 30*time.Second, func() bool {
		doc, err := peers(n2)
		return err == nil && slices.Contains([]string{"left", ""}, doc.state("n1"))
	}, func() string { return "n2 does not hold n1 left" })
	time.Sleep(6 * time.Second)
	check("n1 left")
	if logHas(n2, "copy deleted") {
		t.Fatal("n2 deleted a copy of n1's")
	}
}

// A node holding copies of only some partitions of an origin topic
// answers a read of the others as Kafka's brokers answer for a partition
// they do not host, NOT_LEADER_OR_FOLLOWER (Fetch and ListOffsets), never
// as an empty partition that would pass for a caught-up copy; the
// partitions it holds read as the origin's.
func TestCopyPartitionNotHeldIsNotLeader(t *testing.T) {
	t.Parallel()
	c := startSite(t, 3)
	n1 := c.Node(1)
	const parts = 6
	createTopicN(t, n1, "t", parts, 2, nil)
	for p := range int32(parts) {
		waitInSync(t, n1, "t", p, 2)
	}
	acks := &sitetest.Acks{}
	produceAcked(t, n1, acks, "t", 5, "x") // partition 0
	held := map[string][]int32{}
	for p := range int32(parts) {
		for _, id := range mirrorNodes(t, n1, "t", p) {
			held[id] = append(held[id], p)
		}
	}
	checked := 0
	for _, n := range c.Nodes[1:] {
		for p := range int32(parts) {
			holds := slices.Contains(held[n.Name], p)
			var fcode, lcode int16
			waitFor(t, 20*time.Second, func() bool {
				fcode, lcode = fetchCode(t, n, "n1.t", p), listOffsetsCode(t, n, "n1.t", p)
				if holds {
					return fcode == 0 && lcode == 0
				}
				return fcode == kerr.NotLeaderForPartition.Code && lcode == kerr.NotLeaderForPartition.Code
			}, func() string {
				return fmt.Sprintf("%s (holds %v) n1.t/%d: Fetch %v, ListOffsets %v", n.Name, held[n.Name], p, kerr.ErrorForCode(fcode), kerr.ErrorForCode(lcode))
			})
			if !holds {
				checked++
			}
		}
	}
	if checked == 0 {
		t.Fatalf("every node holds every partition (%v): nothing checked", held)
	}
	// n2 and n3 have no partitions of their own: the fetchers of theirs
	// have nothing to fetch and read their Metadata every
	// MetadataInterval (2s), no more.
	for _, n := range c.Nodes[1:] {
		m0 := metadataRequests(t, n)
		time.Sleep(4 * time.Second)
		if d := metadataRequests(t, n) - m0; d > 40 {
			t.Errorf("%s answered %.0f Metadata requests in 4 s; its peers' fetchers, with nothing to copy, should ask about 2 a second each", n.Name, d)
		}
	}
	rep := c.CheckUntil(t, 20*time.Second, sitetest.Check{Acked: acks, Mirrors: func(o sitetest.Copy) []sitetest.Copy {
		var cs []sitetest.Copy
		for _, n := range c.Nodes[1:] {
			if slices.Contains(held[n.Name], o.Partition) {
				cs = append(cs, sitetest.Copy{Node: n, Topic: "n1." + o.Topic, Partition: o.Partition})
			}
		}
		return cs
	}})
	if !rep.OK() {
		t.Fatal(rep)
	}
}

// fetchCode is the error code of a consumer Fetch of topic/partition at
// offset 0 on n.
func fetchCode(t *testing.T, n *sitetest.Node, topic string, partition int32) int16 {
	t.Helper()
	cl := n.Client(t)
	defer cl.Close()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.SessionEpoch = -1, 0, 0, 1<<20, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.LogStartOffset, fp.PartitionMaxBytes = partition, 0, -1, 1<<20
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl.SeedBrokers()[0]) // n itself
	if err != nil {
		t.Fatalf("fetch %s/%d on %s: %v", topic, partition, n.Name, err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch %s/%d on %s: answer %+v", topic, partition, n.Name, resp)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// listOffsetsCode is the error code of a ListOffsets (latest) of
// topic/partition on n.
func listOffsetsCode(t *testing.T, n *sitetest.Node, topic string, partition int32) int16 {
	t.Helper()
	cl := n.Client(t)
	defer cl.Close()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = partition, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// n itself: the client would send it to the partition's leader,
	// another box for a copy partition n does not hold.
	resp, err := req.RequestWith(ctx, cl.SeedBrokers()[0])
	if err != nil {
		t.Fatalf("list offsets %s/%d on %s: %v", topic, partition, n.Name, err)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// metadataRequests is n's runnel_kafka_requests_total{api="Metadata"}.
func metadataRequests(t *testing.T, n *sitetest.Node) float64 {
	t.Helper()
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + n.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatalf("%s /metrics: %v", n.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, `runnel_kafka_requests_total{api="Metadata"} `); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s /metrics: %q: %v", n.Name, l, err)
			}
			return f
		}
	}
	return 0
}

// A copy that the origin's retention passed while its box was down is
// made again from the origin's log start, and only that partition's: the
// copies of the topic's other partitions stay as they are (they may be
// all the site holds of their records once the origin fails).
func TestRetentionPassedCopyRemadeAlone(t *testing.T) {
	t.Parallel()
	c := startPair(t)
	n1, n2 := c.Node(1), c.Node(2)
	createTopicN(t, n1, "t", 2, 2, map[string]string{"segment.bytes": "1024", "retention.bytes": "1024"})
	waitInSync(t, n1, "t", 0, 2)
	waitInSync(t, n1, "t", 1, 2)
	acks := &sitetest.Acks{}
	produceAckedTo(t, n1, acks, "t", 0, 20, "before")
	produceAckedTo(t, n1, acks, "t", 1, 5, "kept") // one segment, never rolled: retention keeps it
	rep := c.CheckUntil(t, 20*time.Second, sitetest.Check{Acked: acks, Mirrors: mirrorOf(c)})
	if !rep.OK() {
		t.Fatalf("before n2 went down: %v", rep)
	}
	_, copyEnd := offsets(t, n2, "n1.t", 0)

	n2.Kill9(t)
	for i := range 40 {
		produceAckedTo(t, n1, &sitetest.Acks{}, "t", 0, 20, fmt.Sprintf("away%d", i))
	}
	// Retention (checked every 30 s) moves the origin's log start past
	// the copy's end.
	var start, end int64
	waitFor(t, 75*time.Second, func() bool {
		start, end = offsets(t, n1, "t", 0)
		return start > copyEnd
	}, func() string { return fmt.Sprintf("n1's t/0 log start %d, the copy ends at %d", start, copyEnd) })

	n2.Restart(t)
	var cs, ce int64
	waitFor(t, 30*time.Second, func() bool {
		cs, ce = offsets(t, n2, "n1.t", 0)
		return ce >= end
	}, func() string {
		return fmt.Sprintf("n2's n1.t/0 is [%d,%d), the origin's [%d,%d)", cs, ce, start, end)
	})
	if cs <= copyEnd {
		t.Errorf("n2's copy of t/0 starts at %d, at or before its old end %d", cs, copyEnd)
	}
	if !logHas(n2, "copy emptied") {
		t.Error("n2 did not log that it emptied its copy of t/0")
	}
	if logHas(n2, "copy deleted") {
		t.Error("n2 deleted its copy of the whole topic, t/1 with it")
	}
	if s, e := offsets(t, n2, "n1.t", 1); s != 0 || e != 5 {
		t.Errorf("n2's n1.t/1 is [%d,%d), want [0,5)", s, e)
	}
	now := &sitetest.Acks{}
	produceAckedTo(t, n1, now, "t", 0, 10, "after")
	produceAckedTo(t, n1, now, "t", 1, 10, "after")
	rep = c.CheckUntil(t, 30*time.Second, sitetest.Check{Acked: now, Mirrors: mirrorOf(c)})
	if !rep.OK() {
		t.Fatal(rep)
	}
}
