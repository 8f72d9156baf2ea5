package mqtt

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/vfs"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

// The tests of this file run the broker on the real commit log, stored on
// errorfs.MemFS, the in-memory file system that models a power cut: a
// crash clone holds what stable storage holds at that instant (unsynced
// writes lost). Every file sync is held back for powerCutSyncDelay, so a
// PUBACK, PUBREC or delivery sent before the sync covering its message
// finished arrives while that message is not yet on stable storage, and
// the clone taken at that moment lacks it. (The tests on logtest.Mem
// show the same order with a simulated sync; these show it on the log the
// broker really runs on.)

const powerCutSyncDelay = 30 * time.Millisecond

// powerCutLog is the real log on a MemFS with slow syncs. Its meta.db
// (bbolt, outside the power-cut model) is a real file in dir.
type powerCutLog struct {
	log.Log
	mem *errorfs.MemFS
	dir string
}

func newPowerCutLog(t *testing.T) *powerCutLog {
	t.Helper()
	dir := t.TempDir()
	mem := errorfs.NewMem(1)
	if err := mem.MkdirAllSynced(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpSync {
			time.Sleep(powerCutSyncDelay)
		}
		return nil
	}))
	l, err := log.Open(powerCutOptions(dir, fs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &powerCutLog{Log: l, mem: mem, dir: dir}
}

func powerCutOptions(dir string, fs vfs.FS) *log.Options {
	return &log.Options{Dir: dir, FS: fs, MinFreeBytes: -1, Logger: slog.New(slog.DiscardHandler)}
}

// survivors cuts the power now: it opens the log on a crash clone of the
// file system (unsynced data lost) and returns the payloads of topic, every
// partition, with their MQTT topics (record keys).
func (p *powerCutLog) survivors(t *testing.T, topic string) map[string]string {
	t.Helper()
	clone := p.mem.Crash(errorfs.CrashDropUnsynced)
	// The clone opens in a new directory without meta.db (the running
	// log holds its lock): topics come back from their directories.
	dir := t.TempDir()
	if err := clone.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := clone.Rename(p.dir, dir); err != nil {
		t.Fatal(err)
	}
	l, err := log.Open(powerCutOptions(dir, clone))
	if err != nil {
		t.Fatalf("open after a power cut: %v", err)
	}
	defer l.Close()
	out := map[string]string{}
	for _, ti := range l.Topics() {
		if ti.Name != topic {
			continue
		}
		for _, pi := range ti.Partitions {
			for _, r := range readAll(t, l, topic, pi.Partition) {
				out[string(r.Value)] = string(r.Key)
			}
		}
	}
	return out
}

// TestPowerCutQoS1AckOnlyAfterDurable: every message is on stable storage
// of the real log when its PUBACK arrives, one at a time and pipelined.
func TestPowerCutQoS1AckOnlyAfterDurable(t *testing.T) {
	l := newPowerCutLog(t)
	if err := l.CreateTopic(DefaultTopic, log.TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	_, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
	c := dialRaw(t, addr)
	c.connect(4, "dev1", "", "")
	// One at a time: the power is cut as each PUBACK arrives.
	for i := 1; i <= 5; i++ {
		v := "one-" + strconv.Itoa(i)
		c.send(publishPacket("plant/line1/temp", 1, uint16(i), []byte(v)))
		ack := c.read(5 * time.Second)
		if ack.FixedHeader.Type != packets.Puback || ack.PacketID != uint16(i) {
			t.Fatalf("got type %d id %d, want PUBACK %d", ack.FixedHeader.Type, ack.PacketID, i)
		}
		if got, ok := l.survivors(t, DefaultTopic)[v]; !ok || got != "plant/line1/temp" {
			t.Fatalf("message %q was PUBACKed but a power cut then loses it (survivor key %q)", v, got)
		}
	}
	// Pipelined over several partitions: the power is cut at every 20th
	// PUBACK; every message acknowledged by then survives.
	const n = 200
	go func() {
		for i := 1; i <= n; i++ {
			c.send(publishPacket("s/"+strconv.Itoa(i%7), 1, uint16(100+i), []byte("pipe-"+strconv.Itoa(i))))
		}
	}()
	for i := 1; i <= n; i++ {
		ack := c.read(10 * time.Second)
		if ack.FixedHeader.Type != packets.Puback || int(ack.PacketID) != 100+i {
			t.Fatalf("ack %d: type %d id %d", i, ack.FixedHeader.Type, ack.PacketID)
		}
		if i%20 != 0 {
			continue
		}
		got := l.survivors(t, DefaultTopic)
		for j := 1; j <= i; j++ {
			if _, ok := got["pipe-"+strconv.Itoa(j)]; !ok {
				t.Fatalf("power cut at PUBACK %d: acknowledged message %d lost", i, j)
			}
		}
	}
}

// TestPowerCutQoS2PubrecAfterDurable: a QoS 2 message is on stable
// storage when its PUBREC arrives (MQTT 3.1.1 and 5).
func TestPowerCutQoS2PubrecAfterDurable(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			l := newPowerCutLog(t)
			_, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
			c := dialRaw(t, addr)
			c.connect(v, "q2", "", "")
			for i := uint16(1); i <= 3; i++ {
				val := fmt.Sprintf("qos2-%d", i)
				c.send(publishPacket("a/b", 2, i, []byte(val)))
				rec := c.read(5 * time.Second)
				if rec.FixedHeader.Type != packets.Pubrec || rec.PacketID != i || rec.ReasonCode != 0 {
					t.Fatalf("got type %d id %d rc %#x, want PUBREC %d ok", rec.FixedHeader.Type, rec.PacketID, rec.ReasonCode, i)
				}
				if _, ok := l.survivors(t, DefaultTopic)[val]; !ok {
					t.Fatalf("message %q got its PUBREC but a power cut then loses it", val)
				}
				c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: i})
				if comp := c.read(5 * time.Second); comp.FixedHeader.Type != packets.Pubcomp || comp.PacketID != i {
					t.Fatalf("got type %d id %d, want PUBCOMP %d", comp.FixedHeader.Type, comp.PacketID, i)
				}
			}
		})
	}
}

// TestPowerCutFanoutAfterDurable: a subscriber gets a message only once it
// is on stable storage (a delivery must not show what a power cut could
// take back).
func TestPowerCutFanoutAfterDurable(t *testing.T) {
	l := newPowerCutLog(t)
	_, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
	sub := dialRaw(t, addr)
	sub.connect(4, "sub", "", "")
	if ack := sub.subscribe("plant/#", 1); ack.ReasonCodes[0] != 1 {
		t.Fatalf("suback %v", ack.ReasonCodes)
	}
	pub := dialRaw(t, addr)
	pub.connect(5, "pub", "", "")
	for i := uint16(1); i <= 5; i++ {
		val := fmt.Sprintf("hello-%d", i)
		pub.send(publishPacket("plant/a", 1, i, []byte(val)))
		got := sub.readPublish(5 * time.Second)
		if got.TopicName != "plant/a" || string(got.Payload) != val {
			t.Fatalf("subscriber got %q %q, want plant/a %q", got.TopicName, got.Payload, val)
		}
		if _, ok := l.survivors(t, DefaultTopic)[val]; !ok {
			t.Fatalf("subscriber got %q before it was on stable storage", val)
		}
		if ack := pub.read(5 * time.Second); ack.FixedHeader.Type != packets.Puback || ack.PacketID != i {
			t.Fatalf("publisher: type %d id %d, want PUBACK %d", ack.FixedHeader.Type, ack.PacketID, i)
		}
	}
}
