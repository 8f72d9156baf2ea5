package log

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/vfs"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

func inode(path string) uint64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// Shared files that retention frees are kept (at most maxSpareFiles) and
// reused in place for new shared files; the stale entries a reused file
// still holds past its new end are never read as its own: not after a
// roll, not after Close, not after a crash (a copy of the data dir taken
// while the log runs), and CheckDir sees no damage.
func TestSharedFilesRecycled(t *testing.T) {
	dir := t.TempDir()
	mod := sharedFilesOf(4 << 10)
	l := testOpen(t, dir, mod)
	ctx := context.Background()
	l.CreateTopic("t", TopicConfig{Partitions: 2, SegmentBytes: 1 << 10, RetentionBytes: 3 << 10})
	li := l.(*logImpl)
	spareInodes := map[uint64]bool{}
	recycled := 0
	for i := 0; i < 600; i++ {
		if _, err := l.Append(ctx, "t", int32(i%2), mkBatch(1, fmt.Sprint("v", i))); err != nil {
			t.Fatal(err)
		}
		if i%20 == 19 {
			li.shared.indexPending()
			li.applyRetention()
			spares, _ := filepath.Glob(filepath.Join(dir, sharedDirName, "*"+spareSuffix))
			for _, s := range spares {
				spareInodes[inode(s)] = true
			}
			for _, f := range sharedFilesIn(t, dir) {
				if spareInodes[inode(f)] {
					recycled++
					delete(spareInodes, inode(f))
				}
			}
		}
	}
	if recycled < 3 {
		t.Fatalf("%d shared files reused in place", recycled)
	}
	if n := len(sharedFilesIn(t, dir)); n > 8 {
		t.Fatalf("%d shared files retained (retention 3 KiB per partition, 4 KiB files)", n)
	}
	check := func(l Log, what string) {
		t.Helper()
		for p := int32(0); p < 2; p++ {
			start, hwm, err := l.Offsets("t", p)
			if err != nil || hwm != 300 || start == 0 {
				t.Fatalf("%s: partition %d: start %d hwm %d %v", what, p, start, hwm, err)
			}
			got := readAll(t, l, "t", p)
			if len(got) != int(hwm-start) {
				t.Fatalf("%s: partition %d: %d records, want %d", what, p, len(got), hwm-start)
			}
			for j, r := range got {
				if want := fmt.Sprintf("v%d-0", (start+int64(j))*2+int64(p)); string(r.Value) != want {
					t.Fatalf("%s: partition %d offset %d: %q, want %q", what, p, start+int64(j), r.Value, want)
				}
			}
		}
		if d := l.Check(); len(d) != 0 {
			t.Fatalf("%s: Check: %+v", what, d)
		}
		if d := l.Stats().Damaged; len(d) != 0 {
			t.Fatalf("%s: damaged: %+v", what, d)
		}
	}
	check(l, "running")

	// A crash: the data dir as it is on disk while the log runs, its
	// active shared file a reused one with stale entries past its end.
	li.shared.mu.Lock()
	alloc, written := li.shared.active.alloc, li.shared.active.written
	li.shared.mu.Unlock()
	if alloc <= written {
		t.Fatalf("the active shared file is not a reused one with stale bytes past its end (size %d, written %d)", alloc, written)
	}
	crash := t.TempDir()
	if out, err := exec.Command("cp", "-a", dir+"/.", crash).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	l.Close()
	if d, err := CheckDir(dir); err != nil || len(d) != 0 {
		t.Fatalf("CheckDir: %+v %v", d, err)
	}
	l = testOpen(t, dir, mod)
	check(l, "reopened")
	l.Close()

	l = testOpen(t, crash, mod)
	defer l.Close()
	check(l, "after crash")
}

// recycleWorkload appends record i (value v<i>) to partition i%2 of "t"
// (retention keeps ~3 KiB a partition, shared files of 2 KiB are freed
// and reused) and counts the appends acknowledged per partition. It stops
// at the first error (the crash).
func recycleWorkload(l Log, acked *[2]int64, mu *sync.Mutex) {
	li := l.(*logImpl)
	if err := l.CreateTopic("t", TopicConfig{Partitions: 2, SegmentBytes: 1 << 10, RetentionBytes: 3 << 10}); err != nil {
		return
	}
	for i := 0; i < 240; i++ {
		if _, err := l.Append(context.Background(), "t", int32(i%2), mkBatch(1, fmt.Sprint("v", i))); err != nil {
			return
		}
		mu.Lock()
		acked[i%2]++
		mu.Unlock()
		if i%16 == 15 {
			li.shared.indexPending()
			li.applyRetention()
		}
	}
}

// A power cut at every mutating file operation of a workload whose shared
// files are freed by retention and reused in place: every acknowledged
// record after the log start is served, nothing else but what the
// workload wrote, and no damage is reported.
func TestCrashSharedRecycle(t *testing.T) {
	mod := func(fs vfs.FS) func(*Options) {
		return func(o *Options) {
			o.NoSharedSegments, o.SharedSegmentBytes, o.FS = false, 2<<10, fs
			o.CheckpointInterval, o.RetentionCheckInterval = time.Hour, time.Hour
		}
	}
	// Reference run: how many mutating operations there are.
	counter := &errorfs.Crasher{Kinds: errorfs.MutatingOps, At: 1 << 62}
	var mu sync.Mutex
	var acked [2]int64
	l := testOpen(t, t.TempDir(), mod(errorfs.Wrap(errorfs.NewMem(1), counter)))
	recycleWorkload(l, &acked, &mu)
	if r := l.(*logImpl).shared.recycled; r < 5 {
		t.Fatalf("the workload reused %d shared files", r)
	}
	l.Close()
	total := counter.Seen()
	step := max(1, total/150)
	switch {
	case os.Getenv("RUNNEL_SOAK") == "1", os.Getenv("RUNNEL_SOAK") == "bounded": // make soak, soak-short: every operation
		step = 1
	case testing.Short():
		step = max(1, total/40)
	}
	recoveries := 0
	for n := uint64(1); n <= total; n += step {
		dir := t.TempDir()
		mem := errorfs.NewMem(n)
		var ackedAt [2]int64
		snaps := map[errorfs.CrashMode]*errorfs.MemFS{}
		var acked [2]int64
		crasher := &errorfs.Crasher{Kinds: errorfs.MutatingOps, At: n, OnCrash: func(errorfs.Op) {
			mu.Lock()
			ackedAt = acked
			mu.Unlock()
			for _, m := range []errorfs.CrashMode{errorfs.CrashDropUnsynced, errorfs.CrashTornWrite, errorfs.CrashKeepAll} {
				snaps[m] = mem.Crash(m)
			}
		}}
		o := &Options{Dir: dir, MinFreeBytes: -1, Logger: slog.New(slog.DiscardHandler)}
		mod(errorfs.Wrap(mem, crasher))(o)
		if l, err := Open(o); err == nil { // else the crash came during Open
			recycleWorkload(l, &acked, &mu)
			l.Close()
		}
		for m, snap := range snaps {
			recoveries++
			l, err := Open(&Options{Dir: dir, FS: snap, MinFreeBytes: -1, Logger: slog.New(slog.DiscardHandler),
				SharedSegmentBytes: 2 << 10, CheckpointInterval: time.Hour, RetentionCheckInterval: time.Hour})
			if err != nil {
				t.Fatalf("crash at op %d (%v): open: %v", n, m, err)
			}
			for p := int32(0); p < 2 && ackedAt[0]+ackedAt[1] > 0; p++ {
				start, hwm, err := l.Offsets("t", p)
				if err != nil || hwm < ackedAt[p] {
					t.Fatalf("crash at op %d (%v): partition %d: hwm %d, %d acknowledged (%v)", n, m, p, hwm, ackedAt[p], err)
				}
				for off := start; off < hwm; {
					b, err := l.Read("t", p, off, 1<<16)
					if err != nil || len(b) == 0 {
						t.Fatalf("crash at op %d (%v): partition %d: read %d of [%d, %d): %v", n, m, p, off, start, hwm, err)
					}
					for len(b) > 0 {
						h, err := batch.Validate(b)
						if err != nil {
							t.Fatalf("crash at op %d (%v): partition %d: bad batch served at %d: %v", n, m, p, off, err)
						}
						recs, err := batch.Records(b[:h.Size()])
						if err != nil {
							t.Fatal(err)
						}
						for _, r := range recs {
							if want := fmt.Sprintf("v%d-0", r.Offset*2+int64(p)); string(r.Value) != want || r.Offset != off {
								t.Fatalf("crash at op %d (%v): partition %d offset %d (at %d): %q, want %q", n, m, p, r.Offset, off, r.Value, want)
							}
							off++
						}
						b = b[h.Size():]
					}
				}
			}
			if d := l.Stats().Damaged; len(d) > 0 {
				t.Fatalf("crash at op %d (%v): damage: %+v", n, m, d)
			}
			if d := l.Check(); len(d) > 0 {
				t.Fatalf("crash at op %d (%v): Check: %+v", n, m, d)
			}
			l.Close()
		}
	}
	t.Logf("%d mutating operations, %d recoveries", total, recoveries)
}
