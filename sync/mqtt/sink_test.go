package mqtt_test

import (
	"bytes"
	"context"
	"errors"
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

	"github.com/runnel/runnel/log/logtest/reexec"

	"github.com/eclipse/paho.golang/paho"
	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/logtest"
	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/sync/forward/forwardtest"
	"github.com/runnel/runnel/sync/kafka/kafkatest"
	"github.com/runnel/runnel/sync/mqtt"
)

// mosquitto is a broker process started for one test.
type mosquitto struct {
	t    testing.TB
	dir  string
	port int
	cmd  *exec.Cmd
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startMosquitto starts a broker with a plain anonymous listener (addr)
// plus extra configuration lines (more listeners).
func startMosquitto(t testing.TB, extra ...string) *mosquitto {
	t.Helper()
	reexec.SkipNativeChildIfEmulated(t, "mosquitto")
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
	port := freePort(t)
	m := &mosquitto{t: t, dir: t.TempDir(), port: port}
	user := ""
	if os.Getuid() == 0 {
		user = "user root\n" // else mosquitto drops to user mosquitto and cannot write the temp dir
	}
	conf := user + fmt.Sprintf("per_listener_settings true\npersistence true\npersistence_location %s/\nmax_queued_messages 0\nmax_inflight_messages 100\nlog_dest stderr\nlog_type error\nlog_type warning\nlistener %d 127.0.0.1\nallow_anonymous true\n", m.dir, port)
	conf += strings.Join(extra, "\n") + "\n"
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
	if o.Topic == "m" && o.Partition == 0 { // TestMosquitto's {key} target
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
	lg := logtest.New(t)
	lg.CreateTopic("m", log.TopicConfig{Partitions: 2})
	const n = 3000
	forwardtest.Produce(t, lg, "m", 0, 0, n, 100, 5)
	forwardtest.Produce(t, lg, "m", 1, 0, n, 100, 0)
	want := map[forwardtest.Origin]int64{{Topic: "m", Partition: 0}: n, {Topic: "m", Partition: 1}: n}
	f := startForwarder(t, lg, forward.Upstream{Kind: "mqtt", URL: "mqtt://" + m.addr(),
		DeliveryTimeout: 3 * time.Second, BandwidthBytesPerSec: 150_000},
		forward.Route{Name: "m", Upstream: "central", Topics: []string{"m"}, Target: "{site}/{topic}/{key}"})
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

// TestMosquittoTLSAuth publishes over mutual TLS with a username and
// password; a wrong password is reported on the route and never delivers.
func TestMosquittoTLSAuth(t *testing.T) {
	dir := t.TempDir()
	certs, err := kafkatest.WriteCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "passwords")
	os.WriteFile(pw, nil, 0o600)
	if out, err := exec.Command("mosquitto_passwd", "-b", pw, "edge", "s3cret").CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mosquitto_passwd: %v %s", err, out)
		}
		t.Skipf("mosquitto_passwd unavailable: %v %s", err, out)
	}
	tport := freePort(t)
	m := startMosquitto(t,
		fmt.Sprintf("listener %d 127.0.0.1", tport),
		"cafile "+certs.Client.CA, "certfile "+certs.ServerCert, "keyfile "+certs.ServerKey,
		"require_certificate true", "allow_anonymous false", "password_file "+pw)
	sub := subscribe(t, m.addr())
	for _, tc := range []struct {
		name, password string
		ok             bool
	}{{"good", "s3cret", true}, {"bad-password", "wrong", false}} {
		t.Run(tc.name, func(t *testing.T) {
			lg := logtest.New(t)
			lg.CreateTopic(tc.name, log.TopicConfig{})
			forwardtest.Produce(t, lg, tc.name, 0, 0, 200, 50, 0)
			want := map[forwardtest.Origin]int64{{Topic: tc.name}: 200}
			f := startForwarder(t, lg, forward.Upstream{Kind: "mqtt", URL: fmt.Sprintf("mqtts://127.0.0.1:%d", tport),
				Username: "edge", Password: tc.password, ClientID: "fwd-" + tc.name,
				TLS: forward.TLS{CAFile: certs.Client.CA, CertFile: certs.Client.Cert, KeyFile: certs.Client.Key}},
				forward.Route{Name: "r", Upstream: "central", Topics: []string{tc.name}, Target: "{site}/{topic}"})
			defer f.Close()
			if !tc.ok {
				waitFor(t, "auth error", 10*time.Second, f, func() bool {
					rs := f.Routes()[0]
					return rs.State == forward.StateBackingOff && strings.Contains(rs.LastError, "connect refused")
				})
				t.Logf("reported: %s", f.Routes()[0].LastError)
				if f.Stats().AckedRecords != 0 {
					t.Fatal("records acknowledged with a wrong password")
				}
				return
			}
			waitFor(t, "delivery", 15*time.Second, f, func() bool { return sub.ch.Complete(want) })
			sub.ch.Verify(t, want)
		})
	}
}

// TestSinkKeepAliveAndReject sends straight through a Sink: after idling
// for three keep-alives the connection is still the first one (it lives on
// PINGREQ/PINGRESP: a PINGRESP not read would end it at its 1.5 keep-alive
// read deadline, and a second dial would show in the log); a publish the
// broker's ACL denies fails with the PUBACK's MQTT 5 reason (0x87).
func TestSinkKeepAliveAndReject(t *testing.T) {
	acl := filepath.Join(t.TempDir(), "acl")
	if err := os.WriteFile(acl, []byte("topic write allowed/#\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := startMosquitto(t, "acl_file "+acl)
	var logs lockedLog
	s, err := mqtt.New(forward.Upstream{Kind: "mqtt", URL: "mqtt://" + m.addr(), KeepAlive: time.Second, DeliveryTimeout: 3 * time.Second},
		slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	send := func(topic string) error {
		t.Helper()
		ch := make(chan error, 1)
		s.Send(context.Background(), &forward.Record{Topic: topic, Key: []byte("k"), Value: []byte("v"), Timestamp: 1,
			Headers: []forward.Header{{Key: "h", Value: []byte{0xff}}}}, func(err error) { ch <- err })
		select {
		case err := <-ch:
			return err
		case <-time.After(10 * time.Second):
			t.Fatalf("publish to %s: no answer", topic)
			return nil
		}
	}
	if err := send("allowed/a"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := send("allowed/b"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "mqtt: connected"); n != 1 {
		t.Fatalf("%d connections, want 1:\n%s", n, logs.String())
	}
	// (Mosquitto closes the connection after it denies a publish.)
	if err := send("denied/a"); !errors.Is(err, mqtt.ErrRejected) || !strings.Contains(err.Error(), "not authorized (0x87)") {
		t.Fatalf("denied publish: %v", err)
	}
}

// lockedLog is a log destination safe for the sink's goroutines.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startForwarder starts a forwarder of lg (node "node-1" of site "site-a")
// with one MQTT upstream named "central" and one route; the caller closes
// it.
func startForwarder(t *testing.T, lg log.Log, up forward.Upstream, route forward.Route) *forward.Forwarder {
	t.Helper()
	f, err := forward.New(forward.Options{
		Log: lg, NodeID: "node-1", Site: "site-a",
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		Upstreams:  map[string]forward.Upstream{"central": up},
		Routes:     []forward.Route{route},
		Sinks:      map[string]forward.NewSinkFunc{"mqtt": mqtt.NewSink},
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.Start(context.Background())
	return f
}
