package mqtt

// runnel: tests of the housekeeping that sleeps while the broker has no
// client (patch 7). They run with upstream's suite (test-upstream.sh),
// which provides newServer, newServerWithInlineClient and newTestClient.

import (
	"bytes"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"
)

// tickCounter counts $SYS publications and retained deliveries.
type tickCounter struct {
	HookBase
	sys, retained atomic.Int64
}

func (h *tickCounter) ID() string { return "tick-counter" }
func (h *tickCounter) Provides(b byte) bool {
	return b == OnSysInfoTick || b == OnRetainPublished
}
func (h *tickCounter) OnSysInfoTick(*system.Info)                      { h.sys.Add(1) }
func (h *tickCounter) OnRetainPublished(cl *Client, pk packets.Packet) { h.retained.Add(1) }

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
	}
}

// With only the inline client the event loop's tickers stop; a client
// attaching resumes them (the $SYS topics are published at once).
func TestRunnelHousekeepingSleepsWhileIdle(t *testing.T) {
	s := newServerWithInlineClient()
	h := new(tickCounter)
	if err := s.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	s.loop.sysTopics.Reset(time.Millisecond)
	s.loop.clientExpiry.Reset(time.Millisecond)
	go s.eventLoop()
	defer s.Close()
	waitUntil(t, "no $SYS tick", func() bool { return h.sys.Load() > 0 })
	time.Sleep(20 * time.Millisecond) // the first sweep finds nothing to keep
	n := h.sys.Load()
	time.Sleep(50 * time.Millisecond)
	if got := h.sys.Load(); got != n {
		t.Fatalf("an idle broker published $SYS %d times in 50 ms", got-n)
	}
	cl, r, _ := newTestClient()
	defer r.Close()
	s.Clients.Add(cl)
	s.wakeHousekeeping()
	waitUntil(t, "no $SYS publication on waking", func() bool { return h.sys.Load() > n })
}

// With a client the tickers keep running.
func TestRunnelHousekeepingAwakeWithClient(t *testing.T) {
	s := newServerWithInlineClient()
	h := new(tickCounter)
	if err := s.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	cl, r, _ := newTestClient()
	defer r.Close()
	s.Clients.Add(cl)
	s.loop.sysTopics.Reset(time.Millisecond)
	s.loop.clientExpiry.Reset(time.Millisecond)
	go s.eventLoop()
	defer s.Close()
	time.Sleep(20 * time.Millisecond)
	n := h.sys.Load()
	waitUntil(t, "asleep with a client", func() bool { return h.sys.Load() > n+5 })
}

// A delayed will wakes the housekeeping, which then sends it when due.
func TestRunnelDelayedWillWakesHousekeeping(t *testing.T) {
	s := newServerWithInlineClient()
	s.loop.clientExpiry.Reset(time.Millisecond)
	go s.eventLoop()
	defer s.Close()
	time.Sleep(20 * time.Millisecond) // asleep
	s.loop.willDelayed.Add("gone", packets.Packet{TopicName: "a/b", Payload: []byte("bye"), Expiry: time.Now().Unix() - 1})
	s.wakeHousekeeping()
	waitUntil(t, "the delayed will was not sent", func() bool { return s.loop.willDelayed.Len() == 0 })
}

// A retained message that expired while the housekeeping slept is not
// delivered to a new subscriber.
func TestRunnelExpiredRetainedNotDelivered(t *testing.T) {
	s := newServer()
	h := new(tickCounter)
	if err := s.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	cl, r, _ := newTestClient()
	defer r.Close()
	s.Clients.Add(cl)
	old := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}, TopicName: "a/old",
		Payload: []byte("x"), ProtocolVersion: 5, Created: time.Now().Unix() - 10, Expiry: time.Now().Unix() - 5}
	live := old
	live.TopicName, live.Expiry = "a/live", time.Now().Unix()+100
	s.Topics.RetainMessage(old)
	s.Topics.RetainMessage(live)
	go func() {
		buf := make([]byte, 1024)
		for {
			if _, err := r.Read(buf); err != nil {
				return
			}
		}
	}()
	s.publishRetainedToClient(cl, packets.Subscription{Filter: "a/#"}, false)
	if n := h.retained.Load(); n != 1 {
		t.Fatalf("%d retained messages delivered, want 1 (the expired one skipped)", n)
	}
}

// A client subscribing to $SYS gets current values even when the idle
// loop has not published them for long (the retained copies are
// refreshed first): here the last tick is 100 s old.
func TestRunnelSysTopicsCurrentOnSubscribe(t *testing.T) {
	s := newServer()
	atomic.StoreInt64(&s.Info.Started, time.Now().Unix())
	s.publishSysTopics() // uptime 0
	atomic.StoreInt64(&s.Info.Started, time.Now().Unix()-100)
	cl, r, w := newTestClient()
	s.Clients.Add(cl)
	sub := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    7,
		Filters:     packets.Subscriptions{{Filter: SysPrefix + "/broker/uptime"}},
	}
	go func() {
		_ = s.processSubscribe(cl, sub)
		time.Sleep(time.Millisecond)
		_ = w.Close()
	}()
	buf, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	topic := SysPrefix + "/broker/uptime"
	i := bytes.Index(buf, []byte(topic))
	if i < 0 {
		t.Fatalf("no retained %s in %q", topic, buf)
	}
	if got := string(buf[i+len(topic):]); got != "100" && got != "101" {
		t.Fatalf("uptime %q, want 100 (the value now, not the last tick's 0)", got)
	}
}
