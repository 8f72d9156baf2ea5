package log

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/runnel/runnel/log/batch"
)

func testOpen(t *testing.T, dir string, mod func(*Options)) Log {
	t.Helper()
	// The core tests exercise partition segment files unless mod turns
	// shared segments (the default of Open) back on: see sharedOn.
	o := &Options{Dir: dir, MinFreeBytes: -1, Logger: slog.New(slog.DiscardHandler), NoSharedSegments: true}
	if mod != nil {
		mod(o)
	}
	l, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func mkBatch(n int, prefix string) []byte {
	var b batch.Builder
	for i := 0; i < n; i++ {
		b.Add(time.Now().UnixMilli(), []byte(fmt.Sprintf("k%d", i)), []byte(fmt.Sprintf("%s-%d", prefix, i)), nil)
	}
	return b.Bytes()
}

// readAll reads every record of a partition from offset 0.
func readAll(t *testing.T, l Log, topic string, p int32) []batch.Record {
	t.Helper()
	start, hwm, err := l.Offsets(topic, p)
	if err != nil {
		t.Fatal(err)
	}
	var out []batch.Record
	off := start
	for off < hwm {
		data, err := l.Read(topic, p, off, 1<<20)
		if err != nil {
			t.Fatalf("Read %d: %v", off, err)
		}
		if len(data) == 0 {
			t.Fatalf("Read %d < hwm %d returned nothing", off, hwm)
		}
		for len(data) > 0 {
			h, err := batch.Validate(data)
			if err != nil {
				t.Fatalf("served invalid batch: %v", err)
			}
			recs, err := batch.Records(data[:h.Size()])
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Offset >= off {
					out = append(out, r)
				}
			}
			off = h.LastOffset() + 1
			data = data[h.Size():]
		}
	}
	return out
}

func TestAppendReadRoundTrip(t *testing.T) {
	for _, pol := range []FsyncPolicy{FsyncAlways, FsyncInterval, FsyncNever} {
		t.Run(string(pol), func(t *testing.T) {
			l := testOpen(t, t.TempDir(), nil)
			defer l.Close()
			if err := l.CreateTopic("t", TopicConfig{Partitions: 2, Fsync: pol}); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var want []string
			for i := 0; i < 20; i++ {
				b := mkBatch(3, fmt.Sprint("b", i))
				base, err := l.Append(ctx, "t", 1, b)
				if err != nil {
					t.Fatal(err)
				}
				if base != int64(i*3) {
					t.Fatalf("base %d want %d", base, i*3)
				}
				for j := 0; j < 3; j++ {
					want = append(want, fmt.Sprintf("b%d-%d", i, j))
				}
			}
			recs := readAll(t, l, "t", 1)
			if len(recs) != len(want) {
				t.Fatalf("got %d records want %d", len(recs), len(want))
			}
			for i, r := range recs {
				if string(r.Value) != want[i] || r.Offset != int64(i) {
					t.Fatalf("record %d: %q@%d want %q", i, r.Value, r.Offset, want[i])
				}
			}
			if s, h, _ := l.Offsets("t", 0); s != 0 || h != 0 {
				t.Fatalf("partition 0 offsets %d %d", s, h)
			}
			if d, err := l.Read("t", 1, 60, 100); d != nil || err != nil {
				t.Fatalf("read at hwm: %v %v", d, err)
			}
			if _, err := l.Read("t", 1, 61, 100); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("read past hwm: %v", err)
			}
			// maxBytes smaller than a batch still returns one batch.
			d, err := l.Read("t", 1, 4, 1)
			if err != nil || len(d) == 0 {
				t.Fatalf("small read: %v %d", err, len(d))
			}
			h, _ := batch.ParseHeader(d)
			if h.BaseOffset != 3 || h.Size() != len(d) {
				t.Fatalf("small read got base %d size %d/%d", h.BaseOffset, h.Size(), len(d))
			}
		})
	}
}

func TestAppendErrors(t *testing.T) {
	l := testOpen(t, t.TempDir(), nil)
	defer l.Close()
	ctx := context.Background()
	if _, err := l.Append(ctx, "nope", 0, mkBatch(1, "x")); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
	if err := l.CreateTopic("t", TopicConfig{MaxBatchBytes: 200}); err != nil {
		t.Fatal(err)
	}
	if err := l.CreateTopic("t", TopicConfig{}); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("exists: %v", err)
	}
	if err := l.CreateTopic("bad/name", TopicConfig{}); !errors.Is(err, ErrInvalidTopic) {
		t.Fatalf("invalid: %v", err)
	}
	if _, err := l.Append(ctx, "t", 1, mkBatch(1, "x")); !errors.Is(err, ErrUnknownPartition) {
		t.Fatalf("unknown partition: %v", err)
	}
	b := mkBatch(1, "x")
	b[len(b)-1] ^= 1
	if _, err := l.Append(ctx, "t", 0, b); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("corrupt: %v", err)
	}
	if _, err := l.Append(ctx, "t", 0, mkBatch(50, "xxxxxxxxxxxxxxxxxxxx")); !errors.Is(err, ErrBatchTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if _, hwm, _ := l.Offsets("t", 0); hwm != 0 {
		t.Fatalf("hwm %d after failed appends", hwm)
	}
	l.Close()
	if _, err := l.Append(ctx, "t", 0, mkBatch(1, "x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
}

func TestAppendAsyncOrdered(t *testing.T) {
	l := testOpen(t, t.TempDir(), nil)
	defer l.Close()
	if err := l.CreateTopic("t", TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	const n = 300
	var mu sync.Mutex
	got := map[int32][]int64{}
	var wg sync.WaitGroup
	wg.Add(3 * n)
	for i := 0; i < n; i++ {
		for p := int32(0); p < 3; p++ {
			b := mkBatch(1, "a")
			if i%50 == 7 {
				b[len(b)-1] ^= 0xff // a bad one in the middle, still ordered
			}
			l.AppendAsync("t", p, b, func(base int64, err error) {
				mu.Lock()
				if err != nil {
					base = -1
				}
				got[p] = append(got[p], base)
				mu.Unlock()
				wg.Done()
			})
		}
	}
	wg.Wait()
	for p := int32(0); p < 3; p++ {
		next := int64(0)
		for i, b := range got[p] {
			if i%50 == 7 {
				if b != -1 {
					t.Fatalf("p%d #%d: corrupt batch acknowledged", p, i)
				}
				continue
			}
			if b != next {
				t.Fatalf("p%d #%d: base %d want %d (out of order)", p, i, b, next)
			}
			next++
		}
	}
}

func TestRollAndReopen(t *testing.T) {
	dir := t.TempDir()
	l := testOpen(t, dir, nil)
	if err := l.CreateTopic("t", TopicConfig{SegmentBytes: 1000, Fsync: FsyncAlways}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		if _, err := l.Append(ctx, "t", 0, mkBatch(2, fmt.Sprint("r", i))); err != nil {
			t.Fatal(err)
		}
	}
	ti, _ := l.Topic("t")
	if ti.Partitions[0].Segments < 5 {
		t.Fatalf("only %d segments", ti.Partitions[0].Segments)
	}
	before := readAll(t, l, "t", 0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = testOpen(t, dir, nil)
	defer l.Close()
	after := readAll(t, l, "t", 0)
	if len(after) != 200 || len(before) != 200 {
		t.Fatalf("records before %d after %d", len(before), len(after))
	}
	for i := range after {
		if string(after[i].Value) != string(before[i].Value) || after[i].Offset != int64(i) {
			t.Fatalf("record %d differs after reopen", i)
		}
	}
	ti2, _ := l.Topic("t")
	if ti2.Config.SegmentBytes != 1000 {
		t.Fatalf("config not persisted: %+v", ti2.Config)
	}
	if base, err := l.Append(ctx, "t", 0, mkBatch(1, "x")); err != nil || base != 200 {
		t.Fatalf("append after reopen: %d %v", base, err)
	}
	if len(l.Stats().Damaged) != 0 {
		t.Fatalf("damage: %v", l.Stats().Damaged)
	}
	if d := l.Check(); len(d) != 0 {
		t.Fatalf("check: %v", d)
	}
}

// shmDir is a temp dir on tmpfs when available (fast directory syncs).
func shmDir(t *testing.T) string {
	if d, err := os.MkdirTemp("/dev/shm", "runnel-core-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return t.TempDir()
}

func TestReservedTopicNames(t *testing.T) {
	l := testOpen(t, t.TempDir(), nil)
	defer l.Close()
	for _, n := range []string{"journal", "recovery-point", "meta.db", "meta.db.corrupt-1"} {
		if err := l.CreateTopic(n, TopicConfig{}); !errors.Is(err, ErrInvalidTopic) {
			t.Fatalf("%s: %v", n, err)
		}
	}
}
