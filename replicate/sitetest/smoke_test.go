package sitetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// produce writes n records with acks=all to node and adds each
// acknowledged one to acks.
func produce(t *testing.T, node *Node, acks *Acks, topic string, n int, tag string) {
	t.Helper()
	cl := node.Client(t, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Value: fmt.Appendf(nil, "%s-%s-%d", node.Name, tag, i)}
	}
	for _, r := range cl.ProduceSync(ctx, recs...) {
		if r.Err != nil {
			t.Fatalf("produce to %s: %v", node.Name, r.Err)
		}
		acks.Add(node, r.Record)
	}
	cl.Close()
}

// consumeAll reads topic from node from the start until it has want
// records (bounded by 15 s) and returns the values seen.
func consumeAll(t *testing.T, node *Node, topic string, want int) map[string]bool {
	t.Helper()
	cl := node.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	seen := map[string]bool{}
	deadline := time.Now().Add(15 * time.Second)
	for len(seen) < want && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	return seen
}

// pingWithin reports whether cl gets an answer within d.
func pingWithin(cl *kgo.Client, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return cl.Ping(ctx)
}

// waitPing retries pings until one succeeds or timeout passes.
func waitPing(t *testing.T, cl *kgo.Client, what string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = pingWithin(cl, 2*time.Second); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: no answer within %v: %v", what, timeout, err)
}

// dialFrom reports whether a TCP connection from inside from's namespace
// to addr opens within 2 s.
func dialFrom(from *Node, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	host, port := addr[:len(addr)-5], addr[len(addr)-4:]
	out, err := from.Command(ctx, "timeout", "2", "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s", host, port)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// TestSmoke drives the harness with three single-box nodes: produce with
// acks=all, crash and restart, link cut and heal, pause and resume, a cut
// between two nodes, and the checker both passing on consistent copies
// and reporting copies that differ.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three runnel processes in network namespaces: skipped with -short")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash missing")
	}
	c := Start(t, Options{Args: func(*Node, []*Node) []string { return []string{"--default-partitions", "2"} }})
	n1, n2, n3 := c.Node(1), c.Node(2), c.Node(3)
	const topic = "smoke"
	acks := &Acks{}
	for _, n := range c.Nodes {
		produce(t, n, acks, topic, 100, "a")
	}

	// Crash and restart with the same data: everything acknowledged is
	// still there, and offsets continue.
	pid := n2.PID()
	n2.Kill9(t)
	if n2.Running() {
		t.Fatal("n2 still running after Kill9")
	}
	n2.Restart(t)
	if n2.PID() == pid {
		t.Fatal("n2 has the same PID after a restart")
	}
	produce(t, n2, acks, topic, 50, "b")
	if got := consumeAll(t, n2, topic, 150); len(got) != 150 {
		t.Fatalf("n2 after kill -9 and restart: read %d distinct records, want 150", len(got))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep := c.Check(ctx, Check{Acked: acks})
	t.Logf("identity check: %v", rep)
	if !rep.OK() || len(rep.Read) != 6 {
		t.Fatalf("identity check failed: %v", rep)
	}

	// Two nodes' partitions given as copies of each other: they differ at
	// every offset, and the checker must say so.
	other := func(o Copy) []Copy { return []Copy{{Node: n2, Topic: o.Topic, Partition: o.Partition}} }
	rep = c.Check(ctx, Check{Origins: []Copy{{n1, topic, 0}, {n1, topic, 1}}, Mirrors: other, Acked: acks})
	t.Logf("n2 as a copy of n1: %v", rep)
	for _, k := range []Kind{NotPrefix, Fork, AckWrong} {
		if !rep.Has(k) {
			t.Errorf("n2's partitions checked as copies of n1's: no %v problem reported", k)
		}
	}

	// Link cut: a client across the bridge times out, then recovers.
	cl3 := n3.Client(t, kgo.RequestRetries(1))
	waitPing(t, cl3, "n3 before the cut", 10*time.Second)
	n3.CutLink(t)
	if err := pingWithin(cl3, 2*time.Second); err == nil {
		t.Fatal("n3 answered with its link cut")
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("ping with n3's link cut: %v", err)
	}
	if err := dialFrom(n1, n3.KafkaAddr()); err == nil {
		t.Fatal("n1 reached n3 with n3's link cut")
	}
	n3.HealLink(t)
	waitPing(t, cl3, "n3 after its link was healed", 20*time.Second)
	produce(t, n3, acks, topic, 20, "c")

	// Pause and resume.
	cl1 := n1.Client(t, kgo.RequestRetries(1))
	n1.Pause(t)
	if err := pingWithin(cl1, 2*time.Second); err == nil {
		t.Fatal("n1 answered while paused")
	}
	n1.Resume(t)
	waitPing(t, cl1, "n1 after SIGCONT", 20*time.Second)

	// A cut between n1 and n2 only: they cannot reach each other, both
	// still reach n3 and are reached by the test process.
	c.Cut(t, n1, n2)
	if err := dialFrom(n1, n2.KafkaAddr()); err == nil {
		t.Fatal("n1 reached n2 across the cut")
	}
	if err := dialFrom(n2, n1.KafkaAddr()); err == nil {
		t.Fatal("n2 reached n1 across the cut")
	}
	for _, p := range [][2]*Node{{n1, n3}, {n2, n3}, {n3, n1}} {
		if err := dialFrom(p[0], p[1].KafkaAddr()); err != nil {
			t.Fatalf("%s cannot reach %s, which is not cut: %v", p[0], p[1], err)
		}
	}
	waitPing(t, cl1, "n1 from the test process during the n1-n2 cut", 10*time.Second)
	c.Heal(t, n1, n2)
	if err := dialFrom(n1, n2.KafkaAddr()); err != nil {
		t.Fatalf("n1 cannot reach n2 after the heal: %v", err)
	}

	rep = c.CheckUntil(t, 10*time.Second, Check{Acked: acks})
	if !rep.OK() {
		t.Fatalf("identity check after the faults: %v", rep)
	}

	// A wiped data dir loses what n3 acknowledged (no replication yet):
	// the checker reports every such record missing.
	n3.RestartWiped(t)
	rep = c.Check(ctx, Check{Origins: []Copy{{n3, topic, 0}, {n3, topic, 1}}, Acked: acks})
	if !rep.Has(AckMissing) {
		t.Fatalf("n3 wiped: no ack-missing reported: %v", rep)
	}
	n3.Kill9(t)
	rep = c.Check(ctx, Check{Origins: []Copy{{n3, topic, 0}}, Acked: acks})
	if len(rep.Skipped) != 1 || !rep.Has(AckMissing) {
		t.Fatalf("n3 down: want it skipped and its acknowledged records missing: %v", rep)
	}
}
