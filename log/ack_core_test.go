package log

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestAckOnceWrittenUnlessAlways: under fsync "never" and "interval" an
// append is acknowledged once it is written (the page cache): AppendAsync
// calls done before it returns, in append order, with no commit cycle in
// between (no fsync). In each layout: shared segments (the default),
// partition files with the journal, partition files without it.
func TestAckOnceWrittenUnlessAlways(t *testing.T) {
	layouts := []struct {
		name string
		mod  func(*Options)
	}{
		{"shared", func(o *Options) { o.NoSharedSegments = false }},
		{"journal", nil},
		{"files", func(o *Options) { o.NoJournal = true }},
	}
	for _, lay := range layouts {
		for _, policy := range []FsyncPolicy{FsyncNever, FsyncInterval} {
			t.Run(lay.name+"/"+string(policy), func(t *testing.T) {
				ackOnceWritten(t, policy, lay.mod)
			})
		}
	}
}

func ackOnceWritten(t *testing.T, policy FsyncPolicy, mod func(*Options)) {
	l := testOpen(t, t.TempDir(), mod)
	defer l.Close()
	// An interval far away: its sync is not what this test sees.
	if err := l.CreateTopic("t", TopicConfig{Fsync: policy, FsyncInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	fsyncs := l.Stats().Fsyncs
	for i := range 100 {
		var got []int64
		l.AppendAsync("t", 0, mkBatch(1, fmt.Sprint(i)), func(base int64, err error) {
			if err != nil {
				t.Errorf("append %d: %v", i, err)
			}
			got = append(got, base)
		})
		if len(got) != 1 || got[0] != int64(i) {
			t.Fatalf("append %d: done called with %v before AppendAsync returned, want [%d]", i, got, i)
		}
	}
	if _, err := l.Append(context.Background(), "t", 0, mkBatch(1, "sync")); err != nil {
		t.Fatal(err)
	}
	if n := l.Stats().Fsyncs - fsyncs; n != 0 {
		t.Errorf("%d fsyncs for appends that do not wait for one", n)
	}
	if _, hwm, _ := l.Offsets("t", 0); hwm != 101 {
		t.Errorf("HWM %d, want 101 (visible once written)", hwm)
	}
}

// TestIntervalSyncWhenDue: an "interval" partition is synced one
// FsyncInterval after its first unsynced append, with no further appends
// to wake the committer.
func TestIntervalSyncWhenDue(t *testing.T) {
	l := testOpen(t, t.TempDir(), nil)
	defer l.Close()
	if err := l.CreateTopic("t", TopicConfig{Fsync: FsyncInterval, FsyncInterval: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), "t", 0, mkBatch(3, "v")); err != nil {
		t.Fatal(err)
	}
	fsyncs := l.Stats().Fsyncs
	p, _ := l.(*logImpl).part("t", 0)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		p.mu.Lock()
		unsynced := len(p.unsynced)
		p.mu.Unlock()
		if unsynced == 0 && l.Stats().Fsyncs > fsyncs {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not synced 10s after an append with a 50ms interval (%d segments unsynced)", unsynced)
		}
	}
}

// TestLoneWriterCommitsAtOnce: a writer that waits for each ack and has
// the log to itself gets one commit per append, none held back.
func TestLoneWriterCommitsAtOnce(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprint("shared=", shared), func(t *testing.T) {
			l := testOpen(t, t.TempDir(), func(o *Options) { o.NoSharedSegments = !shared })
			defer l.Close()
			if err := l.CreateTopic("t", TopicConfig{}); err != nil {
				t.Fatal(err)
			}
			st0 := l.Stats()
			for i := range 200 {
				if _, err := l.Append(context.Background(), "t", 0, mkBatch(1, fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
			}
			if st := l.Stats(); st.CommitsDelayed != st0.CommitsDelayed {
				t.Errorf("%d of 200 commits of a lone writer held back", st.CommitsDelayed-st0.CommitsDelayed)
			}
		})
	}
}
