package replicate_test

// Site scenarios with real `runnel serve` processes in network namespaces
// (replicate/sitetest) and franz-go clients.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel/runnel/replicate/sitetest"
)

// The site tests run in parallel (t.Parallel: go test's -parallel, by
// default GOMAXPROCS of them at once): each has its own namespaces, subnet
// and runnel processes, and most of its time is spent waiting on gossip,
// failure detection and lag timers, not on the CPU.
func TestMain(m *testing.M) { os.Exit(sitetest.Main(m)) }

// An acks=all acknowledgement means the record is on the other box: the
// origin is killed (-9) right after each ack, and the record is read on
// the survivor at the same offset with the same bytes: 20 times in the
// normal run, 500 under RUNNEL_SOAK=1 (make soak); RUNNEL_SOAK_ITERS sets
// another count. The producer is franz-go in even iterations, kcat
// (librdkafka) in odd ones, both with acks=all.
func TestAcksAllSurvivesOriginKill9(t *testing.T) {
	t.Parallel()
	iters := kill9Iterations(t)
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("kcat missing (make test-deps installs it)")
	}
	c := startPair(t)
	n1, n2 := c.Node(1), c.Node(2)
	createTopic(t, n1, "t", nil)
	acks := &sitetest.Acks{}
	for i := 0; i < iters; i++ {
		waitInSync(t, n1, "t", 0, 2)
		value := fmt.Sprintf("ack-%d", i)
		var rec *kgo.Record
		var cl *kgo.Client
		var err error
		if i%2 == 0 {
			cl = n1.Client(t)
			rec = &kgo.Record{Topic: "t", Value: []byte(value)}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err = cl.ProduceSync(ctx, rec).FirstErr() // franz-go: acks=all
			cancel()
		} else {
			rec, err = produceKcat(n1, "t", value)
		}
		if err != nil {
			t.Fatalf("iteration %d: produce: %v", i, err)
		}
		n1.Kill9(t)
		if cl != nil {
			cl.Close()
		}
		acks.Add(n1, rec)
		got, err := readAt(t, n2, "n1.t", rec.Offset)
		if err != nil || got != value {
			t.Fatalf("iteration %d: %s at offset %d on n2: %q, %v (want %q)", i, "n1.t", rec.Offset, got, err, value)
		}
		if (i+1)%50 == 0 {
			t.Logf("%d of %d iterations: each acknowledged record read on n2 after kill -9", i+1, iters)
		}
		n1.Restart(t)
	}
	rep := c.CheckUntil(t, 30*time.Second, sitetest.Check{Acked: acks, Mirrors: mirrorOf(c)})
	if !rep.OK() {
		t.Fatal(rep)
	}
}

// kcatDelivered is kcat's delivery report line (-vv).
var kcatDelivered = regexp.MustCompile(`Message delivered to partition 0 \(offset (\d+)\)`)

// produceKcat produces value to partition 0 of topic on n with kcat
// (librdkafka), acks=all, and returns the record at the offset its
// delivery report names.
func produceKcat(n *sitetest.Node, topic, value string) (*kgo.Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", "-P", "-b", n.KafkaAddr(), "-t", topic, "-p", "0",
		"-X", "acks=all", "-X", "message.timeout.ms=20000", "-vv")
	cmd.Stdin = strings.NewReader(value + "\n")
	out, err := cmd.CombinedOutput()
	m := kcatDelivered.FindSubmatch(out)
	if err != nil || m == nil {
		return nil, fmt.Errorf("kcat -P acks=all: %v: %s", err, out)
	}
	off, err := strconv.ParseInt(string(m[1]), 10, 64)
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Topic: topic, Partition: 0, Offset: off, Value: []byte(value)}, nil
}

// kill9Iterations is the iteration count of TestAcksAllSurvivesOriginKill9.
func kill9Iterations(t *testing.T) int {
	if s := os.Getenv("RUNNEL_SOAK_ITERS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("RUNNEL_SOAK_ITERS=%q: want a positive count", s)
		}
		return n
	}
	if os.Getenv("RUNNEL_SOAK") == "1" {
		return 500
	}
	return 20
}

// With min.insync.replicas=2, a box cut off from its peer answers acks=all
// with NOT_ENOUGH_REPLICAS (never a silent local ack) while acks=1 goes on
// working on both sides; healed, the copies converge.
func TestMinInsyncTwoCutOff(t *testing.T) {
	t.Parallel()
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
