package log

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/vfs"
)

// openPartition opens (creating if needed) one partition directory and
// recovers it: segments before the checkpointed durable position are
// trusted as they are (indexes load lazily); from there on every batch is
// validated (CRC, offsets), damage is recorded, and a torn tail of the last
// segment is truncated.
func (l *logImpl) openPartition(t *topic, id int32, ck *checkpoint) (*partition, error) {
	dir := partitionDir(l.dir, t.name, id)
	rel := filepath.Join(t.name, strconv.Itoa(int(id)))
	p := &partition{l: l, t: t, id: id, dir: dir, rel: rel}
	if err := mkdirAllSynced(l.fs, dir); err != nil {
		return nil, fmt.Errorf("log: create %s: %w", rel, err)
	}
	names, err := l.fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("log: list %s: %w", rel, err)
	}
	if p.epochs, _, err = loadEpochFile(l.fs, dir); err != nil {
		// Rebuilt from the batches once they are known (reconcileEpochs).
		l.logger.Warn("log: leader-epoch history unreadable; rebuilding it from the batches", "topic", t.name, "partition", id, "err", err)
		if errors.Is(err, errBadEpochFile) {
			l.addDamage(Damage{File: filepath.Join(rel, epochFileName), Offset: -1, Reason: err.Error()})
		}
	}
	p.repaired = repairedRanges(names)
	p.txnMarked = slices.Contains(names, txnMarkFile)
	if err := p.listSegments(names); err != nil {
		return nil, err
	}
	e, hasCk := ck.get(t.name, t.id, id)
	ck0 := e
	key := sharedKey{t.id, id}
	exts := l.shared.take(t.id, id)
	if hasCk && e.start > 0 {
		if exts, err = l.shared.runsFrom(key, exts, e.start); err != nil {
			return nil, err
		}
	}
	if m, ok := p.epochs.pendingTruncation(); ok {
		// A truncation the crash interrupted: finish it. The checkpoint
		// may predate it: every batch is validated.
		if err := p.finishTruncation(m.offset); err != nil {
			return nil, err
		}
		p.epochs.marks[len(p.epochs.marks)-1].done = true
		p.epochs.size = 0
		hasCk = false
	}
	if exts, err = p.voidTruncated(key, exts); err != nil {
		return nil, err
	}
	if exts, err = l.shared.splitAt(key, exts, p.segs); err != nil {
		return nil, err
	}
	if len(exts) > 0 {
		if err := p.removeReplacedEmpty(exts[len(exts)-1].next); err != nil {
			return nil, err
		}
	}
	switch {
	case len(p.segs) == 0 && len(exts) > 0:
		// Only shared storage.
	case len(p.segs) == 0:
		if err := p.createFirstSegment(); err != nil {
			return nil, err
		}
	default:
		if hasCk, err = p.recoverFiles(e, hasCk, exts); err != nil {
			return nil, err
		}
	}
	if len(exts) > 0 {
		if err := p.addSharedRuns(exts); err != nil {
			return nil, err
		}
	}
	if l.shared != nil {
		p.markLostShared(key, hasCk, ck0)
	}
	act := p.active()
	if act.virt != nil {
		// Idempotence state from the batch headers of the active
		// segment's last runs (up to ProducerStateScanBytes: a trickle
		// partition's active segment may span a thousand shared files;
		// a producer whose last batch is older is treated as new: its
		// retries after a restart are the batches it sent last).
		from := int64(0)
		for _, run := range act.virt.runs {
			if act.size-run.vpos > l.opts.ProducerStateScanBytes {
				from = run.vpos + run.n
			}
		}
		if n := len(act.virt.runs); n > 0 {
			from = min(from, act.virt.runs[n-1].vpos)
		}
		r := &vreader{l: l, seg: act}
		sc := newScanner(r, from, act.size, false)
		for {
			h, _, _, err := sc.next()
			if err != nil {
				break
			}
			p.producers.Record(&h, h.BaseOffset)
			l.notePID(h.ProducerID)
		}
	}
	act.sealed = false
	act.mu.Lock()
	act.sealedIdx = false
	act.mu.Unlock()
	for _, s := range p.segs[:len(p.segs)-1] {
		if s.indexed {
			l.indexes.touch(s) // indexed by the recovery scan
		}
	}
	p.next = act.next
	p.hwm, p.hwmSeg, p.hwmPos = p.next, act, act.size
	p.durable, p.durableSeg, p.durablePos = p.next, act, act.size
	p.pruneMarks()
	if err := p.reconcileEpochs(); err != nil {
		return nil, err
	}
	return p, nil
}

// listSegments adds a segment for each segment file among names (sealed
// and durable as far as the file goes until recovery says otherwise) and
// removes leftover temporary files.
func (p *partition) listSegments(names []string) error {
	l := p.l
	for _, n := range names {
		if strings.HasSuffix(n, ".tmp") {
			l.fs.Remove(filepath.Join(p.dir, n))
			continue
		}
		base, ok := parseSegmentName(n)
		if !ok {
			continue
		}
		seg := newSegment(p.dir, p.rel, base)
		st, err := l.fs.Stat(seg.path)
		if err != nil {
			return fmt.Errorf("log: stat %s: %w", seg.rel, err)
		}
		seg.size = st.Size()
		seg.synced, seg.covered = seg.size, seg.size
		seg.sealed = true
		seg.indexed = false
		seg.sealedIdx = true
		p.segs = append(p.segs, seg)
	}
	return nil
}

// runsFrom drops the shared runs of key before the log start: those
// batches were deleted by retention, while their shared files may live on
// for other partitions. A run that straddles start keeps its entries from
// there.
func (s *sharedLog) runsFrom(key sharedKey, exts []foundRun, start int64) ([]foundRun, error) {
	i := 0
	for i < len(exts) && exts[i].next <= start {
		i++
	}
	exts = exts[i:]
	if len(exts) == 0 || exts[0].base >= start {
		return exts, nil
	}
	if err := s.expand(key, &exts[0]); err != nil {
		return nil, err
	}
	r := &exts[0]
	r.ents = slices.DeleteFunc(r.ents, func(x sharedEnt) bool { return x.next <= start })
	if len(r.ents) == 0 {
		return exts[1:], nil // damaged (reported by expand)
	}
	r.base, r.n = r.ents[0].base, 0
	for _, x := range r.ents {
		r.n += x.n
	}
	return exts, nil
}

// removeReplacedEmpty removes the empty segment files below end, the end
// of the partition's shared storage: each was replaced by shared storage
// (its removal may not have survived a crash). Not synced: should the
// empty file come back after a power cut, the next open removes it again
// (a directory fsync per partition made opens of 1,000 partitions take
// seconds).
func (p *partition) removeReplacedEmpty(end int64) error {
	keep := p.segs[:0]
	for _, s := range p.segs {
		if s.size == 0 && s.base < end {
			if err := p.l.fs.Remove(s.path); err != nil {
				return fmt.Errorf("log: remove %s: %w", s.rel, err)
			}
			continue
		}
		keep = append(keep, s)
	}
	p.segs = keep
	return nil
}

// createFirstSegment creates the first segment file of a partition that
// has none.
func (p *partition) createFirstSegment() error {
	l := p.l
	seg := newSegment(p.dir, p.rel, 0)
	cf, err := l.files.get(seg.path, true)
	if err != nil {
		return fmt.Errorf("log: create %s: %w", seg.rel, err)
	}
	l.files.release(cf)
	if err := vfs.SyncDir(l.fs, p.dir); err != nil {
		return fmt.Errorf("log: sync %s: %w", p.rel, err)
	}
	p.segs = []*segment{seg}
	return nil
}

// recoverFiles chains the segment files (each ends where the next file,
// or shared data after it, starts) and recovers what the checkpoint e does
// not cover. It reports whether a checkpointed durable position still
// applies (not when the durable end may lie in shared storage).
func (p *partition) recoverFiles(e ckptEntry, hasCk bool, exts []foundRun) (bool, error) {
	for i := 0; i+1 < len(p.segs); i++ {
		p.segs[i].next = p.segs[i+1].base
	}
	// A segment file followed by shared data ends where that starts.
	for _, s := range p.segs[:len(p.segs)-1] {
		j := sort.Search(len(exts), func(j int) bool { return exts[j].base > s.base })
		if j < len(exts) && exts[j].base < s.next {
			s.next = exts[j].base
		}
	}
	lastFile := p.segs[len(p.segs)-1]
	lastIsFile := len(exts) == 0 || lastFile.base >= exts[len(exts)-1].next
	if hasCk && !lastIsFile || hasCk && len(exts) > 0 && e.segBase > lastFile.base {
		// The durable end may lie in shared storage: every file
		// segment before it is durable.
		hasCk = false
		for _, s := range p.segs {
			if s.base < e.segBase {
				e, hasCk = ckptEntry{segBase: s.base, pos: s.size, next: s.base}, true
			}
		}
	}
	var covered [][2]int64
	for _, x := range exts {
		covered = append(covered, [2]int64{x.base, x.next})
	}
	return hasCk, p.recover(e, hasCk, lastIsFile, covered)
}

// markLostShared records the offsets lost with damaged shared entries:
// the checkpointed durable end (ck0, when hasCk), or a seal entry, lies
// past the partition's data. Their offsets are never reused: the
// partition continues after them.
func (p *partition) markLostShared(key sharedKey, hasCk bool, ck0 ckptEntry) {
	end := p.l.shared.sealedEnd(key, p.epochs.marks)
	if hasCk && ck0.next > end {
		end = ck0.next
	}
	if last := p.segs[len(p.segs)-1]; end > last.next {
		file, at := sharedDirName, int64(-1)
		if last.size > 0 {
			file, at = p.l.damageLocation(last, last.size-1)
		} else {
			p.segs = p.segs[:len(p.segs)-1] // an empty segment: replaced
		}
		p.lost = append(p.lost, lostRange{from: last.next, to: end, file: file, at: at})
		p.l.addDamage(Damage{File: file, Offset: at, Topic: p.t.name, Partition: p.id, From: last.next, To: end, Repaired: p.isRepaired(last.next, end),
			Reason: fmt.Sprintf("%s/%d: offsets %d-%d are lost (damaged shared entries)", p.t.name, p.id, last.next, end-1)})
		p.segs = append(p.segs, newVirtualSegment(p.rel, end, key))
	}
}

// recover scans the part of the partition not known to be durable.
func (p *partition) recover(e ckptEntry, ok, lastIsFile bool, covered [][2]int64) error {
	l := p.l
	si, from, expect := 0, int64(0), p.segs[0].base
	if ok {
		for i, s := range p.segs {
			if s.base == e.segBase && s.size >= e.pos && e.next >= s.base {
				si, from, expect = i, e.pos, e.next
				break
			}
		}
	}
	if si == 0 && from == 0 {
		expect = p.segs[0].base
	}
	for i := si; i < len(p.segs); i++ {
		seg := p.segs[i]
		last := i == len(p.segs)-1 && lastIsFile
		f := int64(0)
		if i == si {
			f = from
		}
		if i > si {
			if expect < seg.base && !coveredBy(covered, expect, seg.base) {
				prev := p.segs[i-1]
				l.addDamage(Damage{File: prev.rel, Offset: prev.size, Topic: p.t.name, Partition: p.id, From: expect, To: seg.base, Repaired: p.isRepaired(expect, seg.base),
					Reason: fmt.Sprintf("segment ends at offset %d but the next one starts at %d: offsets %d-%d are lost", expect, seg.base, expect, seg.base-1)})
			}
			expect = seg.base
		}
		next, err := p.scanSegment(seg, f, i == si, last)
		if err != nil {
			return err
		}
		expect = next
	}
	// The active segment keeps its producers' state for idempotence.
	return nil
}

// scanSegment indexes seg, validating every batch from verifyFrom on (the
// bytes before it are known durable and only their headers are walked when
// hop is set). It returns the offset after the last good batch.
func (p *partition) scanSegment(seg *segment, verifyFrom int64, hop, last bool) (int64, error) {
	l := p.l
	cf, err := l.files.get(seg.path, last)
	if err != nil {
		return 0, fmt.Errorf("log: open %s: %w", seg.rel, err)
	}
	defer l.files.release(cf)
	if !hop {
		verifyFrom = 0
	}
	size := seg.size
	seg.mu.Lock()
	defer seg.mu.Unlock()
	seg.index, seg.lastIndexed, seg.maxTs, seg.bad = nil, -1, -1, nil
	expect := seg.base
	sc := newScanner(cf.f, 0, size, verifyFrom == 0)
	verified := false
	for {
		sc.verify = sc.pos >= verifyFrom
		if sc.verify && sc.pos < size {
			verified = true
		}
		h, _, pos, err := sc.next()
		if err == io.EOF {
			break
		}
		var bad *errBadBatch
		if err != nil && !errors.As(err, &bad) {
			return 0, fmt.Errorf("log: read %s: %w", seg.rel, err)
		}
		if err == nil && p.epochs.trusted {
			err = checkEpoch(p.epochs.entries, &h)
		}
		if err == nil && h.BaseOffset == expect {
			seg.addIndexLocked(&h, pos, l.opts.IndexIntervalBytes)
			if last {
				p.producers.Record(&h, h.BaseOffset)
				l.notePID(h.ProducerID)
			}
			expect = h.LastOffset() + 1
			continue
		}
		reason := "offset out of sequence"
		if err != nil {
			reason = err.Error()
		}
		if at := resync(cf.f, pos+1, size, expect, expect+1<<31); at >= 0 {
			// The batch at the resync point starts the next run.
			hh, _, _, _ := newScanner(cf.f, at, size, false).next()
			seg.addBadRangeLocked(l, pos, at, Damage{Reason: reason, Topic: p.t.name, Partition: p.id, From: expect, To: hh.BaseOffset, Repaired: p.isRepaired(expect, hh.BaseOffset)})
			sc = newScanner(cf.f, at, size, true)
			verifyFrom = 0
			seg.lastIndexed = -1
			expect = hh.BaseOffset
			continue
		}
		if !last || pos < verifyFrom {
			// Damage in a sealed segment or in data known durable: keep
			// the bytes (for inspection), never serve them.
			seg.addBadRangeLocked(l, pos, size, Damage{Reason: reason, Topic: p.t.name, Partition: p.id, From: expect, To: -1})
			break
		}
		// A torn tail: expected after power loss.
		if terr := cf.f.Truncate(pos); terr != nil {
			return 0, fmt.Errorf("log: truncate torn tail of %s at %d: %w", seg.rel, pos, terr)
		}
		l.stats.tornBytes.Add(uint64(size - pos))
		l.logger.Warn("log: truncated torn tail", "topic", p.t.name, "partition", p.id, "file", seg.rel, "offset", pos, "bytes", size-pos)
		size = pos
		verified = true
		break
	}
	seg.size = size
	seg.synced, seg.covered = size, size
	seg.next = expect
	seg.indexed = true
	if verified && size > 0 {
		// What was scanned may still be only in the page cache (a killed
		// process, not a power loss): make it durable before serving it.
		if err := cf.f.Sync(); err != nil && cf.writable {
			return 0, fmt.Errorf("log: sync %s after recovery: %w", seg.rel, err)
		}
	}
	if last && len(seg.bad) > 0 {
		// Never append after damage: start a fresh segment.
		ns := newSegment(p.dir, p.rel, expect)
		if ns.base == seg.base {
			return expect, nil
		}
		ncf, err := l.files.get(ns.path, true)
		if err != nil {
			return 0, fmt.Errorf("log: create %s: %w", ns.rel, err)
		}
		l.files.release(ncf)
		if err := vfs.SyncDir(l.fs, p.dir); err != nil {
			return 0, err
		}
		seg.sealed = true
		p.segs = append(p.segs, ns)
	}
	return expect, nil
}

// splitAt splits runs found at open in which a segment file starts (the
// partition wrote its own files in between): into runs without gaps, from
// their entries.
func (s *sharedLog) splitAt(key sharedKey, runs []foundRun, files []*segment) ([]foundRun, error) {
	var out []foundRun
	for _, r := range runs {
		inside := false
		for _, f := range files {
			inside = inside || f.base > r.base && f.base < r.next
		}
		if !inside {
			out = append(out, r)
			continue
		}
		if err := s.expand(key, &r); err != nil {
			return nil, err
		}
		var cur *foundRun
		for _, e := range r.ents {
			if cur == nil || e.base != cur.next {
				out = append(out, foundRun{file: r.file, base: e.base, next: e.base, maxTs: r.maxTs, sec: r.sec})
				cur = &out[len(out)-1]
			}
			cur.ents = append(cur.ents, e)
			cur.next, cur.n = e.next, cur.n+e.n
			cur.entries++
		}
	}
	return out, nil
}

// addSharedRuns builds the partition's virtual segments from the runs
// found in shared files (in file order) and merges them with its segment
// files by offset. A virtual segment ends where a segment file starts, at
// a gap (damage, reported), or at the roll size. A run is split into its
// entries (read from the extent index) only where a segment file starts
// inside it or an earlier segment overlaps it.
func (p *partition) addSharedRuns(runs []foundRun) error {
	l := p.l
	key := sharedKey{p.t.id, p.id}
	files := p.segs
	segBytes := l.capUnit(p.t.config().SegmentBytes)
	var out []*segment
	var cur *segment
	fi := 0
	var add func(r foundRun) error
	add = func(r foundRun) error {
		for fi < len(files) && files[fi].base <= r.base {
			out = append(out, files[fi])
			fi++
			cur = nil
		}
		heldTo := int64(-1)
		if len(out) > 0 {
			heldTo = out[len(out)-1].next
		}
		if r.next <= heldTo {
			return nil // already held by an earlier segment
		}
		single := r.entries == 1 || len(r.ents) == 1
		if single && r.base < heldTo {
			return nil // as above (an entry is never split)
		}
		if !single && (r.base < heldTo || fi < len(files) && files[fi].base < r.next) {
			if err := l.shared.expand(key, &r); err != nil {
				return err
			}
			for _, e := range r.ents {
				if err := add(foundRun{file: r.file, base: e.base, next: e.next, n: e.n, maxTs: e.maxTs, sec: r.sec, ents: []sharedEnt{e}, entries: 1}); err != nil {
					return err
				}
			}
			return nil
		}
		return p.addRun(&cur, &out, r, segBytes)
	}
	for _, r := range runs {
		if err := add(r); err != nil {
			return err
		}
	}
	out = append(out, files[fi:]...)
	for i := 1; i < len(out); i++ {
		if prev := out[i-1]; prev.next < out[i].base {
			file, at := l.damageLocation(prev, prev.size-1)
			p.lost = append(p.lost, lostRange{from: prev.next, to: out[i].base, file: file, at: at})
			l.addDamage(Damage{File: file, Offset: at, Topic: p.t.name, Partition: p.id, From: prev.next, To: out[i].base, Repaired: p.isRepaired(prev.next, out[i].base),
				Reason: fmt.Sprintf("%s/%d: offsets %d-%d are lost (after %s)", p.t.name, p.id, prev.next, out[i].base-1, prev.rel)})
		}
	}
	p.segs = out
	return nil
}

// addRun appends run r to the virtual segment *cur, or to a new one.
func (p *partition) addRun(cur **segment, out *[]*segment, r foundRun, segBytes int64) error {
	l := p.l
	c := *cur
	if c != nil && (c.next != r.base || c.size+r.n > segBytes || r.next-c.base >= 1<<32-1) {
		c = nil
	}
	if c == nil {
		c = newVirtualSegment(p.rel, r.base, sharedKey{p.t.id, p.id})
		c.sealed = true
		*out = append(*out, c)
		*cur = c
	}
	v := c.virt
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(v.runs); n == 0 || v.runs[n-1].file != r.file || (v.runs[n-1].sec.n == 0) != (r.sec.n == 0) {
		v.runs = append(v.runs, vrun{file: r.file, vpos: c.size, base: r.base, next: r.base, sec: r.sec})
		l.shared.addRef(r.file)
	}
	run := &v.runs[len(v.runs)-1]
	if run.sec.n == 0 {
		// No extent index for this file: the extents stay in memory.
		vpos := c.size
		for _, e := range r.ents {
			run.ext = append(run.ext, extent{vpos: vpos, n: e.n, fpos: e.fpos})
			vpos += e.n
		}
	}
	c.addIndexLocked(&batch.Header{BaseOffset: r.base, MaxTimestamp: r.maxTs}, c.size, l.opts.IndexIntervalBytes*virtualIndexSpacing)
	run.n += r.n
	run.next = r.next
	c.size += r.n
	c.synced, c.covered = c.size, c.size
	c.next = r.next
	return nil
}
