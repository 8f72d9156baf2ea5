package mqtt

import (
	"sort"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Outbound flow control for MQTT 5 subscribers.
//
// When a subscriber's Receive Maximum is reached, mochi v2.7.9 parks
// further QoS 1/2 deliveries in the client's inflight map (Expiry -1) and
// sends one each time the client sends a packet. That path has two bugs
// that make a busy MQTT 5 subscriber stall or reorder:
//
//   - a parked message is deleted from the inflight map when sent, so its
//     PUBACK is "unknown" and never returns the send quota: after Receive
//     Maximum such messages the subscriber gets nothing more (a QoS 2 one
//     gets PUBREL 0x92 instead);
//   - parked messages are sent sorted by uint16(Created), a time in
//     seconds, so those parked in the same second go out in random order.
//
// The broker takes the parked path over from OnPacketRead, before mochi
// processes the acknowledgement: when a PUBACK or PUBCOMP frees a slot and
// messages are parked, the slot passes directly to the oldest parked message
// (lowest packet id, wrap-aware: ids are assigned in delivery order), which
// is written at once and stays tracked in the inflight map; the ack is then
// handed to mochi as a no-op, so the send quota stays at zero while messages
// are parked and new deliveries keep parking behind them, in order. An
// unknown PUBACK (a message mochi itself sent from the parked set) returns
// its quota, and an unknown PUBREC gets a placeholder so its QoS 2 flow
// completes normally.
func (b *Broker) fixOutbound(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if cl.Properties.ProtocolVersion != 5 || cl.Properties.Props.ReceiveMaximum == 0 {
		return pk // no send quota: mochi never parks messages
	}
	inf := cl.State.Inflight
	switch pk.FixedHeader.Type {
	case packets.Puback:
		if _, ok := inf.Get(pk.PacketID); !ok {
			inf.IncreaseSendQuota()
			return pk
		}
	case packets.Pubrec:
		if _, ok := inf.Get(pk.PacketID); !ok {
			inf.Set(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2}, PacketID: pk.PacketID})
		}
		return pk
	case packets.Pubcomp:
	default:
		return pk
	}
	next, ok := oldestParked(inf)
	if !ok {
		return pk // nothing parked: mochi returns the quota as usual
	}
	// The acked message's slot goes to the oldest parked one.
	if inf.Delete(pk.PacketID) {
		atomic.AddInt64(&b.server.Info.Inflight, -1)
		if b.persist != nil {
			b.persist.onQosDone(cl, pk)
		}
	}
	if pk.FixedHeader.Type == packets.Pubcomp {
		inf.IncreaseReceiveQuota() // as processPubcomp would
	}
	next.Expiry = 0
	inf.Set(next)
	if err := cl.WritePacket(next); err != nil {
		b.log.Debug("mqtt: send parked message", "client", cl.ID, "error", err)
	}
	// mochi sees an ack for packet id 0, which is never in use: a no-op.
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ProtocolVersion: pk.ProtocolVersion}
}

// oldestParked returns the parked message with the oldest packet id.
func oldestParked(inf *mqtt.Inflight) (packets.Packet, bool) {
	parked := inf.GetAll(true)
	if len(parked) == 0 {
		return packets.Packet{}, false
	}
	if len(parked) == 1 {
		return parked[0], true
	}
	sort.Slice(parked, func(i, j int) bool { return parked[i].PacketID < parked[j].PacketID })
	// Ids wrap at 65535: the oldest follows the largest gap between
	// neighbours (counting the gap across the wrap).
	start, gap := 0, int(parked[0].PacketID)+65536-int(parked[len(parked)-1].PacketID)
	for i := 1; i < len(parked); i++ {
		if d := int(parked[i].PacketID) - int(parked[i-1].PacketID); d > gap {
			start, gap = i, d
		}
	}
	return parked[start], true
}

// OnPacketRead applies the outbound flow-control repair (see fixOutbound).
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubrec, packets.Pubcomp:
		return h.b.fixOutbound(cl, pk), nil
	}
	return pk, nil
}
