package log

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/runnel/runnel/log/batch"
)

// sharedOn turns shared segments (the default of Open) back on in
// testOpen.
func sharedOn(o *Options) { o.NoSharedSegments = false }

// sharedFilesOf is sharedOn with shared files rolled at n bytes.
func sharedFilesOf(n int64) func(*Options) {
	return func(o *Options) { o.NoSharedSegments = false; o.SharedSegmentBytes = n }
}

// appendRecording appends a batch of n records "<prefix>-<i>" to t/0 and
// adds their values to want.
func appendRecording(t *testing.T, l Log, want *[]string, n int, prefix string) {
	t.Helper()
	if _, err := l.Append(context.Background(), "t", 0, mkBatch(n, prefix)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		*want = append(*want, fmt.Sprintf("%s-%d", prefix, i))
	}
}

// readsBack checks that partition t/0 holds exactly the values want, in
// order.
func readsBack(t *testing.T, l Log, want []string) {
	t.Helper()
	got := readAll(t, l, "t", 0)
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		if string(got[i].Value) != want[i] {
			t.Fatalf("record %d: %q, want %q", i, got[i].Value, want[i])
		}
	}
}

// sharedFilesIn lists the shared segment files of a data dir.
func sharedFilesIn(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, sharedDirName, "*"+sharedSuffix))
	return m
}

// segmentBytesOnDisk sums the sizes of a partition's .log files.
func segmentBytesOnDisk(dir, topic string, part int) int64 {
	m, _ := filepath.Glob(filepath.Join(dir, topic, fmt.Sprint(part), "*.log"))
	var n int64
	for _, f := range m {
		if st, err := os.Stat(f); err == nil {
			n += st.Size()
		}
	}
	return n
}

// Small "always" appends are stored once, in shared files (no journal, no
// partition segment bytes), and read back across a reopen.
func TestSharedStoreOnce(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, sharedOn)
	ctx := context.Background()
	if err := l.CreateTopic("t", TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		if _, err := l.Append(ctx, "t", int32(i%4), mkBatch(2, fmt.Sprint("v", i))); err != nil {
			t.Fatal(err)
		}
	}
	st := l.Stats()
	if st.SharedCommits == 0 || st.JournalCommits != 0 {
		t.Fatalf("shared commits %d, journal commits %d", st.SharedCommits, st.JournalCommits)
	}
	for p := 0; p < 4; p++ {
		if n := segmentBytesOnDisk(dir, "t", p); n != 0 {
			t.Fatalf("partition %d has %d bytes in segment files: written twice", p, n)
		}
	}
	if len(sharedFilesIn(t, dir)) == 0 {
		t.Fatal("no shared files")
	}
	check := func(l Log) {
		t.Helper()
		for p := 0; p < 4; p++ {
			got := readAll(t, l, "t", int32(p))
			if len(got) != 20 {
				t.Fatalf("partition %d: %d records, want 20", p, len(got))
			}
			for j, r := range got {
				if want := fmt.Sprintf("v%d-%d", (j/2)*4+p, j%2); string(r.Value) != want {
					t.Fatalf("partition %d record %d: %q, want %q", p, j, r.Value, want)
				}
			}
		}
		if off, err := l.OffsetForTime("t", 1, 0); err != nil || off != 0 {
			t.Fatalf("OffsetForTime: %d %v", off, err)
		}
		if d := l.Check(); len(d) != 0 {
			t.Fatalf("Check: %+v", d)
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if d, err := CheckDir(dir); err != nil || len(d) != 0 {
		t.Fatalf("CheckDir: %v %v", d, err)
	}
	l = testOpen(t, dir, sharedOn)
	defer l.Close()
	check(l)
	if base, err := l.Append(ctx, "t", 0, mkBatch(1, "after")); err != nil || base != 20 {
		t.Fatalf("append after reopen: %d %v", base, err)
	}
}

// A partition that switches between trickle (shared) and bulk (its own
// segment files) reads back in order, across a reopen and CheckDir.
func TestSharedMixedWithSegmentFiles(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, sharedOn)
	if err := l.CreateTopic("t", TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	var want []string
	app := func(n int, prefix string) { appendRecording(t, l, &want, n, prefix) }
	for round := 0; round < 3; round++ {
		for i := 0; i < sharedAfterSmallCommits+2; i++ {
			app(1, fmt.Sprint("small", round, i))
		}
		for i := 0; i < fileAfterLargeCommits+2; i++ {
			app(2000, fmt.Sprint("big", round, i)) // about 44 KB: over 2 × JournalSmallBytes, under 4 ×
		}
	}
	readsBack(t, l, want)
	if segmentBytesOnDisk(dir, "t", 0) == 0 {
		t.Fatal("bulk appends did not go to segment files")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if d, err := CheckDir(dir); err != nil || len(d) != 0 {
		t.Fatalf("CheckDir: %v %v", d, err)
	}
	l = testOpen(t, dir, sharedOn)
	defer l.Close()
	readsBack(t, l, want)
	if d := l.Check(); len(d) != 0 {
		t.Fatalf("Check: %+v", d)
	}
}

// Retention deletes virtual segments; a shared file goes once nothing in
// it is retained, and the log start survives a reopen (deleted batches
// are not resurrected from shared files that other partitions keep).
func TestSharedRetention(t *testing.T) {
	dir := t.TempDir()
	mod := sharedFilesOf(4 << 10)
	l := testOpen(t, dir, mod)
	ctx := context.Background()
	l.CreateTopic("short", TopicConfig{Partitions: 1, SegmentBytes: 1 << 10, RetentionBytes: 2 << 10})
	l.CreateTopic("keep", TopicConfig{Partitions: 1, RetentionAge: -1})
	for i := 0; i < 200; i++ {
		if _, err := l.Append(ctx, "short", 0, mkBatch(1, fmt.Sprint("s", i))); err != nil {
			t.Fatal(err)
		}
		if i >= 196 { // the long-lived topic shares only the newest file
			if _, err := l.Append(ctx, "keep", 0, mkBatch(1, fmt.Sprint("k", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := len(sharedFilesIn(t, dir))
	li := l.(*logImpl)
	li.applyRetention()
	start, hwm, _ := l.Offsets("short", 0)
	if start == 0 || hwm != 200 {
		t.Fatalf("short: start %d hwm %d", start, hwm)
	}
	after := len(sharedFilesIn(t, dir))
	if after >= before {
		t.Fatalf("shared files: %d before retention, %d after", before, after)
	}
	got := readAll(t, l, "short", 0)
	if len(got) != int(hwm-start) || string(got[len(got)-1].Value) != "s199-0" {
		t.Fatalf("short after retention: %d records", len(got))
	}
	if k := readAll(t, l, "keep", 0); len(k) != 4 {
		t.Fatalf("keep: %d records, want 4", len(k))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = testOpen(t, dir, mod)
	defer l.Close()
	if s2, h2, _ := l.Offsets("short", 0); s2 != start || h2 != hwm {
		t.Fatalf("after reopen: start %d hwm %d, want %d %d", s2, h2, start, hwm)
	}
	if k := readAll(t, l, "keep", 0); len(k) != 4 {
		t.Fatalf("keep after reopen: %d records", len(k))
	}
	if d := l.Check(); len(d) != 0 {
		t.Fatalf("Check: %+v", d)
	}
}

// A flipped bit in a sealed shared file: CheckDir, reads and Check
// report it, no altered byte is served, the rest stays readable.
func TestSharedDamageDetected(t *testing.T) {
	dir := t.TempDir()
	mod := sharedFilesOf(2 << 10)
	l := testOpen(t, dir, mod)
	ctx := context.Background()
	l.CreateTopic("t", TopicConfig{Partitions: 2})
	var acked [][]byte
	for i := 0; i < 60; i++ {
		b := mkBatch(1, fmt.Sprint("v", i))
		if _, err := l.Append(ctx, "t", int32(i%2), b); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, b)
	}
	l.Close()
	files := sharedFilesIn(t, dir)
	if len(files) < 3 {
		t.Fatalf("%d shared files", len(files))
	}
	victim := files[1]
	data, _ := os.ReadFile(victim)
	data[len(data)/2] ^= 0x10
	os.WriteFile(victim, data, 0o644)
	rel, _ := filepath.Rel(dir, victim)
	d, err := CheckDir(dir)
	if err != nil || len(d) == 0 || d[0].File != rel {
		t.Fatalf("CheckDir after a flip: %+v %v", d, err)
	}
	// The file was indexed: open trusts it (it was durable) and the
	// damage is found by the reads, as for a sealed segment file.
	l = testOpen(t, dir, mod)
	defer l.Close()
	refused := 0
	for p := int32(0); p < 2; p++ {
		for off := int64(0); off < 30; off++ {
			b, err := l.Read("t", p, off, 1)
			if err != nil {
				if !strings.Contains(err.Error(), "lost") && !strings.Contains(err.Error(), "corrupt") {
					t.Fatalf("read %d/%d: %v", p, off, err)
				}
				refused++
				continue
			}
			if want := acked[off*2+int64(p)]; !bytes.Equal(b[:len(want)], want) {
				t.Fatalf("read %d/%d: served bytes differ", p, off)
			}
		}
	}
	if refused == 0 || refused > 2 {
		t.Fatalf("%d reads refused, want 1 or 2", refused)
	}
	found := false
	for _, d := range l.Stats().Damaged {
		found = found || d.File == rel
	}
	if !found {
		t.Fatalf("damage not reported: %+v", l.Stats().Damaged)
	}
	if d := l.Check(); len(d) == 0 || d[0].File != rel {
		t.Fatalf("Check: %+v", d)
	}
}

// An old-format data dir (partition files + journal) opens with shared
// segments on and new small appends go shared. (Replay of an old journal
// at such an open: TestJournalKeptAfterSyncFailure.)
func TestSharedOpensOldFormat(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, nil) // the default: partition files + journal
	ctx := context.Background()
	l.CreateTopic("t", TopicConfig{Partitions: 1})
	for i := 0; i < 10; i++ {
		if _, err := l.Append(ctx, "t", 0, mkBatch(1, fmt.Sprint("old", i))); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	l = testOpen(t, dir, sharedOn)
	defer l.Close()
	for i := 0; i < 10; i++ {
		if _, err := l.Append(ctx, "t", 0, mkBatch(1, fmt.Sprint("new", i))); err != nil {
			t.Fatal(err)
		}
	}
	got := readAll(t, l, "t", 0)
	if len(got) != 20 || string(got[0].Value) != "old0-0" || string(got[19].Value) != "new9-0" {
		t.Fatalf("%d records", len(got))
	}
	if l.Stats().SharedCommits == 0 {
		t.Fatal("new small appends did not go to shared files")
	}
}

// A shared file whose first entries of a partition are damaged (the
// first one's batch header, then the next one's base offset, which no
// batch CRC covers) does not hide that partition's later batches: every
// intact batch (the file's later entries and those in later shared files)
// is served, the damaged offsets never. With the file's extent index
// (trusted at open) the damage is found by reads: those of the damaged
// offsets answer *CorruptError, and Check reports each damaged range
// with the offsets the index gives its entry, so repair skips exactly
// those. Without it, the scan at open leaves the damaged entries out.
func TestSharedDamagedFirstEntriesKeepLaterBatches(t *testing.T) {
	for _, withIndex := range []bool{true, false} {
		t.Run(fmt.Sprintf("index=%v", withIndex), func(t *testing.T) {
			dir := t.TempDir()
			mod := sharedFilesOf(1 << 10)
			l := testOpen(t, dir, mod)
			l.CreateTopic("t", TopicConfig{Partitions: 2})
			type rec struct {
				base int64
				data []byte
			}
			var acked []rec // partition 1's batches
			for i := 0; i < 24; i++ {
				b := mkBatch(1+i%3, fmt.Sprint("v", i))
				base, err := l.Append(context.Background(), "t", int32(i%2), b)
				if err != nil {
					t.Fatal(err)
				}
				if i%2 == 1 {
					acked = append(acked, rec{base, b})
				}
			}
			topicID := l.(*logImpl).topics["t"].id
			l.Close()
			files := sharedFilesIn(t, dir)
			if len(files) < 3 {
				t.Fatalf("%d shared files", len(files))
			}
			victim := files[0]
			rel, _ := filepath.Rel(dir, victim)
			data, _ := os.ReadFile(victim)
			seed, ok := checkSharedHeader(data, 1)
			if !ok {
				t.Fatal("first shared file: bad header")
			}
			var ents []sharedEntry
			var at []int64
			walkEntries(data, seed, nil, func(pos int64, e sharedEntry) {
				if e.key == (sharedKey{topicID, 1}) {
					ents, at = append(ents, e), append(at, pos+sharedEntryHeader)
				}
			}, func(int64, int64) bool { return true })
			if len(ents) < 4 || ents[0].base != 0 || ents[len(ents)-1].next >= acked[len(acked)-1].base {
				t.Fatalf("partition 1 entries in %s: %+v", rel, ents)
			}
			data[at[0]+batch.OffMagic] = 0x98                                   // first entry: bad header
			binary.BigEndian.PutUint64(data[at[1]+batch.OffBaseOffset:], 0x702) // second: wrong base offset
			os.WriteFile(victim, data, 0o644)
			if !withIndex {
				if err := os.Remove(strings.TrimSuffix(victim, sharedSuffix) + sidxSuffix); err != nil {
					t.Fatal(err)
				}
			}

			l = testOpen(t, dir, mod)
			defer l.Close()
			for pass := 0; pass < 2; pass++ { // the second with the damage known
				for _, a := range acked {
					b, err := l.Read("t", 1, a.base, 1)
					if a.base < ents[1].next {
						var ce *CorruptError
						if err == nil || withIndex && !errors.As(err, &ce) {
							t.Fatalf("pass %d: read of damaged offset %d: %v, want *CorruptError", pass, a.base, err)
						}
						continue
					}
					if err != nil {
						t.Fatalf("pass %d: read of intact batch %d: %v", pass, a.base, err)
					}
					if !bytes.Equal(b, a.data) {
						t.Fatalf("pass %d: offset %d: served a different batch", pass, a.base)
					}
				}
			}
			var ranges [][2]int64
			reported := false
			for _, d := range l.Check() {
				reported = reported || d.File == rel
				if d.PartitionRange() && d.Partition == 1 {
					ranges = append(ranges, [2]int64{d.From, d.To})
				}
			}
			if !reported {
				t.Fatalf("Check does not report %s", rel)
			}
			if want := [][2]int64{{0, ents[0].next}, {ents[0].next, ents[1].next}}; withIndex && !slices.Equal(ranges, want) {
				t.Fatalf("Check: partition 1 ranges %v, want %v", ranges, want)
			}
		})
	}
}

// Where a partition's appends go has hysteresis (wantSharedLocked): in
// shared storage a trickle with an occasional larger append, and commits
// between JournalSmallBytes and twice that, stay there; sustained large
// commits move the partition to a segment file, where commits between the
// two thresholds keep it; sustained small ones move it back. Every move
// rolls a segment (a move to a file creates one and syncs its directory),
// so a load that hovers around one threshold must not move at each commit.
func TestSharedStorageHysteresis(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, sharedOn)
	defer l.Close()
	if err := l.CreateTopic("t", TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	var want []string
	app := func(n int, prefix string) { appendRecording(t, l, &want, n, prefix) }
	expect := func(want, what string) {
		t.Helper()
		if k := SegmentKinds(l, "t", 0); k != want {
			t.Fatalf("%s: segments %q, want %q", what, k, want)
		}
	}
	// Record sizes of mkBatch: about 22 bytes, so 1,000 records are
	// between JournalSmallBytes (16 KiB) and twice that, 2,000 over twice
	// that, 4,000 over four times that.
	for i := 0; i < 20; i++ {
		app(1, fmt.Sprint("trickle", i))
		if i%5 == 4 {
			app(2000, fmt.Sprint("burst", i)) // large, but not sustained
		}
		if i%2 == 1 {
			app(1000, fmt.Sprint("between", i))
		}
	}
	expect("v", "a trickle with large appends that are not sustained")
	for i := 0; i < fileAfterLargeCommits+2; i++ {
		app(2000, fmt.Sprint("bulk", i))
	}
	expect("vf", "sustained large commits")
	for i := 0; i < 2*sharedAfterSmallCommits; i++ {
		app(1000, fmt.Sprint("between", i))
		if i%(sharedAfterSmallCommits-1) == 0 {
			app(1, fmt.Sprint("small", i))
		}
	}
	expect("vf", "commits between the thresholds in a file")
	for i := 0; i < sharedAfterSmallCommits+1; i++ {
		app(1, fmt.Sprint("trickle again", i))
	}
	expect("vfv", "sustained small commits")
	// An append over 4 × JournalSmallBytes goes to a file at once, and a
	// small one right behind it (before the next commit) stays there: the
	// small-commit count of the earlier file stint starts over.
	var wg sync.WaitGroup
	wg.Add(2)
	for _, n := range []int{4000, 1} {
		prefix := fmt.Sprint("pipelined", n)
		l.AppendAsync("t", 0, mkBatch(n, prefix), func(_ int64, err error) {
			if err != nil {
				t.Error(err)
			}
			wg.Done()
		})
		for i := 0; i < n; i++ {
			want = append(want, fmt.Sprintf("%s-%d", prefix, i))
		}
	}
	wg.Wait()
	expect("vfvf", "an append over 4 × JournalSmallBytes, then a small one")
	readsBack(t, l, want)
}

// Bytes of one storage are never durable ahead of the other's before them
// (doc.go, "Store once"): a move to a segment file waits while any virtual
// segment has unsynced bytes, not only the active one (after a roll the
// active one may be new and empty), and a move to shared storage syncs
// every segment file with unsynced bytes first.
func TestSharedMovesKeepDurableOrder(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, sharedOn)
	defer l.Close()
	if err := l.CreateTopic("t", TopicConfig{Partitions: 1, SegmentBytes: 100 << 10}); err != nil {
		t.Fatal(err)
	}
	var want []string
	appendRecording(t, l, &want, 1, "first") // shared storage, synced
	p, err := l.(*logImpl).part("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cfg := p.t.config()
	write := func(n int, prefix string) {
		t.Helper()
		data := mkBatch(n, prefix)
		hdrs, err := batch.ValidateAll(data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.writeLocked(data, hdrs, false, false, &cfg); err != nil {
			t.Fatal(err)
		}
	}
	write(1, "small")                      // unsynced shared bytes
	if err := p.rollLocked(); err != nil { // as the disk guard's drop-oldest roll does
		t.Fatal(err)
	}
	write(4000, "huge") // over 4 × JournalSmallBytes
	if act := p.active(); act.virt == nil {
		t.Fatal("a large append went to a segment file while an earlier virtual segment had unsynced bytes")
	}

	// The other way: a partition in its own files whose active file is
	// new and empty (rolled at SegmentBytes) while the one before is not
	// synced; a small append moves it to shared storage.
	if err := p.syncAllLocked(); err != nil {
		t.Fatal(err)
	}
	write(4000, "file1") // about 88 KB
	if p.active().virt != nil {
		t.Fatal("setup: the large append did not go to a segment file")
	}
	write(4000, "file2") // over SegmentBytes with file1: rolls to a new file
	if err := p.rollLocked(); err != nil {
		t.Fatal(err)
	}
	if act := p.active(); act.virt != nil || act.size != 0 {
		t.Fatal("setup: no new empty segment file")
	}
	var unsyncedFile bool
	for _, s := range p.segs {
		unsyncedFile = unsyncedFile || s.virt == nil && s.covered < s.size
	}
	if !unsyncedFile {
		t.Fatal("setup: no segment file with unsynced bytes")
	}
	write(1, "back to shared")
	if p.active().virt == nil {
		t.Fatal("setup: the small append did not go to shared storage")
	}
	for _, s := range p.segs {
		if s.virt == nil && s.covered < s.size {
			t.Fatalf("shared entry written while segment file %s has unsynced bytes (%d of %d covered)", s.rel, s.covered, s.size)
		}
	}
}
