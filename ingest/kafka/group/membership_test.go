package group

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestJoinSyncHeartbeatLeave walks a group through its whole life: one
// member, a second joining, the second leaving, the last leaving.
func TestJoinSyncHeartbeatLeave(t *testing.T) {
	h := newHarness(t, nil)
	const g = "g1"

	// First member: MEMBER_ID_REQUIRED, then the join waits for the
	// initial rebalance delay.
	start := time.Now()
	a, aj := h.joinNew(joinSpec{group: g})
	ra := wait(t, aj, "join a")
	mustCode(t, "join a", ra.ErrorCode, 0)
	if d := time.Since(start); d < 25*time.Millisecond {
		t.Fatalf("first join answered after %v, before the initial rebalance delay", d)
	}
	if ra.Generation != 1 || ra.LeaderID != a || ra.MemberID != a || len(ra.Members) != 1 || *ra.Protocol != "range" {
		t.Fatalf("join a: gen %d leader %q member %q members %d protocol %v", ra.Generation, ra.LeaderID, ra.MemberID, len(ra.Members), *ra.Protocol)
	}
	sa := wait(t, h.syncAsync(g, a, 1, map[string]string{a: "A1"}), "sync a")
	mustCode(t, "sync a", sa.ErrorCode, 0)
	if string(sa.MemberAssignment) != "A1" || *sa.Protocol != "range" {
		t.Fatalf("sync a: assignment %q protocol %v", sa.MemberAssignment, sa.Protocol)
	}
	mustCode(t, "heartbeat a", h.heartbeat(g, a, 1), 0)
	mustCode(t, "heartbeat a wrong gen", h.heartbeat(g, a, 7), kerr.IllegalGeneration.Code)
	mustCode(t, "heartbeat stranger", h.heartbeat(g, "nobody", 1), kerr.UnknownMemberID.Code)

	// Second member: a rebalance starts, a learns it from its heartbeat.
	b, bj := h.joinNew(joinSpec{group: g, protos: []proto{{"range", "mb"}}})
	notYet(t, bj, 50*time.Millisecond, "join b before a rejoined")
	mustCode(t, "heartbeat a during rebalance", h.heartbeat(g, a, 1), kerr.RebalanceInProgress.Code)
	// A SyncGroup of the old generation is refused during the rebalance.
	mustCode(t, "sync a old gen", wait(t, h.syncAsync(g, a, 1, nil), "sync").ErrorCode, kerr.RebalanceInProgress.Code)
	aj = h.joinAsync(joinSpec{group: g, member: a})
	ra, rb := wait(t, aj, "rejoin a"), wait(t, bj, "join b")
	mustCode(t, "rejoin a", ra.ErrorCode, 0)
	mustCode(t, "join b", rb.ErrorCode, 0)
	if ra.Generation != 2 || rb.Generation != 2 || ra.LeaderID != a || rb.LeaderID != a {
		t.Fatalf("gen %d/%d leader %q/%q, want 2 and %q", ra.Generation, rb.Generation, ra.LeaderID, rb.LeaderID, a)
	}
	if len(ra.Members) != 2 || len(rb.Members) != 0 {
		t.Fatalf("leader got %d members, follower %d", len(ra.Members), len(rb.Members))
	}
	if ra.Members[1].MemberID != b || string(ra.Members[1].ProtocolMetadata) != "mb" {
		t.Fatalf("leader's member list: %+v", ra.Members)
	}
	// The follower's SyncGroup waits for the leader's.
	sbCh := h.syncAsync(g, b, 2, nil)
	notYet(t, sbCh, 30*time.Millisecond, "follower sync")
	mustCode(t, "heartbeat b while awaiting sync", h.heartbeat(g, b, 2), 0)
	sa = wait(t, h.syncAsync(g, a, 2, map[string]string{a: "A2", b: "B2"}), "leader sync")
	sb := wait(t, sbCh, "follower sync")
	if string(sa.MemberAssignment) != "A2" || string(sb.MemberAssignment) != "B2" {
		t.Fatalf("assignments %q %q", sa.MemberAssignment, sb.MemberAssignment)
	}
	// A late SyncGroup in the stable group gets the same assignment.
	if sb2 := wait(t, h.syncAsync(g, b, 2, nil), "late sync"); string(sb2.MemberAssignment) != "B2" {
		t.Fatalf("late sync: %q", sb2.MemberAssignment)
	}

	// b leaves (v5 batch) → a rebalances alone.
	lreq := kmsg.NewPtrLeaveGroupRequest()
	lreq.Version, lreq.Group = 5, g
	lreq.Members = []kmsg.LeaveGroupRequestMember{{MemberID: b}, {MemberID: "ghost"}}
	lr := h.do(lreq).(*kmsg.LeaveGroupResponse)
	mustCode(t, "leave", lr.ErrorCode, 0)
	mustCode(t, "leave b", lr.Members[0].ErrorCode, 0)
	mustCode(t, "leave ghost", lr.Members[1].ErrorCode, kerr.UnknownMemberID.Code)
	mustCode(t, "heartbeat a after leave", h.heartbeat(g, a, 2), kerr.RebalanceInProgress.Code)
	ra = wait(t, h.joinAsync(joinSpec{group: g, member: a}), "rejoin a alone")
	if ra.ErrorCode != 0 || ra.Generation != 3 || len(ra.Members) != 1 {
		t.Fatalf("rejoin alone: %v gen %d members %d", kerr.ErrorForCode(ra.ErrorCode), ra.Generation, len(ra.Members))
	}
	wait(t, h.syncAsync(g, a, 3, map[string]string{a: "all"}), "sync")

	// Last member leaves (v0 shape): the group is forgotten.
	lreq = kmsg.NewPtrLeaveGroupRequest()
	lreq.Version, lreq.Group, lreq.MemberID = 0, g, a
	mustCode(t, "leave v0", h.do(lreq).(*kmsg.LeaveGroupResponse).ErrorCode, 0)
	if st := h.c.Stats(); st.Groups != 0 || st.Members != 0 || st.Rebalances != 3 {
		t.Fatalf("stats after all left: %+v", st)
	}
}

// TestJoinOldVersionNoDance: JoinGroup v3 gets a member id without the
// MEMBER_ID_REQUIRED round trip.
func TestJoinOldVersionNoDance(t *testing.T) {
	h := newHarness(t, nil)
	r := wait(t, h.joinAsync(joinSpec{group: "old", version: 3}), "join v3")
	mustCode(t, "join v3", r.ErrorCode, 0)
	if r.MemberID == "" || r.LeaderID != r.MemberID || r.Generation != 1 {
		t.Fatalf("join v3: %+v", r)
	}
}

// TestSessionExpiry: a member that stops heartbeating is removed and the
// group rebalances without it.
func TestSessionExpiry(t *testing.T) {
	h := newHarness(t, nil)
	const g = "exp"
	spec := joinSpec{group: g, session: 150 * time.Millisecond, rebalance: time.Second}
	a, aj := h.joinNew(spec)
	specB := spec
	b, bj := h.joinNew(specB)
	ra, rb := wait(t, aj, "a"), wait(t, bj, "b")
	if ra.Generation != 1 || rb.Generation != 1 {
		t.Fatalf("gens %d %d", ra.Generation, rb.Generation)
	}
	leader, follower := a, b
	if ra.LeaderID == b {
		leader, follower = b, a
	}
	fch := h.syncAsync(g, follower, 1, nil)
	wait(t, h.syncAsync(g, leader, 1, map[string]string{a: "x", b: "y"}), "leader sync")
	wait(t, fch, "follower sync")

	// Only the leader heartbeats.
	deadline := time.Now().Add(3 * time.Second)
	for {
		code := h.heartbeat(g, leader, 1)
		if code == kerr.RebalanceInProgress.Code {
			break
		}
		mustCode(t, "leader heartbeat", code, 0)
		if time.Now().After(deadline) {
			t.Fatal("follower never expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mustCode(t, "expired follower heartbeat", h.heartbeat(g, follower, 1), kerr.UnknownMemberID.Code)
	spec.member = leader
	r := wait(t, h.joinAsync(spec), "leader rejoin")
	if r.ErrorCode != 0 || r.Generation != 2 || len(r.Members) != 1 {
		t.Fatalf("rejoin: %v gen %d members %d", kerr.ErrorForCode(r.ErrorCode), r.Generation, len(r.Members))
	}
	if st := h.c.Stats(); st.ExpiredMembers != 1 {
		t.Fatalf("ExpiredMembers = %d, want 1", st.ExpiredMembers)
	}
}

// TestRebalanceTimeout: a member that does not rejoin within the rebalance
// timeout is dropped while its session is still alive.
func TestRebalanceTimeout(t *testing.T) {
	h := newHarness(t, nil)
	const g = "rt"
	spec := joinSpec{group: g, session: 5 * time.Second, rebalance: 200 * time.Millisecond}
	a, aj := h.joinNew(spec)
	b, bj := h.joinNew(spec)
	ra, _ := wait(t, aj, "a"), wait(t, bj, "b")
	leader, follower := a, b
	if ra.LeaderID == b {
		leader, follower = b, a
	}
	fch := h.syncAsync(g, follower, 1, nil)
	wait(t, h.syncAsync(g, leader, 1, nil), "leader sync")
	wait(t, fch, "follower sync")

	// The leader rejoins (forces a rebalance); the follower keeps
	// heartbeating but never rejoins.
	spec.member = leader
	start := time.Now()
	lj := h.joinAsync(spec)
	time.Sleep(20 * time.Millisecond)
	mustCode(t, "follower heartbeat", h.heartbeat(g, follower, 1), kerr.RebalanceInProgress.Code)
	r := wait(t, lj, "leader rejoin")
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Fatalf("rebalance completed after %v, before the rebalance timeout", el)
	}
	if r.ErrorCode != 0 || r.Generation != 2 || len(r.Members) != 1 {
		t.Fatalf("rejoin: %v gen %d members %d", kerr.ErrorForCode(r.ErrorCode), r.Generation, len(r.Members))
	}
	mustCode(t, "dropped follower", h.heartbeat(g, follower, 1), kerr.UnknownMemberID.Code)
}

// TestSyncTimeout: when the leader never sends SyncGroup, followers that
// synced learn of a new rebalance and the leader is dropped.
func TestSyncTimeout(t *testing.T) {
	h := newHarness(t, nil)
	const g = "st"
	spec := joinSpec{group: g, session: 5 * time.Second, rebalance: 150 * time.Millisecond}
	a, aj := h.joinNew(spec)
	b, bj := h.joinNew(spec)
	ra, _ := wait(t, aj, "a"), wait(t, bj, "b")
	leader, follower := a, b
	if ra.LeaderID == b {
		leader, follower = b, a
	}
	sb := wait(t, h.syncAsync(g, follower, 1, nil), "follower sync")
	mustCode(t, "follower sync", sb.ErrorCode, kerr.RebalanceInProgress.Code)
	spec.member = follower
	r := wait(t, h.joinAsync(spec), "follower rejoin")
	if r.ErrorCode != 0 || r.Generation != 2 || r.LeaderID != follower || len(r.Members) != 1 {
		t.Fatalf("follower rejoin: %v gen %d leader %q", kerr.ErrorForCode(r.ErrorCode), r.Generation, r.LeaderID)
	}
	mustCode(t, "old leader", h.heartbeat(g, leader, 1), kerr.UnknownMemberID.Code)
}

// TestStableRejoin covers the cooperative flow: a follower rejoining a
// stable group with unchanged metadata gets the current generation at
// once; with new metadata it starts a rebalance.
func TestStableRejoin(t *testing.T) {
	h := newHarness(t, nil)
	const g = "coop"
	coop := func(md string) []proto { return []proto{{"cooperative-sticky", md}, {"range", md}} }
	a, aj := h.joinNew(joinSpec{group: g, protos: coop("a0")})
	b, bj := h.joinNew(joinSpec{group: g, protos: coop("b0")})
	ra, rb := wait(t, aj, "a"), wait(t, bj, "b")
	if *ra.Protocol != "cooperative-sticky" || *rb.Protocol != "cooperative-sticky" {
		t.Fatalf("protocol %v", *ra.Protocol)
	}
	leader, follower := a, b
	fmd := "b0"
	if ra.LeaderID == b {
		leader, follower, fmd = b, a, "a0"
	}
	fch := h.syncAsync(g, follower, 1, nil)
	req := h.syncReq(g, leader, 1, map[string]string{leader: "L", follower: "F"})
	*req.Protocol = "cooperative-sticky"
	mustCode(t, "leader sync", h.do(req).(*kmsg.SyncGroupResponse).ErrorCode, 0)
	wait(t, fch, "follower sync")

	// Same metadata: answered now, no rebalance.
	r := h.do(h.joinReq(joinSpec{group: g, member: follower, protos: coop(fmd)})).(*kmsg.JoinGroupResponse)
	if r.ErrorCode != 0 || r.Generation != 1 || r.LeaderID != leader || len(r.Members) != 0 {
		t.Fatalf("unchanged rejoin: %v gen %d", kerr.ErrorForCode(r.ErrorCode), r.Generation)
	}
	mustCode(t, "leader heartbeat", h.heartbeat(g, leader, 1), 0)

	// New metadata (the follower revoked partitions): a rebalance.
	fj := h.joinAsync(joinSpec{group: g, member: follower, protos: coop(fmd + "-revoked")})
	time.Sleep(20 * time.Millisecond)
	mustCode(t, "leader heartbeat", h.heartbeat(g, leader, 1), kerr.RebalanceInProgress.Code)
	// A commit of the current generation still works during the rebalance.
	mustCode(t, "commit during rebalance", h.commit(g, leader, 1, "t", 0, 10), 0)
	lr := wait(t, h.joinAsync(joinSpec{group: g, member: leader, protos: coop("same")}), "leader rejoin")
	fr := wait(t, fj, "follower rejoin")
	if lr.Generation != 2 || fr.Generation != 2 || len(lr.Members) != 2 {
		t.Fatalf("gen %d/%d, %d members", lr.Generation, fr.Generation, len(lr.Members))
	}
	for _, m := range lr.Members {
		if m.MemberID == follower && string(m.ProtocolMetadata) != fmd+"-revoked" {
			t.Fatalf("leader sees stale follower metadata %q", m.ProtocolMetadata)
		}
	}
	// Commits of the old generation are now refused.
	mustCode(t, "stale commit", h.commit(g, leader, 1, "t", 0, 11), kerr.RebalanceInProgress.Code)
}

// TestStaticMembership: a static member restarting (new JoinGroup without
// member id) takes over its assignment without a rebalance; the old id is
// fenced.
func TestStaticMembership(t *testing.T) {
	h := newHarness(t, nil)
	const g = "static"
	ia, ib := strp("inst-a"), strp("inst-b")
	aj := h.joinAsync(joinSpec{group: g, instance: ia})
	bj := h.joinAsync(joinSpec{group: g, instance: ib})
	ra, rb := wait(t, aj, "a"), wait(t, bj, "b")
	mustCode(t, "static join a", ra.ErrorCode, 0)
	mustCode(t, "static join b", rb.ErrorCode, 0)
	a, b := ra.MemberID, rb.MemberID
	leader, follower, finst := a, b, ib
	if ra.LeaderID == b {
		leader, follower, finst = b, a, ia
	}
	for _, m := range map[string]*kmsg.JoinGroupResponse{a: ra, b: rb} {
		if m.LeaderID == m.MemberID && len(m.Members) == 2 && (m.Members[0].InstanceID == nil || m.Members[1].InstanceID == nil) {
			t.Fatal("leader's member list lacks instance ids")
		}
	}
	fch := h.syncAsync(g, follower, 1, nil)
	wait(t, h.syncAsync(g, leader, 1, map[string]string{leader: "L", follower: "F"}), "leader sync")
	wait(t, fch, "follower sync")

	// The follower restarts: same instance id, no member id.
	r := h.do(h.joinReq(joinSpec{group: g, instance: finst})).(*kmsg.JoinGroupResponse)
	mustCode(t, "static rejoin", r.ErrorCode, 0)
	if r.MemberID == follower || r.Generation != 1 || r.LeaderID != leader {
		t.Fatalf("static rejoin: member %q gen %d leader %q", r.MemberID, r.Generation, r.LeaderID)
	}
	s := wait(t, h.syncAsync(g, r.MemberID, 1, nil), "sync after static rejoin")
	if s.ErrorCode != 0 || string(s.MemberAssignment) != "F" {
		t.Fatalf("static sync: %v %q", kerr.ErrorForCode(s.ErrorCode), s.MemberAssignment)
	}
	mustCode(t, "leader heartbeat (no rebalance)", h.heartbeat(g, leader, 1), 0)
	// The old id is fenced when it names its instance, unknown otherwise.
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version, hb.Group, hb.MemberID, hb.Generation, hb.InstanceID = 4, g, follower, 1, finst
	mustCode(t, "old static id", h.do(hb).(*kmsg.HeartbeatResponse).ErrorCode, kerr.FencedInstanceID.Code)
	mustCode(t, "old id", h.heartbeat(g, follower, 1), kerr.UnknownMemberID.Code)

	// The static member leaves by instance id (v3+).
	lreq := kmsg.NewPtrLeaveGroupRequest()
	lreq.Version, lreq.Group = 4, g
	lreq.Members = []kmsg.LeaveGroupRequestMember{{InstanceID: finst}, {MemberID: "x", InstanceID: strp("nope")}}
	lr := h.do(lreq).(*kmsg.LeaveGroupResponse)
	mustCode(t, "leave by instance", lr.Members[0].ErrorCode, 0)
	mustCode(t, "leave unknown instance", lr.Members[1].ErrorCode, kerr.UnknownMemberID.Code)
	mustCode(t, "leader heartbeat after leave", h.heartbeat(g, leader, 1), kerr.RebalanceInProgress.Code)
}

// TestProtocolSelection: the first of the leader's protocols every member
// supports wins; a member with nothing in common is refused.
func TestProtocolSelection(t *testing.T) {
	h := newHarness(t, nil)
	const g = "proto"
	a, aj := h.joinNew(joinSpec{group: g, protos: []proto{{"roundrobin", ""}, {"range", ""}, {"sticky", ""}}})
	h.waitMembers(1)
	_, bj := h.joinNew(joinSpec{group: g, protos: []proto{{"sticky", ""}, {"range", ""}}})
	ra, rb := wait(t, aj, "a"), wait(t, bj, "b")
	if ra.LeaderID != a {
		t.Fatalf("leader %q, want the first joiner %q", ra.LeaderID, a)
	}
	if *ra.Protocol != "range" || *rb.Protocol != "range" {
		t.Fatalf("protocol %q, want range (leader's first common)", *ra.Protocol)
	}
	r := h.do(h.joinReq(joinSpec{group: g, protos: []proto{{"other", ""}}})).(*kmsg.JoinGroupResponse)
	mustCode(t, "incompatible join", r.ErrorCode, kerr.InconsistentGroupProtocol.Code)
	req := h.joinReq(joinSpec{group: g})
	req.ProtocolType = "connect"
	mustCode(t, "other protocol type", h.do(req).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InconsistentGroupProtocol.Code)
}

// TestJoinValidation covers the requests refused before any state change.
func TestJoinValidation(t *testing.T) {
	h := newHarness(t, nil)
	mustCode(t, "empty group", h.do(h.joinReq(joinSpec{group: ""})).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InvalidGroupID.Code)
	mustCode(t, "short session", h.do(h.joinReq(joinSpec{group: "v", session: time.Millisecond})).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InvalidSessionTimeout.Code)
	mustCode(t, "long session", h.do(h.joinReq(joinSpec{group: "v", session: time.Hour})).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InvalidSessionTimeout.Code)
	mustCode(t, "unknown member of unknown group", h.do(h.joinReq(joinSpec{group: "v", member: "m-1"})).(*kmsg.JoinGroupResponse).ErrorCode, kerr.UnknownMemberID.Code)
	mustCode(t, "sync unknown", wait(t, h.syncAsync("v", "m", 1, nil), "sync").ErrorCode, kerr.UnknownMemberID.Code)
	if _, ok := h.c.Handle(context.Background(), &kmsg.ProduceRequest{Version: 9}); ok {
		t.Fatal("Handle accepted a Produce request")
	}
	if _, ok := h.c.Handle(context.Background(), &kmsg.OffsetCommitRequest{Version: 10}); ok {
		t.Fatal("Handle accepted OffsetCommit v10")
	}
	for key, v := range h.c.Versions() {
		req := kmsg.RequestForKey(key)
		if req == nil || v[1] > req.MaxVersion() || v[0] > v[1] {
			t.Fatalf("key %d: versions %v beyond kmsg's max", key, v)
		}
	}
	if st := h.c.Stats(); st.Groups != 0 {
		t.Fatalf("refused joins left %d groups", st.Groups)
	}
}

// TestJoinContextCancelAndClose: a JoinGroup returns when its context ends
// and when the Coordinator closes.
func TestJoinContextCancelAndClose(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.InitialRebalanceDelay = 5 * time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	req := h.joinReq(joinSpec{group: "c", version: 3, rebalance: 10 * time.Second})
	done := make(chan kmsg.Response, 1)
	go func() { r, _ := h.c.Handle(ctx, req); done <- r }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	wait(t, done, "cancelled join")

	go func() {
		r, _ := h.c.Handle(context.Background(), h.joinReq(joinSpec{group: "c2", version: 3}))
		done <- r
	}()
	time.Sleep(20 * time.Millisecond)
	h.c.Close()
	r := wait(t, done, "join after close").(*kmsg.JoinGroupResponse)
	mustCode(t, "join after close", r.ErrorCode, kerr.CoordinatorNotAvailable.Code)
	if err := h.c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestPendingMemberExpires: an id handed out with MEMBER_ID_REQUIRED but
// never used does not hold a rebalance forever.
func TestPendingMemberExpires(t *testing.T) {
	h := newHarness(t, nil)
	const g = "pend"
	a, aj := h.joinNew(joinSpec{group: g, session: 100 * time.Millisecond})
	wait(t, aj, "a")
	wait(t, h.syncAsync(g, a, 1, nil), "sync")
	// A second client gets an id but never comes back.
	r := h.do(h.joinReq(joinSpec{group: g, session: 100 * time.Millisecond})).(*kmsg.JoinGroupResponse)
	mustCode(t, "dance", r.ErrorCode, kerr.MemberIDRequired.Code)
	// a's rejoin (leader: forces a rebalance) completes once the pending
	// id expires.
	rj := wait(t, h.joinAsync(joinSpec{group: g, member: a, session: 100 * time.Millisecond}), "rejoin")
	if rj.ErrorCode != 0 || rj.Generation != 2 || len(rj.Members) != 1 {
		t.Fatalf("rejoin: %v gen %d members %d", kerr.ErrorForCode(rj.ErrorCode), rj.Generation, len(rj.Members))
	}
}

// TestStaticLeaderRestart (KIP-814): a restarted static leader of a stable
// group is told to skip assignment (v9) or sees its old id as leader (v8);
// either way nothing rebalances and its assignment is kept.
func TestStaticLeaderRestart(t *testing.T) {
	for _, v := range []int16{8, 9} {
		h := newHarness(t, nil)
		g := "sl"
		inst := strp("leader")
		r := wait(t, h.joinAsync(joinSpec{group: g, instance: inst, version: v}), "join")
		old := r.MemberID
		wait(t, h.syncAsync(g, old, 1, map[string]string{old: "mine"}), "sync")

		r = h.do(h.joinReq(joinSpec{group: g, instance: inst, version: v})).(*kmsg.JoinGroupResponse)
		mustCode(t, "rejoin", r.ErrorCode, 0)
		if r.Generation != 1 || r.MemberID == old {
			t.Fatalf("v%d: gen %d member %q", v, r.Generation, r.MemberID)
		}
		switch v {
		case 9:
			if !r.SkipAssignment || r.LeaderID != r.MemberID || len(r.Members) != 1 {
				t.Fatalf("v9: skip %v leader %q members %d", r.SkipAssignment, r.LeaderID, len(r.Members))
			}
		default:
			if r.SkipAssignment || r.LeaderID != old {
				t.Fatalf("v8: leader %q, want the old id %q", r.LeaderID, old)
			}
		}
		s := wait(t, h.syncAsync(g, r.MemberID, 1, map[string]string{r.MemberID: "ignored"}), "sync")
		if s.ErrorCode != 0 || string(s.MemberAssignment) != "mine" {
			t.Fatalf("v%d sync: %v %q", v, kerr.ErrorForCode(s.ErrorCode), s.MemberAssignment)
		}
		if st := h.c.Stats(); st.Rebalances != 1 {
			t.Fatalf("v%d: %d rebalances, want 1", v, st.Rebalances)
		}
	}
}
