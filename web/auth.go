package web

import (
	"context"
	"time"

	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"github.com/runnel/runnel/ingest/access"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Access control of the HTTP listener, Mosquitto 2.0's convention: what
// comes from the loopback interface may do everything without
// credentials; from any other address a request needs credentials
// (HTTP Basic with a user of the Kafka listener's SASL users, or a bearer
// token), unless Auth.Anonymous opens it explicitly. /healthz and /readyz
// are always open (probes).
//
// Roles: read (status, metrics, reads, the live tail, the dashboard) and
// write (also produce, publish, pause/resume of routes). Users are write
// users unless listed in Auth.ReadOnlyUsers; tokens carry their role.

type role int

const (
	rolePublic role = iota // no credentials ever needed
	roleRead
	roleWrite
)

func (r role) String() string {
	switch r {
	case roleRead:
		return "read"
	case roleWrite:
		return "write"
	}
	return "public"
}

// Anonymous access settings (AuthOptions.Anonymous).
const (
	AnonymousLoopback = "loopback" // loopback clients may write; others need credentials (default)
	AnonymousNone     = "none"     // credentials always needed
	AnonymousRead     = "read"     // anyone may read; writes need credentials (or loopback)
	AnonymousWrite    = "write"    // anyone may do everything (a trusted, isolated network only)
)

// AuthOptions configures access to the HTTP listener.
type AuthOptions struct {
	// Users maps user name → password for HTTP Basic authentication (the
	// Kafka listener's SASL/PLAIN users).
	Users map[string]string
	// ReadOnlyUsers are users of Users with the read role only.
	ReadOnlyUsers []string
	// Tokens maps a bearer token → its role, "read" or "write".
	Tokens map[string]string
	// Anonymous: AnonymousLoopback (""), AnonymousNone, AnonymousRead or
	// AnonymousWrite.
	Anonymous string
	// Access, when set, is the permission model (package access) applied
	// after the role check to HTTP Basic users and anonymous clients
	// (access.Anonymous): see access.go. Bearer tokens keep their role.
	Access *access.Policy
	// Passwords checks HTTP Basic credentials of users not in Users (the
	// users file's accounts: bcrypt). nil = Users only.
	Passwords interface {
		CheckPassword(user string, password []byte) bool
	}
}

// Validate reports the first invalid field.
func (a *AuthOptions) Validate() error {
	switch a.Anonymous {
	case "", AnonymousLoopback, AnonymousNone, AnonymousRead, AnonymousWrite:
	default:
		return fmt.Errorf("web: anonymous access %q: want loopback, none, read or write", a.Anonymous)
	}
	for _, u := range a.ReadOnlyUsers {
		if _, ok := a.Users[u]; !ok && a.Passwords == nil {
			return fmt.Errorf("web: read-only user %q is not a user", u)
		}
	}
	for _, r := range a.Tokens {
		if r != "read" && r != "write" {
			return fmt.Errorf("web: token role %q: want read or write", r)
		}
	}
	return nil
}

// authenticator decides the role of a request.
type authenticator struct {
	users     map[string][32]byte // user → sha256(password)
	readOnly  map[string]bool
	tokens    map[[32]byte]role // sha256(token) → role
	anonymous string
	policy    *access.Policy
	backoff   *access.Backoff // failed credentials per address
	passwords interface {
		CheckPassword(user string, password []byte) bool
	}
}

func newAuthenticator(a AuthOptions) *authenticator {
	au := &authenticator{users: map[string][32]byte{}, readOnly: map[string]bool{}, tokens: map[[32]byte]role{}, anonymous: a.Anonymous, policy: a.Access, passwords: a.Passwords, backoff: access.DefaultBackoff()}
	if au.anonymous == "" {
		au.anonymous = AnonymousLoopback
	}
	for u, p := range a.Users {
		au.users[u] = sha256.Sum256([]byte(p))
	}
	for _, u := range a.ReadOnlyUsers {
		au.readOnly[u] = true
	}
	for t, r := range a.Tokens {
		rl := roleRead
		if r == "write" {
			rl = roleWrite
		}
		au.tokens[sha256.Sum256([]byte(t))] = rl
	}
	return au
}

var errBadCredentials = errors.New("bad credentials")

// credentials returns the role the request's credentials grant: 0 (none
// given) or an error for wrong ones, and the HTTP Basic user name ("" for
// a token or none).
func (au *authenticator) credentials(r *http.Request) (role, string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return 0, "", nil
	}
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		if rl, ok := au.tokens[sha256.Sum256([]byte(strings.TrimSpace(tok)))]; ok {
			return rl, "", nil
		}
		return 0, "", errBadCredentials
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return 0, "", errBadCredentials
	}
	want, known := au.users[user]
	got := sha256.Sum256([]byte(pass))
	switch {
	case known:
		if subtle.ConstantTimeCompare(want[:], got[:]) != 1 {
			return 0, "", errBadCredentials
		}
	case au.passwords == nil || !au.passwords.CheckPassword(user, []byte(pass)):
		return 0, "", errBadCredentials
	}
	if au.readOnly[user] {
		return roleRead, user, nil
	}
	return roleWrite, user, nil
}

// anonymousRole is what a request without credentials may do.
func (au *authenticator) anonymousRole(r *http.Request) role {
	switch au.anonymous {
	case AnonymousWrite:
		return roleWrite
	case AnonymousNone:
		return 0
	}
	if loopbackRequest(r) {
		return roleWrite
	}
	if au.anonymous == AnonymousRead {
		return roleRead
	}
	return 0
}

// anonymousRefusal says why an anonymous request got no role: it does not
// come from the loopback interface, or it does but names the server by a
// name that is not a loopback address (a page whose DNS name was rebound
// to 127.0.0.1 looks like that).
func anonymousRefusal(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return fmt.Sprintf("anonymous access is open on loopback to requests that name the server by a loopback address or localhost, and Host %q is neither (a guard against DNS rebinding)", r.Host)
		}
	}
	return "anonymous access is open on loopback only"
}

// loopbackRequest: the client is on the loopback interface and names the
// server by a loopback name (an IP literal or localhost), so a page whose
// DNS name was rebound to 127.0.0.1 does not count as local.
func loopbackRequest(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return false
	}
	h := r.Host
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	return net.ParseIP(h) != nil
}

// crossOrigin: a browser sent the request from a page of another origin
// (a form posted by some web site to the box on the user's network).
func crossOrigin(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return true
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return false
	}
	u, err := url.Parse(o)
	return err != nil || u.Host != r.Host
}

// authorize wraps h with the role check.
func (s *Server) authorize(need role, h http.HandlerFunc) http.Handler {
	if need == rolePublic {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, user, err := s.auth.credentials(r)
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			s.stats.authFailures.Add(1)
			// Password guessing from one address gets slower and slower.
			select {
			case <-time.After(s.auth.backoff.Failed(host)):
			case <-r.Context().Done():
				return
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="runnel", charset="UTF-8"`)
			writeError(w, errf(http.StatusUnauthorized, codeUnauthorized, "wrong user name, password or token"))
			return
		}
		if user != "" {
			s.auth.backoff.Succeeded(host)
		}
		anonymous := got == 0
		if anonymous {
			got = s.auth.anonymousRole(r)
		}
		if got == 0 || anonymous && got < need {
			s.stats.authFailures.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="runnel", charset="UTF-8"`)
			writeError(w, errf(http.StatusUnauthorized, codeUnauthorized, "credentials required (HTTP Basic with an account of users-file or kafka.users, or a bearer token): "+anonymousRefusal(r)))
			return
		}
		if got < need {
			writeError(w, errf(http.StatusForbidden, codeForbidden, "the "+got.String()+" role may not do this"))
			return
		}
		if need == roleWrite && crossOrigin(r) {
			writeError(w, errf(http.StatusForbidden, codeForbidden, "cross-origin write refused"))
			return
		}
		if s.auth.policy != nil {
			if user == "" && anonymous {
				user = access.Anonymous
			}
			if user != "" {
				if e := s.auth.check(r, user); e != nil {
					writeError(w, e)
					return
				}
				r = r.WithContext(context.WithValue(r.Context(), principalKey{}, user))
			}
		}
		h(w, r)
	})
}
