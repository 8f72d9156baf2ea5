package log

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/vfs"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

// Races and crashes around shared files (extent index, roll, reuse,
// collection). Each test drives one interleaving or crash the code allows
// and checks what an acknowledged append is promised.

func sharedRaceOpen(t *testing.T, fs vfs.FS, mod func(*Options)) *logImpl {
	t.Helper()
	o := &Options{Dir: t.TempDir(), FS: fs, MinFreeBytes: -1, Logger: slog.New(slog.DiscardHandler),
		SharedSegmentBytes: 4 << 10, CheckpointInterval: time.Hour, RetentionCheckInterval: time.Hour}
	if mod != nil {
		mod(o)
	}
	l, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l.(*logImpl)
}

// checkValues reads every offset of t/p from the log start and wants n
// records, the j-th valued prefix<j>-0.
func checkValues(t *testing.T, l Log, p int32, values []string) {
	t.Helper()
	recs := []string{}
	start, hwm, err := l.Offsets("t", p)
	if err != nil {
		t.Fatal(err)
	}
	for off := start; off < hwm; {
		b, err := l.Read("t", p, off, 1<<20)
		if err != nil || len(b) == 0 {
			t.Fatalf("partition %d: read offset %d of [%d, %d): %v (read so far %q)", p, off, start, hwm, err, recs)
		}
		for _, r := range readRecords(t, b) {
			recs = append(recs, string(r))
			off++
		}
	}
	if strings.Join(recs, ",") != strings.Join(values, ",") {
		t.Fatalf("partition %d: records %q, want %q", p, recs, values)
	}
}

func readRecords(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		h, err := batch.Validate(b)
		if err != nil {
			t.Fatalf("served an invalid batch: %v", err)
		}
		recs, err := batch.Records(b[:h.Size()])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			out = append(out, r.Value)
		}
		b = b[h.Size():]
	}
	return out
}

// A writer's shared append returns the active file f (its run's file,
// last); before it takes seg.mu to add the extent, another partition's
// append rolls f, a commit makes f durable and the checkpoint loop indexes
// f (sharedLog.index), which sets the run's extents to nil (left in the
// index). The writer then appends its extent to the nil slice: the run's
// extents are that one entry only, and every earlier byte of the run
// (acknowledged records) reads as EOF. The interleaving is forced: the
// test holds seg.mu so the writer stops exactly there, and with one P the
// indexing (run by the test goroutine itself) takes seg.mu before the
// woken writer runs.
func TestIndexRacesSharedAppend(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	l := sharedRaceOpen(t, errorfs.NewMem(1), func(o *Options) { o.CommitDelay = -1 })
	defer l.Close()
	ctx := context.Background()
	if err := l.CreateTopic("t", TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 0; i < 3; i++ {
		if _, err := l.Append(ctx, "t", 0, mkBatch(1, fmt.Sprint("p", i))); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("p%d-0", i))
	}
	p, _ := l.part("t", 0)
	p.mu.Lock()
	seg := p.active()
	p.mu.Unlock()
	if seg.virt == nil {
		t.Fatal("setup: partition 0 does not write to shared files")
	}
	l.shared.mu.Lock()
	f := l.shared.active
	before := f.written
	l.shared.mu.Unlock()

	seg.mu.Lock()
	done := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, "t", 0, mkBatch(1, "p3"))
		done <- err
	}()
	want = append(want, "p3-0")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		l.shared.mu.Lock()
		w := f.written
		l.shared.mu.Unlock()
		if w > before {
			break
		}
		if time.Now().After(deadline) {
			seg.mu.Unlock()
			t.Fatal("setup: the writer did not write its entry")
		}
	}
	time.Sleep(20 * time.Millisecond) // the writer now waits for seg.mu
	// Partition 1 fills f: f rolls, the commit syncs it (with the entry
	// of partition 0 written above), and it waits to be indexed.
	big := mkBatch(1, strings.Repeat("x", 4<<10))
	if _, err := l.Append(ctx, "t", 1, big); err != nil {
		seg.mu.Unlock()
		t.Fatal(err)
	}
	l.shared.mu.Lock()
	pending := false
	for _, g := range l.shared.pending {
		pending = pending || g == f
	}
	active := l.shared.active == f
	l.shared.mu.Unlock()
	if !pending || active {
		seg.mu.Unlock()
		t.Fatalf("setup: file %d pending %v, active %v", f.seq, pending, active)
	}
	seg.mu.Unlock()
	l.shared.indexPending() // what checkpointLoop does once kicked
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkValues(t, l, 0, want)
}

// syncGate is an injector that can hold the syncs of one file (until
// released) and kill the machine (every operation fails from then on).
type syncGate struct {
	dead    atomic.Bool
	path    atomic.Value // string: file whose syncs are held
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newSyncGate() *syncGate {
	g := &syncGate{entered: make(chan struct{}, 16), release: make(chan struct{})}
	g.path.Store("")
	return g
}

func (g *syncGate) MaybeError(op errorfs.Op) error {
	if g.dead.Load() {
		return errorfs.ErrCrashed
	}
	if op.Kind == errorfs.OpSync && op.Path == g.path.Load().(string) {
		g.entered <- struct{}{}
		<-g.release
		if g.dead.Load() {
			return errorfs.ErrCrashed
		}
	}
	return nil
}

func (g *syncGate) open() { g.once.Do(func() { close(g.release) }) }

// rolledUnsynced leaves partition 0 of "t" with records p0-p2
// acknowledged in shared file f and p3 written to f but not synced, f
// rolled (its seal entry not synced either) and a checkpoint written that
// names the newer file. Then the machine stops: it returns the page cache
// (for a kill -9: open mem again), power-cut images taken at that moment,
// and the data dir.
func rolledUnsynced(t *testing.T) (*errorfs.MemFS, map[errorfs.CrashMode]*errorfs.MemFS, string) {
	mem := errorfs.NewMem(2)
	gate := newSyncGate()
	defer gate.open()
	dir := t.TempDir()
	l := sharedRaceOpen(t, errorfs.Wrap(mem, gate), func(o *Options) { o.CommitDelay = -1; o.Dir = dir })
	ctx := context.Background()
	if err := l.CreateTopic("t", TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := l.Append(ctx, "t", 0, mkBatch(1, fmt.Sprint("p", i))); err != nil {
			t.Fatal(err)
		}
	}
	l.shared.mu.Lock()
	f := l.shared.active
	l.shared.mu.Unlock()
	gate.path.Store(f.path)
	l.AppendAsync("t", 0, mkBatch(1, "p3"), nil) // written to f; its commit waits in fdatasync(f)
	<-gate.entered
	// Partition 1 rolls f (seal entry written, not synced) to a new file.
	l.AppendAsync("t", 1, mkBatch(1, strings.Repeat("x", 4<<10)), nil)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		l.shared.mu.Lock()
		rolled := l.shared.active != f
		l.shared.mu.Unlock()
		if rolled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("setup: f did not roll")
		}
	}
	if err := l.writeCheckpoint(); err != nil { // the checkpoint loop's tick
		t.Fatal(err)
	}
	snaps := map[errorfs.CrashMode]*errorfs.MemFS{}
	for _, m := range []errorfs.CrashMode{errorfs.CrashZeroTail, errorfs.CrashTornWrite} {
		snaps[m] = mem.Crash(m)
	}
	// Nothing more reaches the FS; the page cache (mem) stays.
	gate.dead.Store(true)
	gate.open()
	l.Close()
	return mem, snaps, dir
}

// A killed process (kill -9: the page cache survives, the process does
// not) leaves unsynced entries in a rolled shared file whose sequence is
// older than the checkpointed shared file. Open scans that file with
// durable = 1<<62 (ck.sharedSeq > seq) and so skips the fdatasync that
// foundEntries does "after a killed process ... never serve what a power
// cut could still take", then indexes and serves the entries. A power cut
// after the restart takes them back: records served after the restart are
// gone.
func TestKilledOlderSharedFileNotSynced(t *testing.T) {
	mem, _, dir := rolledUnsynced(t)
	l2 := sharedRaceOpen(t, mem, func(o *Options) { o.Dir = dir })
	served := []string{}
	start, hwm, _ := l2.Offsets("t", 0)
	for off := start; off < hwm; off++ {
		b, err := l2.Read("t", 0, off, 1<<20)
		if err != nil {
			t.Fatalf("after the restart: read %d: %v", off, err)
		}
		served = append(served, string(readRecords(t, b)[0]))
	}
	power := mem.Crash(errorfs.CrashDropUnsynced) // a power cut after the restart
	l2.Close()
	l3 := sharedRaceOpen(t, power, func(o *Options) { o.Dir = dir })
	defer l3.Close()
	if d := l3.Stats().Damaged; len(d) > 0 {
		t.Errorf("after the power cut: damage %+v", d)
	}
	checkValues(t, l3, 0, served)
}

// The same state, but the power fails instead of the process: the rolled
// file's unsynced tail (an unacknowledged entry, the seal entry) is an
// ordinary torn tail, yet open scans the file with durable = 1<<62 (older
// than the checkpointed shared file) and reports it as damage in data
// known durable. Nothing acknowledged was lost.
func TestPowerCutOlderSharedFileTail(t *testing.T) {
	_, snaps, dir := rolledUnsynced(t)
	for _, mode := range []errorfs.CrashMode{errorfs.CrashZeroTail, errorfs.CrashTornWrite} {
		t.Run(mode.String(), func(t *testing.T) {
			l := sharedRaceOpen(t, snaps[mode], func(o *Options) { o.Dir = dir })
			defer l.Close()
			if d := l.Stats().Damaged; len(d) > 0 {
				t.Errorf("damage after a power cut that lost nothing acknowledged: %+v", d)
			}
			for off := int64(0); off < 3; off++ {
				if _, err := l.Read("t", 0, off, 1<<20); err != nil {
					t.Errorf("acknowledged offset %d: %v", off, err)
				}
			}
		})
	}
}

// collect closes the handle of a dead shared file (no references, not
// active) and drops it from dirty, but sync took that handle under s.mu
// and fdatasyncs it after letting go of s.mu. A rolled file whose seal
// entry is not synced yet is in dirty; when the last topic with entries
// in it is deleted while a commit's fdatasync of it is under way, the
// fdatasync hits a closed handle: breakLocked turns shared storage off
// and every partition whose commit is pending (here: another topic's)
// goes read-only, although nothing failed on disk.
func TestCollectClosesHandleUnderSync(t *testing.T) {
	mem := errorfs.NewMem(3)
	gate := newSyncGate()
	defer gate.open()
	l := sharedRaceOpen(t, errorfs.Wrap(mem, gate), func(o *Options) { o.CommitDelay = -1 })
	defer l.Close()
	ctx := context.Background()
	for _, n := range []string{"a", "b"} {
		if err := l.CreateTopic(n, TopicConfig{Partitions: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// Topic a alone writes the first file; b writes only after it rolled.
	for i := 0; i < 3; i++ {
		if _, err := l.Append(ctx, "a", 0, mkBatch(1, fmt.Sprint("a", i))); err != nil {
			t.Fatal(err)
		}
	}
	l.shared.mu.Lock()
	f := l.shared.active
	l.shared.mu.Unlock()
	gate.path.Store(f.path)
	// a's next append rolls f (seal entry unsynced) and lands in the new
	// file; its commit holds in fdatasync(f).
	aDone := make(chan error, 1)
	l.AppendAsync("a", 0, mkBatch(1, strings.Repeat("x", 4<<10)), func(_ int64, err error) { aDone <- err })
	<-gate.entered
	bDone := make(chan error, 1)
	l.AppendAsync("b", 0, mkBatch(1, "b0"), func(_ int64, err error) { bDone <- err })
	if err := l.DeleteTopic("a"); err != nil { // releases f's last references; collect
		t.Fatal(err)
	}
	gate.open()
	<-aDone
	if err := <-bDone; err != nil {
		t.Errorf("append to b (no disk error anywhere): %v", err)
	}
	if _, err := l.Append(ctx, "b", 0, mkBatch(1, "b1")); err != nil {
		t.Errorf("append to b after a's deletion: %v", err)
	}
	if s := l.Stats(); len(s.ReadOnly) > 0 || !l.shared.usable() {
		t.Errorf("read-only partitions %+v, shared storage usable %v", s.ReadOnly, l.shared.usable())
	}
}
