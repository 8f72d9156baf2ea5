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
// sent and given back on PUBACK, PUBCOMP, or PUBREC with a reason code of
// 0x80 or more. A delivery that finds no quota, or finds others already
// parked, is parked in a FIFO (order is kept); each returned quota releases
// the oldest parked delivery into the client's outbound queue. A parked
// delivery stays in the inflight map (so it is part of the session, and
// expires or is cleared like any other inflight message).

// parkedQueue is a FIFO of parked packet ids. An entry is live while
// live[id] holds its sequence number (an id deleted and reused in between
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

func (q *parkedQueue) remove(id uint16) {
	delete(q.live, id)
	if len(q.live) == 0 {
		q.fifo = nil
	}
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

// SetOrPark stores the outbound publish m (a new packet id) and reports
// whether it may be sent now (taking one send quota) or was parked.
// isNew is false when m replaced a packet with the same id.
func (i *Inflight) SetOrPark(m packets.Packet) (isNew, sendNow bool) {
	i.Lock()
	defer i.Unlock()
	_, exists := i.internal[m.PacketID]
	i.internal[m.PacketID] = m
	i.parked.remove(m.PacketID)
	return !exists, i.takeOrParkLocked(m.PacketID)
}

// takeOrPark takes one send quota for the stored publish id (true: send
// it now) or parks it behind any already parked (false).
func (i *Inflight) takeOrPark(id uint16) bool {
	i.Lock()
	defer i.Unlock()
	return i.takeOrParkLocked(id)
}

func (i *Inflight) takeOrParkLocked(id uint16) bool {
	if atomic.LoadInt32(&i.maximumSendQuota) <= 0 {
		return true // no Receive Maximum to honour (MQTT 3, or unlimited)
	}
	if i.parked.len() == 0 && atomic.LoadInt32(&i.sendQuota) > 0 {
		atomic.AddInt32(&i.sendQuota, -1)
		return true
	}
	i.parked.push(id)
	return false
}

// ReleaseSendQuota gives one send quota back and returns the parked
// publishes that may now be sent, oldest first (each has taken its quota).
func (i *Inflight) ReleaseSendQuota() []packets.Packet {
	i.Lock()
	defer i.Unlock()
	if atomic.LoadInt32(&i.sendQuota) < atomic.LoadInt32(&i.maximumSendQuota) {
		atomic.AddInt32(&i.sendQuota, 1)
	}
	var out []packets.Packet
	for atomic.LoadInt32(&i.sendQuota) > 0 {
		id, ok := i.parked.pop()
		if !ok {
			break
		}
		pk, ok := i.internal[id]
		if !ok {
			continue
		}
		atomic.AddInt32(&i.sendQuota, -1)
		out = append(out, pk)
	}
	return out
}

// Parked is the number of publishes waiting for send quota.
func (i *Inflight) Parked() int {
	i.RLock()
	defer i.RUnlock()
	return i.parked.len()
}

// releaseSendQuota returns one send quota of cl and queues the parked
// publishes it releases. They are already in memory (the inflight map), so
// the outbound queue's bound does not apply to them.
func (cl *Client) releaseSendQuota() {
	for _, pk := range cl.State.Inflight.ReleaseSendQuota() {
		pk := pk // this module is go 1.21: one loop variable for all iterations
		cl.State.outbound.pushForce(&pk)
		atomic.AddInt32(&cl.State.outboundQty, 1)
	}
}

// deleteSent deletes packet id and reports whether it was there and had
// been sent (not parked).
func (i *Inflight) deleteSent(id uint16) (ok, sent bool) {
	i.Lock()
	defer i.Unlock()
	_, ok = i.internal[id]
	_, parked := i.parked.live[id]
	delete(i.internal, id)
	i.parked.remove(id)
	return ok, ok && !parked
}
