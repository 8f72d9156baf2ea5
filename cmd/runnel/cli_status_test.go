package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestStatus(t *testing.T) {
	b := fakeCluster(t)
	mustCLI(t, "x\ny\n", "produce", "s1", "--brokers", b)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/status" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"node_id":"edge-7","uptime_seconds":3725,"disk":{"free_bytes":1073741824,"total_bytes":2147483648},"routes":[{"name":"up","lag":12,"last_error":null}],"damaged":null,"not_ready":[],"peers":{}}`))
	}))
	defer hs.Close()
	out := mustCLI(t, "", "status", "--brokers", b, "--http", strings.TrimPrefix(hs.URL, "http://"))
	for _, want := range []string{"Brokers:", "s1", "node_id: edge-7", "uptime_seconds: 3725 (1h2m5s)", "free_bytes: 1073741824 (1.0 GiB)", "routes: (1)", "lag: 12",
		"damaged: none", "not_ready: none", "peers: none", "last_error: none"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "null") {
		t.Errorf("status output shows a raw JSON null:\n%s", out)
	}
	if !regexpMatch(`s1\s+1\s+2\s+2`, out) {
		t.Errorf("status topic line wrong:\n%s", out)
	}
	// Without the HTTP side (another Kafka server) status still works.
	hs.Close()
	out = mustCLI(t, "", "status", "--brokers", b, "--http", strings.TrimPrefix(hs.URL, "http://"))
	if !strings.Contains(out, "unavailable") || !strings.Contains(out, "s1") {
		t.Errorf("status without HTTP:\n%s", out)
	}
	out = mustCLI(t, "", "status", "--brokers", b, "--http", "")
	if strings.Contains(out, "Node") {
		t.Errorf("status --http '' still asked HTTP:\n%s", out)
	}
	if r := runCLI(t, "", "status", "--brokers", "127.0.0.1:1", "--timeout", "1s", "--http", ""); r.code != 1 {
		t.Errorf("status against a closed port: %+v", r)
	}
}
