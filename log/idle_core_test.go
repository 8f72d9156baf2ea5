package log

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// An idle log sleeps: the disk guard reads free space every interval only
// while appends come (then at the next append, or after diskIdleFactor
// intervals), and the checkpoint is rewritten while appends come and
// never while none do.
func TestIdleLogSleeps(t *testing.T) {
	dir := t.TempDir()
	var reads atomic.Int64
	l := testOpen(t, dir, func(o *Options) {
		o.MinFreeBytes = 1 << 20
		o.DiskCheckInterval = 10 * time.Millisecond // idle: every 300 ms
		o.DiskUsage = func(string) (uint64, uint64, error) { reads.Add(1); return 1 << 40, 1 << 41, nil }
		o.CheckpointInterval = 20 * time.Millisecond
	})
	defer l.Close()
	if err := l.CreateTopic("t", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, checkpointName)
	stamp := func() time.Time {
		st, err := os.Stat(ckpt)
		if err != nil {
			t.Fatal(err)
		}
		return st.ModTime()
	}
	// Appends: the checkpoint moves, the guard reads every interval.
	before, r0 := stamp(), reads.Load()
	for range 20 {
		if _, err := l.Append(context.Background(), "t", 0, mkBatch(1, "x")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitFor(t, func() bool { return stamp().After(before) })
	if n := reads.Load() - r0; n < 3 {
		t.Errorf("disk guard read free space %d times in 100 ms of appends, want one per 10 ms", n)
	}
	// Idle: after an interval without appends both sleep.
	time.Sleep(100 * time.Millisecond)
	before, r0 = stamp(), reads.Load()
	time.Sleep(250 * time.Millisecond)
	if n := reads.Load() - r0; n > 1 {
		t.Errorf("an idle log read free space %d times in 250 ms (interval 10 ms)", n)
	}
	if !stamp().Equal(before) {
		t.Error("an idle log rewrote its checkpoint")
	}
	// The next append wakes the guard at once.
	r0 = reads.Load()
	if _, err := l.Append(context.Background(), "t", 0, mkBatch(1, "x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return reads.Load() > r0 })
}

// WatchAppends signals at the next append after the value given, at once
// when one came already, and not while none comes.
func TestWatchAppends(t *testing.T) {
	l := testOpen(t, t.TempDir(), nil)
	defer l.Close()
	if err := l.CreateTopic("t", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	aw, ok := l.(AppendWatcher)
	if !ok {
		t.Fatal("the log is not an AppendWatcher")
	}
	w := NewWaiter()
	seen := l.Stats().AppendedBatches
	aw.WatchAppends(w, seen)
	select {
	case <-w.C():
		t.Fatal("signalled without an append")
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := l.Append(context.Background(), "t", 0, mkBatch(1, "x")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.C():
	case <-time.After(5 * time.Second):
		t.Fatal("no signal after an append")
	}
	w.Reset()
	aw.WatchAppends(w, seen) // an append came after seen already
	select {
	case <-w.C():
	default:
		t.Fatal("no signal for an append before the registration")
	}
}

// Without a compacted topic the cleaner has no timer; a topic turned
// compacted by SetTopicConfig wakes it, and its dirty partition is
// cleaned within a few intervals.
func TestCleanerWakesWhenTopicTurnsCompacted(t *testing.T) {
	dir := t.TempDir()
	o := compactOpts(dir, nil)
	o.CleanerInterval = 20 * time.Millisecond
	l, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := compactTopic
	cfg.Cleanup = CleanupDelete
	if err := l.CreateTopic("c", cfg); err != nil {
		t.Fatal(err)
	}
	w := compactWorkload{keys: 20, n: 600, seed: 1, ts: time.Now().UnixMilli()}
	w.run(t, l)
	time.Sleep(100 * time.Millisecond)
	if st := l.Stats().Cleaner; st.Passes != 0 {
		t.Fatalf("cleaner passes over a topic that is not compacted: %+v", st)
	}
	if err := l.SetTopicConfig("c", compactTopic); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return l.Stats().Cleaner.Passes > 0 })
}
