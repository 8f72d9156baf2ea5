package log

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/runnel/runnel/log/batch"
)

func pidBatch(pid int64, epoch int16, seq int32, n int) []byte {
	var b batch.Builder
	b.SetProducer(pid, epoch, seq)
	for i := 0; i < n; i++ {
		b.Add(time.Now().UnixMilli(), nil, []byte("v"), nil)
	}
	return b.Bytes()
}

func TestIdempotentProducer(t *testing.T) {
	l := testOpen(t, t.TempDir(), nil)
	defer l.Close()
	if err := l.CreateTopic("t", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	steps := []struct {
		pid   int64
		epoch int16
		seq   int32
		n     int
		base  int64
		err   error
	}{
		{7, 0, 0, 3, 0, nil},
		{7, 0, 3, 2, 3, nil},
		{7, 0, 3, 2, 3, ErrDuplicateSequence}, // retry of the last batch
		{7, 0, 0, 3, 0, ErrDuplicateSequence}, // retry of an older one
		{7, 0, 9, 1, -1, ErrOutOfOrderSequence},
		{8, 0, 100, 1, 5, nil}, // another producer starts anywhere
		{7, 1, 0, 1, 6, nil},   // new epoch
		{7, 0, 5, 1, -1, ErrInvalidProducerEpoch},
		{-1, -1, -1, 2, 7, nil}, // not idempotent
	}
	for i, s := range steps {
		var b []byte
		if s.pid < 0 {
			b = mkBatch(s.n, "x")
		} else {
			b = pidBatch(s.pid, s.epoch, s.seq, s.n)
		}
		base, err := l.Append(ctx, "t", 0, b)
		if !errors.Is(err, s.err) || (s.base >= 0 && base != s.base) {
			t.Fatalf("step %d: got (%d, %v), want (%d, %v)", i, base, err, s.base, s.err)
		}
	}
	if _, hwm, _ := l.Offsets("t", 0); hwm != 9 {
		t.Fatalf("hwm %d, want 9 (duplicates must not be written)", hwm)
	}
}

func TestIdempotenceSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, nil)
	if err := l.CreateTopic("t", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := l.Append(ctx, "t", 0, pidBatch(3, 0, 0, 4)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = testOpen(t, dir, nil)
	defer l.Close()
	if base, err := l.Append(ctx, "t", 0, pidBatch(3, 0, 0, 4)); !errors.Is(err, ErrDuplicateSequence) || base != 0 {
		t.Fatalf("duplicate after reopen: %d %v", base, err)
	}
	if base, err := l.Append(ctx, "t", 0, pidBatch(3, 0, 4, 1)); err != nil || base != 4 {
		t.Fatalf("next after reopen: %d %v", base, err)
	}
}

func TestAppendAt(t *testing.T) {
	l := testOpen(t, t.TempDir(), nil)
	defer l.Close()
	if err := l.CreateTopic("t", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b := mkBatch(3, "a")
	batch.SetBaseOffset(b, 0)
	if err := l.AppendAt(ctx, "t", 0, b); err != nil {
		t.Fatal(err)
	}
	b2 := mkBatch(2, "b")
	batch.SetBaseOffset(b2, 5)
	if err := l.AppendAt(ctx, "t", 0, b2); !errors.Is(err, ErrNotNextOffset) {
		t.Fatalf("gap: %v", err)
	}
	batch.SetBaseOffset(b2, 3)
	b3 := mkBatch(1, "c")
	batch.SetBaseOffset(b3, 5)
	if err := l.AppendAt(ctx, "t", 0, append(b2, b3...)); err != nil {
		t.Fatalf("two batches: %v", err)
	}
	// Idempotence is skipped: the same producer batch twice is fine.
	p := pidBatch(9, 0, 0, 1)
	batch.SetBaseOffset(p, 6)
	if err := l.AppendAt(ctx, "t", 0, p); err != nil {
		t.Fatal(err)
	}
	p = pidBatch(9, 0, 0, 1)
	batch.SetBaseOffset(p, 7)
	if err := l.AppendAt(ctx, "t", 0, p); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, l, "t", 0); len(got) != 8 {
		t.Fatalf("%d records", len(got))
	}
}

func TestWatch(t *testing.T) {
	l := testOpen(t, t.TempDir(), nil)
	defer l.Close()
	w := NewWaiter()
	l.WatchTopics(w)
	if err := l.CreateTopic("t", TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, w, "WatchTopics after CreateTopic")
	for _, pol := range []FsyncPolicy{FsyncAlways, FsyncInterval, FsyncNever} {
		if err := l.SetTopicConfig("t", TopicConfig{Fsync: pol}); err != nil {
			t.Fatal(err)
		}
		w.Reset()
		_, hwm, _ := l.Offsets("t", 0)
		if err := l.Watch(w, "t", 0, hwm); err != nil {
			t.Fatal(err)
		}
		// Another partition moving does not wake a watcher of this one.
		if _, err := l.Append(context.Background(), "t", 1, mkBatch(1, "other")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-w.C():
			t.Fatalf("%s: woken by an append to another partition", pol)
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := l.Append(context.Background(), "t", 0, mkBatch(1, "x")); err != nil {
			t.Fatal(err)
		}
		waitSignal(t, w, string(pol)+": append to the watched partition")
	}
}

func waitSignal(t *testing.T, w *Waiter, what string) {
	t.Helper()
	select {
	case <-w.C():
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no signal", what)
	}
}

func TestOffsetForTime(t *testing.T) {
	l := testOpen(t, t.TempDir(), func(o *Options) { o.IndexIntervalBytes = 200 })
	defer l.Close()
	if err := l.CreateTopic("t", TopicConfig{SegmentBytes: 2000}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		var b batch.Builder
		b.Add(int64(1000+i*10), nil, []byte("0123456789"), nil)
		b.Add(int64(1000+i*10+5), nil, []byte("0123456789"), nil)
		if _, err := l.Append(ctx, "t", 0, b.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ ts, want int64 }{{0, 0}, {1000, 0}, {1005, 0}, {1006, 2}, {1500, 100}, {1995, 198}, {1996, 200}} {
		got, err := l.OffsetForTime("t", 0, c.ts)
		if err != nil || got != c.want {
			t.Fatalf("OffsetForTime(%d) = %d, %v; want %d", c.ts, got, err, c.want)
		}
	}
}

// A retried batch that arrives before the original is durable is answered
// (ErrDuplicateSequence with the original base) only once it is.
func TestDuplicateWaitsForDurability(t *testing.T) {
	l := testOpen(t, t.TempDir(), nil)
	defer l.Close()
	if err := l.CreateTopic("t", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	// The retry arrives while the original may still be in its commit.
	type res struct {
		base int64
		err  error
		at   time.Time
	}
	first := make(chan res, 1)
	l.AppendAsync("t", 0, pidBatch(1, 0, 0, 2), func(b int64, err error) { first <- res{b, err, time.Now()} })
	l.AppendAsync("t", 0, mkBatch(1, "other"), nil)
	dup := make(chan res, 1)
	l.AppendAsync("t", 0, pidBatch(1, 0, 0, 2), func(b int64, err error) { dup <- res{b, err, time.Now()} })
	f := <-first
	d := <-dup
	if f.err != nil || f.base != 0 {
		t.Fatalf("first: %+v", f)
	}
	if !errors.Is(d.err, ErrDuplicateSequence) || d.base != 0 {
		t.Fatalf("duplicate: %+v", d)
	}
	if d.at.Before(f.at) {
		t.Fatal("duplicate answered before the original was durable")
	}
}
