package log

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/meta"
	"github.com/runnel/runnel/log/vfs"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

// kv is one appended record of a compaction workload.
type kv struct {
	key, value []byte // value nil: a tombstone
	ts         int64
}

// compactWorkload appends n records over keys keys to t/0: batches of 1
// to 3 records, about one in ten a tombstone, timestamps at ts.
type compactWorkload struct {
	keys, n int
	seed    uint64
	ts      int64
}

func (w compactWorkload) run(t *testing.T, l Log) map[int64]kv {
	t.Helper()
	rng := rand.New(rand.NewPCG(w.seed, 7))
	got := map[int64]kv{}
	for i := 0; i < w.n; {
		var b batch.Builder
		recs := []kv{}
		for j := 0; j < 1+rng.IntN(3) && i < w.n; j++ {
			r := kv{key: []byte(fmt.Sprintf("dev-%d", rng.IntN(w.keys))), value: []byte(fmt.Sprintf("v%d", i)), ts: w.ts}
			if rng.IntN(10) == 0 {
				r.value = nil
			}
			b.Add(r.ts, r.key, r.value, nil)
			recs = append(recs, r)
			i++
		}
		base, err := l.Append(context.Background(), "c", 0, b.Bytes())
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		for j, r := range recs {
			got[base+int64(j)] = r
		}
	}
	return got
}

// latest is each key's last appended offset.
func latest(appended map[int64]kv) map[string]int64 {
	out := map[string]int64{}
	for off, r := range appended {
		if cur, ok := out[string(r.key)]; !ok || off > cur {
			out[string(r.key)] = off
		}
	}
	return out
}

// checkCompacted reads t/0 whole and reports what breaks the contract:
// a record that differs from the one appended at its offset, offsets that
// do not increase, the latest record of a key missing (tombstones: unless
// expired says they may go).
func checkCompacted(l Log, appended map[int64]kv, tombstonesMayGo bool) (served int, probs []string) {
	start, hwm, err := l.Offsets("c", 0)
	if err != nil {
		return 0, []string{err.Error()}
	}
	seen := map[int64]bool{}
	last := int64(-1)
	for off := start; off < hwm; {
		data, err := l.Read("c", 0, off, 1<<20)
		if err != nil || len(data) == 0 {
			return served, append(probs, fmt.Sprintf("read %d (hwm %d): %v (%d bytes)", off, hwm, err, len(data)))
		}
		for len(data) > 0 {
			h, err := batch.Validate(data)
			if err != nil {
				return served, append(probs, fmt.Sprintf("served invalid batch at %d: %v", off, err))
			}
			recs, err := batch.Records(data[:h.Size()])
			if err != nil {
				return served, append(probs, fmt.Sprintf("records at %d: %v", off, err))
			}
			for _, r := range recs {
				if r.Offset < off {
					continue
				}
				if r.Offset <= last {
					probs = append(probs, fmt.Sprintf("offset %d served after %d", r.Offset, last))
				}
				last = r.Offset
				want, ok := appended[r.Offset]
				if !ok || string(want.key) != string(r.Key) || string(want.value) != string(r.Value) || (want.value == nil) != (r.Value == nil) {
					probs = append(probs, fmt.Sprintf("offset %d: served %q=%q, appended %q=%q", r.Offset, r.Key, r.Value, want.key, want.value))
				}
				seen[r.Offset] = true
				served++
			}
			off = h.LastOffset() + 1
			data = data[h.Size():]
		}
	}
	for k, off := range latest(appended) {
		if seen[off] || tombstonesMayGo && appended[off].value == nil {
			continue
		}
		probs = append(probs, fmt.Sprintf("key %s: latest record (offset %d) lost", k, off))
	}
	return served, probs
}

func compactOpts(dir string, fs vfs.FS) *Options {
	return &Options{Dir: dir, FS: fs, MinFreeBytes: -1, Logger: slog.New(slog.DiscardHandler),
		CleanerInterval: time.Hour, RetentionCheckInterval: time.Hour, CheckpointInterval: time.Hour,
		DiskCheckInterval: time.Hour, CleanerBytesPerSec: -1}
}

var compactTopic = TopicConfig{Partitions: 1, Cleanup: CleanupCompact, SegmentBytes: 2048, DeleteRetention: time.Hour}

// cleanNow runs one pass over t/0 as the cleaner would at now.
func cleanNow(t *testing.T, l Log, now time.Time) error {
	t.Helper()
	li := l.(*logImpl)
	p, err := li.part("c", 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := p.t.config()
	return li.cleanPartition(p, &cfg, now)
}

func TestCompactKeepsLatestPerKey(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(compactOpts(dir, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.CreateTopic("c", compactTopic); err != nil {
		t.Fatal(err)
	}
	w := compactWorkload{keys: 20, n: 600, seed: 1, ts: time.Now().UnixMilli()}
	appended := w.run(t, l)
	before := l.Topics()[0].Partitions[0]
	if err := cleanNow(t, l, time.Now()); err != nil {
		t.Fatal(err)
	}
	st := l.Stats().Cleaner
	after := l.Topics()[0].Partitions[0]
	t.Logf("bytes %d -> %d, segments %d, %+v", before.Bytes, after.Bytes, after.Segments, st)
	if st.RecordsRemoved == 0 || st.Segments == 0 || after.Bytes >= before.Bytes/2 {
		t.Fatalf("cleaning removed little: %d -> %d bytes, %+v", before.Bytes, after.Bytes, st)
	}
	if after.Start != before.Start || after.HWM != before.HWM {
		t.Fatalf("offsets moved: %+v -> %+v", before, after)
	}
	served, probs := checkCompacted(l, appended, false)
	if len(probs) > 0 {
		t.Fatalf("%d served; %s", served, strings.Join(probs, "\n"))
	}
	if d := l.Check(); len(d) > 0 {
		t.Fatalf("Check after cleaning: %+v", d)
	}
	// A second pass finds nothing more to remove in the cleaned segments.
	removed := st.RecordsRemoved
	if err := cleanNow(t, l, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := l.Stats().Cleaner.RecordsRemoved; got != removed {
		t.Fatalf("second pass removed %d more records", got-removed)
	}
	// Appends go on at the same offsets; a reopen sees the same.
	more := compactWorkload{keys: 20, n: 50, seed: 2, ts: time.Now().UnixMilli()}.run(t, l)
	for o, r := range more {
		appended[o] = r
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(compactOpts(dir, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, probs := checkCompacted(l, appended, false); len(probs) > 0 {
		t.Fatalf("after reopen: %s", strings.Join(probs, "\n"))
	}
	if d := l.Check(); len(d) > 0 {
		t.Fatalf("Check after reopen: %+v", d)
	}
}

func TestCompactTombstonesExpire(t *testing.T) {
	l, err := Open(compactOpts(t.TempDir(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.CreateTopic("c", compactTopic); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	appended := map[int64]kv{}
	ctx := context.Background()
	add := func(key string, value []byte) {
		var b batch.Builder
		b.Add(now.UnixMilli(), []byte(key), value, nil)
		base, err := l.Append(ctx, "c", 0, b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		appended[base] = kv{key: []byte(key), value: value, ts: now.UnixMilli()}
	}
	for i := 0; i < 100; i++ {
		add(fmt.Sprintf("k%d", i%10), []byte(strings.Repeat("x", 40)))
	}
	add("k3", nil) // tombstones for k3 and k7
	add("k7", nil)
	for i := 0; i < 100; i++ {
		add(fmt.Sprintf("filler%d", i), []byte(strings.Repeat("y", 40))) // seal the tombstones' segment
	}
	tombs := func() int {
		n := 0
		for _, r := range readAll(t, l, "c", 0) {
			if r.Value == nil {
				n++
			}
		}
		return n
	}
	// Within delete.retention.ms the tombstones stay (a consumer that
	// starts now still learns the keys were deleted).
	if err := cleanNow(t, l, now.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := tombs(); n != 2 {
		t.Fatalf("%d tombstones before delete.retention.ms, want 2", n)
	}
	if _, probs := checkCompacted(l, appended, false); len(probs) > 0 {
		t.Fatal(strings.Join(probs, "\n"))
	}
	// After it they go, and so does every record of their keys.
	if err := cleanNow(t, l, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := tombs(); n != 0 {
		t.Fatalf("%d tombstones after delete.retention.ms, want 0", n)
	}
	for _, r := range readAll(t, l, "c", 0) {
		if k := string(r.Key); k == "k3" || k == "k7" {
			t.Fatalf("record of deleted key %s at %d still served", k, r.Offset)
		}
	}
	if _, probs := checkCompacted(l, appended, true); len(probs) > 0 {
		t.Fatal(strings.Join(probs, "\n"))
	}
}

// TestCompactReaderNeverGoesBack reads the partition from start to end
// over and over while appends come and the cleaner swaps segments: every
// read continues where the last one ended, offsets only grow, and every
// record is the one appended at its offset.
func TestCompactReaderNeverGoesBack(t *testing.T) {
	l, err := Open(compactOpts(t.TempDir(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.CreateTopic("c", compactTopic); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	appended := map[int64]kv{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := uint64(0); i < 30; i++ {
			got := compactWorkload{keys: 15, n: 40, seed: i + 10, ts: time.Now().UnixMilli()}.run(t, l)
			mu.Lock()
			for o, r := range got {
				appended[o] = r
			}
			mu.Unlock()
		}
		close(stop)
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := cleanNow(t, l, time.Now()); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	passes := 0
	for done := false; !done; passes++ {
		select {
		case <-stop:
			done = true
		default:
		}
		last := int64(-1)
		_, hwm, _ := l.Offsets("c", 0)
		for off := int64(0); off < hwm; {
			data, err := l.Read("c", 0, off, 300)
			if err != nil {
				t.Fatalf("read %d: %v", off, err)
			}
			next := off
			for len(data) > 0 {
				h, err := batch.Validate(data)
				if err != nil {
					t.Fatalf("invalid batch at %d: %v", off, err)
				}
				recs, _ := batch.Records(data[:h.Size()])
				mu.Lock()
				for _, r := range recs {
					if r.Offset < off {
						continue
					}
					if r.Offset <= last {
						t.Fatalf("offset %d after %d", r.Offset, last)
					}
					last = r.Offset
					if w, ok := appended[r.Offset]; ok && (string(w.key) != string(r.Key) || string(w.value) != string(r.Value)) {
						t.Fatalf("offset %d: %q=%q, appended %q=%q", r.Offset, r.Key, r.Value, w.key, w.value)
					}
				}
				mu.Unlock()
				next = h.LastOffset() + 1
				data = data[h.Size():]
			}
			if next <= off {
				t.Fatalf("read at %d made no progress", off)
			}
			off = next
		}
	}
	wg.Wait()
	st := l.Stats().Cleaner
	t.Logf("%d read passes, cleaner %+v", passes, st)
	if st.Segments == 0 {
		t.Fatal("the cleaner rewrote no segment while reads ran")
	}
	mu.Lock()
	defer mu.Unlock()
	if _, probs := checkCompacted(l, appended, false); len(probs) > 0 {
		t.Fatal(strings.Join(probs, "\n"))
	}
}

// TestCompactCrashAtEveryOperation cuts the power before each mutating
// file operation of a cleaning pass, for every operation it performs, and
// recovers each crash mode: the latest record of every key survives,
// every record served is the one appended at its offset, nothing is
// damage, and a pass after recovery completes.
func TestCompactCrashAtEveryOperation(t *testing.T) {
	dir := t.TempDir()
	if d, err := os.MkdirTemp("/dev/shm", "runnel-test-"); err == nil {
		dir = d // meta.db's fsyncs are free on tmpfs
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	mem := errorfs.NewMem(1)
	if err := mem.MkdirAllSynced(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := Open(compactOpts(dir, mem))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.CreateTopic("c", compactTopic); err != nil {
		t.Fatal(err)
	}
	appended := compactWorkload{keys: 12, n: 250, seed: 3, ts: time.Now().UnixMilli()}.run(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	metaPath := filepath.Join(dir, meta.FileName)
	metaDB, err := os.ReadFile(metaPath)
	if err != nil {
		t.Fatal(err)
	}
	base := mem.Crash(errorfs.CrashKeepAll)
	open := func(fs vfs.FS) (Log, error) {
		os.Remove(metaPath)
		if err := os.WriteFile(metaPath, metaDB, 0o600); err != nil {
			t.Fatal(err)
		}
		return Open(compactOpts(dir, fs))
	}
	crashes, recoveries := 0, 0
	for n := uint64(1); ; n++ {
		run := base.Crash(errorfs.CrashKeepAll)
		efs := errorfs.Wrap(run, nil)
		l, err := open(efs)
		if err != nil {
			t.Fatalf("open for crash %d: %v", n, err)
		}
		snaps := map[errorfs.CrashMode]*errorfs.MemFS{}
		var at errorfs.Op
		crasher := &errorfs.Crasher{Kinds: errorfs.MutatingOps, At: n, OnCrash: func(op errorfs.Op) {
			at = op
			for _, m := range errorfs.CrashModes {
				snaps[m] = run.Crash(m)
			}
		}}
		efs.SetInjector(crasher)
		cerr := cleanNow(t, l, time.Now())
		l.Close()
		if !crasher.Crashed() {
			if cerr != nil {
				t.Fatalf("pass without a crash: %v", cerr)
			}
			break
		}
		crashes++
		for _, m := range errorfs.CrashModes {
			recoveries++
			rl, err := open(snaps[m])
			if err != nil {
				t.Fatalf("crash before op %d (%v) [%v]: reopen: %v", n, at, m, err)
			}
			_, probs := checkCompacted(rl, appended, false)
			if d := rl.Check(); len(d) > 0 {
				probs = append(probs, fmt.Sprintf("Check reports damage: %+v", d))
			}
			if d := rl.Stats().Damaged; len(d) > 0 {
				probs = append(probs, fmt.Sprintf("Stats().Damaged: %+v", d))
			}
			if err := cleanNow(t, rl, time.Now()); err != nil {
				probs = append(probs, fmt.Sprintf("pass after recovery: %v", err))
			}
			if _, p := checkCompacted(rl, appended, false); len(p) > 0 {
				probs = append(probs, "after a pass following recovery: "+strings.Join(p, "; "))
			}
			rl.Close()
			if len(probs) > 0 {
				t.Fatalf("crash before op %d (%v) [%v]:\n%s", n, at, m, strings.Join(probs, "\n"))
			}
		}
	}
	t.Logf("%d crash points, %d recoveries", crashes, recoveries)
	if crashes < 10 {
		t.Fatalf("only %d crash points: the pass wrote too little", crashes)
	}
}

// TestCompactStreamsLargeSegment cleans a 1 MiB segment whose first
// removed record lies past the cleaner's buffer: the output goes to the
// file in pieces, its unchanged start copied from the segment.
func TestCompactStreamsLargeSegment(t *testing.T) {
	l, err := Open(compactOpts(t.TempDir(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := compactTopic
	cfg.SegmentBytes = 1 << 20
	if err := l.CreateTopic("c", cfg); err != nil {
		t.Fatal(err)
	}
	appended := map[int64]kv{}
	ts := time.Now().UnixMilli()
	add := func(prefix string, from, to int) {
		for i := from; i < to; i += 10 {
			var b batch.Builder
			var recs []kv
			for j := i; j < min(i+10, to); j++ {
				r := kv{key: []byte(fmt.Sprintf("%s%d", prefix, j)), value: []byte(fmt.Sprintf("%s value %d %s", prefix, j, strings.Repeat("x", 90))), ts: ts}
				b.Add(ts, r.key, r.value, nil)
				recs = append(recs, r)
			}
			base, err := l.Append(context.Background(), "c", 0, b.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			for j, r := range recs {
				appended[base+int64(j)] = r
			}
		}
	}
	add("a", 0, 4000) // ~520 KB never superseded
	add("b", 0, 1000) // superseded below
	add("c", 0, 3000) // rolls the segment
	add("b", 0, 1000) // in the next segment
	add("d", 0, 5000) // and seal that one too
	if err := cleanNow(t, l, time.Now()); err != nil {
		t.Fatal(err)
	}
	st := l.Stats().Cleaner
	if st.RecordsRemoved != 1000 || st.Segments != 1 {
		t.Fatalf("removed %d records in %d segments, want 1000 in 1: %+v", st.RecordsRemoved, st.Segments, st)
	}
	if _, probs := checkCompacted(l, appended, false); len(probs) > 0 {
		t.Fatal(strings.Join(probs, "\n"))
	}
	if d := l.Check(); len(d) > 0 {
		t.Fatalf("Check: %+v", d)
	}
}
