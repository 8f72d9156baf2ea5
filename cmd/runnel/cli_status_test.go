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
