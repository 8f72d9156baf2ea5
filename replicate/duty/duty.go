// Package duty decides which node of a site forwards each origin
// partition upstream: its origin while it is alive, else one survivor
// holding an in-sync copy, and back to the origin when it returns. It is
// pure logic: the caller passes what it knows (members and their states,
// the copies of each partition, the highest duty claim found in the
// cursor logs, see forward.CursorView) and gets decisions; it does no I/O
// and keeps no state, so every node that knows the same computes the
// same.
//
// # Rules
//
// The owner of an origin partition (Owner) is:
//   - the origin, while it is alive;
//   - else the holder of the highest claim, while it is alive, holds an
//     in-sync copy and has not released (no needless moves between
//     survivors);
//   - else the alive member with an in-sync copy and the origin's route
//     configuration (RoutesHash, when both are known) that ranks highest
//     by rendezvous hash of (origin, topic, partition, member); ties go to
//     the lower node id;
//   - else nobody (the data waits in the copies and the origin's log).
//
// A node acts on its part (Decide):
//   - it holds the duty and a claim above its own exists: Drop (fenced:
//     someone took it while this node was paused or cut off; it stops at
//     once, and the overlap is counted);
//   - it holds the duty and its view is not fresh (View.Fresh): Drop
//     until it is (a node back from a pause learns what happened before
//     it sends again);
//   - it holds the duty and is not the owner: Release once the owner can
//     go on from where it stands (the origin's log reaches this node's
//     cursor: Partition.OriginEnd), else Keep;
//   - it is the owner and does not hold it: Take, at the highest claim's
//     epoch + 1, when its view is fresh and the highest claim is its own,
//     released, or held by a member not alive; else Wait (the holder
//     releases first, so two live nodes do not forward at once);
//   - otherwise Keep or None.
//
// Epochs only grow: every Take writes a claim one above the highest
// known, through the cursor log that replication mirrors, so a node's
// claim reaches every node that holds its copies; claims are ordered by
// (epoch, node id). Forwarding resumes from the furthest acknowledged
// cursor known (the forwarder starts a duty at the larger of its own and
// the replicated cursor).
//
// # Caveats
//
// Views differ while gossip converges and cursor logs are mirrored: two
// nodes can both decide Take (for example both sides of a network split),
// so two nodes may forward one partition for a while. The higher claim
// wins as soon as the other sees it, the records stay deduplicable on the
// origin headers, and every such Drop is reported as an overlap. A split
// that keeps a node from its peers but not from the upstream makes both
// forward until it heals.
package duty

import (
	"encoding/binary"
	"hash/fnv"
	"io"
	"slices"
	"sort"
	"time"

	"github.com/runnel/runnel/sync/forward"
)

// State is a member's state as gossip reports it (the values of
// replicate/member.State).
type State string

// Member states; only Alive members forward.
const (
	Alive   State = "alive"
	Leaving State = "leaving"
	Left    State = "left"
	Failed  State = "failed"
)

// Member is one node of the site.
type Member struct {
	ID    string
	State State
	// Routes is the node's forward.RoutesHash; "" = unknown.
	Routes string
}

// View is what this node knows of the site.
type View struct {
	// Self is this node's id.
	Self string
	// Members lists every known node, Self included. A node not listed
	// counts as not alive.
	Members []Member
	// Fresh: this node's view of the claims can be acted on (its copies
	// of the cursor logs of every alive member caught up since it started
	// or resumed, see Fresh); without it this node takes nothing and
	// drops what it holds.
	Fresh bool
}

func (v *View) member(id string) (Member, bool) {
	for _, m := range v.Members {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

func (v *View) alive(id string) bool {
	m, ok := v.member(id)
	return ok && m.State == Alive
}

// Partition is what this node knows of one origin partition.
type Partition struct {
	Key forward.DutyKey
	// Copies are the nodes other than the origin that hold an in-sync
	// copy (the in-sync set the origin last announced).
	Copies []string
	// Claim is the highest claim found in the cursor logs; Claimed is
	// false when none was.
	Claim   forward.Claim
	Claimed bool
	// OriginEnd is the origin's log end as this node last learned it
	// (from fetching its copy); -1 = unknown. A holder hands the duty
	// back once it reaches the holder's cursor.
	OriginEnd int64
}

// Held is a duty this node forwards now.
type Held struct {
	Epoch uint64
	// Cursor is how far this node forwarded: the largest next offset of
	// its routes.
	Cursor int64
}

// Action is what a node does about one origin partition.
type Action uint8

const (
	// None: another node's duty.
	None Action = iota
	// Keep forwarding at Epoch.
	Keep
	// Take: write a claim at Epoch, then forward.
	Take
	// Release: stop forwarding; once stopped and the cursors saved, write
	// a release of Epoch.
	Release
	// Drop: stop forwarding at once and write nothing (fenced, or a stale
	// view).
	Drop
	// Wait: this node's to take, not yet (the holder has not released, or
	// the view is stale).
	Wait
)

func (a Action) String() string {
	return [...]string{"none", "keep", "take", "release", "drop", "wait"}[a]
}

// Reason says why.
type Reason string

const (
	ReasonOwn        Reason = "own"        // the origin forwards its own partition
	ReasonTakeover   Reason = "takeover"   // a survivor forwards a node that is not alive
	ReasonHandBack   Reason = "hand-back"  // the origin takes its duty back
	ReasonFenced     Reason = "fenced"     // a higher claim exists
	ReasonStale      Reason = "stale view" // cursor log copies not recent
	ReasonHolder     Reason = "holder has not released"
	ReasonCatchingUp Reason = "origin catching up"
	ReasonNoCopy     Reason = "no alive node holds an in-sync copy"
	ReasonOther      Reason = "another node's duty"
)

// Decision is a node's action on one origin partition.
type Decision struct {
	Key    forward.DutyKey
	Action Action
	// Epoch: Keep and Take forward under it; Release and Drop name the
	// epoch held.
	Epoch uint64
	// Owner is the node that should forward the partition in this view
	// ("" when none can).
	Owner string
	Why   Reason
}

// Score is the rendezvous hash of node for an origin partition.
func Score(k forward.DutyKey, node string) uint64 {
	h := fnv.New64a()
	io.WriteString(h, k.Origin)
	h.Write([]byte{0})
	io.WriteString(h, k.Topic)
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(k.Partition))
	h.Write(b[:])
	io.WriteString(h, node)
	return h.Sum64()
}

// Owner is the node that should forward p in view v ("" when none can)
// and why (see the package rules).
func Owner(v *View, p *Partition) (string, Reason) {
	o := p.Key.Origin
	if v.alive(o) {
		return o, ReasonOwn
	}
	eligible := func(id string) bool {
		if id == o || !v.alive(id) || !slices.Contains(p.Copies, id) {
			return false
		}
		om, ok1 := v.member(o)
		m, _ := v.member(id)
		return !ok1 || om.Routes == "" || m.Routes == "" || om.Routes == m.Routes
	}
	if p.Claimed && !p.Claim.Released && eligible(p.Claim.Node) {
		return p.Claim.Node, ReasonTakeover
	}
	best, bs := "", uint64(0)
	for _, id := range p.Copies {
		if !eligible(id) {
			continue
		}
		s := Score(p.Key, id)
		if best == "" || s > bs || s == bs && id < best {
			best, bs = id, s
		}
	}
	if best == "" {
		return "", ReasonNoCopy
	}
	return best, ReasonTakeover
}

// Decide is this node's action on p, given what it holds (nil: nothing).
func Decide(v *View, p *Partition, held *Held) Decision {
	owner, why := Owner(v, p)
	d := Decision{Key: p.Key, Owner: owner, Why: why}
	me := v.Self
	if held != nil {
		d.Epoch = held.Epoch
		mine := forward.Claim{Node: me, Epoch: held.Epoch}
		switch {
		case p.Claimed && mine.Less(p.Claim) && p.Claim.Node != me:
			d.Action, d.Why = Drop, ReasonFenced
		case p.Claimed && mine.Less(p.Claim):
			// This node claimed higher since (a claim written, not yet
			// forwarding under it): the caller catches up.
			d.Action, d.Why = Drop, ReasonStale
		case !v.Fresh:
			d.Action, d.Why = Drop, ReasonStale
		case owner == me:
			d.Action = Keep
		case owner == p.Key.Origin && (p.OriginEnd < 0 || p.OriginEnd < held.Cursor):
			d.Action, d.Why = Keep, ReasonCatchingUp
		default:
			d.Action = Release
			if owner == p.Key.Origin {
				d.Why = ReasonHandBack
			}
		}
		return d
	}
	if owner != me {
		d.Action = None
		if owner != "" {
			d.Why = ReasonOther
		}
		return d
	}
	if !v.Fresh {
		d.Action, d.Why = Wait, ReasonStale
		return d
	}
	c := p.Claim
	if p.Claimed && !c.Released && c.Node != me && v.alive(c.Node) {
		d.Action, d.Why = Wait, ReasonHolder
		return d
	}
	d.Action, d.Epoch = Take, 1
	if p.Claimed {
		d.Epoch = c.Epoch + 1
		if me == p.Key.Origin && c.Node != me {
			d.Why = ReasonHandBack
		}
	}
	return d
}

// Plan decides every partition of ps for this node, given what it holds,
// sorted by key.
func Plan(v *View, ps []Partition, held map[forward.DutyKey]Held) []Decision {
	out := make([]Decision, 0, len(ps))
	for i := range ps {
		var h *Held
		if x, ok := held[ps[i].Key]; ok {
			h = &x
		}
		out = append(out, Decide(v, &ps[i], h))
	}
	sort.Slice(out, func(i, j int) bool { return keyLess(out[i].Key, out[j].Key) })
	return out
}

func keyLess(a, b forward.DutyKey) bool {
	if a.Origin != b.Origin {
		return a.Origin < b.Origin
	}
	if a.Topic != b.Topic {
		return a.Topic < b.Topic
	}
	return a.Partition < b.Partition
}

// Fresh reports whether a view built from copies of the cursor logs can
// be acted on: every alive member but self has its cursor log copy caught
// up (caughtUp[member]: when this node's copy last held everything that
// member had written) at or after since. The caller sets since when its
// view may have missed something (at start, and after a pause of the
// node: SIGSTOP, a hung disk), so a node learns what happened meanwhile
// (a takeover, a higher claim) before it forwards again. Members not
// alive are not waited for.
func Fresh(since time.Time, self string, members []Member, caughtUp map[string]time.Time) bool {
	for _, m := range members {
		if m.ID == self || m.State != Alive {
			continue
		}
		t, ok := caughtUp[m.ID]
		if !ok || t.Before(since) {
			return false
		}
	}
	return true
}
