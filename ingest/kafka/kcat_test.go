package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/runnel/runnel/log/logtest/reexec"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// needKcat returns kcat's path, skipping (or failing under CI=true) when it
// is not installed.
func needKcat(t *testing.T) string {
	t.Helper()
	reexec.SkipNativeChildIfEmulated(t, "kcat")
	p, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kcat not in PATH (CI=true): install the Debian package kcat")
		}
		t.Skip("kcat not in PATH; install the Debian package kcat")
	}
	return p
}

func runKcat(t *testing.T, kcat string, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\nstderr: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

func TestKcatProduceConsume(t *testing.T) {
	kcat := needKcat(t)
	ts := startServer(t, openLog(t, ""), nil)
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			topic := "kcat-" + codec
			var in strings.Builder
			const n = 200
			for i := 0; i < n; i++ {
				fmt.Fprintf(&in, "key%d:value-%s-%d\n", i%5, codec, i)
			}
			runKcat(t, kcat, in.String(), "-b", ts.addr, "-P", "-t", topic, "-z", codec, "-K:",
				"-X", "topic.partitioner=murmur2_random")
			out := runKcat(t, kcat, "", "-b", ts.addr, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
				"-f", "%k:%s\n")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != n {
				t.Fatalf("consumed %d lines, want %d:\n%s", len(lines), n, out)
			}
			for i, l := range lines {
				if want := fmt.Sprintf("key%d:value-%s-%d", i%5, codec, i); l != want {
					t.Fatalf("line %d: %q, want %q", i, l, want)
				}
			}
		})
	}
}

// TestKcatMurmur2Partitions checks that keyed records from librdkafka's
// Java-compatible partitioner land where batch.Partition (Kafka's murmur2)
// says, and that kcat -L lists the topic's partitions.
func TestKcatMurmur2Partitions(t *testing.T) {
	kcat := needKcat(t)
	ts := startServer(t, openLog(t, ""), nil)
	if err := ts.log.CreateTopic("keys", log.TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	var in strings.Builder
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&in, "sensor-%d:%d\n", i, i)
	}
	runKcat(t, kcat, in.String(), "-b", ts.addr, "-P", "-t", "keys", "-K:", "-X", "topic.partitioner=murmur2_random")
	out := runKcat(t, kcat, "", "-b", ts.addr, "-C", "-t", "keys", "-o", "beginning", "-e", "-q", "-f", "%p %k\n")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 100 {
		t.Fatalf("consumed %d records, want 100", len(lines))
	}
	parts := map[int32]bool{}
	for _, l := range lines {
		var p int32
		var k string
		fmt.Sscan(l, &p, &k)
		if want := batch.Partition([]byte(k), 4); p != want {
			t.Fatalf("key %s in partition %d, murmur2 says %d", k, p, want)
		}
		parts[p] = true
	}
	if len(parts) < 3 {
		t.Fatalf("100 keys landed in only %d partitions", len(parts))
	}

	var md struct {
		Brokers []struct {
			ID   int32  `json:"id"`
			Name string `json:"name"`
		} `json:"brokers"`
		Topics []struct {
			Topic      string `json:"topic"`
			Partitions []struct {
				Partition int32 `json:"partition"`
				Leader    int32 `json:"leader"`
			} `json:"partitions"`
		} `json:"topics"`
	}
	if err := json.Unmarshal([]byte(runKcat(t, kcat, "", "-b", ts.addr, "-L", "-J")), &md); err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 1 || md.Brokers[0].Name != ts.addr {
		t.Fatalf("brokers %+v, want one at %s", md.Brokers, ts.addr)
	}
	found := false
	for _, tp := range md.Topics {
		if tp.Topic == "keys" {
			found = len(tp.Partitions) == 4
		}
	}
	if !found {
		t.Fatalf("kcat -L: topic keys with 4 partitions missing: %+v", md.Topics)
	}
}

func TestKcatSASLPlain(t *testing.T) {
	kcat := needKcat(t)
	ts := startServer(t, openLog(t, ""), func(o *Options) { o.SASLPlain = map[string]string{"edge": "pw"} })
	auth := []string{"-b", ts.addr, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=PLAIN",
		"-X", "sasl.username=edge", "-X", "sasl.password=pw"}
	runKcat(t, kcat, "one\ntwo\n", append(auth, "-P", "-t", "s")...)
	out := runKcat(t, kcat, "", append(auth, "-C", "-t", "s", "-o", "beginning", "-e", "-q")...)
	if strings.TrimSpace(out) != "one\ntwo" {
		t.Fatalf("consumed %q", out)
	}
	// A wrong password fails instead of hanging.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bad := []string{"-b", ts.addr, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=PLAIN",
		"-X", "sasl.username=edge", "-X", "sasl.password=nope", "-L", "-m", "3"}
	if err := exec.CommandContext(ctx, kcat, bad...).Run(); err == nil {
		t.Fatal("kcat with a wrong password succeeded")
	}
}

func TestKcatIdempotentProducer(t *testing.T) {
	kcat := needKcat(t)
	ts := startServer(t, openLog(t, ""), nil)
	var in strings.Builder
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&in, "m%d\n", i)
	}
	runKcat(t, kcat, in.String(), "-b", ts.addr, "-P", "-t", "kidem", "-X", "enable.idempotence=true", "-X", "acks=all")
	out := runKcat(t, kcat, "", "-b", ts.addr, "-C", "-t", "kidem", "-o", "beginning", "-e", "-q")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 300 || lines[0] != "m0" || lines[299] != "m299" {
		t.Fatalf("consumed %d lines (%q ... %q)", len(lines), lines[0], lines[len(lines)-1])
	}
	if ts.Stats().Requests[keyInitProducerID] == 0 {
		t.Fatal("librdkafka did not ask for a producer id")
	}
}
