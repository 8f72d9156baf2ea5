package log

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/vfs"
)

// The cleaner of compacted topics (cleanup.policy compact): one goroutine
// that, every Options.CleanerInterval, picks the partitions whose dirty
// share reached their MinCleanableRatio and rewrites their sealed segment
// files keeping the latest record per key. See doc.go, "Compaction".

// CleanerStats is the cleaner's part of Stats.
type CleanerStats struct {
	Passes         uint64    // cleaning passes run (one partition each)
	Segments       uint64    // segment files rewritten
	BytesRead      uint64    // bytes read by the cleaner
	BytesWritten   uint64    // bytes written by the cleaner (cleaned segments)
	RecordsRemoved uint64    // records removed (superseded, or expired tombstones)
	Aborted        uint64    // passes given up (a segment changed under it, an I/O error)
	LastPass       time.Time // when the last pass ended (zero: none)
	MaxDirtyRatio  float64   // largest dirty share among compacted partitions
}

// cleanerCounters are the atomics behind CleanerStats.
type cleanerCounters struct {
	passes, segments, read, written, removed, aborted atomic.Uint64
	lastPass                                          atomic.Int64 // unix nanos
}

// cleanState is a partition's compaction progress. Only the cleaner
// goroutine writes cleanedTo and lastPass; truncs is raised by Truncate.
type cleanState struct {
	cleanedTo atomic.Int64 // offsets before it were cleaned by the last pass since open
	lastPass  atomic.Int64 // unix nanos of the last pass (0: none since open)
	truncs    atomic.Uint64
}

// cleanedSuffix names the file a cleaned segment is written to before it
// replaces the segment (a ".tmp" file: open removes leftovers).
const cleanedSuffix = ".cleaned.tmp"

// errCleanAborted: the pass gave up without changing anything.
var errCleanAborted = errors.New("log: cleaning pass aborted")

// cleanerLoop runs passes until Close. While no topic is compacted it
// has no timer (an idle box takes no wakeup for it): creating a topic or
// changing a topic's config wakes it (kickCleaner).
func (l *logImpl) cleanerLoop() {
	t := time.NewTicker(l.opts.CleanerInterval)
	defer t.Stop()
	for {
		if !l.anyCompacted() {
			t.Stop()
			select {
			case <-l.quit:
				return
			case <-l.cleanKick:
			}
			t.Reset(l.opts.CleanerInterval)
			continue
		}
		select {
		case <-l.quit:
			return
		case <-t.C:
		}
		for _, tp := range l.topicList() {
			cfg := tp.config()
			if !cfg.Compacted() {
				continue
			}
			for _, p := range tp.partitions() {
				if l.closed.Load() {
					return
				}
				if !p.cleanDue(&cfg, time.Now()) {
					continue
				}
				if err := l.cleanPartition(p, &cfg, time.Now()); err != nil && !errors.Is(err, errCleanAborted) {
					l.logger.Warn("log: cleaning pass failed (nothing changed by it is lost)", "topic", p.t.name, "partition", p.id, "err", err)
				}
			}
		}
	}
}

// anyCompacted reports whether a topic is compacted.
func (l *logImpl) anyCompacted() bool {
	for _, tp := range l.topicList() {
		if tp.config().Compacted() {
			return true
		}
	}
	return false
}

// kickCleaner tells cleanerLoop that a topic was created or its config
// changed (it may be compacted now).
func (l *logImpl) kickCleaner() {
	select {
	case l.cleanKick <- struct{}{}:
	default:
	}
}

// dirtyRatio is the share of the partition's bytes at or after the
// offset the last pass cleaned to.
func (p *partition) dirtyRatio() float64 {
	to := p.cleaning.cleanedTo.Load()
	p.mu.Lock()
	defer p.mu.Unlock()
	var total, dirty int64
	for _, s := range p.segs {
		total += s.size
		if s.next > to {
			dirty += s.size
		}
	}
	if total == 0 {
		return 0
	}
	return float64(dirty) / float64(total)
}

// cleanDue reports whether a pass should run: the dirty share reached
// the topic's ratio, or the last pass is older than the tombstones'
// retention (tombstones become removable with time alone).
func (p *partition) cleanDue(cfg *TopicConfig, now time.Time) bool {
	last := p.cleaning.lastPass.Load()
	if last != 0 && now.Sub(time.Unix(0, last)) >= cfg.DeleteRetention {
		return true
	}
	p.mu.Lock()
	sealed := len(p.segs) > 1
	p.mu.Unlock()
	return sealed && p.dirtyRatio() >= cfg.MinCleanableRatio
}

// cleanTarget is a segment a pass may rewrite.
type cleanTarget struct {
	seg  *segment
	size int64
}

// mapSpan is a stretch of a segment the pass reads for its key map.
type mapSpan struct {
	seg   *segment
	limit int64
}

// cleanPartition runs one pass over p: a map of every key's latest
// offset over the durable records, then each sealed segment file that
// loses records rewritten and swapped in.
func (l *logImpl) cleanPartition(p *partition, cfg *TopicConfig, now time.Time) error {
	c := &l.cleanerCtr
	truncs := p.cleaning.truncs.Load()
	p.mu.Lock()
	if p.closed || p.roErr != nil {
		p.mu.Unlock()
		return errCleanAborted
	}
	// Only durable records may supersede: a superseded record removed
	// for a newer one that a crash then loses would lose the key.
	var spans []mapSpan
	var targets []cleanTarget
	durSeg, durPos := p.durableSeg, p.durablePos
	for _, s := range p.segs {
		if durSeg == nil {
			break
		}
		if s == durSeg {
			if durPos > 0 {
				spans = append(spans, mapSpan{s, durPos})
			}
			break
		}
		spans = append(spans, mapSpan{s, s.size})
		if s.sealed && s.virt == nil && s.synced >= s.size && s.next <= p.durable && s.next <= p.hwm && s != p.hwmSeg {
			targets = append(targets, cleanTarget{s, s.size})
		}
	}
	p.mu.Unlock()
	c.passes.Add(1)
	defer func() {
		t := time.Now()
		p.cleaning.lastPass.Store(t.UnixNano())
		c.lastPass.Store(t.UnixNano())
	}()
	if len(targets) == 0 {
		return nil
	}
	// Segments whose journal records could still be replayed over them
	// (written before the topic became compacted) wait for the journal's
	// next checkpoint.
	if j := l.journal; j != nil {
		j.mu.Lock()
		keep := targets[:0]
		for _, t := range targets {
			if _, ok := j.segs[t.seg]; !ok {
				keep = append(keep, t)
			}
		}
		targets = keep
		j.mu.Unlock()
	}
	cutoff := now.Add(-cfg.MinCompactionLag).UnixMilli()
	m := &compactor{keys: map[keyHash]int64{}, tombHorizon: now.Add(-cfg.DeleteRetention).UnixMilli()}
	maxTs := map[*segment]int64{}
	for _, sp := range spans {
		ts, err := l.walkSegment(p, sp.seg, sp.limit, m.note)
		if err != nil {
			c.aborted.Add(1)
			return fmt.Errorf("map %s: %w", sp.seg.rel, err)
		}
		maxTs[sp.seg] = ts
		if l.closed.Load() {
			return errCleanAborted
		}
	}
	cleanedTo := int64(0)
	for _, t := range targets {
		if maxTs[t.seg] > cutoff {
			break // min.compaction.lag: this segment and later ones wait
		}
		changed, err := l.cleanSegment(p, t, m, truncs)
		if err != nil {
			c.aborted.Add(1)
			return err
		}
		if changed {
			c.segments.Add(1)
		}
		cleanedTo = t.seg.next
		if l.closed.Load() {
			break
		}
	}
	if cleanedTo > p.cleaning.cleanedTo.Load() {
		p.cleaning.cleanedTo.Store(cleanedTo)
	}
	return nil
}

// walkSegment reads the batches of seg up to limit (bounded by the
// cleaner's rate), calling fn for each, and returns the largest batch
// timestamp.
func (l *logImpl) walkSegment(p *partition, seg *segment, limit int64, fn func(b []byte, h *batch.Header) error) (int64, error) {
	r, release, err := l.segReader(seg)
	if err != nil {
		return 0, err
	}
	defer release()
	it := batchIter{r: r, limit: limit, l: l}
	maxTs := int64(-1)
	for {
		b, h, err := it.next()
		if err == io.EOF {
			return maxTs, nil
		}
		if err != nil {
			return 0, err
		}
		maxTs = max(maxTs, h.MaxTimestamp)
		if fn != nil {
			if err := fn(b, &h); err != nil {
				return 0, err
			}
		}
	}
}

// cleanSegment rewrites one sealed segment file without the records m
// says go, and swaps it in. Nothing is written when nothing goes.
func (l *logImpl) cleanSegment(p *partition, t cleanTarget, m *compactor, truncs uint64) (bool, error) {
	seg := t.seg
	m.reset()
	tmp := seg.path[:len(seg.path)-len(logSuffix)] + cleanedSuffix
	w := &cleanWriter{l: l, p: p, seg: seg, path: tmp}
	m.spill = w.spill
	_, err := l.walkSegment(p, seg, t.size, m.filter)
	m.flushGap()
	if err == nil {
		err = w.spill(m, true)
	}
	if err == nil && w.f != nil {
		err = w.finish()
	}
	if err != nil {
		w.abort()
		if isNoSpace(err) {
			return false, fmt.Errorf("%w: %s: %v", errCleanAborted, seg.rel, err)
		}
		return false, fmt.Errorf("clean %s: %w", seg.rel, err)
	}
	if m.removed == 0 {
		return false, nil
	}
	// The swap: readers wait (cleanMu), appends do not (they never touch
	// a sealed segment).
	p.cleanMu.Lock()
	defer p.cleanMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || seg.deleted || seg.size != t.size || p.cleaning.truncs.Load() != truncs || p.roErr != nil {
		l.fs.Remove(tmp)
		return false, errCleanAborted
	}
	// Index files go first: without them the index is rebuilt from
	// whichever .log the rename leaves.
	for _, path := range []string{indexPath(seg.path), timeIndexPath(seg.path)} {
		if err := l.fs.Remove(path); err != nil && !os.IsNotExist(err) {
			l.fs.Remove(tmp)
			return false, fmt.Errorf("remove %s: %w", path, err)
		}
	}
	l.files.forget(seg.path)
	if err := l.fs.Rename(tmp, seg.path); err != nil {
		l.fs.Remove(tmp)
		return false, fmt.Errorf("swap in cleaned %s: %w", seg.rel, err)
	}
	if err := vfs.SyncDir(l.fs, p.dir); err != nil {
		// The rename may not be durable; either file is a valid segment.
		l.logger.Warn("log: cannot sync directory after cleaning", "topic", p.t.name, "partition", p.id, "err", err)
	}
	n := w.off
	seg.size, seg.synced, seg.covered = n, n, n
	seg.mu.Lock()
	seg.index, seg.indexed, seg.lastIndexed, seg.maxTs = nil, false, -1, -1
	seg.mu.Unlock()
	l.indexes.forget(seg)
	l.cleanerCtr.removed.Add(uint64(m.removed))
	l.logger.Debug("log: segment cleaned", "topic", p.t.name, "partition", p.id, "offset", seg.base,
		"bytes_before", t.size, "bytes_after", n, "records_removed", m.removed)
	return true, nil
}

// cleanWriter streams a cleaned segment to its temp file, so a pass
// holds at most cleanerBufBytes of it in memory. The file is created at
// the first removed record: until then the output is the segment's own
// bytes, counted (prefix) instead of kept, and copied from the segment
// when the file is created. A segment that loses nothing is never
// written.
type cleanWriter struct {
	l      *logImpl
	p      *partition
	seg    *segment
	path   string
	f      vfs.File
	off    int64 // bytes written to f
	prefix int64 // leading bytes equal to the segment's, not written yet
}

// cleanerBufBytes is how much cleaned output a pass holds before writing.
const cleanerBufBytes = 256 << 10

// spill writes (or counts) the compactor's pending output; final at the
// end of the segment.
func (w *cleanWriter) spill(c *compactor, final bool) error {
	if c.removed == 0 {
		if !final {
			w.prefix += int64(len(c.out))
			c.out = c.out[:0]
		}
		return nil
	}
	if w.f == nil {
		w.l.fs.Remove(w.path)
		f, err := w.l.fs.Create(w.path)
		if err != nil {
			return err
		}
		w.f = f
		if err := w.copyPrefix(); err != nil {
			return err
		}
	}
	err := w.write(c.out)
	c.out = c.out[:0]
	return err
}

// copyPrefix copies the segment's first prefix bytes to the file.
func (w *cleanWriter) copyPrefix() error {
	if w.prefix == 0 {
		return nil
	}
	r, release, err := w.l.segReader(w.seg)
	if err != nil {
		return err
	}
	defer release()
	buf := make([]byte, min(w.prefix, cleanerBufBytes))
	for done := int64(0); done < w.prefix; {
		n := min(int64(len(buf)), w.prefix-done)
		if !w.l.cleanerRate.wait(int(n), w.l.quit) {
			return errCleanAborted
		}
		if err := readAtFull(r, buf[:n], done); err != nil {
			return err
		}
		w.l.cleanerCtr.read.Add(uint64(n))
		if err := w.write(buf[:n]); err != nil {
			return err
		}
		done += n
	}
	w.prefix = 0
	return nil
}

func (w *cleanWriter) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if !w.l.cleanerRate.wait(len(b), w.l.quit) {
		return errCleanAborted
	}
	if _, err := w.f.WriteAt(b, w.off); err != nil {
		return err
	}
	w.off += int64(len(b))
	w.l.cleanerCtr.written.Add(uint64(len(b)))
	return nil
}

// finish makes the file durable and closes it.
func (w *cleanWriter) finish() error {
	f := w.f
	w.f = nil
	if err := f.Sync(); err != nil {
		f.Close()
		w.l.fs.Remove(w.path)
		return err
	}
	return f.Close()
}

// abort drops the file.
func (w *cleanWriter) abort() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	w.l.fs.Remove(w.path)
}

// cleanerStats is the snapshot for Stats.
func (l *logImpl) cleanerStats() CleanerStats {
	c := &l.cleanerCtr
	s := CleanerStats{
		Passes: c.passes.Load(), Segments: c.segments.Load(), BytesRead: c.read.Load(),
		BytesWritten: c.written.Load(), RecordsRemoved: c.removed.Load(), Aborted: c.aborted.Load(),
	}
	if t := c.lastPass.Load(); t != 0 {
		s.LastPass = time.Unix(0, t)
	}
	for _, t := range l.topicList() {
		if cfg := t.config(); !cfg.Compacted() {
			continue
		}
		for _, p := range t.partitions() {
			s.MaxDirtyRatio = max(s.MaxDirtyRatio, p.dirtyRatio())
		}
	}
	return s
}

// batchIter walks the batches of a segment through a read window,
// validating each (CRC included), with reads paced by the cleaner's rate.
type batchIter struct {
	r      io.ReaderAt
	l      *logImpl
	pos    int64
	limit  int64
	buf    []byte
	bufPos int64
}

const cleanerWindow = 256 << 10

func (it *batchIter) fill(n int64) error {
	n = min(n, it.limit-it.pos)
	if !it.l.cleanerRate.wait(int(n), it.l.quit) {
		return errCleanAborted
	}
	if int64(cap(it.buf)) < n {
		it.buf = make([]byte, n)
	}
	it.buf = it.buf[:n]
	if err := readAtFull(it.r, it.buf, it.pos); err != nil {
		return err
	}
	it.bufPos = it.pos
	it.l.cleanerCtr.read.Add(uint64(n))
	return nil
}

func (it *batchIter) next() ([]byte, batch.Header, error) {
	if it.pos >= it.limit {
		return nil, batch.Header{}, io.EOF
	}
	if it.buf == nil || it.pos+batch.HeaderSize > it.bufPos+int64(len(it.buf)) {
		if err := it.fill(cleanerWindow); err != nil {
			return nil, batch.Header{}, err
		}
	}
	rel := it.pos - it.bufPos
	h, err := batch.ParseHeader(it.buf[rel:])
	if err != nil {
		return nil, h, fmt.Errorf("batch at %d: %w", it.pos, err)
	}
	size := int64(h.Size())
	if it.pos+size > it.limit {
		return nil, h, fmt.Errorf("batch at %d runs past %d", it.pos, it.limit)
	}
	if it.pos+size > it.bufPos+int64(len(it.buf)) {
		if err := it.fill(max(size, cleanerWindow)); err != nil {
			return nil, h, err
		}
		rel = 0
	}
	b := it.buf[rel : rel+size]
	if _, err := batch.Validate(b); err != nil {
		return nil, h, fmt.Errorf("batch at %d: %w", it.pos, err)
	}
	it.pos += size
	return b, h, nil
}

// rateLimiter paces the cleaner's I/O to a number of bytes per second
// (a burst of one second's worth).
type rateLimiter struct {
	rate int64 // <= 0: unbounded

	mu   sync.Mutex // guards next
	next time.Time  // when the bytes granted so far are paid for
}

// wait blocks until n more bytes fit the rate; false when quit closed.
func (r *rateLimiter) wait(n int, quit <-chan struct{}) bool {
	if r.rate <= 0 || n <= 0 {
		return true
	}
	r.mu.Lock()
	now := time.Now()
	if r.next.Before(now.Add(-time.Second)) {
		r.next = now.Add(-time.Second)
	}
	r.next = r.next.Add(time.Duration(float64(n) / float64(r.rate) * float64(time.Second)))
	d := r.next.Sub(now)
	r.mu.Unlock()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-quit:
		return false
	}
}

// keyHash identifies a key in the cleaner's map: 16 bytes of its
// SHA-256, so the map costs the same per key whatever the key's length
// (Kafka's cleaner keeps 16 bytes of MD5).
type keyHash [16]byte

func hashKey(k []byte) keyHash {
	s := sha256.Sum256(k)
	var h keyHash
	copy(h[:], s[:16])
	return h
}
