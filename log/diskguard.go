package log

import (
	"time"

	"golang.org/x/sys/unix"
)

// statfsUsage reports the bytes available to unprivileged users and the
// size of the file system holding dir: one statfs(2), computed as
// gopsutil's disk.Usage does (Bavail and Blocks times Bsize), which also
// names the file system from a table of magic numbers the guard never
// reads (about 12 KB of the binary).
func statfsUsage(dir string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), uint64(st.Blocks) * uint64(st.Bsize), nil
}

// diskIdleFactor: a log that took no append for a whole DiskCheckInterval
// (and is not short of space) reads free space again at its next append,
// or after this many intervals (30 s by default), for Stats and for space
// other programs took meanwhile.
const diskIdleFactor = 30

// diskGuardLoop reads free space and applies the on-full policies: every
// DiskCheckInterval while appends come or space is short, else at the next
// append.
func (l *logImpl) diskGuardLoop() {
	t := time.NewTicker(l.opts.DiskCheckInterval)
	defer t.Stop()
	w := NewWaiter()
	seen := l.stats.appendedBatches.Load()
	for {
		select {
		case <-l.quit:
			return
		case <-t.C:
		}
		l.checkDisk()
		if n := l.stats.appendedBatches.Load(); n != seen || l.diskShort.Load() {
			seen = n
			continue
		}
		t.Stop()
		for {
			if !l.sleepUntilAppend(w, seen, diskIdleFactor*l.opts.DiskCheckInterval) {
				return
			}
			l.checkDisk()
			if n := l.stats.appendedBatches.Load(); n != seen || l.diskShort.Load() {
				seen = n
				break
			}
		}
		t.Reset(l.opts.DiskCheckInterval)
	}
}

// Sizing to the volume. On a small data volume the configured sizes may
// not fit: a 64 MiB segment on a 48 MiB disk is dropped whole, with the
// disk's worth of data in it, and a guard threshold as large as the volume
// keeps it short for good. sizeToVolume reads the volume's size once, at
// Open, and
//
//   - lowers the guard threshold to a volumeGuardShare of the volume when
//     the configured one is half the volume or more;
//   - caps the roll size of segments, shared segment files and the
//     journal at a volumeUnitShare of what the log may fill (the volume
//     less the threshold), so drop-oldest frees space in small steps and
//     keeps most of the disk's worth of the newest data.
//
// Each adjustment is a warning at start naming the setting.
const (
	volumeGuardShare = 8  // the guard threshold lowered to 1/8 of the volume
	volumeUnitShare  = 16 // segments roll at 1/16 of the usable space at most
	minUnitBytes     = 256 << 10
)

// sizeToVolume sets l.minFree and l.unitCap (see above).
func (l *logImpl) sizeToVolume() {
	l.minFree = l.opts.MinFreeBytes
	if l.opts.MinFreeBytes < 0 {
		return // no guard: nothing is dropped or refused for space
	}
	_, total, err := l.opts.DiskUsage(l.dir)
	if err != nil || total == 0 {
		return
	}
	vol := int64(total)
	if l.minFree >= vol/2 {
		l.minFree = max(vol/volumeGuardShare, 1)
		l.logger.Warn("log: min-free-bytes does not fit the volume: the disk guard uses a smaller threshold",
			"min_free_bytes", l.opts.MinFreeBytes, "volume_bytes", vol, "threshold", l.minFree)
	}
	usable := vol - l.minFree
	unit := max(usable/volumeUnitShare, minUnitBytes)
	if unit < l.opts.Defaults.SegmentBytes || unit < l.opts.SharedSegmentBytes || !l.opts.NoJournal && unit < l.opts.JournalMaxBytes {
		l.unitCap = unit
		l.logger.Warn("log: segment sizes do not fit the volume: segments, shared segment files and the journal roll at a smaller size, so drop-oldest frees space in small steps",
			"volume_bytes", vol, "usable_bytes", usable, "segment_bytes", l.opts.Defaults.SegmentBytes,
			"shared_segment_bytes", l.opts.SharedSegmentBytes, "roll_bytes", unit)
	}
}

// capUnit caps a roll size at l.unitCap (when set).
func (l *logImpl) capUnit(n int64) int64 {
	if l.unitCap > 0 && n > l.unitCap {
		return l.unitCap
	}
	return n
}

// checkDisk updates the disk figures and, while space is short, deletes
// the oldest segments of drop-oldest topics until it is not.
func (l *logImpl) checkDisk() {
	if l.minFree < 0 {
		l.diskShort.Store(false)
		return
	}
	for round := 0; round < 1000; round++ {
		free, total, err := l.opts.DiskUsage(l.dir)
		if err != nil {
			l.logger.Warn("log: cannot read disk usage", "err", err)
			return
		}
		l.stats.diskFree.Store(int64(free))
		l.stats.diskTotal.Store(int64(total))
		short := int64(free) < l.minFree
		if was := l.diskShort.Swap(short); was != short {
			if short {
				l.logger.Warn("log: disk space short; on-full policies apply", "free", free, "min", l.minFree)
				l.committer.poke() // empty the journal (a second copy) now, not at the next commit
			} else {
				l.logger.Info("log: disk space back above the guard threshold", "free", free)
			}
		}
		if short {
			l.shared.collect() // shared files nothing references any more
		}
		if !short || !l.dropOldestOnce() {
			return
		}
	}
}

// dropOldestOnce deletes the oldest segment of all drop-oldest partitions
// (by the newest timestamp in it: the one whose data is oldest), one at a
// time so that no more is dropped than space requires. When no such
// partition has a segment that can go, each one with data only in its
// active segment rolls, so that it can go next round. It reports whether
// anything was deleted or rolled.
func (l *logImpl) dropOldestOnce() bool {
	var best *partition
	bestTs := int64(0)
	var roll []*partition
	for _, t := range l.topicList() {
		if t.config().OnFull != OnFullDropOldest {
			continue
		}
		for _, p := range t.partitions() {
			p.mu.Lock()
			cands := p.deletableLocked()
			var oldest *segment
			if len(cands) > 0 {
				oldest = cands[0]
			} else if act := p.active(); act.size > 0 && !p.closed && p.roErr == nil {
				roll = append(roll, p)
			}
			p.mu.Unlock()
			if oldest == nil {
				continue
			}
			ts := oldest.newestTimestamp(l)
			if best == nil || ts < bestTs {
				best, bestTs = p, ts
			}
		}
	}
	if best != nil {
		if n := best.dropOldest(); n > 0 {
			return true
		}
	}
	rolled := false
	for _, p := range roll {
		p.mu.Lock()
		if act := p.active(); act.size > 0 && !p.closed && p.roErr == nil {
			if err := p.rollLocked(); err != nil {
				l.logger.Warn("log: cannot roll for drop-oldest", "topic", p.t.name, "partition", p.id, "err", err)
			} else {
				l.committer.markDirty(p)
				rolled = true
			}
		}
		p.mu.Unlock()
	}
	return rolled
}

// newestTimestamp is the largest record timestamp in a sealed segment
// (its file's modification time when unknown; -1 when neither is).
func (s *segment) newestTimestamp(l *logImpl) int64 {
	s.mu.Lock()
	size := s.size
	s.mu.Unlock()
	if err := s.ensureIndex(l, size); err != nil {
		return -1
	}
	s.mu.Lock()
	ts := s.maxTs
	s.mu.Unlock()
	if ts < 0 && s.virt == nil {
		if st, err := l.fs.Stat(s.path); err == nil {
			ts = st.ModTime().UnixMilli()
		}
	}
	return ts
}

// dropOldest deletes the partition's oldest segment for drop-oldest,
// counting the segment, its records and bytes, and logging each drop.
func (p *partition) dropOldest() int {
	p.mu.Lock()
	cands := p.deletableLocked()
	if len(cands) == 0 {
		p.mu.Unlock()
		return 0
	}
	s := cands[0]
	from, to, bytes := s.base, s.next, s.size
	p.mu.Unlock()
	n := p.deleteOldest(1, "disk space short (drop-oldest)")
	if n == 0 {
		return 0
	}
	l := p.l
	l.stats.droppedSegments.Add(1)
	l.stats.droppedRecords.Add(uint64(to - from))
	l.stats.droppedBytes.Add(uint64(bytes))
	l.logger.Warn("log: dropped the oldest records: disk space short (drop-oldest)", "topic", p.t.name, "partition", p.id,
		"offset", from, "to_offset", to-1, "records", to-from, "bytes", bytes,
		"dropped_records_total", l.stats.droppedRecords.Load())
	return n
}
