package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/vfs"
)

// partition is one append-only sequence of batches, split into segments.
type partition struct {
	l   *logImpl
	t   *topic
	id  int32
	dir string // absolute directory
	rel string // directory relative to the data dir

	// watch holds the Waiters of Log.Watch. Its values are the HWM:
	// registered and notified with p.mu held or after a change made
	// under it.
	watch WatchList

	mu sync.Mutex // guards every field below (and segment size/next/synced/sealed)
	// segs are sorted by base; the last one is active (appended to).
	segs []*segment
	// next is the offset the next appended record gets.
	next int64
	// hwm is the end visible to readers (durable end under fsync always);
	// hwmSeg/hwmPos is where it lies in the files.
	hwm    int64
	hwmSeg *segment
	hwmPos int64
	// durable is the offset up to which data is on stable storage (by
	// segment sync or the journal); durableSeg/durablePos is where.
	durable    int64
	durableSeg *segment
	durablePos int64
	// jbuf holds the bytes appended since the last commit, at jbufPos of
	// jbufSeg, for a commit through the journal; jbufBad when they are not
	// one contiguous run (then the commit syncs the segment).
	jbuf    []byte
	jbufPos int64
	jbufSeg *segment
	jbufBad bool
	// unsynced lists segments holding bytes not yet synced.
	unsynced []*segment
	// dirDirty: a segment file was created and the directory is not synced.
	dirDirty bool
	// waiters are appends waiting for their commit, in append order.
	waiters []waiter
	// producers is the idempotence state by producer id.
	producers Producers
	// txns is the transaction state (txn.go); txnMarked: the partition's
	// txnMarkFile exists (it has held a transactional batch).
	txns      txnIndex
	txnMarked bool
	// roErr is the I/O error that made the partition read-only.
	roErr error
	// closed: the partition was deleted or the log closed.
	closed bool
	// queued: the partition is in the committer's dirty set.
	queued   bool
	lastSync time.Time
	// stuckSince: since when commits fail for want of a descriptor (zero:
	// they do not); after outOfFilesAckWait the waiting appends fail
	// retriably while the sync is retried.
	stuckSince time.Time
	// lost are offset ranges lost to damage between segments (found at
	// open); reads of them are refused.
	lost []lostRange
	// repaired are offset ranges runnel repair moved aside (repair.go):
	// reads pass over them. Set at open.
	repaired [][2]int64
	// smallCommits counts consecutive small commits of a file segment
	// (the partition moves to shared storage after a few), largeCommits
	// consecutive large commits of a virtual one (it moves to a segment
	// file after a few).
	smallCommits int
	largeCommits int
	// epochs is the leader-epoch history (epoch.go).
	epochs epochHistory
	// fed: appends come from a CommitFeeder's feed, which reports the
	// independent bytes itself (Gathering).
	fed atomic.Bool

	// cleanMu guards the segment files against the cleaner's swap of a
	// cleaned file (cleaner.go): reads hold it shared, the swap
	// exclusively (taken before mu). Appends never take it.
	cleanMu  sync.RWMutex
	cleaning cleanState
}

// lostRange is offsets [from, to) lost to damage in file.
type lostRange struct {
	from, to int64
	file     string
	at       int64
}

// waiter is an append waiting for its commit. err != nil means it failed
// before being written and is delivered in order all the same.
type waiter struct {
	end  int64
	base int64
	err  error
	done func(int64, error)
	// afterCommit: err (a duplicate) is delivered once end is durable.
	afterCommit bool
}

func partitionDir(dataDir, topic string, id int32) string {
	return filepath.Join(dataDir, topic, strconv.Itoa(int(id)))
}

func (p *partition) active() *segment { return p.segs[len(p.segs)-1] }

func (p *partition) startLocked() int64 { return p.segs[0].base }

// limitLocked is how many bytes of seg readers may see.
func (p *partition) limitLocked(seg *segment) int64 {
	switch {
	case p.hwmSeg == nil:
		return 0
	case seg == p.hwmSeg:
		return p.hwmPos
	case seg.base < p.hwmSeg.base:
		return seg.size
	}
	return 0
}

func (p *partition) readOnlyErr() error {
	return fmt.Errorf("%w: %s/%d: %w", ErrReadOnly, p.t.name, p.id, p.roErr)
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// isOutOfFiles reports an open that failed for want of a file descriptor
// (EMFILE: the process's RLIMIT_NOFILE; ENFILE: the system's table). No
// storage fault: the operation is retried later, nothing goes read-only.
func isOutOfFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, ErrTooManyOpenFiles)
}

// outOfFiles counts and logs (at most once per outOfFilesLogEvery) an
// open that failed for want of a descriptor and returns the retriable
// error for it.
func (l *logImpl) outOfFiles(what string, err error) error {
	if errors.Is(err, ErrTooManyOpenFiles) {
		return err
	}
	n := l.stats.outOfFiles.Add(1)
	now := time.Now().UnixNano()
	if last := l.outOfFilesLogged.Load(); now-last >= int64(outOfFilesLogEvery) && l.outOfFilesLogged.CompareAndSwap(last, now) {
		l.logger.Warn("log: out of file descriptors; the operation is retried, nothing goes read-only", "op", what, "err", err, "count", n)
	}
	return fmt.Errorf("%w: %s: %v", ErrTooManyOpenFiles, what, err)
}

// outOfFilesLogEvery spaces the log lines about descriptor exhaustion (a
// flood may cause thousands a second).
const outOfFilesLogEvery = 5 * time.Second

// submit writes the batches and queues done for the commit. A caller that
// waits itself (waiting=true) gets errors back directly (queued=false), and
// so an immediate acknowledgement when the topic does not sync before acks
// and nothing is queued ahead. Otherwise done is called by the committer,
// in append order per partition. The bytes of an awaited append (see
// AwaitedAppender) never count toward the commit delay.
func (p *partition) submit(data []byte, hdrs []batch.Header, at bool, done func(int64, error), waiting, awaited bool) (base int64, err error, queued bool) {
	cfg := p.t.config()
	p.mu.Lock()
	base, err = p.writeLocked(data, hdrs, at, awaited, &cfg)
	if errors.Is(err, ErrClosed) {
		// The committer may be gone: answer here.
		p.mu.Unlock()
		if !waiting {
			done(base, err)
		}
		return base, err, false
	}
	w := waiter{end: p.next, base: base, err: err, done: done}
	if errors.Is(err, ErrDuplicateSequence) && base >= 0 {
		// The original may not be durable yet: answer once it is.
		w.end, w.afterCommit = base+int64(hdrs[0].LastOffsetDelta)+1, true
		if w.end <= p.hwm && (len(p.waiters) == 0 || waiting) {
			p.mu.Unlock()
			if !waiting {
				p.mu.Lock()
				p.queueLocked(w)
				p.mu.Unlock()
				p.l.committer.markDirty(p)
				return base, err, true
			}
			return base, err, false
		}
	} else if waiting && err != nil || len(p.waiters) == 0 && (err != nil || !p.awaitingHWMLocked(w.end)) {
		// Nothing queued ahead and nothing to wait for (the topic does
		// not sync before acks, or the append failed): answer now,
		// without a commit cycle.
		p.mu.Unlock()
		if !waiting {
			done(base, err)
		}
		return base, err, false
	}
	p.queueLocked(w)
	p.mu.Unlock()
	p.l.committer.markDirty(p)
	return base, err, true
}

// submitErr is submit for AppendAsync: a validation error is delivered in
// order like any other result.
func (p *partition) submitErr(data []byte, hdrs []batch.Header, verr error, done func(int64, error), awaited bool) {
	if verr == nil {
		p.submit(data, hdrs, false, done, false, awaited)
		return
	}
	p.mu.Lock()
	if p.l.closed.Load() {
		p.mu.Unlock()
		done(-1, ErrClosed)
		return
	}
	p.queueLocked(waiter{base: -1, err: verr, done: done})
	p.mu.Unlock()
	p.l.committer.markDirty(p)
}

// awaitingHWMLocked reports whether an append ending at end waits for the
// HWM (a sync under "always").
func (p *partition) awaitingHWMLocked(end int64) bool { return end > p.hwm }

// awaitingSyncLocked reports whether a queued append still waits for its
// bytes to become durable (it was queued under "always", past the HWM).
// Waiter ends never decrease in queue order, so the last one with a
// position decides.
func (p *partition) awaitingSyncLocked() bool {
	for i := len(p.waiters) - 1; i >= 0; i-- {
		if w := p.waiters[i]; w.end >= 0 {
			return w.end > p.hwm
		}
	}
	return false
}

func (p *partition) queueLocked(w waiter) {
	if w.err != nil && !w.afterCommit {
		w.end = -1
	}
	p.waiters = append(p.waiters, w)
}

// writeLocked does the work of append under p.mu: checks, offsets and
// idempotence, the segment to write to, the epoch history, the offsets
// stamped into data, the write, then the bookkeeping that makes the
// batches readable (index, producer and transaction state, high-water
// mark). at says data comes at its own offsets (AppendAt: a mirror).
func (p *partition) writeLocked(data []byte, hdrs []batch.Header, at, awaited bool, cfg *TopicConfig) (int64, error) {
	if err := p.writableLocked(hdrs, at, cfg); err != nil {
		return -1, err
	}
	if dup, err := p.sequenceLocked(hdrs, at); err != nil {
		return dup, err
	}
	var records int64
	for i := range hdrs {
		records += int64(hdrs[i].LastOffsetDelta) + 1
	}
	seg, err := p.segmentForLocked(cfg, int64(len(data)), records)
	if err != nil {
		return -1, err
	}
	if err := p.markTxnsLocked(hdrs); err != nil {
		return -1, err
	}
	// The epoch history is durable before the batches it describes.
	base := p.next
	epoch, err := p.prepareEpochsLocked(hdrs, at, base)
	if err != nil {
		return -1, err
	}
	n := stampOffsets(data, hdrs, at, base, epoch)
	if !at && cfg.TimestampType == LogAppendTime {
		stampAppendTime(data, hdrs, time.Now().UnixMilli())
	}
	if seg.virt != nil {
		if err := p.writeSharedLocked(seg, data, base, records); err != nil {
			return -1, err
		}
	} else if err := p.writeFileLocked(seg, data); err != nil {
		return -1, err
	}
	p.bufferJournalLocked(seg, data, cfg)
	p.indexLocked(seg, hdrs)
	for i := range hdrs {
		p.producers.Record(&hdrs[i], hdrs[i].BaseOffset)
		p.l.notePID(hdrs[i].ProducerID)
	}
	p.noteTxnsLocked(hdrs, data)
	seg.size += int64(len(data))
	seg.next = n
	p.next = n
	if len(p.unsynced) == 0 || p.unsynced[len(p.unsynced)-1] != seg {
		p.unsynced = append(p.unsynced, seg)
	}
	p.publishLocked(seg, len(data), len(hdrs), records, awaited, cfg)
	return base, nil
}

// writableLocked refuses an append the partition cannot take: closed,
// read-only, a mirror written other than at its origin's offsets, a batch
// over the topic's limit, a full disk under on-full reject.
func (p *partition) writableLocked(hdrs []batch.Header, at bool, cfg *TopicConfig) error {
	l := p.l
	if l.closed.Load() {
		return ErrClosed
	}
	if p.closed {
		if l.closed.Load() {
			return ErrClosed
		}
		return fmt.Errorf("%w: %s", ErrUnknownTopic, p.t.name)
	}
	if p.roErr != nil {
		return p.readOnlyErr()
	}
	if !at && cfg.Origin != "" {
		return fmt.Errorf("%w: %s mirrors node %s", ErrNotLeader, p.t.name, cfg.Origin)
	}
	for i := range hdrs {
		if hdrs[i].Size() > int(cfg.MaxBatchBytes) {
			return fmt.Errorf("%w: %d bytes (max %d)", ErrBatchTooLarge, hdrs[i].Size(), cfg.MaxBatchBytes)
		}
	}
	if l.diskShort.Load() && cfg.OnFull == OnFullReject {
		l.stats.rejected.Add(1)
		return ErrDiskFull
	}
	return nil
}

// sequenceLocked checks offsets (at: the batches must continue the log,
// which an empty partition rebases to) or idempotence (a duplicate of an
// earlier batch returns its offset with ErrDuplicate).
func (p *partition) sequenceLocked(hdrs []batch.Header, at bool) (int64, error) {
	if !at {
		return p.producers.Check(hdrs)
	}
	if len(hdrs) > 0 && hdrs[0].BaseOffset > p.next && p.emptyLocked() {
		if err := p.rebaseLocked(hdrs[0].BaseOffset); err != nil {
			p.failLocked(err)
			return -1, p.readOnlyErr()
		}
	}
	n := p.next
	for i := range hdrs {
		if hdrs[i].BaseOffset != n {
			return -1, fmt.Errorf("%w: batch %d has base %d, next is %d", ErrNotNextOffset, i, hdrs[i].BaseOffset, n)
		}
		n += int64(hdrs[i].LastOffsetDelta) + 1
	}
	return 0, nil
}

// segmentForLocked returns the segment an append of size bytes and
// records records goes to, rolling first when the active one is full, too
// old, would overflow its 32-bit offset deltas, or is of the other
// storage (own file or shared) than the append wants.
func (p *partition) segmentForLocked(cfg *TopicConfig, size, records int64) (*segment, error) {
	l := p.l
	seg := p.active()
	virt := p.wantSharedLocked(cfg, int(size))
	if seg.size > 0 && (seg.size+size > l.capUnit(cfg.SegmentBytes) ||
		time.Since(seg.created) > cfg.SegmentAge ||
		p.next+records-seg.base >= 1<<32-1) || virt != (seg.virt != nil) {
		if err := p.rollToLocked(virt); err != nil {
			if isOutOfFiles(err) {
				return nil, p.l.outOfFiles("roll "+p.rel, err)
			}
			p.failLocked(err)
			return nil, p.readOnlyErr()
		}
		seg = p.active()
	}
	if seg.size+size > 1<<32-1 {
		return nil, fmt.Errorf("%w: %d bytes in one append", ErrBatchTooLarge, size)
	}
	return seg, nil
}

// stampOffsets assigns offsets from base (and, to a local append, the
// leader epoch) in the caller's bytes (neither is CRC'd) and the headers;
// it returns the next offset.
func stampOffsets(data []byte, hdrs []batch.Header, at bool, base int64, epoch int32) int64 {
	off := int64(0)
	n := base
	for i := range hdrs {
		batch.SetBaseOffset(data[off:], n)
		hdrs[i].BaseOffset = n
		if !at {
			setLeaderEpoch(data[off:], epoch)
			hdrs[i].LeaderEpoch = epoch
		}
		n += int64(hdrs[i].LastOffsetDelta) + 1
		off += int64(hdrs[i].Size())
	}
	return n
}

// stampAppendTime stamps the log append time ts into each batch (a topic
// with message.timestamp.type LogAppendTime) and its header.
func stampAppendTime(data []byte, hdrs []batch.Header, ts int64) {
	off := 0
	for i := range hdrs {
		batch.SetLogAppendTime(data[off:], ts)
		hdrs[i].Attributes |= batch.AttrLogAppendTime
		hdrs[i].MaxTimestamp = ts
		hdrs[i].CRC = binary.BigEndian.Uint32(data[off+batch.OffCRC:])
		off += hdrs[i].Size()
	}
}

// bufferJournalLocked keeps the bytes of a small "always" commit to a
// segment file for the journal (one journal write instead of a segment
// fsync), as long as they stay contiguous and small.
func (p *partition) bufferJournalLocked(seg *segment, data []byte, cfg *TopicConfig) {
	l := p.l
	if seg.virt != nil || cfg.Fsync != FsyncAlways || l.journal == nil || p.jbufBad || cfg.Compacted() {
		return
	}
	if len(p.jbuf) == 0 {
		p.jbufSeg, p.jbufPos = seg, seg.size
	}
	if p.jbufSeg == seg && p.jbufPos+int64(len(p.jbuf)) == seg.size && int64(len(p.jbuf)+len(data)) <= l.opts.JournalSmallBytes {
		p.jbuf = append(p.jbuf, data...)
	} else {
		p.jbufBad = true
	}
}

// indexLocked adds the appended batches (written at seg.size) to seg's
// offset index.
func (p *partition) indexLocked(seg *segment, hdrs []batch.Header) {
	seg.mu.Lock()
	defer seg.mu.Unlock()
	pos := seg.size
	interval := p.l.opts.IndexIntervalBytes
	if seg.virt != nil {
		interval *= virtualIndexSpacing
	}
	for i := range hdrs {
		seg.addIndexLocked(&hdrs[i], pos, interval)
		pos += int64(hdrs[i].Size())
	}
}

// publishLocked counts an append and, under fsync interval or never, moves
// the high-water mark at once (under "always" the committer does, after
// the sync; the bytes of an awaited append never count toward the commit
// delay). Not when earlier appends (queued under "always" before a config
// change) still wait for a sync: moving it would acknowledge their unsynced
// bytes.
func (p *partition) publishLocked(seg *segment, size, batches int, records int64, awaited bool, cfg *TopicConfig) {
	l := p.l
	l.stats.appendedRecords.Add(uint64(records))
	l.stats.appendedBytes.Add(uint64(size))
	l.appends.Notify(int64(l.stats.appendedBatches.Add(uint64(batches))))
	if cfg.Fsync == FsyncAlways || p.awaitingSyncLocked() {
		l.committer.noteAppendLocked(p, size, awaited)
		return
	}
	p.hwm, p.hwmSeg, p.hwmPos = p.next, seg, seg.size
	if cfg.Fsync == FsyncInterval {
		l.committer.markLazy(p, cfg.FsyncInterval)
	}
	p.watch.Notify(p.hwm)
}

// writeFileLocked writes data at the end of seg. A full disk truncates the
// partial write away and returns ErrDiskFull (the partition stays
// writable); any other error makes the partition read-only.
func (p *partition) writeFileLocked(seg *segment, data []byte) error {
	cf, err := p.l.files.get(seg.path, true)
	if err != nil {
		if isNoSpace(err) {
			p.l.stats.rejected.Add(1)
			return fmt.Errorf("%w: %v", ErrDiskFull, err)
		}
		if isOutOfFiles(err) {
			return p.l.outOfFiles("open "+seg.rel, err)
		}
		p.failLocked(fmt.Errorf("open %s: %w", seg.rel, err))
		return p.readOnlyErr()
	}
	defer p.l.files.release(cf)
	_, werr := cf.f.WriteAt(data, seg.size)
	if werr == nil {
		return nil
	}
	if isNoSpace(werr) {
		if terr := cf.f.Truncate(seg.size); terr != nil {
			p.failLocked(fmt.Errorf("write %s: %v; truncate back: %w", seg.rel, werr, terr))
			return p.readOnlyErr()
		}
		p.l.stats.rejected.Add(1)
		p.l.logger.Warn("log: disk full on write", "topic", p.t.name, "partition", p.id, "err", werr)
		return fmt.Errorf("%w: %v", ErrDiskFull, werr)
	}
	p.failLocked(fmt.Errorf("write %s at %d: %w", seg.rel, seg.size, werr))
	return p.readOnlyErr()
}

// writeSharedLocked appends data to the virtual segment seg: one entry in
// the active shared file. A full disk returns ErrDiskFull (nothing
// written, the partition stays writable); any other error makes the
// partition read-only.
func (p *partition) writeSharedLocked(seg *segment, data []byte, base, records int64) error {
	v := seg.virt
	last := v.lastFile()
	f, fpos, err := p.l.shared.append(p.t.id, p.id, data, base+records, seg, last, len(v.runs))
	if err != nil {
		if errors.Is(err, ErrDiskFull) {
			p.l.stats.rejected.Add(1)
			p.l.logger.Warn("log: disk full on write", "topic", p.t.name, "partition", p.id, "err", err)
			return err
		}
		if isOutOfFiles(err) {
			return p.l.outOfFiles("shared segment", err)
		}
		p.failLocked(err)
		return p.readOnlyErr()
	}
	n := int64(len(data))
	seg.mu.Lock()
	if f != last {
		v.runs = append(v.runs, vrun{file: f, vpos: seg.size, base: base, next: base})
	}
	r := &v.runs[len(v.runs)-1]
	if r.ext != nil || r.sec.n == 0 {
		r.ext = append(r.ext, extent{vpos: seg.size, n: n, fpos: fpos})
	} // else f was rolled, synced and indexed since append returned: its index holds this entry
	r.n += n
	r.next = base + records
	seg.mu.Unlock()
	return nil
}

// A partition moves from its own segment files to shared storage after
// sharedAfterSmallCommits small commits (< Options.JournalSmallBytes) in a
// row, and back with an append over JournalSmallBytes after
// fileAfterLargeCommits large commits (at least sharedLargeFactor times
// that) in a row, or with any append over sharedMaxAppendFactor times
// that. Both counts start over at each move. Commits between the two
// thresholds leave it where it is: with one threshold and no count on the
// way back, a load whose commits hover around 16 KiB (an MQTT client with
// a large in-flight window, a Kafka producer's batches near that size)
// flapped between the two, rolling a new segment file (created, its
// directory synced) every few commits: 33-52 segment files for 100,000
// MQTT messages (13 MB) at window 1000 (doc.go, "Store once").
const (
	sharedAfterSmallCommits = 8
	fileAfterLargeCommits   = 8
	sharedLargeFactor       = 2
	sharedMaxAppendFactor   = 4
)

// wantSharedLocked decides where an append of n bytes goes: to shared
// storage (small "always" commits) or to the partition's own segment.
func (p *partition) wantSharedLocked(cfg *TopicConfig, n int) bool {
	l := p.l
	act := p.active()
	if act.virt != nil && act.synced < act.size || p.sharedUnsyncedLocked() {
		// Back to a segment file only once every shared byte is durable:
		// file bytes must never be durable ahead of shared ones before them
		// (an earlier virtual segment too: the active one may be new and
		// empty after a drop-oldest roll, or a roll whose append failed).
		return true
	}
	if !l.shared.usable() || cfg.Fsync != FsyncAlways || cfg.Compacted() {
		return false // compacted topics: own segment files only (cleaner.go)
	}
	small := l.opts.JournalSmallBytes
	switch {
	case act.virt != nil:
		return int64(n) <= small || int64(n) <= sharedMaxAppendFactor*small && p.largeCommits < fileAfterLargeCommits
	case act.size == 0:
		return int64(n) <= small
	}
	return p.smallCommits >= sharedAfterSmallCommits && int64(n) <= small
}

// sharedUnsyncedLocked reports whether a virtual segment of p has bytes
// not yet durable.
func (p *partition) sharedUnsyncedLocked() bool {
	for _, s := range p.unsynced {
		if s.virt != nil && s.synced < s.size {
			return true
		}
	}
	return false
}

// rollLocked seals the active segment and starts a new one of the same
// kind at p.next.
func (p *partition) rollLocked() error { return p.rollToLocked(p.active().virt != nil) }

// rollToLocked seals the active segment and starts a new one at p.next: a
// virtual one (stored in shared files) or a segment file. An empty active
// segment is replaced instead.
func (p *partition) rollToLocked(virt bool) error {
	old := p.active()
	var ns *segment
	if virt {
		ns = newVirtualSegment(p.rel, p.next, sharedKey{p.t.id, p.id})
	} else {
		// Created before anything changes: a failed create (out of
		// descriptors) leaves the partition as it was.
		ns = newSegment(p.dir, p.rel, p.next)
		cf, err := p.l.files.get(ns.path, true)
		if err != nil {
			return fmt.Errorf("create segment %d: %w", p.next, err)
		}
		p.l.files.release(cf)
	}
	if virt {
		// Shared entries must never be durable ahead of the file bytes
		// before them: sync the files now (once per switch), the active
		// one and any earlier one (the active one may be new and empty
		// after a roll whose bytes are not synced yet).
		for _, s := range slices.Clone(p.unsynced) {
			if s.virt == nil && s.covered < s.size {
				if err := p.syncFileLocked(s); err != nil {
					return err
				}
			}
		}
	}
	if virt != (old.virt != nil) {
		// The counts of the storage left behind start over (an append
		// before the next commit would otherwise read a stale one).
		p.smallCommits, p.largeCommits = 0, 0
	}
	if old.size == 0 && len(p.segs) > 1 || old.size == 0 && virt != (old.virt != nil) {
		// Replace the empty active segment (an empty file stays until
		// the next open, which removes it: no directory sync here).
		p.segs = p.segs[:len(p.segs)-1]
		old.deleted = true
		if old.virt == nil {
			p.l.files.forget(old.path)
		}
		p.dropUnsyncedLocked(old)
	} else {
		old.sealed = true
		if err := old.seal(p.l.fs); err != nil {
			p.l.logger.Warn("log: cannot write index files (they will be rebuilt)", "topic", p.t.name, "partition", p.id, "err", err)
		}
		if old.virt == nil {
			p.dirDirty = true // the index files' entries
		}
		p.l.indexes.touch(old)
	}
	if !virt {
		p.dirDirty = true
	}
	p.segs = append(p.segs, ns)
	if p.hwm == p.next {
		p.hwmSeg, p.hwmPos = ns, 0
	}
	if p.durableSeg == old && old.deleted {
		p.durableSeg, p.durablePos = ns, 0
	}
	return nil
}

// syncFileLocked fdatasyncs a segment file (and the directory when a
// segment was created) in the writer's goroutine.
func (p *partition) syncFileLocked(seg *segment) error {
	l := p.l
	if p.dirDirty {
		if err := p.syncDir(); err != nil {
			return err
		}
		p.dirDirty = false
	}
	cf, err := l.files.get(seg.path, true)
	if err != nil {
		return fmt.Errorf("open %s for sync: %w", seg.rel, err)
	}
	err = l.fdatasync(cf.f)
	l.files.release(cf)
	if err != nil {
		return fmt.Errorf("fdatasync %s: %w", seg.rel, err)
	}
	seg.synced, seg.covered = seg.size, seg.size
	p.dropUnsyncedLocked(seg)
	return nil
}

// syncDir syncs the partition's directory (a segment was created).
func (p *partition) syncDir() error {
	if err := vfs.SyncDir(p.l.fs, p.dir); err != nil {
		if isOutOfFiles(err) {
			return p.l.outOfFiles("sync directory "+p.rel, err)
		}
		p.l.stats.fsyncErrors.Add(1)
		return fmt.Errorf("sync directory %s: %w", p.rel, err)
	}
	return nil
}

// dropUnsyncedLocked forgets seg in the unsynced list and the journal
// buffer (synced, or deleted).
func (p *partition) dropUnsyncedLocked(seg *segment) {
	p.unsynced = slices.DeleteFunc(p.unsynced, func(s *segment) bool { return s == seg })
	if p.jbufSeg == seg {
		p.jbuf, p.jbufSeg, p.jbufBad = p.jbuf[:0], nil, false
	}
}

// failLocked makes the partition read-only. Waiting appends are failed by
// the committer, which delivers every callback.
func (p *partition) failLocked(err error) {
	if p.roErr != nil {
		return
	}
	p.roErr = err
	p.l.logger.Error("log: partition is read-only after an I/O error", "topic", p.t.name, "partition", p.id, "err", err)
	p.l.committer.markDirty(p)
}

// close stops the partition (log closing or topic deleted): later appends
// fail, waiters are failed by the committer, cached handles are closed.
func (p *partition) close() {
	p.mu.Lock()
	p.closed = true
	segs := append([]*segment(nil), p.segs...)
	waiting := len(p.waiters) > 0
	p.mu.Unlock()
	p.watch.Close()
	for _, s := range segs {
		p.l.files.forget(s.path)
		p.l.indexes.forget(s)
	}
	if waiting {
		p.l.committer.markDirty(p)
	}
}

// read implements Log.Read for this partition.
func (p *partition) read(offset int64, maxBytes int) ([]byte, error) {
	p.cleanMu.RLock()
	defer p.cleanMu.RUnlock()
	p.mu.Lock()
	start, hwm := p.startLocked(), p.hwm
	if offset < start || offset > hwm {
		p.mu.Unlock()
		return nil, fmt.Errorf("%w: %d not in [%d, %d]", ErrOffsetOutOfRange, offset, start, hwm)
	}
	for {
		to, ok := p.repairedLocked(offset)
		if !ok || to > hwm {
			break
		}
		offset = to // a gap left by runnel repair: the next intact batch
	}
	if offset == hwm {
		p.mu.Unlock()
		return nil, nil
	}
	for _, g := range p.lost {
		if offset >= g.from && offset < g.to {
			p.mu.Unlock()
			return nil, &CorruptError{File: g.file, Offset: g.at, Reason: fmt.Sprintf("offsets %d-%d lost to damage", g.from, g.to-1)}
		}
	}
	// The segment holding offset, or the first after it (gaps).
	i := sort.Search(len(p.segs), func(i int) bool { return p.segs[i].base > offset }) - 1
	if i < 0 {
		i = 0
	}
	if p.segs[i].next <= offset && i+1 < len(p.segs) {
		i++
	}
	seg := p.segs[i]
	limit := p.limitLocked(seg)
	size := seg.size
	epochs := p.epochSnapshotLocked()
	p.mu.Unlock()
	if limit == 0 {
		return nil, nil
	}
	if err := seg.ensureIndex(p.l, size); err != nil {
		return nil, p.deletedWhileRead(seg, offset, err)
	}
	out, err := p.readSegment(seg, offset, limit, maxBytes, epochs)
	var ce *CorruptError
	if errors.As(err, &ce) && ce.found {
		// Damage this read found: now known (with where the next intact
		// batch starts), it is passed over when offset lies after it.
		out, err = p.readSegment(seg, offset, limit, maxBytes, epochs)
	}
	if err != nil {
		return nil, p.deletedWhileRead(seg, offset, err)
	}
	if len(out) == 0 {
		// offset < HWM yet no batch holds it: offsets lost between
		// segments (damage found at open).
		file, at := p.l.damageLocation(seg, max(0, limit-1))
		return nil, &CorruptError{File: file, Offset: at, Reason: fmt.Sprintf("offset %d lost (damaged data before %s)", offset, seg.rel)}
	}
	return out, err
}

// deletedWhileRead turns the error of a read whose segment retention or
// drop-oldest deleted meanwhile (its file, or a shared file it used, is
// gone) into ErrOffsetOutOfRange, as if the read had come a moment later.
func (p *partition) deletedWhileRead(seg *segment, offset int64, err error) error {
	p.mu.Lock()
	gone, start := seg.deleted, p.startLocked()
	p.mu.Unlock()
	if gone && offset < start {
		return fmt.Errorf("%w: %d not in [%d, ...] (deleted while being read)", ErrOffsetOutOfRange, offset, start)
	}
	return err
}

// readSegment returns whole batches of seg from the one holding offset;
// each batch's leader epoch must be the one epochs gives its offset.
func (p *partition) readSegment(seg *segment, offset, limit int64, maxBytes int, epochs []epochEntry) ([]byte, error) {
	r, release, err := p.l.segReader(seg)
	if err != nil {
		return nil, fmt.Errorf("open segment %s: %w", seg.rel, err)
	}
	defer release()
	pos, expect := seg.lookup(offset)
	if maxBytes < 1 {
		maxBytes = 1
	}
	// Read a window holding the index gap plus maxBytes; re-read when a
	// batch does not fit.
	win := int64(p.l.opts.IndexIntervalBytes)*2 + int64(maxBytes)
	if win < 64<<10 {
		win = 64 << 10
	}
	var out []byte
	var outStart, outEnd int64 = -1, -1
	buf := []byte(nil)
	var bufPos int64
	for pos < limit {
		if b, ok := seg.badAt(pos); ok {
			if outStart >= 0 {
				break
			}
			// Skip damage that lies wholly before the wanted offset (its
			// end known, else found by the batch header after it); the
			// batches after it are checked as any others.
			if b.skips(pos, expect, offset) {
				pos, expect = b.end, b.to
				continue
			}
			if h, err := readHeaderAt(r, b.end, limit); b.to < 0 && b.end > pos+1 && err == nil && h.BaseOffset > expect && offset >= h.BaseOffset {
				pos, expect = b.end, h.BaseOffset
				continue
			}
			if h, err := readHeaderAt(r, pos, limit); b.end == pos+1 && err == nil && h.BaseOffset == expect && h.LastOffset() < offset {
				pos, expect = pos+int64(h.Size()), h.LastOffset()+1
				continue
			}
			return nil, &CorruptError{File: seg.rel, Offset: pos, Reason: "damaged batch (found at open or by an earlier read)"}
		}
		// Make sure the header at pos is buffered.
		if buf == nil || pos < bufPos || pos+batch.HeaderSize > bufPos+int64(len(buf)) {
			n := win
			if limit-pos < n {
				n = limit - pos
			}
			if outStart >= 0 {
				break // the answer so far fits; do not read more
			}
			buf = make([]byte, n)
			if err := readAtFull(r, buf, pos); err != nil {
				return nil, fmt.Errorf("read %s at %d: %w", seg.rel, pos, err)
			}
			bufPos = pos
		}
		rel := int(pos - bufPos)
		h, err := batch.ParseHeader(buf[rel:])
		if err == nil {
			err = checkStoredHeader(&h)
		}
		if err == nil {
			err = checkEpoch(epochs, &h)
		}
		if err == nil && h.BaseOffset != expect {
			err = fmt.Errorf("base offset %d, expected %d", h.BaseOffset, expect)
		}
		if err == nil && pos+int64(h.Size()) > limit {
			err = fmt.Errorf("batch of %d bytes runs past the end (%d)", h.Size(), limit)
		}
		if err != nil {
			if outStart >= 0 {
				break
			}
			derr := p.damage(seg, r, pos, limit, expect, fmt.Sprintf("bad batch header: %v", err))
			if b, ok := seg.badAt(pos); ok && b.skips(pos, expect, offset) {
				pos, expect = b.end, b.to // damage before the wanted offset
				continue
			}
			return nil, derr
		}
		size := int64(h.Size())
		if h.LastOffset() < offset && outStart < 0 {
			pos += size
			expect = h.LastOffset() + 1
			continue
		}
		if outStart >= 0 && outEnd-outStart+size > int64(maxBytes) {
			break
		}
		if pos+size > bufPos+int64(len(buf)) {
			if outStart >= 0 {
				break
			}
			// A first batch larger than the window: read it alone.
			buf = make([]byte, size)
			if err := readAtFull(r, buf, pos); err != nil {
				return nil, fmt.Errorf("read %s at %d: %w", seg.rel, pos, err)
			}
			bufPos = pos
			rel = 0
		}
		if _, err := batch.Validate(buf[rel : rel+int(size)]); err != nil {
			if outStart >= 0 {
				break
			}
			derr := p.damage(seg, r, pos, limit, expect, err.Error())
			if b, ok := seg.badAt(pos); ok && b.skips(pos, expect, offset) {
				pos, expect = b.end, b.to // damage before the wanted offset
				continue
			}
			return nil, derr
		}
		if outStart < 0 {
			outStart = pos
		}
		outEnd = pos + size
		out = buf[outStart-bufPos : outEnd-bufPos]
		pos += size
		expect = h.LastOffset() + 1
	}
	return out, nil
}

// readHeaderAt parses the stored batch header at pos (which must end
// before limit).
func readHeaderAt(r io.ReaderAt, pos, limit int64) (batch.Header, error) {
	var b [batch.HeaderSize]byte
	if pos+batch.HeaderSize > limit {
		return batch.Header{}, batch.ErrShort
	}
	if err := readAtFull(r, b[:], pos); err != nil {
		return batch.Header{}, err
	}
	h, err := batch.ParseHeader(b[:])
	if err == nil {
		err = checkStoredHeader(&h)
	}
	if err == nil && pos+int64(h.Size()) > limit {
		err = batch.ErrShort
	}
	return h, err
}

// damage records corruption found by a read at pos of seg (the batch of
// offset from) and returns its error. The damage ends where the next
// intact batch starts: with the entry (shared files frame each entry;
// its run or extent index gives the offset after it), or at the next
// batch a resync finds (segment files), whose base offset ends the range
// of offsets lost; readers past it go on from there.
func (p *partition) damage(seg *segment, r io.ReaderAt, pos, limit, from int64, reason string) error {
	end, to := pos+1, int64(-1)
	if seg.virt != nil {
		// The entry's offsets come from its run or the extent index: the
		// batch header after it may be damaged too (entry CRCs are not
		// checked by reads), and is then found by the next read.
		eend, next := (&vreader{l: p.l, seg: seg}).entryRange(pos)
		end = max(end, eend)
		if next > from && end <= limit {
			to = next
		}
	} else if at := resync(r, pos+1, limit, from, from+1<<31); at >= 0 {
		end = at
	} else {
		end = limit
	}
	if end < limit && to < 0 {
		if h, err := readHeaderAt(r, end, limit); err == nil && h.BaseOffset > from {
			to = h.BaseOffset
		}
	}
	if to < 0 {
		p.mu.Lock()
		if seg.sealed {
			to = seg.next
		}
		p.mu.Unlock()
	}
	seg.mu.Lock()
	repaired := p.isRepaired(from, to) // p.repaired is read-only after open
	seg.addBadRangeLocked(p.l, pos, end, Damage{Reason: reason, Topic: p.t.name, Partition: p.id, From: from, To: to, Repaired: repaired})
	seg.mu.Unlock()
	file, at := p.l.damageLocation(seg, pos)
	return &CorruptError{File: file, Offset: at, Reason: reason, found: true}
}

// offsets returns the log start and HWM.
func (p *partition) offsets() (int64, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.startLocked(), p.hwm
}

// offsetForTime implements Log.OffsetForTime.
func (p *partition) offsetForTime(ts int64) (int64, error) {
	p.mu.Lock()
	segs := append([]*segment(nil), p.segs...)
	hwm := p.hwm
	limits := make([]int64, len(segs))
	sizes := make([]int64, len(segs))
	for i, s := range segs {
		limits[i], sizes[i] = p.limitLocked(s), s.size
	}
	p.mu.Unlock()
	for i, seg := range segs {
		if limits[i] == 0 {
			break
		}
		if err := seg.ensureIndex(p.l, sizes[i]); err != nil {
			return 0, err
		}
		seg.mu.Lock()
		maxTs := seg.maxTs
		seg.mu.Unlock()
		if maxTs < ts && limits[i] == sizes[i] && seg.sealed {
			continue
		}
		r, release, err := p.l.segReader(seg)
		if err != nil {
			return 0, err
		}
		sc := newScanner(r, seg.lookupTime(ts), limits[i], false)
		for {
			h, _, _, err := sc.next()
			if err != nil {
				break
			}
			if h.MaxTimestamp >= ts {
				release()
				return h.BaseOffset, nil
			}
		}
		release()
	}
	return hwm, nil
}

// info describes the partition.
func (p *partition) info() PartitionInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	pi := PartitionInfo{Partition: p.id, Start: p.startLocked(), HWM: p.hwm, Segments: len(p.segs)}
	for _, s := range p.segs {
		pi.Bytes += s.size
	}
	if p.roErr != nil {
		pi.Err = p.readOnlyErr()
	}
	if t := p.cleaning.lastPass.Load(); t != 0 {
		pi.LastClean = time.Unix(0, t)
	}
	return pi
}
