package log

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
