package mqtt

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"
)

// authorizer checks credentials and ACL rules. Immutable after New except
// for the cache and the users (SetUsers).
type authorizer struct {
	anonymous  bool
	remoteAnon bool                              // anonymous clients off loopback too
	users      atomic.Pointer[map[string][]byte] // name → bcrypt hash; replaced by SetUsers
	rules      []ACLRule

	// bcrypt costs tens of milliseconds on an edge CPU; a reconnect storm
	// would pin the cores. The SHA-256 of the last password that matched
	// each user is cached (in memory only).
	mu    sync.Mutex
	cache map[string][32]byte // guarded by mu
}

func newAuthorizer(o *Options) *authorizer {
	a := &authorizer{
		anonymous:  o.AllowAnonymous,
		remoteAnon: o.AllowRemoteAnonymous,
		rules:      o.ACL,
		cache:      map[string][32]byte{},
	}
	a.setUsers(o.Users)
	return a
}

func (a *authorizer) setUsers(us []User) {
	m := make(map[string][]byte, len(us))
	for _, u := range us {
		m[u.Name] = []byte(u.PasswordHash)
	}
	a.users.Store(&m)
	a.mu.Lock()
	clear(a.cache)
	a.mu.Unlock()
}

// login reports whether a client may connect with these credentials.
// certUser is the verified client certificate name when certificates act
// as user names ("" otherwise); remote is the client's address.
func (a *authorizer) login(user, password []byte, certUser, remote string) bool {
	if certUser != "" {
		return true
	}
	if len(user) == 0 {
		return a.anonymous && (a.remoteAnon || loopbackAddr(remote))
	}
	hash, ok := (*a.users.Load())[string(user)]
	if !ok {
		// Spend the same time as a real check so user names cannot be probed.
		_ = bcrypt.CompareHashAndPassword(dummyHash(), password)
		return false
	}
	sum := sha256.Sum256(password)
	a.mu.Lock()
	c, cached := a.cache[string(user)]
	a.mu.Unlock()
	if cached && subtle.ConstantTimeCompare(c[:], sum[:]) == 1 {
		return true
	}
	if bcrypt.CompareHashAndPassword(hash, password) != nil {
		return false
	}
	a.mu.Lock()
	a.cache[string(user)] = sum
	a.mu.Unlock()
	return true
}

// dummyHash is a bcrypt hash at the default cost, compared against for
// unknown users.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("runnel"), bcrypt.DefaultCost)
	return h
})

// allowed reports whether user (empty = anonymous) on client may read or
// write topic (a topic name, or a filter when subscribing). First matching
// rule wins; with no rules everything is allowed; with rules, nothing
// matched = denied.
func (a *authorizer) allowed(user, client, topic string, write bool) bool {
	if len(a.rules) == 0 {
		return true
	}
	for i := range a.rules {
		r := &a.rules[i]
		if r.User != "" && r.User != "*" && r.User != user {
			continue
		}
		pattern, ok := expandPattern(r.Topic, user, client)
		if !ok || !filterCovers(pattern, topic) {
			continue
		}
		switch r.Access {
		case AccessDeny:
			return false
		case AccessReadWrite:
			return true
		case AccessRead:
			if !write {
				return true
			}
		case AccessWrite:
			if write {
				return true
			}
		}
		// A read rule does not decide writes (and the reverse): go on.
	}
	return false
}

// expandPattern substitutes %u and %c. ok is false when a needed value is
// empty or would change the filter's structure.
func expandPattern(p, user, client string) (string, bool) {
	if !strings.Contains(p, "%") {
		return p, true
	}
	bad := func(s string) bool { return s == "" || strings.ContainsAny(s, "+#/") }
	if strings.Contains(p, "%u") {
		if bad(user) {
			return "", false
		}
		p = strings.ReplaceAll(p, "%u", user)
	}
	if strings.Contains(p, "%c") {
		if bad(client) {
			return "", false
		}
		p = strings.ReplaceAll(p, "%c", client)
	}
	return p, true
}

// loopbackAddr reports whether remote (host:port, or a path for a unix
// socket or an in-memory pipe) is on the loopback interface.
func loopbackAddr(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SetUsers replaces the accounts (a users file read again on SIGHUP);
// connected clients stay connected.
func (b *Broker) SetUsers(us []User) {
	b.auth.setUsers(us)
}
