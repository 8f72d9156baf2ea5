package mqtt

import (
	"strconv"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestReceiveMaximumAcrossReconnect: deliveries still unacknowledged (and
// still parked) when a persistent-session subscriber disconnects are resent
// on reconnect within its Receive Maximum, oldest first, and the rest follow
// in order as it acknowledges.
func TestReceiveMaximumAcrossReconnect(t *testing.T) {
	const n, recvMax = 10, 3
	_, addr := startBroker(t, Options{Log: newMemLog(t), AllowAnonymous: true})
	connect := func() *rawClient { return connectV5(t, addr, "flow-persist", recvMax, false) }
	// readN reads exactly k publishes, then checks nothing more comes.
	readN := func(c *rawClient, k int) []packets.Packet {
		t.Helper()
		var got []packets.Packet
		for len(got) < k {
			if pk := c.read(5 * time.Second); pk.FixedHeader.Type == packets.Publish {
				got = append(got, pk)
			}
		}
		if pk, err := c.tryRead(300 * time.Millisecond); err == nil {
			t.Fatalf("packet type %d arrived past the Receive Maximum", pk.FixedHeader.Type)
		}
		return got
	}
	sub := connect()
	sub.subscribe("flow/#", 1)
	pub := dialRaw(t, addr)
	pub.connect(5, "flow-pub2", "", "")
	for i := range n {
		pub.send(publishPacket("flow/y", 1, uint16(i+1), []byte(strconv.Itoa(i))))
	}
	first := readN(sub, recvMax)
	for i, pk := range first {
		if string(pk.Payload) != strconv.Itoa(i) || pk.FixedHeader.Dup {
			t.Fatalf("first delivery %d: payload %q dup %v", i, pk.Payload, pk.FixedHeader.Dup)
		}
	}
	sub.c.Close()

	sub = connect()
	resent := readN(sub, recvMax)
	next := 0
	for _, pk := range resent {
		if string(pk.Payload) != strconv.Itoa(next) || !pk.FixedHeader.Dup {
			t.Fatalf("resent delivery: payload %q dup %v, want %d with DUP", pk.Payload, pk.FixedHeader.Dup, next)
		}
		next++
	}
	outstanding := []uint16{resent[0].PacketID, resent[1].PacketID, resent[2].PacketID}
	for next < n {
		sub.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: outstanding[0]})
		outstanding = outstanding[1:]
		pk := sub.read(5 * time.Second)
		if pk.FixedHeader.Type != packets.Publish || string(pk.Payload) != strconv.Itoa(next) {
			t.Fatalf("after an ack: type %d payload %q, want publish %d", pk.FixedHeader.Type, pk.Payload, next)
		}
		outstanding = append(outstanding, pk.PacketID)
		if len(outstanding) > recvMax {
			t.Fatalf("%d unacknowledged", len(outstanding))
		}
		next++
	}
}

// TestPublisherSubscriberSharedIDs: one MQTT 5 client publishes at QoS 2 to
// a topic it subscribes to at QoS 1 (Receive Maximum 3), so its own packet
// ids and the server's collide all the time. Every QoS 2 flow completes
// with success, and every delivery arrives once, in order: the server
// keeps inbound and outbound flows apart (third_party/mochi inbound.go).
func TestPublisherSubscriberSharedIDs(t *testing.T) {
	const n = 40
	_, addr := startBroker(t, Options{Log: newMemLog(t), AllowAnonymous: true})
	c := connectV5(t, addr, "loop", 3, true)
	c.subscribe("loop/#", 1)
	for i := range n {
		c.send(publishPacket("loop/x", 2, uint16(i+1), []byte(strconv.Itoa(i))))
	}
	delivered, completed := 0, 0
	deadline := time.Now().Add(20 * time.Second)
	for delivered < n || completed < n {
		if time.Now().After(deadline) {
			t.Fatalf("stalled: %d of %d delivered, %d of %d QoS 2 flows completed", delivered, n, completed, n)
		}
		pk := c.read(5 * time.Second)
		switch pk.FixedHeader.Type {
		case packets.Publish:
			if string(pk.Payload) != strconv.Itoa(delivered) {
				t.Fatalf("delivery %d: payload %q", delivered, pk.Payload)
			}
			delivered++
			c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
		case packets.Pubrec:
			if pk.ReasonCode >= 0x80 {
				t.Fatalf("PUBREC %d reason 0x%x", pk.PacketID, pk.ReasonCode)
			}
			c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: pk.PacketID})
		case packets.Pubcomp:
			if pk.ReasonCode != 0 {
				t.Fatalf("PUBCOMP %d reason 0x%x: the server lost the QoS 2 flow", pk.PacketID, pk.ReasonCode)
			}
			completed++
		}
	}
}
