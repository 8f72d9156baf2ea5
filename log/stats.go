package log

import (
	"sort"
	"sync/atomic"
	"time"
)

// counters are the log's atomics behind Stats.
type counters struct {
	appendedRecords  atomic.Uint64
	appendedBytes    atomic.Uint64
	appendedBatches  atomic.Uint64
	fsyncs           atomic.Uint64
	fsyncNanos       atomic.Uint64
	fsyncErrors      atomic.Uint64
	rejected         atomic.Uint64
	droppedSegments  atomic.Uint64
	droppedRecords   atomic.Uint64
	droppedBytes     atomic.Uint64
	retentionDeletes atomic.Uint64
	tornBytes        atomic.Uint64
	journalCommits   atomic.Uint64
	journalBytes     atomic.Uint64
	sharedCommits    atomic.Uint64
	sharedBytes      atomic.Uint64
	commitsDelayed   atomic.Uint64
	commitDelayNanos atomic.Uint64
	outOfFiles       atomic.Uint64
	diskFree         atomic.Int64
	diskTotal        atomic.Int64
}

// Stats implements Log.
func (l *logImpl) Stats() Stats {
	s := Stats{
		Cleaner:          l.cleanerStats(),
		AppendedRecords:  l.stats.appendedRecords.Load(),
		AppendedBytes:    l.stats.appendedBytes.Load(),
		AppendedBatches:  l.stats.appendedBatches.Load(),
		Fsyncs:           l.stats.fsyncs.Load(),
		FsyncNanos:       l.stats.fsyncNanos.Load(),
		FsyncErrors:      l.stats.fsyncErrors.Load(),
		Rejected:         l.stats.rejected.Load(),
		DroppedSegments:  l.stats.droppedSegments.Load(),
		DroppedRecords:   l.stats.droppedRecords.Load(),
		DroppedBytes:     l.stats.droppedBytes.Load(),
		RetentionDeletes: l.stats.retentionDeletes.Load(),
		TornTailBytes:    l.stats.tornBytes.Load(),
		JournalCommits:   l.stats.journalCommits.Load(),
		JournalBytes:     l.stats.journalBytes.Load(),
		SharedCommits:    l.stats.sharedCommits.Load(),
		SharedBytes:      l.stats.sharedBytes.Load(),
		CommitsDelayed:   l.stats.commitsDelayed.Load(),
		CommitDelayNanos: l.stats.commitDelayNanos.Load(),
		OutOfFiles:       l.stats.outOfFiles.Load(),
		DiskFreeBytes:    l.stats.diskFree.Load(),
		DiskTotalBytes:   l.stats.diskTotal.Load(),
		DiskShort:        l.diskShort.Load(),
		OpenFiles:        l.files.open(),
	}
	if since := l.committer.busySince.Load(); since != 0 {
		s.CommitRunning = max(time.Since(time.Unix(0, since)), 1)
	}
	for _, t := range l.topicList() {
		for _, p := range t.partitions() {
			s.Partitions++
			p.mu.Lock()
			if p.roErr != nil {
				s.ReadOnly = append(s.ReadOnly, PartitionError{Topic: t.name, Partition: p.id, Err: p.readOnlyErr()})
			}
			p.mu.Unlock()
		}
	}
	l.damageMu.Lock()
	s.Damaged = append([]Damage(nil), l.damaged...)
	l.damageMu.Unlock()
	sort.Slice(s.ReadOnly, func(i, j int) bool {
		a, b := s.ReadOnly[i], s.ReadOnly[j]
		return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
	})
	return s
}

// addDamage records damage (once per file and offset).
func (l *logImpl) addDamage(d Damage) {
	l.damageMu.Lock()
	defer l.damageMu.Unlock()
	for _, e := range l.damaged {
		if e.File == d.File && e.Offset == d.Offset {
			return
		}
	}
	l.damaged = append(l.damaged, d)
	switch {
	case d.Repaired:
		l.logger.Info("log: damaged data moved aside by runnel repair; its offsets are skipped", "range", d.RangeString(), "file", d.File, "offset", d.Offset, "reason", d.Reason)
	case d.PartitionRange():
		l.logger.Error("log: corrupt data; readers stop at it until runnel repair skips it", "range", d.RangeString(), "file", d.File, "offset", d.Offset, "reason", d.Reason)
	default:
		l.logger.Error("log: corrupt data", "file", d.File, "offset", d.Offset, "reason", d.Reason)
	}
}

// fdatasync syncs f, counting the sync, its time and a failure in Stats.
func (l *logImpl) fdatasync(f interface{ Sync() error }) error {
	t0 := time.Now()
	err := f.Sync()
	l.stats.fsyncNanos.Add(uint64(time.Since(t0)))
	l.stats.fsyncs.Add(1)
	if err != nil {
		l.stats.fsyncErrors.Add(1)
	}
	return err
}
