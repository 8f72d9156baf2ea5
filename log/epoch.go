package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/vfs"
)

// Leader epochs (see doc.go, "Leader epochs"): every open after an unclean
// stop starts a new node epoch, stamped into the partitionLeaderEpoch of
// every batch Append stores; each partition keeps its history of (epoch,
// start offset) in a file beside its segments.
// Never change these constants.
const (
	nodeEpochName    = "~epoch" // '~' is not valid in a topic name
	nodeEpochMagic   = "RNLNEPO\x00"
	nodeEpochVersion = 1

	epochFileName    = "leader-epochs"
	epochFileMagic   = "RNLEPCH\x00"
	epochFileVersion = 1
	epochHeaderSize  = 24 // fileHeader
	epochRecordSize  = 32

	// record kinds
	epochRecStart    = 1 // epoch starts at offset (entries at or after offset go)
	epochRecTruncate = 2 // partition truncated to offset (entries at or after it go)
	epochRecDone     = 3 // the last truncation is complete on disk

	epochFlagDone       = 1 // on a truncate record: complete (written by compaction)
	epochFlagReplicated = 2 // on an epoch start: recorded by AppendAt (another node's epoch)
)

var (
	errBadEpochFile = errors.New("log: bad leader-epoch file")
	errLeaderEpoch  = errors.New("log: stored batch's leader epoch does not match the partition's epoch history (bit rot in the header)")
)

// setLeaderEpoch stamps partitionLeaderEpoch in a batch (not covered by
// its CRC: the history checks it).
func setLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[batch.OffLeaderEpoch:], uint32(epoch))
}

// epochEntry says that batches from offset start on carry epoch, up to
// the next entry's start.
type epochEntry struct {
	epoch int32
	start int64
	repl  bool // recorded by AppendAt: an epoch of the origin this copy mirrors
}

// truncMark is a truncation of the partition to offset, while the newest
// shared file was sharedSeq: entries of the partition in shared files up
// to that one at offsets >= offset are void. done: the partition's files
// were cut too (else open finishes the job).
type truncMark struct {
	offset    int64
	sharedSeq uint64
	done      bool
}

// epochHistory is a partition's leader-epoch history, guarded by the
// partition's mu. entries is sorted by start and by epoch, both strictly
// increasing. A slice handed to a reader (epochSnapshot) is never changed
// in place: appends go past its length, anything else copies.
type epochHistory struct {
	entries []epochEntry
	marks   []truncMark
	// size is the length of the file's valid records (0: rewrite it
	// whole at the next change: missing, torn, or a write failed).
	size int64
	// trusted: loaded from an intact file (recovery validates batches
	// against it); else rebuilt from the batches.
	trusted bool
	// newEpoch: the next local append starts a new epoch even if the
	// partition's latest is the node's (set by a truncation).
	newEpoch bool
}

// epochAt is the epoch of the batch at offset off per entries (-1: none).
func epochAt(entries []epochEntry, off int64) int32 {
	i, _ := slices.BinarySearchFunc(entries, off, func(e epochEntry, off int64) int {
		switch {
		case e.start > off:
			return 1
		case e.start < off:
			return -1
		}
		return 0
	})
	if i < len(entries) && entries[i].start == off {
		return entries[i].epoch
	}
	if i == 0 {
		return -1
	}
	return entries[i-1].epoch
}

// checkEpoch checks a stored batch's leader epoch against the history
// (nil or empty: nothing to check against).
func checkEpoch(entries []epochEntry, h *batch.Header) error {
	if len(entries) == 0 {
		return nil
	}
	if want := epochAt(entries, h.BaseOffset); want != h.LeaderEpoch && want >= 0 {
		return fmt.Errorf("%w: batch at offset %d has epoch %d, the history says %d", errLeaderEpoch, h.BaseOffset, h.LeaderEpoch, want)
	}
	return nil
}

// endFor answers Kafka's OffsetForLeaderEpoch over entries for a log
// ending at logEnd: the largest epoch <= requested and the offset where
// it ends (the start of the next epoch, or logEnd for the latest); (-1,
// -1) when requested is -1, newer than every epoch, or entries is empty.
// A requested epoch older than every entry answers (requested, first
// start), as Kafka does (its batches were deleted).
func endFor(entries []epochEntry, requested int32, logEnd int64) (int32, int64) {
	if requested < 0 || len(entries) == 0 {
		return -1, -1
	}
	last := entries[len(entries)-1]
	if requested == last.epoch {
		return requested, logEnd
	}
	i := sort0(entries, requested) // first entry with epoch > requested
	if i == len(entries) {
		return -1, -1
	}
	if i == 0 {
		return requested, entries[0].start
	}
	return entries[i-1].epoch, entries[i].start
}

// sort0 is the index of the first entry with an epoch > e.
func sort0(entries []epochEntry, e int32) int {
	i, _ := slices.BinarySearchFunc(entries, e+1, func(x epochEntry, t int32) int {
		switch {
		case x.epoch < t:
			return -1
		case x.epoch > t:
			return 1
		}
		return 0
	})
	return i
}

// cutAt returns entries without those starting at or after off (a new
// slice when any go).
func cutAt(entries []epochEntry, off int64) []epochEntry {
	i := len(entries)
	for i > 0 && entries[i-1].start >= off {
		i--
	}
	if i == len(entries) {
		return entries
	}
	return slices.Clone(entries[:i])
}

// trimStart moves the history's beginning to the log start: entries that
// end at or before start go, the one holding start begins there (Kafka's
// truncateFromStart). In memory only; a new slice when anything changes.
func trimStart(entries []epochEntry, start int64) []epochEntry {
	i := 0
	for i+1 < len(entries) && entries[i+1].start <= start {
		i++
	}
	if i == 0 && (len(entries) == 0 || entries[0].start >= start) {
		return entries
	}
	out := slices.Clone(entries[i:])
	if out[0].start < start {
		out[0].start = start
	}
	return out
}

// Record layout (see doc.go):
//
//	0 kind u8 | 1 flags u8 | 2 zero u16 | 4 epoch i32 | 8 offset i64 |
//	16 shared seq u64 | 24 zero u32 | 28 CRC-32C of [0,28) u32
func epochRecord(kind, flags byte, epoch int32, off int64, seq uint64) []byte {
	b := make([]byte, epochRecordSize)
	b[0], b[1] = kind, flags
	binary.BigEndian.PutUint32(b[4:], uint32(epoch))
	binary.BigEndian.PutUint64(b[8:], uint64(off))
	binary.BigEndian.PutUint64(b[16:], seq)
	binary.BigEndian.PutUint32(b[28:], crc32.Checksum(b[:28], crcTable))
	return b
}

// encodeEpochFile is the whole file for a history (compacted: marks
// first, then entries).
func encodeEpochFile(h *epochHistory) []byte {
	b := fileHeader(epochFileMagic, epochFileVersion, 0)
	for _, m := range h.marks {
		flags := byte(0)
		if m.done {
			flags = epochFlagDone
		}
		b = append(b, epochRecord(epochRecTruncate, flags, 0, m.offset, m.sharedSeq)...)
	}
	for _, e := range h.entries {
		b = append(b, startRecord(e)...)
	}
	return b
}

// startRecord is the epoch-start record of e.
func startRecord(e epochEntry) []byte {
	flags := byte(0)
	if e.repl {
		flags = epochFlagReplicated
	}
	return epochRecord(epochRecStart, flags, e.epoch, e.start, 0)
}

// decodeEpochFile replays a leader-epoch file. valid is the length of
// its intact records: a torn last record (a crash while it was appended,
// before what it describes was written) ends them. Damage (a bad header,
// a bad record with an intact one after it, a record that breaks the
// history's order) is errBadEpochFile.
func decodeEpochFile(b []byte) (h epochHistory, valid int64, err error) {
	v, _, ok := parseFileHeader(b, epochFileMagic)
	if !ok || v != epochFileVersion {
		return h, 0, fmt.Errorf("%w: bad header", errBadEpochFile)
	}
	pos := int64(epochHeaderSize)
	for ; pos+epochRecordSize <= int64(len(b)); pos += epochRecordSize {
		r := b[pos : pos+epochRecordSize]
		if binary.BigEndian.Uint32(r[28:]) != crc32.Checksum(r[:28], crcTable) || r[2] != 0 || r[3] != 0 || binary.BigEndian.Uint32(r[24:]) != 0 {
			for q := pos + epochRecordSize; q+epochRecordSize <= int64(len(b)); q += epochRecordSize {
				if s := b[q : q+epochRecordSize]; binary.BigEndian.Uint32(s[28:]) == crc32.Checksum(s[:28], crcTable) {
					return h, 0, fmt.Errorf("%w: bad record at byte %d", errBadEpochFile, pos)
				}
			}
			break // torn tail
		}
		epoch := int32(binary.BigEndian.Uint32(r[4:]))
		off := int64(binary.BigEndian.Uint64(r[8:]))
		seq := binary.BigEndian.Uint64(r[16:])
		if off < 0 {
			return h, 0, fmt.Errorf("%w: negative offset at byte %d", errBadEpochFile, pos)
		}
		switch r[0] {
		case epochRecStart:
			if r[1]&^epochFlagReplicated != 0 {
				return h, 0, fmt.Errorf("%w: unknown flags at byte %d", errBadEpochFile, pos)
			}
			h.entries = cutAt(h.entries, off)
			if epoch < 0 || len(h.entries) > 0 && h.entries[len(h.entries)-1].epoch >= epoch {
				return h, 0, fmt.Errorf("%w: epoch %d at offset %d does not follow the history (byte %d)", errBadEpochFile, epoch, off, pos)
			}
			h.entries = append(h.entries, epochEntry{epoch, off, r[1]&epochFlagReplicated != 0})
		case epochRecTruncate:
			if r[1]&^epochFlagDone != 0 {
				return h, 0, fmt.Errorf("%w: unknown flags at byte %d", errBadEpochFile, pos)
			}
			h.entries = cutAt(h.entries, off)
			h.marks = append(h.marks, truncMark{offset: off, sharedSeq: seq, done: r[1]&epochFlagDone != 0})
		case epochRecDone:
			if len(h.marks) == 0 || h.marks[len(h.marks)-1].done {
				return h, 0, fmt.Errorf("%w: completion without a truncation at byte %d", errBadEpochFile, pos)
			}
			h.marks[len(h.marks)-1].done = true
		default:
			return h, 0, fmt.Errorf("%w: unknown record kind %d at byte %d", errBadEpochFile, r[0], pos)
		}
	}
	return h, pos, nil
}

// loadEpochFile reads a partition's leader-epoch file. ok is false when
// there is none (os.IsNotExist) or it is damaged (err says how).
func loadEpochFile(fs vfs.FS, dir string) (h epochHistory, ok bool, err error) {
	b, err := readWhole(fs, filepath.Join(dir, epochFileName))
	if err != nil {
		if os.IsNotExist(err) {
			return h, false, nil
		}
		return h, false, err
	}
	h, valid, err := decodeEpochFile(b)
	if err != nil {
		return epochHistory{}, false, err
	}
	h.size = valid
	if valid < int64(len(b)) {
		h.size = 0 // a torn record: rewrite before appending
	}
	h.trusted = true
	return h, true, nil
}

// writeEpochsLocked makes the history's change durable: recs appended
// to the file and synced, or the whole file rewritten (temp file, fsync,
// rename, directory fsync) when it must be.
func (p *partition) writeEpochsLocked(recs []byte) error {
	h := &p.epochs
	fs := p.l.fs
	path := filepath.Join(p.dir, epochFileName)
	if h.size == 0 {
		b := encodeEpochFile(h)
		if err := writeFileAtomic(fs, path, b); err != nil {
			return fmt.Errorf("write %s: %w", filepath.Join(p.rel, epochFileName), err)
		}
		h.size = int64(len(b))
		return nil
	}
	f, err := fs.OpenReadWrite(path)
	if err == nil {
		_, err = f.WriteAt(recs, h.size)
		if err == nil {
			err = p.l.fdatasync(f)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		h.size = 0 // unknown state: the next change rewrites the file
		return fmt.Errorf("write %s: %w", filepath.Join(p.rel, epochFileName), err)
	}
	h.size += int64(len(recs))
	return nil
}

// prepareEpochsLocked updates the history for an append at base before
// its batches are written, and returns the epoch to stamp (local
// appends). AppendAt (at) keeps each batch's epoch: they must not go
// back, nor behind the partition's latest epoch (ErrStaleEpoch). A local
// append stamps the node's epoch, raised first when the partition already
// holds it or a later one from elsewhere (restored by AppendAt).
func (p *partition) prepareEpochsLocked(hdrs []batch.Header, at bool, base int64) (int32, error) {
	h := &p.epochs
	// Entries at or past base hold no batch yet: the append replaces them.
	keep := len(h.entries)
	for keep > 0 && h.entries[keep-1].start >= base {
		keep--
	}
	rewrite := false
	if at && keep > 0 && p.emptyLocked() {
		// An empty partition (a copy starting at its origin's log
		// start) holds no batch its entries describe: the origin's
		// epochs replace them, and the file is rewritten (a record
		// cannot drop entries before its own start).
		keep, rewrite = 0, true
	}
	last := int32(-1)
	if keep > 0 {
		last = h.entries[keep-1].epoch
	}
	var want []epochEntry
	epoch := int32(-1)
	if at {
		for i := range hdrs {
			e := hdrs[i].LeaderEpoch
			if e < 0 {
				return -1, fmt.Errorf("%w: batch %d has leader epoch %d", ErrCorruptBatch, i, e)
			}
			if e < last {
				return -1, fmt.Errorf("%w: batch %d at offset %d has epoch %d, the partition is at epoch %d", ErrStaleEpoch, i, hdrs[i].BaseOffset, e, last)
			}
			if e > last {
				want = append(want, epochEntry{e, hdrs[i].BaseOffset, true})
				last = e
			}
		}
	} else {
		epoch = p.l.epoch.Load()
		// The node's epoch continues a local entry of it (written before
		// a clean restart too); one from elsewhere, or a truncation, needs
		// a new epoch.
		lastRepl := keep > 0 && h.entries[keep-1].repl
		if last > epoch || last == epoch && (lastRepl || h.newEpoch) {
			var err error
			if epoch, err = p.l.raiseEpoch(last + 1); err != nil {
				return -1, err
			}
		}
		if last != epoch {
			want = []epochEntry{{epoch, base, false}}
		}
	}
	if slices.Equal(h.entries[keep:], want) {
		h.newEpoch = h.newEpoch && at
		return epoch, nil
	}
	var recs []byte
	for _, e := range want {
		recs = append(recs, startRecord(e)...)
	}
	old := h.entries
	if keep < len(h.entries) {
		h.entries = slices.Clone(h.entries[:keep])
	}
	h.entries = append(h.entries, want...)
	if len(want) == 0 || rewrite {
		h.size = 0 // only placeholders go: rewrite the file
	}
	if err := p.writeEpochsLocked(recs); err != nil {
		h.entries = old
		if isNoSpace(err) {
			p.l.stats.rejected.Add(1)
			return -1, fmt.Errorf("%w: %v", ErrDiskFull, err)
		}
		if isOutOfFiles(err) {
			return -1, p.l.outOfFiles("leader-epoch history of "+p.rel, err)
		}
		p.failLocked(err)
		return -1, p.readOnlyErr()
	}
	h.newEpoch = h.newEpoch && at
	return epoch, nil
}

// epochSnapshot returns the entries for a reader (never changed in place).
func (p *partition) epochSnapshotLocked() []epochEntry {
	return p.epochs.entries[:len(p.epochs.entries):len(p.epochs.entries)]
}

// reconcileEpochs finishes the history at open, once the partition's
// batches are known (p.next set): entries past the end go (a lost tail),
// a missing or damaged history is rebuilt from the batch headers, and
// the file is rewritten when it changed.
func (p *partition) reconcileEpochs() error {
	h := &p.epochs
	start := p.startLocked()
	rewrite := h.size == 0
	if !h.trusted && p.next > start {
		entries, err := p.rebuildEpochs()
		if err != nil {
			return err
		}
		h.entries, rewrite = entries, true
		p.l.logger.Info("log: leader-epoch history rebuilt from the batches", "topic", p.t.name, "partition", p.id, "entries", len(entries))
	} else if !h.trusted {
		h.entries = nil
		rewrite = true
	}
	if cut := cutAt(h.entries, p.next+1); len(cut) != len(h.entries) {
		// Epochs that started after the end: their batches were lost
		// (a torn tail). Entries at the end itself hold no batch yet.
		h.entries, rewrite = cut, true
	}
	h.entries = trimStart(h.entries, start)
	if !rewrite {
		return nil
	}
	h.size = 0
	if !h.trusted && p.next == start && len(h.marks) == 0 {
		// Nothing stored and nothing to remember: no file needed (the
		// first append writes it).
		return nil
	}
	if err := p.writeEpochsLocked(nil); err != nil {
		return fmt.Errorf("log: %w", err)
	}
	h.trusted = true
	return nil
}

// rebuildEpochs derives the history from the batch headers. Epochs never
// go back along the offsets, so a segment whose first batch has the same
// epoch as the next segment's first batch holds no change and is not
// read; the others are walked (headers only). A batch whose epoch goes
// back is recorded as damage.
func (p *partition) rebuildEpochs() ([]epochEntry, error) {
	var out []epochEntry
	add := func(e int32, off int64, seg *segment, pos int64) {
		if n := len(out); n > 0 && out[n-1].epoch >= e {
			if out[n-1].epoch > e {
				file, at := p.l.damageLocation(seg, pos)
				p.l.addDamage(Damage{File: file, Offset: at, Reason: fmt.Sprintf("leader epoch %d at offset %d is older than epoch %d before it", e, off, out[n-1].epoch)})
			}
			return
		}
		out = append(out, epochEntry{epoch: e, start: off})
	}
	firsts := make([]int32, len(p.segs))
	for i, s := range p.segs {
		firsts[i] = -2
		if s.size < batch.HeaderSize {
			continue
		}
		r, release, err := p.l.segReader(s)
		if err != nil {
			return nil, fmt.Errorf("log: open %s: %w", s.rel, err)
		}
		h, _, _, err := newScanner(r, 0, s.size, false).next()
		release()
		if err == nil {
			firsts[i] = h.LeaderEpoch
		}
	}
	for i, s := range p.segs {
		if s.size == 0 {
			continue
		}
		if i+1 < len(p.segs) && firsts[i] >= 0 && firsts[i] == firsts[i+1] {
			add(firsts[i], s.base, s, 0)
			continue
		}
		r, release, err := p.l.segReader(s)
		if err != nil {
			return nil, fmt.Errorf("log: open %s: %w", s.rel, err)
		}
		sc := newScanner(r, 0, s.size, false)
		for {
			h, _, pos, err := sc.next()
			if err == io.EOF {
				break
			}
			var bad *errBadBatch
			if errors.As(err, &bad) {
				break // damage (recorded by recovery or reads); the next segment goes on
			}
			if err != nil {
				release()
				return nil, fmt.Errorf("log: read %s: %w", s.rel, err)
			}
			add(h.LeaderEpoch, h.BaseOffset, s, pos)
		}
		release()
	}
	return out, nil
}

// Node epoch file (<dir>/~epoch): a fileHeader whose u64 is the epoch and
// whose flags say whether the log was closed cleanly in that epoch.

// nodeEpochClean flags an epoch file written by a Close that made
// everything durable.
const nodeEpochClean = 1

func readNodeEpoch(fs vfs.FS, dir string) (epoch int32, clean bool, err error) {
	b, err := readWhole(fs, filepath.Join(dir, nodeEpochName))
	if err != nil {
		return 0, false, err
	}
	v, n, ok := parseFileHeader(b, nodeEpochMagic)
	if !ok || v != nodeEpochVersion || len(b) != 24 || n > math.MaxInt32 {
		return 0, false, fmt.Errorf("log: bad %s", nodeEpochName)
	}
	flags := binary.BigEndian.Uint16(b[10:])
	if flags&^nodeEpochClean != 0 {
		return 0, false, fmt.Errorf("log: bad %s: unknown flags %#x", nodeEpochName, flags)
	}
	return int32(n), flags&nodeEpochClean != 0, nil
}

func writeNodeEpoch(fs vfs.FS, dir string, e int32, clean bool) error {
	h := fileHeader(nodeEpochMagic, nodeEpochVersion, uint64(e))
	if clean {
		binary.BigEndian.PutUint16(h[10:], nodeEpochClean)
		binary.BigEndian.PutUint32(h[20:], crc32.Checksum(h[:20], crcTable))
	}
	return writeFileAtomic(fs, filepath.Join(dir, nodeEpochName), h)
}

// openEpoch starts this incarnation's epoch, stored durably before any
// append. After a clean Close (everything the last epoch wrote is on
// stable storage: nothing a mirror holds can be missing here) the epoch
// goes on; after any other stop it is one more than the last one and than
// every epoch any partition holds (so a lost epoch file never brings an
// epoch back).
func (l *logImpl) openEpoch() error {
	last, clean, err := readNodeEpoch(l.fs, l.dir)
	if err != nil && !os.IsNotExist(err) {
		l.logger.Warn("log: node epoch file unreadable; the epoch continues after the partitions' histories", "err", err)
		last, clean = 0, false
	}
	held := int32(0)
	for _, t := range l.topicList() {
		for _, p := range t.partitions() {
			p.mu.Lock()
			if n := len(p.epochs.entries); n > 0 {
				held = max(held, p.epochs.entries[n-1].epoch)
			}
			p.mu.Unlock()
		}
	}
	epoch := last
	if !clean || last < 1 || held > last {
		if max(last, held) == math.MaxInt32 {
			return fmt.Errorf("log: leader epochs exhausted (%d)", max(last, held))
		}
		epoch = max(last, held) + 1
	}
	if err := writeNodeEpoch(l.fs, l.dir, epoch, false); err != nil {
		return fmt.Errorf("log: store node epoch: %w", err)
	}
	l.epoch.Store(epoch)
	if epoch != last {
		l.logger.Info("log: new node epoch", "epoch", epoch, "clean", clean)
	}
	return nil
}

// closeEpoch marks the epoch file clean at the end of a Close that made
// everything durable (the next open keeps the epoch).
func (l *logImpl) closeEpoch() {
	for _, t := range l.topicList() {
		for _, p := range t.partitions() {
			p.mu.Lock()
			ro := p.roErr != nil
			p.mu.Unlock()
			if ro {
				return
			}
		}
	}
	if err := writeNodeEpoch(l.fs, l.dir, l.epoch.Load(), true); err != nil {
		l.logger.Warn("log: cannot mark the node epoch clean (the next open starts a new one)", "err", err)
	}
}

// raiseEpoch makes the node's epoch at least min, durably, and returns
// it (a partition restored from a mirror holds a later epoch).
func (l *logImpl) raiseEpoch(min int32) (int32, error) {
	l.epochMu.Lock()
	defer l.epochMu.Unlock()
	if cur := l.epoch.Load(); cur >= min {
		return cur, nil
	}
	if min <= 0 {
		return 0, fmt.Errorf("log: leader epochs exhausted")
	}
	if err := writeNodeEpoch(l.fs, l.dir, min, false); err != nil {
		return 0, fmt.Errorf("store node epoch: %w", err)
	}
	l.logger.Info("log: node epoch raised past a restored partition's", "epoch", min)
	l.epoch.Store(min)
	return min, nil
}

// NodeEpoch implements LeaderEpochs.
func (l *logImpl) NodeEpoch() int32 { return l.epoch.Load() }

// EpochEnd implements LeaderEpochs.
func (l *logImpl) EpochEnd(topic string, partition int32, epoch int32) (int32, int64, error) {
	p, err := l.part(topic, partition)
	if err != nil {
		return -1, -1, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	e, off := endFor(p.epochs.entries, epoch, p.next)
	return e, off, nil
}

// EpochHistory implements LeaderEpochs.
func (l *logImpl) EpochHistory(topic string, partition int32) ([]EpochStart, error) {
	p, err := l.part(topic, partition)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]EpochStart, len(p.epochs.entries))
	for i, e := range p.epochs.entries {
		out[i] = EpochStart{Epoch: e.epoch, StartOffset: e.start, Replicated: e.repl}
	}
	return out, nil
}

// writeInitialEpochs writes the history of a new, empty partition in dir
// (its directory is synced by the caller): entries, none for a mirror.
func writeInitialEpochs(fs vfs.FS, dir string, entries []epochEntry) error {
	f, err := fs.Create(filepath.Join(dir, epochFileName))
	if err != nil {
		return err
	}
	_, err = f.Write(encodeEpochFile(&epochHistory{entries: entries}))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
