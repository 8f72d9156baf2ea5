package log

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/runnel/runnel/log/vfs"
)

// Shared segments (see doc.go, "Store once"): small "always" commits of
// many partitions are stored once, as entries of node-wide append-only
// files, and served from there. Never change these constants.
const (
	sharedDirName     = "~shared" // '~' is not valid in a topic name
	sharedSuffix      = ".slog"
	spareSuffix       = ".free" // a deleted shared file kept for reuse
	maxSpareFiles     = 2
	sharedMagic       = "RNLSHRD\x00"
	sharedVersion     = 2  // 1: entry CRCs not seeded (still read)
	sharedHeaderSize  = 24 // magic 8, version u16, flags u16, sequence u64, crc u32
	sharedEntryHeader = 20 // crc u32, length u32, topic id u64, partition i32
	// sealPartition marks the seal entry written when a file is rolled:
	// topic id 0, partition -1, then per partition with entries in the
	// file: topic id u64, partition i32, next offset i64.
	sealPartition = 0xffffffff
)

func sharedName(seq uint64) string { return fmt.Sprintf("%020d", seq) + sharedSuffix }

// hasSharedFiles reports whether dir holds shared segment files.
func hasSharedFiles(fs vfs.FS, dir string) bool {
	names, _ := fs.List(filepath.Join(dir, sharedDirName))
	for _, n := range names {
		if _, ok := parseSharedName(n); ok {
			return true
		}
	}
	return false
}

func parseSharedName(name string) (uint64, bool) {
	if !strings.HasSuffix(name, sharedSuffix) || len(name) != 20+len(sharedSuffix) {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimSuffix(name, sharedSuffix), 10, 64)
	return v, err == nil
}

// sharedKey names a partition of a topic incarnation.
type sharedKey struct {
	topicID   uint64
	partition int32
}

// sharedFile is one shared segment file. size, written, refs, h and runs
// are guarded by sharedLog.mu.
type sharedFile struct {
	seq     uint64
	path    string
	rel     string
	size    int64    // durable end (synced)
	written int64    // end of the entries written
	refs    int      // runs of live segments stored in this file
	h       vfs.File // write handle (active file, or unsynced after a roll)
	seed    uint32   // entry CRC seed (entrySeed; 0: version 1 file)
	alloc   int64    // file size when past written: a recycled file's earlier use, or grown ahead (growLocked); bytes past written are stale
	// runs written in this process whose extents are in memory; once the
	// file's extent index is written they load from it instead
	runs []runRef
}

// cutStale cuts what a recycled file holds past its written end (left
// from its earlier use); not synced here. f.h must be open.
func (f *sharedFile) cutStale() error {
	if f.alloc <= f.written {
		return nil
	}
	if err := f.h.Truncate(f.written); err != nil {
		return err
	}
	f.alloc = f.written
	return nil
}

// runRef names run i of a virtual segment of partition key.
type runRef struct {
	seg *segment
	i   int
	key sharedKey
}

// extent is one entry's batches in a shared file: virtual positions
// [vpos, vpos+n) are file bytes [fpos, fpos+n).
type extent struct {
	vpos, n, fpos int64
}

// vrun is the part of a virtual segment stored in one shared file:
// virtual positions [vpos, vpos+n), offsets [base, next). ext holds its
// extents, or is nil when they are left in the file's extent index (sec),
// read when needed: memory per retained shared file and partition, not
// per append.
type vrun struct {
	file       *sharedFile
	vpos, n    int64
	base, next int64
	sec        secLoc
	ext        []extent
}

// vseg is the part of a segment that lives in shared files. runs is
// guarded by the segment's mu (appended to under the partition's mu too).
type vseg struct {
	key  sharedKey
	runs []vrun
}

// lastFile is the shared file of the last run (nil: none).
func (v *vseg) lastFile() *sharedFile {
	if len(v.runs) == 0 {
		return nil
	}
	return v.runs[len(v.runs)-1].file
}

// sharedLog owns the shared files.
type sharedLog struct {
	l   *logImpl
	dir string

	// mu guards the fields below and every sharedFile's size, written,
	// refs and h. Writers hold it for one WriteAt; sync holds it only to
	// read and update positions (never across an fdatasync).
	mu     sync.Mutex
	files  map[uint64]*sharedFile
	active *sharedFile         // appended to (nil until the first append after open)
	dirty  []*sharedFile       // files with entries written, maybe not synced
	next   uint64              // sequence of the next file
	broken error               // a write or sync failed: no more shared appends
	ends   map[sharedKey]int64 // next offset per partition with entries in active

	ok atomic.Bool // usable (mirrors broken == nil)

	// pending are rolled files, wholly durable, whose extent index is
	// not written yet (indexPending)
	pending []*sharedFile
	// syncing: a sync is running with the handles of dirty files
	syncing bool
	// commitBytes: bytes a sync of the shared files made durable, a
	// moving average (1/8 each sync); it picks how the active file is
	// grown (growLocked)
	commitBytes int64
	// spares are deleted shared files kept for reuse (createLocked)
	spares   []string
	recycled int // files reused so far

	// found at open, taken by openPartition
	found map[sharedKey][]foundRun
	// sealed is, per partition, the largest next offset named by seal
	// entries found at open; newestSeal the one of the newest file
	// (truncations void the seals of older files: sealedEnd)
	sealed     map[sharedKey]int64
	newestSeal map[sharedKey]sealAt
}

func (s *sharedLog) usable() bool { return s != nil && s.ok.Load() }

// openShared scans every shared file (validating every entry), truncates a
// torn tail of the last one and records damage elsewhere. Entries are
// handed to partitions by take.
func openShared(l *logImpl, ck *checkpoint) (*sharedLog, error) {
	s := &sharedLog{l: l, dir: filepath.Join(l.dir, sharedDirName), files: map[uint64]*sharedFile{}, found: map[sharedKey][]foundRun{}, sealed: map[sharedKey]int64{}, newestSeal: map[sharedKey]sealAt{}, ends: map[sharedKey]int64{}, next: 1}
	if err := mkdirAllSynced(l.fs, s.dir); err != nil {
		return nil, fmt.Errorf("log: create %s: %w", sharedDirName, err)
	}
	names, err := l.fs.List(s.dir)
	if err != nil {
		return nil, fmt.Errorf("log: list %s: %w", sharedDirName, err)
	}
	var seqs []uint64
	for _, n := range names {
		switch seq, ok := parseSharedName(n); {
		case ok:
			seqs = append(seqs, seq)
		case strings.HasSuffix(n, ".tmp"):
			l.fs.Remove(filepath.Join(s.dir, n))
		case strings.HasSuffix(n, spareSuffix) && len(s.spares) < maxSpareFiles:
			s.spares = append(s.spares, filepath.Join(s.dir, n))
		case strings.HasSuffix(n, spareSuffix):
			l.fs.Remove(filepath.Join(s.dir, n))
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for _, n := range names {
		if isSidxName(n) {
			if seq, _ := parseSharedName(strings.TrimSuffix(n, sidxSuffix) + sharedSuffix); !slices.Contains(seqs, seq) {
				l.fs.Remove(filepath.Join(s.dir, n)) // its shared file was deleted
			}
		}
	}
	for _, seq := range seqs {
		sf := &sharedFile{seq: seq, path: filepath.Join(s.dir, sharedName(seq)), rel: filepath.Join(sharedDirName, sharedName(seq))}
		s.files[seq] = sf
		if !s.openIndexed(sf) {
			// Bytes before the checkpointed shared end are known durable:
			// bad bytes there are damage, never a torn tail.
			durable := int64(0)
			if ck != nil && ck.sharedSeq > seq {
				durable = 1 << 62
			} else if ck != nil && ck.sharedSeq == seq {
				durable = ck.sharedPos
			}
			if err := s.scanFile(sf, durable); err != nil {
				return nil, err
			}
		}
		sf.written = sf.size
		s.next = seq + 1
	}
	// Appends go to a fresh file (created now: not by the first writer).
	s.mu.Lock()
	err = s.rollLocked()
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	s.ok.Store(true)
	return s, nil
}

func (s *sharedLog) close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	for _, f := range s.files {
		if f.h != nil {
			if cerr := f.h.Close(); err == nil {
				err = cerr
			}
			f.h = nil
		}
	}
	s.dirty = nil
	s.ok.Store(false)
	return err
}
