package group

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/meta"
)

// fakeLog is a log.Log whose only working method is Topic: it knows the
// topics and partition counts in topics.
type fakeLog struct {
	log.Log
	topics map[string]int
}

func (f fakeLog) Topic(name string) (log.TopicInfo, error) {
	n, ok := f.topics[name]
	if !ok {
		return log.TopicInfo{}, log.ErrUnknownTopic
	}
	ti := log.TopicInfo{Name: name}
	for i := range n {
		ti.Partitions = append(ti.Partitions, log.PartitionInfo{Partition: int32(i)})
	}
	return ti, nil
}

type harness struct {
	t     *testing.T
	c     *Coordinator
	store *meta.Store
	dir   string
}

// newHarness starts a Coordinator on a fresh meta store with short timeouts.
func newHarness(t *testing.T, mod func(*Options)) *harness {
	t.Helper()
	dir := t.TempDir()
	store, err := meta.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, store: store, dir: dir}
	h.start(mod)
	t.Cleanup(func() {
		h.c.Close()
		h.store.Close()
	})
	return h
}

func (h *harness) start(mod func(*Options)) {
	o := Options{
		Meta:                  h.store,
		Log:                   fakeLog{topics: map[string]int{"t": 4, "u": 2}},
		InitialRebalanceDelay: 30 * time.Millisecond,
		MinSessionTimeout:     50 * time.Millisecond,
		Logger:                slog.New(slog.NewTextHandler(h.t.Output(), nil)),
	}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		h.t.Fatal(err)
	}
	h.c = c
}

func (h *harness) do(req kmsg.Request) kmsg.Response {
	h.t.Helper()
	resp, ok := h.c.Handle(context.Background(), req)
	if !ok {
		h.t.Fatalf("Handle refused key %d v%d", req.Key(), req.GetVersion())
	}
	if resp.GetVersion() != req.GetVersion() {
		h.t.Fatalf("response version %d for request version %d", resp.GetVersion(), req.GetVersion())
	}
	return resp
}

type proto struct {
	name string
	meta string
}

type joinSpec struct {
	group     string
	member    string
	instance  *string
	session   time.Duration
	rebalance time.Duration
	protos    []proto
	version   int16
}

func (h *harness) joinReq(s joinSpec) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = 9
	if s.version != 0 {
		req.Version = s.version
	}
	req.Group = s.group
	req.MemberID = s.member
	req.InstanceID = s.instance
	if s.session == 0 {
		s.session = 2 * time.Second
	}
	if s.rebalance == 0 {
		s.rebalance = 2 * time.Second
	}
	req.SessionTimeoutMillis = int32(s.session / time.Millisecond)
	req.RebalanceTimeoutMillis = int32(s.rebalance / time.Millisecond)
	req.ProtocolType = "consumer"
	if s.protos == nil {
		s.protos = []proto{{"range", "m"}}
	}
	for _, p := range s.protos {
		req.Protocols = append(req.Protocols, kmsg.JoinGroupRequestProtocol{Name: p.name, Metadata: []byte(p.meta)})
	}
	return req
}

// joinAsync sends a JoinGroup in the background.
func (h *harness) joinAsync(s joinSpec) <-chan *kmsg.JoinGroupResponse {
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	req := h.joinReq(s)
	go func() {
		resp, _ := h.c.Handle(context.Background(), req)
		ch <- resp.(*kmsg.JoinGroupResponse)
	}()
	return ch
}

// joinNew does the KIP-394 dance and returns the pending JoinGroup.
func (h *harness) joinNew(s joinSpec) (string, <-chan *kmsg.JoinGroupResponse) {
	h.t.Helper()
	if s.instance != nil {
		return "", h.joinAsync(s)
	}
	r := h.do(h.joinReq(s)).(*kmsg.JoinGroupResponse)
	if r.ErrorCode != kerr.MemberIDRequired.Code || r.MemberID == "" {
		h.t.Fatalf("first join: error %v member %q, want MEMBER_ID_REQUIRED", kerr.ErrorForCode(r.ErrorCode), r.MemberID)
	}
	s.member = r.MemberID
	return r.MemberID, h.joinAsync(s)
}

func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

func notYet[T any](t *testing.T, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s answered early", what)
	case <-time.After(d):
	}
}

func mustCode(t *testing.T, what string, got, want int16) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: error %v, want %v", what, kerr.ErrorForCode(got), kerr.ErrorForCode(want))
	}
}

func (h *harness) syncReq(group, member string, gen int32, assign map[string]string) *kmsg.SyncGroupRequest {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = 5
	req.Group, req.MemberID, req.Generation = group, member, gen
	pt, p := "consumer", "range"
	req.ProtocolType, req.Protocol = &pt, &p
	for id, a := range assign {
		req.GroupAssignment = append(req.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: []byte(a)})
	}
	return req
}

func (h *harness) syncAsync(group, member string, gen int32, assign map[string]string) <-chan *kmsg.SyncGroupResponse {
	ch := make(chan *kmsg.SyncGroupResponse, 1)
	req := h.syncReq(group, member, gen, assign)
	go func() {
		resp, _ := h.c.Handle(context.Background(), req)
		ch <- resp.(*kmsg.SyncGroupResponse)
	}()
	return ch
}

func (h *harness) heartbeat(group, member string, gen int32) int16 {
	h.t.Helper()
	req := kmsg.NewPtrHeartbeatRequest()
	req.Version = 4
	req.Group, req.MemberID, req.Generation = group, member, gen
	return h.do(req).(*kmsg.HeartbeatResponse).ErrorCode
}

func (h *harness) commit(group, member string, gen int32, topic string, part int32, off int64) int16 {
	h.t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 9
	req.Group, req.MemberID, req.Generation = group, member, gen
	md := "md"
	req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: part, Offset: off, LeaderEpoch: -1, Metadata: &md}}}}
	r := h.do(req).(*kmsg.OffsetCommitResponse)
	if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
		h.t.Fatalf("commit answer shape: %+v", r)
	}
	return r.Topics[0].Partitions[0].ErrorCode
}

// fetched returns the committed offset of group for topic/part through
// OffsetFetch v7.
func (h *harness) fetched(group, topic string, part int32) int64 {
	h.t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 7
	req.Group = group
	req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: topic, Partitions: []int32{part}}}
	r := h.do(req).(*kmsg.OffsetFetchResponse)
	mustCode(h.t, "offset fetch", r.ErrorCode, 0)
	if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
		h.t.Fatalf("fetch answer shape: %+v", r)
	}
	return r.Topics[0].Partitions[0].Offset
}

// waitMembers waits until the Coordinator counts n members.
func (h *harness) waitMembers(n int64) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for h.c.Stats().Members != n {
		if time.Now().After(deadline) {
			h.t.Fatalf("members = %d, want %d", h.c.Stats().Members, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func strp(s string) *string { return &s }
