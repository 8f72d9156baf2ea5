package kafka

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/ingest/access"
	"github.com/runnel/runnel/ingest/users"
	"github.com/runnel/runnel/log"
)

// GroupHandler serves the consumer-group APIs (JoinGroup, SyncGroup,
// Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, ListGroups,
// DescribeGroups, ...). It is implemented by ingest/kafka/group.Coordinator.
type GroupHandler interface {
	// Versions maps each API key the handler serves to its [min, max]
	// version. It is read once, in New.
	Versions() map[int16][2]int16
	// Handle serves one request, decoded with its version set. It may
	// block (JoinGroup waits for the rebalance); ctx is cancelled when the
	// client's connection or the server closes. ok=false means req is not
	// a group request.
	Handle(ctx context.Context, req kmsg.Request) (kmsg.Response, bool)
}

// Cluster is the site this server's node belongs to (replicate/): it
// describes replicas for Metadata and takes follower fetches. nil = this
// node alone, every partition's only replica.
type Cluster interface {
	// Replicas returns a partition's replica set (the origin first), its
	// in-sync set and the replicas not alive now, as broker ids.
	// ok=false: this node is the only replica.
	Replicas(topic string, partition int32) (replicas, isr, offline []int32, ok bool)
	// Brokers lists the site's alive brokers (this one included): id →
	// Kafka host:port, for DescribeCluster.
	Brokers() map[int32]string
	// Leader says who serves reads of a partition: here=true for every
	// partition this node holds; for a partition of another node's data
	// it holds no copy of, an alive broker that holds one in sync (id,
	// Kafka host:port), or id -1 when no alive broker does.
	Leader(topic string, partition int32) (here bool, id int32, addr string)
	// FollowerFetched records that broker replica fetched partition from
	// offset (everything before it is durable on that copy).
	FollowerFetched(replica int32, topic string, partition int32, offset int64)
	// FollowerLog is the log follower fetches read: this node's durable
	// end, not the acknowledged end consumers see.
	FollowerLog() log.Log
}

// Options configures a Server. Zero fields mean defaults; Log is required.
type Options struct {
	// Log is the commit log every request reads and writes. Required.
	Log log.Log
	// Cluster, when set, makes Metadata list the site's replicas and
	// in-sync sets and routes follower fetches (ReplicaID >= 0).
	Cluster Cluster
	// Groups serves the consumer-group APIs; nil means those APIs answer
	// COORDINATOR_NOT_AVAILABLE (and FindCoordinator says the same).
	Groups GroupHandler
	// Logger receives connection-level logs; nil = slog.Default().
	Logger *slog.Logger
	// NodeID is the broker id announced in Metadata and FindCoordinator
	// (default 0).
	NodeID int32
	// ClusterID is announced in Metadata (default "runnel").
	ClusterID string
	// AdvertisedAddr is the host:port announced in Metadata and
	// FindCoordinator. "" = the local address of each client's connection,
	// so clients reach the server on whatever interface they used.
	AdvertisedAddr string
	// AutoCreateTopics makes Metadata (when the client allows it) and
	// Produce create unknown topics with the log's defaults.
	AutoCreateTopics bool
	// MaxFrameBytes caps a request's size; the length prefix is checked
	// before anything is allocated, and a larger frame closes the
	// connection. Default 16 MiB (Kafka's socket.request.max.bytes is
	// 100 MiB; the Java client and librdkafka send at most 1 MB, franz-go
	// up to BrokerMaxWriteBytes).
	MaxFrameBytes int32
	// MaxQueuedRequestBytes bounds the bytes of requests all connections
	// together hold, from the read of a frame's length until its response
	// is ready (Kafka's queued.max.request.bytes): a connection whose next
	// frame does not fit stops reading until others' requests complete.
	// A frame larger than this is read when no other request is held.
	// Default 64 MiB; <0 = no bound.
	MaxQueuedRequestBytes int64
	// TLS, when set, makes every accepted connection TLS. nil = plaintext.
	TLS *tls.Config
	// SASLPlain maps user → password. Non-empty means every connection
	// must authenticate with SASL/PLAIN before anything but ApiVersions.
	SASLPlain map[string]string
	// Users are the accounts of SASL/PLAIN and SASL/SCRAM-SHA-256/512
	// (with SASLPlain's, whose SCRAM credentials are derived at New). Any
	// account means every connection must authenticate.
	Users *users.Store
	// AllowPlainWithoutTLS lets clients that are not on the loopback
	// interface use SASL/PLAIN on a listener without TLS, where the
	// password crosses the network in clear. The zero value offers them
	// the SCRAM mechanisms only (SaslHandshake answers
	// UNSUPPORTED_SASL_MECHANISM for PLAIN, listing SCRAM).
	AllowPlainWithoutTLS bool
	// OptionalSASL offers SASL without requiring it: a connection may
	// authenticate (site peers with their credential) or stay anonymous
	// (then AllowRemoteAnonymous applies). For Users that hold only the
	// site's peer credential.
	OptionalSASL bool
	// Quotas are the produce quotas per principal (Kafka's
	// producer_byte_rate; shared with the other protocols). nil = none.
	// See quota.go.
	Quotas *access.Quotas
	// AllowRemoteAnonymous lets clients that are not on the loopback
	// interface use the listener without SASL when SASLPlain is empty.
	// The zero value gives them no rights at all: every request that
	// touches a topic, group or the cluster is answered with Kafka's
	// authorization error (and Metadata lists no topic), so that a box on
	// a plant network is not open by accident.
	AllowRemoteAnonymous bool
	// Access decides what each authenticated user (and an anonymous
	// client, principal access.Anonymous) may do; nil = everything. See
	// authz.go for the operation each request needs.
	Access *access.Policy
	// IdleTimeout closes a connection with no request for this long
	// (default 10 min, Kafka's connections.max.idle.ms, a minute more than
	// the clients' own 9-minute default so that they close first; <0 =
	// never).
	IdleTimeout time.Duration
	// ConnectTimeout is how long a new connection has to send its first
	// request and, with SASL, to authenticate (the TLS handshake
	// included); then it is closed. Default 10s; <0 = only IdleTimeout.
	ConnectTimeout time.Duration
	// MaxConns caps the connections open at once: one accepted beyond it
	// is closed at once (counted in Stats().ConnsRefused), so a flood of
	// connections cannot take the descriptors the log needs. Default
	// DefaultMaxConns; <0 = no cap. runnel serve derives it from
	// RLIMIT_NOFILE.
	MaxConns int
	// MaxConnsPerIP caps the connections open at once from one IP
	// address (one more is closed at once, counted in
	// Stats().ConnsRefused), so one host cannot take every connection.
	// Default DefaultMaxConnsPerIP; <0 = no cap.
	MaxConnsPerIP int
	// WriteTimeout bounds writing one batch of responses (default 30s).
	WriteTimeout time.Duration
	// MaxInFlight bounds requests read but not yet answered per
	// connection; reading pauses when it is reached (default 64).
	MaxInFlight int
	// MaxFetchWait caps a Fetch's max_wait_ms (default 30s): a Fetch
	// waiting for data is answered by then, empty if nothing came, and
	// the client fetches again. Clients wait 0.5-5 s by default.
	MaxFetchWait time.Duration
}

// Defaults applied by New.
const (
	DefaultMaxFrameBytes         = 16 << 20
	DefaultMaxQueuedRequestBytes = 64 << 20
	DefaultIdleTimeout           = 10 * time.Minute
	DefaultConnectTimeout        = 10 * time.Second
	DefaultMaxConns              = 1024
	DefaultMaxConnsPerIP         = 1024
	DefaultWriteTimeout          = 30 * time.Second
	DefaultMaxInFlight           = 64
	DefaultMaxFetchWait          = 30 * time.Second
	DefaultClusterID             = "runnel"
)

// Validate reports the first invalid field.
func (o *Options) Validate() error {
	if o.Log == nil {
		return fmt.Errorf("%w: Log is required", ErrInvalidOptions)
	}
	if o.NodeID < 0 {
		return fmt.Errorf("%w: NodeID %d is negative", ErrInvalidOptions, o.NodeID)
	}
	if o.MaxFrameBytes < 0 {
		return fmt.Errorf("%w: MaxFrameBytes %d is negative", ErrInvalidOptions, o.MaxFrameBytes)
	}
	if o.MaxInFlight < 0 {
		return fmt.Errorf("%w: MaxInFlight %d is negative", ErrInvalidOptions, o.MaxInFlight)
	}
	if o.AdvertisedAddr != "" {
		if _, _, err := splitHostPort(o.AdvertisedAddr); err != nil {
			return fmt.Errorf("%w: AdvertisedAddr: %v", ErrInvalidOptions, err)
		}
	}
	for u := range o.SASLPlain {
		if u == "" {
			return fmt.Errorf("%w: SASLPlain has an empty user name", ErrInvalidOptions)
		}
	}
	return nil
}

func (o *Options) fill() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ClusterID == "" {
		o.ClusterID = DefaultClusterID
	}
	if o.MaxFrameBytes == 0 {
		o.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if o.MaxQueuedRequestBytes == 0 {
		o.MaxQueuedRequestBytes = DefaultMaxQueuedRequestBytes
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.MaxConnsPerIP == 0 {
		o.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.MaxFetchWait <= 0 {
		o.MaxFetchWait = DefaultMaxFetchWait
	}
}

func splitHostPort(addr string) (string, int32, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return host, int32(p), nil
}
