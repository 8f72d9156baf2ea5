package log

import (
	"context"
	"errors"
	"testing"

	"github.com/runnel/runnel/log/batch"
)

func TestMirrorTopicRefusesAppends(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, nil)
	if err := l.CreateTopic("b.t", TopicConfig{Partitions: 1, Origin: "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), "b.t", 0, mkBatch(2, "x")); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Append to a mirror: %v, want ErrNotLeader", err)
	}
	ch := make(chan error, 1)
	l.AppendAsync("b.t", 0, mkBatch(2, "x"), func(_ int64, err error) { ch <- err })
	if err := <-ch; !errors.Is(err, ErrNotLeader) {
		t.Fatalf("AppendAsync to a mirror: %v, want ErrNotLeader", err)
	}
	if err := l.AppendAt(context.Background(), "b.t", 0, mkBatch(2, "x")); err != nil {
		t.Fatalf("AppendAt: %v", err)
	}
	if err := l.SetTopicConfig("b.t", TopicConfig{RetentionAge: -1}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = testOpen(t, dir, nil)
	defer l.Close()
	info, err := l.Topic("b.t")
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Origin != "b" || info.Partitions[0].HWM != 2 {
		t.Fatalf("after SetTopicConfig and reopen: origin %q hwm %d, want b and 2", info.Config.Origin, info.Partitions[0].HWM)
	}
	if _, err := l.Append(context.Background(), "b.t", 0, mkBatch(1, "y")); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Append after reopen: %v, want ErrNotLeader", err)
	}
}

// A mirror made after the origin's retention deleted its first segments
// starts at the origin's log start, and keeps it across a reopen.
func TestMirrorStartsAtOriginLogStart(t *testing.T) {
	for _, shared := range []bool{false, true} {
		name := "files"
		if shared {
			name = "shared"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			mod := func(o *Options) { o.NoSharedSegments = !shared }
			l := testOpen(t, dir, mod)
			if err := l.CreateTopic("b.t", TopicConfig{Partitions: 1, Origin: "b"}); err != nil {
				t.Fatal(err)
			}
			b := mkBatch(3, "x")
			batch.SetBaseOffset(b, 1000)
			if err := l.AppendAt(context.Background(), "b.t", 0, b); err != nil {
				t.Fatalf("AppendAt 1000 on an empty mirror: %v", err)
			}
			b2 := mkBatch(2, "y")
			batch.SetBaseOffset(b2, 500)
			if err := l.AppendAt(context.Background(), "b.t", 0, b2); !errors.Is(err, ErrNotNextOffset) {
				t.Fatalf("AppendAt 500 after 1003: %v, want ErrNotNextOffset", err)
			}
			batch.SetBaseOffset(b2, 1003)
			if err := l.AppendAt(context.Background(), "b.t", 0, b2); err != nil {
				t.Fatal(err)
			}
			check := func(l Log) {
				t.Helper()
				start, hwm, err := l.Offsets("b.t", 0)
				if err != nil || start != 1000 || hwm != 1005 {
					t.Fatalf("Offsets: %d %d %v, want 1000 1005", start, hwm, err)
				}
				recs := readAll(t, l, "b.t", 0)
				if len(recs) != 5 || string(recs[0].Value) != "x-0" || string(recs[4].Value) != "y-1" {
					t.Fatalf("records: %d, want x-0..y-1", len(recs))
				}
			}
			check(l)
			l.Close()
			l = testOpen(t, dir, mod)
			defer l.Close()
			check(l)
		})
	}
}
