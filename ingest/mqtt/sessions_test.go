package mqtt

import (
	"fmt"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestSessionCap: at MaxSessions a new client id drops the persistent
// session disconnected longest ago (its subscriptions leave the topic
// index), a returning client id never counts twice, and when every
// session held is connected a new one is refused: CONNACK 0x03 (MQTT
// 3.1.1) or 0x97 quota exceeded (MQTT 5). 100,000 persistent sessions took
// 613 MB with no cap.
func TestSessionCap(t *testing.T) {
	l := newMemLog(t)
	b, addr := startBroker(t, Options{Log: l, AllowAnonymous: true, MaxSessions: 3})
	away := func(id string, filter string) {
		c := dialRaw(t, addr)
		if ack := c.connectSession(4, id, "", "", false); ack.ReasonCode != 0 {
			t.Fatalf("%s: CONNACK %#x", id, ack.ReasonCode)
		}
		c.subscribe(filter, 1)
		c.c.Close()
		waitFor(t, 5*time.Second, id+" away", func() bool {
			cl, ok := b.server.Clients.Get(id)
			return ok && cl.StopTime() > 0
		})
	}
	away("oldest", "a/#")
	time.Sleep(1100 * time.Millisecond) // disconnect times are in seconds
	away("older", "b/#")
	c := dialRaw(t, addr)
	c.connectSession(4, "here", "", "", false)
	if n := b.Stats().Subscriptions; n != 2 {
		t.Fatalf("%d subscriptions, want 2", n)
	}

	// A fourth id: "oldest" goes, with its subscription.
	d := dialRaw(t, addr)
	if ack := d.connectSession(4, "new", "", "", false); ack.ReasonCode != 0 {
		t.Fatalf("new: CONNACK %#x", ack.ReasonCode)
	}
	if _, ok := b.server.Clients.Get("oldest"); ok {
		t.Fatal(`"oldest" still held at the cap`)
	}
	if _, ok := b.server.Clients.Get("older"); !ok {
		t.Fatal(`"older" dropped instead of "oldest"`)
	}
	st := b.Stats()
	if st.SessionsEvicted != 1 || st.Subscriptions != 1 || st.ClientsTotal != 3 {
		t.Fatalf("evicted %d, subscriptions %d, sessions %d; want 1, 1, 3", st.SessionsEvicted, st.Subscriptions, st.ClientsTotal)
	}

	// A held id comes back: it takes its own session over, nothing drops.
	e := dialRaw(t, addr)
	if ack := e.connectSession(4, "older", "", "", false); ack.ReasonCode != 0 || !ack.SessionPresent {
		t.Fatalf("older back: CONNACK %#x, session present %v", ack.ReasonCode, ack.SessionPresent)
	}
	if st := b.Stats(); st.SessionsEvicted != 1 {
		t.Fatalf("a returning client dropped a session (evicted %d)", st.SessionsEvicted)
	}

	// All three connected: a fourth is refused, and nothing is dropped.
	f := dialRaw(t, addr)
	if ack := f.connectSession(4, "late", "", "", false); ack.ReasonCode != 0x03 { // server unavailable
		t.Fatalf("3.1.1 client over the cap: CONNACK %#x, want 0x03", ack.ReasonCode)
	}
	g := dialRaw(t, addr)
	if ack := g.connectSession(5, "late5", "", "", true); ack.ReasonCode != packets.ErrQuotaExceeded.Code {
		t.Fatalf("MQTT 5 client over the cap: CONNACK %#x, want 0x97", ack.ReasonCode)
	}
	if st := b.Stats(); st.SessionsEvicted != 1 || st.ClientsTotal != 3 {
		t.Fatalf("after refusals: evicted %d, sessions %d", st.SessionsEvicted, st.ClientsTotal)
	}

	// A lower cap after a restart: the sessions the restart loaded beyond
	// it go at the next new client id, and stay gone from the store.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2, addr2 := startBroker(t, Options{Log: l, AllowAnonymous: true, MaxSessions: 1})
	if n := b2.Stats().ClientsTotal; n != 3 {
		t.Fatalf("%d sessions loaded, want 3", n)
	}
	if ack := dialRaw(t, addr2).connectSession(4, "x", "", "", false); ack.ReasonCode != 0 {
		t.Fatalf("x: CONNACK %#x", ack.ReasonCode)
	}
	if st := b2.Stats(); st.SessionsEvicted != 3 || st.ClientsTotal != 1 {
		t.Fatalf("cap 1 after restart: evicted %d, sessions %d; want 3, 1", st.SessionsEvicted, st.ClientsTotal)
	}
	if err := b2.Close(); err != nil {
		t.Fatal(err)
	}
	_, addr3 := startBroker(t, Options{Log: l, AllowAnonymous: true})
	if ack := dialRaw(t, addr3).connectSession(4, "older", "", "", false); ack.SessionPresent {
		t.Fatal(`"older", dropped, was still stored`)
	}
}

// TestSessionQueueBytes: the unacknowledged QoS 1 messages of sessions
// whose clients are away are capped in bytes, per session and for all
// sessions together (each session's copy counted); what does not fit is
// dropped for that session and counted, and acknowledged or discarded
// messages leave the count.
func TestSessionQueueBytes(t *testing.T) {
	const size = 1003 // "q/x" and 1,000 bytes of payload
	for _, tc := range []struct {
		name             string
		session, all     int
		subs, wantQueued int
	}{
		{"per session", 10_000, -1, 2, 2 * 9},
		{"all sessions", -1, 25_000, 3, 24},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, addr := startBroker(t, Options{Log: newMemLog(t), AllowAnonymous: true, MaxSessionQueueBytes: tc.session, MaxQueueBytes: tc.all})
			for i := range tc.subs {
				c := dialRaw(t, addr)
				c.connectSession(4, fmt.Sprintf("sub%d", i), "", "", false)
				c.subscribe("q/#", 1)
				c.send(c.disconnectPacket())
			}
			pub := dialRaw(t, addr)
			pub.connect(4, "pub", "", "")
			const n = 30
			for i := range n {
				pub.send(publishPacket("q/x", 1, uint16(i+1), make([]byte, 1000)))
			}
			for range n {
				if pk := pub.read(5 * time.Second); pk.FixedHeader.Type != packets.Puback || pk.ReasonCode != 0 {
					t.Fatalf("publish answered with type %d reason %#x", pk.FixedHeader.Type, pk.ReasonCode)
				}
			}
			want := int64(tc.wantQueued * size)
			waitFor(t, 5*time.Second, "fan-out", func() bool {
				st := b.Stats()
				return st.InflightDropped+st.QueuedBytes/size == int64(n*tc.subs)
			})
			if st := b.Stats(); st.QueuedBytes != want || st.InflightDropped != int64(n*tc.subs-tc.wantQueued) {
				t.Fatalf("queued %d bytes, dropped %d; want %d bytes, %d dropped", st.QueuedBytes, st.InflightDropped, want, n*tc.subs-tc.wantQueued)
			}

			// sub0 comes back and acknowledges what it was kept.
			back := dialRaw(t, addr)
			back.connectSession(4, "sub0", "", "", false)
			got := 0
			for {
				pk, err := back.tryRead(time.Second)
				if err != nil {
					break
				}
				if pk.FixedHeader.Type == packets.Publish {
					back.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
					got++
				}
			}
			if got == 0 || got > 9 {
				t.Fatalf("sub0 got %d queued messages", got)
			}
			waitFor(t, 5*time.Second, "acknowledged bytes leave the count", func() bool {
				return b.Stats().QueuedBytes == want-int64(got*size)
			})
			// The others come back clean: their sessions and queues go,
			// and nothing stays counted.
			for i := 1; i < tc.subs; i++ {
				dialRaw(t, addr).connect(4, fmt.Sprintf("sub%d", i), "", "")
			}
			waitFor(t, 5*time.Second, "discarded bytes leave the count", func() bool {
				return b.Stats().QueuedBytes == 0
			})
		})
	}

	// A session that holds nothing takes one message over its cap, so no
	// message is undeliverable; a second waits for room (dropped).
	t.Run("larger than the cap", func(t *testing.T) {
		b, addr := startBroker(t, Options{Log: newMemLog(t), AllowAnonymous: true, MaxSessionQueueBytes: 10_000, MaxPacketSize: 64 << 10})
		c := dialRaw(t, addr)
		c.connectSession(4, "sub", "", "", false)
		c.subscribe("q/#", 1)
		c.send(c.disconnectPacket())
		pub := dialRaw(t, addr)
		pub.connect(4, "pub", "", "")
		for i := range 2 {
			pub.send(publishPacket("q/x", 1, uint16(i+1), make([]byte, 15_000)))
			pub.read(5 * time.Second)
		}
		waitFor(t, 5*time.Second, "fan-out", func() bool { return b.Stats().InflightDropped == 1 })
		if q := b.Stats().QueuedBytes; q != 15_003 {
			t.Fatalf("queued %d bytes, want the first message's 15,003", q)
		}
	})
}

// TestSessionCapConcurrent: new client ids that connect at once never
// take the sessions held past the cap (admission is counted before the
// sessions are added).
func TestSessionCapConcurrent(t *testing.T) {
	const limit, n = 10, 40
	b, addr := startBroker(t, Options{Log: newMemLog(t), AllowAnonymous: true, MaxSessions: limit})
	codes := make(chan byte, n)
	for i := range n {
		c := dialRaw(t, addr)
		go func() {
			c.send(packets.Packet{
				FixedHeader:     packets.FixedHeader{Type: packets.Connect},
				ProtocolVersion: 4,
				Connect:         packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: fmt.Sprintf("c%d", i), Keepalive: 30},
			})
			pk, err := c.tryRead(5 * time.Second)
			if err != nil || pk.FixedHeader.Type != packets.Connack {
				codes <- 0xff
				return
			}
			codes <- pk.ReasonCode
		}()
	}
	accepted := 0
	for range n {
		switch code := <-codes; code {
		case 0:
			accepted++
		case 0x03:
		default:
			t.Fatalf("CONNACK %#x", code)
		}
	}
	if accepted != limit || b.Stats().ClientsTotal != limit {
		t.Fatalf("%d accepted, %d sessions held; want %d", accepted, b.Stats().ClientsTotal, limit)
	}
}

// TestTakeoverKeepsParkedQueueStored: a persistent session's queued
// messages that its returning client's Receive Maximum holds back (parked,
// not yet resent) stay in the store, so a restart before they are sent
// loses none. The takeover used to report every flow of the old session
// object dropped, and the store forgot the parked ones.
func TestTakeoverKeepsParkedQueueStored(t *testing.T) {
	l := newMemLog(t)
	b1, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
	connect5 := func(addr string, recvMax uint16) *rawClient {
		c := dialRaw(t, addr)
		c.v = 5
		pk := packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Connect},
			ProtocolVersion: 5,
			Connect:         packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: "sub", Keepalive: 30},
		}
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = 3600, true
		pk.Properties.ReceiveMaximum = recvMax
		c.send(pk)
		if ack := c.read(5 * time.Second); ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
			t.Fatalf("CONNACK: type %d reason %#x", ack.FixedHeader.Type, ack.ReasonCode)
		}
		return c
	}
	sub := connect5(addr, 0)
	sub.subscribe("q/#", 1)
	sub.send(sub.disconnectPacket())
	pub := dialRaw(t, addr)
	pub.connect(4, "pub", "", "")
	for i := range 5 {
		pub.send(publishPacket("q/x", 1, uint16(i+1), fmt.Appendf(nil, "m%d", i)))
		pub.read(5 * time.Second)
	}
	waitFor(t, 5*time.Second, "5 queued", func() bool { return b1.Stats().QueuedBytes == 5*5 })

	// Back with Receive Maximum 1: one message is resent, four wait.
	back := connect5(addr, 1)
	if pk := back.read(5 * time.Second); pk.FixedHeader.Type != packets.Publish {
		t.Fatalf("got packet type %d, want the first queued PUBLISH", pk.FixedHeader.Type)
	}
	back.c.Close() // not acknowledged
	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}

	_, addr2 := startBroker(t, Options{Log: l, AllowAnonymous: true})
	again := connect5(addr2, 0)
	got := map[string]bool{}
	for len(got) < 5 {
		pk, err := again.tryRead(3 * time.Second)
		if err != nil {
			t.Fatalf("after the restart the session delivered %v, want m0-m4", got)
		}
		if pk.FixedHeader.Type == packets.Publish {
			again.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
			got[string(pk.Payload)] = true
		}
	}
}
