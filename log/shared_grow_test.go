package log

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

// copyTree copies the files of dir to dst as they are now (a crash: what
// kill -9 leaves of a running log is what its files hold).
func copyTree(t *testing.T, dir, dst string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		out, err := os.Create(to)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, src); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The active shared file's size is set ahead of its entries (growLocked),
// so the fdatasync of a small commit changes no file size (on ext4 a
// file-system journal commit each: see sharedGrow). What lies past the
// entries is cut without being taken for a torn tail or damage: after a
// crash (a copy of the data dir taken while the log runs), after Close
// (the file is cut to its entries and indexed) and by CheckDir.
func TestSharedFileGrownAhead(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, sharedOn)
	li := l.(*logImpl)
	if err := l.CreateTopic("t", TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	const n = 400
	sizes := map[int64]bool{}
	var path string
	for i := range n {
		if _, err := l.Append(context.Background(), "t", int32(i%2), mkBatch(1, fmt.Sprint("v", i))); err != nil {
			t.Fatal(err)
		}
		li.shared.mu.Lock()
		path = li.shared.active.path
		li.shared.mu.Unlock()
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		sizes[st.Size()] = true
	}
	li.shared.mu.Lock()
	written, alloc := li.shared.active.written, li.shared.active.alloc
	li.shared.mu.Unlock()
	if len(sharedFilesIn(t, dir)) != 1 {
		t.Fatalf("%d shared files, want 1", len(sharedFilesIn(t, dir)))
	}
	// 400 entries of about 100 bytes: one step of sharedGrow. Appended at
	// the end of the file, every commit would have changed its size.
	if len(sizes) > 2 || alloc > sharedGrow || written >= alloc {
		t.Fatalf("the shared file took %d sizes over %d commits (written %d, size %d): not grown ahead", len(sizes), n, written, alloc)
	}
	check := func(l Log, what string) {
		t.Helper()
		for p := int32(0); p < 2; p++ {
			got := readAll(t, l, "t", p)
			if len(got) != n/2 {
				t.Fatalf("%s: partition %d: %d records, want %d", what, p, len(got), n/2)
			}
			for j, r := range got {
				if want := fmt.Sprintf("v%d-0", j*2+int(p)); string(r.Value) != want {
					t.Fatalf("%s: partition %d offset %d: %q, want %q", what, p, j, r.Value, want)
				}
			}
		}
		if d := l.Check(); len(d) != 0 {
			t.Fatalf("%s: Check: %+v", what, d)
		}
		st := l.Stats()
		if len(st.Damaged) != 0 || st.TornTailBytes != 0 {
			t.Fatalf("%s: damaged %+v, torn tail bytes %d", what, st.Damaged, st.TornTailBytes)
		}
	}
	check(l, "running")

	crash := t.TempDir()
	copyTree(t, dir, crash)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != written {
		t.Fatalf("after Close the shared file is %v bytes (%v), want its %d bytes of entries", st.Size(), err, written)
	}
	if d, err := CheckDir(dir); err != nil || len(d) != 0 {
		t.Fatalf("CheckDir after Close: %+v %v", d, err)
	}
	if d, err := CheckDir(crash); err != nil || len(d) != 0 {
		t.Fatalf("CheckDir after a crash: %+v %v", d, err)
	}
	l = testOpen(t, crash, sharedOn)
	defer l.Close()
	check(l, "after a crash")
	// Appends go on where the entries ended.
	if _, err := l.Append(context.Background(), "t", 0, mkBatch(1, "after")); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, l, "t", 0); string(got[len(got)-1].Value) != "after-0" {
		t.Fatalf("last record after the crash and an append: %q", got[len(got)-1].Value)
	}
}

// The active shared file is grown with zeros while its commits are small
// and with fallocate once they average sharedZerosBelow or more
// (growLocked): zeros spare small commits a metadata write per new block,
// fallocate spares large ones writing every byte twice.
func TestSharedGrowFollowsCommitSize(t *testing.T) {
	var zeroWrites, preallocs atomic.Int64
	var slowSyncs atomic.Bool
	rec := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if strings.Contains(op.Path, "~shared") {
			switch {
			case op.Kind == errorfs.OpPreallocate:
				preallocs.Add(1)
			case op.Kind == errorfs.OpWriteAt && op.Len == len(zeroChunk):
				zeroWrites.Add(1)
			case op.Kind == errorfs.OpSync && slowSyncs.Load():
				// A sync as slow as a disk's: what is appended
				// meanwhile goes into the next commit together.
				time.Sleep(20 * time.Millisecond)
			}
		}
		return nil
	})
	l := testOpen(t, t.TempDir(), func(o *Options) {
		sharedOn(o)
		o.FS = errorfs.Wrap(errorfs.NewMem(1), rec)
		o.SharedSegmentBytes = 64 << 20
	})
	defer l.Close()
	li := l.(*logImpl)
	if err := l.CreateTopic("t", TopicConfig{Partitions: 8}); err != nil {
		t.Fatal(err)
	}
	// Small commits: one record at a time, past one step of sharedGrow.
	for i := range 3000 {
		if _, err := l.Append(context.Background(), "t", int32(i%8), mkBatch(1, fmt.Sprint("v", i))); err != nil {
			t.Fatal(err)
		}
	}
	if zeroWrites.Load() == 0 || preallocs.Load() != 0 {
		t.Fatalf("small commits: %d zero writes, %d fallocates; want zeros only", zeroWrites.Load(), preallocs.Load())
	}
	// Large commits: 8 KiB batches to 8 partitions at once, many per
	// commit (256 KiB a round: a step of sharedGrow), until their average
	// passes sharedZerosBelow, then four rounds more.
	slowSyncs.Store(true)
	val := []byte(strings.Repeat("x", 8<<10))
	round := func() {
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Add(1)
			var b batch.Builder
			b.Add(1, nil, val, nil)
			l.AppendAsync("t", int32(i%8), b.Bytes(), func(_ int64, err error) {
				if err != nil {
					t.Error(err)
				}
				wg.Done()
			})
		}
		wg.Wait()
	}
	for n := 0; ; n++ {
		li.shared.mu.Lock()
		avg := li.shared.commitBytes
		li.shared.mu.Unlock()
		if avg >= sharedZerosBelow {
			break
		}
		if n == 50 {
			t.Fatalf("commits averaged %d bytes after %d rounds of 8 KiB appends to 8 partitions", avg, n)
		}
		round()
	}
	zeros := zeroWrites.Load()
	for range 4 {
		round()
	}
	if preallocs.Load() == 0 {
		t.Fatalf("large commits: %d zero writes (%d before), no fallocate", zeroWrites.Load(), zeros)
	}
}
