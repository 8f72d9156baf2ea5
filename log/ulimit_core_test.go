package log

import (
	"context"
	"syscall"
	"testing"
)

// TestFiveThousandPartitionsLowUlimit runs 5,000 partitions under a soft
// RLIMIT_NOFILE of 1024: the handle LRU must keep the log inside it.
func TestFiveThousandPartitionsLowUlimit(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: creates 5,000 partition directories")
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = 1024
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("setrlimit: %v", err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	dir := shmDir(t)
	l := testOpen(t, dir, nil) // default MaxOpenFiles 256
	const n = 5000
	if err := l.CreateTopic("many", TopicConfig{Partitions: n, Fsync: FsyncNever}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for p := int32(0); p < n; p++ {
		if _, err := l.Append(ctx, "many", p, mkBatch(1, "x")); err != nil {
			t.Fatalf("append p%d: %v", p, err)
		}
	}
	for p := int32(0); p < n; p += 97 {
		if d, err := l.Read("many", p, 0, 1000); err != nil || len(d) == 0 {
			t.Fatalf("read p%d: %v", p, err)
		}
	}
	if of := l.Stats().OpenFiles; of > 256 {
		t.Fatalf("%d open segment files", of)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = testOpen(t, dir, nil)
	defer l.Close()
	if ti := mustTopic(t, l, "many"); len(ti.Partitions) != n || ti.Partitions[n-1].HWM != 1 {
		t.Fatalf("after reopen: %d partitions", len(ti.Partitions))
	}
}
