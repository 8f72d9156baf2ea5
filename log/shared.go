package log

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/runnel/runnel/log/batch"
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

func sharedHeader(seq uint64) []byte { return fileHeader(sharedMagic, sharedVersion, seq) }

// checkSharedHeader checks a shared file's header and returns the seed
// of its entry CRCs.
func checkSharedHeader(h []byte, seq uint64) (uint32, bool) {
	v, n, ok := parseFileHeader(h, sharedMagic)
	if !ok || n != seq {
		return 0, false
	}
	switch v {
	case 1:
		return 0, true
	case sharedVersion:
		return entrySeed(seq), true
	}
	return 0, false
}

// entrySeed is the CRC-32C of a file's sequence number (u64): its entry
// CRCs are XORed with it (version 2), so an entry left over from an
// earlier use of the file (recycled, see collect) never passes for one of
// this file.
func entrySeed(seq uint64) uint32 {
	return crc32.Checksum(binary.BigEndian.AppendUint64(nil, seq), crcTable)
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
	alloc   int64    // size of a recycled file before its reuse (bytes past written are stale)
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

// openIndexed takes sf's runs from its extent index (nothing of the file
// itself is read: it was wholly durable when the index was written). It
// reports false when there is no intact index for the file as it is.
func (s *sharedLog) openIndexed(sf *sharedFile) bool {
	st, err := s.l.fs.Stat(sf.path)
	if err != nil {
		return false
	}
	runs, err := s.readSharedIndexDir(sf, st.Size())
	if err != nil {
		return false
	}
	for k, r := range runs {
		s.found[k] = append(s.found[k], r)
		s.noteSeal(k, sf.seq, r.next)
	}
	sf.size = st.Size()
	return true
}

// scanFile reads one shared file and records its entries. A file found
// intact (after a torn tail is cut) is synced and gets its extent index,
// so the next open need not read it.
func (s *sharedLog) scanFile(sf *sharedFile, durable int64) error {
	l := s.l
	f, err := l.fs.Open(sf.path)
	if err != nil {
		return fmt.Errorf("log: open %s: %w", sf.rel, err)
	}
	var data []byte
	st, err := f.Stat()
	if err == nil && st.Size() > maxReadWhole {
		err = errTooLargeToRead(sf.path, st.Size())
	}
	if err == nil {
		data = make([]byte, st.Size())
		var n int
		n, err = f.ReadAt(data, 0)
		if data = data[:n]; err == io.EOF {
			err = nil
		}
	}
	f.Close()
	if err != nil {
		return fmt.Errorf("log: read %s: %w", sf.rel, err)
	}
	seed, ok := checkSharedHeader(data, sf.seq)
	if !ok {
		if durable == 0 {
			// Created but its header never reached the disk: nothing was
			// acknowledged through it.
			sf.size = 0
			return s.truncateTorn(sf, 0, int64(len(data)))
		}
		l.addDamage(Damage{File: sf.rel, Offset: 0, Reason: "bad shared file header"})
		sf.size = int64(len(data))
		return nil
	}
	sf.seed = seed
	byKey := map[sharedKey][]sharedEnt{}
	clean := true
	seals := map[sharedKey]int64{}
	defer func() {
		for k, next := range seals {
			s.noteSeal(k, sf.seq, next)
		}
	}()
	end := walkEntries(data, seed, seals, func(pos int64, e sharedEntry) {
		byKey[e.key] = append(byKey[e.key], sharedEnt{fpos: pos + sharedEntryHeader, n: e.n, base: e.base, next: e.next, maxTs: e.maxTs})
	}, func(pos, next int64) bool {
		if next < 0 && pos >= durable {
			// A torn tail (expected after power loss; also in a file
			// rolled just before the crash, whose seal entry and last
			// entries were not synced yet): cut below.
			return false
		}
		clean = false
		if next < 0 {
			next = int64(len(data))
		}
		l.addDamage(Damage{File: sf.rel, Offset: pos, Reason: fmt.Sprintf("bad shared entry (%d bytes unreadable)", next-pos)})
		return true
	})
	// Cut a torn tail, or what follows a seal entry (left from a recycled
	// file's earlier use whose cut at roll did not reach the disk).
	sf.size = end
	if err := s.truncateTorn(sf, end, int64(len(data))); err != nil {
		return err
	}
	return s.foundEntries(sf, byKey, clean)
}

// walkEntries walks the entries of a shared file's bytes (data, from 0)
// in file order: entry gets each valid entry; seal entries record their
// ends in sealed (nil: not recorded) and end the walk (nothing is written
// after one); bad gets each unreadable stretch [pos, next) (next: the next
// valid entry, -1: none) and says whether to go on. It returns where the
// file's valid bytes end: after a seal entry, at a stretch bad stopped
// at, else at the end of data.
func walkEntries(data []byte, seed uint32, sealed map[sharedKey]int64, entry func(pos int64, e sharedEntry), bad func(pos, next int64) bool) int64 {
	pos := int64(sharedHeaderSize)
	for pos < int64(len(data)) {
		if n, ok := parseSealEntry(data, pos, seed, sealed); ok {
			return pos + sharedEntryHeader + n
		}
		if e, ok := parseSharedEntry(data, pos, seed); ok {
			entry(pos, e)
			pos += sharedEntryHeader + e.n
			continue
		}
		next := resyncShared(data, pos+1, seed)
		if !bad(pos, next) {
			return pos
		}
		if next < 0 {
			return int64(len(data))
		}
		pos = next
	}
	return int64(len(data))
}

// foundEntries records the entries scanned in sf as runs: one per
// partition and gap-free offset range. The file is first made durable
// whatever the checkpoint says (after kill -9 a file, even one rolled
// before the checkpoint, may be partly in the page cache only: never serve
// what a power cut could still take) and, when clean, indexed.
func (s *sharedLog) foundEntries(sf *sharedFile, byKey map[sharedKey][]sharedEnt, clean bool) error {
	var locs map[sharedKey]secLoc
	if len(byKey) > 0 {
		f, err := s.l.fs.OpenReadWrite(sf.path)
		if err == nil {
			err = s.l.fdatasync(f)
			f.Close()
		}
		if err != nil {
			return fmt.Errorf("log: sync %s after recovery: %w", sf.rel, err)
		}
	}
	if clean && len(byKey) > 0 {
		var err error
		if locs, err = s.writeSharedIndex(sf, sf.size, byKey); err != nil {
			s.l.logger.Warn("log: cannot write shared extent index (the file is read in full at each open)", "file", sf.rel, "err", err)
		}
	}
	for k, ents := range byKey {
		var r *foundRun
		for _, e := range ents {
			if r == nil || e.base != r.next {
				s.found[k] = append(s.found[k], foundRun{file: sf, base: e.base, next: e.base, maxTs: -1, sec: locs[k]})
				r = &s.found[k][len(s.found[k])-1]
			}
			r.ents = append(r.ents, e)
			r.next, r.n, r.maxTs = e.next, r.n+e.n, max(r.maxTs, e.maxTs)
			r.entries++
		}
	}
	return nil
}

func (s *sharedLog) truncateTorn(sf *sharedFile, pos, size int64) error {
	l := s.l
	if pos == size {
		return nil
	}
	f, err := l.fs.OpenReadWrite(sf.path)
	if err != nil {
		return fmt.Errorf("log: open %s: %w", sf.rel, err)
	}
	defer f.Close()
	if err := f.Truncate(pos); err != nil {
		return fmt.Errorf("log: truncate torn tail of %s at %d: %w", sf.rel, pos, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("log: sync %s: %w", sf.rel, err)
	}
	l.stats.tornBytes.Add(uint64(size - pos))
	l.logger.Warn("log: truncated torn tail", "file", sf.rel, "offset", pos, "bytes", size-pos)
	return nil
}

type sharedEntry struct {
	key               sharedKey
	n                 int64
	base, next, maxTs int64
}

// parseSharedEntry checks the entry at pos: CRC, and a payload of whole
// stored batches with offsets in sequence.
// seed is XORed into the CRC (see entrySeed; 0 for version 1 files).
func parseSharedEntry(data []byte, pos int64, seed uint32) (sharedEntry, bool) {
	var e sharedEntry
	if pos+sharedEntryHeader+batch.HeaderSize > int64(len(data)) {
		return e, false
	}
	h := data[pos:]
	n := int64(binary.BigEndian.Uint32(h[4:]))
	if n < batch.HeaderSize || pos+sharedEntryHeader+n > int64(len(data)) {
		return e, false
	}
	body := h[4 : sharedEntryHeader+n]
	if binary.BigEndian.Uint32(h) != crc32.Checksum(body, crcTable)^seed {
		return e, false
	}
	e.key = sharedKey{binary.BigEndian.Uint64(h[8:]), int32(binary.BigEndian.Uint32(h[16:]))}
	e.n = n
	payload := h[sharedEntryHeader : sharedEntryHeader+n]
	e.base, e.maxTs = -1, -1
	for off := 0; off < len(payload); {
		bh, err := batch.ParseHeader(payload[off:])
		if err == nil {
			err = checkStoredHeader(&bh)
		}
		if err != nil || off+bh.Size() > len(payload) || e.base >= 0 && bh.BaseOffset != e.next {
			return e, false
		}
		if e.base < 0 {
			e.base = bh.BaseOffset
		}
		e.next = bh.LastOffset() + 1
		if bh.MaxTimestamp > e.maxTs {
			e.maxTs = bh.MaxTimestamp
		}
		off += bh.Size()
	}
	return e, e.key.partition >= 0
}

// parseSealEntry checks for a seal entry at pos and records its ends in
// into (nil: check only).
func parseSealEntry(data []byte, pos int64, seed uint32, into map[sharedKey]int64) (int64, bool) {
	if pos+sharedEntryHeader > int64(len(data)) {
		return 0, false
	}
	h := data[pos:]
	n := int64(binary.BigEndian.Uint32(h[4:]))
	if binary.BigEndian.Uint32(h[16:]) != sealPartition || binary.BigEndian.Uint64(h[8:]) != 0 || n%20 != 0 || pos+sharedEntryHeader+n > int64(len(data)) {
		return 0, false
	}
	if binary.BigEndian.Uint32(h) != crc32.Checksum(h[4:sharedEntryHeader+n], crcTable)^seed {
		return 0, false
	}
	if into != nil {
		for b := h[sharedEntryHeader : sharedEntryHeader+n]; len(b) >= 20; b = b[20:] {
			k := sharedKey{binary.BigEndian.Uint64(b), int32(binary.BigEndian.Uint32(b[8:]))}
			if next := int64(binary.BigEndian.Uint64(b[12:])); next > into[k] {
				into[k] = next
			}
		}
	}
	return n, true
}

// resyncShared finds the next valid entry at or after from (-1: none).
// Besides its CRC, an entry found there must hold batches with valid
// CRCs: a recycled file is full of entries of its earlier use (see
// recycle), which its seed tells apart, and resync tries each of them.
func resyncShared(data []byte, from int64, seed uint32) int64 {
	for i := from; i+sharedEntryHeader <= int64(len(data)); i++ {
		if binary.BigEndian.Uint32(data[i+16:]) == sealPartition {
			if _, ok := parseSealEntry(data, i, seed, nil); ok {
				return i
			}
			continue
		}
		if i+sharedEntryHeader+batch.HeaderSize > int64(len(data)) {
			continue
		}
		b := data[i+sharedEntryHeader:]
		if b[batch.OffMagic] != 2 || b[batch.OffLeaderEpoch]&0x80 != 0 {
			continue
		}
		if e, ok := parseSharedEntry(data, i, seed); ok && validateEntryBatches(data[i+sharedEntryHeader:i+sharedEntryHeader+e.n]) == nil {
			return i
		}
	}
	return -1
}

// take returns (and forgets) the runs found at open for a partition, in
// file order.
func (s *sharedLog) take(topicID uint64, id int32) []foundRun {
	if s == nil {
		return nil
	}
	k := sharedKey{topicID, id}
	out := s.found[k]
	delete(s.found, k)
	return out
}

// addRef counts a run kept by a partition at open.
func (s *sharedLog) addRef(f *sharedFile) {
	s.mu.Lock()
	f.refs++
	s.mu.Unlock()
}

// release drops the references of a deleted segment's runs.
func (s *sharedLog) release(runs []vrun) {
	if s == nil {
		return
	}
	s.mu.Lock()
	for _, r := range runs {
		r.file.refs--
	}
	s.mu.Unlock()
}

// expand loads the entries of a run found at open that were left in the
// extent index.
func (s *sharedLog) expand(key sharedKey, r *foundRun) error {
	if r.ents != nil {
		return nil
	}
	ents, n, err := s.entriesIn(r.file, key, r.sec, r.base, r.next)
	if err != nil {
		return err
	}
	if n != r.n {
		// Entries the index names are damaged in the file: open goes on
		// with those that are intact (the offsets of the others are
		// reported lost where the partition's segments are merged).
		s.l.addDamage(Damage{File: r.file.rel, Offset: -1, Reason: fmt.Sprintf("entries of topic id %d partition %d (offsets %d-%d): %d of %d bytes readable",
			key.topicID, key.partition, r.base, r.next-1, n, r.n)})
	}
	for i := range ents {
		ents[i].maxTs = r.maxTs // per entry only the run's (a safe upper bound)
	}
	r.ents = ents
	return nil
}

// extents returns run r's extents, reading them from the extent index of
// its file (or the file itself) when they are not in memory.
func (s *sharedLog) extents(key sharedKey, r *vrun) ([]extent, error) {
	if r.ext != nil {
		return r.ext, nil
	}
	ents, n, err := s.entriesIn(r.file, key, r.sec, r.base, r.next)
	if err != nil {
		return nil, err
	}
	if n != r.n {
		return nil, fmt.Errorf("log: %s: entries of topic id %d partition %d do not match its extent index", r.file.rel, key.topicID, key.partition)
	}
	out := make([]extent, len(ents))
	vpos := r.vpos
	for i, e := range ents {
		out[i] = extent{vpos: vpos, n: e.n, fpos: e.fpos}
		vpos += e.n
	}
	return out, nil
}

// entriesIn returns the entries of partition key in sf holding offsets
// [base, next) (see entriesOf) and their payload bytes.
func (s *sharedLog) entriesIn(sf *sharedFile, key sharedKey, loc secLoc, base, next int64) ([]sharedEnt, int64, error) {
	ents, err := s.entriesOf(sf, key, loc)
	if err != nil {
		return nil, 0, err
	}
	ents = slices.DeleteFunc(ents, func(e sharedEnt) bool { return e.base < base || e.next > next })
	var n int64
	for _, e := range ents {
		n += e.n
	}
	return ents, n, nil
}

// append writes one entry (a partition's batches) at the end of the active
// shared file, rolling to a new file first when it is full. Writes are
// serialized, so the file never has holes; the committer makes them
// durable (sync). A full disk truncates the partial entry away and
// returns ErrDiskFull (nothing written). A file other than last (the
// file of the segment's last run) starts run i of seg: it is counted as a
// reference and remembered until the file's extent index is written.
func (s *sharedLog) append(topicID uint64, part int32, data []byte, next int64, seg *segment, last *sharedFile, i int) (*sharedFile, int64, error) {
	// The entry does not depend on where it goes (but for the seed XORed
	// into its CRC): built before taking the lock every shared append
	// waits for.
	n := int64(sharedEntryHeader + len(data))
	buf := make([]byte, n)
	h := buf[:sharedEntryHeader]
	binary.BigEndian.PutUint32(h[4:], uint32(len(data)))
	binary.BigEndian.PutUint64(h[8:], topicID)
	binary.BigEndian.PutUint32(h[16:], uint32(part))
	copy(buf[sharedEntryHeader:], data)
	crc := crc32.Checksum(buf[4:], crcTable)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return nil, 0, fmt.Errorf("log: shared segments unusable after an earlier failure: %w", s.broken)
	}
	limit := s.l.capUnit(s.l.opts.SharedSegmentBytes)
	if s.l.diskShort.Load() {
		limit = min(limit, 1<<20) // roll early: whole files are freed sooner
	}
	if s.active == nil || s.active.written > sharedHeaderSize && s.active.written+n > limit {
		if err := s.rollLocked(); err != nil {
			return nil, 0, err
		}
	}
	sf := s.active
	binary.BigEndian.PutUint32(h[0:], crc^sf.seed)
	at := sf.written
	if _, err := sf.h.WriteAt(buf, at); err != nil {
		if isNoSpace(err) {
			if terr := sf.h.Truncate(at); terr == nil {
				return nil, 0, fmt.Errorf("%w: %v", ErrDiskFull, err)
			}
		}
		s.breakLocked(err)
		return nil, 0, fmt.Errorf("log: write %s: %w", sf.rel, err)
	}
	sf.written = at + n
	k := sharedKey{topicID, part}
	if sf != last {
		sf.refs++
		sf.runs = append(sf.runs, runRef{seg: seg, i: i, key: k})
	}
	s.ends[k] = next
	return sf, at + sharedEntryHeader, nil
}

// sync makes every shared entry written so far durable: one fdatasync of
// the active file (and of a file rolled since the last sync).
func (s *sharedLog) sync() error {
	s.mu.Lock()
	if s.broken != nil {
		s.mu.Unlock()
		return fmt.Errorf("log: shared segments unusable after an earlier failure: %w", s.broken)
	}
	type job struct {
		f  *sharedFile
		h  vfs.File
		to int64
	}
	var jobs []job
	for _, f := range s.dirty {
		jobs = append(jobs, job{f, f.h, f.written})
	}
	s.syncing = true // the handles in jobs stay open (collect)
	s.mu.Unlock()
	for _, j := range jobs {
		if err := s.l.fdatasync(j.h); err != nil {
			s.mu.Lock()
			s.breakLocked(err)
			s.syncing = false
			s.mu.Unlock()
			return fmt.Errorf("log: fdatasync %s: %w", j.f.rel, err)
		}
		s.mu.Lock()
		if j.to > j.f.size {
			s.l.stats.sharedBytes.Add(uint64(j.to - j.f.size))
			j.f.size = j.to
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	keep := s.dirty[:0]
	for _, f := range s.dirty {
		switch {
		case f == s.active || f.size < f.written:
			keep = append(keep, f) // the active file always stays listed
		default:
			f.h.Close()
			f.h = nil
			s.pending = append(s.pending, f)
			s.l.kickCheckpoint() // a whole file became durable: index it
		}
	}
	s.dirty = keep
	s.syncing = false
	s.mu.Unlock()
	s.l.stats.sharedCommits.Add(1)
	return nil
}

func (s *sharedLog) breakLocked(err error) {
	if s.broken == nil {
		s.l.logger.Error("log: shared segment write or sync failed; small commits go to partition segments from now on", "err", err)
	}
	s.broken = err
	s.ok.Store(false)
}

// rollLocked starts a new shared file: header written and synced, and
// the directory synced, before any entry is acknowledged through it.
func (s *sharedLog) rollLocked() error {
	fs := s.l.fs
	seq := s.next
	sf := &sharedFile{seq: seq, path: filepath.Join(s.dir, sharedName(seq)), rel: filepath.Join(sharedDirName, sharedName(seq)), seed: entrySeed(seq)}
	f, err := s.createLocked(sf)
	if err != nil {
		if isNoSpace(err) {
			s.l.diskShort.Store(true)
			return fmt.Errorf("%w: create %s: %v", ErrDiskFull, sf.rel, err)
		}
		if isOutOfFiles(err) {
			return s.l.outOfFiles("create "+sf.rel, err) // nothing changed: retried by the next append
		}
		s.breakLocked(err)
		return fmt.Errorf("log: create %s: %w", sf.rel, err)
	}
	if _, err = f.WriteAt(sharedHeader(seq), 0); err == nil {
		if err = f.Sync(); err == nil {
			err = vfs.SyncDir(fs, s.dir)
		}
		s.l.stats.fsyncs.Add(1)
		if err != nil && !isOutOfFiles(err) {
			s.l.stats.fsyncErrors.Add(1)
		}
	}
	if err != nil {
		f.Close()
		fs.Remove(sf.path)
		if isNoSpace(err) {
			s.l.diskShort.Store(true)
			return fmt.Errorf("%w: create %s: %v", ErrDiskFull, sf.rel, err)
		}
		if isOutOfFiles(err) {
			// The directory could not be opened for its sync.
			return s.l.outOfFiles("sync "+s.dir, err)
		}
		s.breakLocked(err)
		return fmt.Errorf("log: create %s: %w", sf.rel, err)
	}
	if old := s.active; old != nil && len(s.ends) > 0 {
		// The seal entry: where each partition's offsets stand at the end
		// of the file, so damage to a partition's last entries in it is
		// not mistaken for their absence.
		body := make([]byte, 0, 20*len(s.ends))
		for k, next := range s.ends {
			body = binary.BigEndian.AppendUint64(body, k.topicID)
			body = binary.BigEndian.AppendUint32(body, uint32(k.partition))
			body = binary.BigEndian.AppendUint64(body, uint64(next))
		}
		buf := make([]byte, sharedEntryHeader, sharedEntryHeader+len(body))
		binary.BigEndian.PutUint32(buf[4:], uint32(len(body)))
		binary.BigEndian.PutUint32(buf[16:], sealPartition)
		buf = append(buf, body...)
		binary.BigEndian.PutUint32(buf, crc32.Checksum(buf[4:], crcTable)^old.seed)
		if _, err := old.h.WriteAt(buf, old.written); err == nil {
			old.written += int64(len(buf))
			// Synced with the seal entry; open cuts it otherwise.
			if err := old.cutStale(); err != nil {
				s.l.logger.Warn("log: cannot cut a recycled shared file at its seal entry", "file", old.rel, "err", err)
			}
		} else if !isNoSpace(err) {
			s.breakLocked(err)
			return fmt.Errorf("log: write seal entry of %s: %w", old.rel, err)
		} else if terr := old.h.Truncate(old.written); terr != nil {
			// The seal entry is optional, a torn one is not.
			s.breakLocked(terr)
			return fmt.Errorf("log: write seal entry of %s: %v; truncate back: %w", old.rel, err, terr)
		}
		clear(s.ends)
	}
	// The old file stays in dirty: the next sync closes its handle (a
	// sync running now may be using it) and queues it for indexing.
	s.next++
	sf.size, sf.written, sf.h = sharedHeaderSize, sharedHeaderSize, f
	s.files[seq] = sf
	s.active = sf
	s.dirty = append(s.dirty, sf)
	return nil
}

// indexPending writes the extent index of every rolled, wholly durable
// file and lets the runs written to it drop their extents from memory.
func (s *sharedLog) indexPending() {
	if s == nil {
		return
	}
	s.mu.Lock()
	files := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, f := range files {
		s.index(f)
	}
}

// indexActive indexes the active file too, when it is wholly durable (at
// Close: the next open then reads no shared file at all).
func (s *sharedLog) indexActive() {
	if s == nil {
		return
	}
	s.mu.Lock()
	if a := s.active; a != nil && a.size == a.written && a.written > sharedHeaderSize {
		// The index names the file's size: a recycled file is cut first.
		stale := a.alloc > a.written
		if err := a.cutStale(); err == nil && (!stale || s.l.fdatasync(a.h) == nil) {
			s.pending = append(s.pending, a)
		}
	}
	s.mu.Unlock()
	s.indexPending()
}

// index writes f's extent index and drops the extents of f's runs from
// memory.
func (s *sharedLog) index(f *sharedFile) {
	s.mu.Lock()
	size := f.size
	_, live := s.files[f.seq]
	s.mu.Unlock()
	if !live {
		return
	}
	locs, err := func() (map[sharedKey]secLoc, error) {
		cf, err := s.l.files.get(f.path, false)
		if err != nil {
			return nil, err
		}
		byKey, err := streamEntries(cf.f, f.seq, size)
		s.l.files.release(cf)
		if err != nil {
			return nil, err
		}
		return s.writeSharedIndex(f, size, byKey)
	}()
	if err != nil {
		s.l.logger.Warn("log: cannot index shared file (its extents stay in memory)", "file", f.rel, "err", err)
		return
	}
	s.mu.Lock()
	refs := f.runs
	f.runs = nil
	s.mu.Unlock()
	for _, r := range refs {
		r.seg.mu.Lock()
		if v := r.seg.virt; r.i < len(v.runs) && v.runs[r.i].file == f {
			if loc, ok := locs[r.key]; ok {
				v.runs[r.i].sec, v.runs[r.i].ext = loc, nil
			}
		}
		r.seg.mu.Unlock()
	}
}

// createLocked creates sf's file, or reuses a spare: a shared file
// deleted earlier, renamed to sf's name and overwritten in place from its
// header on. Its blocks are written already, so an fdatasync of it changes
// neither its size nor its block map: no file-system journal commit per
// commit, as for the journal format. Its old entries (CRCs of another
// seed) are never read as this file's.
func (s *sharedLog) createLocked(sf *sharedFile) (vfs.File, error) {
	fs := s.l.fs
	for len(s.spares) > 0 && !s.l.diskShort.Load() {
		spare := s.spares[len(s.spares)-1]
		s.spares = s.spares[:len(s.spares)-1]
		if err := fs.Rename(spare, sf.path); err != nil {
			fs.Remove(spare)
			continue
		}
		f, err := fs.OpenReadWrite(sf.path)
		if err != nil {
			fs.Remove(sf.path)
			continue
		}
		if st, err := f.Stat(); err == nil {
			sf.alloc = st.Size()
		}
		s.recycled++
		return f, nil
	}
	return fs.Create(sf.path)
}

// durableEnd is, for the checkpoint, the oldest shared file not wholly
// synced (a rolled file waiting for its last sync, else the active one)
// and its synced size: every file before it is durable to its end.
func (s *sharedLog) durableEnd() (uint64, int64) {
	if s == nil {
		return 0, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var seq, newest uint64
	var pos, newestPos int64
	found := false
	for q, f := range s.files {
		if f.size < f.written && (!found || q < seq) {
			seq, pos, found = q, f.size, true
		}
		if q >= newest {
			newest, newestPos = q, f.size
		}
	}
	if !found {
		return newest, newestPos
	}
	return seq, pos
}

// collect deletes shared files no live segment references (not the active
// one). The checkpoint, which records every partition's log start, is
// written first, so recovery never resurrects deleted batches in front of
// a gap.
func (s *sharedLog) collect() {
	if s == nil {
		return
	}
	s.mu.Lock()
	var dead []*sharedFile
	for _, f := range s.files {
		if f.refs <= 0 && f != s.active {
			dead = append(dead, f)
		}
	}
	sort.Slice(dead, func(i, j int) bool { return dead[i].seq < dead[j].seq })
	// The unreferenced files older than every referenced one.
	prefix := 0
	for _, f := range dead {
		older := false
		for _, g := range s.files {
			older = older || g.seq < f.seq && g.refs > 0
		}
		if older {
			break
		}
		prefix++
	}
	s.mu.Unlock()
	if len(dead) == 0 {
		return
	}
	if err := s.l.writeCheckpoint(); err != nil {
		// Without the log starts on disk only the oldest files may go: a
		// crash then brings back deleted batches, but never a gap.
		s.l.logger.Warn("log: cannot write recovery checkpoint; only the oldest shared files are deleted", "err", err)
		dead = dead[:prefix]
	}
	s.mu.Lock()
	keep := dead[:0]
	for _, f := range dead {
		if slices.Contains(s.dirty, f) {
			// Only a seal entry may be unsynced in a file nothing
			// references. A running sync holds its handle: the file goes
			// at the next collect.
			if s.syncing {
				continue
			}
			f.h.Close()
			f.h = nil
			s.dirty = slices.DeleteFunc(s.dirty, func(d *sharedFile) bool { return d == f })
		}
		keep = append(keep, f)
	}
	dead = keep
	s.mu.Unlock()
	for _, f := range dead {
		s.l.files.forget(f.path)
		s.l.files.forget(sidxPath(f.path))
		if err := s.l.fs.Remove(sidxPath(f.path)); err != nil && !os.IsNotExist(err) {
			s.l.logger.Warn("log: cannot remove shared extent index", "file", f.rel, "err", err)
		}
		s.mu.Lock()
		keep := len(s.spares) < maxSpareFiles && !s.l.diskShort.Load()
		s.mu.Unlock()
		spare := strings.TrimSuffix(f.path, sharedSuffix) + spareSuffix
		if keep && s.l.fs.Rename(f.path, spare) == nil {
			s.mu.Lock()
			s.spares = append(s.spares, spare)
			s.mu.Unlock()
		} else if err := s.l.fs.Remove(f.path); err != nil && !os.IsNotExist(err) {
			s.l.logger.Warn("log: cannot remove shared file", "file", f.rel, "err", err)
			continue
		}
		s.mu.Lock()
		delete(s.files, f.seq)
		s.mu.Unlock()
	}
	if s.l.diskShort.Load() {
		s.mu.Lock()
		spares := s.spares
		s.spares = nil
		s.mu.Unlock()
		for _, p := range spares {
			s.l.fs.Remove(p) // free the space
		}
	}
	vfs.SyncDir(s.l.fs, s.dir)
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

// vreader reads a virtual segment through its runs, loading the extents
// of a run left in an extent index when it gets there. held says the
// caller holds seg.mu.
type vreader struct {
	l    *logImpl
	seg  *segment
	held bool
	cur  vrun // the run last used, extents loaded
	ok   bool
}

// runAt returns the run holding virtual position off, with its extents.
func (r *vreader) runAt(off int64) (vrun, bool, error) {
	if r.ok && off >= r.cur.vpos && off < r.cur.vpos+r.cur.n {
		return r.cur, true, nil
	}
	if !r.held {
		r.seg.mu.Lock()
	}
	v := r.seg.virt
	i := sort.Search(len(v.runs), func(i int) bool { return v.runs[i].vpos+v.runs[i].n > off })
	var run vrun
	found := i < len(v.runs) && v.runs[i].vpos <= off
	if found {
		run = v.runs[i]
	}
	key := v.key
	if !r.held {
		r.seg.mu.Unlock()
	}
	if !found {
		return run, false, nil
	}
	ext, err := r.l.shared.extents(key, &run)
	if err != nil {
		return run, false, err
	}
	run.ext = ext
	r.cur, r.ok = run, true
	return run, true, nil
}

func (r *vreader) ReadAt(b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		run, ok, err := r.runAt(off)
		if err != nil {
			return n, err
		}
		if !ok {
			return n, io.EOF
		}
		i := sort.Search(len(run.ext), func(i int) bool { return run.ext[i].vpos+run.ext[i].n > off })
		if i >= len(run.ext) || run.ext[i].vpos > off {
			return n, io.EOF
		}
		e := run.ext[i]
		k := min(int64(len(b)-n), e.vpos+e.n-off)
		cf, err := r.l.files.get(run.file.path, false)
		if err != nil {
			return n, err
		}
		m, err := cf.f.ReadAt(b[n:n+int(k)], e.fpos+off-e.vpos)
		r.l.files.release(cf)
		n += m
		off += int64(m)
		if m < int(k) {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
	return n, nil
}

// locate maps a virtual position to its shared file and file position.
func (r *vreader) locate(vpos int64) (string, int64) {
	run, ok, err := r.runAt(vpos)
	if !ok || err != nil {
		return "", vpos
	}
	i := sort.Search(len(run.ext), func(i int) bool { return run.ext[i].vpos+run.ext[i].n > vpos })
	if i >= len(run.ext) {
		return run.file.rel, -1
	}
	e := run.ext[i]
	return run.file.rel, e.fpos + vpos - e.vpos
}

// entryEnd is the virtual position where the entry holding vpos ends (0:
// unknown).
func (r *vreader) entryEnd(vpos int64) int64 {
	run, ok, err := r.runAt(vpos)
	if !ok || err != nil {
		return 0
	}
	i := sort.Search(len(run.ext), func(i int) bool { return run.ext[i].vpos+run.ext[i].n > vpos })
	if i >= len(run.ext) {
		return 0
	}
	return run.ext[i].vpos + run.ext[i].n
}

// segReader returns a reader of seg's bytes (its file, or its extents in
// shared files) and a release function.
func (l *logImpl) segReader(seg *segment) (io.ReaderAt, func(), error) {
	if seg.virt == nil {
		cf, err := l.files.get(seg.path, false)
		if err != nil {
			return nil, nil, err
		}
		return cf.f, func() { l.files.release(cf) }, nil
	}
	return &vreader{l: l, seg: seg}, func() {}, nil
}

// damageLocation names where virtual position pos of seg lies on disk.
func (l *logImpl) damageLocation(seg *segment, pos int64) (string, int64) {
	if seg.virt == nil {
		return seg.rel, pos
	}
	if f, at := (&vreader{l: l, seg: seg}).locate(pos); f != "" {
		return f, at
	}
	return seg.rel, pos
}

// checkSharedFiles verifies shared files without changing anything: every
// entry's CRC and batches. size gives the bytes to check of a file (false:
// skip it); bad bytes with no valid entry after them are a torn tail (not
// damage) when torn says so for their position. It also returns, per
// partition, the offset ranges the entries hold.
func checkSharedFiles(fs vfs.FS, dataDir string, size func(seq uint64, fileSize int64) (int64, bool), torn func(seq uint64, pos int64) bool) ([]Damage, map[sharedKey][][2]int64) {
	dir := filepath.Join(dataDir, sharedDirName)
	names, err := fs.List(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return []Damage{{File: sharedDirName, Reason: "cannot list: " + err.Error()}}, nil
	}
	var out []Damage
	ranges := map[sharedKey][][2]int64{}
	for _, n := range names {
		seq, ok := parseSharedName(n)
		if !ok {
			continue
		}
		rel := filepath.Join(sharedDirName, n)
		f, err := fs.Open(filepath.Join(dir, n))
		if err != nil {
			if !os.IsNotExist(err) {
				out = append(out, Damage{File: rel, Reason: "cannot open: " + err.Error()})
			}
			continue
		}
		data, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<62))
		f.Close()
		if err != nil {
			out = append(out, Damage{File: rel, Reason: "cannot read: " + err.Error()})
			continue
		}
		limit, ok := size(seq, int64(len(data)))
		if !ok {
			continue
		}
		data = data[:min(limit, int64(len(data)))]
		seed, ok := checkSharedHeader(data, seq)
		if !ok {
			if len(data) > 0 && !torn(seq, 0) {
				out = append(out, Damage{File: rel, Offset: 0, Reason: "bad shared file header"})
			}
			continue
		}
		walkEntries(data, seed, nil, func(pos int64, e sharedEntry) {
			if err := validateEntryBatches(data[pos+sharedEntryHeader : pos+sharedEntryHeader+e.n]); err != nil {
				out = append(out, Damage{File: rel, Offset: pos, Reason: "bad batch in shared entry: " + err.Error()})
			}
			ranges[e.key] = append(ranges[e.key], [2]int64{e.base, e.next})
		}, func(pos, next int64) bool {
			if next < 0 && torn(seq, pos) {
				return false
			}
			out = append(out, Damage{File: rel, Offset: pos, Reason: "bad shared entry"})
			return true
		})
	}
	return out, ranges
}

// validateEntryBatches checks every batch CRC of an entry's payload.
func validateEntryBatches(b []byte) error {
	_, err := batch.ValidateAll(b)
	return err
}

// check verifies the durable part of every shared file (for Log.Check).
func (s *sharedLog) check() []Damage {
	s.mu.Lock()
	sizes := map[uint64]int64{}
	for seq, f := range s.files {
		sizes[seq] = f.size
	}
	s.mu.Unlock()
	d, _ := checkSharedFiles(s.l.fs, s.l.dir, func(seq uint64, _ int64) (int64, bool) {
		n, ok := sizes[seq]
		return n, ok
	}, func(uint64, int64) bool { return false })
	return d
}
