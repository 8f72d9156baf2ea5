package kafka

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runnel/runnel/log/logtest/reexec"

	"github.com/runnel/runnel/log"
)

// javaClasspath finds the Apache Kafka 4.x client and tools jars:
// $RUNNEL_KAFKA_LIBS, else ~/.cache/runnel/kafka-*/libs (where the test
// setup unpacks the Maven artifacts). It skips (fails under CI=true) when
// java or the jars are missing.
func javaClasspath(t *testing.T) (java, cp string) {
	t.Helper()
	reexec.SkipNativeChildIfEmulated(t, "java")
	missing := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (CI=true); set RUNNEL_KAFKA_LIBS to a dir holding kafka-clients and kafka-tools 4.x jars", why)
		}
		t.Skip(why)
	}
	java, err := exec.LookPath("java")
	if err != nil {
		missing("java not in PATH")
	}
	dirs := []string{os.Getenv("RUNNEL_KAFKA_LIBS")}
	if home, err := os.UserHomeDir(); err == nil {
		m, _ := filepath.Glob(filepath.Join(home, ".cache/runnel/kafka-*/libs"))
		dirs = append(dirs, m...)
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if m, _ := filepath.Glob(filepath.Join(d, "kafka-tools-*.jar")); len(m) > 0 {
			return java, filepath.Join(d, "*")
		}
	}
	missing("Apache Kafka client/tools jars not found (RUNNEL_KAFKA_LIBS or ~/.cache/runnel/kafka-*/libs)")
	return "", ""
}

func runJava(t *testing.T, java, cp, stdin string, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, java, append([]string{"-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", cp}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("java %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// TestJavaConsoleClients runs the Apache Kafka 4.x console producer
// (idempotent, acks=all) and console consumer against the server.
func TestJavaConsoleClients(t *testing.T) {
	java, cp := javaClasspath(t)
	ts := startServer(t, openLog(t, ""), nil)
	if err := ts.log.CreateTopic("java", log.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	var in strings.Builder
	const n = 50
	for i := 0; i < n; i++ {
		fmt.Fprintf(&in, "k%d\tjava-%d\n", i%2, i)
	}
	runJava(t, java, cp, in.String(), 60*time.Second, "org.apache.kafka.tools.ConsoleProducer",
		"--bootstrap-server", ts.addr, "--topic", "java",
		"--property", "parse.key=true", "--property", "key.separator=\t",
		"--producer-property", "acks=all", "--producer-property", "compression.type=zstd")
	got := 0
	for _, p := range []string{"0", "1"} {
		out := runJava(t, java, cp, "", 60*time.Second, "org.apache.kafka.tools.consumer.ConsoleConsumer",
			"--bootstrap-server", ts.addr, "--topic", "java", "--partition", p, "--offset", "earliest",
			"--timeout-ms", "5000", "--property", "print.key=true")
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if l == "" {
				continue
			}
			if !strings.HasPrefix(l, "k") || !strings.Contains(l, "java-") {
				t.Fatalf("unexpected line %q", l)
			}
			got++
		}
	}
	if got != n {
		t.Fatalf("Java console consumer read %d records, want %d", got, n)
	}
}

// TestJavaToolsAdminAndPerf runs kafka-topics (create/list/describe),
// kafka-configs (alter/describe) and kafka-producer-perf-test.
func TestJavaToolsAdminAndPerf(t *testing.T) {
	java, cp := javaClasspath(t)
	ts := startServer(t, openLog(t, ""), nil)
	runJava(t, java, cp, "", 60*time.Second, "org.apache.kafka.tools.TopicCommand",
		"--bootstrap-server", ts.addr, "--create", "--topic", "jt", "--partitions", "3", "--config", "retention.ms=7200000")
	info, err := ts.log.Topic("jt")
	if err != nil || len(info.Partitions) != 3 || info.Config.RetentionAge != 2*time.Hour {
		t.Fatalf("kafka-topics --create: %v %+v", err, info)
	}
	if out := runJava(t, java, cp, "", 60*time.Second, "org.apache.kafka.tools.TopicCommand",
		"--bootstrap-server", ts.addr, "--list"); !strings.Contains(out, "jt") {
		t.Fatalf("kafka-topics --list: %q", out)
	}
	if out := runJava(t, java, cp, "", 60*time.Second, "org.apache.kafka.tools.TopicCommand",
		"--bootstrap-server", ts.addr, "--describe", "--topic", "jt"); !strings.Contains(out, "PartitionCount: 3") {
		t.Fatalf("kafka-topics --describe: %q", out)
	}
	runJava(t, java, cp, "", 60*time.Second, "kafka.admin.ConfigCommand",
		"--bootstrap-server", ts.addr, "--alter", "--entity-type", "topics", "--entity-name", "jt",
		"--add-config", "runnel.fsync=interval,segment.bytes=1048576")
	if info, _ := ts.log.Topic("jt"); info.Config.Fsync != log.FsyncInterval || info.Config.SegmentBytes != 1<<20 || info.Config.RetentionAge != 2*time.Hour {
		t.Fatalf("kafka-configs --alter: %+v", info.Config)
	}
	if out := runJava(t, java, cp, "", 60*time.Second, "kafka.admin.ConfigCommand",
		"--bootstrap-server", ts.addr, "--describe", "--entity-type", "topics", "--entity-name", "jt"); !strings.Contains(out, "runnel.fsync=interval") {
		t.Fatalf("kafka-configs --describe: %q", out)
	}
	out := runJava(t, java, cp, "", 90*time.Second, "org.apache.kafka.tools.ProducerPerformance",
		"--topic", "jt", "--num-records", "20000", "--record-size", "100", "--throughput", "-1",
		"--producer-props", "bootstrap.servers="+ts.addr, "acks=all")
	if !strings.Contains(out, "20000 records sent") {
		t.Fatalf("kafka-producer-perf-test: %q", out)
	}
	var total int64
	for p := int32(0); p < 3; p++ {
		_, hwm, _ := ts.log.Offsets("jt", p)
		total += hwm
	}
	if total != 20000 {
		t.Fatalf("log holds %d records after perf test, want 20000", total)
	}
	runJava(t, java, cp, "", 60*time.Second, "org.apache.kafka.tools.TopicCommand",
		"--bootstrap-server", ts.addr, "--alter", "--topic", "jt", "--partitions", "5")
	if info, _ := ts.log.Topic("jt"); len(info.Partitions) != 5 {
		t.Fatalf("kafka-topics --alter --partitions 5: %d partitions", len(info.Partitions))
	}
	runJava(t, java, cp, "", 60*time.Second, "org.apache.kafka.tools.TopicCommand",
		"--bootstrap-server", ts.addr, "--delete", "--topic", "jt")
	if _, err := ts.log.Topic("jt"); err == nil {
		t.Fatal("kafka-topics --delete left the topic")
	}
	t.Logf("perf test: %s", strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]))
}
