package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// API keys served. Never renumber: they are Kafka's.
const (
	keyOffsetCommit   = 8
	keyOffsetFetch    = 9
	keyJoinGroup      = 11
	keyHeartbeat      = 12
	keyLeaveGroup     = 13
	keySyncGroup      = 14
	keyDescribeGroups = 15
	keyListGroups     = 16
	keyDeleteGroups   = 42
	keyOffsetDelete   = 47
)

// versions are the [min, max] versions served. OffsetCommit and OffsetFetch
// stop at v9: v10 names topics only by id, which this package does not
// resolve.
var versions = map[int16][2]int16{
	keyOffsetCommit:   {0, 9},
	keyOffsetFetch:    {0, 9},
	keyJoinGroup:      {0, 9},
	keyHeartbeat:      {0, 4},
	keyLeaveGroup:     {0, 5},
	keySyncGroup:      {0, 5},
	keyDescribeGroups: {0, 6},
	keyListGroups:     {0, 5},
	keyDeleteGroups:   {0, 3},
	keyOffsetDelete:   {0, 0},

	keyConsumerGroupHeartbeat: {0, 1},
	keyConsumerGroupDescribe:  {0, 1},
}

// Coordinator serves the consumer-group APIs. Safe for concurrent use.
type Coordinator struct {
	opts   Options // with defaults filled
	logger *slog.Logger

	// mu guards groups, gates, seq, closed and every field of every group
	// and member reached from groups. It is never held across I/O (meta
	// writes) or while waiting for a client.
	mu     sync.Mutex
	groups map[string]*group
	// cgroups are the consumer-protocol (KIP-848) groups with members; a
	// name is in groups or cgroups, never both while it has members.
	cgroups  map[string]*cgroup
	topicIDs map[[16]byte]string // topic ID → name cache
	gates    map[string]*commitGate
	seq      uint64 // join order of members
	closed   bool

	closing chan struct{} // closed by Close: blocked Join/Sync return
	stats   counters
}

// commitGate tracks OffsetCommits of one group whose meta write is under
// way, so an OffsetFetch started after a commit was accepted sees it.
type commitGate struct {
	n    int           // writes in flight
	done chan struct{} // closed when n drops to 0
}

// New returns a Coordinator. Close it to stop its timers.
func New(opts Options) (*Coordinator, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	return &Coordinator{
		opts:    o,
		logger:  o.Logger,
		groups:  map[string]*group{},
		cgroups: map[string]*cgroup{},
		gates:   map[string]*commitGate{},
		closing: make(chan struct{}),
	}, nil
}

// Versions maps each API key served to its [min, max] version.
func (c *Coordinator) Versions() map[int16][2]int16 { return Versions() }

// Versions maps each consumer-group API key to the [min, max] versions a
// Coordinator serves: the one table of them (ingest/kafka answers the same
// keys and versions COORDINATOR_NOT_AVAILABLE when it has no coordinator).
func Versions() map[int16][2]int16 {
	out := make(map[int16][2]int16, len(versions))
	for k, v := range versions {
		out[k] = v
	}
	return out
}

// Handle serves one group request, decoded with its version set, and
// returns the response at the same version. ok is false when req is not a
// group request or its version is not served. JoinGroup and SyncGroup block
// until the rebalance step completes, ctx ends or the Coordinator closes.
func (c *Coordinator) Handle(ctx context.Context, req kmsg.Request) (kmsg.Response, bool) {
	rng, served := versions[req.Key()]
	if !served || req.GetVersion() < rng[0] || req.GetVersion() > rng[1] {
		return nil, false
	}
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		return c.joinGroup(ctx, r), true
	case *kmsg.SyncGroupRequest:
		return c.syncGroup(ctx, r), true
	case *kmsg.HeartbeatRequest:
		return c.heartbeat(r), true
	case *kmsg.LeaveGroupRequest:
		return c.leaveGroup(r), true
	case *kmsg.OffsetCommitRequest:
		return c.offsetCommit(r), true
	case *kmsg.OffsetFetchRequest:
		return c.offsetFetch(ctx, r), true
	case *kmsg.ListGroupsRequest:
		return c.listGroups(r), true
	case *kmsg.DescribeGroupsRequest:
		return c.describeGroups(r), true
	case *kmsg.DeleteGroupsRequest:
		return c.deleteGroups(r), true
	case *kmsg.OffsetDeleteRequest:
		return c.offsetDelete(r), true
	case *kmsg.ConsumerGroupHeartbeatRequest:
		return c.consumerGroupHeartbeat(ctx, r), true
	case *kmsg.ConsumerGroupDescribeRequest:
		return c.consumerGroupDescribe(r), true
	}
	return nil, false
}

// Close stops every timer and wakes every blocked JoinGroup and SyncGroup
// (they answer COORDINATOR_NOT_AVAILABLE). Idempotent. Committed offsets
// are already durable; nothing is flushed.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	close(c.closing)
	for _, g := range c.groups {
		g.stopTimer()
		for _, m := range g.members {
			m.timer.Stop()
		}
		for _, t := range g.pending {
			t.Stop()
		}
	}
	for _, g := range c.cgroups {
		for _, m := range g.members {
			if m.timer != nil {
				m.timer.Stop()
			}
		}
	}
	return nil
}

// afterFunc runs fn with c.mu held after d, unless the Coordinator closed.
func (c *Coordinator) afterFunc(d time.Duration, fn func()) *time.Timer {
	return time.AfterFunc(d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed {
			return
		}
		fn()
	})
}

// Client identity, carried in the request context.

type clientKey struct{}

type clientInfo struct{ id, host string }

// WithClient returns a context carrying the client id (from the request
// header) and host of the connection; the server passes it to Handle so
// member ids start with the client id (as Kafka's do) and DescribeGroups
// shows who the members are.
func WithClient(ctx context.Context, clientID, host string) context.Context {
	return context.WithValue(ctx, clientKey{}, clientInfo{clientID, host})
}

// WithClient is WithClient as a method, so the server finds it by type
// assertion (kafka.ClientContexter) without importing this package.
func (c *Coordinator) WithClient(ctx context.Context, clientID, host string) context.Context {
	return WithClient(ctx, clientID, host)
}

func clientFrom(ctx context.Context) clientInfo {
	ci, _ := ctx.Value(clientKey{}).(clientInfo)
	return ci
}

// newMemberID returns prefix + "-" + a random UUID, as Kafka makes them.
func newMemberID(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return prefix + "-" + h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Error codes used in answers.
var (
	codeNone                      = int16(0)
	codeUnknownServer             = kerr.UnknownServerError.Code
	codeCoordinatorNotAvailable   = kerr.CoordinatorNotAvailable.Code
	codeInvalidGroupID            = kerr.InvalidGroupID.Code
	codeUnknownMemberID           = kerr.UnknownMemberID.Code
	codeMemberIDRequired          = kerr.MemberIDRequired.Code
	codeFencedInstanceID          = kerr.FencedInstanceID.Code
	codeIllegalGeneration         = kerr.IllegalGeneration.Code
	codeRebalanceInProgress       = kerr.RebalanceInProgress.Code
	codeInconsistentGroupProtocol = kerr.InconsistentGroupProtocol.Code
	codeInvalidSessionTimeout     = kerr.InvalidSessionTimeout.Code
	codeUnknownTopicOrPartition   = kerr.UnknownTopicOrPartition.Code
	codeOffsetMetadataTooLarge    = kerr.OffsetMetadataTooLarge.Code
	codeGroupIDNotFound           = kerr.GroupIDNotFound.Code
	codeNonEmptyGroup             = kerr.NonEmptyGroup.Code
	codeGroupSubscribedToTopic    = kerr.GroupSubscribedToTopic.Code
)

// counters are the Coordinator's statistics.
type counters struct {
	groups      atomic.Int64
	members     atomic.Int64
	rebalances  atomic.Uint64
	joins       atomic.Uint64
	expired     atomic.Uint64
	commits     atomic.Uint64
	commitParts atomic.Uint64
	commitErrs  atomic.Uint64
}

// Stats is a snapshot of the Coordinator's counters.
type Stats struct {
	Groups              int64  // groups with members (or pending members) in memory
	Members             int64  // members of those groups
	Rebalances          uint64 // rebalances completed (generations handed out)
	Joins               uint64 // JoinGroup requests answered
	ExpiredMembers      uint64 // members removed by session or rebalance timeout
	Commits             uint64 // OffsetCommit requests that stored offsets
	CommittedPartitions uint64 // partition offsets stored
	CommitErrors        uint64 // OffsetCommit partitions refused or failed
}

// Stats returns a snapshot of the counters.
func (c *Coordinator) Stats() Stats {
	return Stats{
		Groups:              c.stats.groups.Load(),
		Members:             c.stats.members.Load(),
		Rebalances:          c.stats.rebalances.Load(),
		Joins:               c.stats.joins.Load(),
		ExpiredMembers:      c.stats.expired.Load(),
		Commits:             c.stats.commits.Load(),
		CommittedPartitions: c.stats.commitParts.Load(),
		CommitErrors:        c.stats.commitErrs.Load(),
	}
}
