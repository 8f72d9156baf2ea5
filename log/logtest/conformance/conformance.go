// Package conformance checks that an implementation of log.Log keeps the
// contract documented in log/api.go. The same suite runs against the
// log on disk (log/conformance_test.go) and against logtest.Mem
// (log/logtest/conformance_test.go), so the stand-in the tests of ingest,
// sync and web use behaves as the real log does wherever they can tell.
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, func(t *testing.T) log.Log { return open(t) })
//	}
//
// What it covers: creating, growing, configuring and deleting topics;
// Append, AppendAsync and AppendAt (offsets, order, errors); Read (whole
// batches, the partial first batch, maxBytes, the HWM and out-of-range
// offsets); Offsets and OffsetForTime; idempotent producers (duplicates in
// the window of five, gaps, epochs); Watch and WatchTopics; HoldRetention;
// Close. What it leaves to each implementation's own tests: durability,
// recovery, retention and the disk guard, which a memory log does not
// have.
package conformance

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// Open returns a new, empty log for one test; the test (or its cleanup)
// closes it.
type Open func(t *testing.T) log.Log

// Run runs every check of the suite as a subtest, each on a fresh log.
func Run(t *testing.T, open Open) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, log.Log)
	}{
		{"CreateTopic", testCreateTopic},
		{"DeleteTopic", testDeleteTopic},
		{"AddPartitions", testAddPartitions},
		{"SetTopicConfig", testSetTopicConfig},
		{"Append", testAppend},
		{"AppendErrors", testAppendErrors},
		{"AppendAsync", testAppendAsync},
		{"AppendConcurrent", testAppendConcurrent},
		{"AppendAt", testAppendAt},
		{"Read", testRead},
		{"OffsetForTime", testOffsetForTime},
		{"Idempotence", testIdempotence},
		{"ProducerEpoch", testProducerEpoch},
		{"Watch", testWatch},
		{"WatchTopics", testWatchTopics},
		{"HoldRetention", testHoldRetention},
		{"Close", testClose},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := open(t)
			t.Cleanup(func() { l.Close() })
			c.fn(t, l)
		})
	}
}

// ts is the base timestamp of the suite's records (ms).
const ts = 1_700_000_000_000

// mk returns one batch of n records with timestamps at, at+1, ...
func mk(n int, at int64) []byte {
	var b batch.Builder
	for i := range n {
		b.Add(at+int64(i), []byte(fmt.Sprintf("k%d", i)), []byte(fmt.Sprintf("v%d", i)), nil)
	}
	return b.Bytes()
}

// idem returns one idempotent batch of n records.
func idem(pid int64, epoch int16, seq int32, n int) []byte {
	var b batch.Builder
	b.SetProducer(pid, epoch, seq)
	for i := range n {
		b.Add(ts, nil, []byte(fmt.Sprintf("s%d", int(seq)+i)), nil)
	}
	return b.Bytes()
}

func create(t *testing.T, l log.Log, name string, cfg log.TopicConfig) {
	t.Helper()
	if err := l.CreateTopic(name, cfg); err != nil {
		t.Fatalf("CreateTopic(%q): %v", name, err)
	}
}

func appendOK(t *testing.T, l log.Log, topic string, p int32, data []byte) int64 {
	t.Helper()
	base, err := l.Append(context.Background(), topic, p, data)
	if err != nil {
		t.Fatalf("Append(%s/%d): %v", topic, p, err)
	}
	return base
}

func offsets(t *testing.T, l log.Log, topic string, p int32) (int64, int64) {
	t.Helper()
	start, hwm, err := l.Offsets(topic, p)
	if err != nil {
		t.Fatalf("Offsets(%s/%d): %v", topic, p, err)
	}
	return start, hwm
}

// records reads every record of a partition from offset from.
func records(t *testing.T, l log.Log, topic string, p int32, from int64) []batch.Record {
	t.Helper()
	_, hwm := offsets(t, l, topic, p)
	var out []batch.Record
	for off := from; off < hwm; {
		data, err := l.Read(topic, p, off, 1<<20)
		if err != nil || len(data) == 0 {
			t.Fatalf("Read(%s/%d, %d): %d bytes, %v", topic, p, off, len(data), err)
		}
		rs, err := batch.Records(data)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		for _, r := range rs {
			if r.Offset >= off {
				out = append(out, r)
			}
		}
		off = rs[len(rs)-1].Offset + 1
	}
	return out
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

func signalled(w *log.Waiter, within time.Duration) bool {
	if within == 0 {
		select {
		case <-w.C():
			return true
		default:
			return false
		}
	}
	select {
	case <-w.C():
		return true
	case <-time.After(within):
		return false
	}
}

func testCreateTopic(t *testing.T, l log.Log) {
	create(t, l, "b", log.TopicConfig{Partitions: 3})
	create(t, l, "a", log.TopicConfig{})
	ti, err := l.Topic("b")
	if err != nil {
		t.Fatal(err)
	}
	if ti.Name != "b" || len(ti.Partitions) != 3 || ti.Config.Partitions != 3 {
		t.Errorf("Topic(b) = %+v, want 3 partitions", ti)
	}
	for i, pi := range ti.Partitions {
		if pi.Partition != int32(i) || pi.Start != 0 || pi.HWM != 0 || pi.Err != nil {
			t.Errorf("partition %d: %+v", i, pi)
		}
	}
	// Zero fields take the log's defaults: the config reads back filled.
	c := ti.Config
	if c.Fsync == "" || c.OnFull == "" || c.FsyncInterval == 0 || c.RetentionAge == 0 || c.RetentionBytes == 0 ||
		c.SegmentBytes == 0 || c.SegmentAge == 0 || c.MaxBatchBytes == 0 {
		t.Errorf("config with defaults has zero fields: %+v", c)
	}
	if a, _ := l.Topic("a"); len(a.Partitions) < 1 {
		t.Errorf("a topic created with Partitions 0 has %d partitions", len(a.Partitions))
	}
	var names []string
	for _, ti := range l.Topics() {
		names = append(names, ti.Name)
	}
	if !slices.Equal(names, []string{"a", "b"}) {
		t.Errorf("Topics() = %v, want [a b] (sorted by name)", names)
	}
	wantErr(t, "CreateTopic of an existing name", l.CreateTopic("a", log.TopicConfig{}), log.ErrTopicExists)
	for _, name := range []string{"", ".", "..", "a/b", "a b", "ä", strings.Repeat("x", 250)} {
		wantErr(t, fmt.Sprintf("CreateTopic(%q)", name), l.CreateTopic(name, log.TopicConfig{}), log.ErrInvalidTopic)
	}
	create(t, l, strings.Repeat("x", 249), log.TopicConfig{})
	create(t, l, "A.b_c-9", log.TopicConfig{})
	for _, cfg := range []log.TopicConfig{
		{Fsync: "sometimes"}, {OnFull: "panic"}, {SegmentBytes: -1}, {FsyncInterval: -1}, {SegmentAge: -1}, {MaxBatchBytes: -1},
	} {
		wantErr(t, fmt.Sprintf("CreateTopic with %+v", cfg), l.CreateTopic("bad", cfg), log.ErrInvalidConfig)
	}
	wantErr(t, "CreateTopic with -1 partitions", l.CreateTopic("bad", log.TopicConfig{Partitions: -1}), log.ErrInvalidPartitions)
	if _, err := l.Topic("bad"); !errors.Is(err, log.ErrUnknownTopic) {
		t.Errorf("a refused topic exists: %v", err)
	}
}

func testDeleteTopic(t *testing.T, l log.Log) {
	create(t, l, "t", log.TopicConfig{Partitions: 2})
	appendOK(t, l, "t", 0, mk(3, ts))
	if err := l.Meta().SetCursor("forward/r", "t", 0, 2); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	_, err := l.Topic("t")
	wantErr(t, "Topic after DeleteTopic", err, log.ErrUnknownTopic)
	_, err = l.Read("t", 0, 0, 100)
	wantErr(t, "Read after DeleteTopic", err, log.ErrUnknownTopic)
	_, err = l.Append(context.Background(), "t", 0, mk(1, ts))
	wantErr(t, "Append after DeleteTopic", err, log.ErrUnknownTopic)
	_, _, err = l.Offsets("t", 0)
	wantErr(t, "Offsets after DeleteTopic", err, log.ErrUnknownTopic)
	wantErr(t, "DeleteTopic twice", l.DeleteTopic("t"), log.ErrUnknownTopic)
	if len(l.Topics()) != 0 {
		t.Errorf("Topics after delete: %+v", l.Topics())
	}
	if _, ok, err := l.Meta().Cursor("forward/r", "t", 0); ok || err != nil {
		t.Errorf("a cursor of the deleted topic survived (%v)", err)
	}
	// The same name again is a new topic: offsets from 0, nothing old.
	create(t, l, "t", log.TopicConfig{})
	if start, hwm := offsets(t, l, "t", 0); start != 0 || hwm != 0 {
		t.Fatalf("recreated topic offsets %d..%d, want 0..0", start, hwm)
	}
	if base := appendOK(t, l, "t", 0, mk(1, ts)); base != 0 {
		t.Errorf("first append to the recreated topic at %d, want 0", base)
	}
}

func testAddPartitions(t *testing.T, l log.Log) {
	create(t, l, "t", log.TopicConfig{Partitions: 1})
	appendOK(t, l, "t", 0, mk(2, ts))
	if err := l.AddPartitions("t", 3); err != nil {
		t.Fatal(err)
	}
	ti, _ := l.Topic("t")
	if len(ti.Partitions) != 3 || ti.Config.Partitions != 3 {
		t.Fatalf("after AddPartitions(3): %+v", ti)
	}
	if _, hwm := offsets(t, l, "t", 0); hwm != 2 {
		t.Errorf("partition 0 HWM %d after growing, want 2", hwm)
	}
	if base := appendOK(t, l, "t", 2, mk(1, ts)); base != 0 {
		t.Errorf("new partition starts at %d", base)
	}
	wantErr(t, "AddPartitions to the same count", l.AddPartitions("t", 3), log.ErrInvalidPartitions)
	wantErr(t, "AddPartitions to fewer", l.AddPartitions("t", 2), log.ErrInvalidPartitions)
	wantErr(t, "AddPartitions of an unknown topic", l.AddPartitions("nope", 5), log.ErrUnknownTopic)
}

func testSetTopicConfig(t *testing.T, l log.Log) {
	create(t, l, "t", log.TopicConfig{Partitions: 2})
	if err := l.SetTopicConfig("t", log.TopicConfig{Partitions: 7, Fsync: log.FsyncNever, RetentionAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	ti, _ := l.Topic("t")
	if ti.Config.Fsync != log.FsyncNever || ti.Config.RetentionAge != time.Hour || len(ti.Partitions) != 2 || ti.Config.Partitions != 2 {
		t.Errorf("after SetTopicConfig: %+v (partitions must stay 2)", ti)
	}
	// The config is replaced: a zero field is the default again.
	if err := l.SetTopicConfig("t", log.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	ti, _ = l.Topic("t")
	if ti.Config.Fsync == log.FsyncNever || ti.Config.RetentionAge == time.Hour || ti.Config.Fsync == "" {
		t.Errorf("a zero config did not restore the defaults: %+v", ti.Config)
	}
	appendOK(t, l, "t", 1, mk(1, ts))
	wantErr(t, "SetTopicConfig with a bad fsync", l.SetTopicConfig("t", log.TopicConfig{Fsync: "x"}), log.ErrInvalidConfig)
	wantErr(t, "SetTopicConfig of an unknown topic", l.SetTopicConfig("nope", log.TopicConfig{}), log.ErrUnknownTopic)
}

func testAppend(t *testing.T, l log.Log) {
	create(t, l, "t", log.TopicConfig{Partitions: 2})
	for _, fsync := range []log.FsyncPolicy{log.FsyncAlways, log.FsyncInterval, log.FsyncNever} {
		if err := l.SetTopicConfig("t", log.TopicConfig{Fsync: fsync}); err != nil {
			t.Fatal(err)
		}
		_, hwm := offsets(t, l, "t", 0)
		// One append of two concatenated batches: offsets are dense from
		// the partition's next offset, written into the caller's bytes
		// (and the leader epoch stamped to the node's epoch: 0 for a log
		// without log.LeaderEpochs).
		b1, b2 := mk(3, ts), mk(2, ts+10)
		b1[batch.OffLeaderEpoch+3] = 7
		data := append(append([]byte(nil), b1...), b2...)
		base := appendOK(t, l, "t", 0, data)
		if base != hwm {
			t.Fatalf("%s: base %d, want the HWM %d", fsync, base, hwm)
		}
		hs, err := batch.ValidateAll(data)
		if err != nil {
			t.Fatalf("%s: the caller's bytes after Append: %v", fsync, err)
		}
		if want := nodeEpoch(l); hs[0].BaseOffset != base || hs[1].BaseOffset != base+3 || hs[0].LeaderEpoch != want {
			t.Errorf("%s: caller's batches now have bases %d, %d, leader epoch %d; want %d, %d, %d",
				fsync, hs[0].BaseOffset, hs[1].BaseOffset, hs[0].LeaderEpoch, base, base+3, want)
		}
		if _, h := offsets(t, l, "t", 0); h != base+5 {
			t.Errorf("%s: HWM %d after the acknowledged append, want %d", fsync, h, base+5)
		}
		got, err := l.Read("t", 0, base, 1<<20)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: read back %d bytes (%v), want the appended bytes exactly", fsync, len(got), err)
		}
	}
	if _, hwm := offsets(t, l, "t", 1); hwm != 0 {
		t.Errorf("partition 1 moved to %d by appends to partition 0", hwm)
	}
	rs := records(t, l, "t", 0, 0)
	if len(rs) != 15 {
		t.Fatalf("%d records, want 15", len(rs))
	}
	for i, r := range rs {
		if r.Offset != int64(i) {
			t.Fatalf("record %d has offset %d", i, r.Offset)
		}
	}
	if st := l.Stats(); st.AppendedRecords < 15 || st.AppendedBatches < 6 || st.AppendedBytes == 0 {
		t.Errorf("Stats after 15 records in 6 batches: %+v", st)
	}
}

func testAppendErrors(t *testing.T, l log.Log) {
	ctx := context.Background()
	create(t, l, "t", log.TopicConfig{Partitions: 2, MaxBatchBytes: 300})
	_, err := l.Append(ctx, "nope", 0, mk(1, ts))
	wantErr(t, "Append to an unknown topic", err, log.ErrUnknownTopic)
	for _, p := range []int32{-1, 2} {
		_, err = l.Append(ctx, "t", p, mk(1, ts))
		wantErr(t, fmt.Sprintf("Append to partition %d", p), err, log.ErrUnknownPartition)
	}
	good := mk(2, ts)
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-1] ^= 0xff
	for name, data := range map[string][]byte{
		"bad CRC":   badCRC,
		"truncated": good[:len(good)-3],
		"empty":     {},
		"garbage":   bytes.Repeat([]byte{0x42}, 100),
		"good+tail": append(append([]byte(nil), good...), 1, 2, 3),
	} {
		_, err = l.Append(ctx, "t", 0, data)
		wantErr(t, "Append of a "+name+" batch", err, log.ErrCorruptBatch)
	}
	_, err = l.Append(ctx, "t", 0, mk(40, ts))
	wantErr(t, "Append of a batch over MaxBatchBytes", err, log.ErrBatchTooLarge)
	if _, hwm := offsets(t, l, "t", 0); hwm != 0 {
		t.Errorf("refused appends moved the HWM to %d", hwm)
	}
	if base := appendOK(t, l, "t", 0, good); base != 0 {
		t.Errorf("first good append at %d, want 0", base)
	}
}

func testAppendAsync(t *testing.T, l log.Log) {
	create(t, l, "t", log.TopicConfig{})
	const n = 200
	var (
		mu    sync.Mutex
		bases []int64
		wg    sync.WaitGroup
	)
	wg.Add(n)
	for range n {
		l.AppendAsync("t", 0, mk(2, ts), func(base int64, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("AppendAsync: %v", err)
			}
			mu.Lock()
			bases = append(bases, base)
			mu.Unlock()
		})
	}
	l.AppendAsync("t", 0, mk(1, ts), nil) // done may be nil
	waitGroup(t, &wg, "AppendAsync callbacks")
	for i, b := range bases {
		if b != int64(2*i) {
			t.Fatalf("callbacks in order %v..., want bases 0, 2, 4, ... in call order", bases[:min(len(bases), i+1)])
		}
	}
	// Two partitions: their failures may complete in either order (the
	// order is promised per partition only).
	unknown, corrupt := make(chan error, 1), make(chan error, 1)
	l.AppendAsync("nope", 0, mk(1, ts), func(_ int64, err error) { unknown <- err })
	l.AppendAsync("t", 0, []byte("junk"), func(_ int64, err error) { corrupt <- err })
	for _, c := range []struct {
		errc chan error
		want error
	}{{unknown, log.ErrUnknownTopic}, {corrupt, log.ErrCorruptBatch}} {
		select {
		case err := <-c.errc:
			wantErr(t, "AppendAsync failure", err, c.want)
		case <-time.After(10 * time.Second):
			t.Fatalf("a failed AppendAsync (want %v) never called done", c.want)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, hwm := offsets(t, l, "t", 0); hwm == 2*n+1 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("HWM %d, want %d (the append with a nil done)", hwm, 2*n+1)
		}
	}
}

func waitGroup(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not complete", what)
	}
}

func testAppendConcurrent(t *testing.T, l log.Log) {
	create(t, l, "t", log.TopicConfig{})
	const writers, each = 8, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[int64]bool{}
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				base, err := l.Append(context.Background(), "t", 0, mk(1, ts))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[base] {
					t.Errorf("base %d given twice", base)
				}
				seen[base] = true
				mu.Unlock()
			}
		}()
	}
	waitGroup(t, &wg, "concurrent appends")
	if _, hwm := offsets(t, l, "t", 0); hwm != writers*each {
		t.Errorf("HWM %d, want %d", hwm, writers*each)
	}
}

// nodeEpoch is the leader epoch l stamps into appended batches.
func nodeEpoch(l log.Log) int32 {
	if le, ok := l.(log.LeaderEpochs); ok {
		return le.NodeEpoch()
	}
	return 0
}

// mkAt is mk with the leader epoch of l's own appends (AppendAt refuses an
// epoch older than the partition's latest).
func mkAt(l log.Log, n int, ts int64) []byte {
	b := mk(n, ts)
	binary.BigEndian.PutUint32(b[batch.OffLeaderEpoch:], uint32(nodeEpoch(l)))
	return b
}

func testAppendAt(t *testing.T, l log.Log) {
	ctx := context.Background()
	create(t, l, "t", log.TopicConfig{})
	appendOK(t, l, "t", 0, mk(2, ts))
	b := mkAt(l, 3, ts)
	batch.SetBaseOffset(b, 5)
	wantErr(t, "AppendAt past the next offset", l.AppendAt(ctx, "t", 0, b), log.ErrNotNextOffset)
	batch.SetBaseOffset(b, 1)
	wantErr(t, "AppendAt before the next offset", l.AppendAt(ctx, "t", 0, b), log.ErrNotNextOffset)
	batch.SetBaseOffset(b, 2)
	b2 := mkAt(l, 1, ts)
	batch.SetBaseOffset(b2, 5)
	if err := l.AppendAt(ctx, "t", 0, append(b, b2...)); err != nil {
		t.Fatalf("AppendAt of two batches at the next offsets: %v", err)
	}
	// Idempotence is skipped: the same producer batch twice is taken.
	for off := int64(6); off < 8; off++ {
		p := idem(9, 0, 0, 1)
		binary.BigEndian.PutUint32(p[batch.OffLeaderEpoch:], uint32(nodeEpoch(l)))
		batch.SetBaseOffset(p, off)
		if err := l.AppendAt(ctx, "t", 0, p); err != nil {
			t.Fatalf("AppendAt of a repeated producer batch: %v", err)
		}
	}
	if _, hwm := offsets(t, l, "t", 0); hwm != 8 {
		t.Errorf("HWM %d, want 8", hwm)
	}
	gap := mkAt(l, 1, ts)
	batch.SetBaseOffset(gap, 8)
	b3 := mkAt(l, 1, ts)
	batch.SetBaseOffset(b3, 10)
	wantErr(t, "AppendAt with a gap between its batches", l.AppendAt(ctx, "t", 0, append(gap, b3...)), log.ErrNotNextOffset)
	wantErr(t, "AppendAt to an unknown topic", l.AppendAt(ctx, "nope", 0, gap), log.ErrUnknownTopic)
}

func testRead(t *testing.T, l log.Log) {
	create(t, l, "t", log.TopicConfig{})
	var sizes []int
	for i := range 4 { // batch i: offsets 5i..5i+4
		b := mk(5, ts+int64(i)*100)
		sizes = append(sizes, len(b))
		appendOK(t, l, "t", 0, b)
	}
	// The batch holding the offset comes first, whole, even though it
	// starts before it.
	data, err := l.Read("t", 0, 7, 1)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := batch.ParseHeader(data)
	if h.BaseOffset != 5 || len(data) != sizes[1] {
		t.Errorf("Read(7, maxBytes 1): base %d, %d bytes; want the whole batch at 5 (%d bytes)", h.BaseOffset, len(data), sizes[1])
	}
	// Whole batches only, stopping before maxBytes is exceeded.
	data, err = l.Read("t", 0, 0, sizes[0]+sizes[1]+sizes[2]/2)
	if hs, verr := batch.ValidateAll(data); err != nil || verr != nil || len(hs) != 2 {
		t.Errorf("Read(0, two and a half batches): %d batches (%v, %v), want 2 whole", len(hs), err, verr)
	}
	data, err = l.Read("t", 0, 0, 1<<20)
	if hs, _ := batch.ValidateAll(data); err != nil || len(hs) != 4 {
		t.Errorf("Read(0, 1 MiB): %d batches (%v), want 4", len(hs), err)
	}
	if data, err := l.Read("t", 0, 20, 1<<20); data != nil || err != nil {
		t.Errorf("Read at the HWM: %d bytes, %v; want nil, nil", len(data), err)
	}
	for _, off := range []int64{21, -1} {
		_, err := l.Read("t", 0, off, 1<<20)
		wantErr(t, fmt.Sprintf("Read(%d) with HWM 20", off), err, log.ErrOffsetOutOfRange)
	}
	_, err = l.Read("t", 1, 0, 1)
	wantErr(t, "Read of an unknown partition", err, log.ErrUnknownPartition)
	_, err = l.Read("nope", 0, 0, 1)
	wantErr(t, "Read of an unknown topic", err, log.ErrUnknownTopic)
	if start, hwm := offsets(t, l, "t", 0); start != 0 || hwm != 20 {
		t.Errorf("Offsets = %d, %d; want 0, 20", start, hwm)
	}
	ti, _ := l.Topic("t")
	if pi := ti.Partitions[0]; pi.Start != 0 || pi.HWM != 20 {
		t.Errorf("Topic().Partitions[0] = %+v, want start 0, HWM 20", pi)
	}
}

func testOffsetForTime(t *testing.T, l log.Log) {
	create(t, l, "t", log.TopicConfig{})
	for i := range 3 { // batch i: offsets 4i..4i+3, timestamps ts+1000i .. +3
		appendOK(t, l, "t", 0, mk(4, ts+int64(i)*1000))
	}
	for _, c := range []struct{ at, want int64 }{
		{0, 0}, {ts, 0}, {ts + 3, 0}, {ts + 4, 4}, {ts + 1000, 4}, {ts + 1500, 8}, {ts + 2003, 8}, {ts + 2004, 12}, {ts + 1e9, 12},
	} {
		got, err := l.OffsetForTime("t", 0, c.at)
		if err != nil || got != c.want {
			t.Errorf("OffsetForTime(ts%+d) = %d, %v; want %d", c.at-ts, got, err, c.want)
		}
	}
	_, err := l.OffsetForTime("nope", 0, ts)
	wantErr(t, "OffsetForTime of an unknown topic", err, log.ErrUnknownTopic)
}

func testIdempotence(t *testing.T, l log.Log) {
	ctx := context.Background()
	create(t, l, "t", log.TopicConfig{})
	// Batches of producer 7: sequence 0..5, one record each, at offsets
	// 0..5.
	for seq := range int32(6) {
		if base := appendOK(t, l, "t", 0, idem(7, 0, seq, 1)); base != int64(seq) {
			t.Fatalf("sequence %d at offset %d", seq, base)
		}
	}
	// A repeat of one of the last five is not written again: the
	// original offset comes back with ErrDuplicateSequence.
	for seq := int32(1); seq < 6; seq++ {
		base, err := l.Append(ctx, "t", 0, idem(7, 0, seq, 1))
		if !errors.Is(err, log.ErrDuplicateSequence) || base != int64(seq) {
			t.Errorf("repeat of sequence %d: %d, %v; want %d, ErrDuplicateSequence", seq, base, err, seq)
		}
	}
	// Older than the window of five: not known as a duplicate, so out of
	// order.
	_, err := l.Append(ctx, "t", 0, idem(7, 0, 0, 1))
	wantErr(t, "repeat of a sequence outside the window", err, log.ErrOutOfOrderSequence)
	_, err = l.Append(ctx, "t", 0, idem(7, 0, 8, 1))
	wantErr(t, "a sequence gap", err, log.ErrOutOfOrderSequence)
	// A duplicate inside a multi-batch append is refused whole.
	_, err = l.Append(ctx, "t", 0, append(idem(7, 0, 6, 1), idem(7, 0, 5, 1)...))
	wantErr(t, "a duplicate inside a multi-batch append", err, log.ErrOutOfOrderSequence)
	if _, hwm := offsets(t, l, "t", 0); hwm != 6 {
		t.Fatalf("refused batches were written: HWM %d, want 6", hwm)
	}
	// Several batches of one producer in one append continue each other.
	if base := appendOK(t, l, "t", 0, append(idem(7, 0, 6, 2), idem(7, 0, 8, 1)...)); base != 6 {
		t.Errorf("multi-batch append at %d, want 6", base)
	}
	// A producer the partition has not seen may start at any sequence;
	// producers are independent.
	if base := appendOK(t, l, "t", 0, idem(8, 0, 40, 2)); base != 9 {
		t.Errorf("new producer's first batch at %d, want 9", base)
	}
	appendOK(t, l, "t", 0, idem(7, 0, 9, 1))
	base, err := l.Append(ctx, "t", 0, idem(8, 0, 40, 2))
	if !errors.Is(err, log.ErrDuplicateSequence) || base != 9 {
		t.Errorf("repeat of producer 8's batch: %d, %v; want 9, ErrDuplicateSequence", base, err)
	}
	// Batches without a producer id are never checked.
	appendOK(t, l, "t", 0, mk(1, ts))
	appendOK(t, l, "t", 0, mk(1, ts))
	// The state is per partition.
	create(t, l, "u", log.TopicConfig{Partitions: 2})
	appendOK(t, l, "u", 0, idem(7, 0, 0, 1))
	appendOK(t, l, "u", 1, idem(7, 0, 0, 1))
}

func testProducerEpoch(t *testing.T, l log.Log) {
	ctx := context.Background()
	create(t, l, "t", log.TopicConfig{})
	appendOK(t, l, "t", 0, idem(7, 3, 0, 2))
	appendOK(t, l, "t", 0, idem(7, 3, 2, 1))
	// A newer epoch starts over at any sequence.
	if base := appendOK(t, l, "t", 0, idem(7, 4, 0, 1)); base != 3 {
		t.Errorf("new epoch's first batch at %d, want 3", base)
	}
	_, err := l.Append(ctx, "t", 0, idem(7, 3, 3, 1))
	wantErr(t, "a batch of an older epoch", err, log.ErrInvalidProducerEpoch)
	_, err = l.Append(ctx, "t", 0, idem(7, 3, 0, 2))
	wantErr(t, "a repeat from an older epoch", err, log.ErrInvalidProducerEpoch)
	appendOK(t, l, "t", 0, idem(7, 4, 1, 1))
	if _, hwm := offsets(t, l, "t", 0); hwm != 5 {
		t.Errorf("HWM %d, want 5", hwm)
	}
}

func testWatch(t *testing.T, l log.Log) {
	ctx := context.Background()
	create(t, l, "t", log.TopicConfig{Partitions: 2})
	w := log.NewWaiter()
	for _, fsync := range []log.FsyncPolicy{log.FsyncAlways, log.FsyncInterval, log.FsyncNever} {
		if err := l.SetTopicConfig("t", log.TopicConfig{Fsync: fsync}); err != nil {
			t.Fatal(err)
		}
		w.Reset()
		_, hwm := offsets(t, l, "t", 0)
		if err := l.Watch(w, "t", 0, hwm); err != nil {
			t.Fatal(err)
		}
		appendOK(t, l, "t", 1, mk(1, ts))
		if signalled(w, 20*time.Millisecond) {
			t.Errorf("%s: a watcher of partition 0 woken by an append to partition 1", fsync)
		}
		appendOK(t, l, "t", 0, mk(1, ts))
		if !signalled(w, 5*time.Second) {
			t.Fatalf("%s: an append to the watched partition did not signal", fsync)
		}
	}
	// Past the value already: at once.
	w.Reset()
	if err := l.Watch(w, "t", 0, 0); err != nil || !signalled(w, 0) {
		t.Errorf("Watch below the HWM: %v, not signalled at once", err)
	}
	// Not until the HWM passes after.
	w.Reset()
	_, hwm := offsets(t, l, "t", 0)
	if err := l.Watch(w, "t", 0, hwm+1); err != nil {
		t.Fatal(err)
	}
	appendOK(t, l, "t", 0, mk(1, ts))
	if signalled(w, 20*time.Millisecond) {
		t.Error("signalled with the HWM at after, not past it")
	}
	appendOK(t, l, "t", 0, mk(1, ts))
	if !signalled(w, 5*time.Second) {
		t.Error("not signalled with the HWM past after")
	}
	// Reset drops the registration.
	w.Reset()
	_, hwm = offsets(t, l, "t", 0)
	l.Watch(w, "t", 0, hwm)
	w.Reset()
	appendOK(t, l, "t", 0, mk(1, ts))
	if signalled(w, 20*time.Millisecond) {
		t.Error("a registration dropped by Reset fired")
	}
	// One waiter on several partitions; WaitHWM.
	w.Reset()
	for p := range int32(2) {
		_, hwm := offsets(t, l, "t", p)
		l.Watch(w, "t", p, hwm)
	}
	appendOK(t, l, "t", 1, mk(1, ts))
	if !signalled(w, 5*time.Second) {
		t.Error("a waiter on partitions 0 and 1 not signalled by partition 1")
	}
	_, hwm = offsets(t, l, "t", 1)
	got := make(chan error, 1)
	go func() {
		h, err := log.NewWaiter().WaitHWM(ctx, l, "t", 1, hwm)
		if err == nil && h <= hwm {
			err = fmt.Errorf("WaitHWM returned %d, not past %d", h, hwm)
		}
		got <- err
	}()
	time.Sleep(10 * time.Millisecond)
	appendOK(t, l, "t", 1, mk(1, ts))
	select {
	case err := <-got:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(5 * time.Second):
		t.Error("WaitHWM did not return after an append")
	}
	wantErr(t, "Watch of an unknown topic", l.Watch(w, "nope", 0, 0), log.ErrUnknownTopic)
	wantErr(t, "Watch of an unknown partition", l.Watch(w, "t", 2, 0), log.ErrUnknownPartition)
	// Deleting the topic signals its watchers.
	w.Reset()
	_, hwm = offsets(t, l, "t", 0)
	l.Watch(w, "t", 0, hwm)
	if err := l.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	if !signalled(w, 5*time.Second) {
		t.Error("DeleteTopic did not signal a watcher of its partition")
	}
}

func testWatchTopics(t *testing.T, l log.Log) {
	w := log.NewWaiter()
	for _, change := range []struct {
		what string
		do   func() error
	}{
		{"CreateTopic", func() error { return l.CreateTopic("t", log.TopicConfig{}) }},
		{"AddPartitions", func() error { return l.AddPartitions("t", 2) }},
		{"DeleteTopic", func() error { return l.DeleteTopic("t") }},
	} {
		w.Reset()
		l.WatchTopics(w)
		if err := change.do(); err != nil {
			t.Fatal(err)
		}
		if !signalled(w, 5*time.Second) {
			t.Errorf("%s did not signal WatchTopics", change.what)
		}
	}
	// Appends are not topic changes.
	create(t, l, "u", log.TopicConfig{})
	w.Reset()
	l.WatchTopics(w)
	appendOK(t, l, "u", 0, mk(1, ts))
	if signalled(w, 20*time.Millisecond) {
		t.Error("an append signalled WatchTopics")
	}
}

func testHoldRetention(t *testing.T, l log.Log) {
	create(t, l, "t", log.TopicConfig{RetentionAge: time.Millisecond})
	l.HoldRetention("forward/r")
	l.HoldRetention("forward/r") // twice is fine
	if err := l.Meta().SetCursor("forward/r", "t", 0, 0); err != nil {
		t.Fatal(err)
	}
	appendOK(t, l, "t", 0, mk(3, ts))
	if rs := records(t, l, "t", 0, 0); len(rs) != 3 {
		t.Errorf("%d records readable under a held cursor, want 3", len(rs))
	}
}

func testClose(t *testing.T, l log.Log) {
	ctx := context.Background()
	create(t, l, "t", log.TopicConfig{})
	// Appends made before Close are completed by it.
	done := make(chan error, 1)
	l.AppendAsync("t", 0, mk(1, ts), func(_ int64, err error) { done <- err })
	w, tw := log.NewWaiter(), log.NewWaiter()
	if err := l.Watch(w, "t", 0, 1); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("an append made before Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close left an append without its done call")
	}
	if !signalled(w, 5*time.Second) {
		t.Error("Close did not signal a watcher")
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, err := l.Append(ctx, "t", 0, mk(1, ts))
	wantErr(t, "Append after Close", err, log.ErrClosed)
	wantErr(t, "AppendAt after Close", l.AppendAt(ctx, "t", 0, mk(1, ts)), log.ErrClosed)
	l.AppendAsync("t", 0, mk(1, ts), func(_ int64, err error) { done <- err })
	select {
	case err := <-done:
		wantErr(t, "AppendAsync after Close", err, log.ErrClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("AppendAsync after Close never called done")
	}
	_, err = l.Read("t", 0, 0, 1)
	wantErr(t, "Read after Close", err, log.ErrClosed)
	_, _, err = l.Offsets("t", 0)
	wantErr(t, "Offsets after Close", err, log.ErrClosed)
	wantErr(t, "Watch after Close", l.Watch(w, "t", 0, 0), log.ErrClosed)
	wantErr(t, "CreateTopic after Close", l.CreateTopic("u", log.TopicConfig{}), log.ErrClosed)
	wantErr(t, "DeleteTopic after Close", l.DeleteTopic("t"), log.ErrClosed)
	l.WatchTopics(tw)
	if !signalled(tw, 0) {
		t.Error("WatchTopics after Close did not signal at once")
	}
}
