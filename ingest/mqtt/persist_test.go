package mqtt

import (
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestSessionsAndRetainedSurviveRestart: a retained message and a
// persistent subscription outlive the broker; messages published while the
// subscriber was away are delivered when it returns.
func TestSessionsAndRetainedSurviveRestart(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(map[byte]string{4: "v3.1.1", 5: "v5"}[v], func(t *testing.T) {
			l := newMemLog(t)
			b1, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
			pub := dialRaw(t, addr)
			pub.connect(4, "pub", "", "")
			pk := publishPacket("status/pump", 1, 1, []byte("running"))
			pk.FixedHeader.Retain = true
			pub.send(pk)
			pub.read(5 * time.Second)

			sub := dialRaw(t, addr)
			sub.connectSession(v, "durable-sub", "", "", false)
			sub.subscribe("alarms/#", 1)
			sub.send(sub.disconnectPacket())
			if err := b1.Close(); err != nil {
				t.Fatal(err)
			}
			if b1.Stats().PersistWrites == 0 {
				t.Fatal("nothing persisted")
			}

			_, addr2 := startBroker(t, Options{Log: l, AllowAnonymous: true})
			late := dialRaw(t, addr2)
			late.connect(4, "late", "", "")
			late.subscribe("status/#", 0)
			if got := late.readPublish(5 * time.Second); string(got.Payload) != "running" || !got.FixedHeader.Retain {
				t.Fatalf("retained after restart: %q retain %v", got.Payload, got.FixedHeader.Retain)
			}
			pub2 := dialRaw(t, addr2)
			pub2.connect(4, "pub2", "", "")
			pub2.send(publishPacket("alarms/high", 1, 1, []byte("overpressure")))
			pub2.read(5 * time.Second)

			back := dialRaw(t, addr2)
			ack := back.connectSession(v, "durable-sub", "", "", false)
			if !ack.SessionPresent {
				t.Fatal("session not present after restart")
			}
			if got := back.readPublish(5 * time.Second); got.TopicName != "alarms/high" || string(got.Payload) != "overpressure" {
				t.Fatalf("queued message: %q %q", got.TopicName, got.Payload)
			}
		})
	}
}

func (c *rawClient) disconnectPacket() packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}}
}
