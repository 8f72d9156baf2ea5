package mqtt

import (
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/runnel/runnel/ingest/access"
)

// TestPublishQuota: a client whose user is over its produce quota has its
// next publishes read only after the throttle time, so 64 KiB at 16 KiB/s
// (one second of burst) takes about three seconds; every publish is still
// acknowledged and stored. Another user is not held.
func TestPublishQuota(t *testing.T) {
	l := newMemLog(t)
	q := access.NewQuotas(func(u string) int64 {
		if u == "alice" {
			return 16 << 10
		}
		return 0
	})
	b, addr := startBroker(t, Options{Log: l, Quotas: q,
		Users: []User{{Name: "alice", PasswordHash: hashPW(t, "a")}, {Name: "bob", PasswordHash: hashPW(t, "b")}}})
	run := func(user, pass string) time.Duration {
		rc := dialRaw(t, addr)
		if ack := rc.connect(5, "c-"+user, user, pass); ack.ReasonCode != 0 {
			t.Fatalf("%s: CONNACK %#x", user, ack.ReasonCode)
		}
		start := time.Now()
		for i := range 8 {
			rc.send(publishPacket("q/"+user, 1, uint16(i+1), make([]byte, 8<<10)))
		}
		for range 8 {
			if pk := rc.read(20 * time.Second); pk.FixedHeader.Type != packets.Puback || pk.ReasonCode != 0 {
				t.Fatalf("%s: %+v, want PUBACK 0", user, pk.FixedHeader)
			}
		}
		return time.Since(start)
	}
	if took := run("alice", "a"); took < 2*time.Second {
		t.Errorf("64 KiB at a 16 KiB/s quota acknowledged within %v", took)
	}
	if b.Stats().QuotaThrottled == 0 {
		t.Error("Stats().QuotaThrottled = 0")
	}
	before := b.Stats().QuotaThrottled
	run("bob", "b")
	if b.Stats().QuotaThrottled != before {
		t.Error("bob, without a quota, was held")
	}
	if n := len(records(t, l, "mqtt", 0)); n != 16 {
		t.Errorf("%d records stored, want 16", n)
	}
}
