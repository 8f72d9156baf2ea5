package log

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/runnel/runnel/log/vfs"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

// TestCheckSegmentsDeletedMeanwhile: Check and runnel check run beside a
// live log, whose retention or drop-oldest may delete the oldest segments
// between Check's listing of a partition and its reading them. Those are
// deleted, not damaged, and no gap runs from them to the segments left.
func TestCheckSegmentsDeletedMeanwhile(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, func(o *Options) { o.NoSharedSegments = true })
	ctx := context.Background()
	if err := l.CreateTopic("t", TopicConfig{Partitions: 1, SegmentBytes: 300}); err != nil {
		t.Fatal(err)
	}
	for range 40 {
		if _, err := l.Append(ctx, "t", 0, mkBatch(1, "v")); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	pdir := filepath.Join(dir, "t", "0")
	ents, err := os.ReadDir(pdir)
	if err != nil {
		t.Fatal(err)
	}
	var segs []string
	for _, e := range ents {
		if _, ok := parseSegmentName(e.Name()); ok {
			segs = append(segs, filepath.Join(pdir, e.Name()))
		}
	}
	sort.Strings(segs)
	if len(segs) < 4 {
		t.Fatalf("%d segments, want at least 4", len(segs))
	}
	if d, err := CheckDirFS(vfs.Default, dir); err != nil || len(d) > 0 {
		t.Fatalf("before: %v %v", d, err)
	}
	// The three oldest segments are deleted (oldest first, as retention
	// and drop-oldest do) just as Check comes to open the third.
	fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpOpen && op.Path == segs[2] {
			for _, s := range segs[:3] {
				for _, f := range []string{s, indexPath(s), timeIndexPath(s)} {
					if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
						t.Error(err)
					}
				}
			}
		}
		return nil
	}))
	d, err := CheckDirFS(fs, dir)
	if err != nil || len(d) > 0 {
		t.Fatalf("segments deleted while Check ran reported as damage: %+v %v", d, err)
	}
}
