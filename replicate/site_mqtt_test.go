package replicate_test

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/replicate/sitetest"
)

// startMQTTPair starts two keyed nodes with their MQTT listeners and the
// route site/# -> telemetry with acks all.
func startMQTTPair(t *testing.T) *sitetest.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("site test: skipped with -short")
	}
	if _, err := exec.LookPath("mosquitto_pub"); err != nil {
		t.Skip("mosquitto_pub missing (apt-get install mosquitto-clients)")
	}
	c := sitetest.Start(t, sitetest.Options{Nodes: 2, NoStart: true})
	key := siteKey(t)
	for _, n := range c.Nodes {
		n.Start(t, append(siteArgs(key, n, c.Nodes), "--mqtt-addr", n.MQTTAddr(), "--mqtt-route", "site/#=telemetry,acks=all")...)
	}
	for _, n := range c.Nodes {
		waitAlive(t, n, 2)
	}
	return c
}

// mqttPub publishes one QoS 1 message with mosquitto_pub (MQTT version
// v: mqttv311 or mqttv5) and returns its output and error: nil once the
// PUBACK came back positive.
func mqttPub(n *sitetest.Node, v, topic, msg string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	host, port, _ := strings.Cut(n.MQTTAddr(), ":")
	out, err := exec.CommandContext(ctx, "mosquitto_pub", "-h", host, "-p", port, "-V", v, "-q", "1",
		"-i", "sitetest-"+strconv.Itoa(int(time.Now().UnixNano()%1e6)), "-t", topic, "-m", msg).CombinedOutput()
	return string(out), err
}

// An MQTT route with acks all: a QoS 1 publish is acknowledged only once
// the copy holds it, so a kill -9 of the origin right after the PUBACK
// leaves it readable on the survivor at the same offset (MQTT 5 and
// 3.1.1 clients alike).
func TestMQTTAcksAllSurvivesOriginKill9(t *testing.T) {
	t.Parallel()
	c := startMQTTPair(t)
	n1, n2 := c.Node(1), c.Node(2)
	createTopic(t, n1, "telemetry", nil)
	for i := 0; i < 10; i++ {
		waitInSync(t, n1, "telemetry", 0, 2)
		v := "mqttv5"
		if i%2 == 1 {
			v = "mqttv311"
		}
		msg := fmt.Sprintf("mqtt-ack-%d", i)
		if out, err := mqttPub(n1, v, "site/line1/temp", msg); err != nil {
			t.Fatalf("iteration %d: mosquitto_pub %s: %v\n%s", i, v, err, out)
		}
		n1.Kill9(t)
		_, end := offsets(t, n2, "n1.telemetry", 0)
		if end < 1 {
			t.Fatalf("iteration %d: n2's copy is empty after the PUBACK", i)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		l, err := sitetest.ReadLog(ctx, n2.KafkaAddr(), "n1.telemetry", 0)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if got := lastValue(t, l); got != msg {
			t.Fatalf("iteration %d: the last record of n2's copy is %q, want %q", i, got, msg)
		}
		n1.Restart(t)
	}
	rep := c.CheckUntil(t, 30*time.Second, sitetest.Check{Origins: []sitetest.Copy{{Node: n1, Topic: "telemetry"}}, Mirrors: mirrorOf(c)})
	if !rep.OK() {
		t.Fatal(rep)
	}
}

// An MQTT route with acks all on a topic with min.insync.replicas=2 whose
// copy cannot fetch: the publish is refused (MQTT 5: PUBACK reason 0x97;
// MQTT 3.1.1: the connection is closed), never acknowledged from one box.
func TestMQTTAcksAllRefusedWithoutCopies(t *testing.T) {
	t.Parallel()
	c := startMQTTPair(t)
	n1, n2 := c.Node(1), c.Node(2)
	createTopic(t, n1, "telemetry", map[string]string{"min.insync.replicas": "2"})
	waitInSync(t, n1, "telemetry", 0, 2)
	if out, err := mqttPub(n1, "mqttv5", "site/a", "both"); err != nil {
		t.Fatalf("publish with both boxes: %v\n%s", err, out)
	}
	c.CutPort(t, sitetest.KafkaPort, n1, n2)
	waitInSync(t, n1, "telemetry", 0, 1)
	out, err := mqttPub(n1, "mqttv5", "site/a", "one-box-v5")
	if err == nil && !strings.Contains(strings.ToLower(out), "quota exceeded") {
		t.Fatalf("MQTT 5 publish with the copy out of sync: acknowledged (%q)", out)
	}
	t.Logf("MQTT 5: %v %q", err, out)
	if out, err := mqttPub(n1, "mqttv311", "site/a", "one-box-v3"); err == nil {
		t.Fatalf("MQTT 3.1.1 publish with the copy out of sync: acknowledged (%q)", out)
	}
	_, hwm := offsets(t, n1, "telemetry", 0)
	if hwm != 1 {
		t.Fatalf("n1's telemetry/0 shows %d records, want 1", hwm)
	}
	c.HealPort(t, sitetest.KafkaPort, n1, n2)
	waitInSync(t, n1, "telemetry", 0, 2)
	if out, err := mqttPub(n1, "mqttv311", "site/a", "healed"); err != nil {
		t.Fatalf("publish after the heal: %v\n%s", err, out)
	}
}

// lastValue is the value of the last record of l.
func lastValue(t *testing.T, l *sitetest.Log) string {
	t.Helper()
	if len(l.Batches) == 0 {
		return ""
	}
	rs, err := batch.Records(l.Batches[len(l.Batches)-1].Raw)
	if err != nil || len(rs) == 0 {
		t.Fatalf("last batch of %s: %v", l.Name, err)
	}
	return string(rs[len(rs)-1].Value)
}
