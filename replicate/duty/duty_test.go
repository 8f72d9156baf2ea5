package duty_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/runnel/runnel/replicate/duty"
	"github.com/runnel/runnel/sync/forward"
)

var key = forward.DutyKey{Origin: "n1", Topic: "sensors", Partition: 0}

func members(states ...string) []duty.Member {
	// states[i] is node n<i+1>'s: "a" alive, "f" failed, "l" left, "-" unknown.
	var ms []duty.Member
	for i, s := range states {
		st := map[string]duty.State{"a": duty.Alive, "f": duty.Failed, "l": duty.Left}[s]
		if st == "" {
			continue
		}
		ms = append(ms, duty.Member{ID: fmt.Sprintf("n%d", i+1), State: st})
	}
	return ms
}

func claim(node string, epoch uint64, released bool) (forward.Claim, bool) {
	return forward.Claim{Node: node, Epoch: epoch, Released: released}, true
}

// TestDecide walks the scenarios one view at a time, from the
// point of view of each node involved.
func TestDecide(t *testing.T) {
	type tc struct {
		name      string
		self      string
		states    []string
		copies    []string
		claim     forward.Claim
		claimed   bool
		originEnd int64
		held      *duty.Held
		notFresh  bool
		want      duty.Action
		epoch     uint64
		why       duty.Reason
	}
	c := func(node string, epoch uint64, released bool) (forward.Claim, bool) {
		return claim(node, epoch, released)
	}
	c0, ok0 := forward.Claim{}, false
	c1, ok1 := c("n1", 1, false)
	c2, ok2 := c("n2", 2, false)
	c2r, ok2r := c("n2", 2, true)
	c3, ok3 := c("n3", 3, false)
	cases := []tc{
		{name: "origin alone takes its own duty", self: "n1", states: []string{"a"}, claim: c0, claimed: ok0, want: duty.Take, epoch: 1, why: duty.ReasonOwn},
		{name: "origin keeps it", self: "n1", states: []string{"a", "a"}, copies: []string{"n2"}, claim: c1, claimed: ok1,
			held: &duty.Held{Epoch: 1}, want: duty.Keep, epoch: 1, why: duty.ReasonOwn},
		{name: "a peer leaves a live origin alone", self: "n2", states: []string{"a", "a"}, copies: []string{"n2"}, claim: c1, claimed: ok1,
			want: duty.None, why: duty.ReasonOther},
		{name: "origin restarted after its own claim takes again, one epoch up", self: "n1", states: []string{"a", "a"}, claim: c1, claimed: ok1,
			want: duty.Take, epoch: 2, why: duty.ReasonOwn},
		{name: "survivor with a copy takes over a failed origin", self: "n2", states: []string{"f", "a", "a"}, copies: []string{"n2"}, claim: c1, claimed: ok1,
			want: duty.Take, epoch: 2, why: duty.ReasonTakeover},
		{name: "a node without a copy does not", self: "n3", states: []string{"f", "a", "a"}, copies: []string{"n2"}, claim: c1, claimed: ok1,
			want: duty.None, why: duty.ReasonOther},
		{name: "a node that left is taken over too", self: "n2", states: []string{"l", "a"}, copies: []string{"n2"}, claim: c1, claimed: ok1,
			want: duty.Take, epoch: 2, why: duty.ReasonTakeover},
		{name: "no takeover on a stale view", self: "n2", states: []string{"f", "a"}, copies: []string{"n2"}, claim: c1, claimed: ok1,
			notFresh: true, want: duty.Wait, why: duty.ReasonStale},
		{name: "nobody holds a copy", self: "n2", states: []string{"f", "a"}, claim: c1, claimed: ok1, want: duty.None, why: duty.ReasonNoCopy},
		{name: "survivor keeps its takeover", self: "n2", states: []string{"f", "a", "a"}, copies: []string{"n2", "n3"}, claim: c2, claimed: ok2,
			held: &duty.Held{Epoch: 2}, want: duty.Keep, epoch: 2, why: duty.ReasonTakeover},
		{name: "the holder stays the owner while alive (no move between survivors)", self: "n3", states: []string{"f", "a", "a"}, copies: []string{"n2", "n3"}, claim: c2, claimed: ok2,
			want: duty.None, why: duty.ReasonOther},
		{name: "the next survivor takes over when the holder dies", self: "n3", states: []string{"f", "f", "a"}, copies: []string{"n2", "n3"}, claim: c2, claimed: ok2,
			want: duty.Take, epoch: 3, why: duty.ReasonTakeover},
		{name: "origin back: survivor keeps while the origin's log is behind its cursor", self: "n2", states: []string{"a", "a"}, copies: []string{"n2"}, claim: c2, claimed: ok2,
			originEnd: 50, held: &duty.Held{Epoch: 2, Cursor: 80}, want: duty.Keep, epoch: 2, why: duty.ReasonCatchingUp},
		{name: "origin back: survivor keeps while the origin's end is unknown", self: "n2", states: []string{"a", "a"}, copies: []string{"n2"}, claim: c2, claimed: ok2,
			originEnd: -1, held: &duty.Held{Epoch: 2, Cursor: 80}, want: duty.Keep, epoch: 2, why: duty.ReasonCatchingUp},
		{name: "origin back: it waits for the holder's release", self: "n1", states: []string{"a", "a"}, copies: []string{"n2"}, claim: c2, claimed: ok2,
			want: duty.Wait, why: duty.ReasonHolder},
		{name: "origin caught up: survivor releases", self: "n2", states: []string{"a", "a"}, copies: []string{"n2"}, claim: c2, claimed: ok2,
			originEnd: 80, held: &duty.Held{Epoch: 2, Cursor: 80}, want: duty.Release, epoch: 2, why: duty.ReasonHandBack},
		{name: "released: origin takes back one epoch up", self: "n1", states: []string{"a", "a"}, copies: []string{"n2"}, claim: c2r, claimed: ok2r,
			want: duty.Take, epoch: 3, why: duty.ReasonHandBack},
		{name: "holder died before releasing: origin takes back", self: "n1", states: []string{"a", "f"}, copies: []string{"n2"}, claim: c2, claimed: ok2,
			want: duty.Take, epoch: 3, why: duty.ReasonHandBack},
		{name: "origin back from a pause is fenced by the takeover", self: "n1", states: []string{"a", "a"}, copies: []string{"n2"}, claim: c2, claimed: ok2,
			held: &duty.Held{Epoch: 1}, want: duty.Drop, epoch: 1, why: duty.ReasonFenced},
		{name: "a held duty is dropped on a stale view", self: "n1", states: []string{"a", "a"}, copies: []string{"n2"}, claim: c1, claimed: ok1,
			held: &duty.Held{Epoch: 1}, notFresh: true, want: duty.Drop, epoch: 1, why: duty.ReasonStale},
		{name: "equal epochs: the lower node id is fenced", self: "n2", states: []string{"f", "a", "a"}, copies: []string{"n2", "n3"}, claim: func() forward.Claim { x, _ := c("n3", 2, false); return x }(), claimed: true,
			held: &duty.Held{Epoch: 2}, want: duty.Drop, epoch: 2, why: duty.ReasonFenced},
		{name: "a stale holder (third node took over) is fenced", self: "n2", states: []string{"f", "a", "a"}, copies: []string{"n2", "n3"}, claim: c3, claimed: ok3,
			held: &duty.Held{Epoch: 2}, want: duty.Drop, epoch: 2, why: duty.ReasonFenced},
	}
	for _, x := range cases {
		t.Run(x.name, func(t *testing.T) {
			v := &duty.View{Self: x.self, Members: members(x.states...), Fresh: !x.notFresh}
			p := &duty.Partition{Key: key, Copies: x.copies, Claim: x.claim, Claimed: x.claimed, OriginEnd: x.originEnd}
			d := duty.Decide(v, p, x.held)
			if d.Action != x.want || d.Epoch != x.epoch || d.Why != x.why {
				t.Fatalf("got %s epoch %d (%s), owner %q; want %s epoch %d (%s)", d.Action, d.Epoch, d.Why, d.Owner, x.want, x.epoch, x.why)
			}
		})
	}
}

// TestOwnerRoutes: a survivor whose route configuration differs from the
// origin's is not chosen.
func TestOwnerRoutes(t *testing.T) {
	v := &duty.View{Self: "n2", Fresh: true, Members: []duty.Member{
		{ID: "n1", State: duty.Failed, Routes: "aaaa"},
		{ID: "n2", State: duty.Alive, Routes: "bbbb"},
		{ID: "n3", State: duty.Alive, Routes: "aaaa"},
	}}
	p := &duty.Partition{Key: key, Copies: []string{"n2", "n3"}}
	if o, _ := duty.Owner(v, p); o != "n3" {
		t.Fatalf("owner %q, want n3 (n2's routes differ)", o)
	}
	p.Copies = []string{"n2"}
	if o, why := duty.Owner(v, p); o != "" || why != duty.ReasonNoCopy {
		t.Fatalf("owner %q (%s), want none", o, why)
	}
	v.Members[0].Routes = "" // unknown: not held against anyone
	if o, _ := duty.Owner(v, p); o != "n2" {
		t.Fatalf("owner %q, want n2", o)
	}
}

// TestOwnerSpreads: the survivors share a dead origin's partitions
// (rendezvous hash), and every node computes the same owner.
func TestOwnerSpreads(t *testing.T) {
	ms := members("f", "a", "a", "a")
	count := map[string]int{}
	for p := int32(0); p < 300; p++ {
		k := forward.DutyKey{Origin: "n1", Topic: "sensors", Partition: p}
		part := &duty.Partition{Key: k, Copies: []string{"n2", "n3", "n4"}}
		var first string
		for _, self := range []string{"n2", "n3", "n4"} {
			o, _ := duty.Owner(&duty.View{Self: self, Members: ms, Fresh: true}, part)
			if first == "" {
				first = o
			} else if o != first {
				t.Fatalf("partition %d: %s says %s, another says %s", p, self, o, first)
			}
		}
		count[first]++
	}
	for _, n := range []string{"n2", "n3", "n4"} {
		if count[n] < 60 {
			t.Fatalf("uneven spread %v", count)
		}
	}
}

// randomCase builds a consistent view: a member list, copies, the highest
// claim, and for each node what it holds (at most the highest claim;
// nothing if that claim was released by it).
func randomCase(rng *rand.Rand) (*duty.Partition, []duty.Member, map[string]*duty.Held, bool) {
	n := 1 + rng.IntN(5)
	states := []duty.State{duty.Alive, duty.Alive, duty.Alive, duty.Failed, duty.Left, duty.Leaving}
	routes := []string{"", "h1", "h1", "h2"}
	var ms []duty.Member
	for i := range n {
		ms = append(ms, duty.Member{ID: fmt.Sprintf("n%d", i+1), State: states[rng.IntN(len(states))], Routes: routes[rng.IntN(len(routes))]})
	}
	p := &duty.Partition{Key: forward.DutyKey{Origin: "n1", Topic: "t", Partition: int32(rng.IntN(4))}, OriginEnd: int64(rng.IntN(3)*50 - 50)}
	for _, m := range ms[1:] {
		if rng.IntN(3) > 0 {
			p.Copies = append(p.Copies, m.ID)
		}
	}
	if rng.IntN(5) > 0 {
		p.Claimed = true
		p.Claim = forward.Claim{Node: ms[rng.IntN(n)].ID, Epoch: uint64(1 + rng.IntN(4)), Released: rng.IntN(4) == 0}
	}
	held := map[string]*duty.Held{}
	for _, m := range ms {
		if rng.IntN(2) == 0 || !p.Claimed {
			continue
		}
		e := uint64(rng.IntN(int(p.Claim.Epoch) + 1))
		if m.ID > p.Claim.Node && e == p.Claim.Epoch {
			e-- // (e, node) never above the highest claim
		}
		if m.ID == p.Claim.Node && e == p.Claim.Epoch && p.Claim.Released {
			continue // released: no longer held
		}
		if e == 0 {
			continue
		}
		held[m.ID] = &duty.Held{Epoch: e, Cursor: int64(rng.IntN(3) * 40)}
	}
	return p, ms, held, rng.IntN(6) > 0
}

// checkView checks one view from every node's side: at most one alive
// node keeps or takes the duty, and when nothing blocks a handover the
// owner forwards.
func checkView(t *testing.T, p *duty.Partition, ms []duty.Member, held map[string]*duty.Held, fresh bool) {
	t.Helper()
	forwarding := 0
	var owner string
	for _, m := range ms {
		if m.State != duty.Alive {
			continue
		}
		v := &duty.View{Self: m.ID, Members: ms, Fresh: fresh}
		d := duty.Decide(v, p, held[m.ID])
		owner = d.Owner
		if d.Owner != "" {
			if om := member(ms, d.Owner); om.State != duty.Alive {
				t.Fatalf("owner %s is %s", d.Owner, om.State)
			}
		}
		switch d.Action {
		case duty.Keep:
			forwarding++
			if !fresh {
				t.Fatalf("%s keeps on a stale view", m.ID)
			}
		case duty.Take:
			forwarding++
			if p.Claimed && d.Epoch != p.Claim.Epoch+1 || !p.Claimed && d.Epoch != 1 {
				t.Fatalf("%s takes at epoch %d over claim %+v", m.ID, d.Epoch, p.Claim)
			}
		case duty.Release, duty.Drop:
			if held[m.ID] == nil {
				t.Fatalf("%s: %s of a duty it does not hold", m.ID, d.Action)
			}
		}
	}
	if forwarding > 1 {
		t.Fatalf("%d alive nodes forward one partition: claim %+v (claimed %v), copies %v, members %+v, held %v", forwarding, p.Claim, p.Claimed, p.Copies, ms, heldString(held))
	}
	// Liveness: a fresh view whose claim does not stand in the way (none,
	// released, holder not alive, or the owner's own) gets a forwarder.
	blocked := p.Claimed && !p.Claim.Released && member(ms, p.Claim.Node).State == duty.Alive && p.Claim.Node != owner
	if fresh && owner != "" && !blocked && forwarding != 1 {
		if h := held[owner]; h == nil || !(p.Claimed && (forward.Claim{Node: owner, Epoch: h.Epoch}).Less(p.Claim)) {
			t.Fatalf("nobody forwards: owner %s, claim %+v (claimed %v), members %+v, held %v", owner, p.Claim, p.Claimed, ms, heldString(held))
		}
	}
}

func member(ms []duty.Member, id string) duty.Member {
	for _, m := range ms {
		if m.ID == id {
			return m
		}
	}
	return duty.Member{ID: id}
}

func heldString(h map[string]*duty.Held) string {
	s := "{"
	for k, v := range h {
		s += fmt.Sprintf("%s:%d ", k, v.Epoch)
	}
	return s + "}"
}

// TestAtMostOneForwarder: for random consistent views, at most one alive
// node forwards each origin partition, and the owner does when nothing
// blocks it.
func TestAtMostOneForwarder(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for range 100000 {
		p, ms, held, fresh := randomCase(rng)
		checkView(t, p, ms, held, fresh)
	}
}

func FuzzAtMostOneForwarder(f *testing.F) {
	for i := range 8 {
		f.Add(uint64(i), uint64(i*7+1))
	}
	f.Fuzz(func(t *testing.T, a, b uint64) {
		p, ms, held, fresh := randomCase(rand.New(rand.NewPCG(a, b)))
		checkView(t, p, ms, held, fresh)
	})
}

// TestHandOverSequence plays takeover, the survivor's death, and the
// origin's return as a sequence of views, applying each decision the way
// a node does (a Take writes a claim every node then sees, a Release a
// release), and checks one forwarder at every step.
func TestHandOverSequence(t *testing.T) {
	ms := members("a", "a", "a")
	p := &duty.Partition{Key: key, Copies: []string{"n2", "n3"}, OriginEnd: -1}
	held := map[string]*duty.Held{}
	var cursor int64
	step := func(what string) {
		t.Helper()
		for range 3 { // decisions settle within a few rounds
			for _, m := range ms {
				if m.State != duty.Alive {
					continue
				}
				d := duty.Decide(&duty.View{Self: m.ID, Members: ms, Fresh: true}, p, held[m.ID])
				switch d.Action {
				case duty.Take:
					p.Claim, p.Claimed = forward.Claim{Node: m.ID, Epoch: d.Epoch}, true
					held[m.ID] = &duty.Held{Epoch: d.Epoch, Cursor: cursor}
				case duty.Release:
					delete(held, m.ID)
					p.Claim.Released = true
				case duty.Drop:
					delete(held, m.ID)
				}
			}
			checkView(t, p, ms, held, true)
		}
		cursor += 100
		for _, h := range held {
			h.Cursor = cursor
		}
		t.Logf("%s: claim %+v, held %s", what, p.Claim, heldString(held))
	}
	holder := func() string {
		for id := range held {
			return id
		}
		return ""
	}
	step("start")
	if holder() != "n1" || p.Claim.Epoch != 1 {
		t.Fatalf("origin does not forward: %s", heldString(held))
	}
	ms[0].State = duty.Failed // kill -9 of the origin
	delete(held, "n1")
	step("origin failed")
	first := holder()
	if first == "" || first == "n1" || p.Claim.Epoch != 2 {
		t.Fatalf("no takeover: %s", heldString(held))
	}
	ms[member2idx(first)].State = duty.Failed // the survivor dies during the takeover
	delete(held, first)
	step("survivor failed")
	second := holder()
	if second == "" || second == first || p.Claim.Epoch != 3 {
		t.Fatalf("no second takeover: %s", heldString(held))
	}
	ms[0].State = duty.Alive // the origin returns, its log behind the cursor
	p.OriginEnd = 0
	step("origin back, behind")
	if holder() != second {
		t.Fatalf("handed back before the origin caught up: %s", heldString(held))
	}
	p.OriginEnd = cursor
	step("origin caught up")
	if holder() != "n1" || p.Claim.Epoch != 4 {
		t.Fatalf("no hand-back: %s, claim %+v", heldString(held), p.Claim)
	}
}

func member2idx(id string) int {
	var i int
	fmt.Sscanf(id, "n%d", &i)
	return i - 1
}

func TestFresh(t *testing.T) {
	resumed := time.Now()
	ms := members("a", "a", "f")
	if !duty.Fresh(resumed, "n1", ms, map[string]time.Time{"n2": resumed.Add(500 * time.Millisecond)}) {
		t.Fatal("a copy caught up since is not fresh")
	}
	if duty.Fresh(resumed, "n1", ms, map[string]time.Time{"n2": resumed.Add(-20 * time.Second)}) {
		t.Fatal("a copy last caught up before a 20 s pause is fresh")
	}
	if duty.Fresh(resumed, "n1", ms, nil) {
		t.Fatal("an alive peer never caught up is fresh")
	}
	if !duty.Fresh(resumed, "n1", members("a", "f", "l"), nil) {
		t.Fatal("alone on the site is not fresh")
	}
}
