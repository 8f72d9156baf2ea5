package log

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/runnel/runnel/log/vfs"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

// A data dir written with shared segments on, opened with them off: the
// shared batches stay readable and their offsets are not reused (shared
// segments stay on, with a warning).
func TestSharedFilesKeepSharedOn(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, sharedOn)
	ctx := context.Background()
	l.CreateTopic("t", TopicConfig{Partitions: 1})
	for i := 0; i < 10; i++ {
		if _, err := l.Append(ctx, "t", 0, mkBatch(1, "s")); err != nil {
			t.Fatal(err)
		}
	}
	if l.Stats().SharedCommits == 0 {
		t.Fatal("nothing went to shared files")
	}
	l.Close()
	l = testOpen(t, dir, nil) // shared segments off
	defer l.Close()
	if _, hwm, _ := l.Offsets("t", 0); hwm != 10 {
		t.Fatalf("hwm %d after reopening without shared segments, want 10", hwm)
	}
	if got := readAll(t, l, "t", 0); len(got) != 10 {
		t.Fatalf("read %d records, want 10", len(got))
	}
	if base, err := l.Append(ctx, "t", 0, mkBatch(1, "new")); err != nil || base != 10 {
		t.Fatalf("next append at %d (%v), want 10", base, err)
	}
	if d := l.Check(); len(d) != 0 {
		t.Fatalf("Check: %+v", d)
	}
}

// A checkpoint entry left by a deleted topic names a segment beyond the
// re-created topic's files: recovery must not trust the whole last segment
// (a torn tail is truncated, not recorded as damage).
func TestStaleCheckpointEntryAfterRecreate(t *testing.T) {
	dir := t.TempDir()
	mem := errorfs.NewMem(4)
	mod := func(fs vfs.FS) func(*Options) {
		return func(o *Options) { o.FS = fs; o.CheckpointInterval = time.Hour }
	}
	l := testOpen(t, dir, mod(mem))
	ctx := context.Background()
	l.CreateTopic("t", TopicConfig{Partitions: 1, SegmentBytes: 300})
	for i := 0; i < 20; i++ { // several rolls: the last segment's base is far from 0
		if _, err := l.Append(ctx, "t", 0, mkBatch(2, "first-life")); err != nil {
			t.Fatal(err)
		}
	}
	l.Close() // checkpoint: t/0 at its last segment
	l = testOpen(t, dir, mod(mem))
	if err := l.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	l.CreateTopic("t", TopicConfig{Partitions: 1})
	for i := 0; i < 3; i++ {
		if _, err := l.Append(ctx, "t", 0, mkBatch(1, "second")); err != nil {
			t.Fatal(err)
		}
	}
	// The process dies (no Close, no new checkpoint) after a torn write.
	// meta.db lives on the real file system: release its lock as the
	// dying process would.
	snap := mem.Crash(errorfs.CrashKeepAll)
	l.Meta().Close()
	seg := filepath.Join(dir, "t", "0", "00000000000000000000.log")
	st, err := snap.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	f, err := snap.OpenReadWrite(seg)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("torn-tail-garbage-31-bytes-long"), st.Size())
	f.Close()
	l2 := testOpen(t, dir, mod(snap))
	defer l2.Close()
	s := l2.Stats()
	if len(s.Damaged) != 0 || s.TornTailBytes == 0 {
		t.Fatalf("torn tail: damaged %+v, torn-tail bytes %d (want truncated, no damage)", s.Damaged, s.TornTailBytes)
	}
	if got := readAll(t, l2, "t", 0); len(got) != 3 {
		t.Fatalf("read %d records, want 3", len(got))
	}
}
