package mqtt

import (
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"
)

// runnel: MQTT 5 outbound flow control (Receive Maximum), replacing v2.7.9's.
//
// v2.7.9 parked a QoS 1/2 delivery that found no send quota in the inflight
// map with Expiry -1 and sent one parked packet after each packet the client
// sent (processPacket → NextImmediate). That path deadlocked (NextImmediate
// read-locks the map and calls GetAll, which read-locks it again: a Set
// queued in between blocks both for good), lost quota (a packet sent from
// the park was deleted from the map, so its PUBACK found nothing and did not
// return the quota: the subscriber stalled after Receive Maximum parked
// messages), reordered (parked packets were sorted by Created, in seconds),
// and gave send quota back on inbound PUBREL.
//
// Here, as MQTT 5 §4.9 says: the quota is taken when a QoS 1/2 PUBLISH is
// sent and given back when its flow ends: PUBACK, PUBCOMP, PUBREC with a
// reason code of 0x80 or more (or expiry, or a full outbound queue). Each id
// remembers whether it holds a unit of quota (Inflight.took), so an id is
// never charged twice (a delivery queued while a resumed session resends)
// nor credited twice (a PUBCOMP after the entry expired). A delivery that
// finds no quota, or finds others already parked, waits in a FIFO; each
// returned unit releases the oldest into the client's outbound queue, under
// the inflight lock so releases from different goroutines keep FIFO order.
// A parked delivery stays in the inflight map (it is part of the session,
// and expires or is cleared like any other inflight message).

// parkedQueue is a FIFO of parked packet ids. An entry is live while
// live[id] holds its sequence number (an id removed and reused in between
// leaves a stale entry, skipped).
type parkedQueue struct {
	fifo []parkedEntry
	live map[uint16]uint64
	seq  uint64
}

type parkedEntry struct {
	id  uint16
	seq uint64
}

func (q *parkedQueue) push(id uint16) {
	if q.live == nil {
		q.live = make(map[uint16]uint64)
	}
	q.seq++
	q.live[id] = q.seq
	q.fifo = append(q.fifo, parkedEntry{id, q.seq})
}

// remove drops id and reports whether it was parked.
func (q *parkedQueue) remove(id uint16) bool {
	if _, ok := q.live[id]; !ok {
		return false
	}
	delete(q.live, id)
	if len(q.live) == 0 {
		q.fifo = nil
	}
	return true
}

func (q *parkedQueue) len() int { return len(q.live) }

// pop returns the oldest live parked id.
func (q *parkedQueue) pop() (uint16, bool) {
	for len(q.fifo) > 0 {
		e := q.fifo[0]
		q.fifo = q.fifo[1:]
		if q.live[e.id] == e.seq {
			delete(q.live, e.id)
			return e.id, true
		}
	}
	return 0, false
}

// limited reports whether the client announced a Receive Maximum.
func (i *Inflight) limited() bool { return atomic.LoadInt32(&i.maximumSendQuota) > 0 }

// takeOrParkLocked charges one unit of send quota to publish id (true: send
// it now) or parks it behind any already parked (false). An id that already
// holds quota is not charged again. i must be locked.
func (i *Inflight) takeOrParkLocked(id uint16) bool {
	if !i.limited() {
		return true
	}
	if i.took[id] {
		return true
	}
	if i.parked.len() == 0 && atomic.LoadInt32(&i.sendQuota) > 0 {
		i.charge(id)
		return true
	}
	i.parked.push(id)
	return false
}

func (i *Inflight) charge(id uint16) {
	atomic.AddInt32(&i.sendQuota, -1)
	if i.took == nil {
		i.took = make(map[uint16]bool)
	}
	i.took[id] = true
}

// SetOrPark stores the outbound publish m (a new packet id) and reports
// whether it may be sent now (charged one unit of send quota) or was
// parked. isNew is false when m replaced a packet with the same id.
func (i *Inflight) SetOrPark(m packets.Packet) (isNew, sendNow bool) {
	i.Lock()
	defer i.Unlock()
	_, exists := i.internal[m.PacketID]
	i.forgetLocked(m.PacketID)
	i.putOutLocked(m.PacketID, m)
	i.nextSeq++
	if i.seq == nil {
		i.seq = make(map[uint16]uint64)
	}
	i.seq[m.PacketID] = i.nextSeq
	return !exists, i.takeOrParkLocked(m.PacketID)
}

// resendCharge decides, for a session being resumed, whether the stored
// packet tk is written now. A publish is charged or parked like a new one
// (parked ones are marked DUP: they may have been sent on the old
// connection); one that already holds quota was queued since the session
// resumed and is not written twice. A PUBREL (the client awaits it, it
// cannot wait) is charged when quota is left and written regardless.
func (i *Inflight) resendCharge(tk packets.Packet) (write bool) {
	i.Lock()
	defer i.Unlock()
	switch {
	case !i.limited():
		return true
	case tk.FixedHeader.Type == packets.Publish:
		if i.took[tk.PacketID] {
			return false
		}
		if !i.takeOrParkLocked(tk.PacketID) {
			if m, ok := i.internal[tk.PacketID]; ok {
				m.FixedHeader.Dup = true
				i.internal[tk.PacketID] = m
			}
			return false
		}
		return true
	case tk.FixedHeader.Type == packets.Pubrel:
		if !i.took[tk.PacketID] && atomic.LoadInt32(&i.sendQuota) > 0 {
			i.charge(tk.PacketID)
		}
		return true
	}
	return true
}

// forgetLocked removes id from the flow-control state and reports whether
// its removal gives a unit of send quota back: it was not parked, and it
// holds quota (or, for an entry stored without SetOrPark, is not the state
// of an inbound QoS 2 flow, as v2.7.9 counted).
func (i *Inflight) forgetLocked(id uint16) (credit bool) {
	m, ok := i.internal[id]
	parked := i.parked.remove(id)
	took, tracked := i.took[id]
	delete(i.took, id)
	delete(i.seq, id)
	if !ok || parked {
		return false
	}
	if tracked {
		return took
	}
	t := m.FixedHeader.Type
	return t != packets.Pubrec && t != packets.Pubcomp && !(t == packets.Publish && m.FixedHeader.Qos == 0)
}

// completeOutbound ends the outbound flow of packet id (acknowledged,
// refused, expired or dropped): it deletes the entry, gives its send quota
// back if it held one, and queues the parked publishes that quota releases.
// It reports whether the entry existed.
func (cl *Client) completeOutbound(id uint16) bool {
	i := cl.State.Inflight
	i.Lock()
	defer i.Unlock()
	_, ok := i.internal[id]
	credit := i.forgetLocked(id)
	i.delOutLocked(id)
	if credit && atomic.LoadInt32(&i.sendQuota) < atomic.LoadInt32(&i.maximumSendQuota) {
		atomic.AddInt32(&i.sendQuota, 1)
	}
	for atomic.LoadInt32(&i.sendQuota) > 0 {
		pid, more := i.parked.pop()
		if !more {
			break
		}
		pk, ok := i.internal[pid]
		if !ok {
			continue
		}
		i.charge(pid)
		if cl.Closed() {
			continue // stays inflight, holding quota: resent when the session resumes
		}
		// Queued under the inflight lock: releases from several goroutines
		// (acks, expiry, a full queue) keep FIFO order on the wire. The
		// outQueue lock takes no other lock.
		cl.State.outbound.pushForce(&pk)
		atomic.AddInt32(&cl.State.outboundQty, 1)
	}
	return ok
}

// Parked is the number of publishes waiting for send quota.
func (i *Inflight) Parked() int {
	i.RLock()
	defer i.RUnlock()
	return i.parked.len()
}
