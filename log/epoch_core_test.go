package log

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/vfs"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

func epochsOf(t *testing.T, l Log) LeaderEpochs {
	t.Helper()
	le, ok := l.(LeaderEpochs)
	if !ok {
		t.Fatal("log does not implement LeaderEpochs")
	}
	return le
}

// batchEpochs reads every batch of a partition: the history its batches
// imply, the epoch of each batch by base offset, and whether offsets were
// missing (lost to a power cut under fsync "never").
func batchEpochs(t *testing.T, l Log, topic string, p int32) ([]EpochStart, map[int64]int32, bool) {
	t.Helper()
	start, hwm, err := l.Offsets(topic, p)
	if err != nil {
		t.Fatal(err)
	}
	var hist []EpochStart
	by := map[int64]int32{}
	gaps := false
	for off := start; off < hwm; {
		data, err := l.Read(topic, p, off, 1<<20)
		var ce *CorruptError
		if errors.As(err, &ce) || err == nil && len(data) == 0 {
			off++ // offsets lost between segments
			gaps = true
			continue
		}
		if err != nil {
			t.Fatalf("Read %s/%d at %d: %v", topic, p, off, err)
		}
		for len(data) > 0 {
			h, err := batch.ParseHeader(data)
			if err != nil {
				t.Fatal(err)
			}
			if h.LastOffset() >= off {
				by[h.BaseOffset] = h.LeaderEpoch
				if n := len(hist); n == 0 || hist[n-1].Epoch != h.LeaderEpoch {
					hist = append(hist, EpochStart{Epoch: h.LeaderEpoch, StartOffset: h.BaseOffset})
				}
				off = h.LastOffset() + 1
			}
			data = data[h.Size():]
		}
	}
	return hist, by, gaps
}

// checkHistory compares a partition's history with what its batches
// imply (an entry at the log end, an epoch not yet written, is allowed).
// With offsets lost between segments, every batch must still carry the
// epoch the history gives its offset.
func checkHistory(t *testing.T, l Log, topic string, p int32) []EpochStart {
	t.Helper()
	got, err := epochsOf(t, l).EpochHistory(topic, p)
	if err != nil {
		t.Fatal(err)
	}
	want, by, gaps := batchEpochs(t, l, topic, p)
	_, hwm, _ := l.Offsets(topic, p)
	for i := range got {
		if got[i].StartOffset > hwm || i > 0 && (got[i].StartOffset <= got[i-1].StartOffset || got[i].Epoch <= got[i-1].Epoch) {
			t.Fatalf("%s/%d: history %v out of order or past the end %d", topic, p, got, hwm)
		}
	}
	if gaps {
		var entries []epochEntry
		for _, e := range got {
			entries = append(entries, epochEntry{e.Epoch, e.StartOffset, e.Replicated})
		}
		for off, e := range by {
			if want := epochAt(entries, off); want != e {
				t.Fatalf("%s/%d: batch at %d has epoch %d, history %v", topic, p, off, e, got)
			}
		}
		return got
	}
	var cmp []EpochStart // without Replicated (batches do not say)
	for _, e := range got {
		cmp = append(cmp, EpochStart{Epoch: e.Epoch, StartOffset: e.StartOffset})
	}
	if n := len(cmp); n > 0 && cmp[n-1].StartOffset == hwm {
		cmp = cmp[:n-1]
	}
	if len(want) > 0 && len(cmp) > 0 && cmp[0].StartOffset < want[0].StartOffset {
		t.Fatalf("history %v starts before the log (%v)", got, want)
	}
	if !reflect.DeepEqual(cmp, want) && !(len(cmp) == 0 && len(want) == 0) {
		t.Fatalf("%s/%d: history %v, batches say %v", topic, p, got, want)
	}
	return got
}

func TestEpochStampedAndSurvivesReopen(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			dir := t.TempDir()
			mod := func(o *Options) { o.NoSharedSegments = !shared }
			l := testOpen(t, dir, mod)
			if e := epochsOf(t, l).NodeEpoch(); e != 1 {
				t.Fatalf("first open: node epoch %d, want 1", e)
			}
			ctx := context.Background()
			if err := l.CreateTopic("t", TopicConfig{Partitions: 2}); err != nil {
				t.Fatal(err)
			}
			b := mkBatch(3, "a")
			binary.BigEndian.PutUint32(b[batch.OffLeaderEpoch:], 77) // a producer's value is overwritten
			if _, err := l.Append(ctx, "t", 0, b); err != nil {
				t.Fatal(err)
			}
			if got := int32(binary.BigEndian.Uint32(b[batch.OffLeaderEpoch:])); got != 1 {
				t.Fatalf("stamped epoch %d in the caller's bytes, want 1", got)
			}
			l.Append(ctx, "t", 0, mkBatch(2, "b"))
			if h := checkHistory(t, l, "t", 0); !reflect.DeepEqual(h, []EpochStart{{1, 0, false}}) {
				t.Fatalf("history %v", h)
			}
			l.Close()
			// A clean Close: the next open goes on in the same epoch.
			l = testOpen(t, dir, mod)
			if e := epochsOf(t, l).NodeEpoch(); e != 1 {
				t.Fatalf("open after a clean close: node epoch %d, want 1", e)
			}
			if _, err := l.Append(ctx, "t", 0, mkBatch(2, "c")); err != nil {
				t.Fatal(err)
			}
			if h := checkHistory(t, l, "t", 0); len(h) != 1 {
				t.Fatalf("history %v after a clean restart, want one epoch", h)
			}
			l.Close()
			// Unclean stops: a new epoch each.
			for round := int32(2); round <= 4; round++ {
				markUnclean(t, vfs.Default, dir)
				l = testOpen(t, dir, mod)
				if e := epochsOf(t, l).NodeEpoch(); e != round {
					t.Fatalf("open %d: node epoch %d", round, e)
				}
				if round != 3 { // an open without appends leaves no entry
					if _, err := l.Append(ctx, "t", 0, mkBatch(2, fmt.Sprint("r", round))); err != nil {
						t.Fatal(err)
					}
				}
				l.Close()
			}
			l = testOpen(t, dir, mod)
			defer l.Close()
			want := []EpochStart{{1, 0, false}, {2, 7, false}, {4, 9, false}}
			if h := checkHistory(t, l, "t", 0); !reflect.DeepEqual(h, want) {
				t.Fatalf("history %v, want %v", h, want)
			}
			if _, by, _ := batchEpochs(t, l, "t", 0); by[0] != 1 || by[5] != 1 || by[7] != 2 || by[9] != 4 {
				t.Fatalf("batch epochs %v", by)
			}
			if h := checkHistory(t, l, "t", 1); len(h) != 1 || h[0] != (EpochStart{1, 0, false}) {
				t.Fatalf("untouched partition's history %v, want the creation entry", h)
			}
			if d := l.Check(); len(d) > 0 {
				t.Fatalf("Check: %v", d)
			}
		})
	}
}

func TestEpochEnd(t *testing.T) {
	entries := []epochEntry{{1, 0, false}, {3, 10, false}, {4, 10 + 5, false}, {7, 40, false}}
	for _, c := range []struct {
		req      int32
		epoch    int32
		end      int64
		describe string
	}{
		{-1, -1, -1, "undefined epoch"},
		{0, 0, 0, "older than every entry: (requested, first start)"},
		{1, 1, 10, "first epoch ends where 3 starts"},
		{2, 1, 10, "unknown epoch between: the largest older one"},
		{3, 3, 15, ""},
		{4, 4, 40, ""},
		{5, 4, 40, "unknown epoch between"},
		{6, 4, 40, ""},
		{7, 7, 55, "latest: the log end"},
		{8, -1, -1, "newer than every epoch"},
		{1 << 30, -1, -1, ""},
	} {
		if e, off := endFor(entries, c.req, 55); e != c.epoch || off != c.end {
			t.Errorf("endFor(%d) = (%d, %d), want (%d, %d) %s", c.req, e, off, c.epoch, c.end, c.describe)
		}
	}
	if e, off := endFor(nil, 3, 0); e != -1 || off != -1 {
		t.Errorf("empty history: (%d, %d)", e, off)
	}

	// Through the log: a history made by three opens.
	dir := t.TempDir()
	ctx := context.Background()
	l := testOpen(t, dir, nil)
	l.CreateTopic("t", TopicConfig{Partitions: 1})
	l.Append(ctx, "t", 0, mkBatch(4, "a")) // epoch 1: 0-3
	l.Close()
	markUnclean(t, vfs.Default, dir)
	l = testOpen(t, dir, nil) // epoch 2: no appends
	l.Close()
	markUnclean(t, vfs.Default, dir)
	l = testOpen(t, dir, nil) // epoch 3: 4-9
	defer l.Close()
	l.Append(ctx, "t", 0, mkBatch(6, "b"))
	le := epochsOf(t, l)
	for _, c := range []struct {
		req   int32
		epoch int32
		end   int64
	}{{0, 0, 0}, {1, 1, 4}, {2, 1, 4}, {3, 3, 10}, {4, -1, -1}, {-1, -1, -1}} {
		if e, off, err := le.EpochEnd("t", 0, c.req); err != nil || e != c.epoch || off != c.end {
			t.Errorf("EpochEnd(%d) = (%d, %d, %v), want (%d, %d)", c.req, e, off, err, c.epoch, c.end)
		}
	}
	if _, _, err := le.EpochEnd("nope", 0, 1); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("unknown topic: %v", err)
	}
	if _, _, err := le.EpochEnd("t", 5, 1); !errors.Is(err, ErrUnknownPartition) {
		t.Errorf("unknown partition: %v", err)
	}
}

// withEpoch returns a batch of n records carrying leader epoch e and base
// offset base, as an origin would send it to a mirror.
func withEpoch(n int, prefix string, base int64, e int32) []byte {
	b := mkBatch(n, prefix)
	batch.SetBaseOffset(b, base)
	binary.BigEndian.PutUint32(b[batch.OffLeaderEpoch:], uint32(e))
	return b
}

func TestAppendAtKeepsOriginEpochs(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			dir := t.TempDir()
			mod := func(o *Options) { o.NoSharedSegments = !shared }
			l := testOpen(t, dir, mod)
			ctx := context.Background()
			l.CreateTopic("m", TopicConfig{Partitions: 1})
			// The creation entry (this node's epoch at 0) holds no batch:
			// the origin's older epoch replaces it.
			if err := l.AppendAt(ctx, "m", 0, withEpoch(2, "a", 0, 0)); err != nil {
				t.Fatal(err)
			}
			two := append(withEpoch(2, "b", 2, 5), withEpoch(3, "c", 4, 6)...)
			if err := l.AppendAt(ctx, "m", 0, two); err != nil {
				t.Fatal(err)
			}
			if err := l.AppendAt(ctx, "m", 0, withEpoch(1, "d", 7, 6)); err != nil {
				t.Fatal(err)
			}
			err := l.AppendAt(ctx, "m", 0, withEpoch(1, "stale", 8, 5))
			if !errors.Is(err, ErrStaleEpoch) {
				t.Fatalf("older epoch: %v, want ErrStaleEpoch", err)
			}
			back := append(withEpoch(1, "x", 8, 9), withEpoch(1, "y", 9, 8)...)
			if err := l.AppendAt(ctx, "m", 0, back); !errors.Is(err, ErrStaleEpoch) {
				t.Fatalf("epochs going back inside one append: %v", err)
			}
			if err := l.AppendAt(ctx, "m", 0, withEpoch(1, "neg", 8, -1)); !errors.Is(err, ErrCorruptBatch) {
				t.Fatalf("negative epoch: %v", err)
			}
			want := []EpochStart{{0, 0, true}, {5, 2, true}, {6, 4, true}}
			if h := checkHistory(t, l, "m", 0); !reflect.DeepEqual(h, want) {
				t.Fatalf("history %v, want %v", h, want)
			}
			l.Close()
			l = testOpen(t, dir, mod)
			defer l.Close()
			if h := checkHistory(t, l, "m", 0); !reflect.DeepEqual(h, want) {
				t.Fatalf("after reopen: history %v, want %v", h, want)
			}
			if e := epochsOf(t, l).NodeEpoch(); e != 7 {
				t.Fatalf("node epoch %d after holding epoch 6, want 7", e)
			}
		})
	}
}

// A box restored from its mirrors (a new data dir, the same origin): its
// partitions come back by AppendAt with the epochs of its earlier
// incarnations, and local appends must go on with a later epoch.
func TestLocalAppendAfterRestoreRaisesEpoch(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, nil)
	defer l.Close()
	ctx := context.Background()
	l.CreateTopic("t", TopicConfig{Partitions: 1})
	le := epochsOf(t, l)
	if le.NodeEpoch() != 1 {
		t.Fatalf("node epoch %d", le.NodeEpoch())
	}
	if err := l.AppendAt(ctx, "t", 0, append(withEpoch(2, "a", 0, 1), withEpoch(2, "b", 2, 57)...)); err != nil {
		t.Fatal(err)
	}
	b := mkBatch(1, "local")
	if _, err := l.Append(ctx, "t", 0, b); err != nil {
		t.Fatal(err)
	}
	if le.NodeEpoch() != 58 {
		t.Fatalf("node epoch %d after a local append over epoch 57, want 58", le.NodeEpoch())
	}
	want := []EpochStart{{1, 0, true}, {57, 2, true}, {58, 4, false}}
	if h := checkHistory(t, l, "t", 0); !reflect.DeepEqual(h, want) {
		t.Fatalf("history %v, want %v", h, want)
	}
	// Equal epochs from elsewhere: a local append still starts a new one.
	l.CreateTopic("u", TopicConfig{Partitions: 1})
	if err := l.AppendAt(ctx, "u", 0, withEpoch(1, "a", 0, 58)); err != nil {
		t.Fatal(err)
	}
	l.Append(ctx, "u", 0, mkBatch(1, "local"))
	if h := checkHistory(t, l, "u", 0); !reflect.DeepEqual(h, []EpochStart{{58, 0, true}, {59, 1, false}}) {
		t.Fatalf("history %v", h)
	}
	l.Close()
	l = testOpen(t, dir, nil)
	defer l.Close()
	if e := epochsOf(t, l).NodeEpoch(); e != 59 {
		t.Fatalf("node epoch after a clean reopen %d, want 59 (kept)", e)
	}
}

// The history is rebuilt from the batches when its file is missing (a
// data dir from before epochs) or damaged (reported).
func TestEpochHistoryRebuilt(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			mem := errorfs.NewMem(1)
			dir := t.TempDir()
			mod := func(o *Options) { o.NoSharedSegments = !shared; o.FS = mem }
			l := testOpen(t, dir, mod)
			ctx := context.Background()
			l.CreateTopic("t", TopicConfig{Partitions: 2, SegmentBytes: 400})
			for open := 0; open < 3; open++ {
				if open > 0 {
					markUnclean(t, mem, dir)
					l = testOpen(t, dir, mod)
				}
				for i := 0; i < 6; i++ {
					l.Append(ctx, "t", 0, mkBatch(2, fmt.Sprint("o", open)))
					l.Append(ctx, "t", 1, mkBatch(1, fmt.Sprint("o", open)))
				}
				l.Close()
			}
			want := []EpochStart{{1, 0, false}, {2, 12, false}, {3, 24, false}}
			mem.Remove(filepath.Join(dir, "t", "0", epochFileName))
			// Damage: a flipped bit in the middle of the file.
			p1 := filepath.Join(dir, "t", "1", epochFileName)
			if err := mem.FlipBit(p1, epochHeaderSize+epochRecordSize+9, 3); err != nil {
				t.Fatal(err)
			}
			markUnclean(t, mem, dir)
			l = testOpen(t, dir, mod)
			defer l.Close()
			if h := checkHistory(t, l, "t", 0); !reflect.DeepEqual(h, want) {
				t.Fatalf("rebuilt history %v, want %v", h, want)
			}
			if h := checkHistory(t, l, "t", 1); !reflect.DeepEqual(h, []EpochStart{{1, 0, false}, {2, 6, false}, {3, 12, false}}) {
				t.Fatalf("rebuilt history %v", h)
			}
			found := false
			for _, d := range l.Stats().Damaged {
				found = found || d.File == filepath.Join("t", "1", epochFileName)
			}
			if !found {
				t.Fatalf("damaged history not reported: %v", l.Stats().Damaged)
			}
			if e := epochsOf(t, l).NodeEpoch(); e != 4 {
				t.Fatalf("node epoch %d", e)
			}
		})
	}
}

// Bit rot in the leader epoch of a stored batch (not covered by its CRC)
// is refused at read, found by Check.
func TestEpochBitRotDetected(t *testing.T) {
	mem := errorfs.NewMem(1)
	dir := t.TempDir()
	l := testOpen(t, dir, func(o *Options) { o.FS = mem })
	ctx := context.Background()
	l.CreateTopic("t", TopicConfig{Partitions: 1, SegmentBytes: 300})
	for i := 0; i < 8; i++ {
		l.Append(ctx, "t", 0, mkBatch(1, "v"))
	}
	l.Close()
	seg := filepath.Join(dir, "t", "0", segmentName(0))
	if err := mem.FlipBit(seg, batch.OffLeaderEpoch+2, 0); err != nil {
		t.Fatal(err)
	}
	l = testOpen(t, dir, func(o *Options) { o.FS = mem })
	defer l.Close()
	_, err := l.Read("t", 0, 0, 1<<20)
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("read of a batch with a rotten epoch: %v", err)
	}
	if _, err := l.Read("t", 0, 4, 1<<20); err != nil {
		t.Fatalf("later batches: %v", err)
	}
}

// Power cuts at random points of a workload spanning several opens: the
// history recovered matches the batches recovered, every time.
func TestEpochHistoryAfterPowerCut(t *testing.T) {
	modes := []errorfs.CrashMode{errorfs.CrashDropUnsynced, errorfs.CrashTornWrite, errorfs.CrashZeroTail, errorfs.CrashKeepAll}
	for _, shared := range []bool{false, true} {
		for _, fsync := range []FsyncPolicy{FsyncAlways, FsyncNever} {
			t.Run(fmt.Sprintf("shared=%v/%s", shared, fsync), func(t *testing.T) {
				for seed := uint64(1); seed <= 6; seed++ {
					mem := errorfs.NewMem(seed)
					dir := t.TempDir()
					mod := func(fs *errorfs.MemFS) func(o *Options) {
						return func(o *Options) { o.NoSharedSegments = !shared; o.FS = fs; o.SharedSegmentBytes = 4 << 10 }
					}
					l := testOpen(t, dir, mod(mem))
					l.CreateTopic("t", TopicConfig{Partitions: 2, SegmentBytes: 700, Fsync: fsync})
					fs := mem
					lastEpoch := int32(0)
					for round := 0; round < 4; round++ {
						ctx := context.Background()
						n := 3 + int(seed)%4 + round
						for i := 0; i < n; i++ {
							l.Append(ctx, "t", int32(i%2), mkBatch(1+i%3, fmt.Sprint("r", round)))
						}
						e := epochsOf(t, l).NodeEpoch()
						if e <= lastEpoch {
							t.Fatalf("seed %d round %d: epoch %d after %d", seed, round, e, lastEpoch)
						}
						lastEpoch = e
						// A power cut: what the disk holds now is what the
						// next open finds (closing the old log then writes
						// to the old file system only).
						crashed := fs.Crash(modes[(int(seed)+round)%len(modes)])
						l.Close()
						fs = crashed
						l = testOpen(t, dir, mod(fs))
						for p := int32(0); p < 2; p++ {
							checkHistory(t, l, "t", p)
						}
						if d := l.Check(); len(d) > 0 && fsync == FsyncAlways {
							t.Fatalf("seed %d round %d: Check: %v", seed, round, d)
						}
					}
					l.Close()
				}
			})
		}
	}
}

func FuzzEpochFile(f *testing.F) {
	h := epochHistory{entries: []epochEntry{{1, 0, false}, {3, 10, true}}, marks: []truncMark{{offset: 5, sharedSeq: 7, done: true}}}
	f.Add(encodeEpochFile(&h))
	b := encodeEpochFile(&epochHistory{entries: []epochEntry{{2, 0, false}}})
	b = append(b, epochRecord(epochRecTruncate, 0, 0, 0, 3)...)
	b = append(b, epochRecord(epochRecDone, 0, 0, 0, 0)...)
	b = append(b, epochRecord(epochRecStart, 0, 4, 0, 0)...)
	f.Add(b)
	f.Add(b[:len(b)-5])
	f.Fuzz(func(t *testing.T, b []byte) {
		h, valid, err := decodeEpochFile(b)
		if err != nil {
			return
		}
		if valid > int64(len(b)) || valid < epochHeaderSize || (valid-epochHeaderSize)%epochRecordSize != 0 {
			t.Fatalf("valid %d of %d bytes", valid, len(b))
		}
		for i := 1; i < len(h.entries); i++ {
			if h.entries[i].start <= h.entries[i-1].start || h.entries[i].epoch <= h.entries[i-1].epoch {
				t.Fatalf("entries out of order: %v", h.entries)
			}
		}
		// What decodes re-encodes to the same history.
		h2, _, err := decodeEpochFile(encodeEpochFile(&h))
		if err != nil || !slices.Equal(h.entries, h2.entries) || !slices.Equal(h.marks, h2.marks) {
			t.Fatalf("re-encoded: %v %v, was %v (%v)", h2.entries, h2.marks, h.entries, err)
		}
	})
}

// Check and CheckDir (runnel check) find a history that does not match
// the batches, a batch whose epoch does not match the history, and a
// damaged history file.
func TestCheckEpochHistory(t *testing.T) {
	mem := errorfs.NewMem(1)
	dir := t.TempDir()
	mod := func(o *Options) { o.FS = mem }
	l := testOpen(t, dir, mod)
	ctx := context.Background()
	l.CreateTopic("t", TopicConfig{Partitions: 3, SegmentBytes: 300})
	for i := 0; i < 6; i++ {
		for p := int32(0); p < 3; p++ {
			l.Append(ctx, "t", p, mkBatch(1, "v"))
		}
	}
	l.Close()
	if d, err := CheckDirFS(mem, dir); err != nil || len(d) > 0 {
		t.Fatalf("clean dir: %v %v", d, err)
	}
	// t/0: the history says epoch 9 starts at offset 3 (a batch of epoch 1).
	h := epochHistory{entries: []epochEntry{{1, 0, false}, {9, 3, false}}}
	if err := writeFileAtomic(mem, filepath.Join(dir, "t", "0", epochFileName), encodeEpochFile(&h)); err != nil {
		t.Fatal(err)
	}
	// t/1: a batch's epoch flipped; t/2: the history file damaged.
	if err := mem.FlipBit(filepath.Join(dir, "t", "1", segmentName(0)), batch.OffLeaderEpoch+3, 1); err != nil {
		t.Fatal(err)
	}
	if err := mem.FlipBit(filepath.Join(dir, "t", "2", epochFileName), 3, 0); err != nil {
		t.Fatal(err)
	}
	d, err := CheckDirFS(mem, dir)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, x := range d {
		found[filepath.Dir(x.File)] = true
		t.Logf("damage: %+v", x)
	}
	for _, p := range []string{"t/0", "t/1", "t/2"} {
		if !found[p] {
			t.Errorf("CheckDir found nothing in %s: %v", p, d)
		}
	}
	// Online: open rebuilds t/2's history (damage reported at open) and
	// trusts t/0's file, whose entry at 3 Check and reads refuse.
	l = testOpen(t, dir, mod)
	defer l.Close()
	found = map[string]bool{}
	for _, x := range l.Check() {
		found[filepath.Dir(x.File)] = true
	}
	if !found["t/0"] || !found["t/1"] {
		t.Errorf("Check: %v", l.Check())
	}
}

// BenchmarkFirstAppendAfterOpen: after an unclean stop, the first append
// to each partition records the new epoch in the partition's history (one
// fdatasync of its file); after a clean Close the epoch goes on and
// nothing is recorded. One round appends one small batch to each of 1,000
// partitions from one goroutine (AppendAsync, as ingest does) and waits
// for all; "first" is the round right after open, "next" the round after.
func BenchmarkFirstAppendAfterOpen(b *testing.B) {
	for _, unclean := range []bool{false, true} {
		b.Run(map[bool]string{false: "clean", true: "unclean"}[unclean], func(b *testing.B) {
			const parts = 1000
			dir := b.TempDir()
			mod := func(o *Options) { o.NoSharedSegments = false }
			l := testOpen(&testing.T{}, dir, mod)
			if err := l.CreateTopic("t", TopicConfig{Partitions: parts}); err != nil {
				b.Fatal(err)
			}
			round := func(l Log) time.Duration {
				start := time.Now()
				var wg sync.WaitGroup
				wg.Add(parts)
				for p := int32(0); p < parts; p++ {
					l.AppendAsync("t", p, mkBatch(1, "v"), func(_ int64, err error) {
						if err != nil {
							b.Error(err)
						}
						wg.Done()
					})
				}
				wg.Wait()
				return time.Since(start)
			}
			round(l)
			l.Close()
			var first, next time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if unclean {
					markUnclean(b, vfs.Default, dir)
				}
				b.StartTimer()
				l := testOpen(&testing.T{}, dir, mod)
				first += round(l)
				next += round(l)
				b.StopTimer()
				l.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(first.Microseconds())/1000/float64(b.N), "first-ms/round")
			b.ReportMetric(float64(next.Microseconds())/1000/float64(b.N), "next-ms/round")
		})
	}
}

// markUnclean makes the next open of dir see an unclean stop (as after
// kill -9 once everything was synced).
func markUnclean(t testing.TB, fs vfs.FS, dir string) {
	t.Helper()
	e, _, err := readNodeEpoch(fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeNodeEpoch(fs, dir, e, false); err != nil {
		t.Fatal(err)
	}
}
