package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCLIStatus runs `runnel status` against a real `runnel serve` with a
// route to an upstream that refuses connections: the Kafka side (brokers,
// topics) and the node's /api/status document as the server writes it.
func TestCLIStatus(t *testing.T) {
	srv := startRunnel(t, 1, "--node-id", "edge-7", "--upstream-kafka", freeAddr(t), "--forward", "s1")
	b := srv.Addr()
	mustCLI(t, "x\ny\n", "produce", "s1", "--brokers", b)
	var out string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out = mustCLI(t, "", "status", "--brokers", b, "--http", srv.HTTPAddr())
		if strings.Contains(out, "state: backing-off") && strings.Contains(out, "connection refused") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the route never reported its refused upstream:\n%s", out)
		}
	}
	for _, want := range []string{"Brokers:", "Cluster: runnel-edge-7", "node_id: edge-7", "routes: (1)", "name: forward-s1",
		"lag_records: 2", "damaged: none", "not_ready: none", "ready: true", "disk_short: false"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	for _, re := range []string{
		`(?m)^\s+uptime_seconds: \d+ \((\d+h)?(\d+m)?\d+s\)$`,
		`(?m)^\s+disk_free_bytes: [1-9]\d* \(\d+\.\d (B|KiB|MiB|GiB|TiB)\)$`,
		`(?m)^\s+last_error: .*connection refused`,
		`(?m)^\s+state_since: \d{4}-\d\d-\d\dT\S+ \((\d+h)?(\d+m)?\d+s ago\)$`,
		`(?m)^\s+down_since: \d{4}-\d\d-\d\dT\S+ \((\d+h)?(\d+m)?\d+s ago\)$`,
		`(?m)^s1\s+1\s+2\s+2$`,
	} {
		if !regexpMatch(re, out) {
			t.Errorf("status output does not match %s:\n%s", re, out)
		}
	}
	if strings.Contains(out, "null") {
		t.Errorf("status output shows a raw JSON null:\n%s", out)
	}
	// /metrics has the state and since when (retrying its backlog, the
	// route goes between backing-off and starting).
	resp, err := http.Get("http://" + srv.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, re := range []string{
		`(?m)^runnel_route_state\{route="forward-s1",state="(backing-off|starting)",upstream="default"\} 1$`,
		`(?m)^runnel_route_state_since_timestamp_seconds\{route="forward-s1",upstream="default"\} 1\.\d+e\+09$`,
		`(?m)^runnel_route_down_since_timestamp_seconds\{route="forward-s1",upstream="default"\} 1\.\d+e\+09$`,
	} {
		if !regexpMatch(re, string(body)) {
			t.Errorf("/metrics does not match %s:\n%s", re, grepLines(string(body), "runnel_route_"))
		}
	}
	// Without the HTTP side (another Kafka server) status still works.
	out = mustCLI(t, "", "status", "--brokers", b, "--http", freeAddr(t))
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

// TestHTTPGet drives the status command's GET against real HTTP servers:
// a chunked body, an http:// proxy (absolute request URI), https with the
// server's roots, https through a CONNECT tunnel, and a server that does
// not answer before the context ends.
func TestHTTPGet(t *testing.T) {
	big := strings.Repeat(`{"k":"0123456789abcdef"},`, 2000)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 3; i++ { // no Content-Length: chunked
			io.WriteString(w, big)
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, r.Host)
	}))
	defer backend.Close()
	tlsBackend := httptest.NewUnstartedServer(backend.Config.Handler)
	tlsBackend.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // the unknown-root case's handshake error
	tlsBackend.StartTLS()
	defer tlsBackend.Close()
	roots := x509.NewCertPool()
	roots.AddCert(tlsBackend.Certificate())

	var proxied []string
	var mu sync.Mutex
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		proxied = append(proxied, r.Method+" "+r.RequestURI)
		mu.Unlock()
		if r.Method != http.MethodConnect {
			io.WriteString(w, "via proxy "+r.Host)
			return
		}
		up, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			up.Close()
			return
		}
		go func() { io.Copy(up, brw); up.Close() }()
		io.Copy(c, up)
		c.Close()
	}))
	defer proxy.Close()
	proxyURL, _ := url.Parse(proxy.URL)

	get := func(rawURL string, viaProxy bool, tlsConf *tls.Config) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			return "", err
		}
		var pf func(*http.Request) (*url.URL, error)
		if viaProxy {
			pf = http.ProxyURL(proxyURL)
		}
		resp, err := httpGet(ctx, req, pf, tlsConf)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	host := strings.TrimPrefix(backend.URL, "http://")
	tlsHost := strings.TrimPrefix(tlsBackend.URL, "https://")
	if body, err := get(backend.URL+"/api/status", false, nil); err != nil || body != strings.Repeat(big, 3)+host {
		t.Errorf("chunked: %d bytes, err %v", len(body), err)
	}
	if body, err := get("http://runnel.test/api/status", true, nil); err != nil || body != "via proxy runnel.test" {
		t.Errorf("http proxy: %q, %v", body, err)
	}
	if body, err := get(tlsBackend.URL+"/api/status", false, &tls.Config{RootCAs: roots}); err != nil || body != strings.Repeat(big, 3)+tlsHost {
		t.Errorf("https: %d bytes, err %v", len(body), err)
	}
	if _, err := get(tlsBackend.URL+"/api/status", false, nil); err == nil {
		t.Errorf("https with an unknown root: no error")
	}
	if body, err := get(tlsBackend.URL+"/api/status", true, &tls.Config{RootCAs: roots}); err != nil || body != strings.Repeat(big, 3)+tlsHost {
		t.Errorf("https via CONNECT: %d bytes, err %v", len(body), err)
	}
	mu.Lock()
	want := []string{"GET http://runnel.test/api/status", "CONNECT " + tlsHost}
	if !slices.Equal(proxied, want) {
		t.Errorf("proxy saw %q, want %q", proxied, want)
	}
	mu.Unlock()

	// A server that accepts and never answers: the context ends the wait.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ln.Addr().String()+"/api/status", nil)
	if _, err := httpGet(ctx, req, nil, nil); err == nil {
		t.Errorf("silent server: no error")
	}
}

// TestPrintStatusDocOrder: the status document's well-known keys come first
// in their fixed order (node, version, uptime, ...), the rest sorted by name.
func TestPrintStatusDocOrder(t *testing.T) {
	doc := map[string]any{"zeta": 1, "routes": 2, "alpha": 3, "node_id": 4, "uptime_seconds": 5, "version": 6, "peers": 7, "beta": 8, "disk_free_bytes": 9}
	var b strings.Builder
	printStatusDoc(&b, doc)
	var keys []string
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		k, _, _ := strings.Cut(strings.TrimSpace(l), ":")
		keys = append(keys, k)
	}
	want := []string{"node_id", "version", "uptime_seconds", "disk_free_bytes", "routes", "peers", "alpha", "beta", "zeta"}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys printed in order %v, want %v:\n%s", keys, want, b.String())
	}
}

// TestStatusDefaultHTTPAddr: without --http, status asks the first
// broker's host on port 8080.
func TestStatusDefaultHTTPAddr(t *testing.T) {
	for brokers, want := range map[string]string{
		"127.0.0.5:9092":              "127.0.0.5:8080",
		"gw-3.plant:19092,other:9092": "gw-3.plant:8080",
		"[::1]:9092":                  "[::1]:8080",
		"":                            "127.0.0.1:8080",
	} {
		if got := defaultHTTPAddr(&clientFlags{brokers: brokers}); got != want {
			t.Errorf("brokers %q: %q, want %q", brokers, got, want)
		}
	}
}
