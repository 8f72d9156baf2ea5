package replicate

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/meta"
	"github.com/runnel/runnel/replicate/member"
)

// keepFixture is a log holding node o's topic t as a copy (o.t/0: three
// batches of two records, offsets 0..5) and a fetcher of o over it.
func keepFixture(t *testing.T) (log.Log, *fetcher) {
	t.Helper()
	l, err := log.Open(&log.Options{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.CreateTopic("o.t", log.TopicConfig{Partitions: 1, Origin: "o"}); err != nil {
		t.Fatal(err)
	}
	for base := int64(0); base < 6; base += 2 {
		var b batch.Builder
		b.SetProducer(7, 0, int32(base))
		b.Add(1000+base, nil, []byte{byte('a' + base)}, nil)
		b.Add(1000+base, nil, []byte{byte('b' + base)}, nil)
		raw := b.Bytes()
		batch.SetBaseOffset(raw, base)
		if err := l.AppendAt(context.Background(), "o.t", 0, raw); err != nil {
			t.Fatal(err)
		}
	}
	r := &Replicator{inner: l, registry: &registry{store: l.Meta()}, logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return l, &fetcher{r: r, peer: member.Member{NodeID: "o"}}
}

func keptIn(t *testing.T, l log.Log) int64 {
	t.Helper()
	start, end, err := l.Offsets(DivergedPrefix+"o.t", 0)
	if err != nil {
		t.Fatal(err)
	}
	return end - start
}

// keepCut keeps a range once: tried again (its cut failed) it appends
// nothing, cut short it goes on from where it stopped, and once the cut
// is done (forgetKept) a new range at the same offsets is kept again.
// What it keeps is plain: no producer id, readable, CRC valid.
func TestKeepCutOnce(t *testing.T) {
	l, f := keepFixture(t)
	ctx := context.Background()
	if n, err := f.keepCut(ctx, tp{"t", 0}, 2, 6); err != nil || n != 4 {
		t.Fatalf("keepCut [2,6) = %d, %v; want 4 records", n, err)
	}
	if n, err := f.keepCut(ctx, tp{"t", 0}, 2, 6); err != nil || n != 0 || keptIn(t, l) != 4 {
		t.Fatalf("keepCut [2,6) again = %d, %v, %d kept; want 0 more, 4 kept", n, err, keptIn(t, l))
	}
	data, err := l.Read(DivergedPrefix+"o.t", 0, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := batch.ValidateAll(data)
	if err != nil {
		t.Fatalf("kept batches: %v", err)
	}
	for _, h := range hs {
		if h.ProducerID != -1 || h.BaseSequence != -1 {
			t.Errorf("kept batch at %d has producer %d sequence %d", h.BaseOffset, h.ProducerID, h.BaseSequence)
		}
	}

	// Cut short after its first batch: the record says so.
	f.forgetKept(tp{"t", 0})
	data, _ = l.Read("o.t", 0, 0, 1)
	h, _ := batch.ParseHeader(data)
	v, _ := json.Marshal(keptRange{From: 0, To: 6, First: h.CRC, Done: 2})
	if err := l.Meta().KVApply(keptBucket, []meta.KVWrite{{Key: keptKey("o.t", 0), Value: v}}); err != nil {
		t.Fatal(err)
	}
	if n, err := f.keepCut(ctx, tp{"t", 0}, 0, 6); err != nil || n != 4 || keptIn(t, l) != 8 {
		t.Fatalf("keepCut [0,6) after [0,2) = %d, %v, %d kept; want 4 more, 8 kept", n, err, keptIn(t, l))
	}

	// Another range's record ([0,6), all kept) does not stop a keeping.
	if n, err := f.keepCut(ctx, tp{"t", 0}, 4, 6); err != nil || n != 2 || keptIn(t, l) != 10 {
		t.Fatalf("keepCut [4,6) = %d, %v, %d kept; want 2 more, 10 kept", n, err, keptIn(t, l))
	}
}
