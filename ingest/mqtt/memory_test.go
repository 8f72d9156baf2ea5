package mqtt

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestIdleConnectionMemory guards the cost of an idle MQTT connection
// (heap + goroutine stacks, both ends of the loopback connection).
// Measured 12.0 KiB with runnel's mochi patches
// (ingest/mqtt/third_party/mochi/PATCHES.md), 35.2 KiB with mochi v2.7.9 as
// released (two 16 KiB + 4 KiB goroutine stacks, an 8 KiB outbound
// channel). The budget (150 MiB RSS for 10,000
// connections) is checked on the binary (make bench-vs-mosquitto); this
// test fails on regressions past 16 KiB.
func TestIdleConnectionMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector inflates memory; measured without -race")
	}
	const n = 2000
	l := newMemLog(t)
	_, addr := startBroker(t, Options{Log: l, AllowAnonymous: true, MaxConnsPerIP: -1})
	rc := &rawClient{t: t, v: 4}
	connect := func(i int) []byte {
		return rc.encode(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Connect},
			Connect:     packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: "idle-" + itoa(int64(i)), Clean: true, Keepalive: 600},
		})
	}
	measure := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse + m.StackInuse
	}
	before := measure()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	ack := make([]byte, 4)
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.Write(connect(i))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 {
			t.Fatalf("conn %d: CONNACK %x %v", i, ack, err)
		}
	}
	per := float64(measure()-before) / n
	t.Logf("%d idle connections: %.1f KiB each (heap+stacks, both ends)", n, per/1024)
	if per > 16*1024 {
		t.Fatalf("%.1f KiB per idle connection, regression past 16 KiB", per/1024)
	}
}

func itoa(v int64) string { return string(appendInt(nil, v)) }

func appendInt(b []byte, v int64) []byte {
	if v >= 10 {
		b = appendInt(b, v/10)
	}
	return append(b, byte('0'+v%10))
}

// TestPartialPacketMemory: connections that announce a publish of almost
// MaxPacketSize and send a little of it hold memory for what they sent,
// not for what they announced (200 of them held 200 MiB).
func TestPartialPacketMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector inflates memory; measured without -race")
	}
	const n = 200
	_, addr := startBroker(t, Options{Log: newMemLog(t), AllowAnonymous: true, MaxConnsPerIP: -1})
	measure := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := measure()
	// PUBLISH QoS 0 to "t", remaining length 1,048,000 (varint c0 fb 3f),
	// then 4 KiB of its payload.
	head := []byte{0x30, 0xc0, 0xfb, 0x3f, 0, 1, 't'}
	body := make([]byte, 4<<10)
	for i := range n {
		c := dialRaw(t, addr)
		c.connect(4, "partial-"+itoa(int64(i)), "", "")
		if _, err := c.c.Write(append(head, body...)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond) // the broker has read what was sent
	grew := int64(measure()) - int64(before)
	t.Logf("%d connections each 4 KiB into a 1 MiB publish: heap +%.1f MiB", n, float64(grew)/(1<<20))
	if limit := int64(n * 256 << 10); grew > limit {
		t.Fatalf("heap grew by %d MiB, more than %d MiB: the announced sizes were allocated", grew>>20, limit>>20)
	}
}
