package log

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

func txnData(pid int64, epoch int16, seq int32, n int) []byte {
	return batch.SetAttributes(pidBatch(pid, epoch, seq, n), batch.AttrTransactional)
}

// appendTxnHistory writes, to t/0: producer 1 commits 0-1 and 3 (marker
// 4), producer 2 aborts 2 (marker 5), producer 3 opens a transaction at 6
// (still open), then a plain batch at 7. Each batch is its own append.
func appendTxnHistory(t *testing.T, l Log) {
	t.Helper()
	ctx := context.Background()
	for i, b := range [][]byte{
		txnData(1, 0, 0, 2),
		txnData(2, 0, 0, 1),
		txnData(1, 0, 2, 1),
		batch.Marker(1, 0, true, 1),
		batch.Marker(2, 0, false, 1),
		txnData(3, 0, 0, 1),
		mkBatch(1, "plain"),
	} {
		if _, err := l.Append(ctx, "t", 0, b); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

func txnState(t *testing.T, l Log) (int64, []AbortedTxn) {
	t.Helper()
	tx := l.(Transactions)
	lso, err := tx.StableOffset("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	ab, err := tx.AbortedTxns("t", 0, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	return lso, ab
}

// The transaction state (LSO, aborted list) is the same after a power
// cut and after a clean reopen, rebuilt from batches spread over several
// segments (a transaction opened in an older segment than its end).
func TestTransactionStateRecovered(t *testing.T) {
	wantAborted := []AbortedTxn{{ProducerID: 2, FirstOffset: 2, LastOffset: 5}}
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			// meta.db lives in dir on the real disk (outside the
			// crash model); the log's files on mem.
			dir := t.TempDir()
			mem := errorfs.NewMem(1)
			if err := mem.MkdirAllSynced(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			mod := func(o *Options) {
				o.FS = mem
				if shared {
					sharedOn(o)
				}
			}
			l := testOpen(t, dir, mod)
			if err := l.CreateTopic("t", TopicConfig{Partitions: 1, SegmentBytes: 150}); err != nil {
				t.Fatal(err)
			}
			appendTxnHistory(t, l)
			if _, err := mem.Stat(filepath.Join(dir, "t", "0", txnMarkFile)); err != nil {
				t.Fatalf("partition not marked transactional: %v", err)
			}
			if ti, _ := l.Topic("t"); ti.Partitions[0].Segments < 3 {
				t.Fatalf("%d segments, want several", ti.Partitions[0].Segments)
			}
			lso, ab := txnState(t, l)
			if lso != 6 || !reflect.DeepEqual(ab, wantAborted) {
				t.Fatalf("before the crash: LSO %d aborted %+v, want 6 %+v", lso, ab, wantAborted)
			}
			crashed := mem.Crash(errorfs.CrashDropUnsynced)
			l.Close()
			l2 := testOpen(t, dir, func(o *Options) {
				mod(o)
				o.FS = crashed
			})
			defer l2.Close()
			if lso, ab := txnState(t, l2); lso != 6 || !reflect.DeepEqual(ab, wantAborted) {
				t.Fatalf("after the crash: LSO %d aborted %+v, want 6 %+v", lso, ab, wantAborted)
			}
			// The open transaction commits after the restart.
			if _, err := l2.Append(context.Background(), "t", 0, batch.Marker(3, 0, true, 1)); err != nil {
				t.Fatal(err)
			}
			if lso, _ := txnState(t, l2); lso != 9 {
				t.Fatalf("after the commit: LSO %d, want 9 (the HWM)", lso)
			}
		})
	}
}

// A mirror that copies the batches with AppendAt knows the same
// transactions as its origin.
func TestTransactionStateMirrored(t *testing.T) {
	o := testOpen(t, t.TempDir(), nil)
	defer o.Close()
	o.CreateTopic("t", TopicConfig{Partitions: 1})
	appendTxnHistory(t, o)
	m := testOpen(t, t.TempDir(), nil)
	defer m.Close()
	m.CreateTopic("t", TopicConfig{Partitions: 1, Origin: "o"})
	// Query first, so the mirror's index is kept by AppendAt (not only
	// rebuilt).
	txnState(t, m)
	data, err := o.Read("t", 0, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AppendAt(context.Background(), "t", 0, data); err != nil {
		t.Fatal(err)
	}
	lo, ao := txnState(t, o)
	lm, am := txnState(t, m)
	if lo != lm || !reflect.DeepEqual(ao, am) {
		t.Fatalf("mirror LSO %d aborted %+v, origin %d %+v", lm, am, lo, ao)
	}
}

// A marker with a newer epoch (a coordinator that fenced the producer)
// refuses the old epoch's batches; a marker of the same epoch leaves the
// producer's sequences as they were.
func TestMarkerEpochs(t *testing.T) {
	l := testOpen(t, t.TempDir(), nil)
	defer l.Close()
	l.CreateTopic("t", TopicConfig{Partitions: 1})
	ctx := context.Background()
	steps := []struct {
		b    []byte
		want error
	}{
		{txnData(1, 0, 0, 2), nil},
		{batch.Marker(1, 0, true, 1), nil},
		{txnData(1, 0, 2, 1), nil}, // sequences go on after a commit
		{batch.Marker(1, 1, false, 1), nil},
		{txnData(1, 0, 3, 1), ErrInvalidProducerEpoch}, // fenced
		{batch.Marker(1, 0, false, 1), ErrInvalidProducerEpoch},
		{txnData(1, 1, 0, 1), nil}, // the new epoch starts at 0
	}
	for i, s := range steps {
		if _, err := l.Append(ctx, "t", 0, s.b); !errors.Is(err, s.want) {
			t.Fatalf("step %d: %v, want %v", i, err, s.want)
		}
	}
}
