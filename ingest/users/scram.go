package users

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// SCRAM mechanism names, as Kafka spells them.
const (
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// DefaultIterations is the PBKDF2 iteration count of new SCRAM
// credentials (Kafka's minimum and kafka-configs' default).
const DefaultIterations = 4096

// Scram is one stored SCRAM credential.
type Scram struct {
	Salt       []byte `yaml:"salt"`
	Iterations int    `yaml:"iterations"`
	StoredKey  []byte `yaml:"stored-key"`
	ServerKey  []byte `yaml:"server-key"`
}

func hashFor(mech string) (func() hash.Hash, error) {
	switch mech {
	case ScramSHA256:
		return sha256.New, nil
	case ScramSHA512:
		return sha512.New, nil
	}
	return nil, fmt.Errorf("users: unknown SCRAM mechanism %q", mech)
}

// NewScram derives the credential of password for mech with a fresh salt.
func NewScram(mech, password string, iterations int) (Scram, error) {
	salt := make([]byte, 24)
	rand.Read(salt)
	return deriveScram(mech, password, salt, iterations)
}

func deriveScram(mech, password string, salt []byte, iterations int) (Scram, error) {
	h, err := hashFor(mech)
	if err != nil {
		return Scram{}, err
	}
	salted, err := pbkdf2.Key(h, password, salt, iterations, h().Size())
	if err != nil {
		return Scram{}, err
	}
	clientKey := mac(h, salted, "Client Key")
	stored := h()
	stored.Write(clientKey)
	return Scram{Salt: salt, Iterations: iterations, StoredKey: stored.Sum(nil), ServerKey: mac(h, salted, "Server Key")}, nil
}

func mac(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// ErrScram is wrapped by every failed SCRAM exchange.
var ErrScram = errors.New("users: SCRAM authentication failed")

// ScramServer is the server side of one SCRAM exchange (RFC 5802): Step
// takes the client-first message and returns the server-first, then takes
// the client-final and returns the server-final. lookup returns the
// user's credential (ok false for an unknown user: the exchange goes on
// with a made-up credential and fails at the proof, so that user names
// cannot be probed).
type ScramServer struct {
	mech   string
	h      func() hash.Hash
	lookup func(user string) (Scram, bool)

	step        int
	user        string
	known       bool
	cred        Scram
	clientFirst string // bare
	serverFirst string
	nonce       string
}

// NewScramServer starts an exchange for mech.
func NewScramServer(mech string, lookup func(user string) (Scram, bool)) (*ScramServer, error) {
	h, err := hashFor(mech)
	if err != nil {
		return nil, err
	}
	return &ScramServer{mech: mech, h: h, lookup: lookup}, nil
}

// User is the user name the client sent (after the first step).
func (s *ScramServer) User() string { return s.user }

// Step processes one client message. done is true after the final
// message was verified; an error ends the exchange (the user was not
// authenticated).
func (s *ScramServer) Step(msg []byte) (resp []byte, done bool, err error) {
	switch s.step {
	case 0:
		s.step = 1
		return s.first(string(msg))
	case 1:
		s.step = 2
		return s.final(string(msg))
	}
	return nil, false, fmt.Errorf("%w: exchange already finished", ErrScram)
}

func (s *ScramServer) first(m string) ([]byte, bool, error) {
	// gs2-header: "n,," or "n,a=authzid," (channel binding is not offered).
	gs2, rest, ok := cutN(m, 2)
	if !ok || !strings.HasPrefix(gs2, "n,") {
		return nil, false, fmt.Errorf("%w: client-first-message: want a gs2 header n,,", ErrScram)
	}
	authz := strings.TrimSuffix(strings.TrimPrefix(gs2, "n,"), ",")
	s.clientFirst = rest
	var cnonce string
	for _, attr := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(attr, "=")
		switch k {
		case "n":
			s.user = unescape(v)
		case "r":
			cnonce = v
		}
	}
	if s.user == "" || cnonce == "" {
		return nil, false, fmt.Errorf("%w: client-first-message without user or nonce", ErrScram)
	}
	if authz != "" && unescape(strings.TrimPrefix(authz, "a=")) != s.user {
		return nil, false, fmt.Errorf("%w: authorization id differs from the user", ErrScram)
	}
	s.cred, s.known = s.lookup(s.user)
	if !s.known {
		s.cred, _ = NewScram(s.mech, "", DefaultIterations)
	}
	b := make([]byte, 18)
	rand.Read(b)
	s.nonce = cnonce + base64.RawStdEncoding.EncodeToString(b)
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(s.cred.Salt) + ",i=" + strconv.Itoa(s.cred.Iterations)
	return []byte(s.serverFirst), false, nil
}

func (s *ScramServer) final(m string) ([]byte, bool, error) {
	i := strings.LastIndex(m, ",p=")
	if i < 0 {
		return nil, false, fmt.Errorf("%w: client-final-message without proof", ErrScram)
	}
	withoutProof, proofB64 := m[:i], m[i+3:]
	var nonce, cb string
	for _, attr := range strings.Split(withoutProof, ",") {
		k, v, _ := strings.Cut(attr, "=")
		switch k {
		case "r":
			nonce = v
		case "c":
			cb = v
		}
	}
	// Kafka's broker checks that the nonce ends with the server's: older
	// librdkafka (before 2.1) sends the client nonce twice.
	if !strings.HasSuffix(nonce, s.nonce) {
		return nil, false, fmt.Errorf("%w: nonce mismatch", ErrScram)
	}
	if cbb, err := base64.StdEncoding.DecodeString(cb); err != nil || !bytes.HasPrefix(cbb, []byte("n,")) {
		return nil, false, fmt.Errorf("%w: channel binding", ErrScram)
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil || len(proof) != s.h().Size() {
		return nil, false, fmt.Errorf("%w: malformed proof", ErrScram)
	}
	authMsg := s.clientFirst + "," + s.serverFirst + "," + withoutProof
	sig := mac(s.h, s.cred.StoredKey, authMsg)
	clientKey := make([]byte, len(proof))
	for k := range proof {
		clientKey[k] = proof[k] ^ sig[k]
	}
	st := s.h()
	st.Write(clientKey)
	if subtle.ConstantTimeCompare(st.Sum(nil), s.cred.StoredKey) != 1 || !s.known {
		return nil, false, fmt.Errorf("%w: user %q: wrong password", ErrScram, s.user)
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(mac(s.h, s.cred.ServerKey, authMsg))), true, nil
}

// cutN splits m after its n-th comma.
func cutN(m string, n int) (head, rest string, ok bool) {
	at := 0
	for range n {
		i := strings.IndexByte(m[at:], ',')
		if i < 0 {
			return "", "", false
		}
		at += i + 1
	}
	return m[:at], m[at:], true
}

func unescape(s string) string {
	return strings.NewReplacer("=2C", ",", "=3D", "=").Replace(s)
}
