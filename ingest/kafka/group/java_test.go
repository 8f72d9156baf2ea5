package group_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel/runnel/log/logtest/reexec"

	"github.com/runnel/runnel/sync/kafka/kafkatest"
)

// TestJavaConsumersShareGroup: two Apache Kafka Java consumers
// (ConsoleConsumer, cooperative-sticky) in one group read a topic together:
// every record is read, and their commits on close cover every partition.
func TestJavaConsumersShareGroup(t *testing.T) {
	reexec.SkipNativeChildIfEmulated(t, "java")
	if _, err := exec.LookPath("java"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("java is not in PATH")
		}
		t.Skip("java is not in PATH; skipping")
	}
	libs, err := kafkatest.Libs()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kafka jars: %v", err)
		}
		t.Skipf("kafka jars unavailable: %v", err)
	}
	n := startNode(t, t.TempDir())
	const topic, grp = "java", "java-group"
	createTopic(t, n.log, topic, 4)
	produce(t, n.addr, topic, "j", 400)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	outs := make([]lockedBuffer, 2)
	errs := make([]lockedBuffer, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		cmd := exec.CommandContext(ctx, "java", "-Xmx128m", "-XX:TieredStopAtLevel=1", "-Dlog4j2.level=WARN",
			"-cp", filepath.Join(libs, "*"), "org.apache.kafka.tools.consumer.ConsoleConsumer",
			"--bootstrap-server", n.addr, "--topic", topic, "--group", grp, "--from-beginning",
			"--timeout-ms", "6000",
			"--consumer-property", "partition.assignment.strategy=org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
			"--consumer-property", "heartbeat.interval.ms=300",
			"--consumer-property", "client.id=java-"+fmt.Sprint(i))
		cmd.Stdout, cmd.Stderr = &outs[i], &errs[i]
		cmd.WaitDelay = time.Second
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd.Wait()
		}()
	}
	// Keep producing until both members have read something (each exits
	// 6 s after its last record).
	read := func(i int) int { return strings.Count(outs[i].String(), "j") }
	total := 400
	for batch := 0; read(0) == 0 || read(1) == 0; batch++ {
		if ctx.Err() != nil || batch > 150 {
			t.Fatalf("Java members read %d and %d records", read(0), read(1))
		}
		produce(t, n.addr, topic, fmt.Sprintf("j%d", batch), 20)
		total += 20
		time.Sleep(200 * time.Millisecond)
	}
	wg.Wait()
	all := map[string]int{}
	var counts []int
	for i := range 2 {
		var mine int
		for _, l := range strings.Split(outs[i].String(), "\n") {
			if strings.HasPrefix(l, "j") {
				all[l]++
				mine++
			}
		}
		counts = append(counts, mine)
	}
	var dups []string
	for v, k := range all {
		if k > 1 {
			dups = append(dups, v)
		}
	}
	if len(dups) > 0 {
		t.Logf("%d records read twice (auto-commit is at-least-once), e.g. %v", len(dups), dups[:min(10, len(dups))])
	}
	if len(all) != total {
		t.Fatalf("Java consumers read %d distinct of %d (each %v)\nstderr 0: %s\nstderr 1: %s", len(all), total, counts,
			tailOf(errs[0].String()), tailOf(errs[1].String()))
	}
	// Their commits on close cover every partition up to its end.
	offs, err := n.log.Meta().GroupOffsets(grp)
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	for _, o := range offs {
		committed += o.Offset
	}
	if committed != int64(total) {
		t.Fatalf("committed offsets sum to %d, want %d: %v", committed, total, offs)
	}
	st := n.coord.Stats()
	t.Logf("Java members read %v records; coordinator %+v", counts, st)
	if st.Rebalances < 1 || st.Commits == 0 {
		t.Fatalf("coordinator stats %+v: want a rebalance and commits", st)
	}
}

// lockedBuffer is a bytes.Buffer safe for a writing process and a reading
// test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func tailOf(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}
