package main

// The forwarding examples of the README and systemd/runnel.yaml are
// configurations that work: strict YAML of the keys the code reads, valid
// upstreams and routes, and (with a local Mosquitto) the MQTT example
// forwards as the README says.

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/runnel/runnel/log/logtest"
	"github.com/runnel/runnel/sync/forward"
)

// forwardingDoc is what a forwarding example may hold.
type forwardingDoc struct {
	Site      string                      `yaml:"site"`
	Upstreams map[string]forward.Upstream `yaml:"upstreams"`
	Routes    []forward.Route             `yaml:"routes"`
}

// readmeForwardingExamples returns the YAML blocks of the README's
// "Forwarding upstream" section.
func readmeForwardingExamples(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n## Forwarding upstream\n")
	if i < 0 {
		t.Fatal("README has no section Forwarding upstream")
	}
	s = s[i+1:]
	if j := strings.Index(s[3:], "\n## "); j >= 0 {
		s = s[:j+3]
	}
	var blocks []string
	for {
		i := strings.Index(s, "```yaml\n")
		if i < 0 {
			break
		}
		s = s[i+len("```yaml\n"):]
		j := strings.Index(s, "```")
		blocks = append(blocks, s[:j])
		s = s[j+3:]
	}
	return blocks
}

// systemdForwardingExample returns the commented forwarding part of
// systemd/runnel.yaml, uncommented.
func systemdForwardingExample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../systemd/runnel.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if l == "# upstreams:" {
			var out []string
			for _, l := range lines[i:] {
				l = strings.TrimPrefix(l, "#")
				out = append(out, strings.TrimPrefix(l, " "))
			}
			return "site: plant-berlin\n" + strings.Join(out, "\n")
		}
	}
	t.Fatal("systemd/runnel.yaml has no commented upstreams section")
	return ""
}

func decodeForwarding(t *testing.T, name, doc string) forwardingDoc {
	t.Helper()
	var d forwardingDoc
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, doc)
	}
	return d
}

// TestForwardingExamplesValid: every documented example decodes with only
// known keys, and its upstreams and routes pass the forwarder's checks.
func TestForwardingExamplesValid(t *testing.T) {
	docs := map[string]string{"systemd/runnel.yaml": systemdForwardingExample(t)}
	blocks := readmeForwardingExamples(t)
	if len(blocks) < 2 {
		t.Fatalf("README forwarding section has %d YAML examples, want one per upstream kind", len(blocks))
	}
	for i, b := range blocks {
		docs[fmt.Sprintf("README example %d", i+1)] = b
	}
	kinds := map[string]bool{}
	for name, doc := range docs {
		d := decodeForwarding(t, name, doc)
		if len(d.Upstreams) == 0 || len(d.Routes) == 0 {
			t.Errorf("%s: no upstreams or routes", name)
		}
		for _, u := range d.Upstreams {
			kinds[u.Kind] = true
		}
		o := forward.Options{Log: logtest.New(t), NodeID: "n1", Site: d.Site, Upstreams: d.Upstreams, Routes: d.Routes}
		if err := o.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !kinds["kafka"] || !kinds["mqtt"] {
		t.Errorf("examples cover upstream kinds %v, want kafka and mqtt", kinds)
	}
}

// TestServeForwardsToMQTTBroker runs the README's MQTT example (pointed at
// a local Mosquitto, without TLS): a device's publish to runnel arrives at
// the upstream broker under the site and the device's own topic.
func TestServeForwardsToMQTTBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	needTool(t, "mosquitto")
	needTool(t, "mosquitto_pub")
	needTool(t, "mosquitto_sub")
	var doc string
	for _, b := range readmeForwardingExamples(t) {
		if strings.Contains(b, "kind: mqtt") {
			doc = b
		}
	}
	d := decodeForwarding(t, "README MQTT example", doc)
	upAddr := startMosquitto(t)
	for name, u := range d.Upstreams {
		u.URL, u.TLS, u.Username, u.Password = "mqtt://"+upAddr, forward.TLS{}, "", ""
		d.Upstreams[name] = u
	}
	cfgYAML, err := yaml.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "runnel.yaml")
	os.WriteFile(cfg, cfgYAML, 0o644)
	s := startRunnel(t, 1, "--config", cfg)

	upHost, upPort, _ := net.SplitHostPort(upAddr)
	sub := startBackground(t, "mosquitto_sub", "-h", upHost, "-p", upPort, "-t", d.Site+"/#", "-C", "1", "-v", "-W", "30")
	time.Sleep(300 * time.Millisecond) // let the subscription register
	host, port, _ := net.SplitHostPort(s.mqtt)
	runTool(t, 20*time.Second, "", "mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-t", "sensors/hall3/temp", "-m", "21.5")
	got := strings.TrimSpace(sub.wait(t, 35*time.Second))
	if want := d.Site + "/sensors/hall3/temp 21.5"; got != want {
		t.Fatalf("upstream broker got %q, want %q\n%s", got, want, s.LogTail())
	}
}

// startMosquitto runs a Mosquitto (MQTT 5, anonymous) on a free loopback
// port until the test ends and returns its address.
func startMosquitto(t *testing.T) string {
	t.Helper()
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\npersistence false\n"), 0o644)
	cmd := exec.Command("mosquitto", "-c", conf)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(end) {
			t.Fatalf("mosquitto on %s not up: %s", addr, out.String())
		}
	}
}
