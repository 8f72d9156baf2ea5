package log_test

// Crash-point tests: a seeded workload over several partitions with segment
// rolls runs on errorfs.MemFS behind an errorfs.Crasher that "cuts the
// power" before the Nth mutating file operation, for every N the workload
// performs. Each crash is turned into one recovered file system per
// errorfs.CrashMode (unsynced data dropped, last write torn, unsynced tail
// zeroed, everything kept) and each is reopened with log.Open and checked:
//
//   - no acknowledged record lost (Append returned nil ⇒ readable after
//     recovery, at the offset Append returned);
//   - nothing reordered or corrupt: every batch served is byte-identical
//     to the batch appended at that offset; the only batches allowed beyond
//     the acknowledged ones are the ones in flight at the crash;
//   - recovery is not damage: Check() and Stats().Damaged stay empty;
//   - the log is writable after recovery and a second reopen sees the same.
//
// Then, on the cleanly closed file system, single bits are flipped in
// sealed segments (bit rot): each flip must be detected (Check, Stats or a
// refusing Read), no altered byte may be served, and every record outside
// the damaged segment must stay readable.
//
// Scale: RUNNEL_SOAK=1 (make soak) multiplies seeds and workload length;
// RUNNEL_SOAK=bounded (make soak-short, part of make test) runs a few more
// seeds at the soak's length; -short runs a few seeds.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/meta"
	"github.com/runnel/runnel/log/vfs"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

// soak reports whether the long runs of make soak were asked for.
func soak() bool { return os.Getenv("RUNNEL_SOAK") == "1" }

// soakBounded reports whether the bounded long runs of make soak-short
// (part of make test) were asked for: the soak scale on a slice of it,
// about a minute in all.
func soakBounded() bool { return os.Getenv("RUNNEL_SOAK") == "bounded" }

// fastTempDir returns a fresh directory on tmpfs when there is one (meta.db
// lives on the real file system; its fsyncs are free on tmpfs).
func fastTempDir(t testing.TB) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "runnel-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// newMemFS returns a MemFS in which dir already exists on stable storage
// (as a data directory does when runnel starts).
func newMemFS(seed uint64, dir string) *errorfs.MemFS {
	mem := errorfs.NewMem(seed)
	if err := mem.MkdirAllSynced(dir, 0o755); err != nil {
		panic(err)
	}
	return mem
}

// tp names a partition.
type tp struct {
	topic string
	part  int32
}

func (p tp) String() string { return fmt.Sprintf("%s/%d", p.topic, p.part) }

// wlTopic is a topic the workload creates.
type wlTopic struct {
	name string
	cfg  log.TopicConfig
}

// wlStep is one Append of the workload.
type wlStep struct {
	tp    tp
	batch []byte // baseOffset 0; copied before each Append
}

// workload is a deterministic sequence of topic creations and appends.
type workload struct {
	seed   uint64
	topics []wlTopic
	steps  []wlStep
	// concurrent runs each partition's appends in its own goroutine, so
	// group commit serves several waiting writers with one sync.
	concurrent bool
}

// newWorkload builds a workload of n appends over 4 partitions of two
// topics whose segments roll every few batches.
func newWorkload(seed uint64, n int) *workload {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	w := &workload{seed: seed, topics: []wlTopic{
		{"t", log.TopicConfig{Partitions: 3, SegmentBytes: 1200, RetentionAge: -1}},
		{"u", log.TopicConfig{Partitions: 1, SegmentBytes: 3000, RetentionAge: -1}},
	}}
	parts := []tp{{"t", 0}, {"t", 1}, {"t", 2}, {"u", 0}}
	// One burst in every workload starts with small appends to its
	// partition, enough to bring it (back) to shared storage first, so
	// every shared-mode run moves a partition from shared storage to a
	// segment file (crashSeed checks).
	const smallRun, largeRun = 9, 10
	burstAt := r.IntN(max(1, n-smallRun-largeRun))
	guaranteed := false
	for i := 0; i < n; {
		first := !guaranteed && i >= burstAt
		if first || guaranteed && r.IntN(40) == 0 {
			// A burst of large batches to one partition: each over twice
			// these tests' JournalSmallBytes (600 bytes), more in a row
			// than the log's fileAfterLargeCommits (8), so in shared
			// storage the partition moves to a segment file (and back
			// after enough small appends).
			p := parts[r.IntN(len(parts))]
			if first {
				guaranteed = true
				for j := 0; j < smallRun && i < n; j++ {
					w.steps = append(w.steps, wlStep{tp: p, batch: workloadBatch(r, i, 1, 0, 100)})
					i++
				}
			}
			for j := 0; j < largeRun && i < n; j++ {
				w.steps = append(w.steps, wlStep{tp: p, batch: workloadBatch(r, i, 4, 350, 450)})
				i++
			}
			continue
		}
		w.steps = append(w.steps, wlStep{tp: parts[r.IntN(len(parts))], batch: workloadBatch(r, i, 1+r.IntN(4), 0, 180)})
		i++
	}
	return w
}

// movedToFile reports whether some partition of w has a virtual segment
// (shared storage) followed by a segment file.
func movedToFile(l log.Log, w *workload) bool {
	for _, p := range w.partitions() {
		k := log.SegmentKinds(l, p.topic, p.part)
		if i := strings.IndexByte(k, 'v'); i >= 0 && strings.IndexByte(k[i:], 'f') >= 0 {
			return true
		}
	}
	return false
}

// workloadBatch is the batch of workload step i: records records with
// values of lo to hi-1 random bytes, one in five batches compressed.
func workloadBatch(r *rand.Rand, i, records, lo, hi int) []byte {
	var b batch.Builder
	if r.IntN(5) == 0 {
		b.Codec = batch.CodecSnappy
	}
	for j := range records {
		val := make([]byte, lo+r.IntN(hi-lo))
		for k := range val {
			val[k] = byte(r.UintN(256))
		}
		var hdr []batch.RecordHeader
		if r.IntN(3) == 0 {
			hdr = []batch.RecordHeader{{Key: "step", Value: []byte(fmt.Sprint(i))}}
		}
		b.Add(1_700_000_000_000+int64(i*10+j), []byte(fmt.Sprintf("k%d-%d", i, j)), val, hdr)
	}
	return b.Bytes()
}

func (w *workload) partitions() []tp {
	var out []tp
	for _, t := range w.topics {
		for p := range t.cfg.Partitions {
			out = append(out, tp{t.name, p})
		}
	}
	return out
}

// ackedBatch is a batch Append acknowledged: data is the caller's slice
// after Append (baseOffset rewritten), exactly what must be served.
type ackedBatch struct {
	base int64
	data []byte
}

// outcome is what a workload run acknowledged.
type outcome struct {
	mu       sync.Mutex // guards everything below during a run
	acked    map[tp][]ackedBatch
	inflight map[tp][][]byte // attempted, not acknowledged (their fate is open)
	created  map[string]bool // topics whose CreateTopic returned nil
	err      error           // the first error (nil when the run completed)
}

func records(b []byte) int64 {
	h, err := batch.ParseHeader(b)
	if err != nil {
		return 0
	}
	return int64(h.LastOffsetDelta) + 1
}

// run opens the log with opts, creates the topics and appends every step
// in order, stopping at the first error (after a crash every operation
// fails). The log is returned open (nil if Open failed).
func (w *workload) run(opts *log.Options) (log.Log, *outcome) {
	out := &outcome{acked: map[tp][]ackedBatch{}, inflight: map[tp][][]byte{}, created: map[string]bool{}}
	l, err := log.Open(opts)
	if err != nil {
		out.err = fmt.Errorf("open: %w", err)
		return nil, out
	}
	for _, t := range w.topics {
		if err := l.CreateTopic(t.name, t.cfg); err != nil {
			out.err = fmt.Errorf("create topic %s: %w", t.name, err)
			return l, out
		}
		out.created[t.name] = true
	}
	ctx := context.Background()
	if !w.concurrent {
		for i, s := range w.steps {
			if !out.append(ctx, l, i, s) {
				break
			}
		}
		return l, out
	}
	var wg sync.WaitGroup
	for _, p := range w.partitions() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, s := range w.steps {
				if s.tp == p && !out.append(ctx, l, i, s) {
					return
				}
			}
		}()
	}
	wg.Wait()
	return l, out
}

// append runs one step and records its fate; false after an error.
func (out *outcome) append(ctx context.Context, l log.Log, i int, s wlStep) bool {
	b := append([]byte(nil), s.batch...)
	base, err := l.Append(ctx, s.tp.topic, s.tp.part, b)
	out.mu.Lock()
	defer out.mu.Unlock()
	if err != nil {
		out.inflight[s.tp] = append(out.inflight[s.tp], b)
		if out.err == nil {
			out.err = fmt.Errorf("step %d append %v: %w", i, s.tp, err)
		}
		return false
	}
	out.acked[s.tp] = append(out.acked[s.tp], ackedBatch{base, b})
	return true
}

// testOptions are the log options of these tests: no background timers
// that would make the operation sequence depend on the clock.
func testOptions(dir string, fs vfs.FS, mode storeMode) *log.Options {
	small := int64(0) // default
	if mode == modeShared {
		// Appends over 600 bytes go to partition segment files: a
		// partition moves between shared storage and its own files.
		small = 600
	}
	return &log.Options{
		JournalSmallBytes:      small,
		Dir:                    dir,
		FS:                     fs,
		Logger:                 slog.New(slog.DiscardHandler),
		MaxOpenFiles:           6, // exercise the handle LRU
		MinFreeBytes:           -1,
		RetentionCheckInterval: time.Hour,
		CheckpointInterval:     time.Hour,
		DiskCheckInterval:      time.Hour,
		NoJournal:              mode == modeNoJournal,
		NoSharedSegments:       mode != modeShared,
		SharedSegmentBytes:     1500, // several shared files per run
	}
}

// storeMode is the storage format a crash test runs.
type storeMode int

const (
	modeShared    storeMode = iota // shared segments (the default)
	modeNoJournal                  // partition files, fdatasync each
	modeJournal                    // partition files through the journal
)

func (m storeMode) String() string {
	return [...]string{"shared", "files", "files+journal"}[m]
}

// expectation is what one partition may serve after recovery.
type expectation struct {
	byBase    map[int64][]byte // acknowledged and in-flight batches by base offset
	ackedEnd  int64            // offset after the last acknowledged record
	maxEnd    int64            // offset after the last in-flight record
	ackedList []ackedBatch
}

func expect(out *outcome, p tp) expectation {
	e := expectation{byBase: map[int64][]byte{}}
	for _, a := range out.acked[p] {
		e.byBase[a.base] = a.data
		e.ackedEnd = a.base + records(a.data)
		e.ackedList = append(e.ackedList, a)
	}
	e.maxEnd = e.ackedEnd
	for _, b := range out.inflight[p] {
		c := append([]byte(nil), b...)
		batch.SetBaseOffset(c, e.maxEnd)
		e.byBase[e.maxEnd] = c
		e.maxEnd += records(b)
	}
	return e
}

// readAll reads a partition from start to hwm and checks every batch
// served against e. It returns the problems found.
func readAll(l log.Log, p tp, start, hwm int64, e expectation) []string {
	var probs []string
	off := start
	for off < hwm {
		b, err := l.Read(p.topic, p.part, off, 1<<16)
		if err != nil {
			return append(probs, fmt.Sprintf("%v: Read(%d) with HWM %d: %v", p, off, hwm, err))
		}
		if len(b) == 0 {
			return append(probs, fmt.Sprintf("%v: Read(%d) returned nothing below HWM %d", p, off, hwm))
		}
		hs, err := batch.ValidateAll(b)
		if err != nil {
			return append(probs, fmt.Sprintf("%v: Read(%d) served bytes that fail validation: %v", p, off, err))
		}
		pos := 0
		progressed := false
		for _, h := range hs {
			raw := b[pos : pos+h.Size()]
			pos += h.Size()
			if h.LastOffset() < off {
				continue
			}
			if h.BaseOffset > off {
				return append(probs, fmt.Sprintf("%v: Read(%d) skipped to batch %d", p, off, h.BaseOffset))
			}
			if h.LastOffset() >= hwm {
				return append(probs, fmt.Sprintf("%v: Read served offset %d at or past HWM %d", p, h.LastOffset(), hwm))
			}
			want, ok := e.byBase[h.BaseOffset]
			if !ok {
				return append(probs, fmt.Sprintf("%v: served a batch at %d that was never appended there", p, h.BaseOffset))
			}
			if !bytes.Equal(raw, want) {
				return append(probs, fmt.Sprintf("%v: batch at %d differs from what was appended (%d vs %d bytes)", p, h.BaseOffset, len(raw), len(want)))
			}
			off = h.LastOffset() + 1
			progressed = true
		}
		if !progressed {
			return append(probs, fmt.Sprintf("%v: Read(%d) made no progress", p, off))
		}
	}
	return probs
}

// verifyRecovered checks a log reopened after a crash against out.
func verifyRecovered(l log.Log, w *workload, out *outcome) []string {
	var probs []string
	for _, p := range w.partitions() {
		e := expect(out, p)
		start, hwm, err := l.Offsets(p.topic, p.part)
		if err != nil {
			if e.maxEnd == 0 && !out.created[p.topic] && (errors.Is(err, log.ErrUnknownTopic) || errors.Is(err, log.ErrUnknownPartition)) {
				continue // the crash came before the topic existed
			}
			if e.maxEnd == 0 && (errors.Is(err, log.ErrUnknownTopic) || errors.Is(err, log.ErrUnknownPartition)) {
				probs = append(probs, fmt.Sprintf("%v: topic created (CreateTopic returned nil) but unknown after recovery: %v", p, err))
				continue
			}
			probs = append(probs, fmt.Sprintf("%v: Offsets: %v", p, err))
			continue
		}
		if start != 0 {
			probs = append(probs, fmt.Sprintf("%v: log start %d, want 0", p, start))
		}
		if hwm < e.ackedEnd {
			probs = append(probs, fmt.Sprintf("%v: HWM %d < acknowledged end %d: acknowledged records lost", p, hwm, e.ackedEnd))
		}
		if hwm > e.maxEnd {
			probs = append(probs, fmt.Sprintf("%v: HWM %d > %d (acknowledged %d + in flight)", p, hwm, e.maxEnd, e.ackedEnd))
		}
		probs = append(probs, readAll(l, p, start, min(hwm, e.maxEnd), e)...)
	}
	return probs
}

// appendAfterRecovery appends one batch per partition and checks each got
// the HWM as base offset; it returns the updated outcome.
func appendAfterRecovery(l log.Log, w *workload, out *outcome) (*outcome, []string) {
	var probs []string
	next := &outcome{acked: map[tp][]ackedBatch{}, inflight: map[tp][][]byte{}, created: map[string]bool{}}
	for _, t := range w.topics {
		next.created[t.name] = true
		if !out.created[t.name] {
			err := l.CreateTopic(t.name, t.cfg)
			if err != nil && !errors.Is(err, log.ErrTopicExists) {
				probs = append(probs, fmt.Sprintf("create %s after recovery: %v", t.name, err))
				return next, probs
			}
			if info, ierr := l.Topic(t.name); errors.Is(err, log.ErrTopicExists) && ierr == nil && len(info.Partitions) != int(t.cfg.Partitions) {
				probs = append(probs, fmt.Sprintf("CreateTopic(%s) was cut by the crash; after recovery the topic exists with %d of %d partitions and CreateTopic returns ErrTopicExists",
					t.name, len(info.Partitions), t.cfg.Partitions))
				return next, probs
			}
		}
	}
	for _, p := range w.partitions() {
		_, hwm, err := l.Offsets(p.topic, p.part)
		if err != nil {
			probs = append(probs, fmt.Sprintf("%v: Offsets after recovery: %v", p, err))
			continue
		}
		// What survived is now the acknowledged history.
		e := expect(out, p)
		for base := int64(0); base < hwm; {
			d, ok := e.byBase[base]
			if !ok {
				break
			}
			next.acked[p] = append(next.acked[p], ackedBatch{base, d})
			base += records(d)
		}
		var b batch.Builder
		b.Add(1_800_000_000_000, []byte("after"), []byte(p.String()), nil)
		data := b.Bytes()
		base, err := l.Append(context.Background(), p.topic, p.part, data)
		if err != nil {
			probs = append(probs, fmt.Sprintf("%v: Append after recovery: %v", p, err))
			continue
		}
		if base != hwm {
			probs = append(probs, fmt.Sprintf("%v: Append after recovery got base %d, HWM was %d", p, base, hwm))
		}
		next.acked[p] = append(next.acked[p], ackedBatch{base, data})
	}
	return next, probs
}

// crashStats counts what the crash tests did.
type crashStats struct {
	recoveries, crashPoints, flips, detected atomic.Int64
}

// reopen restores meta.db (meta is outside the crash model: bbolt commits
// are durable) and opens the log on fs.
func reopen(dir string, metaDB []byte, fs vfs.FS, mode storeMode) (log.Log, error) {
	path := filepath.Join(dir, meta.FileName)
	os.Remove(path)
	if metaDB != nil {
		if err := os.WriteFile(path, metaDB, 0o600); err != nil {
			return nil, err
		}
	}
	return log.Open(testOptions(dir, fs, mode))
}

// crashScale returns the seeds to run, [first, first+seeds), and the
// appends per seed. The bounded soak runs seeds the default run does not,
// at the soak's length.
func crashScale() (first, seeds, steps int) {
	switch {
	case soak():
		return 1, 48, 120
	case soakBounded():
		return 7, 3, 120
	case testing.Short():
		return 1, 3, 40
	}
	return 1, 6, 60
}

func TestCrashRecovery(t *testing.T) {
	first, seeds, steps := crashScale()
	var st crashStats
	start := time.Now()
	for s := range seeds {
		seed := uint64(first + s)
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			crashSeed(t, seed, steps, storeMode((seed-1)%3), seed%2 == 0, &st)
		})
	}
	t.Logf("%d crash points, %d recoveries (%d after bit flips, %d flips detected) in %v",
		st.crashPoints.Load(), st.recoveries.Load(), st.flips.Load(), st.detected.Load(), time.Since(start).Round(time.Millisecond))
	if !testing.Short() && !t.Failed() && st.recoveries.Load() < 5000 {
		t.Errorf("only %d recoveries; the crash test must run at least 5,000", st.recoveries.Load())
	}
}

// crashSeed runs one seed: a reference run, then a crash at every mutating
// operation of it, then bit flips on the cleanly closed result.
func crashSeed(t *testing.T, seed uint64, steps int, mode storeMode, concurrent bool, st *crashStats) {
	dir := fastTempDir(t)
	w := newWorkload(seed, steps)
	w.concurrent = concurrent

	// Reference run: nothing fails, count the operations.
	mem := newMemFS(seed, dir)
	counted := errorfs.Wrap(mem, nil)
	l, out := w.run(testOptions(dir, counted, mode))
	if out.err != nil {
		t.Fatalf("reference run: %v", out.err)
	}
	if mode == modeShared && !movedToFile(l, w) {
		t.Fatal("reference run: no partition moved from shared storage to a segment file, so the crash points do not cover that move")
	}
	if err := l.Close(); err != nil {
		t.Fatalf("reference close: %v", err)
	}
	total := counted.CountOf(errorfs.MutatingOps)
	// Index files may stay unsynced (they are rebuilt from the .log when
	// damaged); everything else must be on stable storage after Close.
	var unsynced []string
	for _, p := range mem.UnsyncedPaths(dir) {
		if !strings.HasSuffix(p, "index") {
			unsynced = append(unsynced, p)
		}
	}
	if len(unsynced) > 0 {
		t.Errorf("Close left unsynced data or directory entries: %q", unsynced)
	}
	metaDB, err := os.ReadFile(filepath.Join(dir, meta.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("seed %d (%v concurrent=%v): %d appends, %d mutating operations", seed, mode, concurrent, steps, total)

	failures := 0
	for n := uint64(1); n <= total && failures < 5; n++ {
		if probs := crashAt(t, dir, w, seed, n, mode, st); len(probs) > 0 {
			failures++
			t.Errorf("crash before mutating op #%d:\n  %s", n, strings.Join(probs, "\n  "))
		}
	}
	flipSealed(t, dir, w, mem, out, metaDB, mode, seed, st)
}

// crashAt runs the workload with a power cut before mutating op n and
// checks the recovery of each crash mode.
func crashAt(t *testing.T, dir string, w *workload, seed, n uint64, mode storeMode, st *crashStats) []string {
	os.RemoveAll(dir)
	os.MkdirAll(dir, 0o755)
	mem := newMemFS(seed*1_000_003+n, dir)
	snaps := map[errorfs.CrashMode]*errorfs.MemFS{}
	var crashOp errorfs.Op
	unsynced := map[string]bool{}
	crasher := &errorfs.Crasher{Kinds: errorfs.MutatingOps, At: n, OnCrash: func(op errorfs.Op) {
		crashOp = op
		for _, m := range errorfs.CrashModes {
			snaps[m] = mem.Crash(m)
		}
		for _, p := range mem.UnsyncedPaths(dir) {
			unsynced[p] = true
		}
	}}
	l, out := w.run(testOptions(dir, errorfs.Wrap(mem, crasher), mode))
	if l != nil {
		l.Close() // releases meta.db; the FS is dead, errors expected
	}
	if !crasher.Crashed() {
		return nil // this run did fewer operations than the reference one
	}
	st.crashPoints.Add(1)
	metaDB, err := os.ReadFile(filepath.Join(dir, meta.FileName))
	if err != nil {
		metaDB = nil // the crash came before meta.db was created
	}
	var probs []string
	for _, m := range errorfs.CrashModes {
		st.recoveries.Add(1)
		for _, p := range recoverAndCheck(dir, metaDB, snaps[m], w, out, mode, n%5 == 0) {
			probs = append(probs, fmt.Sprintf("[%v at %v] %s", m, crashOp, p))
		}
	}
	if n%3 == 0 {
		probs = append(probs, flipAfterCrash(dir, metaDB, snaps[errorfs.CrashDropUnsynced], unsynced, w, out, mode, n, st)...)
	}
	return probs
}

// flipAfterCrash adds bit rot to the power cut: one bit flipped in a
// segment that was sealed and fully synced at the crash. Recovery must not
// serve the altered batch, and every acknowledged batch elsewhere must stay
// readable. (Detection is not required here: the journal may legitimately
// rewrite the flipped bytes during replay; served bytes are compared.)
func flipAfterCrash(dir string, metaDB []byte, crashed *errorfs.MemFS, unsynced map[string]bool, w *workload, out *outcome, mode storeMode, n uint64, st *crashStats) []string {
	var cands []segFile
	for _, f := range append(segmentFiles(nil, crashed, dir, map[tp]int64{}), sharedFiles(crashed, dir)...) {
		if f.sealed && !f.index && f.size > 0 && !unsynced[f.path] {
			cands = append(cands, f)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	r := rand.New(rand.NewPCG(n, 0xf11b))
	f := cands[r.IntN(len(cands))]
	off, bit := r.Int64N(f.size), uint(r.IntN(8))
	snap := crashed.Crash(errorfs.CrashKeepAll)
	if err := snap.FlipBit(f.path, off, bit); err != nil {
		return []string{err.Error()}
	}
	st.recoveries.Add(1)
	st.flips.Add(1)
	probs, detected := checkFlip(dir, metaDB, snap, w, out, f, mode)
	if detected {
		st.detected.Add(1)
	}
	rel, _ := filepath.Rel(dir, f.path)
	for i := range probs {
		probs[i] = fmt.Sprintf("[drop-unsynced + bit %d of byte %d in %s] %s", bit, off, rel, probs[i])
	}
	return probs
}

// recoverAndCheck opens the log on a crashed FS and checks it; with
// twice, it also appends, closes, reopens and checks again.
func recoverAndCheck(dir string, metaDB []byte, fs *errorfs.MemFS, w *workload, out *outcome, mode storeMode, twice bool) []string {
	l, err := reopen(dir, metaDB, fs, mode)
	if err != nil {
		return []string{fmt.Sprintf("reopen failed: %v", err)}
	}
	defer l.Close()
	probs := verifyRecovered(l, w, out)
	if d := l.Check(); len(d) > 0 {
		probs = append(probs, fmt.Sprintf("Check() after crash recovery reports damage: %+v", d))
	}
	if d := l.Stats().Damaged; len(d) > 0 {
		probs = append(probs, fmt.Sprintf("Stats().Damaged after crash recovery (a torn tail is not damage): %+v", d))
	}
	if len(probs) > 0 || !twice {
		return probs
	}
	next, p := appendAfterRecovery(l, w, out)
	if probs = append(probs, p...); len(probs) > 0 {
		return probs
	}
	if err := l.Close(); err != nil {
		return []string{fmt.Sprintf("close after recovery: %v", err)}
	}
	metaNow, _ := os.ReadFile(filepath.Join(dir, meta.FileName))
	l2, err := reopen(dir, metaNow, fs, mode)
	if err != nil {
		return []string{fmt.Sprintf("second reopen failed: %v", err)}
	}
	defer l2.Close()
	for _, p := range verifyRecovered(l2, w, next) {
		probs = append(probs, "second reopen: "+p)
	}
	return probs
}

// segFile is a segment file of a partition.
type segFile struct {
	path       string
	p          tp
	base, end  int64 // offsets [base, end) live in it
	size       int64
	sealed     bool
	index      bool // an index file, not a .log
	firstBatch int64
	// shared: a shared segment file (dir/~shared/<seq>.slog) holding
	// batches of any partition; orig is its content before a flip
	shared bool
	orig   []byte
}

// sharedFiles lists the shared segment files below dir; all but the
// newest are sealed.
func sharedFiles(fs *errorfs.MemFS, dir string) []segFile {
	var out []segFile
	fs.Walk(filepath.Join(dir, "~shared"), func(path string, size int64) {
		if strings.HasSuffix(path, ".slog") {
			out = append(out, segFile{path: path, size: size, shared: true, sealed: true})
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	if len(out) > 0 {
		out[len(out)-1].sealed = false
	}
	for i := range out {
		f, err := fs.Open(out[i].path)
		if err != nil {
			continue
		}
		out[i].orig, _ = io.ReadAll(io.NewSectionReader(f, 0, out[i].size))
		f.Close()
	}
	return out
}

// segmentFiles lists the .log (and index) files below dir, by partition:
// dir/<topic>/<partition>/<base>.log.
func segmentFiles(t *testing.T, fs *errorfs.MemFS, dir string, hwm map[tp]int64) []segFile {
	byDir := map[string][]segFile{}
	fs.Walk(dir, func(path string, size int64) {
		rel, _ := filepath.Rel(dir, path)
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) != 3 {
			return
		}
		name := parts[2]
		ext := filepath.Ext(name)
		var base int64
		if _, err := fmt.Sscanf(strings.TrimSuffix(name, ext), "%d", &base); err != nil {
			return
		}
		var part int32
		fmt.Sscanf(parts[1], "%d", &part)
		byDir[filepath.Dir(path)] = append(byDir[filepath.Dir(path)], segFile{
			path: path, p: tp{parts[0], part}, base: base, size: size, index: ext != ".log"})
	})
	var out []segFile
	for _, files := range byDir {
		var bases []int64
		for _, f := range files {
			if !f.index {
				bases = append(bases, f.base)
			}
		}
		sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
		for _, f := range files {
			i := sort.Search(len(bases), func(i int) bool { return bases[i] >= f.base })
			if i == len(bases) || bases[i] != f.base {
				continue
			}
			f.sealed = i < len(bases)-1
			if f.sealed {
				f.end = bases[i+1]
			} else {
				f.end = hwm[f.p]
			}
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// headerBytes are byte positions in every field of a batch header: base
// offset, length, leader epoch, magic, CRC (none CRC-covered), then
// attributes .. record count and the first record.
var headerBytes = []int64{0, 7, 8, 11, 12, 15, 16, 17, 20, 21, 23, 27, 35, 43, 51, 53, 57, 60, 61, 62}

// flipsPerSeed is how many single-bit flips each seed tries.
func flipsPerSeed() int {
	switch {
	case soak(), soakBounded():
		return 400
	case testing.Short():
		return 40
	}
	return 120
}

// flipSealed flips one bit at a time in the sealed segments (and their
// indexes) of the cleanly closed mem and checks detection and reads.
func flipSealed(t *testing.T, dir string, w *workload, mem *errorfs.MemFS, out *outcome, metaDB []byte, mode storeMode, seed uint64, st *crashStats) {
	hwm := map[tp]int64{}
	for _, p := range w.partitions() {
		hwm[p] = expect(out, p).ackedEnd
	}
	var logs, indexes []segFile
	for _, f := range append(segmentFiles(t, mem, dir, hwm), sharedFiles(mem, dir)...) {
		if !f.sealed || f.size == 0 {
			continue
		}
		if f.index {
			indexes = append(indexes, f)
		} else {
			logs = append(logs, f)
		}
	}
	if len(logs) == 0 {
		t.Fatalf("no sealed segments: the workload did not roll (files: %v)", segmentFiles(t, mem, dir, hwm))
	}
	r := rand.New(rand.NewPCG(seed, 0xb17))
	failures := 0
	for i := range flipsPerSeed() {
		var f segFile
		if i%4 == 3 && len(indexes) > 0 {
			f = indexes[r.IntN(len(indexes))]
		} else {
			f = logs[r.IntN(len(logs))]
		}
		off, bit := r.Int64N(f.size), uint(r.IntN(8))
		if i < len(headerBytes) && !f.index && !f.shared {
			// First hit every header field of the segment's first batch,
			// including those the CRC does not cover.
			off = min(headerBytes[i], f.size-1)
		}
		snap := mem.Crash(errorfs.CrashKeepAll)
		if err := snap.FlipBit(f.path, off, bit); err != nil {
			t.Fatal(err)
		}
		st.recoveries.Add(1)
		if !f.index {
			st.flips.Add(1)
		}
		probs, detected := checkFlip(dir, metaDB, snap, w, out, f, mode)
		if detected && !f.index {
			st.detected.Add(1)
		}
		if !f.index && !detected {
			probs = append(probs, "flip not detected: Check(), Stats().Damaged and Read all silent")
		}
		if len(probs) > 0 {
			failures++
			rel, _ := filepath.Rel(dir, f.path)
			t.Errorf("bit %d of byte %d in %s (offsets %d..%d, %d bytes):\n  %s", bit, off, rel, f.base, f.end, f.size, strings.Join(probs, "\n  "))
			if failures >= 5 {
				return
			}
		}
	}
}

// checkFlip opens the log on a file system with one flipped bit in f.
func checkFlip(dir string, metaDB []byte, fs *errorfs.MemFS, w *workload, out *outcome, f segFile, mode storeMode) (probs []string, detected bool) {
	l, err := reopen(dir, metaDB, fs, mode)
	if err != nil {
		return []string{fmt.Sprintf("open refused the whole log over one flipped bit: %v", err)}, true
	}
	defer l.Close()
	rel, _ := filepath.Rel(dir, f.path)
	names := func(ds []log.Damage) bool {
		for _, d := range ds {
			if d.File == rel || filepath.Join(dir, d.File) == f.path || strings.HasSuffix(f.path, d.File) {
				return true
			}
		}
		return false
	}
	detected = names(l.Stats().Damaged)
	// Every acknowledged batch: served exactly, or refused only if it lives
	// in the damaged segment.
	for _, p := range w.partitions() {
		e := expect(out, p)
		for _, a := range e.ackedList {
			b, err := l.Read(p.topic, p.part, a.base, 1)
			inDamaged := p == f.p && a.base >= f.base && a.base < f.end || f.shared && bytes.Contains(f.orig, a.data)
			if err != nil {
				if inDamaged && !f.index {
					detected = true
					continue
				}
				probs = append(probs, fmt.Sprintf("%v: Read(%d) outside the damaged segment: %v", p, a.base, err))
				continue
			}
			h, verr := batch.Validate(b)
			if verr != nil {
				probs = append(probs, fmt.Sprintf("%v: Read(%d) served bytes failing validation: %v\n%s", p, a.base, verr, log.DebugSegments(l, p.topic, p.part)))
				continue
			}
			if h.BaseOffset != a.base || !bytes.Equal(b[:h.Size()], a.data) {
				probs = append(probs, fmt.Sprintf("%v: Read(%d) served a batch (base %d) that differs from the one appended", p, a.base, h.BaseOffset))
			}
		}
	}
	if names(l.Check()) {
		detected = true
	}
	return probs, detected
}
