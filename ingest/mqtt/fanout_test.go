package mqtt

import (
	"context"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

func (c *rawClient) subscribe(filter string, qos byte) packets.Packet {
	c.t.Helper()
	c.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    100,
		Filters:     packets.Subscriptions{{Filter: filter, Qos: qos}},
	})
	ack := c.read(5 * time.Second)
	if ack.FixedHeader.Type != packets.Suback {
		c.t.Fatalf("got type %d, want SUBACK", ack.FixedHeader.Type)
	}
	return ack
}

// readPublish reads until a PUBLISH arrives (acking QoS 1 deliveries).
func (c *rawClient) readPublish(timeout time.Duration) packets.Packet {
	c.t.Helper()
	for {
		pk := c.read(timeout)
		if pk.FixedHeader.Type == packets.Publish {
			if pk.FixedHeader.Qos == 1 {
				c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
			}
			return pk
		}
	}
}

func TestFanoutAfterDurable(t *testing.T) {
	l := newMemLog(t)
	l.SetSyncDelay(100 * time.Millisecond)
	_, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
	sub := dialRaw(t, addr)
	sub.connect(4, "sub", "", "")
	if ack := sub.subscribe("plant/#", 1); ack.ReasonCodes[0] != 1 {
		t.Fatalf("suback %v", ack.ReasonCodes)
	}
	pub := dialRaw(t, addr)
	pub.connect(5, "pub", "", "")
	start := time.Now()
	pub.send(publishPacket("plant/a", 1, 1, []byte("hello")))
	got := sub.readPublish(5 * time.Second)
	if time.Since(start) < 90*time.Millisecond {
		t.Fatal("subscriber got the message before it was durable")
	}
	if got.TopicName != "plant/a" || string(got.Payload) != "hello" || got.FixedHeader.Qos != 1 {
		t.Fatalf("got %q %q qos %d", got.TopicName, got.Payload, got.FixedHeader.Qos)
	}
}

func TestRetainedMessages(t *testing.T) {
	l := newMemLog(t)
	_, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
	pub := dialRaw(t, addr)
	pub.connect(4, "pub", "", "")
	pk := publishPacket("status/boiler", 1, 1, []byte("on"))
	pk.FixedHeader.Retain = true
	pub.send(pk)
	pub.read(5 * time.Second)

	sub := dialRaw(t, addr)
	sub.connect(4, "late", "", "")
	sub.subscribe("status/+", 0)
	got := sub.readPublish(5 * time.Second)
	if got.TopicName != "status/boiler" || string(got.Payload) != "on" || !got.FixedHeader.Retain {
		t.Fatalf("got %q %q retain %v", got.TopicName, got.Payload, got.FixedHeader.Retain)
	}
	if rs := records(t, l, DefaultTopic, 0); len(rs) != 1 || header(rs[0], HeaderRetain) != "true" {
		t.Fatalf("records %+v", rs)
	}
}

func TestWillIngestedAndDelivered(t *testing.T) {
	l := newMemLog(t)
	b, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
	sub := dialRaw(t, addr)
	sub.connect(4, "watch", "", "")
	sub.subscribe("dead/#", 0)

	c := dialRaw(t, addr)
	c.v = 4
	c.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), ClientIdentifier: "dying", Clean: true, Keepalive: 30,
			WillFlag: true, WillTopic: "dead/dying", WillPayload: []byte("bye"), WillQos: 1,
		},
	})
	c.read(5 * time.Second)
	c.c.Close() // no DISCONNECT: the will fires

	got := sub.readPublish(5 * time.Second)
	if got.TopicName != "dead/dying" || string(got.Payload) != "bye" {
		t.Fatalf("got %q %q", got.TopicName, got.Payload)
	}
	waitFor(t, 5*time.Second, "will record", func() bool { return len(records(t, l, DefaultTopic, 0)) == 1 })
	r := records(t, l, DefaultTopic, 0)[0]
	if header(r, HeaderWill) != "true" || header(r, HeaderClient) != "dying" || string(r.Value) != "bye" {
		t.Fatalf("will record %+v", r)
	}
	if b.Stats().WillsIngested != 1 {
		t.Fatal("will not counted")
	}
}

func TestPublishRouteFansOutLogRecords(t *testing.T) {
	t.Run("memlog", func(t *testing.T) { testPublishRoute(t, newMemLog(t)) })
	t.Run("log", func(t *testing.T) { testPublishRoute(t, newRealLog(t)) })
}

func testPublishRoute(t *testing.T, l log.Log) {
	if err := l.CreateTopic("sensors", log.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	var old batch.Builder
	old.Add(time.Now().UnixMilli(), []byte("k0"), []byte("before start"), nil)
	if _, err := l.Append(context.Background(), "sensors", 0, old.Bytes()); err != nil {
		t.Fatal(err)
	}
	b, addr := startBroker(t, Options{Log: l, AllowAnonymous: true,
		Publish: []PublishRoute{{Topic: "sensors", Prefix: "kafka/sensors/"}, {Topic: DefaultTopic, Prefix: "mirror"}}}) // a trailing / is dropped
	sub := dialRaw(t, addr)
	sub.connect(5, "dash", "", "")
	sub.subscribe("kafka/#", 0)
	sub.subscribe("mirror/#", 0)

	for p, key := range []string{"k1", "k2"} {
		var bb batch.Builder
		bb.Add(time.Now().UnixMilli(), []byte(key), []byte("v-"+key), []batch.RecordHeader{{Key: "src", Value: []byte("kafka")}})
		if _, err := l.Append(context.Background(), "sensors", int32(p), bb.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]string{}
	for len(seen) < 2 {
		pk := sub.readPublish(5 * time.Second)
		seen[pk.TopicName] = string(pk.Payload)
		if len(pk.Properties.User) != 1 || pk.Properties.User[0].Key != "src" {
			t.Errorf("user properties %+v", pk.Properties.User)
		}
	}
	if seen["kafka/sensors/k1"] != "v-k1" || seen["kafka/sensors/k2"] != "v-k2" {
		t.Fatalf("got %v", seen)
	}
	// MQTT-ingested records in a published topic are not sent twice.
	pub := dialRaw(t, addr)
	pub.connect(4, "pub", "", "")
	pub.send(publishPacket("x/y", 1, 1, []byte("once")))
	pub.read(5 * time.Second)
	if pk, err := sub.tryRead(300 * time.Millisecond); err == nil {
		t.Fatalf("unexpected delivery %q %q", pk.TopicName, pk.Payload)
	}
	if n := b.Stats().FannedOut; n != 2 {
		t.Fatalf("fanned out %d, want 2", n)
	}
}

func TestSysTopics(t *testing.T) {
	_, addr := startBroker(t, Options{Log: newMemLog(t), AllowAnonymous: true})
	c := dialRaw(t, addr)
	c.connect(4, "sys", "", "")
	c.subscribe("$SYS/broker/version", 0)
	if got := c.readPublish(5 * time.Second); got.TopicName != "$SYS/broker/version" || len(got.Payload) == 0 {
		t.Fatalf("got %q %q", got.TopicName, got.Payload)
	}
}

// A publish route whose topic is created after the broker started fans
// out its records: the topic watch wakes the publisher (no rescan timer).
func TestPublishRouteTopicCreatedLater(t *testing.T) {
	t.Run("memlog", func(t *testing.T) { testPublishRouteLater(t, newMemLog(t)) })
	t.Run("log", func(t *testing.T) { testPublishRouteLater(t, newRealLog(t)) })
}

func testPublishRouteLater(t *testing.T, l log.Log) {
	_, addr := startBroker(t, Options{Log: l, AllowAnonymous: true,
		Publish: []PublishRoute{{Topic: "later", Prefix: "kafka/later"}}})
	sub := dialRaw(t, addr)
	sub.connect(5, "dash", "", "")
	sub.subscribe("kafka/#", 0)
	if err := l.CreateTopic("later", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	var bb batch.Builder
	bb.Add(time.Now().UnixMilli(), []byte("k"), []byte("v"), nil)
	if _, err := l.Append(context.Background(), "later", 0, bb.Bytes()); err != nil {
		t.Fatal(err)
	}
	pk := sub.readPublish(5 * time.Second)
	if pk.TopicName != "kafka/later/k" || string(pk.Payload) != "v" {
		t.Fatalf("got %q %q", pk.TopicName, pk.Payload)
	}
}
