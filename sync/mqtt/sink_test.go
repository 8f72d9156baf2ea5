package mqtt_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/sync/forward/forwardtest"
	"github.com/runnel/runnel/sync/mqtt"
)

// mosquitto is a broker process started for one test.
type mosquitto struct {
	t    testing.TB
	dir  string
	port int
	cmd  *exec.Cmd
}

func startMosquitto(t testing.TB) *mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/mosquitto"); err2 == nil {
			bin = "/usr/sbin/mosquitto"
		} else if os.Getenv("CI") == "true" {
			t.Fatal("mosquitto not installed (CI=true makes this a failure)")
		} else {
			t.Skip("mosquitto not installed (Debian package mosquitto); skipping")
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	m := &mosquitto{t: t, dir: t.TempDir(), port: port}
	user := ""
	if os.Getuid() == 0 {
		user = "user root\n" // else mosquitto drops to user mosquitto and cannot write the temp dir
	}
	conf := user + fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nmax_queued_messages 0\nmax_inflight_messages 100\nlog_dest stderr\nlog_type error\nlog_type warning\n", port, m.dir)
	if err := os.WriteFile(filepath.Join(m.dir, "mosquitto.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	m.cmd = exec.Command(bin, "-c", filepath.Join(m.dir, "mosquitto.conf"))
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t.Cleanup(m.stop)
	m.start()
	return m
}

func (m *mosquitto) start() {
	m.t.Helper()
	cmd := exec.Command(m.cmd.Path, m.cmd.Args[1:]...)
	cmd.SysProcAttr = m.cmd.SysProcAttr
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	m.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", m.addr())
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mosquitto not listening: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the broker gracefully (it saves its persistence file).
func (m *mosquitto) stop() {
	if m.cmd == nil || m.cmd.Process == nil || m.cmd.ProcessState != nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		m.cmd.Process.Kill()
		<-done
	}
}

func (m *mosquitto) addr() string { return "127.0.0.1:" + strconv.Itoa(m.port) }

// subscriber is a persistent-session MQTT 5 subscriber feeding a Checker.
type subscriber struct {
	t    testing.TB
	addr string
	ch   *forwardtest.Checker
	mu   sync.Mutex
	cl   *paho.Client
}

func subscribe(t testing.TB, addr string) *subscriber {
	s := &subscriber{t: t, addr: addr, ch: forwardtest.NewChecker()}
	s.connect(true)
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.cl != nil {
			s.cl.Disconnect(&paho.Disconnect{})
		}
	})
	return s
}

func (s *subscriber) connect(first bool) {
	s.t.Helper()
	nc, err := net.Dial("tcp", s.addr)
	if err != nil {
		s.t.Fatal(err)
	}
	cl := paho.NewClient(paho.ClientConfig{Conn: nc, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) { s.add(pr.Packet); return true, nil },
	}})
	exp := uint32(600)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := cl.Connect(ctx, &paho.Connect{ClientID: "checker", CleanStart: false, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &exp}})
	if err != nil {
		s.t.Fatalf("subscriber connect: %v %v", err, ca)
	}
	if !first && !ca.SessionPresent {
		s.t.Fatal("subscriber session not resumed after the broker restart")
	}
	if first {
		if _, err := cl.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "site-a/#", QoS: 1}}}); err != nil {
			s.t.Fatal(err)
		}
	}
	s.mu.Lock()
	s.cl = cl
	s.mu.Unlock()
}

func (s *subscriber) add(p *paho.Publish) {
	u := p.Properties.User
	get := func(k string) ([]byte, bool) {
		for _, x := range u {
			if x.Key == k {
				return []byte(x.Value), true
			}
		}
		return nil, false
	}
	o, off, node, ok := forwardtest.OriginOf(get)
	if !ok {
		s.ch.Fail("%s: origin properties missing: %v", p.Topic, u)
		return
	}
	if node != "node-1" {
		s.ch.Fail("node %q", node)
	}
	if want := forwardtest.Value(o.Topic, o.Partition, int(off)); !bytes.Equal(p.Payload, want) {
		s.ch.Fail("%s@%d: payload %q want %q", p.Topic, off, p.Payload, want)
	}
	if ts, _ := get(mqtt.PropTimestamp); string(ts) != strconv.FormatInt(1700000000000+off, 10) {
		s.ch.Fail("timestamp %q", ts)
	}
	if h, _ := get("h"); string(h) != "v" {
		s.ch.Fail("original header lost: %v", u)
	}
	k, hasKey := get(mqtt.PropKey)
	if o.Partition == 0 {
		wantT := "site-a/" + o.Topic + "/" + string(k)
		if !hasKey || p.Topic != wantT {
			s.ch.Fail("topic %q key %q, want %q", p.Topic, k, wantT)
		}
	}
	s.ch.Add(p.Topic, o, off)
}

func waitFor(t testing.TB, what string, timeout time.Duration, f *forward.Forwarder, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timeout waiting for %s: %+v", what, f.Routes())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMosquitto forwards two partitions (one keyed, {key} in the topic) to
// a real Mosquitto, stops the broker in the middle of the drain, restarts
// it, and checks every record arrived in order with its properties.
func TestMosquitto(t *testing.T) {
	m := startMosquitto(t)
	sub := subscribe(t, m.addr())
	lg := forwardtest.New(t)
	lg.CreateTopic("m", log.TopicConfig{Partitions: 2})
	const n = 3000
	forwardtest.Produce(t, lg, "m", 0, 0, n, 100, 5)
	forwardtest.Produce(t, lg, "m", 1, 0, n, 100, 0)
	want := map[forwardtest.Origin]int64{{Topic: "m", Partition: 0}: n, {Topic: "m", Partition: 1}: n}
	f, err := forward.New(forward.Options{
		Log: lg, NodeID: "node-1", Site: "site-a",
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		Upstreams: map[string]forward.Upstream{"central": {Kind: "mqtt", URL: "mqtt://" + m.addr(),
			DeliveryTimeout: 3 * time.Second, BandwidthBytesPerSec: 150_000}},
		Routes:     []forward.Route{{Name: "m", Upstream: "central", Topics: []string{"m"}, Target: "{site}/{topic}/{key}"}},
		Sinks:      map[string]forward.NewSinkFunc{"mqtt": mqtt.NewSink},
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.Start(context.Background())
	defer f.Close()
	waitFor(t, "first 1000 records", 20*time.Second, f, func() bool { _, u, _ := sub.ch.Counts(); return u >= 1000 })
	m.stop()
	waitFor(t, "the route to notice", 10*time.Second, f, func() bool { return f.Routes()[0].State == forward.StateBackingOff })
	m.start()
	sub.connect(false)
	deadline := time.Now().Add(30 * time.Second)
	for !sub.ch.Complete(want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	dups := sub.ch.Verify(t, want)
	rs := f.Routes()[0]
	t.Logf("duplicates %d; route %s state=%s acked=%d errors=%d last=%q", dups, rs.Name, rs.State, rs.AckedRecords, rs.Errors, rs.LastError)
	if rs.Errors == 0 || !strings.Contains(rs.LastError, "mqtt") {
		t.Errorf("broker stop not visible: %+v", rs)
	}
}
