package log

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/vfs"
)

// Check implements Log: it verifies every visible batch (CRC, offset
// sequence), the segment names and well-formed index files. It changes
// nothing; damage it finds is also added to Stats().Damaged.
func (l *logImpl) Check() []Damage {
	var out []Damage
	if l.shared != nil {
		out = append(out, l.shared.check()...)
	}
	for _, t := range l.topicList() {
		for _, p := range t.partitions() {
			p.cleanMu.RLock() // no cleaned segment is swapped in while it is checked
			p.mu.Lock()
			limits := map[string]int64{}
			var virt []*segment
			var vlimits []int64
			for _, s := range p.segs {
				if s.virt != nil {
					virt = append(virt, s)
					vlimits = append(vlimits, p.limitLocked(s))
					continue
				}
				limits[s.path] = p.limitLocked(s)
			}
			var ranges [][2]int64
			for _, s := range virt {
				ranges = append(ranges, [2]int64{s.base, s.next})
			}
			for _, g := range p.lost {
				ranges = append(ranges, [2]int64{g.from, g.to})
			}
			epochs := p.epochSnapshotLocked()
			p.mu.Unlock()
			out = append(out, checkPartitionCovered(l.fs, l.dir, p.rel, func(path string, size int64) (int64, bool) {
				lim, ok := limits[path]
				if !ok {
					return 0, false // created or deleted since the snapshot
				}
				return lim, true
			}, "", ckptEntry{}, false, ranges)...)
			for i, s := range virt {
				ds := l.checkVirtual(s, vlimits[i], epochs)
				if len(ds) > 0 {
					// Retention or drop-oldest deleted the segment while
					// it was checked (marked before its shared files can
					// go): what could not be read is gone, not damaged.
					p.mu.Lock()
					gone := s.deleted
					p.mu.Unlock()
					if gone {
						continue
					}
				}
				for _, d := range ds {
					d.Repaired = p.isRepaired(d.From, d.To)
					out = append(out, d)
				}
			}
			out = append(out, p.checkEpochStarts(epochs)...)
			p.cleanMu.RUnlock()
		}
	}
	for _, d := range out {
		l.addDamage(d)
	}
	return out
}

// CheckDir verifies a data directory offline, read-only (the log must not
// be open): every batch of every segment (CRC-32C, offsets in sequence,
// file named by its first offset) and well-formed index files. Bad bytes
// at the end of a partition's last segment that lie past the recovery
// checkpoint are a torn tail (expected after power loss, truncated at the
// next open), not damage. A non-empty result means damage: runnel check
// exits 1.
func CheckDir(dir string) ([]Damage, error) {
	return CheckDirFS(vfs.Default, dir)
}

// CheckDirFS is CheckDir on a given file system.
func CheckDirFS(fs vfs.FS, dir string) ([]Damage, error) {
	if _, err := fs.Stat(dir); err != nil {
		return nil, err
	}
	if _, err := checkDataFormat(fs, dir, DataFormat); err != nil {
		return nil, err
	}
	ck, err := readCheckpoint(fs, dir)
	if err != nil {
		ck = nil
	}
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	// Shared files: bad bytes past the checkpointed shared end with no
	// valid entry after them are a torn tail.
	out, ranges := checkSharedFiles(fs, dir, func(_ uint64, n int64) (int64, bool) { return n, true }, func(seq uint64, pos int64) bool {
		return ck == nil || seq > ck.sharedSeq || seq == ck.sharedSeq && pos >= ck.sharedPos
	})
	ids := map[string]uint64{}
	for _, tn := range names {
		if !ValidTopicName(tn) {
			continue
		}
		if st, err := fs.Stat(filepath.Join(dir, tn)); err != nil || !st.IsDir() {
			continue
		}
		parts, err := fs.List(filepath.Join(dir, tn))
		if err != nil {
			return out, err
		}
		for _, pn := range parts {
			id, err := strconv.Atoi(pn)
			if err != nil || strconv.Itoa(id) != pn {
				continue
			}
			rel := filepath.Join(tn, pn)
			e, hasCk := ck.get(tn, topicIDOnDisk(fs, dir, tn, ids), int32(id))
			var lastPath string
			if segs, _ := fs.List(filepath.Join(dir, rel)); len(segs) > 0 {
				for _, n := range segs {
					if _, ok := parseSegmentName(n); ok {
						lastPath = filepath.Join(dir, rel, n)
					}
				}
			}
			covered := ranges[sharedKey{topicIDOnDisk(fs, dir, tn, ids), int32(id)}]
			out = append(out, checkPartitionCovered(fs, dir, rel, func(path string, size int64) (int64, bool) {
				return size, true
			}, lastPath, e, hasCk, covered)...)
		}
	}
	return out, nil
}

func checkPartition(fs vfs.FS, dataDir, rel string, limit func(path string, size int64) (int64, bool)) []Damage {
	return checkPartitionTail(fs, dataDir, rel, limit, "", ckptEntry{}, false)
}

func checkPartitionTail(fs vfs.FS, dataDir, rel string, limit func(string, int64) (int64, bool), lastPath string, ck ckptEntry, hasCk bool) []Damage {
	return checkPartitionCovered(fs, dataDir, rel, limit, lastPath, ck, hasCk, nil)
}

// coveredBy reports whether offsets [from, to) lie in the ranges (held by
// shared storage, or already known lost).
func coveredBy(ranges [][2]int64, from, to int64) bool {
	for from < to {
		moved := false
		for _, r := range ranges {
			if r[0] <= from && from < r[1] {
				from, moved = r[1], true
			}
		}
		if !moved {
			return false
		}
	}
	return true
}

// checkVirtual verifies the batches of a virtual segment up to limit
// (and their leader epochs against epochs).
func (l *logImpl) checkVirtual(seg *segment, limit int64, epochs []epochEntry) []Damage {
	if limit <= 0 {
		return nil
	}
	topic, part := partitionOf(filepath.Dir(seg.rel))
	r, release, err := l.segReader(seg)
	if err != nil {
		return []Damage{{File: seg.rel, Reason: "cannot read: " + err.Error()}}
	}
	defer release()
	var out []Damage
	sc := newScanner(r, 0, limit, true)
	expect := seg.base
	for {
		h, _, pos, err := sc.next()
		if err == io.EOF {
			break
		}
		if err == nil && h.BaseOffset != expect {
			err = fmt.Errorf("base offset %d, expected %d", h.BaseOffset, expect)
		}
		if err == nil {
			err = checkEpoch(epochs, &h)
		}
		if err != nil {
			file, at := l.damageLocation(seg, pos)
			d := Damage{File: file, Offset: at, Reason: err.Error(), Topic: topic, Partition: part, From: expect, To: seg.next}
			// Shared entries are framed: the damage ends with its entry,
			// whose offsets the run or the extent index give (the batch
			// header after it may be damaged too: checked next).
			end, next := (&vreader{l: l, seg: seg}).entryRange(pos)
			if end <= pos || end >= limit || next <= expect || next >= seg.next {
				out = append(out, d)
				break
			}
			d.To = next
			out = append(out, d)
			sc = newScanner(r, end, limit, true)
			expect = next
			continue
		}
		expect = h.LastOffset() + 1
	}
	return out
}

// partitionOf splits a partition's relative directory "topic/N".
func partitionOf(rel string) (string, int32) {
	n, err := strconv.Atoi(filepath.Base(rel))
	if err != nil {
		return "", 0
	}
	return filepath.Dir(rel), int32(n)
}

// checkPartitionCovered checks one partition directory. When lastPath is
// set, invalid bytes at the end of that file past the checkpoint are a torn
// tail, not damage. Offsets between segment files that lie in covered
// (shared storage) are not missing.
func checkPartitionCovered(fs vfs.FS, dataDir, rel string, limit func(string, int64) (int64, bool), lastPath string, ck ckptEntry, hasCk bool, covered [][2]int64) []Damage {
	var out []Damage
	dir := filepath.Join(dataDir, rel)
	names, err := fs.List(dir)
	if err != nil {
		return []Damage{{File: rel, Reason: "cannot list partition: " + err.Error()}}
	}
	topic, part := partitionOf(rel)
	repaired := repairedRanges(names)
	covered = append(slices.Clip(covered), repaired...)
	// The leader-epoch history: every batch must carry the epoch it gives
	// the batch's offset (but from a truncation the next open completes
	// on), and every entry must start at a batch.
	hist, hasHist, herr := loadEpochFile(fs, dir)
	if herr != nil {
		out = append(out, Damage{File: filepath.Join(rel, epochFileName), Offset: -1, Reason: herr.Error()})
	}
	epochsUpTo := int64(math.MaxInt64)
	if m, ok := hist.pendingTruncation(); ok {
		epochsUpTo = m.offset
	}
	batchEpochs := map[int64]int32{}
	first, end := int64(-1), int64(-1)
	var bases []int64
	for _, n := range names {
		if b, ok := parseSegmentName(n); ok {
			bases = append(bases, b)
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	expect := int64(-1)
	for i, base := range bases {
		path := filepath.Join(dir, segmentName(base))
		srel := filepath.Join(rel, segmentName(base))
		f, err := fs.Open(path)
		if err != nil {
			if os.IsNotExist(err) {
				// Deleted by retention or drop-oldest meanwhile, which
				// delete the oldest segments first: those checked before
				// it are gone too, so no gap runs from them to the next.
				expect = -1
				continue
			}
			out = append(out, Damage{File: srel, Reason: "cannot open: " + err.Error()})
			continue
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			out = append(out, Damage{File: srel, Reason: "cannot stat: " + err.Error()})
			continue
		}
		size, ok := limit(path, st.Size())
		if !ok {
			f.Close()
			continue
		}
		if expect >= 0 && base > expect && i > 0 && !coveredBy(covered, expect, base) {
			out = append(out, Damage{File: filepath.Join(rel, segmentName(bases[i-1])), Offset: -1,
				Reason: fmt.Sprintf("offsets %d-%d missing between segments", expect, base-1), Topic: topic, Partition: part, From: expect, To: base})
		}
		if expect >= 0 && base < expect {
			out = append(out, Damage{File: srel, Reason: fmt.Sprintf("segment starts at %d, before the previous one ends (%d)", base, expect)})
		}
		expect = base
		var index []indexEntry
		positions := map[int64]int64{} // batch position → base offset
		sc := newScanner(f, 0, size, true)
		for {
			h, _, pos, err := sc.next()
			if err == io.EOF {
				break
			}
			if err == nil && h.BaseOffset != expect {
				err = &errBadBatch{pos, fmt.Errorf("base offset %d, expected %d", h.BaseOffset, expect)}
			}
			if err == nil && hasHist && h.BaseOffset < epochsUpTo {
				if eerr := checkEpoch(hist.entries, &h); eerr != nil {
					err = &errBadBatch{pos, eerr}
				}
			}
			if err != nil {
				var bad *errBadBatch
				if errors.As(err, &bad) && path == lastPath && (!hasCk || base > ck.segBase || base == ck.segBase && pos >= ck.pos) {
					if at := resync(f, pos+1, size, expect, expect+1<<31); at < 0 {
						break // torn tail, truncated at the next open
					}
				}
				d := Damage{File: srel, Offset: pos, Reason: err.Error(), Topic: topic, Partition: part, From: expect, To: -1}
				at := resync(f, pos+1, size, expect, expect+1<<31)
				if at < 0 {
					if i+1 < len(bases) {
						d.To = bases[i+1]
					}
					out = append(out, d)
					break
				}
				hh, _, _, _ := newScanner(f, at, size, false).next()
				d.To = hh.BaseOffset
				out = append(out, d)
				expect = hh.BaseOffset
				sc = newScanner(f, at, size, true)
				continue
			}
			positions[pos] = h.BaseOffset
			batchEpochs[h.BaseOffset] = h.LeaderEpoch
			if first < 0 {
				first = h.BaseOffset
			}
			expect = h.LastOffset() + 1
			end = expect
		}
		// Index files: absent or torn ones are rebuilt at open (fine);
		// well-formed ones must point at real batches.
		if idx, err := readIndexes(fs, path, base, st.Size()); err == nil {
			index = idx
			for _, e := range index {
				if off, ok := positions[int64(e.pos)]; int64(e.pos) < size && (!ok || off != base+int64(e.relOff)) {
					out = append(out, Damage{File: filepath.Join(rel, segmentName(base)[:20]+indexSuffix), Offset: int64(e.pos),
						Reason: "index entry does not point at its batch (index is rebuildable: delete it)"})
					break
				}
			}
		}
		f.Close()
	}
	if hasHist {
		for _, e := range hist.entries {
			if e.start < first || e.start >= min(end, epochsUpTo) || coveredBy(covered, e.start, e.start+1) {
				continue // before the log, past it, or in shared storage
			}
			if got, ok := batchEpochs[e.start]; !ok || got != e.epoch {
				out = append(out, Damage{File: filepath.Join(rel, epochFileName), Offset: -1,
					Reason: fmt.Sprintf("epoch %d starts at offset %d, where no batch of that epoch starts", e.epoch, e.start)})
			}
		}
	}
	return out
}

// checkEpochStarts checks that every entry of a partition's leader-epoch
// history inside the log starts at a batch of its epoch.
func (p *partition) checkEpochStarts(epochs []epochEntry) []Damage {
	var out []Damage
	start, hwm := p.offsets()
	for _, e := range epochs {
		if e.start < start || e.start >= hwm {
			continue
		}
		b, err := p.read(e.start, 1)
		if err != nil {
			continue // damage, reported by the batch checks
		}
		h, err := batch.ParseHeader(b)
		if err == nil && (h.BaseOffset != e.start || h.LeaderEpoch != e.epoch) {
			out = append(out, Damage{File: filepath.Join(p.rel, epochFileName), Offset: -1,
				Reason: fmt.Sprintf("epoch %d starts at offset %d, where no batch of that epoch starts", e.epoch, e.start)})
		}
	}
	return out
}
