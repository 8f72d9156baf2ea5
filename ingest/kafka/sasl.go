package kafka

import (
	"bytes"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/ingest/users"
)

// SASL: PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802/7677, over
// SaslAuthenticate only: the v0 raw-frame form carries PLAIN only, as
// Kafka's clients use it). PLAIN sends the password in clear: it is
// offered to a client that is not on the loopback interface only over TLS
// or with Options.AllowPlainWithoutTLS.

const (
	mechPlain = "PLAIN"
)

// initUsers merges SASLPlain into the accounts.
func (s *Server) initUsers() error {
	if len(s.opts.SASLPlain) == 0 {
		s.users = s.opts.Users
		return nil
	}
	entries := []users.Entry(nil)
	if s.opts.Users != nil {
		return fmt.Errorf("%w: both Users and SASLPlain set", ErrInvalidOptions)
	}
	st, err := users.NewStore(entries, s.opts.SASLPlain)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidOptions, err)
	}
	s.users = st
	return nil
}

// saslOn: SASL is offered.
func (s *Server) saslOn() bool { return s.users.Len() > 0 }

// saslRequired: every connection must authenticate.
func (s *Server) saslRequired() bool { return s.saslOn() && !s.opts.OptionalSASL }

// mechanisms are those offered to this connection.
func (c *conn) mechanisms() []string {
	if !c.s.saslOn() {
		return []string{}
	}
	ms := []string{users.ScramSHA256, users.ScramSHA512}
	if c.plainOK() {
		ms = append([]string{mechPlain}, ms...)
	}
	return ms
}

// plainOK: PLAIN is offered over TLS, on loopback, or when allowed.
func (c *conn) plainOK() bool {
	return c.s.opts.TLS != nil || c.s.opts.AllowPlainWithoutTLS || isLoopback(c.nc.RemoteAddr())
}

// saslHandshake answers SaslHandshake. After a v0 handshake for PLAIN the
// client sends the token as a raw frame (no Kafka header).
func (c *conn) saslHandshake(req *kmsg.SASLHandshakeRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = c.mechanisms()
	ok := false
	for _, m := range resp.SupportedMechanisms {
		ok = ok || m == req.Mechanism
	}
	if !ok {
		resp.ErrorCode = codeUnsupportedSASLMechanism
		if req.Mechanism == mechPlain && c.s.saslOn() {
			c.s.logger.Warn("kafka: SASL/PLAIN refused: the password would cross the network in clear (use SCRAM-SHA-256/512, TLS, or kafka.allow-plain-without-tls)", "peer", c.peer)
		}
		return resp
	}
	if req.Mechanism == mechPlain && req.Version == 0 {
		c.saslRawNext = true
	}
	if req.Mechanism != mechPlain {
		sc, err := users.NewScramServer(req.Mechanism, func(u string) (users.Scram, bool) { return c.s.users.SCRAM(u, req.Mechanism) })
		if err != nil {
			resp.ErrorCode = codeUnsupportedSASLMechanism
			return resp
		}
		c.scram = sc
	}
	c.saslMechanism = req.Mechanism
	return resp
}

// saslAuthenticate checks a PLAIN token or takes one SCRAM step; ok=false
// closes the connection after the response is written.
func (c *conn) saslAuthenticate(req *kmsg.SASLAuthenticateRequest) (kmsg.Response, bool) {
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	fail := func(user string, err error) (kmsg.Response, bool) {
		resp.ErrorCode = codeSASLAuthenticationFailed
		resp.ErrorMessage = strp("Authentication failed during authentication due to invalid credentials with SASL mechanism " + c.saslMechanism)
		c.s.stats.authFailures.Add(1)
		c.s.logger.Warn("kafka: SASL authentication failed", "peer", c.peer, "mechanism", c.saslMechanism, "user", user, "err", err)
		c.failedAuthDelay()
		return resp, false
	}
	switch {
	case c.saslMechanism == "" || c.saslDone:
		resp.ErrorCode = codeIllegalSASLState
		resp.ErrorMessage = strp("SaslAuthenticate without a SaslHandshake choosing a mechanism")
		c.s.stats.authFailures.Add(1)
		return resp, false
	case c.saslMechanism == mechPlain:
		user, err := c.checkPlain(req.SASLAuthBytes)
		if err != nil {
			return fail(user, err)
		}
		c.authenticated(user)
		return resp, true
	}
	out, done, err := c.scram.Step(req.SASLAuthBytes)
	if err != nil {
		return fail(c.scram.User(), err)
	}
	resp.SASLAuthBytes = out
	if done {
		c.authenticated(c.scram.User())
		c.scram = nil
	}
	return resp, true
}

// saslRawToken handles the raw token frame after a v0 SaslHandshake.
func (c *conn) saslRawToken(buf []byte) error {
	c.saslRawNext = false
	user, err := c.checkPlain(buf)
	putBuf(buf)
	if err != nil {
		c.s.stats.authFailures.Add(1)
		c.failedAuthDelay()
		return fmt.Errorf("%w: SASL/PLAIN (v0) user %q", ErrAuth, user)
	}
	c.authenticated(user)
	sl := c.newSlot(0)
	sl.rawSet, sl.raw = true, []byte{}
	sl.finish()
	if !c.push(sl) {
		return errKilled
	}
	return nil
}

// checkPlain verifies "authzid \0 user \0 password" (RFC 4616).
func (c *conn) checkPlain(tok []byte) (string, error) {
	parts := bytes.SplitN(tok, []byte{0}, 3)
	if len(parts) != 3 {
		return "", ErrAuth
	}
	user, pass := string(parts[1]), parts[2]
	if len(parts[0]) > 0 && string(parts[0]) != user {
		return user, ErrAuth
	}
	if !c.s.users.CheckPassword(user, pass) {
		return user, ErrAuth
	}
	return user, nil
}

// authenticated records a successful SASL exchange.
func (c *conn) authenticated(user string) {
	c.authed, c.saslDone, c.principal, c.noRights = true, true, user, false
	c.s.backoff.Succeeded(remoteHost(c.nc))
}

// failedAuthDelay holds the answer to a failed authentication (Kafka's
// connection.failed.authentication.delay.ms), longer for each failure in
// a row from the same address (access.Backoff).
func (c *conn) failedAuthDelay() {
	t := time.NewTimer(c.s.backoff.Failed(remoteHost(c.nc)))
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.ctx.Done():
	case <-c.s.closing:
	}
}
