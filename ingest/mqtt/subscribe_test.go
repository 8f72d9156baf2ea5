package mqtt

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// subscribeMany sends one SUBSCRIBE with the given filters and returns
// the SUBACK's reason codes.
func (c *rawClient) subscribeMany(id uint16, filters ...string) []byte {
	c.t.Helper()
	subs := make(packets.Subscriptions, len(filters))
	for i, f := range filters {
		subs[i] = packets.Subscription{Filter: f, Qos: 1}
	}
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: id, Filters: subs})
	ack := c.read(5 * time.Second)
	if ack.FixedHeader.Type != packets.Suback || ack.PacketID != id {
		c.t.Fatalf("got type %d id %d, want SUBACK %d", ack.FixedHeader.Type, ack.PacketID, id)
	}
	return ack.ReasonCodes
}

// TestSubscriptionCaps: filters past a client's cap or the broker's are
// refused with 0x97 (MQTT 5) or 0x80 (MQTT 3.1.1), the others in the same
// SUBSCRIBE are granted, a resubscription is never refused, and what an
// unsubscribe frees can be taken again.
func TestSubscriptionCaps(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprint("v", v), func(t *testing.T) {
			b, addr := startBroker(t, Options{Log: newMemLog(t), AllowAnonymous: true, MaxSubscriptionsPerClient: 3, MaxSubscriptions: 5})
			fail := byte(0x80)
			if v == 5 {
				fail = 0x97
			}
			a := dialRaw(t, addr)
			a.connect(v, "a", "", "")
			if got := a.subscribeMany(1, "a/1", "a/2", "a/3", "a/4"); string(got) != string([]byte{1, 1, 1, fail}) {
				t.Fatalf("a: codes %x, want 01 01 01 %02x", got, fail)
			}
			if got := a.subscribeMany(2, "a/1", "a/5"); string(got) != string([]byte{1, fail}) {
				t.Fatalf("a: resubscription and a new filter: codes %x", got)
			}
			c := dialRaw(t, addr)
			c.connect(v, "c", "", "")
			if got := c.subscribeMany(3, "c/1", "c/2", "c/3"); string(got) != string([]byte{1, 1, fail}) {
				t.Fatalf("c: codes %x, want 01 01 %02x (broker cap 5)", got, fail)
			}
			c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1}, PacketID: 4,
				Filters: packets.Subscriptions{{Filter: "c/1"}}})
			if ack := c.read(5 * time.Second); ack.FixedHeader.Type != packets.Unsuback {
				t.Fatalf("got type %d, want UNSUBACK", ack.FixedHeader.Type)
			}
			if got := c.subscribeMany(5, "c/3"); string(got) != string([]byte{1}) {
				t.Fatalf("c: after an unsubscribe: codes %x", got)
			}
			if n := b.Stats().SubsRefused; n != 3 {
				t.Fatalf("SubsRefused = %d, want 3", n)
			}
		})
	}
}

// TestDeepFilterRefused: a filter of more than maxFilterLevels levels is
// refused as invalid (0x8F; 0x80 in MQTT 3.1.1) and counted, the others
// of the same SUBSCRIBE granted; one of exactly maxFilterLevels is fine.
func TestDeepFilterRefused(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprint("v", v), func(t *testing.T) {
			b, addr := startBroker(t, Options{Log: newMemLog(t), AllowAnonymous: true})
			fail := byte(0x80)
			if v == 5 {
				fail = 0x8f
			}
			c := dialRaw(t, addr)
			c.connect(v, "deep", "", "")
			ok := strings.Repeat("a/", maxFilterLevels-1) + "#"
			deep := strings.Repeat("a/", maxFilterLevels) + "#"
			if got := c.subscribeMany(1, "x/1", deep, ok); string(got) != string([]byte{1, fail, 1}) {
				t.Fatalf("codes %x, want 01 %02x 01", got, fail)
			}
			if n := b.Stats().SubsRefused; n != 1 {
				t.Fatalf("SubsRefused = %d, want 1", n)
			}
		})
	}
}

// TestSubscriptionStormMemory: one client sending 200,000 filters (in
// SUBSCRIBEs of 1,000) gets the first MaxSubscriptionsPerClient and
// refusals for the rest; the broker's memory stays small.
func TestSubscriptionStormMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector inflates memory")
	}
	b, addr := startBroker(t, Options{Log: newMemLog(t), AllowAnonymous: true})
	before := heapInUse()
	c := dialRaw(t, addr)
	c.connect(5, "storm", "", "")
	granted := 0
	for p := range 200 {
		filters := make([]string, 1000)
		for i := range filters {
			filters[i] = fmt.Sprintf("storm/%d/%d/+/x", p, i)
		}
		for _, code := range c.subscribeMany(uint16(p+1), filters...) {
			if code < 0x80 {
				granted++
			} else if code != 0x97 {
				t.Fatalf("code %x", code)
			}
		}
	}
	added := float64(heapInUse()-before) / (1 << 20)
	t.Logf("200,000 filters: %d granted, heap +%.1f MiB", granted, added)
	if granted != DefaultMaxSubscriptionsPerClient || b.Stats().SubsRefused != uint64(200000-granted) {
		t.Fatalf("granted %d, refused %d", granted, b.Stats().SubsRefused)
	}
	if added > 16 {
		t.Fatalf("heap grew by %.1f MiB", added)
	}
}

// TestSubscriptionMemory measures what one subscription costs the broker
// (the README's figure for mqtt.max-subscriptions): 20 clients holding
// 1,000 distinct filters each, the default broker-wide cap, and the heap
// in use before and after. It fails past 8 KiB a subscription.
func TestSubscriptionMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector inflates memory")
	}
	_, addr := startBroker(t, Options{Log: newMemLog(t), AllowAnonymous: true})
	const clients, per = 20, 1000
	// The connections first: their cost is not the subscriptions'.
	conns := make([]*rawClient, clients)
	for i := range conns {
		conns[i] = dialRaw(t, addr)
		conns[i].connect(5, fmt.Sprintf("subs-%d", i), "", "")
	}
	before := heapInUse()
	for i, c := range conns {
		filters := make([]string, per)
		for j := range filters {
			filters[j] = fmt.Sprintf("site/line-%d/machine-%d/+/temperature", i, j)
		}
		for _, code := range c.subscribeMany(1, filters...) {
			if code >= 0x80 {
				t.Fatalf("client %d: subscription refused: %x", i, code)
			}
		}
	}
	per1 := float64(heapInUse()-before) / (clients * per)
	t.Logf("%d subscriptions: %.2f KiB each (heap in use)", clients*per, per1/1024)
	if per1 > 8<<10 {
		t.Fatalf("a subscription costs %.2f KiB, past 8 KiB", per1/1024)
	}
}

// heapInUse is the heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
