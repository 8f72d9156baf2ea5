package group

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log/logtest/reexec"
	"github.com/runnel/runnel/log/meta"
)

func TestOptionsValidate(t *testing.T) {
	store, err := meta.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, tc := range []struct {
		name string
		o    Options
		want error
	}{
		{"no meta", Options{}, ErrNoMeta},
		{"negative session", Options{Meta: store, MinSessionTimeout: -1}, ErrInvalidOptions},
		{"max < min", Options{Meta: store, MinSessionTimeout: time.Minute, MaxSessionTimeout: time.Second}, ErrInvalidOptions},
		{"defaults", Options{Meta: store}, nil},
	} {
		if _, err := New(tc.o); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: New error %v, want %v", tc.name, err, tc.want)
		}
	}
	w := Options{Meta: store}.withDefaults()
	if w.InitialRebalanceDelay != DefaultInitialRebalanceDelay || w.MinSessionTimeout != 6*time.Second || w.MaxSessionTimeout != 30*time.Minute {
		t.Fatalf("defaults: %+v", w)
	}
	if d := (Options{Meta: store, InitialRebalanceDelay: -1}).withDefaults().InitialRebalanceDelay; d != 0 {
		t.Fatalf("negative delay became %v, want 0 (none)", d)
	}
}

// TestClientInfoInDescribe: the client id and host from the request
// context show in member ids and DescribeGroups.
func TestClientInfoInDescribe(t *testing.T) {
	h := newHarness(t, nil)
	ctx := WithClient(context.Background(), "app-7", "/10.1.2.3")
	r, _ := h.c.Handle(ctx, h.joinReq(joinSpec{group: "ci", version: 3}))
	jr := r.(*kmsg.JoinGroupResponse)
	mustCode(t, "join", jr.ErrorCode, 0)
	if len(jr.MemberID) < 6 || jr.MemberID[:6] != "app-7-" {
		t.Fatalf("member id %q does not start with the client id", jr.MemberID)
	}
	wait(t, h.syncAsync("ci", jr.MemberID, 1, nil), "sync")
	dr := h.do(&kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{"ci"}}).(*kmsg.DescribeGroupsResponse)
	if m := dr.Groups[0].Members; len(m) != 1 || m[0].ClientID != "app-7" || m[0].ClientHost != "/10.1.2.3" {
		t.Fatalf("describe members: %+v", m)
	}
}

// TestSyncContextCancel: a follower whose SyncGroup connection goes away
// stops waiting; the leader's sync still stabilises the group.
func TestSyncContextCancel(t *testing.T) {
	h := newHarness(t, nil)
	const g = "sc"
	a, aj := h.joinNew(joinSpec{group: g})
	h.waitMembers(1)
	b, bj := h.joinNew(joinSpec{group: g})
	wait(t, aj, "a")
	wait(t, bj, "b")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan kmsg.Response, 1)
	go func() { r, _ := h.c.Handle(ctx, h.syncReq(g, b, 1, nil)); done <- r }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	r := wait(t, done, "cancelled sync").(*kmsg.SyncGroupResponse)
	if r.ErrorCode == 0 {
		t.Fatal("cancelled sync answered success")
	}
	s := wait(t, h.syncAsync(g, a, 1, map[string]string{a: "A", b: "B"}), "leader sync")
	mustCode(t, "leader sync", s.ErrorCode, 0)
	// b syncs again and gets its assignment from the stable group.
	if s := wait(t, h.syncAsync(g, b, 1, nil), "b again"); string(s.MemberAssignment) != "B" {
		t.Fatalf("b's assignment %q", s.MemberAssignment)
	}
}

// TestJoinRetryDuringCompleting: a member whose JoinGroup answer was lost
// retries during CompletingRebalance and gets the same answer; a commit
// during CompletingRebalance is refused.
func TestJoinRetryDuringCompleting(t *testing.T) {
	h := newHarness(t, nil)
	const g = "retry"
	a, aj := h.joinNew(joinSpec{group: g})
	ra := wait(t, aj, "a")
	r := h.do(h.joinReq(joinSpec{group: g, member: a})).(*kmsg.JoinGroupResponse)
	if r.ErrorCode != 0 || r.Generation != ra.Generation || r.LeaderID != a || len(r.Members) != 1 {
		t.Fatalf("retry: %v gen %d leader %q members %d", kerr.ErrorForCode(r.ErrorCode), r.Generation, r.LeaderID, len(r.Members))
	}
	mustCode(t, "commit while completing", h.commit(g, a, 1, "t", 0, 1), kerr.RebalanceInProgress.Code)
	dr := h.do(&kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{g}}).(*kmsg.DescribeGroupsResponse)
	if d := dr.Groups[0]; d.State != "CompletingRebalance" || d.Protocol != "" || len(d.Members) != 1 || d.Members[0].MemberAssignment != nil {
		t.Fatalf("describe while completing: %+v", d)
	}
	// New metadata during CompletingRebalance starts another rebalance.
	r2 := wait(t, h.joinAsync(joinSpec{group: g, member: a, protos: []proto{{"range", "new"}}}), "rejoin")
	if r2.ErrorCode != 0 || r2.Generation != ra.Generation+1 {
		t.Fatalf("rejoin with new metadata: %v gen %d", kerr.ErrorForCode(r2.ErrorCode), r2.Generation)
	}
}

// TestInitialDelayExtends: members joining during the initial delay extend
// it (each by the delay, within the rebalance timeout) so they all land in
// the first generation.
func TestInitialDelayExtends(t *testing.T) {
	reexec.SkipIfEmulated(t, "a member's 2 s session expires while the emulated joins go on")
	h := newHarness(t, func(o *Options) { o.InitialRebalanceDelay = 80 * time.Millisecond })
	const g = "delay"
	var chans []<-chan *kmsg.JoinGroupResponse
	for range 4 {
		_, ch := h.joinNew(joinSpec{group: g})
		chans = append(chans, ch)
		time.Sleep(40 * time.Millisecond)
	}
	for i, ch := range chans {
		r := wait(t, ch, "join")
		if r.ErrorCode != 0 || r.Generation != 1 {
			t.Fatalf("member %d: %v gen %d, want all in generation 1", i, kerr.ErrorForCode(r.ErrorCode), r.Generation)
		}
	}
	if st := h.c.Stats(); st.Rebalances != 1 || st.Members != 4 {
		t.Fatalf("stats %+v", st)
	}
}

// TestStaticReplacedWhileCompleting: a static member restarting while the
// group awaits assignments forces a new rebalance (the leader assigned to
// the old id).
func TestStaticReplacedWhileCompleting(t *testing.T) {
	h := newHarness(t, nil)
	const g = "src"
	ia, ib := strp("a"), strp("b")
	aj := h.joinAsync(joinSpec{group: g, instance: ia})
	h.waitMembers(1)
	bj := h.joinAsync(joinSpec{group: g, instance: ib})
	ra, rb := wait(t, aj, "a"), wait(t, bj, "b")
	if ra.Generation != 1 || rb.Generation != 1 {
		t.Fatalf("gens %d %d", ra.Generation, rb.Generation)
	}
	// CompletingRebalance: nobody synced yet. a restarts.
	nj := h.joinAsync(joinSpec{group: g, instance: ia})
	time.Sleep(20 * time.Millisecond)
	mustCode(t, "heartbeat b", h.heartbeat(g, rb.MemberID, 1), kerr.RebalanceInProgress.Code)
	mustCode(t, "old a fenced", wait(t, h.syncAsync(g, ra.MemberID, 1, nil), "old a sync").ErrorCode, kerr.UnknownMemberID.Code)
	br := wait(t, h.joinAsync(joinSpec{group: g, member: rb.MemberID, instance: ib}), "b rejoin")
	nr := wait(t, nj, "a restarted")
	if nr.ErrorCode != 0 || nr.Generation != 2 || br.Generation != 2 || nr.MemberID == ra.MemberID {
		t.Fatalf("after static replacement: %v gen %d/%d member %q", kerr.ErrorForCode(nr.ErrorCode), nr.Generation, br.Generation, nr.MemberID)
	}
}
