package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel/runnel/sync/kafka/kafkatest"
)

// javaMember is one Apache Kafka ConsoleConsumer in a group.
type javaMember struct {
	cmd  *exec.Cmd
	out  syncBuffer
	errb syncBuffer
	done chan struct{}
}

// syncBuffer is a bytes.Buffer written by a process and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// values returns the record values the member printed.
func (m *javaMember) values() []string {
	var out []string
	for _, l := range lines(m.out.String()) {
		if strings.HasPrefix(l, "v-") {
			out = append(out, l)
		}
	}
	return out
}

// stop ends the member as an operator does (SIGTERM): it commits and
// leaves the group.
func (m *javaMember) stop(t *testing.T) {
	t.Helper()
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		m.cmd.Process.Kill()
		<-m.done
		t.Fatalf("ConsoleConsumer did not stop on SIGTERM\n%s", tail(m.errb.String(), 2000))
	}
}

// TestIntegrationJavaConsumerProtocol: two Apache Kafka 4.x
// ConsoleConsumers with group.protocol=consumer (KIP-848, server-side
// assignment) share a four-partition topic: the coordinator splits the
// partitions between them, one leaves, the other takes every partition,
// and across both rebalances no record is lost or read twice.
func TestIntegrationJavaConsumerProtocol(t *testing.T) {
	needTool(t, "java")
	libs, err := kafkatest.Libs()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kafka jars: %v", err)
		}
		t.Skipf("skipping: kafka jars unavailable: %v", err)
	}
	srv := startServer(t, 1)
	const topic, grp = "it-kip848", "it-kip848-group"
	mustCLI(t, "", "topic", "create", topic, "--partitions", "4", "--brokers", srv.Addr())
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.Addr()), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sent := 0
	produce := func(n int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var recs []*kgo.Record
		for range n {
			recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "v-%d", sent)})
			sent++
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	read := func(ms ...*javaMember) int {
		n := 0
		for _, m := range ms {
			n += len(m.values())
		}
		return n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	start := func(name string) *javaMember {
		m := &javaMember{done: make(chan struct{})}
		m.cmd = exec.CommandContext(ctx, "java", "-Xmx192m", "-XX:TieredStopAtLevel=1", "-Dlog4j2.level=WARN",
			"-cp", filepath.Join(libs, "*"), "org.apache.kafka.tools.consumer.ConsoleConsumer",
			"--bootstrap-server", srv.Addr(), "--topic", topic, "--group", grp, "--from-beginning",
			"--consumer-property", "group.protocol=consumer",
			"--consumer-property", "client.id="+name)
		m.cmd.Stdout, m.cmd.Stderr = &m.out, &m.errb
		m.cmd.WaitDelay = 2 * time.Second
		if err := m.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { m.cmd.Wait(); close(m.done) }()
		t.Cleanup(func() { m.cmd.Process.Kill(); <-m.done })
		return m
	}
	waitRead := func(what string, cond func() bool, ms ...*javaMember) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				var logs []string
				for i, m := range ms {
					logs = append(logs, fmt.Sprintf("member %d read %d\n%s", i, len(m.values()), tail(m.errb.String(), 1500)))
				}
				t.Fatalf("timed out waiting for %s (sent %d)\n%s\n--- server ---\n%s", what, sent, strings.Join(logs, "\n"), tail(srv.LogTail(), 3000))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	produce(200)
	a := start("java-a")
	waitRead("the first member to read the first batch", func() bool { return read(a) >= 200 }, a)
	b := start("java-b")
	// Keep producing until the second member owns partitions.
	for len(b.values()) == 0 {
		if ctx.Err() != nil {
			t.Fatalf("the second member never got a partition\n%s\n--- server ---\n%s", tail(b.errb.String(), 2000), tail(srv.LogTail(), 3000))
		}
		produce(20)
		time.Sleep(500 * time.Millisecond)
	}
	produce(200)
	waitRead("both members to read everything", func() bool { return read(a, b) >= sent }, a, b)
	if len(a.values()) == 0 || len(b.values()) == 0 {
		t.Fatalf("members read %d and %d", len(a.values()), len(b.values()))
	}
	// kafka-consumer-groups (ConsumerGroupDescribe) shows the two members
	// with two partitions each.
	out := runTool(t, 60*time.Second, "", "java", "-Xmx128m", "-XX:TieredStopAtLevel=1", "-Dlog4j2.level=WARN",
		"-cp", filepath.Join(libs, "*"), "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
		"--bootstrap-server", srv.Addr(), "--describe", "--members", "--group", grp)
	var memberLines []string
	for _, l := range lines(out) {
		if f := strings.Fields(l); len(f) >= 5 && f[0] == grp {
			memberLines = append(memberLines, l)
			if f[len(f)-1] != "2" {
				t.Fatalf("kafka-consumer-groups --describe --members: a member with %s partitions, want 2\n%s", f[len(f)-1], out)
			}
		}
	}
	if len(memberLines) != 2 {
		t.Fatalf("kafka-consumer-groups --describe --members shows %d members, want 2\n%s", len(memberLines), out)
	}
	a.stop(t)
	produce(200)
	waitRead("the remaining member to read every partition", func() bool { return read(a, b) >= sent }, b)
	b.stop(t)

	counts := map[string]int{}
	for _, m := range []*javaMember{a, b} {
		for _, v := range m.values() {
			counts[v]++
		}
	}
	var missing, twice []string
	for i := range sent {
		switch v := fmt.Sprintf("v-%d", i); counts[v] {
		case 0:
			missing = append(missing, v)
		case 1:
		default:
			twice = append(twice, v)
		}
	}
	t.Logf("sent %d; member a read %d, member b read %d", sent, len(a.values()), len(b.values()))
	if len(missing) > 0 || len(twice) > 0 {
		t.Fatalf("%d records missing (%v), %d read twice (%v)", len(missing), missing[:min(10, len(missing))], len(twice), twice[:min(10, len(twice))])
	}
}
