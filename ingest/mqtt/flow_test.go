package mqtt

import (
	"strconv"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// connectV5 connects an MQTT 5 raw client announcing Receive Maximum
// recvMax; a non-clean one gets a one-hour session expiry.
func connectV5(t *testing.T, addr, id string, recvMax uint16, clean bool) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	c.v = 5
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 5,
		Connect:         packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: id, Clean: clean, Keepalive: 30},
	}
	pk.Properties.ReceiveMaximum = recvMax
	if !clean {
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = 3600, true
	}
	c.send(pk)
	if ack := c.read(5 * time.Second); ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		t.Fatalf("CONNACK: %+v", ack)
	}
	return c
}

// TestReceiveMaximum: an MQTT 5 subscriber that announces Receive Maximum 3
// never has more than 3 unacknowledged QoS 1 or QoS 2 deliveries; the rest
// wait on the broker and arrive, in publish order, as the subscriber
// completes earlier ones (PUBACK for QoS 1, PUBCOMP for QoS 2). With
// mochi v2.7.9's flow control this stalled or deadlocked; with it turned
// off, all 20 deliveries arrived at once.
func TestReceiveMaximum(t *testing.T) {
	const n, recvMax = 20, 3
	for _, qos := range []byte{1, 2} {
		t.Run("qos"+strconv.Itoa(int(qos)), func(t *testing.T) {
			_, addr := startBroker(t, Options{Log: newMemLog(t), AllowAnonymous: true})
			sub := connectV5(t, addr, "flow-sub", recvMax, true)
			sub.subscribe("flow/#", qos)

			pub := dialRaw(t, addr)
			pub.connect(5, "flow-pub", "", "")
			for i := range n {
				pub.send(publishPacket("flow/x", qos, uint16(i+1), []byte(strconv.Itoa(i))))
			}

			var outstanding []uint16 // delivered, not yet completed
			next := 0                // payload expected next
			silent := false          // checked that nothing comes past the quota
			for next < n || len(outstanding) > 0 {
				if len(outstanding) == recvMax || (next == n && len(outstanding) > 0) {
					if !silent && len(outstanding) == recvMax {
						if pk, err := sub.tryRead(300 * time.Millisecond); err == nil {
							t.Fatalf("packet type %d arrived with %d deliveries unacknowledged (Receive Maximum %d)", pk.FixedHeader.Type, recvMax, recvMax)
						}
						silent = true
					}
					id := outstanding[0]
					outstanding = outstanding[1:]
					if qos == 1 {
						sub.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id})
						continue
					}
					sub.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: id})
					if rel := sub.read(5 * time.Second); rel.FixedHeader.Type != packets.Pubrel || rel.PacketID != id {
						t.Fatalf("after PUBREC %d: got type %d id %d, want PUBREL", id, rel.FixedHeader.Type, rel.PacketID)
					}
					sub.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubcomp}, PacketID: id})
					continue
				}
				pk := sub.read(5 * time.Second)
				if pk.FixedHeader.Type != packets.Publish {
					continue // the publisher's acks go to pub, not here
				}
				if got := string(pk.Payload); got != strconv.Itoa(next) {
					t.Fatalf("delivery %d: payload %q (out of order)", next, got)
				}
				if pk.FixedHeader.Qos != qos {
					t.Fatalf("delivery %d at QoS %d, want %d", next, pk.FixedHeader.Qos, qos)
				}
				next++
				outstanding = append(outstanding, pk.PacketID)
			}
			if !silent {
				t.Fatal("never reached the Receive Maximum")
			}
			// Nothing more: every delivery was completed once.
			if pk, err := sub.tryRead(200 * time.Millisecond); err == nil {
				t.Fatalf("unexpected packet type %d after all deliveries", pk.FixedHeader.Type)
			}
		})
	}
}
