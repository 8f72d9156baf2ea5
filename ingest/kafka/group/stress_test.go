package group

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestStressMembership runs simulated clients that join, sync, heartbeat,
// commit, leave and vanish at random against one group for a while. In
// every generation no partition may be assigned to two members, and every
// member's assignment must come from that generation's leader. Afterwards
// every member has left and the group is gone.
func TestStressMembership(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.InitialRebalanceDelay = 10 * time.Millisecond })
	const (
		g          = "stress"
		members    = 6
		partitions = 12
	)
	dur := 2 * time.Second
	if testing.Short() {
		dur = 500 * time.Millisecond
	}
	// Run for dur, and past it (up to 30 s) until enough generations got
	// assignments: a loaded CI box makes rebalances slow, not wrong.
	const wantGens = 5
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var mu sync.Mutex
	owners := map[int32]map[int]string{} // generation → partition → member
	go func() {
		start := time.Now()
		for ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
			mu.Lock()
			n := len(owners)
			mu.Unlock()
			if time.Since(start) >= dur && n >= wantGens {
				cancel()
			}
		}
	}()
	leaders := map[int32]string{} // generation → leader named in the plan
	syncs := 0
	record := func(gen int32, id string, assignment []byte) {
		mu.Lock()
		defer mu.Unlock()
		syncs++
		// assignment: "leader|p,p,p"
		leader, parts, _ := strings.Cut(string(assignment), "|")
		if l, ok := leaders[gen]; ok && l != leader && leader != "" {
			t.Errorf("generation %d: assignments from leaders %s and %s", gen, l, leader)
		} else if leader != "" {
			leaders[gen] = leader
		}
		if owners[gen] == nil {
			owners[gen] = map[int]string{}
		}
		for _, p := range strings.Split(parts, ",") {
			if p == "" {
				continue
			}
			var n int
			fmt.Sscan(p, &n)
			if o, ok := owners[gen][n]; ok && o != id {
				t.Errorf("generation %d: partition %d owned by %s and %s", gen, n, o, id)
			}
			owners[gen][n] = id
		}
	}

	handle := func(req kmsg.Request) kmsg.Response {
		r, ok := h.c.Handle(ctx, req)
		if !ok {
			t.Errorf("refused %T", req)
		}
		return r
	}
	var wg sync.WaitGroup
	for i := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			id := ""
			leave := func() {
				if id == "" {
					return
				}
				l := kmsg.NewPtrLeaveGroupRequest()
				l.Version, l.Group = 5, g
				l.Members = []kmsg.LeaveGroupRequestMember{{MemberID: id}}
				h.c.Handle(context.Background(), l)
				id = ""
			}
			defer leave()
			for ctx.Err() == nil {
				j := h.joinReq(joinSpec{group: g, member: id, session: 250 * time.Millisecond, rebalance: 300 * time.Millisecond})
				jr := handle(j).(*kmsg.JoinGroupResponse)
				switch jr.ErrorCode {
				case kerr.MemberIDRequired.Code:
					id = jr.MemberID
					continue
				case kerr.UnknownMemberID.Code:
					id = ""
					continue
				case 0:
				default:
					continue
				}
				id = jr.MemberID
				var plan map[string]string
				if jr.LeaderID == id {
					plan = map[string]string{}
					parts := make([][]string, len(jr.Members))
					for p := range partitions {
						k := p % len(jr.Members)
						parts[k] = append(parts[k], fmt.Sprint(p))
					}
					for k, m := range jr.Members {
						plan[m.MemberID] = id + "|" + strings.Join(parts[k], ",")
					}
				}
				s := h.syncReq(g, id, jr.Generation, plan)
				sr := handle(s).(*kmsg.SyncGroupResponse)
				if sr.ErrorCode == kerr.UnknownMemberID.Code {
					id = ""
					continue
				}
				if sr.ErrorCode != 0 {
					continue
				}
				record(jr.Generation, id, sr.MemberAssignment)
				// Heartbeat and commit until a rebalance, or act up.
				for beat := 0; ctx.Err() == nil; beat++ {
					time.Sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond)
					hb := kmsg.NewPtrHeartbeatRequest()
					hb.Version, hb.Group, hb.MemberID, hb.Generation = 4, g, id, jr.Generation
					code := handle(hb).(*kmsg.HeartbeatResponse).ErrorCode
					if code == kerr.UnknownMemberID.Code {
						id = ""
					}
					if code != 0 {
						break
					}
					c := kmsg.NewPtrOffsetCommitRequest()
					c.Version, c.Group, c.MemberID, c.Generation = 9, g, id, jr.Generation
					c.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: int32(i % 4), Offset: int64(beat)}}}}
					handle(c)
					if r := rng.IntN(100); r < 3 {
						leave()
						break
					} else if r < 5 {
						// Vanish: stop heartbeating for longer than
						// the session.
						time.Sleep(300 * time.Millisecond)
						break
					} else if r < 8 {
						break // rejoin with the same id
					}
				}
			}
		}()
	}
	// Readers alongside.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			handle(&kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{g}})
			handle(&kmsg.ListGroupsRequest{Version: 4})
			f := kmsg.NewPtrOffsetFetchRequest()
			f.Version, f.Groups = 8, []kmsg.OffsetFetchRequestGroup{{Group: g}}
			handle(f)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	wg.Wait()

	mu.Lock()
	gens := len(owners)
	mu.Unlock()
	t.Logf("%d generations, %d syncs, stats %+v", gens, syncs, h.c.Stats())
	if gens < wantGens {
		t.Fatalf("only %d generations got assignments", gens)
	}
	// Every member left (or expires): the group empties and is dropped.
	deadline := time.Now().Add(3 * time.Second)
	for st := h.c.Stats(); st.Members != 0 || st.Groups != 0; st = h.c.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("after every client stopped: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
