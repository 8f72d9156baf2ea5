package kafka

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel/runnel/ingest/kafka/group"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fakeGroups answers Heartbeat only; for group "block" it first waits
// 300ms (or until ctx ends).
type fakeGroups struct {
	calls atomic.Int64
	mu    sync.Mutex
	trace []string // "start <group>", "end <group>"
}

func (f *fakeGroups) note(ev string) {
	f.mu.Lock()
	f.trace = append(f.trace, ev)
	f.mu.Unlock()
}

func (f *fakeGroups) Versions() map[int16][2]int16 {
	return map[int16][2]int16{kmsg.Heartbeat.Int16(): {0, 4}}
}

func (f *fakeGroups) Handle(ctx context.Context, req kmsg.Request) (kmsg.Response, bool) {
	hb, ok := req.(*kmsg.HeartbeatRequest)
	if !ok {
		return nil, false
	}
	f.calls.Add(1)
	f.note("start " + hb.Group)
	defer f.note("end " + hb.Group)
	resp := hb.ResponseKind().(*kmsg.HeartbeatResponse)
	if hb.Group == "block" {
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
		resp.ErrorCode = 27 // REBALANCE_IN_PROGRESS
	}
	return resp, true
}

func TestFindCoordinatorPointsHere(t *testing.T) {
	fg := &fakeGroups{}
	ts := startServer(t, openLog(t, ""), func(o *Options) { o.Groups = fg })
	r := dialRaw(t, ts.addr)
	host, port, _ := net.SplitHostPort(ts.addr)
	for _, v := range []int16{0, 3, 4, 6} {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.Version = v
		req.CoordinatorKey = "g"
		req.CoordinatorKeys = []string{"g", "h"}
		resp := r.roundTrip(req, int32(v)).(*kmsg.FindCoordinatorResponse)
		if v < 4 {
			if resp.ErrorCode != 0 || resp.Host != host || strconv.Itoa(int(resp.Port)) != port || resp.NodeID != 0 {
				t.Fatalf("v%d: %+v, want %s", v, resp, ts.addr)
			}
			continue
		}
		if len(resp.Coordinators) != 2 {
			t.Fatalf("v%d: %d coordinators", v, len(resp.Coordinators))
		}
		for _, c := range resp.Coordinators {
			if c.ErrorCode != 0 || c.Host != host || strconv.Itoa(int(c.Port)) != port {
				t.Fatalf("v%d: %+v", v, c)
			}
		}
	}
	// Group requests reach the handler; a slow one does not hold back the
	// responses' order (they stay in request order).
	slow := kmsg.NewPtrHeartbeatRequest()
	slow.Version = 4
	slow.Group = "block"
	fast := kmsg.NewPtrHeartbeatRequest()
	fast.Version = 4
	fast.Group = "g"
	r.write(append(frame(slow, 10), frame(fast, 11)...))
	for _, want := range []int32{10, 11} {
		body, err := r.readFrame()
		if err != nil {
			t.Fatal(err)
		}
		if corr := int32(uint32(body[0])<<24 | uint32(body[1])<<16 | uint32(body[2])<<8 | uint32(body[3])); corr != want {
			t.Fatalf("response for %d, want %d", corr, want)
		}
	}
	if fg.calls.Load() != 2 {
		t.Fatalf("handler called %d times", fg.calls.Load())
	}
	// ... and are handled one at a time, in order, as Kafka does.
	fg.mu.Lock()
	trace := strings.Join(fg.trace, ",")
	fg.mu.Unlock()
	if trace != "start block,end block,start g,end g" {
		t.Fatalf("group requests handled as %s", trace)
	}
	// Group keys advertised are the handler's.
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 3
	av.ClientSoftwareName, av.ClientSoftwareVersion = "t", "1"
	keys := map[int16]bool{}
	for _, k := range r.roundTrip(av, 20).(*kmsg.ApiVersionsResponse).ApiKeys {
		keys[k.ApiKey] = true
	}
	if !keys[kmsg.Heartbeat.Int16()] || keys[kmsg.JoinGroup.Int16()] {
		t.Fatalf("advertised group keys wrong: heartbeat %v join %v", keys[kmsg.Heartbeat.Int16()], keys[kmsg.JoinGroup.Int16()])
	}
}

func TestNoGroupsCoordinatorNotAvailable(t *testing.T) {
	ts := startServer(t, openLog(t, ""), nil)
	r := dialRaw(t, ts.addr)
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.Version = 3
	fc.CoordinatorKey = "g"
	if resp := r.roundTrip(fc, 1).(*kmsg.FindCoordinatorResponse); resp.ErrorCode != codeCoordinatorNotAvailable {
		t.Fatalf("FindCoordinator: %+v", resp)
	}
	jg := kmsg.NewPtrJoinGroupRequest()
	jg.Version = 7
	jg.Group = "g"
	if resp := r.roundTrip(jg, 2).(*kmsg.JoinGroupResponse); resp.ErrorCode != codeCoordinatorNotAvailable {
		t.Fatalf("JoinGroup: %+v", resp)
	}
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Version = 8
	oc.Group = "g"
	oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 5}}}}
	resp := r.roundTrip(oc, 3).(*kmsg.OffsetCommitResponse)
	if len(resp.Topics) != 1 || resp.Topics[0].Partitions[0].ErrorCode != codeCoordinatorNotAvailable {
		t.Fatalf("OffsetCommit: %+v", resp)
	}
}

// TestGroupVersionsOneTable: without a coordinator the server answers the
// group APIs (COORDINATOR_NOT_AVAILABLE) at exactly the versions the
// coordinator serves, so a client sees the same ApiVersions either way.
func TestGroupVersionsOneTable(t *testing.T) {
	l := openLog(t, "")
	coord, err := group.New(group.Options{Meta: l.Meta(), Log: l})
	if err != nil {
		t.Fatal(err)
	}
	defer coord.Close()
	with, without := newVersionTable(coord, true, false), newVersionTable(nil, true, false)
	for k := int16(0); k < maxKey; k++ {
		if with.served[k] != without.served[k] || with.rng[k] != without.rng[k] || with.group[k] != without.group[k] {
			t.Errorf("%s: with a coordinator served=%v %v group=%v, without served=%v %v group=%v", kmsg.NameForKey(k),
				with.served[k], with.rng[k], with.group[k], without.served[k], without.rng[k], without.group[k])
		}
	}
}
