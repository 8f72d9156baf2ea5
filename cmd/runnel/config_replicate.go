package main

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/runnel/runnel/replicate/member"
)

// replicateConfig is site replication (replicate/): gossip membership,
// mirrors and acks=all. With no --join and no --gossip-addr it is off and
// no gossip port is opened.
type replicateConfig struct {
	Join                     []string
	GossipAddr               string
	GossipKeyFile            string
	GossipInsecure           bool
	DefaultReplicationFactor int32
	DefaultMinInsyncReplicas int32
	ReplicaLagTimeMax        time.Duration
}

func (c *replicateConfig) flags(fs *pflag.FlagSet) {
	fs.StringArrayVar(&c.Join, "join", nil, "site peer to join, HOST:PORT (gossip port; repeatable; DNS names allowed)")
	fs.StringVar(&c.GossipAddr, "gossip-addr", "", "gossip (serf) address HOST[:PORT] (default port 7946; with --join and no value: :7946; empty and no --join = replication off)")
	fs.StringVar(&c.GossipKeyFile, "gossip-key-file", "", "serf keyring: base64 AES keys, one a line, the first encrypts (required on a non-loopback gossip address)")
	fs.BoolVar(&c.GossipInsecure, "gossip-insecure", false, "allow unencrypted gossip on a non-loopback address (trusted networks only)")
	fs.Int32Var(&c.DefaultReplicationFactor, "default-replication-factor", 2, "copies of each partition on the site, origin included (topics' replication.factor default)")
	fs.Int32Var(&c.DefaultMinInsyncReplicas, "default-min-insync-replicas", 1, "copies acks=all needs (topics' min.insync.replicas default; 2 = never acknowledge what only one box holds)")
	fs.DurationVar(&c.ReplicaLagTimeMax, "replica-lag-time-max", 10*time.Second, "a mirror not caught up for this long leaves the in-sync set (Kafka's replica.lag.time.max.ms)")
}

// defaultReplicationFactor is the topics' replication.factor default:
// --default-replication-factor with peers, 1 alone.
func (c *replicateConfig) defaultReplicationFactor() int32 {
	if !c.enabled() {
		return 1
	}
	return c.DefaultReplicationFactor
}

// enabled reports whether this box gossips with peers.
func (c *replicateConfig) enabled() bool { return len(c.Join) > 0 || c.GossipAddr != "" }

// gossipAddr is the gossip bind address with the default port filled in.
func (c *replicateConfig) gossipAddr() string {
	a := c.GossipAddr
	if a == "" {
		return ":" + strconv.Itoa(member.DefaultPort)
	}
	if _, _, err := net.SplitHostPort(a); err != nil {
		return net.JoinHostPort(a, strconv.Itoa(member.DefaultPort))
	}
	return a
}

func (c *replicateConfig) validate() error {
	if !c.enabled() {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.gossipAddr()); err != nil {
		return fmt.Errorf("--gossip-addr %q: %v", c.GossipAddr, err)
	}
	for i, j := range c.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			c.Join[i] = net.JoinHostPort(j, strconv.Itoa(member.DefaultPort))
		}
	}
	if c.DefaultReplicationFactor < 1 {
		return fmt.Errorf("--default-replication-factor %d: must be at least 1", c.DefaultReplicationFactor)
	}
	if c.DefaultMinInsyncReplicas < 1 {
		return fmt.Errorf("--default-min-insync-replicas %d: must be at least 1", c.DefaultMinInsyncReplicas)
	}
	if c.ReplicaLagTimeMax <= 0 {
		return fmt.Errorf("--replica-lag-time-max %v: must be positive", c.ReplicaLagTimeMax)
	}
	return nil
}
