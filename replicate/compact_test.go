package replicate

import (
	"testing"

	"github.com/runnel/runnel/log/batch"
)

// TestWholeBatchesFromCompactedGap: compaction at the origin may cover the
// removed offsets of several batches with one empty batch; a copy that
// stopped inside that span takes the part from its next offset on, and
// what follows unchanged.
func TestWholeBatchesFromCompactedGap(t *testing.T) {
	var b batch.Builder
	b.Add(1000, []byte("k"), []byte("v"), nil)
	kept := b.Bytes()
	batch.SetBaseOffset(kept, 20)
	data := append(batch.Empty(5, 19, 3, 900), kept...)
	out, err := wholeBatchesFrom(data, 12)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := batch.ValidateAll(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 || hs[0].BaseOffset != 12 || hs[0].LastOffset() != 19 || hs[0].RecordCount != 0 || hs[0].LeaderEpoch != 3 ||
		hs[1].BaseOffset != 20 || hs[1].RecordCount != 1 {
		t.Fatalf("got %+v", hs)
	}
	// A batch with records that begins before from is still refused: the
	// copy's batches must be the origin's.
	batch.SetBaseOffset(kept, 10)
	if _, err := wholeBatchesFrom(kept, 10); err != nil {
		t.Fatal(err)
	}
	var m batch.Builder
	m.Add(1, []byte("a"), []byte("1"), nil)
	m.Add(2, []byte("b"), []byte("2"), nil)
	two := m.Bytes()
	batch.SetBaseOffset(two, 10)
	if _, err := wholeBatchesFrom(two, 11); err == nil {
		t.Fatal("a batch with records that begins inside the copy's last batch was accepted")
	}
}
