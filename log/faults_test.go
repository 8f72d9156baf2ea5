package log_test

// fsync and write error tests. Linux drops the dirty pages of a file whose
// fsync failed (errorfs.LinuxSyncFailure models it: a retried fsync then
// "succeeds" without the data), so an fsync error must never be retried and
// acknowledged. For each of the first syncs of a workload, fail it once and
// persistently, then check:
//
//   - no acknowledgement covers a failed sync: after a power cut that drops
//     everything unsynced, every acknowledged batch is still there;
//   - the partition that lost a sync is read-only: later Appends fail with
//     ErrReadOnly and Stats().ReadOnly / TopicInfo name it with its error;
//   - data acknowledged before the failure stays readable, live and after
//     reopening; the reopened log accepts appends again.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/meta"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

// runAll is workload.run that keeps going after errors (each failed
// Append is recorded as in flight for its partition).
func (w *workload) runAll(opts *log.Options) (log.Log, *outcome, []error) {
	out := &outcome{acked: map[tp][]ackedBatch{}, inflight: map[tp][][]byte{}, created: map[string]bool{}}
	l, err := log.Open(opts)
	if err != nil {
		return nil, out, []error{fmt.Errorf("open: %w", err)}
	}
	var errs []error
	for _, t := range w.topics {
		if err := l.CreateTopic(t.name, t.cfg); err != nil {
			errs = append(errs, fmt.Errorf("create topic %s: %w", t.name, err))
			continue
		}
		out.created[t.name] = true
	}
	ctx := context.Background()
	for i, s := range w.steps {
		if !out.created[s.tp.topic] {
			continue
		}
		if !out.append(ctx, l, i, s) {
			errs = append(errs, out.err)
			out.err = nil
		}
	}
	return l, out, errs
}

// isDataFile reports whether path is a segment. Failures on other files
// (indexes, checkpoints, the commit journal, which can fall back to syncing
// segments) may be handled quietly as long as no acknowledgement is wrong,
// which the after-crash checks verify.
func isDataFile(path string) bool {
	return strings.HasSuffix(path, ".log") || strings.HasSuffix(path, ".slog")
}

// syncFaultScale is which of the first syncs get failed, from..to: the
// bounded soak (make soak-short) runs those of the soak the default run
// does not.
func syncFaultScale() (from, to uint64) {
	switch {
	case soak():
		return 1, 400
	case soakBounded():
		return 131, 400
	case testing.Short():
		return 1, 25
	}
	return 1, 130
}

func TestFsyncErrors(t *testing.T) {
	w := newWorkload(42, 60)
	dir := fastTempDir(t)
	// Count the syncs of a clean run.
	{
		mem := newMemFS(1, dir)
		counted := errorfs.Wrap(mem, nil)
		l, _, errs := w.runAll(testOptions(dir, counted, modeShared))
		if len(errs) > 0 {
			t.Fatalf("clean run: %v", errs)
		}
		l.Close()
		t.Logf("clean run: %d file syncs, %d directory syncs", counted.Count(errorfs.OpSync), counted.Count(errorfs.OpSyncDir))
	}
	for _, mode := range []storeMode{modeShared, modeJournal, modeNoJournal} {
		for _, persistent := range []bool{false, true} {
			name := fmt.Sprintf("%v/persistent=%v", mode, persistent)
			t.Run(name, func(t *testing.T) {
				failures := 0
				from, to := syncFaultScale()
				for n := from; n <= to && failures < 5; n++ {
					if probs := syncFault(t, dir, w, n, persistent, mode); len(probs) > 0 {
						failures++
						t.Errorf("fail sync #%d:\n  %s", n, strings.Join(probs, "\n  "))
					}
				}
			})
		}
	}
}

// syncFault runs w with the nth sync (file or directory) failing.
func syncFault(t *testing.T, dir string, w *workload, n uint64, persistent bool, mode storeMode) []string {
	os.RemoveAll(dir)
	os.MkdirAll(dir, 0o755)
	mem := newMemFS(n, dir)
	inj := &errorfs.FailNth{Kinds: errorfs.SyncOps, N: n, Persistent: persistent}
	var failedOp errorfs.Op
	fs := errorfs.Wrap(mem, errorfs.LinuxSyncFailure(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		err := inj.MaybeError(op)
		if err != nil && failedOp.Seq == 0 {
			failedOp = op
		}
		return err
	})))
	l, out, errs := w.runAll(testOptions(dir, fs, mode))
	if inj.Fired() == 0 {
		if l != nil {
			l.Close()
		}
		return nil // fewer syncs than n
	}
	var probs []string
	where := func(s string) string { return fmt.Sprintf("[%v] %s", failedOp, s) }
	if l == nil {
		// Open failed: fine, as long as it said so.
		if len(errs) == 0 {
			probs = append(probs, where("Open failed silently"))
		}
		return probs
	}
	st := l.Stats()
	if isDataFile(failedOp.Path) && failedOp.Kind == errorfs.OpSync && len(errs) == 0 && st.FsyncErrors == 0 && len(st.ReadOnly) == 0 {
		probs = append(probs, where("a sync failed and nothing noticed: no error returned, Stats().FsyncErrors = 0, no read-only partition"))
	}
	// Partitions that failed an append because of the sync are read-only.
	for _, err := range errs {
		if !errors.Is(err, log.ErrReadOnly) && !errors.Is(err, errorfs.ErrInjected) {
			probs = append(probs, where(fmt.Sprintf("append failed with an error that is neither ErrReadOnly nor the I/O error: %v", err)))
		}
	}
	readOnly := map[tp]bool{}
	for _, pe := range st.ReadOnly {
		readOnly[tp{pe.Topic, pe.Partition}] = true
		if pe.Err == nil {
			probs = append(probs, where(fmt.Sprintf("Stats().ReadOnly names %s/%d without an error", pe.Topic, pe.Partition)))
		}
	}
	for p, failed := range out.inflight {
		if len(failed) > 0 && !readOnly[p] {
			probs = append(probs, where(fmt.Sprintf("%v: an Append failed on a sync error but Stats().ReadOnly does not list the partition", p)))
		}
		if readOnly[p] {
			info, err := l.Topic(p.topic)
			if err == nil && int(p.part) < len(info.Partitions) && info.Partitions[p.part].Err == nil {
				probs = append(probs, where(fmt.Sprintf("%v: read-only but TopicInfo.Partitions[].Err is nil", p)))
			}
			var b batch.Builder
			b.Add(1, nil, []byte("late"), nil)
			if _, err := l.Append(context.Background(), p.topic, p.part, b.Bytes()); !errors.Is(err, log.ErrReadOnly) {
				probs = append(probs, where(fmt.Sprintf("%v: Append to a read-only partition returned %v, want ErrReadOnly", p, err)))
			}
		}
	}
	if len(readOnly) > 0 && st.FsyncErrors == 0 && failedOp.Kind == errorfs.OpSync {
		probs = append(probs, where("partitions are read-only but Stats().FsyncErrors is 0"))
	}
	// Live: acknowledged data readable, nothing else served.
	for _, p := range verifyRecovered(l, w, out) {
		probs = append(probs, where("live: "+p))
	}
	l.Close()

	// After a power cut: every acknowledgement held (a retried fsync would
	// have lost data here).
	metaDB, _ := os.ReadFile(filepath.Join(dir, meta.FileName))
	for _, p := range recoverAndCheck(dir, metaDB, mem.Crash(errorfs.CrashDropUnsynced), w, out, mode, true) {
		probs = append(probs, where("after crash: "+p))
	}
	return probs
}

// writeFaultScale is which of the first writes get failed, from..to (as
// syncFaultScale).
func writeFaultScale() (from, to uint64) {
	switch {
	case soak():
		return 1, 300
	case soakBounded():
		return 61, 300
	case testing.Short():
		return 1, 20
	}
	return 1, 60
}

func TestWriteErrors(t *testing.T) {
	w := newWorkload(7, 50)
	dir := fastTempDir(t)
	for _, short := range []int{0, 5} {
		t.Run(fmt.Sprintf("short=%d", short), func(t *testing.T) {
			failures := 0
			from, to := writeFaultScale()
			for n := from; n <= to && failures < 5; n++ {
				os.RemoveAll(dir)
				os.MkdirAll(dir, 0o755)
				mem := newMemFS(n, dir)
				inj := &errorfs.FailNth{Kinds: errorfs.WriteOps, N: n, ShortN: short}
				var failedOp errorfs.Op
				l, out, errs := w.runAll(testOptions(dir, errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
					err := inj.MaybeError(op)
					if err != nil {
						failedOp = op
					}
					return err
				})), modeShared))
				if inj.Fired() == 0 {
					if l != nil {
						l.Close()
					}
					break
				}
				var probs []string
				if l != nil {
					if isDataFile(failedOp.Path) && len(errs) == 0 && len(l.Stats().ReadOnly) == 0 {
						probs = append(probs, "a write failed and nothing noticed")
					}
					probs = append(probs, verifyRecovered(l, w, out)...)
					l.Close()
				}
				metaDB, _ := os.ReadFile(filepath.Join(dir, meta.FileName))
				for _, m := range []errorfs.CrashMode{errorfs.CrashDropUnsynced, errorfs.CrashKeepAll} {
					for _, p := range recoverAndCheck(dir, metaDB, mem.Crash(m), w, out, modeShared, true) {
						probs = append(probs, fmt.Sprintf("after crash (%v): %s", m, p))
					}
				}
				if len(probs) > 0 {
					failures++
					t.Errorf("fail write #%d (short %d) [%v]:\n  %s", n, short, failedOp, strings.Join(probs, "\n  "))
				}
			}
		})
	}
}
