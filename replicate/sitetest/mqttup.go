package sitetest

// An MQTT upstream for the site: a Mosquitto broker on the test process's
// address (the nodes reach it from their namespaces) and one subscriber
// (mosquitto_sub, MQTT 5, QoS 1, a persistent session) that writes every
// message it receives, user properties included, as a JSON line. The
// lines become UpstreamRecords (the origin headers are MQTT 5 user
// properties there), so CheckUpstream judges an MQTT upstream as it does
// a Kafka one.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// MQTTUpstream is a Mosquitto broker and a subscriber recording what it
// receives on one topic filter.
type MQTTUpstream struct {
	t      testing.TB
	dir    string
	addr   string
	filter string
	bin    string
	broker *exec.Cmd
	sub    *exec.Cmd
	out    string // the subscriber's JSON lines (appended across restarts)
}

// StartMQTTUpstream starts Mosquitto listening on host (Cluster.HostIP)
// and a subscriber to filter. It skips the test when mosquitto or
// mosquitto_sub is missing (fails with CI=true); `make test-deps`
// installs them.
func StartMQTTUpstream(t testing.TB, host, filter string) *MQTTUpstream {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
	}
	_, errSub := exec.LookPath("mosquitto_sub")
	if _, err := os.Stat(bin); err != nil || errSub != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sitetest: mosquitto or mosquitto_sub not installed (Debian packages mosquitto, mosquitto-clients)")
		}
		t.Skip("sitetest: mosquitto or mosquitto_sub not installed (Debian packages mosquitto, mosquitto-clients); skipping")
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("sitetest: free port on %s: %v", host, err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	m := &MQTTUpstream{t: t, dir: t.TempDir(), addr: net.JoinHostPort(host, strconv.Itoa(port)), filter: filter, bin: bin}
	m.out = filepath.Join(m.dir, "received.jsonl")
	user := ""
	if os.Getuid() == 0 {
		user = "user root\n" // else mosquitto drops to user mosquitto and cannot write its directory
	}
	// Persistence and no queue limit: the subscriber's session keeps what
	// arrives while the broker restarts or the subscriber reconnects.
	conf := user + fmt.Sprintf("persistence true\npersistence_location %s/\nautosave_interval 1\nmax_queued_messages 0\nmax_inflight_messages 100\nlog_dest stderr\nlog_type error\nlog_type warning\nlistener %d %s\nallow_anonymous true\n", m.dir, port, host)
	if err := os.WriteFile(filepath.Join(m.dir, "mosquitto.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.stop)
	m.Restart()
	return m
}

// Addr is the broker's host:port.
func (m *MQTTUpstream) Addr() string { return m.addr }

// URL is the broker's address as an upstream url (mqtt://host:port).
func (m *MQTTUpstream) URL() string { return "mqtt://" + m.addr }

// Stop ends the broker (SIGTERM: it saves its sessions) and the
// subscriber.
func (m *MQTTUpstream) Stop() {
	end := func(c *exec.Cmd) {
		if c == nil || c.Process == nil || c.ProcessState != nil {
			return
		}
		c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.Process.Kill()
			<-done
		}
	}
	end(m.sub)
	end(m.broker)
}

func (m *MQTTUpstream) stop() { m.Stop() }

// Restart starts the broker (again) and the subscriber, which resumes
// its persistent session.
func (m *MQTTUpstream) Restart() {
	m.t.Helper()
	m.Stop()
	m.broker = exec.Command(m.bin, "-c", filepath.Join(m.dir, "mosquitto.conf"))
	m.broker.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	m.broker.Stderr = os.Stderr
	if err := m.broker.Start(); err != nil {
		m.t.Fatalf("sitetest: start mosquitto: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", m.addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("sitetest: mosquitto not listening on %s: %v", m.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	f, err := os.OpenFile(m.out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		m.t.Fatal(err)
	}
	defer f.Close()
	host, port, _ := net.SplitHostPort(m.addr)
	m.sub = exec.Command("mosquitto_sub", "-h", host, "-p", port, "-V", "mqttv5", "-q", "1", "-c", "-i", "sitetest-upstream",
		"-x", "-1", "-t", m.filter, "-F", "%j")
	m.sub.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	m.sub.Stdout, m.sub.Stderr = f, os.Stderr
	if err := m.sub.Start(); err != nil {
		m.t.Fatalf("sitetest: start mosquitto_sub: %v", err)
	}
}

// mqttLine is one message as mosquitto_sub -F %j prints it.
type mqttLine struct {
	Topic      string `json:"topic"`
	Properties struct {
		User map[string]string `json:"user-properties"`
	} `json:"properties"`
	Payload json.RawMessage `json:"payload"`
}

// Records returns what the subscriber received so far, in arrival order,
// as UpstreamRecords: Topic is the MQTT topic, Partition 0, Offset the
// arrival's index, the user properties are the headers. A line cut short
// by a subscriber being stopped is skipped.
func (m *MQTTUpstream) Records() ([]UpstreamRecord, error) {
	data, err := os.ReadFile(m.out)
	if err != nil {
		return nil, err
	}
	var out []UpstreamRecord
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var l mqttLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			continue
		}
		// A payload that is JSON is printed as it is, any other as a
		// JSON string.
		value := []byte(l.Payload)
		var s string
		if json.Unmarshal(l.Payload, &s) == nil {
			value = []byte(s)
		}
		r := &kgo.Record{Topic: l.Topic, Offset: int64(len(out)), Value: value}
		for k, v := range l.Properties.User {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
		// The JSON object loses the order of the properties; the content
		// hash must not depend on it.
		slices.SortFunc(r.Headers, func(a, b kgo.RecordHeader) int { return strings.Compare(a.Key, b.Key) })
		out = append(out, UpstreamRecordOf(r))
	}
	return out, sc.Err()
}

// CheckUntil checks what the subscriber received against acked until
// nothing acknowledged is missing or timeout passes, and returns the last
// report.
func (m *MQTTUpstream) CheckUntil(t testing.TB, timeout time.Duration, acked map[OriginPartition][]Acked) *UpstreamReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		recs, err := m.Records()
		if err != nil && ctx.Err() != nil {
			t.Fatalf("sitetest: read the MQTT upstream's records: %v", err)
		}
		if err == nil {
			rep := CheckUpstream(recs, acked)
			if rep.Missing == 0 || ctx.Err() != nil {
				return rep
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
