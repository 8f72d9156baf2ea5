package group

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log/meta"
)

// stableMember joins group g alone and syncs; it returns the member id.
func (h *harness) stableMember(g string, protos []proto) string {
	h.t.Helper()
	m, ch := h.joinNew(joinSpec{group: g, protos: protos})
	r := wait(h.t, ch, "join")
	mustCode(h.t, "join", r.ErrorCode, 0)
	mustCode(h.t, "sync", wait(h.t, h.syncAsync(g, m, r.Generation, nil), "sync").ErrorCode, 0)
	return m
}

// TestCommitsSurviveRestart: offsets committed by members and by simple
// consumers are read back by a new Coordinator on a reopened store.
func TestCommitsSurviveRestart(t *testing.T) {
	h := newHarness(t, nil)
	m := h.stableMember("g", nil)
	mustCode(t, "member commit", h.commit("g", m, 1, "t", 2, 42), 0)
	mustCode(t, "simple commit", h.commit("simple", "", -1, "u", 1, 7), 0)
	mustCode(t, "wrong generation", h.commit("g", m, 5, "t", 2, 99), kerr.IllegalGeneration.Code)
	mustCode(t, "unknown member", h.commit("g", "who", 1, "t", 2, 99), kerr.UnknownMemberID.Code)
	mustCode(t, "simple commit to live group", h.commit("g", "", -1, "t", 2, 99), kerr.UnknownMemberID.Code)
	mustCode(t, "unknown topic", h.commit("g", m, 1, "nope", 0, 1), kerr.UnknownTopicOrPartition.Code)
	mustCode(t, "unknown partition", h.commit("g", m, 1, "t", 4, 1), kerr.UnknownTopicOrPartition.Code)
	mustCode(t, "generation of a group with no members", h.commit("gone", "m", 3, "t", 0, 1), kerr.IllegalGeneration.Code)

	// Metadata too large.
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version, req.Group, req.Generation, req.MemberID = 9, "g", 1, m
	big := string(make([]byte, MaxMetadataBytes+1))
	req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1, Metadata: &big}}}}
	mustCode(t, "big metadata", h.do(req).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode, kerr.OffsetMetadataTooLarge.Code)

	if got := h.fetched("g", "t", 2); got != 42 {
		t.Fatalf("fetched %d, want 42", got)
	}
	if got := h.fetched("g", "t", 3); got != -1 {
		t.Fatalf("uncommitted partition: %d, want -1", got)
	}
	if st := h.c.Stats(); st.Commits != 2 || st.CommittedPartitions != 2 || st.CommitErrors != 7 {
		t.Fatalf("stats %+v", st)
	}

	// Restart: new store handle, new Coordinator.
	h.c.Close()
	h.store.Close()
	store, err := meta.Open(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	h.store = store
	h.start(nil)
	if got := h.fetched("g", "t", 2); got != 42 {
		t.Fatalf("after restart: %d, want 42", got)
	}
	if got := h.fetched("simple", "u", 1); got != 7 {
		t.Fatalf("simple after restart: %d, want 7", got)
	}
	// The old member is gone: its commit is refused and it must rejoin.
	if code := h.commit("g", m, 1, "t", 2, 50); code == 0 {
		t.Fatal("commit of a member from before the restart accepted")
	}

	// v8 multi-group fetch, one group with all topics (nil), one listed.
	freq := kmsg.NewPtrOffsetFetchRequest()
	freq.Version, freq.RequireStable = 8, true
	freq.Groups = []kmsg.OffsetFetchRequestGroup{
		{Group: "g"},
		{Group: "simple", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "u", Partitions: []int32{0, 1}}}},
		{Group: ""},
	}
	fr := h.do(freq).(*kmsg.OffsetFetchResponse)
	if len(fr.Groups) != 3 {
		t.Fatalf("%d groups answered", len(fr.Groups))
	}
	g0, g1 := fr.Groups[0], fr.Groups[1]
	if g0.ErrorCode != 0 || len(g0.Topics) != 1 || g0.Topics[0].Topic != "t" || len(g0.Topics[0].Partitions) != 1 ||
		g0.Topics[0].Partitions[0].Offset != 42 || *g0.Topics[0].Partitions[0].Metadata != "md" {
		t.Fatalf("group g: %+v", g0)
	}
	if len(g1.Topics) != 1 || len(g1.Topics[0].Partitions) != 2 || g1.Topics[0].Partitions[0].Offset != -1 || g1.Topics[0].Partitions[1].Offset != 7 {
		t.Fatalf("group simple: %+v", g1)
	}
	mustCode(t, "empty group id", fr.Groups[2].ErrorCode, 0)

	// The empty group id stores offsets, as in Kafka (old clients).
	mustCode(t, "commit to the empty group", h.commit("", "", -1, "t", 3, 9), 0)
	if got := h.fetched("", "t", 3); got != 9 {
		t.Fatalf("empty group: fetched %d, want 9", got)
	}
	mustCode(t, "join the empty group", h.do(h.joinReq(joinSpec{group: ""})).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InvalidGroupID.Code)

	// v1 fetch and v0 commit (no generation).
	creq := kmsg.NewPtrOffsetCommitRequest()
	creq.Version, creq.Group = 0, "old"
	creq.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 1, Offset: 5}}}}
	mustCode(t, "v0 commit", h.do(creq).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode, 0)
	f1 := kmsg.NewPtrOffsetFetchRequest()
	f1.Version, f1.Group = 1, "old"
	f1.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{1}}}
	if r := h.do(f1).(*kmsg.OffsetFetchResponse); r.Topics[0].Partitions[0].Offset != 5 {
		t.Fatalf("v1 fetch: %+v", r)
	}
}

// TestListDescribeDelete covers the admin APIs on live and offset-only
// groups.
func TestListDescribeDelete(t *testing.T) {
	h := newHarness(t, nil)
	var cm kmsg.ConsumerMemberMetadata
	cm.Topics = []string{"t"}
	m := h.stableMember("live", []proto{{"range", string(cm.AppendTo(nil))}})
	mustCode(t, "commit live", h.commit("live", m, 1, "t", 0, 3), 0)
	mustCode(t, "commit live u", h.commit("live", m, 1, "u", 0, 4), 0)
	mustCode(t, "commit offsets-only", h.commit("old", "", -1, "t", 0, 1), 0)

	lr := h.do(&kmsg.ListGroupsRequest{Version: 5}).(*kmsg.ListGroupsResponse)
	got := map[string]string{}
	for _, g := range lr.Groups {
		got[g.Group] = g.GroupState
	}
	if len(got) != 2 || got["live"] != "Stable" || got["old"] != "Empty" {
		t.Fatalf("ListGroups: %v", got)
	}
	lr = h.do(&kmsg.ListGroupsRequest{Version: 4, StatesFilter: []string{"stable"}}).(*kmsg.ListGroupsResponse)
	if len(lr.Groups) != 1 || lr.Groups[0].Group != "live" || lr.Groups[0].ProtocolType != "consumer" {
		t.Fatalf("ListGroups filtered: %+v", lr.Groups)
	}

	dr := h.do(&kmsg.DescribeGroupsRequest{Version: 6, Groups: []string{"live", "old", "missing"}}).(*kmsg.DescribeGroupsResponse)
	if d := dr.Groups[0]; d.State != "Stable" || d.Protocol != "range" || len(d.Members) != 1 || d.Members[0].MemberID != m {
		t.Fatalf("describe live: %+v", d)
	}
	if d := dr.Groups[1]; d.ErrorCode != 0 || d.State != "Empty" || len(d.Members) != 0 {
		t.Fatalf("describe old: %+v", d)
	}
	mustCode(t, "describe missing v6", dr.Groups[2].ErrorCode, kerr.GroupIDNotFound.Code)
	dr = h.do(&kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{"missing"}}).(*kmsg.DescribeGroupsResponse)
	if d := dr.Groups[0]; d.ErrorCode != 0 || d.State != "Dead" {
		t.Fatalf("describe missing v5: %+v", d)
	}

	// OffsetDelete: refused for the subscribed topic, done for the other.
	od := &kmsg.OffsetDeleteRequest{Group: "live", Topics: []kmsg.OffsetDeleteRequestTopic{
		{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}},
		{Topic: "u", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}},
	}}
	odr := h.do(od).(*kmsg.OffsetDeleteResponse)
	mustCode(t, "offset delete", odr.ErrorCode, 0)
	mustCode(t, "delete subscribed", odr.Topics[0].Partitions[0].ErrorCode, kerr.GroupSubscribedToTopic.Code)
	mustCode(t, "delete unsubscribed", odr.Topics[1].Partitions[0].ErrorCode, 0)
	if h.fetched("live", "u", 0) != -1 || h.fetched("live", "t", 0) != 3 {
		t.Fatal("OffsetDelete removed the wrong offsets")
	}
	odr = h.do(&kmsg.OffsetDeleteRequest{Group: "nobody"}).(*kmsg.OffsetDeleteResponse)
	mustCode(t, "offset delete unknown group", odr.ErrorCode, kerr.GroupIDNotFound.Code)

	// DeleteGroups: the live group is not empty; the offsets-only one goes.
	del := h.do(&kmsg.DeleteGroupsRequest{Version: 2, Groups: []string{"live", "old", "missing"}}).(*kmsg.DeleteGroupsResponse)
	mustCode(t, "delete live", del.Groups[0].ErrorCode, kerr.NonEmptyGroup.Code)
	mustCode(t, "delete old", del.Groups[1].ErrorCode, 0)
	mustCode(t, "delete missing", del.Groups[2].ErrorCode, kerr.GroupIDNotFound.Code)
	if h.fetched("old", "t", 0) != -1 {
		t.Fatal("deleted group still has offsets")
	}
	// After the member leaves, the group can be deleted.
	lreq := kmsg.NewPtrLeaveGroupRequest()
	lreq.Version, lreq.Group, lreq.Members = 3, "live", []kmsg.LeaveGroupRequestMember{{MemberID: m}}
	h.do(lreq)
	del = h.do(&kmsg.DeleteGroupsRequest{Version: 2, Groups: []string{"live"}}).(*kmsg.DeleteGroupsResponse)
	mustCode(t, "delete live after leave", del.Groups[0].ErrorCode, 0)
	if groups, _ := h.store.Groups(); len(groups) != 0 {
		t.Fatalf("groups left in meta: %v", groups)
	}
}

// TestFetchSeesAcceptedCommit: an OffsetFetch that arrives while a commit
// is being written waits for it (the gate).
func TestFetchSeesAcceptedCommit(t *testing.T) {
	h := newHarness(t, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			h.commit("gate", "", -1, "t", 0, int64(i+1))
		}
	}()
	last := int64(-1)
	for {
		select {
		case <-done:
			if got := h.fetched("gate", "t", 0); got != 50 {
				t.Fatalf("final offset %d, want 50", got)
			}
			return
		case <-time.After(time.Millisecond):
		}
		got := h.fetched("gate", "t", 0)
		if got < last {
			t.Fatalf("committed offset went back from %d to %d", last, got)
		}
		last = got
	}
}
