package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runnel/runnel/log/meta"
)

// fill appends n batches of 2 records to t/0 in a log with small segments.
// fill writes n small appends in the partition-file format (the default: the
// journal and segment files; the tests that use it damage .log files and
// reopen with shared segments on, as an upgraded node does).
func fill(t *testing.T, dir string, n int) {
	t.Helper()
	l := testOpen(t, dir, nil)
	if err := l.CreateTopic("t", TopicConfig{SegmentBytes: 400}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := l.Append(context.Background(), "t", 0, mkBatch(2, fmt.Sprint("v", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func segPath(dir string, base int64) string {
	return filepath.Join(dir, "t", "0", segmentName(base))
}

func TestTornTailTruncated(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, 10)
	// A torn append: half a batch at the end of the last segment, past the
	// checkpoint (remove it: a crash leaves an older one).
	os.Remove(filepath.Join(dir, checkpointName))
	segs, _ := filepath.Glob(filepath.Join(dir, "t", "0", "*.log"))
	last := segs[len(segs)-1]
	b := mkBatch(3, "torn")
	f, _ := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	f.Write(b[:len(b)/2])
	f.Close()
	st0, _ := os.Stat(last)
	l := testOpen(t, dir, nil)
	defer l.Close()
	if got := readAll(t, l, "t", 0); len(got) != 20 {
		t.Fatalf("%d records after recovery, want 20", len(got))
	}
	st := l.Stats()
	if len(st.Damaged) != 0 || st.TornTailBytes != uint64(len(b)/2) {
		t.Fatalf("torn tail: damaged %v, torn bytes %d want %d", st.Damaged, st.TornTailBytes, len(b)/2)
	}
	if st1, _ := os.Stat(last); st1.Size() != st0.Size()-int64(len(b)/2) {
		t.Fatalf("not truncated: %d", st1.Size())
	}
	if base, err := l.Append(context.Background(), "t", 0, mkBatch(1, "x")); err != nil || base != 20 {
		t.Fatalf("append after recovery: %d %v", base, err)
	}
}

func TestCorruptSealedSegment(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, 30)
	segs, _ := filepath.Glob(filepath.Join(dir, "t", "0", "*.log"))
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	victim := segs[1]
	data, _ := os.ReadFile(victim)
	data[70] ^= 0x10 // inside the first batch's records
	os.WriteFile(victim, data, 0o644)

	// Offline check sees it.
	dmg, err := CheckDir(dir)
	if err != nil || len(dmg) == 0 {
		t.Fatalf("CheckDir: %v %v", dmg, err)
	}
	rel, _ := filepath.Rel(dir, victim)
	if dmg[0].File != rel || dmg[0].Offset != 0 {
		t.Fatalf("CheckDir damage %+v, want %s at 0", dmg[0], rel)
	}

	l := testOpen(t, dir, nil)
	defer l.Close()
	base, _ := parseSegmentName(filepath.Base(victim))
	_, err = l.Read("t", 0, base, 1<<20)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.File != rel {
		t.Fatalf("read of corrupt batch: %v", err)
	}
	// Everything else is served: before and after the damaged batch.
	if _, err := l.Read("t", 0, 0, 1<<20); err != nil {
		t.Fatalf("read of first segment: %v", err)
	}
	d, err := l.Read("t", 0, base+2, 1<<20)
	if err != nil || len(d) == 0 {
		t.Fatalf("read past damage: %v", err)
	}
	if len(l.Stats().Damaged) == 0 || len(l.Check()) == 0 {
		t.Fatal("damage not in Stats/Check")
	}
	if _, err := l.Append(context.Background(), "t", 0, mkBatch(1, "x")); err != nil {
		t.Fatal(err)
	}
}

func TestIndexRebuilt(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, 30)
	idx, _ := filepath.Glob(filepath.Join(dir, "t", "0", "*.index"))
	tidx, _ := filepath.Glob(filepath.Join(dir, "t", "0", "*.timeindex"))
	if len(idx) == 0 || len(tidx) == 0 {
		t.Fatal("no index files")
	}
	for _, p := range idx {
		os.Remove(p)
	}
	os.WriteFile(tidx[0], []byte("garbage"), 0o644)
	l := testOpen(t, dir, nil)
	defer l.Close()
	if got := readAll(t, l, "t", 0); len(got) != 60 {
		t.Fatalf("%d records", len(got))
	}
	if d := l.Check(); len(d) != 0 {
		t.Fatalf("check: %v", d)
	}
}

func TestMetaLostRebuilt(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, nil)
	if err := l.CreateTopic("a", TopicConfig{Partitions: 3, SegmentBytes: 5000, Fsync: FsyncNever}); err != nil {
		t.Fatal(err)
	}
	if err := l.CreateTopic("b", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	l.Append(context.Background(), "a", 2, mkBatch(4, "x"))
	l.Close()
	os.Remove(filepath.Join(dir, meta.FileName))
	l = testOpen(t, dir, nil)
	defer l.Close()
	ti, err := l.Topic("a")
	if err != nil {
		t.Fatal(err)
	}
	if len(ti.Partitions) != 3 || ti.Config.SegmentBytes != 5000 || ti.Config.Fsync != FsyncNever || ti.Partitions[2].HWM != 4 {
		t.Fatalf("rebuilt topic: %+v", ti)
	}
	if _, err := l.Topic("b"); err != nil {
		t.Fatal(err)
	}
	// And it is back in meta.
	if m, _ := l.Meta().Topics(); len(m) != 2 {
		t.Fatalf("meta topics %v", m)
	}
}

// TestMetaDamagedIsLoud: a damaged meta.db is moved aside and a new one
// made, and that shows: an error log line, Stats().Damaged (the
// damaged-files metric and runnel status read it), with the file it went
// to. Topics are rebuilt from their files.
func TestMetaDamagedIsLoud(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, nil)
	l.CreateTopic("a", TopicConfig{Partitions: 1})
	l.Append(context.Background(), "a", 0, mkBatch(3, "x"))
	l.Close()
	path := filepath.Join(dir, meta.FileName)
	if err := os.WriteFile(path, []byte("not a bbolt file"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	l = testOpen(t, dir, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logged, nil)) })
	defer l.Close()
	var found *Damage
	for _, d := range l.Stats().Damaged {
		if d.File == meta.FileName {
			found = &d
		}
	}
	moved, _ := filepath.Glob(path + ".corrupt-*")
	if found == nil || len(moved) != 1 || !strings.Contains(found.Reason, filepath.Base(moved[0])) {
		t.Fatalf("damage not reported: %+v (moved aside: %v)", l.Stats().Damaged, moved)
	}
	if !strings.Contains(logged.String(), "level=ERROR") || !strings.Contains(logged.String(), meta.FileName) {
		t.Fatalf("no error log line:\n%s", logged.String())
	}
	if ti, err := l.Topic("a"); err != nil || ti.Partitions[0].HWM != 3 {
		t.Fatalf("topic not rebuilt: %+v %v", ti, err)
	}
}

// TestMetaSystemErrorStopsOpen: a meta.db the system cannot open (here a
// directory) stops Open with an error naming it; nothing is moved aside.
func TestMetaSystemErrorStopsOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, meta.FileName)
	os.Mkdir(path, 0o700)
	l, err := Open(&Options{Dir: dir, MinFreeBytes: -1, Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		l.Close()
		t.Fatal("Open succeeded")
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("Open: %v; want the path named", err)
	}
	if moved, _ := filepath.Glob(path + ".corrupt-*"); len(moved) != 0 {
		t.Fatalf("moved aside: %v", moved)
	}
}

func TestDeleteTopicAndRecreate(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, nil)
	defer l.Close()
	ctx := context.Background()
	l.CreateTopic("t", TopicConfig{Partitions: 2})
	l.Append(ctx, "t", 0, mkBatch(5, "old"))
	if err := l.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, "t", 0, mkBatch(1, "x")); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("append to deleted: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "t")); !os.IsNotExist(err) {
		t.Fatalf("dir left: %v", err)
	}
	l.CreateTopic("t", TopicConfig{})
	l.Append(ctx, "t", 0, mkBatch(1, "new"))
	l.Close()
	l2 := testOpen(t, dir, nil)
	defer l2.Close()
	got := readAll(t, l2, "t", 0)
	if len(got) != 1 || string(got[0].Value) != "new-0" {
		t.Fatalf("recreated topic holds %v", got)
	}
}

func TestAddPartitions(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, nil)
	l.CreateTopic("t", TopicConfig{Partitions: 2})
	if err := l.AddPartitions("t", 2); !errors.Is(err, ErrInvalidPartitions) {
		t.Fatalf("shrink/same: %v", err)
	}
	if err := l.AddPartitions("t", 5); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), "t", 4, mkBatch(1, "x")); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = testOpen(t, dir, nil)
	defer l.Close()
	if ti, _ := l.Topic("t"); len(ti.Partitions) != 5 || ti.Partitions[4].HWM != 1 {
		t.Fatalf("after reopen: %+v", ti)
	}
}

func TestIndexCacheBounded(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, 60)
	l := testOpen(t, dir, func(o *Options) { o.MaxLoadedIndexes = 2; o.IndexIntervalBytes = 100 })
	defer l.Close()
	for round := 0; round < 2; round++ {
		if got := readAll(t, l, "t", 0); len(got) != 120 {
			t.Fatalf("%d records", len(got))
		}
		for off := int64(0); off < 120; off += 7 {
			d, err := l.Read("t", 0, off, 1)
			if err != nil || len(d) == 0 {
				t.Fatalf("read %d: %v", off, err)
			}
		}
	}
	if n := l.(*logImpl).indexes.loaded(); n > 2 {
		t.Fatalf("%d sealed indexes loaded, bound 2", n)
	}
	if got, err := l.OffsetForTime("t", 0, 0); err != nil || got != 0 {
		t.Fatalf("OffsetForTime: %d %v", got, err)
	}
}

// Directories of topics being created or deleted at a crash are removed at
// open, by topic id (~creating-<id>) and in the earlier <topic>~creating
// form, and never become topics.
func TestTransientTopicDirsRemovedAtOpen(t *testing.T) {
	dir := t.TempDir()
	names := []string{"~creating-1f2e", "~deleting-9a", "old~creating", "old~deleting"}
	for _, n := range names {
		if err := os.MkdirAll(filepath.Join(dir, n, "0"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	l := testOpen(t, dir, nil)
	defer l.Close()
	if ts := l.Topics(); len(ts) != 0 {
		t.Fatalf("topics %+v from transient directories", ts)
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", n, err)
		}
	}
}
