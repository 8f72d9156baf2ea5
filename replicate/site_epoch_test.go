package replicate_test

// Site scenarios of divergence and restore: an origin under fsync never
// that loses an unsynced tail to a power cut, a box back with a wiped
// data dir, with and without its node id.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/replicate"
	"github.com/runnel/runnel/replicate/sitetest"
)

// loseTail is what a power cut does to a partition under fsync never
// once its process is gone: the newest segment file of topic/partition
// keeps only keep (0..1) of its bytes (recovery drops the torn batch).
// It returns the bytes cut.
func loseTail(t *testing.T, n *sitetest.Node, topic string, partition int32, keep float64) int64 {
	t.Helper()
	if n.Running() {
		t.Fatalf("%s is running", n.Name)
	}
	dir := filepath.Join(n.DataDir, topic, strconv.Itoa(int(partition)))
	segs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segment of %s/%d in %s: %v", topic, partition, dir, err)
	}
	sort.Strings(segs)
	last := segs[len(segs)-1]
	st, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(float64(st.Size()) * keep)
	if err := os.Truncate(last, size); err != nil {
		t.Fatal(err)
	}
	return st.Size() - size
}

// loadUntil produces acks=all batches of 10 records to topic/0 on n until
// stop, adding the acknowledged ones to acks; it returns when stop is
// closed or a produce fails (the origin died).
func loadUntil(t *testing.T, n *sitetest.Node, acks *sitetest.Acks, topic string, stop <-chan struct{}) *sync.WaitGroup {
	t.Helper()
	cl := n.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DisableIdempotentWrite(), kgo.RecordRetries(1), kgo.RecordDeliveryTimeout(5*time.Second), kgo.RequestTimeoutOverhead(2*time.Second))
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < 10000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			recs := make([]*kgo.Record, 10)
			for k := range recs {
				recs[k] = &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%s-load-%d-%d", n.Name, i, k)}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			res := cl.ProduceSync(ctx, recs...)
			cancel()
			for _, r := range res {
				if r.Err == nil {
					acks.Add(n, r.Record)
				}
			}
			if res.FirstErr() != nil {
				return
			}
		}
	})
	return &wg
}

// waitRestored waits until n's start-time taking back from the copies is
// done.
func waitRestored(t *testing.T, n *sitetest.Node) peersDoc {
	t.Helper()
	var doc peersDoc
	waitFor(t, 40*time.Second, func() bool {
		var err error
		doc, err = peers(n)
		return err == nil && doc.NodeID != "" && !doc.Restoring
	}, func() string { return fmt.Sprintf("%s still restoring: %+v", n.Name, doc) })
	return doc
}

// An origin under fsync never is killed under acks=all load and loses the
// tail it had not synced (a power cut): restarted, it takes the tail back
// from its copy before it accepts a write, so every acknowledged record
// is back at its offset, nothing diverges, and offsets continue.
func TestFsyncNeverLostTailTakenBack(t *testing.T) {
	t.Parallel()
	c := startPair(t, "--fsync", "never")
	n1, n2 := c.Node(1), c.Node(2)
	createTopic(t, n1, "t", nil)
	waitInSync(t, n1, "t", 0, 2)
	acks := &sitetest.Acks{}
	stop := make(chan struct{})
	wg := loadUntil(t, n1, acks, "t", stop)
	time.Sleep(3 * time.Second)
	n1.Kill9(t)
	close(stop)
	wg.Wait()
	if acks.Len() < 100 {
		t.Fatalf("only %d records acknowledged before the kill", acks.Len())
	}
	// Everything acknowledged is on n2 (acks=all): the checker waits
	// for n2 alone while n1 is down.
	rep := c.CheckUntil(t, 20*time.Second, sitetest.Check{Acked: acks, Mirrors: mirrorOf(c)})
	if !rep.OK() {
		t.Fatalf("before the restart: %v", rep)
	}
	cut := loseTail(t, n1, "t", 0, 0.5)
	t.Logf("%d records acknowledged; %d bytes of n1's t/0 lost", acks.Len(), cut)

	n1.Restart(t)
	doc := waitRestored(t, n1)
	if doc.RestoredRecords == 0 || !logHas(n1, "took back from the site's copies") {
		t.Fatalf("n1 took nothing back (restored %d)", doc.RestoredRecords)
	}
	_, end := offsets(t, n1, "t", 0)
	waitInSync(t, n1, "t", 0, 2)
	more := &sitetest.Acks{}
	produceAcked(t, n1, more, "t", 20, "after")
	if first := firstOffset(more); first != end {
		t.Errorf("first offset after the restart %d, want %d (where the log ended)", first, end)
	}
	rep = c.CheckUntil(t, 30*time.Second, sitetest.Check{Acked: acks, Mirrors: mirrorOf(c)})
	if !rep.OK() {
		t.Fatal(rep)
	}
	rep = c.CheckUntil(t, 30*time.Second, sitetest.Check{Acked: more, Mirrors: mirrorOf(c)})
	if !rep.OK() {
		t.Fatal(rep)
	}
	if d, _ := peers(n2); d.Truncations != 0 || d.Divergences != 0 {
		t.Fatalf("n2: %d truncations, %d divergences: the tail should have been taken back", d.Truncations, d.Divergences)
	}
}

// The same power cut with the copy's box unreachable while the origin
// restarts: the origin starts after restore-timeout and writes on; back in
// touch, the copy compares epochs, cuts back what the origin lost, says so
// (one log line, a counter), and converges byte for byte: no offset holds
// two records anywhere.
func TestFsyncNeverLostTailCopyCutBack(t *testing.T) {
	t.Parallel()
	c := startPair(t, "--fsync", "never", "--restore-timeout", "3s")
	n1, n2 := c.Node(1), c.Node(2)
	createTopic(t, n1, "t", nil)
	waitInSync(t, n1, "t", 0, 2)
	acks := &sitetest.Acks{}
	stop := make(chan struct{})
	wg := loadUntil(t, n1, acks, "t", stop)
	time.Sleep(3 * time.Second)
	n1.Kill9(t)
	close(stop)
	wg.Wait()
	rep := c.CheckUntil(t, 20*time.Second, sitetest.Check{Acked: acks, Mirrors: mirrorOf(c)})
	if !rep.OK() {
		t.Fatalf("before the restart: %v", rep)
	}
	loseTail(t, n1, "t", 0, 0.5)
	_, copyEnd := offsets(t, n2, "n1.t", 0)

	c.Cut(t, n1, n2)
	n1.Restart(t)
	waitRestored(t, n1)
	_, end := offsets(t, n1, "t", 0)
	if end >= copyEnd {
		t.Fatalf("n1 ends at %d, its copy at %d: no tail was lost", end, copyEnd)
	}
	// The origin writes on past the copy's end: only the epochs tell the
	// copy that its tail is not the origin's.
	after := &sitetest.Acks{}
	written := int(copyEnd-end) + 30
	produceAcked(t, n1, after, "t", written, "after")

	c.Heal(t, n1, n2)
	waitFor(t, 40*time.Second, func() bool {
		d, err := peers(n2)
		return err == nil && d.Truncations >= 1
	}, func() string { d, _ := peers(n2); return fmt.Sprintf("n2 did not cut its copy back: %+v", d) })
	if !logHas(n2, "copy cut back to its origin's history") {
		t.Error("n2 cut its copy back without the log line")
	}
	if got := metric(n2, "runnel_replication_truncations_total "); got != "1" {
		t.Errorf("runnel_replication_truncations_total %q, want 1", got)
	}
	// What the cut took is kept on n2, every acknowledged record of the
	// lost tail with it.
	lost := map[[32]byte]bool{}
	for _, r := range acks.Of(sitetest.Copy{Node: n1, Topic: "t", Partition: 0}) {
		if r.Offset >= end {
			lost[r.Value] = true
		}
	}
	if len(lost) == 0 {
		t.Fatalf("no acknowledged record was in the lost tail [%d,%d)", end, copyEnd)
	}
	keptStart, keptEnd := offsets(t, n2, replicate.DivergedPrefix+"n1.t", 0)
	if keptEnd-keptStart != copyEnd-end {
		t.Errorf("n2 kept %d records, the cut took %d", keptEnd-keptStart, copyEnd-end)
	}
	kept := readValues(t, n2, replicate.DivergedPrefix+"n1.t", 0, keptEnd)
	missing := 0
	for v := range lost {
		if !kept[v] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of the %d acknowledged records the cut took are not kept", missing, len(lost))
	}
	if got := metric(n2, "runnel_replication_kept_records_total "); got != fmt.Sprint(copyEnd-end) {
		t.Errorf("runnel_replication_kept_records_total %q, want %d", got, copyEnd-end)
	}
	rep = c.CheckUntil(t, 30*time.Second, sitetest.Check{Acked: after, Mirrors: mirrorOf(c)})
	if !rep.OK() {
		t.Fatal(rep)
	}
	if _, e := offsets(t, n2, "n1.t", 0); e != end+int64(written) {
		t.Fatalf("n2's copy ends at %d, want %d", e, end+int64(written))
	}
}

// readValues reads topic/partition of n from its start to end and returns
// the records' values as sitetest.Acked holds them.
func readValues(t *testing.T, n *sitetest.Node, topic string, partition int32, end int64) map[[32]byte]bool {
	t.Helper()
	cl := n.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().AtStart()}}))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[[32]byte]bool{}
	next := int64(-1)
	for next < end-1 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s/%d on %s: up to %d of %d", topic, partition, n.Name, next, end)
		}
		for _, r := range fs.Records() {
			out[sitetest.AckedValue(r.Offset, r.Value).Value] = true
			next = r.Offset
		}
	}
	return out
}

func firstOffset(a *sitetest.Acks) int64 {
	first := int64(-1)
	for _, o := range a.Origins() {
		for _, r := range a.Of(o) {
			if first < 0 || r.Offset < first {
				first = r.Offset
			}
		}
	}
	return first
}

// A box back with an empty data dir and the same node id whose copy
// holder cannot be reached while it starts (restore-timeout passes) writes
// its new records from offset 0 again, below where the copy starts (its
// retention moved it). Back in touch, the copy differs from its origin
// from its first offset on: before it is made again from the origin's new
// history, everything it held, every acknowledged record still there, is
// kept on its box in the diverged topic.
func TestWipedRestoreMissedCopyKept(t *testing.T) {
	t.Parallel()
	wipedRestoreMissedCopy(t, func(t *testing.T, n1 *sitetest.Node, copyStart int64) int64 {
		produceAckedTo(t, n1, &sitetest.Acks{}, "t", 0, 10, "after") // min.insync.replicas 1 now: n2 is cut off
		return 10
	})
}

// The same, with the origin's new history reaching past the copy's start
// in batches that do not line up with the copy's: the origin's batch
// holding the copy's first offset begins below it. The copy is cut from
// that batch's start (so from its first offset), and as an emptied copy
// cannot start below its log start, it is made again from 0; it must not
// stop as diverged.
func TestWipedRestoreMissedCopyMisaligned(t *testing.T) {
	t.Parallel()
	wipedRestoreMissedCopy(t, func(t *testing.T, n1 *sitetest.Node, copyStart int64) int64 {
		size := int64(7)
		for copyStart%size == 0 {
			size += 2
		}
		var end int64
		for i := 0; end < copyStart+2*size; i++ {
			produceAckedTo(t, n1, &sitetest.Acks{}, "t", 0, int(size), fmt.Sprintf("after%d", i))
			end += size
		}
		return end
	})
}

// wipedRestoreMissedCopy: n1's t/0 has a copy on n2 whose log start
// retention moved; n1 comes back wiped while cut off from n2 and writes a
// new history (newHistory, which returns its end); healed, n2 keeps what
// its copy held and makes the copy again from n1's new history.
func wipedRestoreMissedCopy(t *testing.T, newHistory func(t *testing.T, n1 *sitetest.Node, copyStart int64) int64) {
	c := startPair(t, "--restore-timeout", "3s")
	n1, n2 := c.Node(1), c.Node(2)
	createTopic(t, n1, "t", map[string]string{"min.insync.replicas": "2", "segment.bytes": "1024", "retention.bytes": "1024"})
	waitInSync(t, n1, "t", 0, 2)
	acks := &sitetest.Acks{}
	for i := range 20 {
		produceAcked(t, n1, acks, "t", 20, fmt.Sprintf("before%d", i))
	}
	// Retention (checked every 30 s) moves the copy's log start.
	var copyStart, copyEnd int64
	waitFor(t, 75*time.Second, func() bool {
		copyStart, copyEnd = offsets(t, n2, "n1.t", 0)
		return copyStart > 10
	}, func() string {
		return fmt.Sprintf("n2's n1.t/0 is [%d,%d): retention did not move its start", copyStart, copyEnd)
	})
	copyStart, copyEnd = offsets(t, n2, "n1.t", 0)
	if _, end := offsets(t, n1, "t", 0); end != copyEnd {
		t.Fatalf("n2's copy ends at %d, n1 at %d", copyEnd, end)
	}

	c.Cut(t, n1, n2)
	n1.RestartWiped(t)
	waitRestored(t, n1)
	createTopic(t, n1, "t", nil)
	newEnd := newHistory(t, n1, copyStart)
	if _, end := offsets(t, n1, "t", 0); end != newEnd {
		t.Fatalf("n1's new t/0 ends at %d, want %d (written from 0 again)", end, newEnd)
	}

	c.Heal(t, n1, n2)
	name := replicate.DivergedPrefix + "n1.t"
	waitFor(t, 60*time.Second, func() bool {
		d, err := peers(n2)
		return err == nil && d.KeptRecords >= uint64(copyEnd-copyStart)
	}, func() string {
		d, _ := peers(n2)
		return fmt.Sprintf("n2 kept %d of its copy's %d records", d.KeptRecords, copyEnd-copyStart)
	})
	kept := readValues(t, n2, name, 0, copyEnd-copyStart)
	missing, held := 0, 0
	for _, r := range acks.Of(sitetest.Copy{Node: n1, Topic: "t", Partition: 0}) {
		if r.Offset < copyStart {
			continue
		}
		held++
		if !kept[r.Value] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of the %d acknowledged records the copy held are not kept on n2", missing, held)
	}
	// The copy is made again from the origin's new history.
	waitFor(t, 30*time.Second, func() bool {
		s, e, err := offsetsErr(t, n2, "n1.t", 0) // gone while it is made again
		return err == nil && s == 0 && e == newEnd
	}, func() string {
		s, e, err := offsetsErr(t, n2, "n1.t", 0)
		return fmt.Sprintf("n2's n1.t/0 is [%d,%d) (%v), want [0,%d)", s, e, err, newEnd)
	})
	if d, _ := peers(n2); d.Divergences != 0 {
		t.Errorf("n2: %d divergences", d.Divergences)
	}
}

// A box back with an empty data dir and the same node id (a replaced SD
// card) restores its partitions from its copy before it accepts a write:
// every record acknowledged with acks=all is back at its offset, the
// topic's settings too, offsets continue, and its new batches carry an
// epoch above every epoch the copy held.
func TestWipedSameNodeIDRestored(t *testing.T) {
	t.Parallel()
	c := startPair(t)
	n1, n2 := c.Node(1), c.Node(2)
	createTopic(t, n1, "t", map[string]string{"min.insync.replicas": "2", "retention.ms": "86400000"})
	waitInSync(t, n1, "t", 0, 2)
	acks := &sitetest.Acks{}
	for i := 0; i < 5; i++ {
		produceAcked(t, n1, acks, "t", 40, fmt.Sprintf("before%d", i))
	}
	// An earlier incarnation's epoch in the data: a crash and restart.
	n1.Kill9(t)
	n1.Restart(t)
	waitInSync(t, n1, "t", 0, 2)
	produceAcked(t, n1, acks, "t", 40, "second")
	oldMax := maxEpoch(t, n1, "t")
	_, end := offsets(t, n1, "t", 0)
	rep := c.CheckUntil(t, 20*time.Second, sitetest.Check{Acked: acks, Mirrors: mirrorOf(c)})
	if !rep.OK() {
		t.Fatal(rep)
	}

	n1.RestartWiped(t)
	doc := waitRestored(t, n1)
	if doc.RestoredRecords != uint64(end) {
		t.Errorf("n1 took back %d records, want %d", doc.RestoredRecords, end)
	}
	if start, e := offsets(t, n1, "t", 0); start != 0 || e != end {
		t.Fatalf("n1's t/0 is [%d,%d) after the restore, want [0,%d)", start, e, end)
	}
	if v := topicConfig(t, n1, "t", "min.insync.replicas"); v != "2" {
		t.Errorf("restored topic's min.insync.replicas %q, want 2", v)
	}
	if v := topicConfig(t, n1, "t", "retention.ms"); v != "86400000" {
		t.Errorf("restored topic's retention.ms %q, want 86400000", v)
	}
	rep = c.CheckUntil(t, 20*time.Second, sitetest.Check{Acked: acks, Mirrors: mirrorOf(c)})
	if !rep.OK() {
		t.Fatalf("after the restore: %v", rep)
	}
	waitInSync(t, n1, "t", 0, 2)
	more := &sitetest.Acks{}
	produceAcked(t, n1, more, "t", 20, "after")
	if first := firstOffset(more); first != end {
		t.Errorf("first offset after the restore %d, want %d", first, end)
	}
	if e := maxEpoch(t, n1, "t"); e <= oldMax {
		t.Errorf("new batches carry epoch %d, not above the earlier incarnations' %d", e, oldMax)
	}
	rep = c.CheckUntil(t, 20*time.Second, sitetest.Check{Acked: more, Mirrors: mirrorOf(c)})
	if !rep.OK() {
		t.Fatal(rep)
	}
	if d, _ := peers(n2); d.Truncations != 0 || d.Divergences != 0 || d.KeptRecords != 0 {
		t.Fatalf("n2: %d truncations, %d divergences, %d records kept", d.Truncations, d.Divergences, d.KeptRecords)
	}
	// The copy, made under the origin's old data dir, was compared by
	// content with the restored partition and found to agree.
	waitFor(t, 20*time.Second, func() bool { return logHas(n2, "copy agrees with its origin's new data dir") },
		func() string { return "n2 did not log that its copy agrees with n1's new data dir" })
}

// A box with a generated node id (no --node-id) that comes back wiped is
// a new node: its old partitions stay readable on its peer under the old
// node's name, with every acknowledged record, and are never reaped.
func TestWipedWithoutNodeIDIsNewNode(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("site test: skipped with -short")
	}
	c := sitetest.Start(t, sitetest.Options{Nodes: 2, NoStart: true})
	n1, n2 := c.Node(1), c.Node(2)
	key := siteKey(t)
	anonymous := func(args []string) []string { // siteArgs without --node-id
		return append([]string(nil), args[2:]...)
	}
	n1.Start(t, anonymous(siteArgs(key, n1, c.Nodes))...)
	n2.Start(t, siteArgs(key, n2, c.Nodes)...)
	waitAlive(t, n1, 2)
	waitAlive(t, n2, 2)
	doc, err := peers(n1)
	if err != nil || !strings.HasPrefix(doc.NodeID, "runnel-") {
		t.Fatalf("n1's generated node id: %q, %v", doc.NodeID, err)
	}
	old := doc.NodeID
	createTopic(t, n1, "t", nil)
	waitInSync(t, n1, "t", 0, 2)
	acks := &sitetest.Acks{}
	produceAcked(t, n1, acks, "t", 50, "old")
	rep := c.CheckUntil(t, 20*time.Second, sitetest.Check{Acked: acks, Mirrors: func(o sitetest.Copy) []sitetest.Copy {
		return []sitetest.Copy{{Node: n2, Topic: old + ".t", Partition: o.Partition}}
	}})
	if !rep.OK() {
		t.Fatal(rep)
	}

	n1.RestartWiped(t)
	doc = waitRestored(t, n1)
	if doc.NodeID == old {
		t.Fatalf("n1 kept node id %s without --node-id and a data dir", old)
	}
	if code, _, _ := metadataPartition(t, n1, "t", 0); code != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("the new node has topic t (%v): it restored another node's data", kerr.ErrorForCode(code))
	}
	time.Sleep(6 * time.Second) // three metadata intervals of n2's
	// The old node's copy on n2: every acknowledged record, at its offset.
	onCopy := &sitetest.Acks{}
	for i := 0; i < 50; i++ {
		onCopy.Add(n2, &kgo.Record{Topic: old + ".t", Offset: int64(i), Value: fmt.Appendf(nil, "n1-old-%d", i)})
	}
	rep = c.Check(context.Background(), sitetest.Check{
		Origins: []sitetest.Copy{{Node: n2, Topic: old + ".t"}},
		Acked:   onCopy,
	})
	if !rep.OK() || len(rep.Read) != 1 || rep.Read[0].End != 50 {
		t.Fatalf("the old node's copy on n2: %v", rep)
	}
	if acks.Len() != 50 {
		t.Fatalf("%d records acknowledged, want 50", acks.Len())
	}
}

// maxEpoch is the highest partitionLeaderEpoch among the batches of
// topic/0 on n.
func maxEpoch(t *testing.T, n *sitetest.Node, topic string) int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := sitetest.ReadLog(ctx, n.KafkaAddr(), topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	e := int32(-1)
	for _, b := range l.Batches {
		h, err := batch.ParseHeader(b.Raw)
		if err != nil {
			t.Fatal(err)
		}
		e = max(e, h.LeaderEpoch)
	}
	return e
}

// topicConfig is one setting of topic as n's DescribeConfigs gives it.
func topicConfig(t *testing.T, n *sitetest.Node, topic, name string) string {
	t.Helper()
	cl := n.Client(t)
	defer cl.Close()
	req := kmsg.NewPtrDescribeConfigsRequest()
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType, res.ResourceName, res.ConfigNames = kmsg.ConfigResourceTypeTopic, topic, []string{name}
	req.Resources = append(req.Resources, res)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Resources {
		for _, c := range r.Configs {
			if c.Name == name && c.Value != nil {
				return *c.Value
			}
		}
	}
	return ""
}
