package mqtt

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/runnel/runnel/log"
)

// TestAPIPublish: Broker.Publish goes the way of a client's PUBLISH: the
// route's log topic and headers, fan-out only once durable, the retained
// store; unrouted messages are fanned out and not stored; bad messages
// are refused before anything happens.
func TestAPIPublish(t *testing.T) {
	l := newMemLog(t)
	l.SetSyncDelay(100 * time.Millisecond)
	b, addr := startBroker(t, Options{Log: l, AllowAnonymous: true, Routes: []Route{{Filter: "plant/#", Topic: "plant"}}})
	sub := dialRaw(t, addr)
	sub.connect(5, "sub", "", "")
	sub.subscribe("#", 1)

	start := time.Now()
	stored, err := b.Publish(context.Background(), Message{Topic: "plant/a", Payload: []byte("21.5"), QoS: 1, Retain: true,
		ClientID: "http-c", UserProperties: []packets.UserProperty{{Key: "unit", Val: "C"}}})
	if err != nil || !stored {
		t.Fatalf("Publish = %v, %v", stored, err)
	}
	if time.Since(start) < 90*time.Millisecond {
		t.Fatal("Publish returned before the record was durable")
	}
	got := sub.readPublish(5 * time.Second)
	if got.TopicName != "plant/a" || string(got.Payload) != "21.5" || got.FixedHeader.Qos != 1 {
		t.Fatalf("subscriber got %q %q qos %d", got.TopicName, got.Payload, got.FixedHeader.Qos)
	}
	rs := records(t, l, "plant", 0)
	if len(rs) != 1 || string(rs[0].Key) != "plant/a" || header(rs[0], HeaderClient) != "http-c" || header(rs[0], HeaderRetain) != "true" ||
		header(rs[0], "unit") != "C" || rs[0].Timestamp < start.UnixMilli() {
		t.Fatalf("record %+v", rs)
	}
	late := dialRaw(t, addr)
	late.connect(4, "late", "", "")
	late.subscribe("plant/+", 0)
	if r := late.readPublish(5 * time.Second); r.TopicName != "plant/a" || !r.FixedHeader.Retain {
		t.Fatalf("retained: %q retain %v", r.TopicName, r.FixedHeader.Retain)
	}

	stored, err = b.Publish(context.Background(), Message{Topic: "other/x", Payload: []byte("p")})
	if err != nil || stored {
		t.Fatalf("unrouted Publish = %v, %v", stored, err)
	}
	if got := sub.readPublish(5 * time.Second); got.TopicName != "other/x" {
		t.Fatalf("unrouted fan-out: %q", got.TopicName)
	}
	if _, err := l.Topic(DefaultTopic); !errors.Is(err, log.ErrUnknownTopic) {
		t.Fatal("an unrouted publish was stored")
	}

	for _, m := range []Message{{Topic: ""}, {Topic: "a/+"}, {Topic: "a/#"}, {Topic: "$SYS/x"}, {Topic: "a", QoS: 3}, {Topic: "bad\xff"}} {
		if _, err := b.Publish(context.Background(), m); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("Publish(%+v) = %v, want ErrInvalidMessage", m, err)
		}
	}
	if n := len(records(t, l, "plant", 0)); n != 1 {
		t.Fatalf("%d records after refused publishes", n)
	}
}
