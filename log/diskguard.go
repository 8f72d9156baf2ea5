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

// checkDisk updates the disk figures and, while space is short, deletes
// the oldest segments of drop-oldest topics until it is not.
func (l *logImpl) checkDisk() {
	if l.opts.MinFreeBytes < 0 {
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
		short := int64(free) < l.opts.MinFreeBytes
		if was := l.diskShort.Swap(short); was != short {
			if short {
				l.logger.Warn("log: disk space short; on-full policies apply", "free", free, "min", l.opts.MinFreeBytes)
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

// dropOldestOnce deletes the oldest deletable segment of each drop-oldest
// partition (rolling a partition that has only its active segment, so it
// can go next round). It reports whether anything was deleted.
func (l *logImpl) dropOldestOnce() bool {
	dropped := false
	for _, t := range l.topicList() {
		if t.config().OnFull != OnFullDropOldest {
			continue
		}
		for _, p := range t.partitions() {
			if n := p.deleteOldest(1, "disk space short (drop-oldest)"); n > 0 {
				l.stats.droppedSegments.Add(uint64(n))
				dropped = true
				continue
			}
			p.mu.Lock()
			if act := p.active(); act.size > 0 && !p.closed && p.roErr == nil {
				if err := p.rollLocked(); err != nil {
					l.logger.Warn("log: cannot roll for drop-oldest", "topic", t.name, "partition", p.id, "err", err)
				} else {
					l.committer.markDirty(p)
				}
			}
			p.mu.Unlock()
		}
	}
	return dropped
}
