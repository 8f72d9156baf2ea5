package group

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/meta"
)

// Defaults, as Apache Kafka's broker configs of the same meaning.
const (
	// DefaultInitialRebalanceDelay is group.initial.rebalance.delay.ms
	// (Kafka's default is 3 s; runnel's edge groups are small, so 300 ms).
	DefaultInitialRebalanceDelay = 300 * time.Millisecond
	// DefaultMinSessionTimeout is group.min.session.timeout.ms.
	DefaultMinSessionTimeout = 6 * time.Second
	// DefaultMaxSessionTimeout is group.max.session.timeout.ms.
	DefaultMaxSessionTimeout = 30 * time.Minute
	// DefaultConsumerSessionTimeout is group.consumer.session.timeout.ms:
	// a consumer-protocol member with no heartbeat for this long is
	// removed.
	DefaultConsumerSessionTimeout = 45 * time.Second
	// DefaultConsumerHeartbeatInterval is
	// group.consumer.heartbeat.interval.ms.
	DefaultConsumerHeartbeatInterval = 5 * time.Second
	// MaxMetadataBytes is offset.metadata.max.bytes: the longest metadata
	// string an OffsetCommit may carry.
	MaxMetadataBytes = 4096
)

// Options configures a Coordinator. The zero value of each field except Meta
// is a sensible default.
type Options struct {
	// Meta persists committed offsets (CommitOffsetsBatched, GroupOffsets,
	// Groups, DeleteGroup, DeleteGroupOffsets). Required.
	Meta *meta.Store
	// Log is used to check that committed topics and partitions exist.
	// nil skips the check (every commit is accepted).
	Log log.Log
	// Logger receives rebalance and expiry logs; nil = slog.Default().
	Logger *slog.Logger
	// InitialRebalanceDelay is how long the first rebalance of an empty
	// group waits for more members (each new member extends the wait by
	// this much, up to the rebalance timeout), like Kafka's
	// group.initial.rebalance.delay.ms. 0 = 300 ms; negative = no delay.
	InitialRebalanceDelay time.Duration
	// MinSessionTimeout and MaxSessionTimeout bound the session timeout a
	// JoinGroup may ask for (INVALID_SESSION_TIMEOUT outside). 0 = 6 s and
	// 30 min, as Kafka.
	MinSessionTimeout, MaxSessionTimeout time.Duration
	// ConsumerSessionTimeout and ConsumerHeartbeatInterval are the
	// session timeout and heartbeat interval of consumer-protocol
	// (KIP-848) members, which the coordinator sets, not the client.
	// 0 = 45 s and 5 s, as Kafka.
	ConsumerSessionTimeout, ConsumerHeartbeatInterval time.Duration
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	if o == nil || o.Meta == nil {
		return ErrNoMeta
	}
	if o.MinSessionTimeout < 0 || o.MaxSessionTimeout < 0 {
		return fmt.Errorf("%w: negative session timeout", ErrInvalidOptions)
	}
	w := o.withDefaults()
	if w.MaxSessionTimeout < w.MinSessionTimeout {
		return fmt.Errorf("%w: MaxSessionTimeout %v < MinSessionTimeout %v", ErrInvalidOptions, w.MaxSessionTimeout, w.MinSessionTimeout)
	}
	return nil
}

// withDefaults returns a copy with zero fields filled.
func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch {
	case o.InitialRebalanceDelay == 0:
		o.InitialRebalanceDelay = DefaultInitialRebalanceDelay
	case o.InitialRebalanceDelay < 0:
		o.InitialRebalanceDelay = 0
	}
	if o.MinSessionTimeout == 0 {
		o.MinSessionTimeout = DefaultMinSessionTimeout
	}
	if o.ConsumerSessionTimeout <= 0 {
		o.ConsumerSessionTimeout = DefaultConsumerSessionTimeout
	}
	if o.ConsumerHeartbeatInterval <= 0 {
		o.ConsumerHeartbeatInterval = DefaultConsumerHeartbeatInterval
	}
	if o.MaxSessionTimeout == 0 {
		o.MaxSessionTimeout = DefaultMaxSessionTimeout
	}
	return o
}
