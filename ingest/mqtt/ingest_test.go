package mqtt

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/runnel/runnel/log"
)

func TestQoS1AckOnlyAfterDurable(t *testing.T) {
	l := newMemLog(t)
	l.SetSyncDelay(150 * time.Millisecond)
	_, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
	c := dialRaw(t, addr)
	c.connect(4, "dev1", "", "")

	start := time.Now()
	c.send(publishPacket("plant/line1/temp", 1, 7, []byte("21.5")))
	ack := c.read(5 * time.Second)
	if el := time.Since(start); el < 140*time.Millisecond {
		t.Fatalf("PUBACK after %v, before the simulated fsync (150ms) finished", el)
	}
	if ack.FixedHeader.Type != packets.Puback || ack.PacketID != 7 {
		t.Fatalf("got type %d id %d, want PUBACK 7", ack.FixedHeader.Type, ack.PacketID)
	}
	rs := records(t, l, DefaultTopic, 0)
	if len(rs) != 1 {
		t.Fatalf("%d records, want 1", len(rs))
	}
	r := rs[0]
	if string(r.Key) != "plant/line1/temp" || string(r.Value) != "21.5" {
		t.Fatalf("record key %q value %q", r.Key, r.Value)
	}
	for k, want := range map[string]string{HeaderTopic: "plant/line1/temp", HeaderQoS: "1", HeaderRetain: "false", HeaderClient: "dev1"} {
		if got := header(r, k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
}

func TestPipelinedAcksInArrivalOrder(t *testing.T) {
	l := newMemLog(t)
	l.SetSyncDelay(3 * time.Millisecond)
	if err := l.CreateTopic(DefaultTopic, log.TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	b, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
	c := dialRaw(t, addr)
	c.connect(4, "pipe", "", "")

	const n = 3000
	go func() {
		var buf []byte
		for i := 1; i <= n; i++ {
			buf = append(buf, c.encode(publishPacket("s/"+strconv.Itoa(i%7), 1, uint16(i), []byte(strconv.Itoa(i))))...)
			if len(buf) > 16<<10 || i == n {
				if _, err := c.c.Write(buf); err != nil {
					return
				}
				buf = buf[:0]
			}
		}
	}()
	for i := 1; i <= n; i++ {
		ack := c.read(10 * time.Second)
		if ack.FixedHeader.Type != packets.Puback || int(ack.PacketID) != i {
			t.Fatalf("ack %d: type %d id %d (acks must follow arrival order)", i, ack.FixedHeader.Type, ack.PacketID)
		}
	}
	total := 0
	for p := int32(0); p < 4; p++ {
		last := map[string]int{}
		for _, r := range records(t, l, DefaultTopic, p) {
			v, _ := strconv.Atoi(string(r.Value))
			if v <= last[string(r.Key)] {
				t.Fatalf("partition %d key %s: %d after %d", p, r.Key, v, last[string(r.Key)])
			}
			last[string(r.Key)] = v
			total++
		}
	}
	if total != n {
		t.Fatalf("%d records in the log, want %d", total, n)
	}
	st := b.Stats()
	if st.Acked != n || st.Ingested != n {
		t.Fatalf("stats acked %d ingested %d, want %d", st.Acked, st.Ingested, n)
	}
	// Pipelining: far fewer batches (and syncs) than messages.
	if st.Batches > n/4 {
		t.Errorf("%d batches for %d messages: no coalescing", st.Batches, n)
	}
	t.Logf("%d messages in %d batches", n, st.Batches)
}

func TestQoS2PubrecAfterDurableThenPubcomp(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			l := newMemLog(t)
			l.SetSyncDelay(50 * time.Millisecond)
			_, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
			c := dialRaw(t, addr)
			c.connect(v, "q2", "", "")
			start := time.Now()
			c.send(publishPacket("a/b", 2, 9, []byte("x")))
			rec := c.read(5 * time.Second)
			if rec.FixedHeader.Type != packets.Pubrec || rec.PacketID != 9 || rec.ReasonCode != 0 {
				t.Fatalf("got type %d id %d rc %#x, want PUBREC 9 ok", rec.FixedHeader.Type, rec.PacketID, rec.ReasonCode)
			}
			if time.Since(start) < 45*time.Millisecond {
				t.Fatal("PUBREC before durable")
			}
			c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 9})
			comp := c.read(5 * time.Second)
			if comp.FixedHeader.Type != packets.Pubcomp || comp.PacketID != 9 || comp.ReasonCode != 0 {
				t.Fatalf("got type %d id %d rc %#x, want PUBCOMP 9 ok", comp.FixedHeader.Type, comp.PacketID, comp.ReasonCode)
			}
			rs := records(t, l, DefaultTopic, 0)
			if len(rs) != 1 || header(rs[0], HeaderQoS) != "2" {
				t.Fatalf("records %+v", rs)
			}
		})
	}
}

func TestQoS0Ingested(t *testing.T) {
	l := newMemLog(t)
	b, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
	c := dialRaw(t, addr)
	c.connect(4, "q0", "", "")
	for i := 0; i < 100; i++ {
		c.send(publishPacket("q0/t", 0, 0, []byte(strconv.Itoa(i))))
	}
	waitFor(t, 5*time.Second, "100 QoS 0 records", func() bool { return b.Stats().Ingested == 100 })
	rs := records(t, l, DefaultTopic, 0)
	for i, r := range rs {
		if string(r.Value) != strconv.Itoa(i) {
			t.Fatalf("record %d = %q", i, r.Value)
		}
	}
}

func TestRoutesAndKeys(t *testing.T) {
	l := newMemLog(t)
	routes := []Route{
		{Filter: "plant/+/temp", Topic: "temps", Key: KeyClient},
		{Filter: "plant/#", Topic: "plant", Key: KeyNone},
	}
	b, addr := startBroker(t, Options{Log: l, AllowAnonymous: true, Routes: routes})
	c := dialRaw(t, addr)
	c.connect(5, "gw7", "", "")
	c.send(publishPacket("plant/l1/temp", 1, 1, []byte("t")))
	c.send(publishPacket("plant/l1/pressure", 1, 2, []byte("p")))
	c.send(publishPacket("other/x", 1, 3, []byte("o"))) // no route: acked, not stored
	for i := 1; i <= 3; i++ {
		if ack := c.read(5 * time.Second); ack.PacketID != uint16(i) {
			t.Fatalf("ack id %d, want %d", ack.PacketID, i)
		}
	}
	if rs := records(t, l, "temps", 0); len(rs) != 1 || string(rs[0].Key) != "gw7" {
		t.Fatalf("temps: %+v", rs)
	}
	if rs := records(t, l, "plant", 0); len(rs) != 1 || rs[0].Key != nil || string(rs[0].Value) != "p" {
		t.Fatalf("plant: %+v", rs)
	}
	if _, err := l.Topic(DefaultTopic); !errors.Is(err, log.ErrUnknownTopic) {
		t.Fatalf("default topic exists with routes configured: %v", err)
	}
	if b.Stats().Unrouted != 1 {
		t.Fatalf("unrouted = %d", b.Stats().Unrouted)
	}
}

func TestV5PropertiesBecomeHeaders(t *testing.T) {
	l := newMemLog(t)
	_, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
	c := dialRaw(t, addr)
	c.connect(5, "v5", "", "")
	pk := publishPacket("x/y", 1, 1, []byte("{}"))
	pk.Properties.User = []packets.UserProperty{{Key: "site", Val: "north"}, {Key: "unit", Val: "C"}}
	pk.Properties.ContentType = "application/json"
	pk.Properties.CorrelationData = []byte{1, 2, 3}
	c.send(pk)
	c.read(5 * time.Second)
	rs := records(t, l, DefaultTopic, 0)
	if len(rs) != 1 {
		t.Fatal("no record")
	}
	for k, want := range map[string]string{"site": "north", "unit": "C", HeaderContentType: "application/json", HeaderCorrelationData: "\x01\x02\x03"} {
		if got := header(rs[0], k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
}

func TestLogErrorsBecomeReasonCodesOrDisconnect(t *testing.T) {
	l := newMemLog(t)
	b, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})

	v5 := dialRaw(t, addr)
	v5.connect(5, "v5", "", "")
	v5.send(publishPacket("a", 1, 1, []byte("ok")))
	if ack := v5.read(5 * time.Second); ack.ReasonCode != 0 {
		t.Fatalf("first ack rc %#x", ack.ReasonCode)
	}

	l.SetAppendError(log.ErrDiskFull)
	v5.send(publishPacket("a", 1, 2, []byte("full")))
	ack := v5.read(5 * time.Second)
	if ack.PacketID != 2 || ack.ReasonCode != packets.ErrQuotaExceeded.Code {
		t.Fatalf("disk full: id %d rc %#x, want 0x97", ack.PacketID, ack.ReasonCode)
	}
	v5.send(publishPacket("a", 2, 3, []byte("full2")))
	if rec := v5.read(5 * time.Second); rec.FixedHeader.Type != packets.Pubrec || rec.ReasonCode != 0x97 {
		t.Fatalf("disk full qos2: type %d rc %#x", rec.FixedHeader.Type, rec.ReasonCode)
	}

	l.SetAppendError(fmt.Errorf("%w: fsync: input/output error", log.ErrReadOnly))
	v5.send(publishPacket("a", 1, 4, []byte("ro")))
	ack = v5.read(5 * time.Second)
	if ack.ReasonCode != packets.ErrUnspecifiedError.Code || ack.Properties.ReasonString == "" {
		t.Fatalf("read-only: rc %#x reason %q, want 0x80 with a reason", ack.ReasonCode, ack.Properties.ReasonString)
	}

	v3 := dialRaw(t, addr)
	v3.connect(4, "v3", "", "")
	v3.send(publishPacket("a", 1, 1, []byte("lost?")))
	if pk, err := v3.tryRead(5 * time.Second); err == nil {
		t.Fatalf("MQTT 3 client got packet type %d rc %#x, want the connection closed", pk.FixedHeader.Type, pk.ReasonCode)
	}

	// Space returns: publishing resumes on a live connection.
	l.SetAppendError(nil)
	v5.send(publishPacket("a", 1, 5, []byte("again")))
	if ack := v5.read(5 * time.Second); ack.PacketID != 5 || ack.ReasonCode != 0 {
		t.Fatalf("after heal: id %d rc %#x", ack.PacketID, ack.ReasonCode)
	}
	st := b.Stats()
	if st.RejectedDiskFull != 2 || st.FailDisconnects != 1 || st.Nacked != 3 {
		t.Fatalf("stats %+v", st)
	}
	var vals []string
	for _, r := range records(t, l, DefaultTopic, 0) {
		vals = append(vals, string(r.Value))
	}
	if fmt.Sprint(vals) != "[ok again]" {
		t.Fatalf("log holds %v, want [ok again]", vals)
	}
}

// TestPendingCapThrottles: a client flooding QoS 0 publishes faster than
// the log syncs never has more than its caps waiting for the log (count,
// and bytes); the broker's high-water marks count the peak where it
// happens, at every enqueue.
func TestPendingCapThrottles(t *testing.T) {
	payload := make([]byte, 100)
	size := len(payload) + len("f") + 64 // what one publish counts against the bytes cap
	for _, tc := range []struct {
		name         string
		count, bytes int
	}{
		{"count", 8, DefaultMaxPendingBytesPerClient},
		{"bytes", DefaultMaxPendingPerClient, 5*size + size/2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newMemLog(t)
			l.SetSyncDelay(20 * time.Millisecond)
			b, addr := startBroker(t, Options{Log: l, AllowAnonymous: true, MaxPendingPerClient: tc.count, MaxPendingBytesPerClient: tc.bytes})
			c := dialRaw(t, addr)
			c.connect(4, "flood", "", "")
			const n = 200
			for i := 0; i < n; i++ {
				c.send(publishPacket("f", 0, 0, payload))
			}
			waitFor(t, 10*time.Second, "all QoS 0 records", func() bool { return b.Stats().Ingested == n })
			st := b.Stats()
			t.Logf("peak %d publishes, %d bytes; throttled %d times", st.PendingPeak, st.PendingBytesPeak, st.Throttled)
			if st.PendingPeak > int64(tc.count) || st.PendingBytesPeak > int64(tc.bytes) {
				t.Fatalf("pending peaked at %d publishes / %d bytes, caps %d / %d", st.PendingPeak, st.PendingBytesPeak, tc.count, tc.bytes)
			}
			if want := min(tc.count, tc.bytes/size); st.PendingPeak != int64(want) {
				t.Errorf("pending peaked at %d publishes, want the cap (%d): a flood at 20 ms per sync fills it", st.PendingPeak, want)
			}
			if st.Throttled == 0 {
				t.Fatal("client was never throttled")
			}
			if got := len(records(t, l, DefaultTopic, 0)); got != n {
				t.Fatalf("%d records", got)
			}
		})
	}
}

// TestEmptyRetainedPublishIsTombstone: an empty retained publish (it
// clears the topic's retained message) becomes a record with a null value
// and the header mqtt.retain-cleared; an empty publish that is not
// retained stays an empty value without that header.
func TestEmptyRetainedPublishIsTombstone(t *testing.T) {
	l := newMemLog(t)
	_, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
	c := dialRaw(t, addr)
	c.connect(4, "dev1", "", "")
	set := publishPacket("plant/valve3/state", 1, 1, []byte("open"))
	set.FixedHeader.Retain = true
	clear := publishPacket("plant/valve3/state", 1, 2, nil)
	clear.FixedHeader.Retain = true
	empty := publishPacket("plant/valve3/state", 1, 3, nil)
	for _, pk := range []packets.Packet{set, clear, empty} {
		c.send(pk)
		if ack := c.read(5 * time.Second); ack.FixedHeader.Type != packets.Puback || ack.PacketID != pk.PacketID {
			t.Fatalf("got type %d id %d, want PUBACK %d", ack.FixedHeader.Type, ack.PacketID, pk.PacketID)
		}
	}
	rs := records(t, l, DefaultTopic, 0)
	if len(rs) != 3 {
		t.Fatalf("%d records, want 3", len(rs))
	}
	if string(rs[0].Value) != "open" || header(rs[0], HeaderRetain) != "true" || header(rs[0], HeaderRetainCleared) != "<none>" {
		t.Errorf("retained publish: value %q headers %v", rs[0].Value, rs[0].Headers)
	}
	if rs[1].Value != nil || string(rs[1].Key) != "plant/valve3/state" || header(rs[1], HeaderRetainCleared) != "true" || header(rs[1], HeaderRetain) != "true" {
		t.Errorf("empty retained publish: key %q value %q (nil %v) headers %v", rs[1].Key, rs[1].Value, rs[1].Value == nil, rs[1].Headers)
	}
	if rs[2].Value == nil || len(rs[2].Value) != 0 || header(rs[2], HeaderRetainCleared) != "<none>" {
		t.Errorf("empty publish: value %q (nil %v) headers %v", rs[2].Value, rs[2].Value == nil, rs[2].Headers)
	}
}
