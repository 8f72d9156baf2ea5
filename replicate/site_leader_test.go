package replicate_test

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/replicate/member"
	"github.com/runnel/runnel/replicate/sitetest"
	"github.com/runnel/runnel/sync/kafka/kafkatest"
)

// A copy partition a box does not hold is led, in its Metadata, by a box
// that holds it: an unmodified client (franz-go) bootstrapped at any box
// reads every record of the copy, with the origin up and with the origin
// down; kcat -L and kafka-topics --describe show that leader, the
// replicas (origin first) and the in-sync set. A request that names one
// of the box's own topics is never sent elsewhere, and a partition no
// alive box holds answers LEADER_NOT_AVAILABLE.
func TestCopyPartitionNotHeldLedByHolder(t *testing.T) {
	t.Parallel()
	c := startSite(t, 3)
	n1, n2, n3 := c.Node(1), c.Node(2), c.Node(3)
	const parts = 6
	createTopicN(t, n1, "t", parts, 2, nil)
	createTopic(t, n2, "own", nil)
	for p := range int32(parts) {
		waitInSync(t, n1, "t", p, 2)
	}
	want := produceEach(t, n1, "t", parts, 5)
	holder := map[int32]*sitetest.Node{} // partition → the mirror holding it
	for p := range int32(parts) {
		ms := mirrorNodes(t, n1, "t", p)
		if len(ms) != 1 {
			t.Fatalf("n1 t/%d: mirrors %v, want one", p, ms)
		}
		i := slices.IndexFunc(c.Nodes, func(n *sitetest.Node) bool { return n.Name == ms[0] })
		if i < 0 {
			t.Fatalf("n1 t/%d: mirror %q is no node of the site", p, ms[0])
		}
		holder[p] = c.Nodes[i]
	}
	for p := range int32(parts) {
		waitInSync(t, n1, "t", p, 2) // every copy holds every record
	}
	// An unmodified client seeded with one box reads every partition.
	for _, n := range []*sitetest.Node{n2, n3} {
		readsAll(t, n, "n1.t", want)
	}

	b1 := member.BrokerID("n1")
	unheld := 0
	// Every box's Metadata of the copy, once it has read the origin's
	// in-sync sets (every MetadataInterval): the holder leads.
	for _, n := range []*sitetest.Node{n2, n3} {
		for p := range int32(parts) {
			if holder[p] != n {
				unheld++
			}
			h := member.BrokerID(holder[p].Name)
			waitFor(t, 20*time.Second, func() bool {
				m := copyMetadata(t, n, "n1.t")
				pm, ok := m.part[p]
				return ok && pm.ErrorCode == 0 && pm.Leader == h && slices.Equal(pm.Replicas, []int32{b1, h}) &&
					slices.Contains(pm.ISR, h) && m.brokers[h] == holder[p].KafkaAddr()
			}, func() string {
				return fmt.Sprintf("%s Metadata of n1.t/%d: %+v, want leader %s (%d)", n.Name, p, copyMetadata(t, n, "n1.t"), holder[p].Name, h)
			})
		}
	}
	if unheld == 0 {
		t.Fatalf("every box holds every partition (%v): nothing checked", holder)
	}
	// runnel consume and runnel topic describe against n2.
	var all []string
	for _, vs := range want {
		all = append(all, vs...)
	}
	slices.Sort(all)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	out, err := exec.CommandContext(ctx, sitetest.Binary(t), "consume", "n1.t", "--brokers", n2.KafkaAddr(), "--from-beginning", "--exit").Output()
	cancel()
	got := strings.Fields(string(out))
	slices.Sort(got)
	if err != nil || !slices.Equal(got, all) {
		t.Errorf("runnel consume n1.t --brokers n2: %v, read %q, want %q", err, got, all)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
	out, err = exec.CommandContext(ctx, sitetest.Binary(t), "topic", "describe", "n1.t", "--brokers", n2.KafkaAddr()).CombinedOutput()
	cancel()
	if err != nil {
		t.Fatalf("runnel topic describe n1.t --brokers n2: %v\n%s", err, out)
	}
	for p := range int32(parts) {
		h := member.BrokerID(holder[p].Name)
		line := fmt.Sprintf(`(?m)^%d\s+%d\s+%d,%d\s+[\d,]*\b%d\b[\d,]*\s+0\s+5\s+5$`, p, h, b1, h, h)
		if !regexp.MustCompile(line).Match(out) {
			t.Errorf("runnel topic describe n1.t --brokers n2: partition %d not led by %s (%d) at 0-5 with replicas %d,%d:\n%s", p, holder[p].Name, h, b1, h, out)
		}
	}

	// kcat -L (librdkafka) against n2.
	n2unheld := int32(-1)
	for p := range int32(parts) {
		if holder[p] != n2 {
			n2unheld = p
		}
	}
	if n2unheld < 0 {
		t.Fatalf("n2 holds every partition: %v", holder)
	}
	kcatLine := regexp.MustCompile(`partition (\d+), leader (-?\d+), replicas: ([\d,]*), isrs: ([\d,]*)`)
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	out, err = exec.CommandContext(ctx, "kcat", "-L", "-b", n2.KafkaAddr(), "-t", "n1.t", "-m", "10").CombinedOutput()
	cancel()
	if err != nil {
		t.Fatalf("kcat -L against n2: %v\n%s", err, out)
	}
	for _, m := range kcatLine.FindAllStringSubmatch(string(out), -1) {
		p, _ := strconv.Atoi(m[1])
		h := member.BrokerID(holder[int32(p)].Name)
		if m[2] != fmt.Sprint(h) || m[3] != fmt.Sprintf("%d,%d", b1, h) || !strings.Contains(","+m[4]+",", fmt.Sprintf(",%d,", h)) {
			t.Errorf("kcat -L on n2, partition %d: leader %s, replicas %s, isrs %s; want leader %d (%s), replicas %d,%d", p, m[2], m[3], m[4], h, holder[int32(p)].Name, b1, h)
		}
	}
	if hs := holder[n2unheld]; !strings.Contains(string(out), fmt.Sprintf("broker %d at %s", member.BrokerID(hs.Name), hs.KafkaAddr())) {
		t.Errorf("kcat -L on n2 lists no broker %s at %s:\n%s", hs.Name, hs.KafkaAddr(), out)
	}

	// Apache Kafka's kafka-topics --describe --topic against n2.
	if got := kafkaTopicsDescribeTopic(t, n2, "n1.t"); got != nil {
		t.Logf("kafka-topics --describe --topic n1.t on n2 (leader, replicas, isr by partition): %v", got)
		for p := range int32(parts) {
			h := member.BrokerID(holder[p].Name)
			lead := h
			if holder[p] == n2 {
				lead = member.BrokerID("n2")
			}
			g := got[fmt.Sprint(p)]
			if len(g) != 3 || g[0] != fmt.Sprint(lead) || g[1] != fmt.Sprintf("%d,%d", b1, h) || !strings.Contains(","+g[2]+",", fmt.Sprintf(",%d,", h)) {
				t.Errorf("kafka-topics --describe on n2, n1.t/%d: leader, replicas, isr %v; want leader %d, replicas %d,%d", p, g, lead, b1, h)
			}
		}
	}

	// A request naming one of n2's own topics too is never sent to
	// another box (each box's unprefixed topics are its own).
	m := metadataOf(t, n2, "n1.t", "own")
	if len(m.brokers) != 1 {
		t.Errorf("n2 Metadata of n1.t and its own topic names brokers %v, want n2 alone", m.brokers)
	}
	if pm := m.part[n2unheld]; pm.ErrorCode != kerr.LeaderNotAvailable.Code || pm.Leader != -1 {
		t.Errorf("n2 Metadata of n1.t and its own topic, n1.t/%d (held on %s): %v leader %d, want LEADER_NOT_AVAILABLE", n2unheld, holder[n2unheld].Name, kerr.ErrorForCode(pm.ErrorCode), pm.Leader)
	}

	// The origin down: the copies lead; a client at n2 reads everything.
	n1.Kill9(t)
	waitAliveWithin(t, n2, 2, 30*time.Second)
	waitAliveWithin(t, n3, 2, 30*time.Second)
	readsAll(t, n2, "n1.t", want)

	// n3 down too: the partitions only n3 held have no leader.
	n3.Kill9(t)
	waitAliveWithin(t, n2, 1, 30*time.Second)
	waitFor(t, 20*time.Second, func() bool {
		m := copyMetadata(t, n2, "n1.t")
		for p := range int32(parts) {
			pm := m.part[p]
			if holder[p] == n2 && (pm.ErrorCode != 0 || pm.Leader != member.BrokerID("n2")) {
				return false
			}
			if holder[p] == n3 && (pm.ErrorCode != kerr.LeaderNotAvailable.Code || pm.Leader != -1) {
				return false
			}
		}
		return len(m.brokers) == 1
	}, func() string {
		return fmt.Sprintf("n2 alone, Metadata of n1.t: %+v (holders %v)", copyMetadata(t, n2, "n1.t"), holder)
	})
}

// produceEach produces k records with acks=all to every partition of
// topic on n and returns them: partition → values in offset order.
func produceEach(t *testing.T, n *sitetest.Node, topic string, parts int32, k int) map[int32][]string {
	t.Helper()
	cl := n.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := map[int32][]string{}
	var recs []*kgo.Record
	for p := range parts {
		for i := range k {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%s-%d-%d", n.Name, p, i)})
		}
	}
	for _, r := range cl.ProduceSync(ctx, recs...) {
		if r.Err != nil {
			t.Fatalf("produce %s to %s: %v", topic, n.Name, r.Err)
		}
	}
	for _, r := range recs {
		if int64(len(want[r.Partition])) != r.Offset {
			t.Fatalf("%s/%d: record %q at offset %d, want %d", topic, r.Partition, r.Value, r.Offset, len(want[r.Partition]))
		}
		want[r.Partition] = append(want[r.Partition], string(r.Value))
	}
	return want
}

// readsAll consumes topic with a franz-go client seeded with n only and
// fails unless it reads exactly want (partition → values by offset).
func readsAll(t *testing.T, n *sitetest.Node, topic string, want map[int32][]string) {
	t.Helper()
	total := 0
	for _, vs := range want {
		total += len(vs)
	}
	cl := n.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	got := map[int32][]string{}
	n0 := 0
	var errs []string
	for n0 < total && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(topic string, p int32, err error) {
			if ctx.Err() == nil && len(errs) < 10 {
				errs = append(errs, fmt.Sprintf("%s/%d: %v", topic, p, err))
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			if int64(len(got[r.Partition])) != r.Offset {
				t.Fatalf("client at %s: %s/%d record at offset %d after %d records", n.Name, topic, r.Partition, r.Offset, len(got[r.Partition]))
			}
			got[r.Partition] = append(got[r.Partition], string(r.Value))
			n0++
		})
	}
	for p, vs := range want {
		if !slices.Equal(got[p], vs) {
			t.Fatalf("client seeded with %s read %s/%d: %q, want %q (read %d of %d records; errors %v)", n.Name, topic, p, got[p], vs, n0, total, errs)
		}
	}
	if n0 != total {
		t.Fatalf("client seeded with %s read %d records of %s, want %d", n.Name, n0, topic, total)
	}
}

// topicMetadata is what a Metadata answer says of one topic's partitions
// and which brokers it names (id → host:port).
type topicMetadata struct {
	part    map[int32]kmsg.MetadataResponseTopicPartition
	brokers map[int32]string
}

func copyMetadata(t *testing.T, n *sitetest.Node, topic string) topicMetadata {
	t.Helper()
	return metadataOf(t, n, topic)
}

// metadataOf asks n's Metadata about topics and returns what it says of
// the first.
func metadataOf(t *testing.T, n *sitetest.Node, topics ...string) topicMetadata {
	t.Helper()
	cl := n.Client(t)
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	for _, name := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The seed broker itself: a request through the client could be sent
	// to a broker a previous answer named.
	resp, err := req.RequestWith(ctx, cl.SeedBrokers()[0])
	if err != nil {
		t.Fatalf("metadata %v on %s: %v", topics, n.Name, err)
	}
	m := topicMetadata{part: map[int32]kmsg.MetadataResponseTopicPartition{}, brokers: map[int32]string{}}
	for _, b := range resp.Brokers {
		m.brokers[b.NodeID] = fmt.Sprintf("%s:%d", b.Host, b.Port)
	}
	for _, tm := range resp.Topics {
		if tm.Topic == nil || *tm.Topic != topics[0] {
			continue
		}
		for _, p := range tm.Partitions {
			m.part[p.Partition] = p
		}
	}
	return m
}

// kafkaTopicsDescribeTopic runs kafka-topics.sh --describe --topic
// against n: partition → leader, replicas, isr; nil (logged) without
// java or Apache Kafka's tools.
func kafkaTopicsDescribeTopic(t *testing.T, n *sitetest.Node, topic string) map[string][]string {
	t.Helper()
	if _, err := exec.LookPath("java"); err != nil {
		t.Log("java missing: kafka-topics --describe not run")
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd, err := kafkatest.ToolCommand(ctx, "512M", "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", n.KafkaAddr(), "--describe", "--topic", topic)
	if err != nil {
		t.Logf("Apache Kafka's tools unavailable: %v", err)
		return nil
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kafka-topics --describe --topic %s against %s: %v\n%s", topic, n.Name, err, out)
	}
	got := map[string][]string{}
	for _, m := range describeLine.FindAllStringSubmatch(string(out), -1) {
		if m[1] == topic {
			got[m[2]] = []string{m[3], m[4], m[5]}
		}
	}
	if len(got) == 0 {
		t.Fatalf("kafka-topics --describe --topic %s: no partition lines\n%s", topic, out)
	}
	return got
}
