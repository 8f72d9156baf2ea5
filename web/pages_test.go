package web

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestDashboardAndPages(t *testing.T) {
	var paused []string
	a := newAPI(t, func(o *Options) {
		o.Ingest = map[string]func() IngestCount{"kafka": func() IngestCount { return IngestCount{Records: 5, Bytes: 50} }}
		o.Consumers = func() ([]ConsumerGroup, error) {
			return []ConsumerGroup{{Name: "g", State: "Stable", Members: []ConsumerMember{{ID: "m1", ClientID: "c", ClientHost: "/127.0.0.1"}},
				Offsets: []CommittedOffset{{Topic: "t", Partition: 0, Offset: 1}}}}, nil
		}
		o.MQTT = func() any { return map[string]any{"clients": []any{}} }
		o.Routes = func() any { return []map[string]any{{"name": "r1"}} }
		o.PauseRoute = func(name string, p bool) error {
			if name != "r1" {
				return errors.New("no route " + name)
			}
			paused = append(paused, name+map[bool]string{true: ":pause", false: ":resume"}[p])
			return nil
		}
		o.LinkBudget = 1e6
	}, nil)
	if code, body, _ := a.do("POST", "/topics/t", plainJSON, `{"records":[{"value":"a"},{"value":"b"},{"value":"c"}]}`); code != 200 {
		t.Fatalf("produce %d %s", code, body)
	}
	code, body, h := a.do("GET", "/ui/", "", "")
	if code != 200 || !strings.Contains(body, `<script src="app.js">`) || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("/ui/: %d %s", code, h)
	}
	for _, f := range []string{"/ui/app.js", "/ui/style.css"} {
		if code, _, _ := a.do("GET", f, "", ""); code != 200 {
			t.Errorf("%s: %d", f, code)
		}
	}
	if code, body, _ := a.do("GET", "/", "", ""); code != 200 || !strings.Contains(body, `href="/ui/"`) {
		t.Fatalf("/: %d %s", code, body)
	}
	code, body, _ = a.do("GET", "/api/overview", "", "")
	var ov map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &ov) != nil || ov["node_id"] != "n1" {
		t.Fatalf("/api/overview: %d %s", code, body)
	}
	if !strings.Contains(body, `"protocol": "kafka"`) || !strings.Contains(body, `"protocol": "http"`) || !strings.Contains(body, `"records_total": 3`) {
		t.Errorf("overview ingest: %s", body)
	}
	for _, k := range []string{"disk", "writes", "fsync", "clock", "alarms", "read_only"} {
		if ov[k] == nil {
			t.Errorf("overview lacks %s", k)
		}
	}
	code, body, _ = a.do("GET", "/api/consumers", "", "")
	if code != 200 || !strings.Contains(body, `"lag_records": 2`) || !strings.Contains(body, `"client_id": "c"`) || !strings.Contains(body, `"lag_seconds": 0.`) && !strings.Contains(body, `"lag_seconds": `) {
		t.Fatalf("/api/consumers: %d %s", code, body)
	}
	if code, body, _ := a.do("GET", "/api/mqtt", "", ""); code != 200 || !strings.Contains(body, `"enabled": true`) {
		t.Fatalf("/api/mqtt: %d %s", code, body)
	}
	if code, body, _ := a.do("GET", "/api/uplink", "", ""); code != 200 || !strings.Contains(body, `"budget_bytes_per_day": 1000000`) || !strings.Contains(body, `"r1"`) ||
		!regexp.MustCompile(`"now": "\d{4}-\d\d-\d\dT`).MatchString(body) {
		t.Fatalf("/api/uplink: %d %s", code, body)
	}
	if code, body, _ := a.do("POST", "/api/routes/r1/pause", "", ""); code != 200 {
		t.Fatalf("pause: %d %s", code, body)
	}
	if code, body, _ := a.do("POST", "/api/routes/r1/resume", "", ""); code != 200 {
		t.Fatalf("resume: %d %s", code, body)
	}
	code, body, _ = a.do("POST", "/api/routes/nope/pause", "", "")
	wantError(t, "pause unknown route", code, body, 404, codeRouteNotFound)
	if strings.Join(paused, " ") != "r1:pause r1:resume" {
		t.Fatalf("pause calls %v", paused)
	}
	code, body, _ = a.do("GET", "/api/topics/t/offsets?time=0", "", "")
	if code != 200 || !strings.Contains(body, `"offset": 0`) || !strings.Contains(body, `"end": 3`) {
		t.Fatalf("offsets for time: %d %s", code, body)
	}
	code, body, _ = a.do("GET", "/metrics", "", "")
	for _, want := range []string{"runnel_http_produce_records_total 3", "runnel_http_tail_clients 0"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// Off components.
	b := newAPI(t, nil, nil)
	if _, body, _ := b.do("GET", "/api/mqtt", "", ""); !strings.Contains(body, `"enabled": false`) {
		t.Errorf("/api/mqtt off: %s", body)
	}
	if _, body, _ := b.do("GET", "/api/consumers", "", ""); strings.TrimSpace(body) != "[]" {
		t.Errorf("/api/consumers off: %s", body)
	}
	code, body, _ = b.do("POST", "/api/routes/r1/pause", "", "")
	wantError(t, "pause without routes", code, body, 404, codeRouteNotFound)
}
