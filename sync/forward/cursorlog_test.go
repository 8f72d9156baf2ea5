package forward_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/logtest"
	"github.com/runnel/runnel/log/meta"
	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/sync/forward/forwardtest"
)

// decodeAll decodes every record of a cursor batch.
func decodeAll(t *testing.T, b []byte) []forward.CursorRecord {
	t.Helper()
	rs, err := batch.Records(b)
	if err != nil {
		t.Fatal(err)
	}
	var out []forward.CursorRecord
	for _, r := range rs {
		c, err := forward.DecodeCursorRecord(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		c.Time = r.Timestamp
		out = append(out, c)
	}
	return out
}

func TestCursorRecordRoundTrip(t *testing.T) {
	now := time.UnixMilli(1700000000123)
	in := []forward.CursorRecord{
		{Kind: forward.CursorProgress, Node: "n2", Origin: "n1", Topic: "sensors", Partition: 3, Route: "default", Offset: 1 << 40, Epoch: 7},
		{Kind: forward.CursorClaim, Node: "n2", Origin: "n1", Topic: "sensors", Partition: 3, Epoch: 8},
		{Kind: forward.CursorRelease, Node: "n2", Origin: "n1", Topic: "sensors", Partition: 0, Epoch: 8},
	}
	got := decodeAll(t, forward.CursorBatch(in, now))
	for i := range in {
		in[i].Time = now.UnixMilli()
	}
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, in)
	}
	if forward.CursorBatch(nil, now) != nil {
		t.Fatal("empty batch not nil")
	}
}

// TestDecodeCursorRecordErrors: every malformed value is refused with
// ErrCursorRecord, and bytes after the route are ignored (room for fields
// added later).
func TestDecodeCursorRecordErrors(t *testing.T) {
	good := func() []byte {
		rs, _ := batch.Records(forward.CursorBatch([]forward.CursorRecord{{Kind: forward.CursorProgress,
			Node: "a", Origin: "b", Topic: "c", Route: "r", Offset: 5, Epoch: 1}}, time.Now()))
		return rs[0].Value
	}
	if _, err := forward.DecodeCursorRecord(append(good(), 1, 2, 3)); err != nil {
		t.Fatalf("trailing bytes: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func([]byte) []byte
	}{
		{"empty", func([]byte) []byte { return nil }},
		{"short", func(b []byte) []byte { return b[:21] }},
		{"version", func(b []byte) []byte { b[0] = 2; return b }},
		{"kind 0", func(b []byte) []byte { b[1] = 0; return b }},
		{"kind 4", func(b []byte) []byte { b[1] = 4; return b }},
		{"negative partition", func(b []byte) []byte { b[18] = 0x80; return b }},
		{"negative offset", func(b []byte) []byte { b[10] = 0x80; return b }},
		{"truncated name", func(b []byte) []byte { return b[:len(b)-1] }},
		{"name length past end", func(b []byte) []byte { b[22], b[23] = 0xff, 0xff; return b }},
		{"no route on progress", func(b []byte) []byte { return append(b[:len(b)-3], 0, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := forward.DecodeCursorRecord(tc.mod(good())); !errors.Is(err, forward.ErrCursorRecord) {
				t.Fatalf("err = %v, want ErrCursorRecord", err)
			}
		})
	}
}

func FuzzDecodeCursorRecord(f *testing.F) {
	rs, _ := batch.Records(forward.CursorBatch([]forward.CursorRecord{
		{Kind: forward.CursorProgress, Node: "n2", Origin: "n1", Topic: "t", Route: "r", Offset: 9, Epoch: 3},
		{Kind: forward.CursorRelease, Node: "n2", Origin: "n1", Topic: "t", Epoch: 3},
	}, time.Now()))
	for _, r := range rs {
		f.Add(r.Value)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		r, err := forward.DecodeCursorRecord(v)
		if err != nil {
			return
		}
		// What decodes encodes back to a value that decodes the same.
		rs, err := batch.Records(forward.CursorBatch([]forward.CursorRecord{r}, time.UnixMilli(0)))
		if err != nil {
			t.Fatal(err)
		}
		again, err := forward.DecodeCursorRecord(rs[0].Value)
		if err != nil || again != r {
			t.Fatalf("re-encode: %+v -> %+v, %v", r, again, err)
		}
	})
}

// TestCursorView: progress keeps the furthest offset whoever wrote it;
// the claim is the highest (epoch, node); a release marks only the claim
// it names.
func TestCursorView(t *testing.T) {
	k := forward.DutyKey{Origin: "n1", Topic: "s", Partition: 0}
	prog := func(node string, epoch uint64, route string, off int64) forward.CursorRecord {
		return forward.CursorRecord{Kind: forward.CursorProgress, Node: node, Origin: "n1", Topic: "s", Route: route, Offset: off, Epoch: epoch}
	}
	claim := func(node string, epoch uint64) forward.CursorRecord {
		return forward.CursorRecord{Kind: forward.CursorClaim, Node: node, Origin: "n1", Topic: "s", Epoch: epoch}
	}
	release := func(node string, epoch uint64) forward.CursorRecord {
		return forward.CursorRecord{Kind: forward.CursorRelease, Node: node, Origin: "n1", Topic: "s", Epoch: epoch}
	}
	for _, tc := range []struct {
		name    string
		recs    []forward.CursorRecord
		cursors map[string]int64
		claim   forward.Claim
	}{
		{"own progress", []forward.CursorRecord{prog("n1", 1, "r", 10), prog("n1", 1, "r", 20)},
			map[string]int64{"r": 20}, forward.Claim{Node: "n1", Epoch: 1}},
		{"routes apart", []forward.CursorRecord{prog("n1", 1, "a", 10), prog("n1", 1, "b", 5)},
			map[string]int64{"a": 10, "b": 5}, forward.Claim{Node: "n1", Epoch: 1}},
		{"takeover", []forward.CursorRecord{prog("n1", 1, "r", 10), claim("n2", 2), prog("n2", 2, "r", 30)},
			map[string]int64{"r": 30}, forward.Claim{Node: "n2", Epoch: 2}},
		{"stale holder's progress still counts as acknowledged", []forward.CursorRecord{claim("n2", 2), prog("n2", 2, "r", 30), prog("n1", 1, "r", 50)},
			map[string]int64{"r": 50}, forward.Claim{Node: "n2", Epoch: 2}},
		{"progress never moves back", []forward.CursorRecord{prog("n1", 1, "r", 50), prog("n2", 2, "r", 30)},
			map[string]int64{"r": 50}, forward.Claim{Node: "n2", Epoch: 2}},
		{"release", []forward.CursorRecord{claim("n2", 2), prog("n2", 2, "r", 30), release("n2", 2)},
			map[string]int64{"r": 30}, forward.Claim{Node: "n2", Epoch: 2, Released: true}},
		{"release of an older claim is ignored", []forward.CursorRecord{claim("n3", 3), release("n2", 2)},
			nil, forward.Claim{Node: "n3", Epoch: 3}},
		{"claim after release", []forward.CursorRecord{claim("n2", 2), release("n2", 2), claim("n1", 3)},
			nil, forward.Claim{Node: "n1", Epoch: 3}},
		{"equal epochs: higher node id wins", []forward.CursorRecord{claim("n3", 2), claim("n2", 2)},
			nil, forward.Claim{Node: "n3", Epoch: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := forward.NewCursorView()
			for _, r := range tc.recs {
				v.Add(r)
			}
			if got := v.Cursors(k); !reflect.DeepEqual(got, tc.cursors) {
				t.Errorf("cursors %v, want %v", got, tc.cursors)
			}
			if c, ok := v.Claim(k); !ok || c != tc.claim {
				t.Errorf("claim %+v (%v), want %+v", c, ok, tc.claim)
			}
		})
	}
}

// TestCursorViewOrderIndependent: several logs (each in its own order)
// read in any interleaving give the same view.
func TestCursorViewOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	nodes := []string{"n1", "n2", "n3"}
	for iter := range 300 {
		// Each node's log: claims with rising epochs, progress, releases.
		logs := make([][]forward.CursorRecord, len(nodes))
		for i, n := range nodes {
			epoch := uint64(rng.IntN(3))
			for range 1 + rng.IntN(12) {
				p := int32(rng.IntN(2))
				switch rng.IntN(4) {
				case 0:
					epoch += uint64(1 + rng.IntN(2))
					logs[i] = append(logs[i], forward.CursorRecord{Kind: forward.CursorClaim, Node: n, Origin: "n1", Topic: "s", Partition: p, Epoch: epoch})
				case 1:
					logs[i] = append(logs[i], forward.CursorRecord{Kind: forward.CursorRelease, Node: n, Origin: "n1", Topic: "s", Partition: p, Epoch: epoch})
				default:
					logs[i] = append(logs[i], forward.CursorRecord{Kind: forward.CursorProgress, Node: n, Origin: "n1", Topic: "s", Partition: p,
						Route: []string{"a", "b"}[rng.IntN(2)], Offset: int64(rng.IntN(100)), Epoch: epoch})
				}
			}
		}
		var first *forward.CursorView
		for range 5 {
			v := forward.NewCursorView()
			pos := make([]int, len(logs))
			for {
				var open []int
				for i := range logs {
					if pos[i] < len(logs[i]) {
						open = append(open, i)
					}
				}
				if len(open) == 0 {
					break
				}
				i := open[rng.IntN(len(open))]
				v.Add(logs[i][pos[i]])
				pos[i]++
			}
			if first == nil {
				first = v
				continue
			}
			for p := int32(0); p < 2; p++ {
				k := forward.DutyKey{Origin: "n1", Topic: "s", Partition: p}
				c1, ok1 := first.Claim(k)
				c2, ok2 := v.Claim(k)
				if c1 != c2 || ok1 != ok2 || !reflect.DeepEqual(first.Cursors(k), v.Cursors(k)) {
					t.Fatalf("iteration %d partition %d: views differ: %+v %v vs %+v %v (logs %+v)", iter, p, c1, first.Cursors(k), c2, v.Cursors(k), logs)
				}
			}
		}
	}
}

// TestCursorLogWritten: with a cursor topic, every cursor save is also
// appended to it, and reading it back gives the cursors meta holds; idle
// partitions are written again at each snapshot interval.
func TestCursorLogWritten(t *testing.T) {
	lg := logtest.New(t)
	lg.CreateTopic("a", log.TopicConfig{Partitions: 2})
	lg.CreateTopic("b", log.TopicConfig{})
	forwardtest.Produce(t, lg, "a", 0, 0, 500, 10, 0)
	forwardtest.Produce(t, lg, "a", 1, 0, 300, 10, 0)
	sink := forwardtest.NewFakeSink()
	o := baseOptions(lg, sink, forward.Route{Name: "r", Topics: []string{"a", "b"}, MaxInFlight: 100})
	o.CursorTopic = forward.CursorTopic
	o.CursorFlushInterval = 10 * time.Millisecond
	o.CursorSnapshotInterval = 5 * time.Minute
	f := start(t, o)
	waitFor(t, "drain", 10*time.Second, f, func() bool { return f.Routes()[0].AckedRecords == 800 })
	want := map[meta.TopicPartition]int64{{Topic: "a", Partition: 0}: 500, {Topic: "a", Partition: 1}: 300, {Topic: "b", Partition: 0}: 0}
	view := func() *forward.CursorView {
		v := forward.NewCursorView()
		if _, err := forward.ReadCursorLog(lg, forward.CursorTopic, 0, v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		v := view()
		got := map[meta.TopicPartition]int64{}
		for tp := range want {
			if c, ok := v.Cursor(forward.DutyKey{Origin: "n1", Topic: tp.Topic, Partition: tp.Partition}, "r"); ok {
				got[tp] = c.Offset
				if c.Node != "n1" || c.Epoch != 0 {
					t.Fatalf("cursor %+v: want node n1, epoch 0", c)
				}
			}
		}
		if reflect.DeepEqual(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cursor log says %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	saved, _ := lg.Meta().Cursors(forward.CursorPrefix + "r")
	if !reflect.DeepEqual(saved, want) {
		t.Fatalf("meta %v, want %v", saved, want)
	}
	info, err := lg.Topic(forward.CursorTopic)
	if err != nil || info.Config.RetentionAge != forward.CursorRetention || info.Config.OnFull != log.OnFullDropOldest {
		t.Fatalf("cursor topic %+v, %v", info.Config, err)
	}
	// Nothing moves: the log stops growing (no snapshot due).
	_, hwm, _ := lg.Offsets(forward.CursorTopic, 0)
	time.Sleep(100 * time.Millisecond)
	if _, h2, _ := lg.Offsets(forward.CursorTopic, 0); h2 != hwm {
		t.Fatalf("idle route wrote %d cursor records", h2-hwm)
	}
}

// TestCursorLogSnapshot: an idle route (quiet: its tickers stopped)
// writes every partition's cursor again each snapshot interval, so
// retention cannot drop the latest.
func TestCursorLogSnapshot(t *testing.T) {
	lg := logtest.New(t)
	lg.CreateTopic("a", log.TopicConfig{Partitions: 3})
	sink := forwardtest.NewFakeSink()
	o := baseOptions(lg, sink, forward.Route{Name: "r", Topics: []string{"a"}})
	o.CursorTopic = forward.CursorTopic
	o.CursorFlushInterval = 10 * time.Millisecond
	o.TopicRefreshInterval = 10 * time.Millisecond
	o.CursorSnapshotInterval = 100 * time.Millisecond
	start(t, o)
	count := func() int64 {
		_, hwm, _ := lg.Offsets(forward.CursorTopic, 0)
		return hwm
	}
	time.Sleep(500 * time.Millisecond) // long idle: the route is quiet
	c1 := count()
	time.Sleep(600 * time.Millisecond)
	c2 := count()
	if c1 < 3 || c2-c1 < 9 || (c2-c1)%3 != 0 {
		t.Fatalf("cursor records: %d after 0.5 s, %d more in the next 0.6 s; want snapshots of 3 partitions every 100 ms", c1, c2-c1)
	}
}

// TestCursorTopicOnRealLog: the cursor topic's config is one the log
// accepts, and records appended are read back.
func TestCursorTopicOnRealLog(t *testing.T) {
	lg, err := log.Open(&log.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	ctx := context.Background()
	recs := []forward.CursorRecord{
		{Kind: forward.CursorClaim, Node: "n2", Origin: "n1", Topic: "s", Epoch: 4},
		{Kind: forward.CursorProgress, Node: "n2", Origin: "n1", Topic: "s", Route: "r", Offset: 42, Epoch: 4},
	}
	if err := forward.AppendCursorRecords(ctx, lg, forward.CursorTopic, recs...); err != nil {
		t.Fatal(err)
	}
	if err := forward.AppendCursorRecords(ctx, lg, forward.CursorTopic, forward.CursorRecord{Kind: forward.CursorRelease, Node: "n2", Origin: "n1", Topic: "s", Epoch: 4}); err != nil {
		t.Fatal(err)
	}
	info, err := lg.Topic(forward.CursorTopic)
	if err != nil {
		t.Fatal(err)
	}
	if c := info.Config; c.RetentionAge != forward.CursorRetention || c.RetentionBytes != 64<<20 || c.SegmentBytes != 1<<20 || len(info.Partitions) != 1 {
		t.Fatalf("config %+v", info)
	}
	v := forward.NewCursorView()
	next, err := forward.ReadCursorLog(lg, forward.CursorTopic, 0, v)
	if err != nil || next != 3 {
		t.Fatalf("read to %d, %v", next, err)
	}
	k := forward.DutyKey{Origin: "n1", Topic: "s"}
	if c, _ := v.Claim(k); c.Node != "n2" || c.Epoch != 4 || !c.Released {
		t.Fatalf("claim %+v", c)
	}
	if c, _ := v.Cursor(k, "r"); c.Offset != 42 {
		t.Fatalf("cursor %+v", c)
	}
	// Reading on from where it stopped finds nothing new.
	if n2, err := forward.ReadCursorLog(lg, forward.CursorTopic, next, v); err != nil || n2 != next {
		t.Fatalf("re-read %d, %v", n2, err)
	}
	// An unknown topic (a peer's copy not made yet) reads as empty.
	if n, err := forward.ReadCursorLog(lg, "n9.__runnel_cursors", 0, v); err != nil || n != 0 {
		t.Fatalf("unknown topic: %d, %v", n, err)
	}
}
