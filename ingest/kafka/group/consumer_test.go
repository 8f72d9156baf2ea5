package group_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// describeConsumer returns the ConsumerGroupDescribe answer for grp.
func describeConsumer(t *testing.T, addr, grp string) kmsg.ConsumerGroupDescribeResponseGroup {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrConsumerGroupDescribeRequest()
	req.Groups = []string{grp}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Groups[0]
}

// TestFranzGoConsumerProtocol: franz-go members with the consumer group
// protocol (KIP-848, server-side assignment) share a topic while members
// join and leave and records keep coming: the coordinator splits the
// partitions between them (no partition owned twice), a classic JoinGroup
// to the group is refused, and every record is consumed exactly once.
func TestFranzGoConsumerProtocol(t *testing.T) {
	for _, tc := range []struct {
		name     string
		balancer func() kgo.GroupBalancer
		assignor string
	}{
		{"range", kgo.RangeBalancer, "range"},
		{"uniform", kgo.StickyBalancer, "uniform"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := startNode(t, t.TempDir())
			const topic, grp = "events", "workers"
			createTopic(t, n.log, topic, 4)
			s := newSeen()

			produce(t, n.addr, topic, "a", 300)
			c1 := startConsumer(t, n.addr, grp, topic, "c1", tc.balancer(), s, kgo.ServerSideBalancer())
			waitFor(t, "c1 to consume the first batch", 15*time.Second, func() bool { return s.total() >= 300 })

			c2 := startConsumer(t, n.addr, grp, topic, "c2", tc.balancer(), s, kgo.ServerSideBalancer())
			deadline := time.Now().Add(30 * time.Second)
			batch := 0
			for {
				batch++
				produce(t, n.addr, topic, fmt.Sprintf("b%d", batch), 40)
				time.Sleep(100 * time.Millisecond)
				if s.has("c2") > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("c2 never got a partition")
				}
			}
			// The group is a consumer-protocol group, stable with both
			// members owning two partitions each.
			waitFor(t, "a stable group of two", 15*time.Second, func() bool {
				d := describeConsumer(t, n.addr, grp)
				if d.ErrorCode != 0 || d.State != "Stable" || len(d.Members) != 2 {
					return false
				}
				owned := map[int32]int{}
				for _, m := range d.Members {
					for _, tp := range m.Assignment.TopicPartitions {
						for _, p := range tp.Partitions {
							owned[p]++
						}
					}
					if len(m.Assignment.TopicPartitions) != 1 || len(m.Assignment.TopicPartitions[0].Partitions) != 2 {
						return false
					}
				}
				return len(owned) == 4 && d.AssignorName == tc.assignor
			})
			join := kmsg.NewPtrJoinGroupRequest()
			join.Group, join.ProtocolType, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = grp, "consumer", 10000, 10000
			join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 0, 0, 0, 0, 0, 0, 0}}}
			admin, err := kgo.NewClient(kgo.SeedBrokers(n.addr))
			if err != nil {
				t.Fatal(err)
			}
			jctx, jcancel := context.WithTimeout(context.Background(), 5*time.Second)
			jr, err := join.RequestWith(jctx, admin)
			jcancel()
			admin.Close()
			if err != nil || jr.ErrorCode != 23 { // INCONSISTENT_GROUP_PROTOCOL
				t.Fatalf("classic JoinGroup to a consumer group: %v, code %v", err, jr)
			}

			produce(t, n.addr, topic, "c", 200)
			want := 300 + batch*40 + 200
			waitFor(t, "both members to consume", 15*time.Second, func() bool { return s.total() >= want })

			// c1 leaves: c2 takes over every partition.
			c1.stop()
			produce(t, n.addr, topic, "d", 200)
			want += 200
			waitFor(t, "c2 to consume after c1 left", 20*time.Second, func() bool { return s.total() >= want })
			d := describeConsumer(t, n.addr, grp)
			if len(d.Members) != 1 || len(d.Members[0].Assignment.TopicPartitions[0].Partitions) != 4 {
				t.Fatalf("after c1 left: %+v", d)
			}
			c2.stop()
			s.check(t, want, true)
			t.Logf("c1 %d, c2 %d, coordinator %+v", s.has("c1"), s.has("c2"), n.coord.Stats())
		})
	}
}

// TestFranzGoConsumerProtocolRestart: consumer-protocol members of a
// restarted coordinator rejoin (UNKNOWN_MEMBER_ID, then epoch 0) and go
// on from the committed offsets, which survived: no record is lost.
func TestFranzGoConsumerProtocolRestart(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	const topic, grp = "restart", "restart-848"
	createTopic(t, n.log, topic, 4)
	s := newSeen()
	produce(t, n.addr, topic, "a", 300)
	c1 := startConsumer(t, n.addr, grp, topic, "c1", kgo.StickyBalancer(), s, kgo.ServerSideBalancer())
	c2 := startConsumer(t, n.addr, grp, topic, "c2", kgo.StickyBalancer(), s, kgo.ServerSideBalancer())
	waitFor(t, "the first batch to be committed", 20*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.committed) >= 300
	})

	addr := n.addr
	n.stop()
	n = startNodeAt(t, dir, addr)
	produce(t, n.addr, topic, "b", 300)
	waitFor(t, "every record committed after the restart", 40*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.committed) >= 600
	})
	if d := describeConsumer(t, n.addr, grp); d.ErrorCode != 0 || len(d.Members) == 0 {
		t.Fatalf("members did not rejoin the restarted coordinator: %+v", d)
	}
	c1.stop()
	c2.stop()
	s.check(t, 600, false)
}
