package kafka

import (
	"bytes"
	"crypto/subtle"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// saslHandshake answers SaslHandshake: PLAIN is the only mechanism. After a
// v0 handshake the client sends the token as a raw frame (no Kafka header).
func (c *conn) saslHandshake(req *kmsg.SASLHandshakeRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	if len(c.s.opts.SASLPlain) == 0 {
		// No mechanism is enabled on this server (an empty list says so).
		resp.ErrorCode = codeUnsupportedSASLMechanism
		resp.SupportedMechanisms = []string{}
		return resp
	}
	resp.SupportedMechanisms = []string{"PLAIN"}
	if req.Mechanism != "PLAIN" {
		resp.ErrorCode = codeUnsupportedSASLMechanism
		return resp
	}
	if req.Version == 0 {
		c.saslRawNext = true
	}
	c.saslMechanism = true
	return resp
}

// saslAuthenticate checks a PLAIN token; ok=false closes the connection
// after the response is written.
func (c *conn) saslAuthenticate(req *kmsg.SASLAuthenticateRequest) (kmsg.Response, bool) {
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	if !c.saslMechanism || len(c.s.opts.SASLPlain) == 0 {
		resp.ErrorCode = codeIllegalSASLState
		resp.ErrorMessage = strp("SaslAuthenticate without a SaslHandshake for PLAIN")
		c.s.stats.authFailures.Add(1)
		return resp, false
	}
	user, err := c.checkPlain(req.SASLAuthBytes)
	if err != nil {
		resp.ErrorCode = codeSASLAuthenticationFailed
		resp.ErrorMessage = strp("Authentication failed: invalid username or password")
		c.s.stats.authFailures.Add(1)
		c.s.logger.Warn("kafka: SASL/PLAIN authentication failed", "peer", c.peer, "user", user)
		return resp, false
	}
	c.authed, c.principal = true, user
	return resp, true
}

// saslRawToken handles the raw token frame after a v0 SaslHandshake.
func (c *conn) saslRawToken(buf []byte) error {
	c.saslRawNext = false
	user, err := c.checkPlain(buf)
	putBuf(buf)
	if err != nil {
		c.s.stats.authFailures.Add(1)
		return fmt.Errorf("%w: SASL/PLAIN (v0) user %q", ErrAuth, user)
	}
	c.authed, c.principal = true, user
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
	want, ok := c.s.opts.SASLPlain[user]
	if !ok {
		subtle.ConstantTimeCompare(pass, pass) // same work for unknown users
		return user, ErrAuth
	}
	if subtle.ConstantTimeCompare(pass, []byte(want)) != 1 {
		return user, ErrAuth
	}
	return user, nil
}
