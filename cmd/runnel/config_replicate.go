package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	rlog "github.com/runnel/runnel/log"
	"github.com/runnel/runnel/replicate"
	"github.com/runnel/runnel/replicate/member"
	"github.com/runnel/runnel/sync/forward"
)

// enabled reports whether this box gossips with peers (replication.*).
func (c *replicationConfig) enabled() bool { return len(c.Join) > 0 || c.GossipAddr != "" }

// defaultReplicationFactor is the topics' replication.factor default:
// replication.default-replication-factor with peers, 1 alone.
func (c *serveConfig) defaultReplicationFactor() int32 {
	if !c.Replication.enabled() {
		return 1
	}
	return c.Replication.DefaultReplicationFactor
}

// withPort adds the gossip port to an address without one.
func withPort(a string) string {
	if _, _, err := net.SplitHostPort(a); err != nil {
		return net.JoinHostPort(a, strconv.Itoa(member.DefaultPort))
	}
	return a
}

// replicateOptions are site replication's options (replication.*). It
// reads the gossip key file.
func (c *serveConfig) replicateOptions(l rlog.Log, logger *slog.Logger, nodeID string) (replicate.Options, error) {
	r := &c.Replication
	var keys [][]byte
	if r.GossipKeyFile != "" {
		var err error
		if keys, err = member.ReadKeyFile(r.GossipKeyFile); err != nil {
			return replicate.Options{}, fmt.Errorf("config: replication.gossip-key-file: %v", err)
		}
	}
	bind := ":" + strconv.Itoa(member.DefaultPort)
	if r.GossipAddr != "" {
		bind = withPort(r.GossipAddr)
	}
	join := make([]string, len(r.Join))
	for i, j := range r.Join {
		join[i] = withPort(j)
	}
	kafkaAddr := c.Kafka.AdvertisedAddr
	if kafkaAddr == "" {
		kafkaAddr = c.Kafka.Addr
	}
	if kafkaAddr == "" {
		return replicate.Options{}, fmt.Errorf("config: replication needs kafka.addr: peers fetch copies from it")
	}
	var copts []kgo.Opt
	if c.Kafka.TLS.CertFile != "" {
		// Peers present the site's certificate; gossip (keyed) says who
		// the peers are, the listener's CA is not configured here.
		copts = append(copts, kgo.DialTLSConfig(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}))
	}
	// Peers authenticate with SCRAM-SHA-512: the password never crosses
	// the site network, TLS or not.
	pc, err := c.sitePeerCredential()
	if err != nil {
		return replicate.Options{}, err
	}
	if pc.user != "" {
		copts = append(copts, kgo.SASL(scram.Auth{User: pc.user, Pass: pc.pass}.AsSha512Mechanism()))
	}
	return replicate.Options{
		Log: l,
		Member: member.Options{
			NodeID:      nodeID,
			Site:        c.Site,
			BindAddr:    bind,
			Join:        join,
			Keys:        keys,
			Insecure:    r.GossipInsecure,
			KafkaAddr:   kafkaAddr,
			SnapshotDir: filepath.Join(c.DataDir, "~replicate"),
			// Peers forward this box's partitions with their own routes:
			// the digest lets them check the routes are the same.
			Routes: forward.RoutesHash(c.forwardOptions(nil, nil, nodeID)),
		},
		LagTimeMax:     r.ReplicaLagTimeMax,
		RestoreTimeout: r.RestoreTimeout,
		ClientOpts:     copts,
		Logger:         logger,
	}, nil
}

// failoverOptions are forwarding failover's options (replication.failover*).
func (c *serveConfig) failoverOptions(logger *slog.Logger) replicate.FailoverOptions {
	return replicate.FailoverOptions{StaleMax: c.Replication.FailoverWaitMax, Logger: logger}
}

// peerCredential is the account site peers fetch copies with.
type peerCredential struct {
	user, pass string
	derived    bool // from the gossip key: an account of its own, not in users-file
}

// sitePeerUser is the account name of the credential derived from the
// gossip key.
const sitePeerUser = "runnel-site-peer"

// sitePeerCredential is replication.peer-user with its password file;
// else, with a gossip key, an account derived from the key's first entry
// (every box of the site holds it: HMAC-SHA-256 of a fixed label);
// else the first kafka.users account; else none (peers are anonymous:
// on a non-loopback address that needs allow-remote-anonymous).
func (c *serveConfig) sitePeerCredential() (peerCredential, error) {
	r := &c.Replication
	switch {
	case !r.enabled():
		return peerCredential{}, nil
	case r.PeerUser != "":
		b, err := os.ReadFile(r.PeerPasswordFile)
		if err != nil {
			return peerCredential{}, fmt.Errorf("config: replication.peer-password-file: %v", err)
		}
		pass, _, _ := strings.Cut(string(b), "\n")
		return peerCredential{user: r.PeerUser, pass: strings.TrimRight(pass, "\r")}, nil
	case r.GossipKeyFile != "":
		keys, err := member.ReadKeyFile(r.GossipKeyFile)
		if err != nil || len(keys) == 0 {
			return peerCredential{}, fmt.Errorf("config: replication.gossip-key-file: %v", err)
		}
		m := hmac.New(sha256.New, keys[0])
		m.Write([]byte("runnel site peer credential v1"))
		return peerCredential{user: sitePeerUser, pass: base64.StdEncoding.EncodeToString(m.Sum(nil)), derived: true}, nil
	case len(c.Kafka.Users) > 0:
		name, pass, _ := strings.Cut(c.Kafka.Users[0], ":")
		return peerCredential{user: name, pass: pass}, nil
	}
	return peerCredential{}, nil
}
