package replicate_test

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runnel/runnel/replicate/member"
	"github.com/runnel/runnel/replicate/sitetest"
	"github.com/runnel/runnel/sync/kafka/kafkatest"
)

// describeLine is one partition line of kafka-topics --describe.
var describeLine = regexp.MustCompile(`Topic: (\S+)\s+Partition: (\d+)\s+Leader: (\S+)\s+Replicas: (\S*)\s+Isr: (\S*)`)

// kafkaTopicsDescribe runs Apache Kafka's kafka-topics.sh --describe
// against n and returns "topic/partition" -> "replicas isr".
func kafkaTopicsDescribe(t *testing.T, n *sitetest.Node) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd, err := kafkatest.ToolCommand(ctx, "512M", "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", n.KafkaAddr(), "--describe")
	if err != nil {
		t.Skipf("Apache Kafka's tools unavailable: %v", err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kafka-topics --describe against %s: %v\n%s", n.Name, err, out)
	}
	got := map[string]string{}
	for _, m := range describeLine.FindAllStringSubmatch(string(out), -1) {
		got[m[1]+"/"+m[2]] = m[4] + " " + m[5]
	}
	if len(got) == 0 {
		t.Fatalf("kafka-topics --describe: no partition lines\n%s", out)
	}
	return got
}

// Apache Kafka's kafka-topics --describe against a runnel site lists each
// partition's replicas (the origin first) and in-sync set as broker ids,
// on the origin and on the box holding the copy, and the in-sync set
// shrinks honestly when the copy cannot fetch. runnel status shows the
// same as tables.
func TestKafkaTopicsDescribeSite(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("java"); err != nil {
		t.Skip("java missing")
	}
	c := startPair(t)
	n1, n2 := c.Node(1), c.Node(2)
	b1, b2 := member.BrokerID("n1"), member.BrokerID("n2")
	createTopicN(t, n1, "t", 2, 2, nil)
	createTopic(t, n2, "u", nil)
	waitInSync(t, n1, "t", 0, 2)
	waitInSync(t, n1, "t", 1, 2)
	waitInSync(t, n2, "u", 0, 2)
	produceAcked(t, n2, &sitetest.Acks{}, "u", 5, "x")
	both := func(a, b int32) string { return fmt.Sprintf("%d,%d %d,%d", a, b, a, b) }
	want := map[string]string{"t/0": both(b1, b2), "t/1": both(b1, b2), "n2.u/0": both(b2, b1)}
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := kafkaTopicsDescribe(t, n1)
		ok := true
		for k, v := range want {
			ok = ok && got[k] == v
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kafka-topics --describe on n1: %v, want %v", got, want)
		}
		time.Sleep(time.Second)
	}
	if got := kafkaTopicsDescribe(t, n2); got["u/0"] != both(b2, b1) || got["n1.t/0"] != both(b1, b2) {
		t.Fatalf("kafka-topics --describe on n2: %v", got)
	}

	// runnel status: the site as tables.
	out, err := exec.Command(sitetest.Binary(t), "status", "--brokers", n1.KafkaAddr(), "--http", n1.HTTPAddr()).CombinedOutput()
	if err != nil {
		t.Fatalf("runnel status: %v\n%s", err, out)
	}
	for _, s := range []string{"Site (this box: n1", "n2", "alive", "t/0", "t/1", "n2.u/0", "in sync"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("runnel status lacks %q:\n%s", s, out)
		}
	}
	if !regexp.MustCompile(`n2\.u/0\s+n2\s+5\s+5\s+0`).Match(out) {
		t.Errorf("runnel status: no row for the copy n2.u/0 at 5 of 5:\n%s", out)
	}

	// The copy cannot fetch: the origin's in-sync set shrinks to itself,
	// and the box holding the copy no longer counts itself in sync.
	c.CutPort(t, sitetest.KafkaPort, n1, n2)
	waitInSync(t, n1, "t", 0, 1)
	deadline = time.Now().Add(60 * time.Second)
	for {
		got := kafkaTopicsDescribe(t, n1)
		if got["t/0"] == fmt.Sprintf("%d,%d %d", b1, b2, b1) && !strings.Contains(strings.Fields(got["n2.u/0"] + " x")[1], fmt.Sprint(b1)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kafka-topics --describe on n1 with n2 unable to fetch: %v", got)
		}
		time.Sleep(time.Second)
	}
}
