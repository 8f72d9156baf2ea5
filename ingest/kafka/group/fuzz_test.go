package group

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log/meta"
)

// FuzzHandle throws arbitrary request bodies (as kmsg decodes them) at one
// Coordinator: no input may panic it, and every answer must encode at the
// request's version.
func FuzzHandle(f *testing.F) {
	seeds := []kmsg.Request{
		&kmsg.JoinGroupRequest{Version: 9, Group: "g", SessionTimeoutMillis: 6000, RebalanceTimeoutMillis: 100, ProtocolType: "consumer",
			Protocols: []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 1}}}},
		&kmsg.JoinGroupRequest{Version: 5, Group: "g", SessionTimeoutMillis: 6000, RebalanceTimeoutMillis: 100, InstanceID: strp("i"), ProtocolType: "consumer",
			Protocols: []kmsg.JoinGroupRequestProtocol{{Name: "range"}}},
		&kmsg.SyncGroupRequest{Version: 5, Group: "g", Generation: 1, MemberID: "m"},
		&kmsg.HeartbeatRequest{Version: 4, Group: "g", Generation: 1, MemberID: "m"},
		&kmsg.LeaveGroupRequest{Version: 5, Group: "g", Members: []kmsg.LeaveGroupRequestMember{{MemberID: "m"}, {InstanceID: strp("i")}}},
		&kmsg.OffsetCommitRequest{Version: 9, Group: "g", Generation: -1, Topics: []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 1, Offset: 5}}}}},
		&kmsg.OffsetFetchRequest{Version: 8, Groups: []kmsg.OffsetFetchRequestGroup{{Group: "g"}}},
		&kmsg.OffsetFetchRequest{Version: 3, Group: "g"},
		&kmsg.ListGroupsRequest{Version: 5, StatesFilter: []string{"Empty"}},
		&kmsg.DescribeGroupsRequest{Version: 6, Groups: []string{"g", ""}},
		&kmsg.DeleteGroupsRequest{Version: 2, Groups: []string{"g"}},
		&kmsg.OffsetDeleteRequest{Group: "g", Topics: []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 1}}}}},
		&kmsg.ConsumerGroupHeartbeatRequest{Version: 1, Group: "c", MemberID: "m", RebalanceTimeoutMillis: 1000, SubscribedTopicNames: []string{"t"},
			Topics: []kmsg.ConsumerGroupHeartbeatRequestTopic{}},
		&kmsg.ConsumerGroupHeartbeatRequest{Version: 1, Group: "c", MemberID: "m", MemberEpoch: 1, SubscribedTopicRegex: strp("t.*"), ServerAssignor: strp("range"),
			Topics: []kmsg.ConsumerGroupHeartbeatRequestTopic{{TopicID: TopicID("t"), Partitions: []int32{0, 1}}}},
		&kmsg.ConsumerGroupHeartbeatRequest{Version: 0, Group: "c", MemberID: "m", MemberEpoch: -2, InstanceID: strp("i")},
		&kmsg.ConsumerGroupDescribeRequest{Version: 1, Groups: []string{"c", "g", ""}},
	}
	for _, r := range seeds {
		f.Add(r.Key(), r.GetVersion(), r.AppendTo(nil))
	}
	store, err := meta.Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	c, err := New(Options{Meta: store, Log: fakeLog{topics: map[string]int{"t": 2}}, InitialRebalanceDelay: -1, MinSessionTimeout: time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { c.Close() })
	f.Fuzz(func(t *testing.T, key, version int16, body []byte) {
		req := kmsg.RequestForKey(key)
		if req == nil {
			return
		}
		req.SetVersion(version)
		if _, ok := versions[key]; !ok || version < 0 || version > req.MaxVersion() {
			return
		}
		if err := req.ReadFrom(body); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		resp, ok := c.Handle(ctx, req)
		if !ok {
			return
		}
		if resp.GetVersion() != version || resp.Key() != key {
			t.Fatalf("answer key %d v%d for key %d v%d", resp.Key(), resp.GetVersion(), key, version)
		}
		resp.AppendTo(nil)
	})
}
