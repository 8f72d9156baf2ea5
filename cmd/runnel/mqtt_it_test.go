package main

// MQTT against the real binary with the real Mosquitto clients.

import (
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestIntegrationMQTTKill9AfterPubacks publishes 5,000 QoS 1 messages with
// `mosquitto_pub -l`, kill -9s the server the moment the client has every
// PUBACK (mosquitto_pub exits only then), restarts it, and reads all 5,000
// back over the Kafka API with kcat: exact payloads, in order.
func TestIntegrationMQTTKill9AfterPubacks(t *testing.T) {
	needTool(t, "mosquitto_pub")
	needTool(t, "kcat")
	s := startRunnel(t, 3)
	const n = 5000
	var in strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&in, "reading-%05d temp=%d\n", i, 20+i%10)
	}
	host, port, _ := net.SplitHostPort(s.mqtt)
	runTool(t, 60*time.Second, in.String(), "mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-t", "plant/hall3/temp", "-i", "kill9-client", "-l")
	s.Kill9(t)
	s.Restart(t)

	out := runTool(t, 60*time.Second, "", "kcat", "-C", "-b", s.Addr(), "-t", "mqtt", "-o", "beginning", "-e", "-q", "-f", "%k|%s\n")
	got := lines(out)
	if len(got) != n {
		t.Fatalf("read back %d records, want %d", len(got), n)
	}
	for i, l := range got {
		want := fmt.Sprintf("plant/hall3/temp|reading-%05d temp=%d", i, 20+i%10)
		if l != want {
			t.Fatalf("record %d = %q, want %q", i, l, want)
		}
	}
}

// TestIntegrationMQTTRoutesAndFanOut: --mqtt-route sends a filter to its own
// topic; --mqtt-publish fans records produced over Kafka out to MQTT
// subscribers (mosquitto_sub).
func TestIntegrationMQTTRoutesAndFanOut(t *testing.T) {
	needTool(t, "mosquitto_pub")
	needTool(t, "mosquitto_sub")
	needTool(t, "kcat")
	s := startRunnel(t, 1, "--mqtt-route", "alarms/#=alarms", "--mqtt-publish", "commands=cmd")
	host, port, _ := net.SplitHostPort(s.mqtt)
	runTool(t, 20*time.Second, "", "mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-t", "alarms/pump7", "-m", "overpressure", "-V", "mqttv5")
	out := runTool(t, 30*time.Second, "", "kcat", "-C", "-b", s.Addr(), "-t", "alarms", "-o", "beginning", "-e", "-q", "-f", "%k|%s|%h\n")
	if !strings.HasPrefix(out, "alarms/pump7|overpressure|") {
		t.Fatalf("alarms topic: %q", out)
	}

	// Subscriber first, then produce over Kafka.
	sub := startBackground(t, "mosquitto_sub", "-h", host, "-p", port, "-t", "cmd/#", "-C", "1", "-v", "-W", "20")
	time.Sleep(500 * time.Millisecond) // let the subscription register
	runTool(t, 20*time.Second, "open\n", "kcat", "-P", "-b", s.Addr(), "-t", "commands", "-k", "valve3")
	got := sub.wait(t, 25*time.Second)
	if strings.TrimSpace(got) != "cmd/valve3 open" {
		t.Fatalf("mosquitto_sub got %q, want %q", got, "cmd/valve3 open")
	}
}

// bgTool is an external command running while the test does other things.
type bgTool struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan error
}

func startBackground(t *testing.T, name string, args ...string) *bgTool {
	t.Helper()
	b := &bgTool{cmd: exec.Command(name, args...), done: make(chan error, 1)}
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.out
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	t.Cleanup(func() { b.cmd.Process.Kill() })
	return b
}

// wait returns the output once the command exits, failing after d.
func (b *bgTool) wait(t *testing.T, d time.Duration) string {
	t.Helper()
	select {
	case err := <-b.done:
		if err != nil {
			t.Fatalf("%s: %v\n%s", b.cmd.Path, err, b.out.String())
		}
	case <-time.After(d):
		b.cmd.Process.Kill()
		t.Fatalf("%s did not finish within %v; output so far: %q", b.cmd.Path, d, b.out.String())
	}
	return b.out.String()
}
