package mqtt

import (
	"github.com/mochi-mqtt/server/v2/packets"
)

// runnel: inbound and outbound flows in separate maps.
//
// Packet ids of PUBLISHes the client sends and of those the server sends
// are separate spaces (MQTT 5 §2.2.1), but v2.7.9 kept the state of both in
// one map keyed by id: an inbound QoS 1/2 publish whose id equalled an
// outbound flow's deleted or overwrote it (the server's PUBACK/PUBREC was
// stored under that id), losing the outbound message and, with flow
// control, its send quota. Inflight now keeps the server's acks of inbound
// flows (PUBACK, PUBREC, PUBCOMP) in their own map; Set routes by packet
// type, and the code handling inbound packets uses the methods below.

// mapFor is the map that holds packets of type t. i must be locked.
func (i *Inflight) mapFor(t byte) map[uint16]packets.Packet {
	switch t {
	case packets.Puback, packets.Pubrec, packets.Pubcomp:
		if i.inbound == nil {
			i.inbound = make(map[uint16]packets.Packet)
		}
		return i.inbound
	}
	return i.internal
}

// GetInbound returns the state of the inbound flow with client packet id.
func (i *Inflight) GetInbound(id uint16) (packets.Packet, bool) {
	i.RLock()
	defer i.RUnlock()
	m, ok := i.inbound[id]
	return m, ok
}

// GetOutbound returns the state of the outbound flow with server packet id.
func (i *Inflight) GetOutbound(id uint16) (packets.Packet, bool) {
	i.RLock()
	defer i.RUnlock()
	m, ok := i.internal[id]
	return m, ok
}

// DeleteInbound ends the inbound flow with client packet id.
func (i *Inflight) DeleteInbound(id uint16) bool {
	i.Lock()
	defer i.Unlock()
	return i.deleteInboundLocked(id)
}

func (i *Inflight) deleteInboundLocked(id uint16) bool {
	_, ok := i.inbound[id]
	delete(i.inbound, id)
	return ok
}

// deleteEntry deletes the flow m belongs to (by its type).
func (i *Inflight) deleteEntry(m packets.Packet) bool {
	switch m.FixedHeader.Type {
	case packets.Puback, packets.Pubrec, packets.Pubcomp:
		return i.DeleteInbound(m.PacketID)
	}
	return i.Delete(m.PacketID)
}
