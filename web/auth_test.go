package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// serve runs one request through the handler with the given client
// address (no network: the address is what the server would see).
func serve(s *Server, method, path, remote, host string, hdr ...string) int {
	req := httptest.NewRequest(method, path, strings.NewReader(`{"records":[{"value":"x"}]}`))
	req.RemoteAddr, req.Host = remote, host
	if method == "POST" {
		req.Header.Set("Content-Type", plainJSON)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec.Code
}

func basic(user, pass string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")
}

func TestAuth(t *testing.T) {
	a := newAPI(t, func(o *Options) {
		o.Auth = AuthOptions{Users: map[string]string{"op": "secret", "viewer": "pw"}, ReadOnlyUsers: []string{"viewer"},
			Tokens: map[string]string{"rtok": "read", "wtok": "write"}}
	}, nil)
	const lan, lo = "10.1.2.3:40000", "127.0.0.1:40000"
	cases := []struct {
		name, method, path, remote, host string
		hdr                              []string
		want                             int
	}{
		{"probe from the network", "GET", "/healthz", lan, "box:8080", nil, 200},
		{"readyz from the network", "GET", "/readyz", lan, "box:8080", nil, 200},
		{"anonymous read from the network", "GET", "/metrics", lan, "box:8080", nil, 401},
		{"anonymous write from the network", "POST", "/topics/t", lan, "box:8080", nil, 401},
		{"anonymous read on loopback", "GET", "/api/status", lo, "127.0.0.1:8080", nil, 200},
		{"anonymous write on loopback", "POST", "/topics/t", lo, "localhost:8080", nil, 200},
		{"anonymous write on IPv6 loopback", "POST", "/topics/t", "[::1]:40000", "[::1]:8080", nil, 200},
		{"loopback client under a rebound DNS name", "GET", "/api/status", lo, "evil.example.com", nil, 401},
		{"user reads", "GET", "/metrics", lan, "box", []string{"Authorization", basic("op", "secret")}, 200},
		{"user writes", "POST", "/topics/t", lan, "box", []string{"Authorization", basic("op", "secret")}, 200},
		{"wrong password", "GET", "/metrics", lan, "box", []string{"Authorization", basic("op", "nope")}, 401},
		{"unknown user", "GET", "/metrics", lan, "box", []string{"Authorization", basic("who", "secret")}, 401},
		{"wrong password on loopback too", "GET", "/metrics", lo, "127.0.0.1", []string{"Authorization", basic("op", "nope")}, 401},
		{"read-only user reads", "GET", "/topics", lan, "box", []string{"Authorization", basic("viewer", "pw")}, 200},
		{"read-only user may not write", "POST", "/topics/t", lan, "box", []string{"Authorization", basic("viewer", "pw")}, 403},
		{"read token reads", "GET", "/topics", lan, "box", []string{"Authorization", "Bearer rtok"}, 200},
		{"read token may not write", "POST", "/topics/t", lan, "box", []string{"Authorization", "Bearer rtok"}, 403},
		{"write token writes", "POST", "/topics/t", lan, "box", []string{"Authorization", "Bearer wtok"}, 200},
		{"unknown token", "GET", "/topics", lan, "box", []string{"Authorization", "Bearer nope"}, 401},
		{"cross-origin write", "POST", "/topics/t", lo, "127.0.0.1:8080", []string{"Origin", "http://evil.example.com"}, 403},
		{"cross-site fetch", "POST", "/topics/t", lo, "127.0.0.1:8080", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"same-origin write", "POST", "/topics/t", lo, "127.0.0.1:8080", []string{"Origin", "http://127.0.0.1:8080"}, 200},
	}
	for _, c := range cases {
		if got := serve(a.s, c.method, c.path, c.remote, c.host, c.hdr...); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	for _, anon := range []struct {
		mode          string
		read, write   int
		loRead, loWri int
	}{
		{AnonymousNone, 401, 401, 401, 401},
		{AnonymousRead, 200, 401, 200, 200},
		{AnonymousWrite, 200, 200, 200, 200},
	} {
		b := newAPI(t, func(o *Options) { o.Auth = AuthOptions{Anonymous: anon.mode} }, nil)
		if got := serve(b.s, "GET", "/topics", lan, "box"); got != anon.read {
			t.Errorf("anonymous=%s: network read %d, want %d", anon.mode, got, anon.read)
		}
		if got := serve(b.s, "POST", "/topics/t", lan, "box"); got != anon.write {
			t.Errorf("anonymous=%s: network write %d, want %d", anon.mode, got, anon.write)
		}
		if got := serve(b.s, "GET", "/topics", lo, "127.0.0.1"); got != anon.loRead {
			t.Errorf("anonymous=%s: loopback read %d, want %d", anon.mode, got, anon.loRead)
		}
		if got := serve(b.s, "POST", "/topics/t", lo, "127.0.0.1"); got != anon.loWri {
			t.Errorf("anonymous=%s: loopback write %d, want %d", anon.mode, got, anon.loWri)
		}
	}
	for _, bad := range []AuthOptions{{Anonymous: "all"}, {ReadOnlyUsers: []string{"x"}}, {Tokens: map[string]string{"t": "admin"}}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v validated", bad)
		}
	}
}

// TestAnonymousRefusalSaysWhy: the 401 of an anonymous request names the
// reason: not from loopback, or from loopback under a name that is not a
// loopback address (the DNS-rebinding guard).
func TestAnonymousRefusalSaysWhy(t *testing.T) {
	r := httptest.NewRequest("GET", "/topics", nil)
	r.RemoteAddr, r.Host = "127.0.0.1:40000", "evil.example:8080"
	if got := anonymousRefusal(r); !strings.Contains(got, `Host "evil.example:8080" is neither`) {
		t.Errorf("rebound name: %q", got)
	}
	r.RemoteAddr, r.Host = "10.1.2.3:40000", "box:8080"
	if got := anonymousRefusal(r); got != "anonymous access is open on loopback only" {
		t.Errorf("from the network: %q", got)
	}
}
