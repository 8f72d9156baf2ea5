package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestIntegrationHTTPProduceCurlKcat: records produced with curl in each
// content type are read back with kcat (key, value, headers, partition,
// offset as answered) and with curl's stateless read; a refused request
// stores nothing kcat can see.
func TestIntegrationHTTPProduceCurlKcat(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	curl, kcat := needTool(t, "curl"), needTool(t, "kcat")
	s := startRunnel(t, 3)
	base := "http://" + s.HTTPAddr()
	post := func(path, ctype, body string) string {
		return runTool(t, 20*time.Second, body, curl, "-sS", "-w", "\n%{http_code}", "-X", "POST", "-H", "Content-Type: "+ctype, "--data-binary", "@-", base+path)
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	out := post("/topics/events", "application/vnd.kafka.binary.v2+json",
		`{"records":[{"key":"`+b64("dev-1")+`","value":"`+b64("v1")+`","headers":[{"key":"site","value":"`+b64("plant-7")+`"}]},{"value":"`+b64("v2")+`","partition":2}]}`)
	if !strings.HasSuffix(out, "\n200") || !strings.Contains(out, `"offsets":[{"partition":`) {
		t.Fatalf("binary produce: %s", out)
	}
	if out := post("/topics/events", "application/vnd.kafka.json.v2+json", `{"records":[{"value":{"t":21.5},"partition":1}]}`); !strings.HasSuffix(out, "\n200") {
		t.Fatalf("json produce: %s", out)
	}
	if out := post("/topics/events/partitions/0", "application/json", `{"records":[{"key":"k","value":"plain text"}]}`); !strings.HasSuffix(out, "\n200") {
		t.Fatalf("plain produce: %s", out)
	}
	if out := post("/topics/events", "application/vnd.kafka.binary.v2+json", `{"records":[{"value":"`+b64("ok")+`"},{"value":"not base64!"}]}`); !strings.HasSuffix(out, "\n422") || !strings.Contains(out, `"error_code":42205`) {
		t.Fatalf("bad base64: %s", out)
	}
	if out := post("/topics/events", "application/json", `{"records":[`); !strings.HasSuffix(out, "\n400") {
		t.Fatalf("bad JSON: %s", out)
	}
	got := runTool(t, 30*time.Second, "", kcat, "-C", "-b", s.Addr(), "-t", "events", "-e", "-q", "-f", `%p|%o|%k|%s|%h\n`)
	ls := lines(got)
	if len(ls) != 4 {
		t.Fatalf("kcat read %d records:\n%s", len(ls), got)
	}
	for _, want := range []string{"0|", "|k|plain text|", "1|0||{\"t\":21.5}|", "2|0||v2|", "|dev-1|v1|site=plant-7"} {
		if !strings.Contains(got, want) {
			t.Errorf("kcat read lacks %q:\n%s", want, got)
		}
	}
	read := runTool(t, 20*time.Second, "", curl, "-sS", base+"/topics/events/partitions/0/records?offset=0")
	if !strings.Contains(read, `"value":"plain text"`) || !strings.Contains(read, `"key":"k"`) {
		t.Fatalf("curl read: %s", read)
	}
}

// TestIntegrationHTTPMQTTPublish: a publish over HTTP reaches a
// mosquitto_sub subscriber and is stored in the MQTT route's log topic
// (read with kcat), as a client's PUBLISH would be.
func TestIntegrationHTTPMQTTPublish(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	curl, kcat, sub := needTool(t, "curl"), needTool(t, "kcat"), needTool(t, "mosquitto_sub")
	s := startRunnel(t, 1)
	host, port, _ := strings.Cut(s.mqtt, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sub, "-h", host, "-p", port, "-t", "plant/#", "-C", "1", "-v", "-q", "1")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	lineCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lineCh <- sc.Text()
		}
		close(lineCh)
	}()
	// The subscription is in place once a retained probe published before
	// it is... simply retry the publish until the subscriber sees one.
	deadline := time.Now().Add(20 * time.Second)
	var line string
	for line == "" && time.Now().Before(deadline) {
		out := runTool(t, 10*time.Second, `{"topic":"plant/hall3/temp","payload":"21.5","qos":1}`, curl, "-sS", "-w", "\n%{http_code}",
			"-H", "Content-Type: application/json", "--data-binary", "@-", "http://"+s.HTTPAddr()+"/api/v5/publish")
		if !strings.HasSuffix(out, "\n200") || !strings.Contains(out, `"stored":true`) {
			t.Fatalf("publish: %s", out)
		}
		select {
		case line = <-lineCh:
		case <-time.After(500 * time.Millisecond):
		}
	}
	if line != "plant/hall3/temp 21.5" {
		t.Fatalf("mosquitto_sub got %q", line)
	}
	got := runTool(t, 30*time.Second, "", kcat, "-C", "-b", s.Addr(), "-t", "mqtt", "-e", "-q", "-c", "1", "-f", `%k|%s|%h\n`)
	if !strings.HasPrefix(got, "plant/hall3/temp|21.5|") || !strings.Contains(got, "mqtt.qos=1") || !strings.Contains(got, "mqtt.client=runnel-api") {
		t.Fatalf("kcat: %q", got)
	}
}
