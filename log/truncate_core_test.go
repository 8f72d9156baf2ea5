package log

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

// mirrorState is what a partition holds: record values by offset and its
// epoch history.
type mirrorState struct {
	values []string
	start  int64
	hist   []EpochStart
}

func stateOf(t *testing.T, l Log, topic string) mirrorState {
	t.Helper()
	start, _, err := l.Offsets(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, r := range readAll(t, l, topic, 0) {
		vals = append(vals, string(r.Value))
	}
	return mirrorState{values: vals, start: start, hist: checkHistory(t, l, topic, 0)}
}

// fillMirror appends by AppendAt, as a mirror does: per epoch, batches of
// 1-3 records with values "e<epoch>-<offset>".
func fillMirror(t *testing.T, l Log, topic string, epochs []int32, batches int) {
	t.Helper()
	ctx := context.Background()
	_, next, err := l.Offsets(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range epochs {
		for i := 0; i < batches; i++ {
			n := 1 + i%3
			b := withEpochValues(n, next, e)
			if err := l.AppendAt(ctx, topic, 0, b); err != nil {
				t.Fatalf("AppendAt %d (epoch %d): %v", next, e, err)
			}
			next += int64(n)
		}
	}
}

func withEpochValues(n int, base int64, e int32) []byte {
	vals := make([]string, n)
	for i := range vals {
		vals[i] = fmt.Sprintf("e%d-%d", e, base+int64(i))
	}
	var bb batch.Builder
	for _, v := range vals {
		bb.Add(1700000000000, nil, []byte(v), nil)
	}
	b := bb.Bytes()
	batch.SetBaseOffset(b, base)
	setLeaderEpoch(b, e)
	return b
}

func truncater(t *testing.T, l Log) Truncater {
	t.Helper()
	tr, ok := l.(Truncater)
	if !ok {
		t.Fatal("log does not implement Truncater")
	}
	return tr
}

func truncModes() []struct {
	name string
	mod  func(*Options)
} {
	return []struct {
		name string
		mod  func(*Options)
	}{
		{"files", func(o *Options) { o.NoSharedSegments = true }},
		{"shared", func(o *Options) { o.NoSharedSegments = false; o.SharedSegmentBytes = 2 << 10 }},
	}
}

func TestTruncate(t *testing.T) {
	for _, m := range truncModes() {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			l := testOpen(t, dir, m.mod)
			ctx := context.Background()
			l.CreateTopic("m", TopicConfig{Partitions: 1, SegmentBytes: 700})
			fillMirror(t, l, "m", []int32{3, 5}, 12)
			l.Close()
			// Reopened: shared batches come from extent indexes now.
			l = testOpen(t, dir, m.mod)
			fillMirror(t, l, "m", []int32{7}, 6)
			before := stateOf(t, l, "m")
			tr := truncater(t, l)
			h := before.hist
			if len(h) != 3 {
				t.Fatalf("history %v", h)
			}
			// Inside a batch: refused, nothing changes.
			if err := tr.Truncate(ctx, "m", 0, h[1].StartOffset+2, nil); !errors.Is(err, ErrNotBatchStart) {
				t.Fatalf("offset inside a batch: %v", err)
			}
			if err := tr.Truncate(ctx, "m", 0, int64(len(before.values))+1, nil); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("past the end: %v", err)
			}
			if err := tr.Truncate(ctx, "m", 0, int64(len(before.values)), nil); err != nil {
				t.Fatalf("at the end: %v", err)
			}
			// Into epoch 5: its second batch on goes, epoch 7 too.
			cut := h[1].StartOffset + 1 // the first batch of an epoch holds 1 record
			if err := tr.Truncate(ctx, "m", 0, cut, nil); err != nil {
				t.Fatal(err)
			}
			want := mirrorState{values: before.values[:cut], hist: []EpochStart{h[0], h[1]}}
			checkTruncated(t, l, want)
			le := epochsOf(t, l)
			if e, end, _ := le.EpochEnd("m", 0, 7); e != -1 || end != -1 {
				t.Fatalf("EpochEnd(7) after the truncation: (%d, %d)", e, end)
			}
			if e, end, _ := le.EpochEnd("m", 0, 5); e != 5 || end != cut {
				t.Fatalf("EpochEnd(5): (%d, %d), want (5, %d)", e, end, cut)
			}
			// The mirror goes on from the cut with the origin's new epoch.
			fillMirror(t, l, "m", []int32{8}, 4)
			after := stateOf(t, l, "m")
			if !reflect.DeepEqual(after.values[:cut], want.values) || after.values[cut] != fmt.Sprintf("e8-%d", cut) {
				t.Fatalf("values after appending past the cut: %v", after.values)
			}
			if d := l.Check(); len(d) > 0 {
				t.Fatalf("Check: %v", d)
			}
			l.Close()
			l = testOpen(t, dir, m.mod)
			defer l.Close()
			if got := stateOf(t, l, "m"); !reflect.DeepEqual(got.values, after.values) || !reflect.DeepEqual(got.hist, after.hist) {
				t.Fatalf("after reopen: %v %v, want %v %v", got.values, got.hist, after.values, after.hist)
			}
			if d := l.Check(); len(d) > 0 {
				t.Fatalf("Check after reopen: %v", d)
			}
			// Everything, back to the log start.
			if err := truncater(t, l).Truncate(ctx, "m", 0, 0, nil); err != nil {
				t.Fatal(err)
			}
			checkTruncated(t, l, mirrorState{})
			fillMirror(t, l, "m", []int32{9}, 2)
			l.Close()
			l = testOpen(t, dir, m.mod)
			defer l.Close()
			if got := stateOf(t, l, "m"); len(got.values) != 3 || got.values[0] != "e9-0" {
				t.Fatalf("after truncating everything and appending: %v", got.values)
			}
		})
	}
}

func checkTruncated(t *testing.T, l Log, want mirrorState) {
	t.Helper()
	got := stateOf(t, l, "m")
	if !reflect.DeepEqual(got.values, want.values) {
		t.Fatalf("values %v, want %v", got.values, want.values)
	}
	if len(got.hist) != len(want.hist) || len(want.hist) > 0 && !reflect.DeepEqual(got.hist, want.hist) {
		t.Fatalf("history %v, want %v", got.hist, want.hist)
	}
	if _, hwm, _ := l.Offsets("m", 0); hwm != int64(len(want.values)) {
		t.Fatalf("HWM %d, want %d", hwm, len(want.values))
	}
}

// Truncate never removes what this node appended itself, unless told.
func TestTruncateRefusesLocalBatches(t *testing.T) {
	l := testOpen(t, t.TempDir(), nil)
	defer l.Close()
	ctx := context.Background()
	l.CreateTopic("m", TopicConfig{Partitions: 1})
	fillMirror(t, l, "m", []int32{0}, 3)
	l.Append(ctx, "m", 0, mkBatch(2, "local"))
	tr := truncater(t, l)
	if err := tr.Truncate(ctx, "m", 0, 1, nil); !errors.Is(err, ErrTruncateLocal) {
		t.Fatalf("truncating local batches: %v", err)
	}
	if err := tr.Truncate(ctx, "m", 0, 6, nil); !errors.Is(err, ErrTruncateLocal) {
		t.Fatalf("truncating the local batches only: %v", err)
	}
	if err := tr.Truncate(ctx, "m", 0, 3, &TruncateOptions{Local: true}); err != nil {
		t.Fatal(err)
	}
	if _, hwm, _ := l.Offsets("m", 0); hwm != 3 {
		t.Fatalf("HWM %d after a forced truncation to 3", hwm)
	}
}

// A crash at every file-system operation of a truncation: after
// recovery the partition is either as it was or wholly truncated, and
// goes on from there.
func TestTruncateCrashAtEveryOp(t *testing.T) {
	crashModes := []errorfs.CrashMode{errorfs.CrashDropUnsynced, errorfs.CrashTornWrite, errorfs.CrashKeepAll}
	for _, m := range truncModes() {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			base := errorfs.NewMem(7)
			mod := func(fs *errorfs.MemFS, inj errorfs.Injector) func(*Options) {
				return func(o *Options) {
					m.mod(o)
					if inj != nil {
						o.FS = errorfs.Wrap(fs, inj)
					} else {
						o.FS = fs
					}
				}
			}
			l := testOpen(t, dir, mod(base, nil))
			l.CreateTopic("m", TopicConfig{Partitions: 1, SegmentBytes: 700})
			fillMirror(t, l, "m", []int32{3, 5}, 12)
			l.Close()
			l = testOpen(t, dir, mod(base, nil))
			fillMirror(t, l, "m", []int32{7}, 5) // some of it only in the page cache of the last shared file
			before := stateOf(t, l, "m")
			cut := before.hist[1].StartOffset + 1
			after := mirrorState{values: before.values[:cut], hist: before.hist[:2]}
			l.Close()
			sawBefore, sawAfter := 0, 0
			for n := uint64(1); ; n++ {
				mode := crashModes[int(n)%len(crashModes)]
				mem := base.Crash(errorfs.CrashKeepAll) // a copy of the closed log
				var snap *errorfs.MemFS
				var armed bool
				crasher := &errorfs.Crasher{Kinds: errorfs.KindsOf(errorfs.OpCreate, errorfs.OpOpenReadWrite, errorfs.OpRemove, errorfs.OpRename, errorfs.OpWrite, errorfs.OpWriteAt, errorfs.OpSync, errorfs.OpSyncDir, errorfs.OpTruncate), At: n,
					OnCrash: func(errorfs.Op) { snap = mem.Crash(mode) }}
				gate := errorfs.InjectorFunc(func(op errorfs.Op) error {
					if !armed {
						return nil
					}
					return crasher.MaybeError(op)
				})
				l := testOpen(t, dir, mod(mem, gate))
				armed = true
				err := truncater(t, l).Truncate(context.Background(), "m", 0, cut, nil)
				armed = false
				if !crasher.Crashed() {
					if err != nil {
						t.Fatalf("truncate without a crash: %v", err)
					}
					l.Close()
					break
				}
				l.Close()
				l = testOpen(t, dir, mod(snap, nil))
				got := stateOf(t, l, "m")
				switch {
				case reflect.DeepEqual(got.values, before.values) && reflect.DeepEqual(got.hist, before.hist):
					sawBefore++
				case reflect.DeepEqual(got.values, after.values) && reflect.DeepEqual(got.hist, after.hist):
					sawAfter++
				default:
					t.Fatalf("crash at op %d (%s, truncate: %v): a mix:\n got %v %v\n before %v %v\n after %v %v",
						n, mode, err, got.values, got.hist, before.values, before.hist, after.values, after.hist)
				}
				if d := l.Check(); len(d) > 0 {
					t.Fatalf("crash at op %d (%s): Check: %v", n, mode, d)
				}
				// It goes on from where it is, and a second open agrees.
				_, next, _ := l.Offsets("m", 0)
				if err := l.AppendAt(context.Background(), "m", 0, withEpochValues(1, next, 9)); err != nil {
					t.Fatalf("crash at op %d: append after recovery: %v", n, err)
				}
				want := stateOf(t, l, "m")
				l.Close()
				l = testOpen(t, dir, mod(snap, nil))
				if got := stateOf(t, l, "m"); !reflect.DeepEqual(got, want) {
					t.Fatalf("crash at op %d: second open %v, first %v", n, got, want)
				}
				l.Close()
				if n > 500 {
					t.Fatal("truncation never completed")
				}
			}
			t.Logf("%d crash points: %d recovered as before, %d as after", sawBefore+sawAfter, sawBefore, sawAfter)
			if sawBefore == 0 || sawAfter == 0 {
				t.Fatalf("crash points never gave both outcomes (before %d, after %d)", sawBefore, sawAfter)
			}
		})
	}
}
