package group

import (
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
)

func (f fakeLog) Topics() []log.TopicInfo {
	var out []log.TopicInfo
	for name := range f.topics {
		ti, _ := f.Topic(name)
		out = append(out, ti)
	}
	return out
}

// cgHeartbeat is one ConsumerGroupHeartbeat (v1).
type cgHeartbeat struct {
	group, member string
	epoch         int32
	instance      *string
	topics        []string // nil: unchanged
	regex         *string
	assignor      *string
	owned         map[string][]int32 // nil: unchanged
}

func (h *harness) cgh(b cgHeartbeat) *kmsg.ConsumerGroupHeartbeatResponse {
	h.t.Helper()
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Version = 1
	req.Group, req.MemberID, req.MemberEpoch, req.InstanceID = b.group, b.member, b.epoch, b.instance
	req.SubscribedTopicNames, req.SubscribedTopicRegex, req.ServerAssignor = b.topics, b.regex, b.assignor
	if b.epoch == 0 {
		req.RebalanceTimeoutMillis = 5000
		if b.owned == nil {
			b.owned = map[string][]int32{}
		}
	}
	if b.owned != nil {
		req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		for t, ps := range b.owned {
			req.Topics = append(req.Topics, kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: TopicID(t), Partitions: ps})
		}
	}
	return h.do(req).(*kmsg.ConsumerGroupHeartbeatResponse)
}

// partsOf flattens an assignment of topic "t" (nil assignment: nil).
func partsOf(t *testing.T, r *kmsg.ConsumerGroupHeartbeatResponse) []int32 {
	t.Helper()
	if r.Assignment == nil {
		return nil
	}
	out := []int32{}
	for _, at := range r.Assignment.Topics {
		if at.TopicID != TopicID("t") {
			t.Fatalf("assignment of an unexpected topic id %x", at.TopicID)
		}
		out = append(out, at.Partitions...)
	}
	slices.Sort(out)
	return out
}

// TestConsumerProtocolReconciliation drives two members through a
// rebalance: the second gets partitions only after the first reported them
// revoked, epochs move as KIP-848 says, stale and future epochs are fenced,
// and offset commits are checked against the member epoch.
func TestConsumerProtocolReconciliation(t *testing.T) {
	h := newHarness(t, nil)
	sub := []string{"t"}
	r := h.cgh(cgHeartbeat{group: "g", member: "m1", topics: sub})
	mustCode(t, "m1 join", r.ErrorCode, 0)
	if r.MemberEpoch != 1 || !slices.Equal(partsOf(t, r), []int32{0, 1, 2, 3}) || *r.MemberID != "m1" || r.HeartbeatIntervalMillis != 5000 {
		t.Fatalf("m1 join: epoch %d, %v", r.MemberEpoch, partsOf(t, r))
	}
	// Steady heartbeat: no assignment sent again.
	if r = h.cgh(cgHeartbeat{group: "g", member: "m1", epoch: 1}); r.ErrorCode != 0 || r.Assignment != nil || r.MemberEpoch != 1 {
		t.Fatalf("m1 steady: %+v", r)
	}
	r = h.cgh(cgHeartbeat{group: "g", member: "m2", topics: sub})
	if r.ErrorCode != 0 || r.MemberEpoch != 2 || len(partsOf(t, r)) != 0 {
		t.Fatalf("m2 join: epoch %d, %v: the partitions are still m1's", r.MemberEpoch, partsOf(t, r))
	}
	// m1 is told to give up two partitions, at its old epoch.
	r = h.cgh(cgHeartbeat{group: "g", member: "m1", epoch: 1})
	kept := partsOf(t, r)
	if r.MemberEpoch != 1 || len(kept) != 2 {
		t.Fatalf("m1 revoke: epoch %d, %v", r.MemberEpoch, kept)
	}
	// Nothing for m2 while m1 still owns them.
	if r = h.cgh(cgHeartbeat{group: "g", member: "m2", epoch: 2}); len(partsOf(t, r)) != 0 {
		t.Fatalf("m2 got %v before m1 revoked", partsOf(t, r))
	}
	// A heartbeat that does not report owned partitions does not finish
	// the revocation.
	if r = h.cgh(cgHeartbeat{group: "g", member: "m1", epoch: 1}); r.MemberEpoch != 1 {
		t.Fatalf("m1 moved to epoch %d without reporting its partitions", r.MemberEpoch)
	}
	if r = h.cgh(cgHeartbeat{group: "g", member: "m2", epoch: 2}); len(partsOf(t, r)) != 0 {
		t.Fatalf("m2 got %v before m1 reported the revocation", partsOf(t, r))
	}
	// A commit at m1's epoch is accepted while it revokes.
	mustCode(t, "m1 commit while revoking", h.cgCommit("g", "m1", 1, 9), 0)
	r = h.cgh(cgHeartbeat{group: "g", member: "m1", epoch: 1, owned: map[string][]int32{"t": kept}})
	if r.MemberEpoch != 2 {
		t.Fatalf("m1 after revoking: epoch %d", r.MemberEpoch)
	}
	r = h.cgh(cgHeartbeat{group: "g", member: "m2", epoch: 2})
	got := partsOf(t, r)
	if r.MemberEpoch != 2 || len(got) != 2 || slices.ContainsFunc(got, func(p int32) bool { return slices.Contains(kept, p) }) {
		t.Fatalf("m2 after m1 revoked: epoch %d, %v (m1 kept %v)", r.MemberEpoch, got, kept)
	}
	h.cgh(cgHeartbeat{group: "g", member: "m2", epoch: 2, owned: map[string][]int32{"t": got}})

	// Epoch checks.
	mustCode(t, "future epoch", h.cgh(cgHeartbeat{group: "g", member: "m1", epoch: 7}).ErrorCode, 110)
	mustCode(t, "previous epoch, owned within", h.cgh(cgHeartbeat{group: "g", member: "m1", epoch: 1, owned: map[string][]int32{"t": kept}}).ErrorCode, 0)
	mustCode(t, "previous epoch, owned outside", h.cgh(cgHeartbeat{group: "g", member: "m1", epoch: 1, owned: map[string][]int32{"t": got}}).ErrorCode, 110)
	mustCode(t, "unknown member", h.cgh(cgHeartbeat{group: "g", member: "zz", epoch: 2}).ErrorCode, 25)
	mustCode(t, "bad assignor", h.cgh(cgHeartbeat{group: "g", member: "m3", topics: sub, assignor: strp("sticky")}).ErrorCode, 112)
	mustCode(t, "join without rebalance timeout", h.do(&kmsg.ConsumerGroupHeartbeatRequest{Version: 1, Group: "g", MemberID: "m4", RebalanceTimeoutMillis: -1, SubscribedTopicNames: sub, Topics: []kmsg.ConsumerGroupHeartbeatRequestTopic{}}).(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode, 42)

	// Offsets: member epoch, OffsetCommit v9+.
	mustCode(t, "commit at the epoch", h.cgCommit("g", "m2", 2, 9), 0)
	mustCode(t, "commit at a stale epoch", h.cgCommit("g", "m2", 1, 9), 113)
	mustCode(t, "commit v8", h.cgCommit("g", "m2", 2, 8), 35)
	mustCode(t, "commit of a non-member", h.cgCommit("g", "zz", 2, 9), 25)
	mustCode(t, "commit without a member to a group with members", h.cgCommit("g", "", -1, 9), 25)
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Version = 9
	of.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g", MemberID: strp("m2"), MemberEpoch: 1}, {Group: "g", MemberID: strp("m2"), MemberEpoch: 2}}
	ofr := h.do(of).(*kmsg.OffsetFetchResponse)
	mustCode(t, "fetch at a stale epoch", ofr.Groups[0].ErrorCode, 113)
	mustCode(t, "fetch at the epoch", ofr.Groups[1].ErrorCode, 0)

	// Classic requests to the consumer group.
	jr := h.do(h.joinReq(joinSpec{group: "g", session: time.Second, rebalance: time.Second, protos: []proto{{"range", "x"}}, version: 5})).(*kmsg.JoinGroupResponse)
	mustCode(t, "classic join to a consumer group", jr.ErrorCode, 23)

	// ListGroups and ConsumerGroupDescribe.
	lg := h.do(&kmsg.ListGroupsRequest{Version: 5}).(*kmsg.ListGroupsResponse)
	if len(lg.Groups) != 1 || lg.Groups[0].GroupType != "consumer" || lg.Groups[0].GroupState != "Stable" {
		t.Fatalf("ListGroups: %+v", lg.Groups)
	}
	lg = h.do(&kmsg.ListGroupsRequest{Version: 5, TypesFilter: []string{"classic"}}).(*kmsg.ListGroupsResponse)
	if len(lg.Groups) != 0 {
		t.Fatalf("ListGroups of classic groups: %+v", lg.Groups)
	}
	d := h.do(&kmsg.ConsumerGroupDescribeRequest{Version: 1, Groups: []string{"g", "nope"}}).(*kmsg.ConsumerGroupDescribeResponse)
	if g := d.Groups[0]; g.ErrorCode != 0 || g.Epoch != 2 || g.AssignmentEpoch != 2 || g.AssignorName != "uniform" || len(g.Members) != 2 {
		t.Fatalf("ConsumerGroupDescribe: %+v", g)
	}
	mustCode(t, "describe an unknown group", d.Groups[1].ErrorCode, 69)
	gs, err := h.c.Groups()
	if err != nil || len(gs) != 1 || gs[0].State != "Stable" || gs[0].Protocol != "uniform" || len(gs[0].Members) != 2 {
		t.Fatalf("Groups (status pages): %+v, %v", gs, err)
	}
	dg := h.do(&kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{"g"}}).(*kmsg.DescribeGroupsResponse)
	if dg.Groups[0].State != "Stable" || dg.Groups[0].ProtocolType != "consumer" || len(dg.Groups[0].Members) != 2 {
		t.Fatalf("DescribeGroups of a consumer group: %+v", dg.Groups[0])
	}

	// m1 leaves: m2 gets every partition, at a new epoch.
	if r = h.cgh(cgHeartbeat{group: "g", member: "m1", epoch: -1}); r.ErrorCode != 0 || r.MemberEpoch != -1 {
		t.Fatalf("m1 leave: %+v", r)
	}
	r = h.cgh(cgHeartbeat{group: "g", member: "m2", epoch: 2})
	if r.MemberEpoch != 3 || !slices.Equal(partsOf(t, r), []int32{0, 1, 2, 3}) {
		t.Fatalf("m2 after m1 left: epoch %d, %v", r.MemberEpoch, partsOf(t, r))
	}
	// A commit at the previous epoch is accepted for partitions held since
	// then (KIP-1251), not for those that came with the new epoch.
	mustCode(t, "commit at epoch 2 of a partition held since 2", h.cgCommitP("g", "m2", 2, 9, got[0]), 0)
	mustCode(t, "commit at epoch 2 of a partition held since 3", h.cgCommitP("g", "m2", 2, 9, kept[0]), 113)
	mustCode(t, "commit at a future epoch", h.cgCommitP("g", "m2", 4, 9, got[0]), 113)
}

func (h *harness) cgCommit(group, member string, epoch int32, version int16) int16 {
	return h.cgCommitP(group, member, epoch, version, 0)
}

func (h *harness) cgCommitP(group, member string, epoch int32, version int16, partition int32) int16 {
	h.t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version, req.Group, req.MemberID, req.Generation = version, group, member, epoch
	req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: partition, Offset: 5}}}}
	return h.do(req).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
}

// TestConsumerProtocolSessionAndStatic: a member without heartbeats is
// removed after the session timeout and its partitions go to the other; a
// static member that leaves with epoch -2 keeps its partitions and its
// replacement (same instance id) takes them over at its epoch; a classic
// group refuses consumer-protocol members.
func TestConsumerProtocolSessionAndStatic(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.ConsumerSessionTimeout = 300 * time.Millisecond
		o.ConsumerHeartbeatInterval = 50 * time.Millisecond
	})
	sub := []string{"t"}
	h.cgh(cgHeartbeat{group: "g", member: "a", topics: sub, instance: strp("i-a")})
	r := h.cgh(cgHeartbeat{group: "g", member: "a", epoch: 1, owned: map[string][]int32{"t": {0, 1, 2, 3}}})
	h.cgh(cgHeartbeat{group: "g", member: "b", topics: sub})
	r = h.cgh(cgHeartbeat{group: "g", member: "a", epoch: 1})
	keptA := partsOf(t, r)
	r = h.cgh(cgHeartbeat{group: "g", member: "a", epoch: 1, owned: map[string][]int32{"t": keptA}})
	r = h.cgh(cgHeartbeat{group: "g", member: "b", epoch: 2})
	if len(partsOf(t, r)) != 2 {
		t.Fatalf("b: %v", partsOf(t, r))
	}
	// a leaves for now (static): b does not get its partitions.
	mustCode(t, "static leave", h.cgh(cgHeartbeat{group: "g", member: "a", epoch: -2, instance: strp("i-a")}).ErrorCode, 0)
	// A second process with the same instance while a is still active
	// would be refused; a is away, so a2 takes over.
	r = h.cgh(cgHeartbeat{group: "g", member: "a2", topics: sub, instance: strp("i-a")})
	if r.ErrorCode != 0 || r.MemberEpoch != 2 || !slices.Equal(partsOf(t, r), keptA) {
		t.Fatalf("a2 takes over: code %d epoch %d %v, want a's %v at epoch 2", r.ErrorCode, r.MemberEpoch, partsOf(t, r), keptA)
	}
	mustCode(t, "instance in use", h.cgh(cgHeartbeat{group: "g", member: "a3", topics: sub, instance: strp("i-a")}).ErrorCode, 111)

	// b keeps heartbeating, a2 stops: after the session timeout b owns all.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r = h.cgh(cgHeartbeat{group: "g", member: "b", epoch: r.MemberEpoch})
		if r.ErrorCode != 0 {
			// b's epoch moved on in between: read it back.
			t.Fatalf("b heartbeat: %d", r.ErrorCode)
		}
		if ps := partsOf(t, r); len(ps) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never got every partition after a2's session expired")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if h.c.Stats().ExpiredMembers != 1 {
		t.Fatalf("expired %d members", h.c.Stats().ExpiredMembers)
	}

	// A classic group with members refuses consumer-protocol members.
	h.joinNew(joinSpec{group: "classic", session: time.Second, rebalance: time.Second, protos: []proto{{"range", "x"}}, version: 5})
	mustCode(t, "consumer heartbeat to a classic group", h.cgh(cgHeartbeat{group: "classic", member: "x", topics: sub}).ErrorCode, 69)
}

// TestAssignors: range gives contiguous ranges per topic; uniform evens
// out counts and keeps partitions where they were.
func TestAssignors(t *testing.T) {
	subs := map[string][]string{"a": {"t", "u"}, "b": {"t", "u"}, "c": {"t"}}
	parts := map[string]int32{"t": 5, "u": 2}
	list := func(s tpSet) []string {
		var out []string
		for k := range s {
			out = append(out, k.topic+string(rune('0'+k.partition)))
		}
		sort.Strings(out)
		return out
	}
	r := assignRange(subs, parts)
	if !slices.Equal(list(r["a"]), []string{"t0", "t1", "u0"}) || !slices.Equal(list(r["b"]), []string{"t2", "t3", "u1"}) || !slices.Equal(list(r["c"]), []string{"t4"}) {
		t.Fatalf("range: %v %v %v", list(r["a"]), list(r["b"]), list(r["c"]))
	}
	homo := map[string][]string{"a": {"t"}, "b": {"t"}}
	u1 := assignUniform(homo, map[string]int32{"t": 5}, nil)
	if n := len(u1["a"]) - len(u1["b"]); n < -1 || n > 1 {
		t.Fatalf("uniform: %v %v", list(u1["a"]), list(u1["b"]))
	}
	homo["c"] = []string{"t"}
	u2 := assignUniform(homo, map[string]int32{"t": 5}, u1)
	total := 0
	for id, s := range u2 {
		total += len(s)
		if len(s) < 1 || len(s) > 2 {
			t.Fatalf("uniform with c: %s has %v", id, list(s))
		}
		for k := range s {
			if id != "c" {
				if _, ok := u1[id][k]; !ok {
					t.Fatalf("uniform moved %v to %s though it kept room", k, id)
				}
			}
		}
	}
	if total != 5 {
		t.Fatalf("uniform assigned %d of 5", total)
	}
}

// TestConsumerProtocolRegexAndNewTopics: a regex subscription is resolved
// against the log's topics, and a matching topic created later (or a
// subscribed topic gaining partitions) starts a new epoch that assigns it.
func TestConsumerProtocolRegexAndNewTopics(t *testing.T) {
	fl := fakeLog{topics: map[string]int{"t": 2, "other": 3}}
	h := newHarness(t, func(o *Options) { o.Log = fl })
	r := h.cgh(cgHeartbeat{group: "g", member: "m", topics: []string{}, regex: strp("t|new.*")})
	if r.ErrorCode != 0 || !slices.Equal(partsOf(t, r), []int32{0, 1}) {
		t.Fatalf("regex join: code %d, %v", r.ErrorCode, partsOf(t, r))
	}
	mustCode(t, "bad regex", h.cgh(cgHeartbeat{group: "g", member: "x", topics: []string{}, regex: strp("(")}).ErrorCode, 128)
	epoch := r.MemberEpoch
	fl.topics["newtopic"] = 1
	fl.topics["t"] = 3
	r = h.cgh(cgHeartbeat{group: "g", member: "m", epoch: epoch})
	if r.MemberEpoch != epoch+1 || r.Assignment == nil {
		t.Fatalf("after a new matching topic: epoch %d (was %d), assignment %+v", r.MemberEpoch, epoch, r.Assignment)
	}
	got := map[[16]byte][]int32{}
	for _, at := range r.Assignment.Topics {
		got[at.TopicID] = at.Partitions
	}
	if len(got) != 2 || len(got[TopicID("t")]) != 3 || len(got[TopicID("newtopic")]) != 1 {
		t.Fatalf("assignment after new topic: %v", got)
	}
}

// TestConsumerProtocolStaticLeftFenced: a static member that left with
// epoch -2 and heartbeats again without rejoining is fenced.
func TestConsumerProtocolStaticLeftFenced(t *testing.T) {
	h := newHarness(t, nil)
	r := h.cgh(cgHeartbeat{group: "g", member: "s", topics: []string{"t"}, instance: strp("i")})
	mustCode(t, "static leave", h.cgh(cgHeartbeat{group: "g", member: "s", epoch: -2, instance: strp("i")}).ErrorCode, 0)
	mustCode(t, "heartbeat after the static leave", h.cgh(cgHeartbeat{group: "g", member: "s", epoch: r.MemberEpoch}).ErrorCode, 110)
	// Rejoining with epoch 0 under the same id gets the partitions back.
	r = h.cgh(cgHeartbeat{group: "g", member: "s", topics: []string{"t"}, instance: strp("i")})
	if r.ErrorCode != 0 || len(partsOf(t, r)) != 4 {
		t.Fatalf("static rejoin: code %d, %v", r.ErrorCode, partsOf(t, r))
	}
}
