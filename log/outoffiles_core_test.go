package log

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

// TestOutOfDescriptorsIsTransient: while every open fails with EMFILE (a
// connection flood took the process's descriptors), appends fail with the
// retriable ErrTooManyOpenFiles or succeed, never make a partition
// read-only, and once descriptors are back every partition takes appends
// and everything acknowledged reads back, also after a reopen. Both
// layouts: shared segment files, and partition files with the journal.
func TestOutOfDescriptorsIsTransient(t *testing.T) {
	for _, shared := range []bool{true, false} {
		t.Run(fmt.Sprint("shared=", shared), func(t *testing.T) {
			dir := t.TempDir()
			mem := errorfs.NewMem(1)
			var fail, failDir atomic.Bool
			inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
				switch op.Kind {
				case errorfs.OpCreate, errorfs.OpOpen, errorfs.OpOpenReadWrite, errorfs.OpOpenDir:
					if fail.Load() || failDir.Load() && op.Kind == errorfs.OpOpenDir {
						return &pathErr{op: op.Kind.String(), path: op.Path, err: syscall.EMFILE}
					}
				}
				return nil
			})
			mod := func(o *Options) {
				o.FS = errorfs.Wrap(mem, inj)
				o.NoSharedSegments = !shared
				o.SharedSegmentBytes = 64 << 10
				o.MaxOpenFiles = 4
			}
			l := testOpen(t, dir, mod)
			const parts = 6
			if err := l.CreateTopic("t", TopicConfig{Partitions: parts, SegmentBytes: 16 << 10}); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			acked := map[int32][]string{}
			appendOne := func(p int32, val string, size int) error {
				var b batch.Builder
				v := []byte(val + "|" + strings.Repeat("x", size))
				b.Add(time.Now().UnixMilli(), nil, v, nil)
				actx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				_, err := l.Append(actx, "t", p, b.Bytes())
				if err == nil {
					acked[p] = append(acked[p], val)
				}
				return err
			}
			for p := range int32(parts) {
				for i := range 3 {
					if err := appendOne(p, fmt.Sprintf("a%d", i), 100); err != nil {
						t.Fatal(err)
					}
				}
			}
			fail.Store(true)
			failed := 0
			for i := range 4 {
				for p := range int32(parts) {
					size := 100
					if i%2 == 1 {
						size = 20 << 10 // a segment (file or shared) of its own
					}
					err := appendOne(p, fmt.Sprintf("b%d", i), size)
					switch {
					case err == nil:
					case errors.Is(err, ErrTooManyOpenFiles):
						failed++
					default:
						t.Fatalf("append %d to p%d without descriptors: %v", i, p, err)
					}
				}
			}
			if failed == 0 {
				t.Fatal("no append failed while every open failed: the test proves nothing")
			}
			st := l.Stats()
			if len(st.ReadOnly) > 0 || st.OutOfFiles == 0 || st.FsyncErrors > 0 {
				t.Fatalf("after descriptor exhaustion: read-only %v, out-of-files %d, fsync errors %d", st.ReadOnly, st.OutOfFiles, st.FsyncErrors)
			}
			fail.Store(false)
			if !shared {
				// Only the directory sync a new segment needs fails: the
				// commit is retried and the append acknowledged once
				// the directory can be opened again.
				failDir.Store(true)
				before := l.Stats().OutOfFiles
				go func() {
					for l.Stats().OutOfFiles < before+3 {
						time.Sleep(time.Millisecond)
					}
					failDir.Store(false)
				}()
				if err := appendOne(0, "d", 20<<10); err != nil {
					t.Fatalf("append whose directory sync waited for a descriptor: %v", err)
				}
				if n := l.Stats().OutOfFiles - before; n < 3 {
					t.Fatalf("the commit was not retried (%d failed opens)", n)
				}
			}
			for i := range 3 {
				for p := range int32(parts) {
					if err := appendOne(p, fmt.Sprintf("c%d", i), 20<<10*(i%2)+50); err != nil {
						t.Fatalf("append to p%d once descriptors are back: %v", p, err)
					}
				}
			}
			check := func(l Log) {
				for p := range int32(parts) {
					var got []string
					for _, r := range readAll(t, l, "t", p) {
						v, _, _ := strings.Cut(string(r.Value), "|")
						got = append(got, v)
					}
					// Every acknowledged record, in order; an append that
					// failed waiting for its sync may be there too.
					j := 0
					for _, v := range got {
						if j < len(acked[p]) && v == acked[p][j] {
							j++
						}
					}
					if j != len(acked[p]) {
						t.Fatalf("p%d: read %v, acknowledged %v", p, got, acked[p])
					}
				}
			}
			check(l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = testOpen(t, dir, mod)
			defer l.Close()
			check(l)
		})
	}
}

// pathErr is an *os.PathError look-alike carrying an errno.
type pathErr struct {
	op, path string
	err      error
}

func (e *pathErr) Error() string { return e.op + " " + e.path + ": " + e.err.Error() }
func (e *pathErr) Unwrap() error { return e.err }

// fdLimit is an injector that models RLIMIT_NOFILE: an open fails with
// EMFILE while limit handles are open. It records the peak.
type fdLimit struct {
	mu         sync.Mutex // guards open, peak
	open, peak int
	limit      int
}

func isOpenKind(k errorfs.OpKind) bool {
	return k == errorfs.OpCreate || k == errorfs.OpOpen || k == errorfs.OpOpenReadWrite || k == errorfs.OpOpenDir
}

func (f *fdLimit) MaybeError(op errorfs.Op) error {
	if !isOpenKind(op.Kind) {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.open >= f.limit {
		return &pathErr{op: op.Kind.String(), path: op.Path, err: syscall.EMFILE}
	}
	return nil
}

func (f *fdLimit) AfterOp(op errorfs.Op, err error) error {
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case isOpenKind(op.Kind):
		f.open++
		f.peak = max(f.peak, f.open)
	case op.Kind == errorfs.OpClose:
		f.open--
	}
	return nil
}

// TestRecoveryWithinFileBudget: a crash with thousands of partitions'
// small commits only in the journal (or in shared segment files): the
// next open replays and recovers them within the log's file cache, never
// holding more than MaxOpenFiles segment handles, where a descriptor
// limit of MaxOpenFiles+64 stands.
func TestRecoveryWithinFileBudget(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprint("shared=", shared), func(t *testing.T) {
			const parts, maxOpen = 1500, 32
			dir := t.TempDir()
			mem := errorfs.NewMem(7)
			mod := func(o *Options) {
				o.NoSharedSegments = !shared
				o.MaxOpenFiles = maxOpen
				o.CheckpointInterval = time.Hour
			}
			l := testOpen(t, dir, func(o *Options) { mod(o); o.FS = mem })
			if err := l.CreateTopic("t", TopicConfig{Partitions: parts}); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, parts*2)
			for round := range 2 {
				for p := range int32(parts) {
					wg.Add(1)
					l.AppendAsync("t", p, mkBatch(1, fmt.Sprintf("r%d", round)), func(_ int64, err error) {
						if err != nil {
							errs <- err
						}
						wg.Done()
					})
				}
				wg.Wait()
			}
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			snap := mem.Crash(errorfs.CrashDropUnsynced) // power cut: the segments' unsynced bytes are gone
			l.Close()
			lim := &fdLimit{limit: maxOpen + 64}
			l2 := testOpen(t, dir, func(o *Options) { mod(o); o.FS = errorfs.Wrap(snap, lim) })
			defer l2.Close()
			for p := range int32(parts) {
				if _, hwm, err := l2.Offsets("t", p); err != nil || hwm != 2 {
					t.Fatalf("p%d after the crash: hwm %d, %v", p, hwm, err)
				}
			}
			t.Logf("peak open handles during recovery: %d (limit %d)", lim.peak, lim.limit)
		})
	}
}
