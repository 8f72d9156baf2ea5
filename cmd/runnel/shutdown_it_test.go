package main

// Shutdown of the real binary within --shutdown-timeout, whatever the
// peers do.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/runnel/runnel/sync/forward"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestServeShutdownDeadline: with a Kafka upstream that takes produce
// requests and never answers them (records in flight on a connected
// route), an MQTT upstream that accepts the connection and never answers
// CONNECT, and an MQTT subscriber that stopped reading its socket (the
// broker's writes to it block), SIGTERM still ends the process within
// --shutdown-timeout. Every record acknowledged before (Kafka acks=all,
// MQTT PUBACK) is there after a restart.
func TestServeShutdownDeadline(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	// Kafka upstream: metadata works, produce requests stall.
	up, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	up.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		up.KeepControl()
		up.SleepControl(func() { <-release })
		return nil, nil, false
	})
	t.Cleanup(func() { close(release); up.Close() })
	// MQTT upstream: accepts, reads, never answers.
	mute := silentListener(t)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "runnel.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`upstreams:
  central:
    kind: kafka
    brokers: [%q]
    delivery-timeout: 5m
  broker:
    kind: mqtt
    url: mqtt://%s
    delivery-timeout: 5m
routes:
  - name: to-kafka
    upstream: central
    topics: [fw]
  - name: to-mqtt
    upstream: broker
    topics: [fw]
`, up.ListenAddrs()[0], mute)), 0o644)
	const deadline = 3 * time.Second
	s := startRunnel(t, 2, "--config", cfg, "--shutdown-timeout", deadline.String())

	const n = 300
	var in strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&in, "r%d\n", i)
	}
	runTool(t, 30*time.Second, in.String(), runnelBinary(t), "produce", "fw", "--brokers", s.Addr(), "--acks", "-1")
	waitRouteInFlight(t, s, "to-kafka")

	slow := slowSubscriber(t, s.mqtt)
	defer slow.Close()
	acked := publishQoS1(t, s.mqtt, 300, 32<<10)
	t.Logf("MQTT PUBACKs: %d", acked)
	if acked == 0 {
		t.Fatal("no MQTT publish acknowledged")
	}

	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	// The deadline plus room for the log's final sync and the exit.
	limit := deadline + 2*time.Second
	select {
	case <-done:
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		t.Fatalf("still running %v after SIGTERM (--shutdown-timeout %v)\n%s", limit, deadline, s.LogTail())
	}
	took := time.Since(start)
	t.Logf("stopped in %v", took.Round(time.Millisecond))
	t.Log(s.LogTail())
	if !cmd.ProcessState.Success() {
		t.Errorf("exit %v after SIGTERM\n%s", cmd.ProcessState, s.LogTail())
	}
	s.mu.Lock()
	s.cmd, s.done = nil, nil
	s.mu.Unlock()

	s.Restart(t)
	out := runTool(t, 30*time.Second, "", runnelBinary(t), "consume", "fw", "--brokers", s.Addr(), "--from-beginning", "-n", fmt.Sprint(n))
	if got := len(strings.Fields(out)); got != n {
		t.Errorf("after the stop: %d of %d acknowledged Kafka records", got, n)
	}
	out = runTool(t, 60*time.Second, "", runnelBinary(t), "consume", "mqtt", "--brokers", s.Addr(), "--from-beginning", "-n", fmt.Sprint(acked), "--format", "%k\\n")
	if got := strings.Count(out, "load/"); got != acked {
		t.Errorf("after the stop: %d of %d acknowledged MQTT messages", got, acked)
	}
}

// silentListener accepts connections, reads what they send and never
// answers; it returns its address.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				b := make([]byte, 4096)
				for {
					if _, err := c.Read(b); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// waitRouteInFlight waits until route has records sent and not
// acknowledged while connected (GET /api/routes).
func waitRouteInFlight(t *testing.T, s *runnelServer, route string) {
	t.Helper()
	var last []forward.RouteStatus
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + s.HTTPAddr() + "/api/routes")
		if err != nil {
			continue
		}
		last = nil
		json.NewDecoder(resp.Body).Decode(&last)
		resp.Body.Close()
		for _, r := range last {
			if r.Name == route && r.State == forward.StateConnected && r.InFlight > 0 {
				return
			}
		}
	}
	t.Fatalf("route %s never had records in flight on a connected link: %+v", route, last)
}

// mqttConnect opens an MQTT 5 connection (receive buffer rcvbuf bytes when
// > 0) and completes CONNECT/CONNACK.
func mqttConnect(t *testing.T, addr, id string, rcvbuf int) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) {
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
		}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	cp := &packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: id, CleanStart: true, KeepAlive: 600, Properties: &packets.Properties{}}
	if _, err := cp.WriteTo(c); err != nil {
		t.Fatal(err)
	}
	p, err := packets.ReadPacket(c)
	if err != nil || p.Type != packets.CONNACK || p.Content.(*packets.Connack).ReasonCode != 0 {
		t.Fatalf("CONNACK: %v %v", p, err)
	}
	c.SetDeadline(time.Time{})
	return c
}

// slowSubscriber subscribes to everything with a tiny receive buffer and
// never reads again.
func slowSubscriber(t *testing.T, addr string) net.Conn {
	t.Helper()
	c := mqttConnect(t, addr, "slow-reader", 4096)
	sub := &packets.Subscribe{PacketID: 1, Subscriptions: []packets.SubOptions{{Topic: "#", QoS: 0}}, Properties: &packets.Properties{}}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := sub.WriteTo(c); err != nil {
		t.Fatal(err)
	}
	if p, err := packets.ReadPacket(c); err != nil || p.Type != packets.SUBACK {
		t.Fatalf("SUBACK: %v %v", p, err)
	}
	c.SetDeadline(time.Time{})
	return c
}

// publishQoS1 publishes up to n QoS 1 messages of size bytes (topics
// load/<i>), one at a time, and returns how many were acknowledged; it
// stops at the first PUBACK that does not come within 2 s.
func publishQoS1(t *testing.T, addr string, n, size int) int {
	t.Helper()
	c := mqttConnect(t, addr, "loader", 0)
	defer c.Close()
	payload := bytes.Repeat([]byte("x"), size)
	for i := 0; i < n; i++ {
		pub := &packets.Publish{Topic: fmt.Sprintf("load/%d", i), QoS: 1, PacketID: uint16(i + 1), Payload: payload, Properties: &packets.Properties{}}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := pub.WriteTo(c); err != nil {
			return i
		}
		p, err := packets.ReadPacket(c)
		if err != nil || p.Type != packets.PUBACK || p.Content.(*packets.Puback).PacketID != uint16(i+1) {
			return i
		}
	}
	return n
}
