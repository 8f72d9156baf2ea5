package group

import (
	"context"
	"crypto/sha256"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The consumer group protocol (KIP-848): ConsumerGroupHeartbeat and
// ConsumerGroupDescribe. Assignment is server-side; a group is either
// classic (c.groups) or consumer (c.cgroups), never both while it has
// members.

const (
	keyConsumerGroupHeartbeat = 68
	keyConsumerGroupDescribe  = 69
)

// Assignor names, as KIP-848 names them. The first is the default.
const (
	AssignorUniform = "uniform"
	AssignorRange   = "range"
)

var (
	codeInvalidRequest           = kerr.InvalidRequest.Code
	codeFencedMemberEpoch        = kerr.FencedMemberEpoch.Code
	codeUnreleasedInstanceID     = kerr.UnreleasedInstanceID.Code
	codeUnsupportedAssignor      = kerr.UnsupportedAssignor.Code
	codeStaleMemberEpoch         = kerr.StaleMemberEpoch.Code
	codeInvalidRegularExpression = kerr.InvalidRegularExpression.Code
	codeUnsupportedVersion       = kerr.UnsupportedVersion.Code
)

// tp is one topic partition.
type tp struct {
	topic     string
	partition int32
}

// tpSet is a set of topic partitions.
type tpSet map[tp]struct{}

func (s tpSet) equal(o tpSet) bool {
	if len(s) != len(o) {
		return false
	}
	for k := range s {
		if _, ok := o[k]; !ok {
			return false
		}
	}
	return true
}

func (s tpSet) clone() tpSet {
	out := make(tpSet, len(s))
	for k := range s {
		out[k] = struct{}{}
	}
	return out
}

// byTopic returns the set's topics, sorted, each with its sorted partitions.
func (s tpSet) byTopic() ([]string, map[string][]int32) {
	m := map[string][]int32{}
	for k := range s {
		m[k.topic] = append(m[k.topic], k.partition)
	}
	names := make([]string, 0, len(m))
	for t, ps := range m {
		slices.Sort(ps)
		names = append(names, t)
	}
	sort.Strings(names)
	return names, m
}

// cstate is a consumer-group member's place in reconciliation.
type cstate int8

const (
	cStable     cstate = iota // has its whole target assignment
	cUnrevoked                // must give up partitions before the next epoch
	cUnreleased               // at the target epoch, waits for partitions others still hold
)

// cmember is one member of a consumer group. Guarded by the Coordinator's mu.
type cmember struct {
	id         string
	instanceID *string
	rackID     *string
	clientID   string
	clientHost string

	epoch     int32
	prevEpoch int32
	away      bool // a static member that left for now (epoch -2)
	state     cstate

	topics    []string // subscribed topic names, sorted
	regex     string   // subscribed topic regex ("" none)
	re        *regexp.Regexp
	assignor  string // "" = no preference
	rebalance time.Duration
	session   time.Duration

	assigned tpSet        // partitions the member may consume
	revoking tpSet        // partitions the member must give up
	owned    tpSet        // what the member last reported owning
	since    map[tp]int32 // epoch at which each assigned partition became the member's
	sent     tpSet        // the assignment last sent to the member (nil: none yet)

	lastSeen       time.Time
	revokeDeadline time.Time
	timer          *time.Timer
}

// cgroup is one consumer group in memory. Guarded by the Coordinator's mu.
type cgroup struct {
	name            string
	epoch           int32
	assignmentEpoch int32
	assignor        string
	members         map[string]*cmember
	static          map[string]string // instance id → member id
	target          map[string]tpSet  // member id → target assignment
	topicParts      map[string]int32  // partitions of the subscribed topics when last assigned
}

// state is the group state as Kafka names it for consumer groups.
func (g *cgroup) state() string {
	if len(g.members) == 0 {
		return "Empty"
	}
	if g.epoch != g.assignmentEpoch {
		return "Assigning"
	}
	for _, m := range g.members {
		if m.epoch != g.assignmentEpoch || m.state != cStable {
			return "Reconciling"
		}
	}
	return "Stable"
}

func (g *cgroup) sortedMembers() []*cmember {
	ms := make([]*cmember, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].id < ms[j].id })
	return ms
}

// TopicID is the Kafka topic ID runnel gives topic name: derived from the
// name (ingest/kafka derives the same ID for Metadata and Fetch).
func TopicID(name string) [16]byte {
	sum := sha256.Sum256([]byte("runnel-topic\x00" + name))
	var id [16]byte
	copy(id[:], sum[:16])
	return id
}

// topicNameLocked resolves a topic ID ("" when no topic has it).
func (c *Coordinator) topicNameLocked(id [16]byte) string {
	if name, ok := c.topicIDs[id]; ok {
		return name
	}
	if c.opts.Log == nil {
		return ""
	}
	c.topicIDs = map[[16]byte]string{}
	for _, ti := range c.opts.Log.Topics() {
		c.topicIDs[TopicID(ti.Name)] = ti.Name
	}
	return c.topicIDs[id]
}

// fromRequestTopics converts owned partitions of a heartbeat (by topic ID).
// Unknown topic IDs are dropped: nobody else can be assigned them.
func (c *Coordinator) fromRequestTopics(ts []kmsg.ConsumerGroupHeartbeatRequestTopic) tpSet {
	s := tpSet{}
	for _, t := range ts {
		name := c.topicNameLocked(t.TopicID)
		if name == "" {
			continue
		}
		for _, p := range t.Partitions {
			s[tp{name, p}] = struct{}{}
		}
	}
	return s
}

func toResponseAssignment(s tpSet) *kmsg.ConsumerGroupHeartbeatResponseAssignment {
	a := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
	a.Topics = []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{}
	names, parts := s.byTopic()
	for _, n := range names {
		t := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
		t.TopicID, t.Partitions = TopicID(n), parts[n]
		a.Topics = append(a.Topics, t)
	}
	return &a
}

func toDescribeAssignment(s tpSet) kmsg.Assignment {
	var a kmsg.Assignment
	a.TopicPartitions = []kmsg.AssignmentTopicPartition{}
	names, parts := s.byTopic()
	for _, n := range names {
		t := kmsg.AssignmentTopicPartition{TopicID: TopicID(n), Topic: n, Partitions: parts[n]}
		a.TopicPartitions = append(a.TopicPartitions, t)
	}
	return a
}

// consumerGroupHeartbeat serves ConsumerGroupHeartbeat: join (epoch 0),
// heartbeat and reconcile (epoch > 0), leave (-1) and static leave (-2).
func (c *Coordinator) consumerGroupHeartbeat(ctx context.Context, req *kmsg.ConsumerGroupHeartbeatRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	fail := func(code int16, msg string) kmsg.Response {
		resp.ErrorCode = code
		if msg != "" {
			resp.ErrorMessage = &msg
		}
		return resp
	}
	if msg := validateHeartbeat(req); msg != "" {
		return fail(codeInvalidRequest, msg)
	}
	if req.ServerAssignor != nil && *req.ServerAssignor != AssignorUniform && *req.ServerAssignor != AssignorRange {
		return fail(codeUnsupportedAssignor, "assignor "+*req.ServerAssignor+" is not supported (uniform, range)")
	}
	var re *regexp.Regexp
	if req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != "" {
		var err error
		if re, err = regexp.Compile("^(?:" + *req.SubscribedTopicRegex + ")$"); err != nil {
			return fail(codeInvalidRegularExpression, err.Error())
		}
	}
	ci := clientFrom(ctx)

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fail(codeCoordinatorNotAvailable, "")
	}
	if g := c.groups[req.Group]; g != nil && (len(g.members) > 0 || len(g.pending) > 0) {
		return fail(codeGroupIDNotFound, "group "+req.Group+" is not a consumer group")
	}
	g := c.cgroups[req.Group]
	now := time.Now()

	switch req.MemberEpoch {
	case -1, -2:
		if g == nil || g.members[req.MemberID] == nil {
			return fail(codeUnknownMemberID, "")
		}
		m := g.members[req.MemberID]
		if req.MemberEpoch == -2 && m.instanceID != nil {
			// A static member that will come back: it keeps its
			// assignment for its session timeout.
			m.away, m.lastSeen = true, now
			c.armConsumerTimerLocked(g, m)
		} else {
			c.logger.Info("group: member left", "group", g.name, "member", m.id)
			c.removeConsumerMemberLocked(g, m)
		}
		resp.MemberID, resp.MemberEpoch = &m.id, req.MemberEpoch
		c.maybeDropConsumerLocked(g)
		return resp
	}

	var m *cmember
	if req.MemberEpoch == 0 {
		if g == nil {
			g = &cgroup{
				name:    strings.Clone(req.Group),
				members: map[string]*cmember{},
				static:  map[string]string{},
				target:  map[string]tpSet{},
			}
			c.cgroups[g.name] = g
			c.stats.groups.Add(1)
		}
		id := strings.Clone(req.MemberID)
		if id == "" {
			id = newMemberID(ci.id)
		}
		m = g.members[id]
		takeover := false
		if req.InstanceID != nil {
			if old, ok := g.static[*req.InstanceID]; ok && old != id {
				om := g.members[old]
				if om != nil && !om.away {
					c.maybeDropConsumerLocked(g)
					return fail(codeUnreleasedInstanceID, "instance "+*req.InstanceID+" is still used by member "+old)
				}
				if om != nil {
					// The static member comes back under a new member
					// id: it takes over the old one's assignment and epoch.
					om.timer.Stop()
					delete(g.members, old)
					om.id, om.away = id, false
					g.members[id] = om
					c.logger.Info("group: static member came back", "group", g.name, "instance", *req.InstanceID, "member", id)
					if t, ok := g.target[old]; ok {
						delete(g.target, old)
						g.target[id] = t
					}
					m, takeover = om, true
				}
			}
		}
		if m == nil {
			m = &cmember{id: id, assigned: tpSet{}, revoking: tpSet{}, owned: tpSet{}, since: map[tp]int32{}}
			g.members[id] = m
			c.stats.members.Add(1)
			c.bumpLocked(g, "member joined")
			c.logger.Info("group: member joined", "group", g.name, "member", id, "protocol", "consumer")
		} else if !takeover && !m.away {
			// Rejoining with epoch 0: the member dropped its partitions.
			m.assigned, m.revoking = tpSet{}, tpSet{}
			m.epoch, m.state = 0, cStable
		}
		m.away = false
		m.sent = nil // the whole assignment goes in the answer
		if req.InstanceID != nil {
			m.instanceID = clonePtr(req.InstanceID)
			g.static[*req.InstanceID] = id
		}
		m.clientID, m.clientHost = ci.id, ci.host
	} else {
		if g == nil || g.members[req.MemberID] == nil {
			return fail(codeUnknownMemberID, "member "+req.MemberID+" is not a member of group "+req.Group)
		}
		m = g.members[req.MemberID]
		if code, msg := checkMemberEpoch(m, req, c); code != codeNone {
			return fail(code, msg)
		}
	}
	m.lastSeen = now
	if req.RebalanceTimeoutMillis > 0 {
		m.rebalance = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	m.session = c.opts.ConsumerSessionTimeout
	if req.RackID != nil {
		m.rackID = clonePtr(req.RackID)
	}
	if req.SubscribedTopicNames != nil {
		ts := slices.Clone(req.SubscribedTopicNames)
		for i := range ts {
			ts[i] = strings.Clone(ts[i])
		}
		sort.Strings(ts)
		ts = slices.Compact(ts)
		if !slices.Equal(ts, m.topics) {
			m.topics = ts
			c.bumpLocked(g, "subscription changed")
		}
	}
	if req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != m.regex {
		m.regex, m.re = strings.Clone(*req.SubscribedTopicRegex), re
		c.bumpLocked(g, "subscription changed")
	}
	if req.ServerAssignor != nil && *req.ServerAssignor != m.assignor {
		m.assignor = strings.Clone(*req.ServerAssignor)
		c.bumpLocked(g, "assignor changed")
	}
	if req.Topics != nil {
		m.owned = c.fromRequestTopics(req.Topics)
	}
	c.refreshTopicsLocked(g)
	if g.epoch != g.assignmentEpoch {
		c.assignLocked(g)
	}
	c.reconcileLocked(g, m, req.Topics != nil)
	c.armConsumerTimerLocked(g, m)

	resp.MemberID = &m.id
	resp.MemberEpoch = m.epoch
	resp.HeartbeatIntervalMillis = int32(c.opts.ConsumerHeartbeatInterval / time.Millisecond)
	if m.sent == nil || !m.sent.equal(m.assigned) || (req.Topics != nil && !m.owned.equal(m.assigned)) {
		resp.Assignment = toResponseAssignment(m.assigned)
		m.sent = m.assigned.clone()
	}
	return resp
}

// validateHeartbeat returns why req is malformed ("" when it is not), as
// Kafka checks it.
func validateHeartbeat(req *kmsg.ConsumerGroupHeartbeatRequest) string {
	switch {
	case req.Group == "":
		return "GroupId can't be empty."
	case req.InstanceID != nil && *req.InstanceID == "":
		return "InstanceId can't be empty."
	case req.RackID != nil && *req.RackID == "":
		return "RackId can't be empty."
	case req.MemberEpoch == 0:
		switch {
		case req.RebalanceTimeoutMillis == -1:
			return "RebalanceTimeoutMs must be provided in first request."
		case req.Topics == nil || len(req.Topics) > 0:
			return "TopicPartitions must be empty when (re-)joining."
		case req.SubscribedTopicNames == nil && req.SubscribedTopicRegex == nil:
			return "SubscribedTopicNames or SubscribedTopicRegex must be set in first request."
		}
	case req.MemberEpoch > 0 || req.MemberEpoch == -1:
		if req.MemberID == "" {
			return "MemberId can't be empty."
		}
	case req.MemberEpoch == -2:
		if req.MemberID == "" {
			return "MemberId can't be empty."
		}
		if req.InstanceID == nil {
			return "InstanceId can't be null."
		}
	default:
		return "MemberEpoch is invalid."
	}
	return ""
}

// checkMemberEpoch fences a member whose epoch is not the coordinator's,
// but accepts the previous epoch with a subset of the current assignment
// (the answer that bumped the epoch may have been lost).
func checkMemberEpoch(m *cmember, req *kmsg.ConsumerGroupHeartbeatRequest, c *Coordinator) (int16, string) {
	if req.InstanceID != nil && (m.instanceID == nil || *m.instanceID != *req.InstanceID) {
		return codeFencedInstanceID, ""
	}
	if m.away {
		return codeFencedMemberEpoch, "the static member left (epoch -2): it must rejoin with epoch 0"
	}
	switch {
	case req.MemberEpoch > m.epoch:
		return codeFencedMemberEpoch, "member epoch is ahead of the coordinator's: the member must rejoin"
	case req.MemberEpoch < m.epoch:
		if req.MemberEpoch != m.prevEpoch || req.Topics == nil {
			return codeFencedMemberEpoch, "member epoch is behind the coordinator's: the member must rejoin"
		}
		for k := range c.fromRequestTopics(req.Topics) {
			if _, ok := m.assigned[k]; !ok {
				return codeFencedMemberEpoch, "member epoch is behind the coordinator's: the member must rejoin"
			}
		}
	}
	return codeNone, ""
}

// bumpLocked starts a new group epoch (one per change, however many
// changes one heartbeat brings): the target assignment is computed again.
func (c *Coordinator) bumpLocked(g *cgroup, reason string) {
	if g.epoch != g.assignmentEpoch {
		return // a new epoch is already waiting for its assignment
	}
	g.epoch++
	c.logger.Debug("group: new group epoch", "group", g.name, "epoch", g.epoch, "reason", reason)
}

// subscribedLocked returns the topics each member subscribes to (names that
// exist and regex matches) and the partitions of each.
func (c *Coordinator) subscribedLocked(g *cgroup) (map[string][]string, map[string]int32) {
	subs := map[string][]string{}
	parts := map[string]int32{}
	if c.opts.Log == nil {
		return subs, parts
	}
	var all map[string]int32
	for _, m := range g.members {
		if m.re != nil && all == nil {
			all = map[string]int32{}
			for _, ti := range c.opts.Log.Topics() {
				if !strings.HasPrefix(ti.Name, "__") {
					all[ti.Name] = int32(len(ti.Partitions))
				}
			}
		}
	}
	for _, m := range g.members {
		var ts []string
		for _, t := range m.topics {
			n, ok := parts[t]
			if !ok {
				n = c.partitionsOf(t, parts)
			}
			if n > 0 {
				ts = append(ts, t)
			}
		}
		if m.re != nil {
			for t, n := range all {
				if m.re.MatchString(t) && n > 0 {
					ts = append(ts, t)
					parts[t] = n
				}
			}
		}
		sort.Strings(ts)
		subs[m.id] = slices.Compact(ts)
	}
	for t, n := range parts {
		if n <= 0 {
			delete(parts, t)
		}
	}
	return subs, parts
}

// refreshTopicsLocked bumps the group epoch when a subscribed topic
// appeared, went away or gained partitions since the last assignment.
func (c *Coordinator) refreshTopicsLocked(g *cgroup) {
	if g.epoch != g.assignmentEpoch {
		return // assigned anyway
	}
	_, parts := c.subscribedLocked(g)
	if len(parts) != len(g.topicParts) {
		c.bumpLocked(g, "subscribed topics changed")
		return
	}
	for t, n := range parts {
		if g.topicParts[t] != n {
			c.bumpLocked(g, "subscribed topics changed")
			return
		}
	}
}

// assignorLocked is the assignor the members prefer most (ties: by name),
// uniform when none has a preference.
func (g *cgroup) assignorLocked() string {
	votes := map[string]int{}
	for _, m := range g.members {
		if m.assignor != "" {
			votes[m.assignor]++
		}
	}
	best := AssignorUniform
	n := 0
	for _, a := range []string{AssignorRange, AssignorUniform} {
		if votes[a] > n {
			best, n = a, votes[a]
		}
	}
	return best
}

// assignLocked computes the target assignment of the group epoch.
func (c *Coordinator) assignLocked(g *cgroup) {
	subs, parts := c.subscribedLocked(g)
	g.assignor = g.assignorLocked()
	prev := g.target
	if g.assignor == AssignorRange {
		g.target = assignRange(subs, parts)
	} else {
		g.target = assignUniform(subs, parts, prev)
	}
	g.topicParts = parts
	g.assignmentEpoch = g.epoch
	c.stats.rebalances.Add(1)
	c.logger.Info("group: target assignment", "group", g.name, "epoch", g.epoch, "assignor", g.assignor, "members", len(g.members))
}

// ownedByOthersLocked reports whether a member other than m holds k
// (assigned or still revoking).
func ownedByOthersLocked(g *cgroup, m *cmember, k tp) bool {
	for _, o := range g.members {
		if o == m {
			continue
		}
		if _, ok := o.assigned[k]; ok {
			return true
		}
		if _, ok := o.revoking[k]; ok {
			return true
		}
	}
	return false
}

// reconcileLocked moves m toward its target assignment: partitions leaving
// it are revoked first (its epoch stays until a heartbeat that reports its
// owned partitions, reported, no longer has them), then it
// moves to the assignment epoch and gets the partitions no other member
// holds; the rest follow on later heartbeats as their owners release them.
func (c *Coordinator) reconcileLocked(g *cgroup, m *cmember, reported bool) {
	if m.away {
		return
	}
	if m.state == cUnrevoked {
		if !reported {
			return
		}
		for k := range m.revoking {
			if _, ok := m.owned[k]; ok {
				return // still revoking
			}
		}
		m.revoking = tpSet{}
		m.state = cStable
	}
	if m.epoch == g.assignmentEpoch && m.state == cStable {
		return
	}
	target := g.target[m.id]
	keep, revoke := tpSet{}, tpSet{}
	for k := range m.assigned {
		if _, ok := target[k]; ok {
			keep[k] = struct{}{}
		} else {
			revoke[k] = struct{}{}
		}
	}
	if len(revoke) > 0 {
		m.assigned, m.revoking, m.state = keep, revoke, cUnrevoked
		m.revokeDeadline = time.Now().Add(max(m.rebalance, time.Second))
		return
	}
	missing := false
	for k := range target {
		if _, ok := keep[k]; ok {
			continue
		}
		if ownedByOthersLocked(g, m, k) {
			missing = true
			continue
		}
		keep[k] = struct{}{}
		m.since[k] = g.assignmentEpoch
	}
	m.assigned = keep
	if m.epoch != g.assignmentEpoch {
		m.prevEpoch, m.epoch = m.epoch, g.assignmentEpoch
	}
	m.state = cStable
	if missing {
		m.state = cUnreleased
	}
}

// armConsumerTimerLocked (re)arms m's expiry: its session timeout from its
// last heartbeat, or its revocation deadline.
func (c *Coordinator) armConsumerTimerLocked(g *cgroup, m *cmember) {
	if m.timer != nil {
		m.timer.Stop()
	}
	d := time.Until(m.lastSeen.Add(m.session))
	if m.state == cUnrevoked {
		d = min(d, time.Until(m.revokeDeadline))
	}
	m.timer = c.afterFunc(max(d, 0)+time.Millisecond, func() {
		if c.cgroups[g.name] != g || g.members[m.id] != m {
			return
		}
		now := time.Now()
		switch {
		case now.Sub(m.lastSeen) >= m.session:
			c.logger.Info("group: member session expired", "group", g.name, "member", m.id, "timeout", m.session)
		case m.state == cUnrevoked && !now.Before(m.revokeDeadline):
			c.logger.Info("group: member did not revoke its partitions in time", "group", g.name, "member", m.id)
		default:
			c.armConsumerTimerLocked(g, m)
			return
		}
		c.stats.expired.Add(1)
		c.removeConsumerMemberLocked(g, m)
		c.maybeDropConsumerLocked(g)
	})
}

// removeConsumerMemberLocked removes m; its partitions go to the others.
func (c *Coordinator) removeConsumerMemberLocked(g *cgroup, m *cmember) {
	if m.timer != nil {
		m.timer.Stop()
	}
	delete(g.members, m.id)
	delete(g.target, m.id)
	c.stats.members.Add(-1)
	if m.instanceID != nil && g.static[*m.instanceID] == m.id {
		delete(g.static, *m.instanceID)
	}
	c.bumpLocked(g, "member left")
}

// maybeDropConsumerLocked forgets g once it has no members (its committed
// offsets stay in meta).
func (c *Coordinator) maybeDropConsumerLocked(g *cgroup) {
	if len(g.members) == 0 && c.cgroups[g.name] == g {
		delete(c.cgroups, g.name)
		c.stats.groups.Add(-1)
	}
}

// consumerGroupDescribe serves ConsumerGroupDescribe.
func (c *Coordinator) consumerGroupDescribe(req *kmsg.ConsumerGroupDescribeRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
	for _, name := range req.Groups {
		dg := kmsg.NewConsumerGroupDescribeResponseGroup()
		dg.Group = name
		c.mu.Lock()
		g := c.cgroups[name]
		classic := c.groups[name]
		switch {
		case name == "":
			dg.ErrorCode = codeInvalidGroupID
		case g != nil:
			dg.State, dg.Epoch, dg.AssignmentEpoch, dg.AssignorName = g.state(), g.epoch, g.assignmentEpoch, g.assignor
			for _, m := range g.sortedMembers() {
				dm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
				dm.MemberID, dm.InstanceID, dm.RackID = m.id, clonePtr(m.instanceID), clonePtr(m.rackID)
				dm.MemberEpoch, dm.ClientID, dm.ClientHost = m.epoch, m.clientID, m.clientHost
				dm.SubscribedTopics = slices.Clone(m.topics)
				if dm.SubscribedTopics == nil {
					dm.SubscribedTopics = []string{}
				}
				if m.regex != "" {
					dm.SubscribedTopicRegex = &m.regex
				}
				dm.Assignment = toDescribeAssignment(m.assigned)
				dm.TargetAssignment = toDescribeAssignment(g.target[m.id])
				dm.MemberType = 1
				dg.Members = append(dg.Members, dm)
			}
		case classic != nil && len(classic.members) > 0:
			dg.ErrorCode = codeGroupIDNotFound
			msg := "group " + name + " is not a consumer group"
			dg.ErrorMessage = &msg
		}
		c.mu.Unlock()
		if g == nil && dg.ErrorCode == codeNone {
			offs, err := c.opts.Meta.GroupOffsets(name)
			switch {
			case err != nil:
				dg.ErrorCode = codeCoordinatorNotAvailable
			case len(offs) > 0:
				dg.State, dg.AssignorName = "Empty", AssignorUniform
			default:
				dg.ErrorCode = codeGroupIDNotFound
				msg := "group " + name + " not found"
				dg.ErrorMessage = &msg
			}
		}
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

// consumerCommitCheckLocked decides whether an OffsetCommit to the
// consumer group g may store offsets: the committer must be a member
// (OffsetCommit v9+) at its current epoch, or at an older epoch for
// partitions it has held since that epoch or before (KIP-1251: no other
// member can have held them since, and a member that committed just
// before its epoch moved need not fail); a commit without a member (epoch
// < 0) only when the group has no members.
func consumerCommitCheckLocked(g *cgroup, req *kmsg.OffsetCommitRequest) int16 {
	if req.Generation < 0 && len(g.members) == 0 {
		return codeNone
	}
	m := g.members[req.MemberID]
	switch {
	case m == nil:
		return codeUnknownMemberID
	case req.Version < 9:
		return codeUnsupportedVersion
	case req.Generation == m.epoch:
		return codeNone
	case req.Generation > m.epoch || req.Generation < 0:
		return codeStaleMemberEpoch
	}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			k := tp{t.Topic, p.Partition}
			_, held := m.assigned[k]
			if _, revoking := m.revoking[k]; !held && !revoking {
				return codeStaleMemberEpoch
			}
			if since, ok := m.since[k]; !ok || since > req.Generation {
				return codeStaleMemberEpoch
			}
		}
	}
	return codeNone
}

// consumerFetchCheckLocked decides whether an OffsetFetch that names a
// member (v9+) may read g's offsets: the member must be in the group at
// epoch. Without a member id (admin tools, classic members) it may.
func (c *Coordinator) consumerFetchCheckLocked(version int16, group string, memberID *string, epoch int32) int16 {
	if version < 9 || memberID == nil || *memberID == "" {
		return codeNone
	}
	g := c.cgroups[group]
	if g == nil {
		if c.groups[group] != nil {
			return codeNone
		}
		return codeUnknownMemberID
	}
	m := g.members[*memberID]
	switch {
	case m == nil:
		return codeUnknownMemberID
	case epoch != m.epoch:
		return codeStaleMemberEpoch
	}
	return codeNone
}

// consumerSummaryLocked describes a consumer-protocol group for
// DescribeGroups: its members with their current assignments in the
// classic ConsumerMemberAssignment encoding, so that tools that know only
// DescribeGroups show who consumes what.
func consumerSummaryLocked(g *cgroup) groupSummary {
	s := groupSummary{name: g.name, consumer: true, cstate: g.state(), protocolType: "consumer", protocol: g.assignor}
	for _, m := range g.sortedMembers() {
		dm := kmsg.NewDescribeGroupsResponseGroupMember()
		dm.MemberID, dm.InstanceID = m.id, clonePtr(m.instanceID)
		dm.ClientID, dm.ClientHost = m.clientID, m.clientHost
		var md kmsg.ConsumerMemberMetadata
		md.Version, md.Topics = 0, slices.Clone(m.topics)
		dm.ProtocolMetadata = md.AppendTo(nil)
		var a kmsg.ConsumerMemberAssignment
		names, parts := m.assigned.byTopic()
		for _, n := range names {
			a.Topics = append(a.Topics, kmsg.ConsumerMemberAssignmentTopic{Topic: n, Partitions: parts[n]})
		}
		dm.MemberAssignment = a.AppendTo(nil)
		s.members = append(s.members, dm)
	}
	return s
}
