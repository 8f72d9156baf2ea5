package log

import (
	"context"
	"errors"
	"fmt"
	"github.com/runnel/runnel/log/batch"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel/runnel/log/vfs/errorfs"
)

func TestSyncFailureMakesReadOnly(t *testing.T) {
	for _, noJournal := range []bool{true, false} {
		t.Run(fmt.Sprint("nojournal=", noJournal), func(t *testing.T) {
			dir := t.TempDir()
			mem := errorfs.NewMem(1)
			var fail atomic.Bool
			inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
				if fail.Load() && (op.Kind == errorfs.OpSync) {
					return errorfs.ErrInjected
				}
				return nil
			})
			l := testOpen(t, dir, func(o *Options) { o.FS = errorfs.Wrap(mem, inj); o.NoJournal = noJournal })
			defer l.Close()
			ctx := context.Background()
			l.CreateTopic("t", TopicConfig{Partitions: 2})
			for i := 0; i < 5; i++ {
				if _, err := l.Append(ctx, "t", 0, mkBatch(1, "ok")); err != nil {
					t.Fatal(err)
				}
			}
			fail.Store(true)
			if _, err := l.Append(ctx, "t", 0, mkBatch(1, "bad")); !errors.Is(err, ErrReadOnly) {
				t.Fatalf("append with failing sync: %v", err)
			}
			fail.Store(false)
			// Never retried and acknowledged: the partition stays read-only.
			if _, err := l.Append(ctx, "t", 0, mkBatch(1, "later")); !errors.Is(err, ErrReadOnly) {
				t.Fatalf("append after failed sync: %v", err)
			}
			st := l.Stats()
			if len(st.ReadOnly) != 1 || st.ReadOnly[0].Topic != "t" || st.ReadOnly[0].Partition != 0 || st.FsyncErrors == 0 {
				t.Fatalf("stats: %+v", st)
			}
			if got := readAll(t, l, "t", 0); len(got) != 5 {
				t.Fatalf("%d acknowledged records readable, want 5", len(got))
			}
			// Other partitions keep working.
			if _, err := l.Append(ctx, "t", 1, mkBatch(1, "other")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNoSpaceOnWrite(t *testing.T) {
	dir := t.TempDir()
	mem := errorfs.NewMem(2)
	full := errorfs.NewDiskFull(1 << 30)
	l := testOpen(t, dir, func(o *Options) { o.FS = errorfs.Wrap(mem, full) })
	defer l.Close()
	ctx := context.Background()
	l.CreateTopic("t", TopicConfig{})
	if _, err := l.Append(ctx, "t", 0, mkBatch(2, "a")); err != nil {
		t.Fatal(err)
	}
	full.Free(-(1<<30 - full.Written()) + 30) // 30 bytes left
	_, err := l.Append(ctx, "t", 0, mkBatch(5, "bbbbbbbbbbbbbbbbbbbb"))
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("append on full disk: %v", err)
	}
	if len(l.Stats().ReadOnly) != 0 || l.Stats().Rejected == 0 {
		t.Fatalf("stats %+v", l.Stats())
	}
	full.Free(1 << 20)
	base, err := l.Append(ctx, "t", 0, mkBatch(1, "c"))
	if err != nil || base != 2 {
		t.Fatalf("after freeing: %d %v", base, err)
	}
	got := readAll(t, l, "t", 0)
	if len(got) != 3 || string(got[2].Value) != "c-0" {
		t.Fatalf("records %v", got)
	}
}

func TestDiskGuard(t *testing.T) {
	dir := t.TempDir()
	var free atomic.Int64
	free.Store(1 << 30)
	l := testOpen(t, dir, func(o *Options) {
		o.MinFreeBytes = 1 << 20
		o.DiskCheckInterval = 5 * time.Millisecond
		o.DiskUsage = func(string) (uint64, uint64, error) { return uint64(free.Load()), 1 << 31, nil }
	})
	defer l.Close()
	ctx := context.Background()
	l.CreateTopic("rej", TopicConfig{})
	l.CreateTopic("drop", TopicConfig{OnFull: OnFullDropOldest, SegmentBytes: 300})
	for i := 0; i < 20; i++ {
		l.Append(ctx, "drop", 0, mkBatch(2, "d"))
	}
	l.Append(ctx, "rej", 0, mkBatch(2, "r"))
	segsBefore := len(mustTopic(t, l, "drop").Partitions[0:1])
	_ = segsBefore
	free.Store(1000)
	waitFor(t, func() bool { return l.Stats().DiskShort })
	if _, err := l.Append(ctx, "rej", 0, mkBatch(1, "x")); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("reject topic: %v", err)
	}
	waitFor(t, func() bool { return l.Stats().DroppedSegments > 0 })
	if s, _, _ := l.Offsets("drop", 0); s == 0 {
		t.Fatal("drop-oldest deleted nothing")
	}
	if _, err := l.Append(ctx, "drop", 0, mkBatch(1, "x")); err != nil {
		t.Fatalf("drop-oldest topic append: %v", err)
	}
	free.Store(1 << 30)
	waitFor(t, func() bool { return !l.Stats().DiskShort })
	if _, err := l.Append(ctx, "rej", 0, mkBatch(1, "y")); err != nil {
		t.Fatalf("after space returned: %v", err)
	}
	if got := readAll(t, l, "rej", 0); len(got) != 3 {
		t.Fatalf("reject topic lost data: %d", len(got))
	}
}

func mustTopic(t *testing.T, l Log, name string) TopicInfo {
	ti, err := l.Topic(name)
	if err != nil {
		t.Fatal(err)
	}
	return ti
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("condition not reached in time")
}

func TestRetention(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, func(o *Options) { o.RetentionCheckInterval = 5 * time.Millisecond })
	defer l.Close()
	ctx := context.Background()
	l.CreateTopic("bytes", TopicConfig{SegmentBytes: 300, RetentionBytes: 1000, RetentionAge: -1})
	l.CreateTopic("age", TopicConfig{SegmentBytes: 300, RetentionAge: time.Hour})
	l.CreateTopic("held", TopicConfig{SegmentBytes: 300, RetentionBytes: 1, RetentionAge: -1})
	l.Meta().SetCursor("fwd", "held", 0, 50)
	l.HoldRetention("fwd")
	old := time.Now().Add(-2 * time.Hour).UnixMilli()
	for i := 0; i < 40; i++ {
		l.Append(ctx, "bytes", 0, mkBatch(2, "b"))
		ts := old
		if i >= 30 {
			ts = time.Now().UnixMilli()
		}
		l.Append(ctx, "age", 0, mkBatchAt(ts, 2))
		l.Append(ctx, "held", 0, mkBatch(2, "h"))
	}
	waitFor(t, func() bool {
		p := mustTopic(t, l, "bytes").Partitions[0]
		return p.Bytes < 1300 && p.Start > 0
	})
	waitFor(t, func() bool { return mustTopic(t, l, "age").Partitions[0].Start > 0 })
	waitFor(t, func() bool { return mustTopic(t, l, "held").Partitions[0].Start > 0 })
	time.Sleep(50 * time.Millisecond)
	if s := mustTopic(t, l, "age").Partitions[0].Start; s > 60 {
		t.Fatalf("age retention deleted recent data: start %d", s)
	}
	if s := mustTopic(t, l, "held").Partitions[0].Start; s > 50 {
		t.Fatalf("held cursor at 50 but start is %d", s)
	}
	if l.Stats().RetentionDeletes == 0 {
		t.Fatal("no retention deletes counted")
	}
	// Reading from the start still works.
	for _, name := range []string{"bytes", "age", "held"} {
		readAll(t, l, name, 0)
	}
}

func mkBatchAt(ts int64, n int) []byte {
	var b batch.Builder
	for i := 0; i < n; i++ {
		b.Add(ts, nil, []byte("v"), nil)
	}
	return b.Bytes()
}

func TestManyPartitionsBoundedFiles(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, func(o *Options) { o.MaxOpenFiles = 16 })
	ctx := context.Background()
	if err := l.CreateTopic("t", TopicConfig{Partitions: 300, SegmentBytes: 500}); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 3; round++ {
		for p := int32(0); p < 300; p++ {
			if _, err := l.Append(ctx, "t", p, mkBatch(3, "x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := l.Stats().OpenFiles; n > 16 {
		t.Fatalf("%d open files, bound 16", n)
	}
	for p := int32(0); p < 300; p += 37 {
		if got := readAll(t, l, "t", p); len(got) != 9 {
			t.Fatalf("p%d: %d records", p, len(got))
		}
	}
	l.Close()
	l = testOpen(t, dir, func(o *Options) { o.MaxOpenFiles = 16 })
	defer l.Close()
	if ti := mustTopic(t, l, "t"); ti.Partitions[299].HWM != 9 {
		t.Fatalf("after reopen: %+v", ti.Partitions[299])
	}
}

// A segment fsync failure with the journal: the journal keeps serving the
// other partitions, and the failed partition's acknowledged bytes are
// replayed from the kept journal at the next open, even if the failed
// fsync dropped them.
func TestJournalKeptAfterSyncFailure(t *testing.T) {
	dir := t.TempDir()
	mem := errorfs.NewMem(3)
	var fail atomic.Bool
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if fail.Load() && op.Kind == errorfs.OpSync && filepath.Base(filepath.Dir(op.Path)) == "0" && strings.HasSuffix(op.Path, ".log") {
			return errorfs.ErrInjected
		}
		return nil
	})
	fs := errorfs.LinuxSyncFailure(mem, inj)
	l := testOpen(t, dir, func(o *Options) { o.FS = errorfs.Wrap(mem, fs) })
	ctx := context.Background()
	l.CreateTopic("t", TopicConfig{Partitions: 2, SegmentBytes: 300})
	for i := 0; i < 3; i++ { // journaled (small commits, no roll)
		if _, err := l.Append(ctx, "t", 0, mkBatch(1, "j")); err != nil {
			t.Fatal(err)
		}
	}
	fail.Store(true)
	// Rolls force direct syncs of t/0 segments: the first fails.
	var roErr error
	for i := 0; i < 10 && roErr == nil; i++ {
		_, roErr = l.Append(ctx, "t", 0, mkBatch(3, "roll-roll-roll"))
	}
	if !errors.Is(roErr, ErrReadOnly) {
		t.Fatalf("no read-only partition: %v", roErr)
	}
	before := l.Stats().JournalCommits
	for i := 0; i < 3; i++ {
		if _, err := l.Append(ctx, "t", 1, mkBatch(1, "other")); err != nil {
			t.Fatal(err)
		}
	}
	if l.Stats().JournalCommits == before {
		t.Fatal("journal no longer used by healthy partitions")
	}
	acked := readAll(t, l, "t", 0)
	l.Close()
	kept := 0
	names, _ := mem.List(dir)
	for _, n := range names {
		if strings.HasPrefix(n, journalKeepPrefix) {
			kept++
		}
	}
	if kept != 1 {
		t.Fatalf("%d kept journals after Close (files %v)", kept, names)
	}
	// Power cut: only what was synced survives (the failed fsync dropped
	// t/0's pages).
	snap := mem.Crash(errorfs.CrashDropUnsynced)
	l = testOpen(t, dir, func(o *Options) { o.FS = snap })
	defer l.Close()
	got := readAll(t, l, "t", 0)
	if len(got) < len(acked) {
		t.Fatalf("after reopen %d records of t/0, %d were acknowledged", len(got), len(acked))
	}
	names, _ = snap.List(dir)
	for _, n := range names {
		if strings.HasPrefix(n, journalKeepPrefix) {
			t.Fatalf("kept journal %s not removed after replay", n)
		}
	}
}
