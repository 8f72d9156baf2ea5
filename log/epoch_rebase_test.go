package log

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/runnel/runnel/log/vfs"
)

// A copy that starts at its origin's log start (past 0) on a node whose
// own epoch is ahead of the origin's: the creation entry (this node's
// epoch at 0) describes no batch and gives way to the origin's epochs, on
// a mirror and on a box restoring its own topic alike.
func TestAppendAtRebaseTakesOriginEpochs(t *testing.T) {
	for _, shared := range []bool{false, true} {
		for _, origin := range []string{"o", ""} {
			t.Run(fmt.Sprintf("shared=%v/origin=%q", shared, origin), func(t *testing.T) {
				dir := t.TempDir()
				mod := func(o *Options) { o.NoSharedSegments = !shared }
				// Three unclean stops: the node's epoch is 4.
				for i := 0; i < 3; i++ {
					l := testOpen(t, dir, mod)
					l.Close()
					markUnclean(t, vfs.Default, dir)
				}
				l := testOpen(t, dir, mod)
				if e := epochsOf(t, l).NodeEpoch(); e != 4 {
					t.Fatalf("node epoch %d, want 4", e)
				}
				if err := l.CreateTopic("m", TopicConfig{Partitions: 1, Origin: origin}); err != nil {
					t.Fatal(err)
				}
				ctx := context.Background()
				if err := l.AppendAt(ctx, "m", 0, withEpoch(2, "a", 100, 1)); err != nil {
					t.Fatalf("first batch of the copy at 100, epoch 1: %v", err)
				}
				if err := l.AppendAt(ctx, "m", 0, withEpoch(2, "b", 102, 2)); err != nil {
					t.Fatal(err)
				}
				want := []EpochStart{{1, 100, true}, {2, 102, true}}
				if h := checkHistory(t, l, "m", 0); !reflect.DeepEqual(h, want) {
					t.Fatalf("history %v, want %v", h, want)
				}
				l.Close()
				l = testOpen(t, dir, mod)
				defer l.Close()
				if h := checkHistory(t, l, "m", 0); !reflect.DeepEqual(h, want) {
					t.Fatalf("after reopen: history %v, want %v", h, want)
				}
			})
		}
	}
}

// RaiseNodeEpoch stores the raised epoch durably; a lower one changes
// nothing; local appends stamp it.
func TestRaiseNodeEpoch(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, nil)
	r, ok := l.(EpochRaiser)
	if !ok {
		t.Fatal("log does not implement EpochRaiser")
	}
	if e, err := r.RaiseNodeEpoch(9); err != nil || e != 9 {
		t.Fatalf("RaiseNodeEpoch(9) = %d, %v", e, err)
	}
	if e, err := r.RaiseNodeEpoch(3); err != nil || e != 9 {
		t.Fatalf("RaiseNodeEpoch(3) = %d, %v, want 9 unchanged", e, err)
	}
	l.CreateTopic("t", TopicConfig{Partitions: 1})
	if _, err := l.Append(context.Background(), "t", 0, mkBatch(1, "a")); err != nil {
		t.Fatal(err)
	}
	if h := checkHistory(t, l, "t", 0); !reflect.DeepEqual(h, []EpochStart{{9, 0, false}}) {
		t.Fatalf("history %v", h)
	}
	l.Close()
	l = testOpen(t, dir, nil)
	defer l.Close()
	if e := epochsOf(t, l).NodeEpoch(); e < 9 {
		t.Fatalf("node epoch %d after reopen, want at least 9", e)
	}
}
