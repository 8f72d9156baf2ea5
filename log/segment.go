package log

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/vfs"
)

// File name suffixes. Never change.
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
)

func segmentName(base int64) string { return fmt.Sprintf("%020d", base) + logSuffix }

func indexPath(logPath string) string {
	return strings.TrimSuffix(logPath, logSuffix) + indexSuffix
}

func timeIndexPath(logPath string) string {
	return strings.TrimSuffix(logPath, logSuffix) + timeIndexSuffix
}

// parseSegmentName returns the base offset of a "%020d.log" name.
func parseSegmentName(name string) (int64, bool) {
	if !strings.HasSuffix(name, logSuffix) || len(name) != 20+len(logSuffix) {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.TrimSuffix(name, logSuffix), 10, 64)
	if err != nil || v < 0 {
		return 0, false
	}
	return v, true
}

// badRange is damaged bytes of a segment: [pos, end) is never served.
// to is the offset of the batch at end (-1: not known), so a read of a
// later offset passes over the range and checks the batches from there.
type badRange struct {
	pos, end int64
	to       int64
}

// segment is one .log file with its sparse indexes.
//
// base, path and rel never change. size, next, synced, created and sealed
// are guarded by the owning partition's mu. mu guards the index fields,
// which readers load lazily for sealed segments.
type segment struct {
	base int64
	path string // absolute path of the .log
	rel  string // path relative to the data dir (for Damage)

	// guarded by partition.mu
	size    int64     // bytes written
	next    int64     // offset after the last batch
	synced  int64     // bytes known to be on stable storage by fdatasync
	covered int64     // bytes durable by fdatasync or in the journal
	created time.Time // for roll by age
	sealed  bool
	deleted bool // removed by retention: never reopen (that would recreate it)
	// virt is set (never changed) for a virtual segment, whose batches
	// live in shared files; path is then empty.
	virt *vseg

	mu          sync.Mutex   // guards the fields below
	indexed     bool         // index and maxTs are complete up to size
	index       []indexEntry // sparse index
	lastIndexed int64        // position of the last index entry (-1 none)
	maxTs       int64        // largest batch maxTimestamp (-1 none)
	bad         []badRange   // damage found in this segment
	sealedIdx   bool         // sealed: the index may be unloaded (indexCache)
}

func newSegment(dir, relDir string, base int64) *segment {
	name := segmentName(base)
	return &segment{
		base: base, next: base,
		path:        filepath.Join(dir, name),
		rel:         filepath.Join(relDir, name),
		created:     time.Now(),
		lastIndexed: -1,
		maxTs:       -1,
		indexed:     true,
	}
}

// virtualIndexSpacing widens the sparse index of virtual segments, which
// stays in memory (no index files to reload it from): one entry per 16
// index intervals (64 KiB by default).
const virtualIndexSpacing = 16

// newVirtualSegment is a segment of partition key stored in shared files.
func newVirtualSegment(relDir string, base int64, key sharedKey) *segment {
	return &segment{
		base: base, next: base,
		rel:         filepath.Join(relDir, fmt.Sprintf("%020d (shared)", base)),
		created:     time.Now(),
		lastIndexed: -1,
		maxTs:       -1,
		indexed:     true,
		virt:        &vseg{key: key},
	}
}

// addIndexLocked records the batch at pos in the sparse index when it is
// the first one or far enough from the previous entry. s.mu must be held.
func (s *segment) addIndexLocked(h *batch.Header, pos int64, interval int) {
	if h.MaxTimestamp > s.maxTs {
		s.maxTs = h.MaxTimestamp
	}
	if s.lastIndexed >= 0 && pos-s.lastIndexed < int64(interval) {
		return
	}
	s.index = append(s.index, indexEntry{relOff: uint32(h.BaseOffset - s.base), pos: uint32(pos), maxTs: s.maxTs})
	s.lastIndexed = pos
}

// truncateIndexLocked drops index entries at or past size.
func (s *segment) truncateIndexLocked(size int64) {
	i := len(s.index)
	for i > 0 && int64(s.index[i-1].pos) >= size {
		i--
	}
	s.index = s.index[:i]
	s.lastIndexed = -1
	if i > 0 {
		s.lastIndexed = int64(s.index[i-1].pos)
	}
}

// ensureIndex loads the index of a sealed segment (from its index files,
// or by scanning the .log when they are missing or bad). size is the
// segment's size.
func (s *segment) ensureIndex(l *logImpl, size int64) error {
	if err := s.loadIndex(l, size); err != nil {
		return err
	}
	if s.isSealed(l) {
		l.indexes.touch(s)
	}
	return nil
}

// isSealed reports whether s is no longer its partition's active segment
// (sealed is guarded by the partition's mu; a racy false only keeps an
// index in memory a little longer).
func (s *segment) isSealed(l *logImpl) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sealedIdx
}

func (s *segment) loadIndex(l *logImpl, size int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.indexed {
		return nil
	}
	idx, err := readIndexes(l.fs, s.path, s.base, size)
	if err == nil {
		s.index = idx
		if len(idx) > 0 {
			s.lastIndexed = int64(idx[len(idx)-1].pos)
			s.maxTs = idx[len(idx)-1].maxTs
		}
		s.indexed = true
		return nil
	}
	if err := s.rebuildIndexLocked(l, size); err != nil {
		return err
	}
	if werr := writeIndexes(l.fs, s.path, s.base, s.index); werr != nil {
		l.logger.Warn("log: cannot rewrite index", "file", s.rel, "err", werr)
	}
	return nil
}

// rebuildIndexLocked scans the .log (headers only) and rebuilds the index;
// damage stops the scan, is recorded, and the scan resumes at the next
// valid batch when one can be found.
func (s *segment) rebuildIndexLocked(l *logImpl, size int64) error {
	var r io.ReaderAt
	if s.virt != nil {
		r = &vreader{l: l, seg: s, held: true}
	} else {
		cf, err := l.files.get(s.path, false)
		if err != nil {
			return fmt.Errorf("open segment %d: %w", s.base, err)
		}
		defer l.files.release(cf)
		r = cf.f
	}
	s.index, s.lastIndexed, s.maxTs = nil, -1, -1
	sc := newScanner(r, 0, size, false)
	expect := s.base
	for {
		h, _, pos, err := sc.next()
		if err == io.EOF {
			break
		}
		var bad *errBadBatch
		if errors.As(err, &bad) || (err == nil && h.BaseOffset < expect) {
			// Damage: remember it and look for the next good batch.
			at := resync(r, pos+1, size, expect, expect+1<<31)
			end := at
			if at < 0 {
				end = size
			}
			s.addBadLocked(l, pos, end, "unreadable batch while rebuilding index")
			if at < 0 {
				break
			}
			sc = newScanner(r, at, size, false)
			s.lastIndexed = -1 // force an entry right after the damage
			continue
		}
		if err != nil {
			return fmt.Errorf("scan segment %d: %w", s.base, err)
		}
		s.addIndexLocked(&h, pos, l.opts.IndexIntervalBytes)
		expect = h.LastOffset() + 1
	}
	s.indexed = true
	return nil
}

// addBadLocked records damaged bytes [pos, end) (once).
func (s *segment) addBadLocked(l *logImpl, pos, end int64, reason string) {
	s.addBadRangeLocked(l, pos, end, Damage{Reason: reason, From: -1, To: -1})
}

// addBadRangeLocked is addBadLocked with what d says of the partition
// and offsets (its File and Offset are filled in).
func (s *segment) addBadRangeLocked(l *logImpl, pos, end int64, d Damage) {
	for _, b := range s.bad {
		if b.pos == pos {
			return
		}
	}
	s.bad = append(s.bad, badRange{pos: pos, end: end, to: d.To})
	file, at := s.rel, pos
	if s.virt != nil {
		if f, fpos := (&vreader{l: l, seg: s, held: true}).locate(pos); f != "" {
			file, at = f, fpos
		}
	}
	d.File, d.Offset = file, at
	l.addDamage(d)
}

// skips reports whether a read of offset at pos (in the range, the batch
// of offset expect due there) passes over the range to b.end, where the
// batch of offset b.to is due.
func (b badRange) skips(pos, expect, offset int64) bool {
	return b.to > expect && b.end > pos+1 && offset >= b.to
}

// badAt returns the damaged range holding pos, if any.
func (s *segment) badAt(pos int64) (badRange, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.bad {
		if pos >= b.pos && pos < b.end {
			return b, true
		}
	}
	return badRange{}, false
}

// lookup returns the file position to start scanning for offset and the
// base offset the batch there must have.
func (s *segment) lookup(offset int64) (pos, base int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rel := offset - s.base
	if rel < 0 {
		return 0, s.base
	}
	if rel > 1<<32-1 {
		rel = 1<<32 - 1
	}
	e := lookupOffset(s.index, uint32(rel))
	if e.pos == 0 {
		return 0, s.base
	}
	return int64(e.pos), s.base + int64(e.relOff)
}

// lookupTime returns the file position to start scanning for timestamp ts.
func (s *segment) lookupTime(ts int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(lookupTime(s.index, ts).pos)
}

// seal writes the index files of a segment that will get no more data.
func (s *segment) seal(fs vfs.FS) error {
	if s.virt != nil {
		return nil // its index lives in memory only
	}
	s.mu.Lock()
	idx := append([]indexEntry(nil), s.index...)
	last := s.maxTs
	s.sealedIdx = true
	s.mu.Unlock()
	// The time index ends with the segment's largest timestamp so
	// retention and time lookups know it without a scan.
	if n := len(idx); n > 0 && idx[n-1].maxTs < last {
		idx[n-1].maxTs = last
	}
	return writeIndexes(fs, s.path, s.base, idx)
}
