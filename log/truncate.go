package log

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/vfs"
)

// Truncation of a partition (Truncater; see doc.go, "Truncation"): a
// mirror cuts back what its origin no longer holds. The commit point is
// one record in the partition's leader-epoch file; whatever the files
// look like after a crash before the truncation completed, open finishes
// it from that record, and a crash before it leaves the partition as it
// was.

// errTruncateBusy: appends of the partition wait for their commit; the
// truncation tries again once they are answered.
var errTruncateBusy = errors.New("log: appends in flight")

// Truncate implements Truncater.
func (l *logImpl) Truncate(ctx context.Context, topic string, partition int32, offset int64, opts *TruncateOptions) error {
	p, err := l.part(topic, partition)
	if err != nil {
		return err
	}
	local := opts != nil && opts.Local
	for {
		// On the committer's goroutine, between two group commits: no
		// commit of the partition is in flight while it runs.
		done := make(chan error, 1)
		l.committer.deliverLater(func() { done <- p.truncate(offset, local) })
		select {
		case err = <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !errors.Is(err, errTruncateBusy) {
			if err == nil {
				// The HWM went back: every waiter looks again (a
				// reader past the new end gets out-of-range).
				p.watch.Notify(math.MaxInt64)
			}
			return err
		}
		select {
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// truncate cuts the partition back to offset (see Truncate). It runs on
// the committer's goroutine.
func (p *partition) truncate(offset int64, local bool) error {
	l := p.l
	if l.closed.Load() {
		return ErrClosed
	}
	if l.journal != nil {
		// No journal record of the partition's bytes may outlive the
		// cut: replay would write them back.
		if err := l.journal.rotate(); err != nil {
			return fmt.Errorf("log: truncate %s/%d: journal checkpoint: %w", p.t.name, p.id, err)
		}
	}
	l.ckptMu.Lock()
	defer l.ckptMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cleaning.truncs.Add(1) // a cleaning pass's key map may name records cut here
	switch {
	case l.closed.Load():
		return ErrClosed
	case p.closed:
		return fmt.Errorf("%w: %s", ErrUnknownTopic, p.t.name)
	case p.roErr != nil:
		return p.readOnlyErr()
	case offset < p.startLocked() || offset > p.next:
		return fmt.Errorf("%w: truncate to %d, partition holds [%d, %d)", ErrOffsetOutOfRange, offset, p.startLocked(), p.next)
	case len(p.waiters) > 0:
		return errTruncateBusy
	case offset == p.next:
		return nil
	}
	if !local {
		for i, e := range p.epochs.entries {
			end := p.next
			if i+1 < len(p.epochs.entries) {
				end = p.epochs.entries[i+1].start
			}
			if !e.repl && end > offset && e.start < p.next {
				return fmt.Errorf("%w: %s/%d epoch %d (offsets %d-%d)", ErrTruncateLocal, p.t.name, p.id, e.epoch, max(e.start, offset), end-1)
			}
		}
	}
	si, pos, err := p.batchStartLocked(offset)
	if err != nil {
		return err
	}
	// What stays must be durable (what goes is about to).
	if err := p.syncAllLocked(); err != nil {
		p.failLocked(err)
		return p.readOnlyErr()
	}
	// Entries of the partition in shared files up to seq are void from
	// offset on; later entries go to a later file.
	var seq uint64
	if l.shared != nil {
		if seq, err = l.shared.truncatePoint(sharedKey{p.t.id, p.id}, offset); err != nil {
			if errors.Is(err, ErrDiskFull) {
				return err
			}
			p.failLocked(err)
			return p.readOnlyErr()
		}
	}
	// The commit point.
	h := &p.epochs
	old, oldMarks := h.entries, h.marks
	h.entries = cutAt(h.entries, offset)
	h.marks = append(h.marks[:len(h.marks):len(h.marks)], truncMark{offset: offset, sharedSeq: seq})
	if err := p.writeEpochsLocked(epochRecord(epochRecTruncate, 0, 0, offset, seq)); err != nil {
		h.entries, h.marks = old, oldMarks
		if isNoSpace(err) {
			return fmt.Errorf("%w: %v", ErrDiskFull, err)
		}
		p.failLocked(err)
		return p.readOnlyErr()
	}
	h.newEpoch = true
	// From here on a failure leaves the truncation to the next open.
	fail := func(err error) error {
		p.failLocked(fmt.Errorf("truncate to %d: %w", offset, err))
		return p.readOnlyErr()
	}
	if err := p.cutLocked(si, pos, offset); err != nil {
		return fail(err)
	}
	// A checkpoint of the new end before the truncation counts as done:
	// open trusts checkpoints only of completed truncations.
	if err := l.writeCheckpointHolding(p); err != nil {
		return fail(fmt.Errorf("write checkpoint: %w", err))
	}
	h.marks[len(h.marks)-1].done = true
	if err := p.writeEpochsLocked(epochRecord(epochRecDone, 0, 0, 0, 0)); err != nil {
		return fail(err)
	}
	l.logger.Warn("log: partition truncated", "topic", p.t.name, "partition", p.id, "offset", offset)
	return nil
}

// batchStartLocked finds the segment and byte position of the batch
// that starts at offset (ErrNotBatchStart when none does).
func (p *partition) batchStartLocked(offset int64) (int, int64, error) {
	si := -1
	for i, s := range p.segs {
		if s.base <= offset && offset < s.next {
			si = i
		}
	}
	if si < 0 {
		return 0, 0, fmt.Errorf("%w: %d (lost to damage)", ErrNotBatchStart, offset)
	}
	seg := p.segs[si]
	if offset == seg.base {
		return si, 0, nil
	}
	if err := seg.ensureIndex(p.l, seg.size); err != nil {
		return 0, 0, err
	}
	pos, _ := seg.lookup(offset)
	r, release, err := p.l.segReader(seg)
	if err != nil {
		return 0, 0, err
	}
	defer release()
	sc := newScanner(r, pos, seg.size, false)
	for {
		h, _, at, err := sc.next()
		if err != nil {
			return 0, 0, fmt.Errorf("%w: %d (%v)", ErrNotBatchStart, offset, err)
		}
		switch {
		case h.BaseOffset == offset:
			return si, at, nil
		case h.LastOffset() >= offset:
			return 0, 0, fmt.Errorf("%w: %d is inside the batch at %d-%d", ErrNotBatchStart, offset, h.BaseOffset, h.LastOffset())
		}
	}
}

// syncAllLocked makes every byte of the partition durable now (its
// files, its shared entries, its directory) and acknowledges it: the
// durable end and the HWM are the end.
func (p *partition) syncAllLocked() error {
	l := p.l
	if p.dirDirty {
		if err := p.syncDir(); err != nil {
			return err
		}
		p.dirDirty = false
	}
	shared := false
	for _, s := range p.unsynced {
		if s.virt != nil {
			shared = shared || s.synced < s.size
			continue
		}
		cf, err := l.files.get(s.path, true)
		if err != nil {
			return fmt.Errorf("open %s for sync: %w", s.rel, err)
		}
		err = l.fdatasync(cf.f)
		l.files.release(cf)
		if err != nil {
			return fmt.Errorf("fdatasync %s: %w", s.rel, err)
		}
	}
	if shared {
		if err := l.shared.sync(); err != nil {
			return err
		}
	}
	for _, s := range p.unsynced {
		s.synced, s.covered = s.size, s.size
	}
	p.unsynced = nil
	p.jbuf, p.jbufSeg, p.jbufBad = p.jbuf[:0], nil, false
	act := p.active()
	p.durable, p.durableSeg, p.durablePos = p.next, act, act.size
	p.hwm, p.hwmSeg, p.hwmPos = p.next, act, act.size
	return nil
}

// cutLocked removes every batch from offset on: segments after si go,
// segment si is cut at byte pos. The active segment is then the cut one,
// or a new empty one at offset.
func (p *partition) cutLocked(si int, pos, offset int64) error {
	l := p.l
	var gone []*segment
	keep := p.segs[:si]
	cut := p.segs[si]
	if pos == 0 {
		gone = append(gone, cut)
		cut = nil
	} else {
		keep = append(keep, cut)
	}
	gone = append(gone, p.segs[si+1:]...)
	wasActive := cut != nil && cut == p.active()
	dirty := false
	for _, s := range gone {
		s.deleted = true
		if s.virt != nil {
			l.shared.release(s.sharedFiles())
			continue
		}
		l.files.forget(s.path)
		l.indexes.forget(s)
		for _, path := range []string{s.path, indexPath(s.path), timeIndexPath(s.path)} {
			if err := l.fs.Remove(path); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("remove %s: %w", path, err)
			}
		}
		dirty = true
	}
	if cut != nil {
		if err := p.cutSegmentLocked(cut, pos, offset); err != nil {
			return err
		}
		dirty = dirty || cut.virt == nil && cut.sealed
	}
	p.segs = keep
	if !wasActive {
		virt := l.shared.usable() && p.t.config().Fsync == FsyncAlways
		var ns *segment
		if virt {
			ns = newVirtualSegment(p.rel, offset, sharedKey{p.t.id, p.id})
		} else {
			ns = newSegment(p.dir, p.rel, offset)
			cf, err := l.files.get(ns.path, true)
			if err != nil {
				return fmt.Errorf("create segment %d: %w", offset, err)
			}
			l.files.release(cf)
			dirty = true
		}
		p.segs = append(p.segs, ns)
	}
	if dirty {
		if err := p.syncDir(); err != nil {
			return err
		}
	}
	act := p.active()
	p.next = offset
	p.hwm, p.hwmSeg, p.hwmPos = offset, act, act.size
	p.durable, p.durableSeg, p.durablePos = offset, act, act.size
	p.unsynced = nil
	p.producers.Reset() // idempotence state past the cut is gone; producers start over
	p.txns.reset()      // rebuilt from what is left at the next query
	p.smallCommits, p.largeCommits = 0, 0
	lost := p.lost[:0:0]
	for _, g := range p.lost {
		if g.from < offset {
			g.to = min(g.to, offset)
			lost = append(lost, g)
		}
	}
	p.lost = lost
	return nil
}

// cutSegmentLocked cuts seg at byte pos (offset starts there), durably.
func (p *partition) cutSegmentLocked(seg *segment, pos, offset int64) error {
	l := p.l
	if seg.virt == nil {
		cf, err := l.files.get(seg.path, true)
		if err != nil {
			return fmt.Errorf("open %s: %w", seg.rel, err)
		}
		err = cf.f.Truncate(pos)
		if err == nil {
			err = l.fdatasync(cf.f)
		}
		l.files.release(cf)
		if err != nil {
			return fmt.Errorf("truncate %s at %d: %w", seg.rel, pos, err)
		}
		if seg.sealed {
			// Its index files name batches that are gone; rebuilt when
			// needed.
			for _, path := range []string{indexPath(seg.path), timeIndexPath(seg.path)} {
				if err := l.fs.Remove(path); err != nil && !os.IsNotExist(err) {
					return fmt.Errorf("remove %s: %w", path, err)
				}
			}
		}
	} else {
		key := seg.virt.key
		seg.mu.Lock()
		runs := seg.virt.runs
		i := 0
		for i < len(runs) && runs[i].vpos+runs[i].n <= pos {
			i++
		}
		var release []*sharedFile
		if i < len(runs) {
			r := &runs[i]
			if r.vpos >= pos {
				release = runFiles(release, runs[i:])
				runs = runs[:i]
			} else {
				// The run's extents, from its file's extent index if
				// needed (not under seg.mu: the index may be read, under
				// the shared log's lock; p.mu keeps the runs as they are).
				rc := *r
				seg.mu.Unlock()
				ext, err := l.shared.extents(key, &rc)
				seg.mu.Lock()
				if err != nil {
					seg.mu.Unlock()
					return err
				}
				var kept []extent
				for _, e := range ext {
					if e.vpos >= pos {
						break
					}
					e.n = min(e.n, pos-e.vpos)
					kept = append(kept, e)
				}
				r.ext, r.sec = kept, secLoc{}
				r.n, r.next = pos-r.vpos, offset
				release = runFiles(release, runs[i+1:])
				runs = runs[:i+1]
			}
		}
		seg.virt.runs = runs
		seg.mu.Unlock()
		l.shared.release(release)
	}
	seg.mu.Lock()
	seg.truncateIndexLocked(pos)
	seg.bad = cutBad(seg.bad, pos)
	seg.mu.Unlock()
	seg.size, seg.next = pos, offset
	seg.synced, seg.covered = pos, pos
	return nil
}

func cutBad(bad []badRange, pos int64) []badRange {
	var out []badRange
	for _, b := range bad {
		if b.pos < pos {
			b.end = min(b.end, pos)
			out = append(out, b)
		}
	}
	return out
}

// truncatePoint prepares shared storage for a truncation of partition
// key to offset: the active file's seal names offset as the partition's
// end, a new file takes later entries, and the sequence returned is the
// newest file that may hold entries to void.
func (s *sharedLog) truncatePoint(key sharedKey, offset int64) (uint64, error) {
	s.mu.Lock()
	var seq uint64
	for q := range s.files {
		seq = max(seq, q)
	}
	if _, ok := s.ends[key]; ok {
		s.ends[key] = offset
	}
	usable := s.broken == nil
	if usable {
		if err := s.rollLocked(); err != nil {
			s.mu.Unlock()
			return 0, err
		}
	}
	s.mu.Unlock()
	if usable {
		// The rolled file wholly durable: a checkpoint from now on names
		// a later file.
		if err := s.sync(); err != nil {
			return 0, err
		}
	}
	return seq, nil
}

// Recovery of truncations (openPartition).

// pendingTruncation is the last truncation when it is not complete.
func (h *epochHistory) pendingTruncation() (truncMark, bool) {
	if n := len(h.marks); n > 0 && !h.marks[n-1].done {
		return h.marks[n-1], true
	}
	return truncMark{}, false
}

// finishTruncation completes at open a truncation that was not complete:
// segment files after offset go, the one holding offset is cut there (one
// starting at offset is emptied and kept: the partition goes on there).
func (p *partition) finishTruncation(offset int64) error {
	l := p.l
	keep := p.segs[:0]
	dirty := false
	for _, s := range p.segs {
		if s.base <= offset {
			keep = append(keep, s)
			continue
		}
		for _, path := range []string{s.path, indexPath(s.path), timeIndexPath(s.path)} {
			if err := l.fs.Remove(path); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("log: remove %s: %w", path, err)
			}
		}
		dirty = true
	}
	p.segs = keep
	if n := len(keep); n > 0 && keep[n-1].size > 0 {
		s := keep[n-1]
		cut := int64(-1)
		if s.base == offset {
			cut = 0
		} else {
			f, err := l.fs.Open(s.path)
			if err != nil {
				return fmt.Errorf("log: open %s: %w", s.rel, err)
			}
			sc := newScanner(f, 0, s.size, false)
			for {
				h, _, pos, err := sc.next()
				if err != nil {
					break // offset lies past this file's batches (in shared storage, or torn)
				}
				if h.BaseOffset >= offset {
					cut = pos
					break
				}
			}
			f.Close()
		}
		if cut >= 0 {
			f, err := l.fs.OpenReadWrite(s.path)
			if err == nil {
				if err = f.Truncate(cut); err == nil {
					err = f.Sync()
				}
				f.Close()
			}
			if err != nil {
				return fmt.Errorf("log: truncate %s at %d: %w", s.rel, cut, err)
			}
			s.size = cut
			s.synced, s.covered = cut, cut
			for _, path := range []string{indexPath(s.path), timeIndexPath(s.path)} {
				if err := l.fs.Remove(path); err != nil && !os.IsNotExist(err) {
					return fmt.Errorf("log: remove %s: %w", path, err)
				}
			}
			dirty = true
		}
	}
	if dirty {
		if err := vfs.SyncDir(l.fs, p.dir); err != nil {
			return fmt.Errorf("log: sync %s: %w", p.rel, err)
		}
	}
	p.l.logger.Warn("log: finished a truncation interrupted by a crash", "topic", p.t.name, "partition", p.id, "offset", offset)
	return nil
}

// voidTruncated drops from the runs found in shared files what
// truncations voided: entries at or after a truncation's offset in files
// up to its sequence. A run cut inside keeps its extents in memory.
func (p *partition) voidTruncated(key sharedKey, runs []foundRun) ([]foundRun, error) {
	marks := p.epochs.marks
	if len(marks) == 0 {
		return runs, nil
	}
	var out []foundRun
	for _, r := range runs {
		cut := int64(math.MaxInt64)
		for _, m := range marks {
			if r.file.seq <= m.sharedSeq {
				cut = min(cut, m.offset)
			}
		}
		if r.next <= cut {
			out = append(out, r)
			continue
		}
		if r.base >= cut {
			continue
		}
		if err := p.l.shared.expand(key, &r); err != nil {
			return nil, err
		}
		var ents []sharedEnt
		for _, e := range r.ents {
			switch {
			case e.next <= cut:
				ents = append(ents, e)
			case e.base < cut:
				n, err := p.l.shared.entryBytesBefore(r.file, e, cut)
				if err != nil {
					return nil, err
				}
				e.n, e.next = n, cut
				ents = append(ents, e)
			}
		}
		if len(ents) == 0 {
			continue
		}
		nr := foundRun{file: r.file, base: ents[0].base, next: ents[len(ents)-1].next, maxTs: r.maxTs, ents: ents, entries: len(ents)}
		for _, e := range ents {
			nr.n += e.n
		}
		out = append(out, nr)
	}
	return out, nil
}

// entryBytesBefore is how many payload bytes of entry e of sf hold
// batches before offset (which must start a batch of it).
func (s *sharedLog) entryBytesBefore(sf *sharedFile, e sharedEnt, offset int64) (int64, error) {
	cf, err := s.l.files.get(sf.path, false)
	if err != nil {
		return 0, fmt.Errorf("log: open %s: %w", sf.rel, err)
	}
	defer s.l.files.release(cf)
	buf := make([]byte, e.n)
	if err := readAtFull(cf.f, buf, e.fpos); err != nil {
		return 0, fmt.Errorf("log: read %s at %d: %w", sf.rel, e.fpos, err)
	}
	for off := 0; off+batch.HeaderSize <= len(buf); {
		h, err := batch.ParseHeader(buf[off:])
		if err != nil {
			break
		}
		if h.BaseOffset == offset {
			return int64(off), nil
		}
		off += h.Size()
	}
	return 0, fmt.Errorf("log: %s: no batch starts at offset %d in the entry at %d", sf.rel, offset, e.fpos)
}

// sealedEnd is the end a partition's shared seal entries name, without
// what truncations voided: seals in files up to the last truncation's
// sequence count up to its offset, the newest seal after it in full.
func (s *sharedLog) sealedEnd(key sharedKey, marks []truncMark) int64 {
	end := s.sealed[key]
	if n := len(marks); n > 0 {
		m := marks[n-1]
		end = min(end, m.offset)
		if ns, ok := s.newestSeal[key]; ok && ns.seq > m.sharedSeq {
			end = max(end, ns.next)
		}
	}
	return end
}

// sealAt is a seal's end of a partition in shared file seq.
type sealAt struct {
	seq  uint64
	next int64
}

// noteSeal records a seal end found at open.
func (s *sharedLog) noteSeal(key sharedKey, seq uint64, next int64) {
	s.sealed[key] = max(s.sealed[key], next)
	if cur, ok := s.newestSeal[key]; !ok || seq >= cur.seq {
		s.newestSeal[key] = sealAt{seq, next}
	}
}

// pruneMarks forgets truncations whose shared files are all gone (no
// file up to their sequence exists), and completed ones without shared
// storage.
func (p *partition) pruneMarks() {
	h := &p.epochs
	oldest := uint64(math.MaxUint64)
	if s := p.l.shared; s != nil {
		for q := range s.files {
			oldest = min(oldest, q)
		}
	}
	keep := h.marks[:0:0]
	for i, m := range h.marks {
		if i == len(h.marks)-1 && !m.done || oldest <= m.sharedSeq {
			keep = append(keep, m)
		}
	}
	if len(keep) != len(h.marks) {
		h.marks = keep
		h.size = 0 // rewritten at the next change
	}
}

// skipPast makes every shared file created from now on have a sequence
// above seq (a truncation voids entries in files up to its sequence).
func (s *sharedLog) skipPast(seq uint64) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next > seq {
		return nil
	}
	s.next = seq + 1
	if s.broken != nil {
		return nil
	}
	return s.rollLocked()
}

var _ Truncater = (*logImpl)(nil)

// truncatedSharedSeq is the largest shared sequence a kept truncation
// names (0: none).
func (l *logImpl) truncatedSharedSeq() uint64 {
	var seq uint64
	for _, t := range l.topicList() {
		for _, p := range t.partitions() {
			p.mu.Lock()
			for _, m := range p.epochs.marks {
				seq = max(seq, m.sharedSeq)
			}
			p.mu.Unlock()
		}
	}
	return seq
}
