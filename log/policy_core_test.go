package log

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestIntervalPolicySyncsLater(t *testing.T) {
	l := testOpen(t, t.TempDir(), func(o *Options) { o.NoJournal = true })
	defer l.Close()
	if err := l.CreateTopic("t", TopicConfig{Fsync: FsyncInterval, FsyncInterval: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	// That these acks wait for no fsync is TestAckOnceWrittenUnlessAlways
	// (in every layout); this test counts the syncs one interval costs.
	before := l.Stats().Fsyncs
	for i := 0; i < 20; i++ {
		if _, err := l.Append(context.Background(), "t", 0, mkBatch(1, "i")); err != nil {
			t.Fatal(err)
		}
	}
	if _, hwm, _ := l.Offsets("t", 0); hwm != 20 {
		t.Fatalf("hwm %d: interval appends are visible at once", hwm)
	}
	waitFor(t, func() bool { return l.Stats().Fsyncs > before })
	if n := l.Stats().Fsyncs - before; n > 3 {
		t.Fatalf("%d fsyncs for 20 appends within one interval", n)
	}
}

func TestNeverPolicyNoSync(t *testing.T) {
	l := testOpen(t, t.TempDir(), func(o *Options) { o.NoJournal = true })
	if err := l.CreateTopic("t", TopicConfig{Fsync: FsyncNever}); err != nil {
		t.Fatal(err)
	}
	before := l.Stats().Fsyncs
	for i := 0; i < 50; i++ {
		if _, err := l.Append(context.Background(), "t", 0, mkBatch(1, "n")); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(30 * time.Millisecond)
	if n := l.Stats().Fsyncs - before; n != 0 {
		t.Fatalf("%d fsyncs under never", n)
	}
	if err := l.Close(); err != nil { // Close syncs everything
		t.Fatal(err)
	}
}

func TestCheckDirClean(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, 20)
	if d, err := CheckDir(dir); err != nil || len(d) != 0 {
		t.Fatalf("clean dir: %v %v", d, err)
	}
	// A torn tail past the checkpoint is not damage.
	os.Remove(filepath.Join(dir, checkpointName))
	segs, _ := filepath.Glob(filepath.Join(dir, "t", "0", "*.log"))
	f, _ := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
	b := mkBatch(2, "torn")
	f.Write(b[:40])
	f.Close()
	if d, err := CheckDir(dir); err != nil || len(d) != 0 {
		t.Fatalf("torn tail reported as damage: %v %v", d, err)
	}
	if _, err := CheckDir(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing dir: no error")
	}
}
