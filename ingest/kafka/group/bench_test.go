package group

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log/meta"
)

// BenchmarkOffsetCommitParallel: simple-consumer commits from many
// goroutines (each its own group), as many consumers committing at once.
func BenchmarkOffsetCommitParallel(b *testing.B) {
	store, err := meta.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	c, err := New(Options{Meta: store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		grp := fmt.Sprintf("g%d", n.Add(1))
		var off int64
		for pb.Next() {
			off++
			req := kmsg.NewPtrOffsetCommitRequest()
			req.Version, req.Group = 9, grp
			req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: off}}}}
			resp, _ := c.Handle(context.Background(), req)
			if code := resp.(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
				b.Fatalf("commit error %d", code)
			}
		}
	})
}

// BenchmarkHeartbeat: the hot path of a stable group.
func BenchmarkHeartbeat(b *testing.B) {
	store, err := meta.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	c, err := New(Options{Meta: store, InitialRebalanceDelay: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	j := kmsg.NewPtrJoinGroupRequest()
	j.Version, j.Group, j.SessionTimeoutMillis, j.ProtocolType = 3, "hb", 30000, "consumer"
	j.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	r, _ := c.Handle(context.Background(), j)
	jr := r.(*kmsg.JoinGroupResponse)
	s := kmsg.NewPtrSyncGroupRequest()
	s.Group, s.MemberID, s.Generation = "hb", jr.MemberID, jr.Generation
	c.Handle(context.Background(), s)
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "hb", jr.MemberID, jr.Generation
	b.ReportAllocs()
	for b.Loop() {
		resp, _ := c.Handle(context.Background(), hb)
		if resp.(*kmsg.HeartbeatResponse).ErrorCode != 0 {
			b.Fatal("heartbeat failed")
		}
	}
}
