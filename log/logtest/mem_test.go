package logtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// mk builds one batch of n records with timestamps ts, ts+1, …; pid < 0 is
// a plain producer.
func mk(n int, ts, pid int64, seq int32) []byte {
	var b batch.Builder
	if pid >= 0 {
		b.SetProducer(pid, 0, seq)
	}
	for i := range n {
		b.Add(ts+int64(i), nil, []byte("v"), nil)
	}
	return b.Bytes()
}

func newTopic(t *testing.T, opts ...Option) *Mem {
	t.Helper()
	m := New(t, opts...)
	if err := m.CreateTopic("t", log.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAppendSequences(t *testing.T) {
	m := newTopic(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		data     []byte
		wantBase int64
		wantErr  error
	}{
		{"plain", mk(3, 0, -1, 0), 0, nil},
		{"producer first", mk(2, 0, 7, 0), 3, nil},
		{"duplicate", mk(2, 0, 7, 0), 3, log.ErrDuplicateSequence},
		{"gap", mk(1, 0, 7, 5), -1, log.ErrOutOfOrderSequence},
		{"new producer at any sequence", mk(1, 0, 8, 1), 5, nil},
		{"next in sequence", mk(1, 0, 7, 2), 6, nil},
		{"corrupt", []byte{1, 2, 3}, -1, log.ErrCorruptBatch},
	} {
		base, err := m.Append(ctx, "t", 0, tc.data)
		if base != tc.wantBase || !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: base %d err %v, want %d %v", tc.name, base, err, tc.wantBase, tc.wantErr)
		}
		if h, _ := batch.ParseHeader(tc.data); err == nil && h.BaseOffset != base {
			t.Errorf("%s: caller's baseOffset %d, want %d", tc.name, h.BaseOffset, base)
		}
	}
	if _, hwm, _ := m.Offsets("t", 0); hwm != 7 {
		t.Fatalf("hwm %d, want 7", hwm)
	}
	if st := m.Stats(); st.AppendedBatches != 4 || st.AppendedRecords != 7 {
		t.Fatalf("stats %+v", st)
	}
}

func TestAppendAt(t *testing.T) {
	m := newTopic(t)
	ctx := context.Background()
	b := mk(2, 0, -1, 0)
	batch.SetBaseOffset(b, 1)
	if err := m.AppendAt(ctx, "t", 0, b); !errors.Is(err, log.ErrNotNextOffset) {
		t.Fatalf("AppendAt(1) on empty: %v", err)
	}
	batch.SetBaseOffset(b, 0)
	if err := m.AppendAt(ctx, "t", 0, b); err != nil {
		t.Fatal(err)
	}
	if _, hwm, _ := m.Offsets("t", 0); hwm != 2 {
		t.Fatalf("hwm %d", hwm)
	}
}

func TestTopics(t *testing.T) {
	m := New(t, MaxPartitions(4))
	for _, tc := range []struct {
		name string
		n    int32
		want error
	}{
		{"a", 0, nil},
		{"a", 1, log.ErrTopicExists},
		{"bad topic", 1, log.ErrInvalidTopic},
		{"..", 1, log.ErrInvalidTopic},
		{"b", 5, log.ErrInvalidPartitions},
		{"c", -1, log.ErrInvalidPartitions},
	} {
		if err := m.CreateTopic(tc.name, log.TopicConfig{Partitions: tc.n}); !errors.Is(err, tc.want) {
			t.Errorf("CreateTopic(%q, %d) = %v, want %v", tc.name, tc.n, err, tc.want)
		}
	}
	if err := m.AddPartitions("a", 5); !errors.Is(err, log.ErrInvalidPartitions) {
		t.Errorf("AddPartitions over the cap: %v", err)
	}
	if err := m.AddPartitions("a", 3); err != nil {
		t.Fatal(err)
	}
	ti, err := m.Topic("a")
	if err != nil || len(ti.Partitions) != 3 || ti.Config.Fsync != log.FsyncAlways {
		t.Fatalf("topic %+v, %v", ti, err)
	}
	if err := m.DeleteTopic("a"); err != nil || len(m.Topics()) != 0 {
		t.Fatalf("delete: %v, %d topics left", err, len(m.Topics()))
	}
}

func TestFaults(t *testing.T) {
	m := newTopic(t)
	ctx := context.Background()
	m.SetAppendFault(func(_ string, p int32) error {
		if p == 1 {
			return log.ErrDiskFull
		}
		return nil
	})
	if _, err := m.Append(ctx, "t", 0, mk(1, 0, -1, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Append(ctx, "t", 1, mk(1, 0, -1, 0)); !errors.Is(err, log.ErrDiskFull) {
		t.Fatalf("partition 1: %v", err)
	}
	m.SetAppendError(log.ErrReadOnly)
	if _, err := m.Append(ctx, "t", 0, mk(1, 0, -1, 0)); !errors.Is(err, log.ErrReadOnly) {
		t.Fatalf("SetAppendError: %v", err)
	}
	m.SetAppendError(nil)
	if _, err := m.Append(ctx, "t", 1, mk(1, 0, -1, 0)); err != nil {
		t.Fatalf("healed: %v", err)
	}
	if r := m.Stats().Rejected; r != 1 {
		t.Fatalf("rejected %d, want 1", r)
	}
	boom := errors.New("boom")
	m.SetReadError(boom)
	if _, err := m.Read("t", 0, 0, 1<<20); err != boom {
		t.Fatalf("read: %v", err)
	}
	m.SetReadError(nil)
	if b, err := m.Read("t", 0, 0, 1<<20); err != nil || len(b) == 0 {
		t.Fatalf("healed read: %d bytes, %v", len(b), err)
	}
}

func TestDropBeforeAndTime(t *testing.T) {
	m := newTopic(t)
	ctx := context.Background()
	for i := range 4 { // batch i: offsets 10i…10i+9, timestamps 10000i…10000i+9
		if _, err := m.Append(ctx, "t", 0, mk(10, int64(i)*10000, -1, 0)); err != nil {
			t.Fatal(err)
		}
	}
	for ts, want := range map[int64]int64{0: 0, 10005: 10, 15000: 20, 40000: 40} {
		if off, _ := m.OffsetForTime("t", 0, ts); off != want {
			t.Errorf("OffsetForTime(%d) = %d, want %d", ts, off, want)
		}
	}
	m.DropBefore("t", 0, 25) // the batch holding 25 stays
	if start, hwm, _ := m.Offsets("t", 0); start != 20 || hwm != 40 {
		t.Fatalf("offsets %d %d, want 20 40", start, hwm)
	}
	if _, err := m.Read("t", 0, 19, 1); !errors.Is(err, log.ErrOffsetOutOfRange) {
		t.Errorf("read below start: %v", err)
	}
	b, err := m.Read("t", 0, 25, 1) // at least one batch
	if h, _ := batch.ParseHeader(b); err != nil || h.BaseOffset != 20 || len(b) != h.Size() {
		t.Errorf("read 25: base %d, %d bytes, %v", h.BaseOffset, len(b), err)
	}
	if b, err := m.Read("t", 0, 40, 1); b != nil || err != nil {
		t.Errorf("read at hwm: %d bytes, %v", len(b), err)
	}
	m.HoldRetention("forward/r")
	if !m.Held("forward/r") || m.Held("other") {
		t.Error("Held")
	}
}

// TestAsyncCommit: done funcs run later, on another goroutine, in call
// order, after the sync delay; the batches become readable, and a Watch
// waiter is signalled, only when the commit is done.
func TestAsyncCommit(t *testing.T) {
	m := newTopic(t, AsyncCommit())
	m.SetSyncDelay(300 * time.Millisecond)
	w := log.NewWaiter()
	if err := m.Watch(w, "t", 0, 0); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var (
		mu     sync.Mutex
		bases  []int64
		inline = true
		wg     sync.WaitGroup
	)
	wg.Add(n)
	start := time.Now()
	for range n {
		m.AppendAsync("t", 0, mk(2, 0, -1, 0), func(base int64, err error) {
			mu.Lock()
			if err != nil || inline {
				t.Errorf("done(%d, %v), inline %v", base, err, inline)
			}
			bases = append(bases, base)
			mu.Unlock()
			wg.Done()
		})
	}
	mu.Lock()
	inline = false
	mu.Unlock()
	if b, err := m.Read("t", 0, 0, 1<<20); err != nil || len(b) > 0 {
		t.Errorf("read during the sync: %d bytes, %v; want nothing yet", len(b), err)
	}
	select {
	case <-w.C():
		if time.Since(start) < 290*time.Millisecond {
			t.Error("Watch signalled before the sync delay")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch never signalled")
	}
	wg.Wait()
	for i, b := range bases {
		if b != int64(2*i) {
			t.Fatalf("bases %v: out of order", bases)
		}
	}
	if rs, err := m.Records("t", 0); err != nil || len(rs) != 2*n {
		t.Fatalf("%d records, %v", len(rs), err)
	}
}

func TestClose(t *testing.T) {
	for _, async := range []bool{false, true} {
		var opts []Option
		if async {
			opts = append(opts, AsyncCommit())
		}
		m := newTopic(t, opts...)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := m.Append(context.Background(), "t", 0, mk(1, 0, -1, 0)); !errors.Is(err, log.ErrClosed) {
			t.Errorf("async %v: Append after Close: %v", async, err)
		}
		got := make(chan error, 1)
		m.AppendAsync("t", 0, mk(1, 0, -1, 0), func(_ int64, err error) { got <- err })
		if err := <-got; !errors.Is(err, log.ErrClosed) {
			t.Errorf("async %v: AppendAsync after Close: %v", async, err)
		}
		if _, err := m.Read("t", 0, 0, 1); !errors.Is(err, log.ErrClosed) {
			t.Errorf("async %v: Read after Close: %v", async, err)
		}
	}
}
