package group

import (
	"bytes"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// state is a group's place in the rebalance protocol.
type state int8

const (
	stateEmpty state = iota
	statePreparing
	stateCompleting
	stateStable
	stateDead
)

// String is the name Kafka uses in DescribeGroups and ListGroups.
func (s state) String() string {
	switch s {
	case stateEmpty:
		return "Empty"
	case statePreparing:
		return "PreparingRebalance"
	case stateCompleting:
		return "CompletingRebalance"
	case stateStable:
		return "Stable"
	}
	return "Dead"
}

// joinOutcome is what a JoinGroup answers.
type joinOutcome struct {
	code       int16
	generation int32
	protocol   string
	leader     string
	memberID   string
	members    []kmsg.JoinGroupResponseMember // for the leader only
	// skipAssignment tells a restarted static leader (v9+) not to
	// assign: the stable group keeps its assignment (KIP-814).
	skipAssignment bool
}

// syncOutcome is what a SyncGroup answers.
type syncOutcome struct {
	code       int16
	assignment []byte
}

// member is one consumer of a group. All fields are guarded by the
// Coordinator's mu.
type member struct {
	id         string
	instanceID *string // static membership (KIP-345)
	clientID   string
	clientHost string
	order      uint64 // first-join order: leader election and member lists

	protocolType string
	protocols    []kmsg.JoinGroupRequestProtocol // owned copies
	session      time.Duration
	rebalance    time.Duration

	lastSeen   time.Time   // last request of this member
	timer      *time.Timer // session expiry check
	assignment []byte      // from the leader's SyncGroup

	joined bool             // sent JoinGroup in the current rebalance
	synced bool             // sent SyncGroup in the current CompletingRebalance
	joinCh chan joinOutcome // non-nil while a JoinGroup waits (cap 1)
	syncCh chan syncOutcome // non-nil while a SyncGroup waits (cap 1)
}

// metadata returns the member's metadata for protocol name.
func (m *member) metadata(name string) []byte {
	for _, p := range m.protocols {
		if p.Name == name {
			return p.Metadata
		}
	}
	return nil
}

// supports reports whether the member listed protocol name.
func (m *member) supports(name string) bool {
	for _, p := range m.protocols {
		if p.Name == name {
			return true
		}
	}
	return false
}

// matches reports whether protocols are exactly the member's current ones.
func (m *member) matches(protocols []kmsg.JoinGroupRequestProtocol) bool {
	if len(protocols) != len(m.protocols) {
		return false
	}
	for i := range protocols {
		if protocols[i].Name != m.protocols[i].Name || !bytes.Equal(protocols[i].Metadata, m.protocols[i].Metadata) {
			return false
		}
	}
	return true
}

// notifyJoin answers the member's waiting JoinGroup, if any.
func (m *member) notifyJoin(o joinOutcome) {
	if m.joinCh != nil {
		m.joinCh <- o
		m.joinCh = nil
	}
}

// notifySync answers the member's waiting SyncGroup, if any.
func (m *member) notifySync(o syncOutcome) {
	if m.syncCh != nil {
		m.syncCh <- o
		m.syncCh = nil
	}
}

// group is one consumer group in memory. All fields are guarded by the
// Coordinator's mu.
type group struct {
	name         string
	state        state
	generation   int32
	protocolType string
	protocol     string
	leader       string
	members      map[string]*member     // by member id
	static       map[string]string      // instance id → member id
	pending      map[string]*time.Timer // KIP-394 ids handed out, not yet joined
	timer        *time.Timer            // initial delay, join or sync timeout
	timerEpoch   uint64                 // bumped on every (re)arm: stale fires do nothing
	initialDelay bool                   // the first rebalance waits for more members
	newMember    bool                   // a member joined during the initial delay
	delayLeft    time.Duration          // how much more the initial delay may extend
}

func newGroup(name string) *group {
	return &group{
		name:    name,
		members: map[string]*member{},
		static:  map[string]string{},
		pending: map[string]*time.Timer{},
	}
}

func (g *group) stopTimer() {
	g.timerEpoch++
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
}

// sortedMembers returns the members in join order.
func (g *group) sortedMembers() []*member {
	ms := make([]*member, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *member) int {
		switch {
		case a.order < b.order:
			return -1
		case a.order > b.order:
			return 1
		}
		return 0
	})
	return ms
}

// maxRebalance is the longest rebalance timeout of any member.
func (g *group) maxRebalance() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalance)
	}
	return d
}

// supports reports whether a member (other than except) with protocolType
// and protocols may join: the type matches and at least one protocol is
// supported by every other member.
func (g *group) supports(except, protocolType string, protocols []kmsg.JoinGroupRequestProtocol) bool {
	if protocolType == "" || len(protocols) == 0 {
		return false
	}
	others := 0
	for id := range g.members {
		if id != except {
			others++
		}
	}
	if others == 0 {
		return true
	}
	if protocolType != g.protocolType {
		return false
	}
	for _, p := range protocols {
		all := true
		for id, m := range g.members {
			if id != except && !m.supports(p.Name) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// selectProtocol returns the first of the leader's protocols that every
// member supports ("" when none is).
func (g *group) selectProtocol() string {
	l := g.members[g.leader]
	if l == nil {
		ms := g.sortedMembers()
		if len(ms) == 0 {
			return ""
		}
		l = ms[0]
	}
	for _, p := range l.protocols {
		all := true
		for _, m := range g.members {
			if !m.supports(p.Name) {
				all = false
				break
			}
		}
		if all {
			return p.Name
		}
	}
	return ""
}

// currentOutcome is the JoinGroup answer describing the current generation
// for m (with the member list when withMembers).
func (g *group) currentOutcome(m *member, withMembers bool) joinOutcome {
	o := joinOutcome{
		generation: g.generation,
		protocol:   g.protocol,
		leader:     g.leader,
		memberID:   m.id,
	}
	if withMembers {
		o.members = g.memberList()
	}
	return o
}

// memberList is what the leader gets: every member with its metadata for
// the chosen protocol, in join order.
func (g *group) memberList() []kmsg.JoinGroupResponseMember {
	ms := g.sortedMembers()
	out := make([]kmsg.JoinGroupResponseMember, 0, len(ms))
	for _, m := range ms {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID = m.id
		jm.InstanceID = m.instanceID
		jm.ProtocolMetadata = m.metadata(g.protocol)
		out = append(out, jm)
	}
	return out
}

// copyProtocols returns protocols with owned metadata (the request may
// alias a connection buffer).
func copyProtocols(ps []kmsg.JoinGroupRequestProtocol) []kmsg.JoinGroupRequestProtocol {
	out := make([]kmsg.JoinGroupRequestProtocol, len(ps))
	for i, p := range ps {
		out[i] = kmsg.JoinGroupRequestProtocol{Name: p.Name, Metadata: bytes.Clone(p.Metadata)}
	}
	return out
}

func clonePtr(s *string) *string {
	if s == nil {
		return nil
	}
	v := *s
	return &v
}
