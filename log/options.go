package log

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/runnel/runnel/log/vfs"
)

// Options configures Open. A nil *Options or zero fields mean defaults.
type Options struct {
	// Dir is the data directory (created if missing). Required.
	Dir string
	// FS is the file system all storage code uses; nil = the OS.
	FS vfs.FS
	// Logger receives structured logs; nil = slog.Default().
	Logger *slog.Logger
	// Defaults fills zero fields of every topic's config (and is the
	// config of auto-created topics). Defaults.Partitions defaults to 1.
	Defaults TopicConfig
	// MaxOpenFiles bounds open segment/index file handles (LRU); default 256.
	MaxOpenFiles int
	// MinFreeBytes is the disk guard threshold: when free space of the file
	// system holding Dir falls under it, topics apply their OnFull policy.
	// Default 64 MiB; <0 disables the guard.
	MinFreeBytes int64
	// DiskCheckInterval is how often free space is read while appends
	// come or space is short; default 1s. A log that took no append for
	// an interval reads it at its next append, or after 30 intervals.
	DiskCheckInterval time.Duration
	// RetentionCheckInterval is how often retention runs; default 30s.
	RetentionCheckInterval time.Duration

	// IndexIntervalBytes is the spacing of sparse index entries in a
	// segment: one entry per this many bytes of log; default 4096.
	IndexIntervalBytes int
	// CheckpointInterval is how often the recovery checkpoint (the durable
	// end of every partition, so recovery after a crash scans only what
	// came later) is rewritten while appends come; default 10s. A log that
	// takes no append writes none.
	CheckpointInterval time.Duration
	// DiskUsage reports free and total bytes of the file system holding
	// dir; nil = statfs(2) (the figures of gopsutil's disk.Usage). Tests
	// substitute it.
	DiskUsage func(dir string) (free, total uint64, err error)
	// NoJournal disables the node-wide commit journal used for small
	// "always" commits (see doc.go); every commit then fdatasyncs each
	// dirty segment file.
	NoJournal bool
	// JournalMaxBytes bounds the journal before a checkpoint (sync of the
	// journaled segments and a fresh journal); default 32 MiB.
	JournalMaxBytes int64
	// JournalSmallBytes: a partition whose unsynced bytes in one commit are
	// under this goes through the journal; default 16 KiB.
	JournalSmallBytes int64
	// NoSharedSegments turns off shared segments: small "always" commits
	// then go to each partition's own segment files, made durable through
	// the journal (every byte written twice). By default they are stored
	// once, in node-wide shared segment files (see doc.go, "Store once").
	// A data dir that already holds shared segment files opens with them
	// on whatever this says (their batches would otherwise be invisible
	// and their offsets reused).
	NoSharedSegments bool
	// SharedSegmentBytes is the roll size of shared segment files; default
	// 32 MiB. A shared file is deleted once no partition retains any batch
	// in it.
	SharedSegmentBytes int64
	// ProducerStateScanBytes is how much of a partition's active virtual
	// segment (its newest bytes in shared files) open reads for
	// idempotent-producer state; default 16 KiB. A trickling partition's
	// active segment may span a thousand shared files: a producer whose
	// last batch is older than this is treated as new after a restart
	// (its retries are the batches it sent last, so they are found).
	ProducerStateScanBytes int64
	// MaxLoadedIndexes bounds the sealed segments whose sparse index is
	// kept in memory (LRU; an unloaded one is reread from its index files);
	// default 512.
	MaxLoadedIndexes int
	// CommitDelay is the longest a commit may be held back to gather
	// appends of other partitions into fuller pages (fewer syncs and less
	// SD-card wear when many partitions trickle), as PostgreSQL's
	// commit_delay. A commit is held only while appends of partitions
	// that are not waiting for an acknowledgement arrive fast enough to
	// fill it (see doc.go, "Acknowledgement and the commit delay"); a
	// writer alone, or writers that each wait for their ack, are never
	// held. Default 10ms; <0 = never hold (every commit starts as soon as
	// the disk is free).
	CommitDelay time.Duration
	// CleanerBytesPerSec bounds the I/O of the cleaner of compacted
	// topics: bytes read plus bytes written per second (SD cards);
	// default 4 MiB/s, <0 = unbounded.
	CleanerBytesPerSec int64
	// CleanerInterval is how often the cleaner looks for partitions of
	// compacted topics to clean; default 15s.
	CleanerInterval time.Duration
}

const (
	defaultMaxOpenFiles       = 256
	defaultMinFreeBytes       = 64 << 20
	defaultIndexInterval      = 4096
	defaultCheckpointInterval = 10 * time.Second
	defaultJournalMaxBytes    = 32 << 20
	defaultJournalSmallBytes  = 16 << 10
	defaultCommitDelay        = 10 * time.Millisecond
	defaultSharedSegmentBytes = 32 << 20
	defaultProducerStateScan  = 16 << 10
	defaultCleanerBytesPerSec = 4 << 20
	defaultCleanerInterval    = 15 * time.Second

	// maxSharedSegmentBytes and maxJournalMaxBytes bound the files open
	// may read whole into memory (a shared file without its extent index,
	// the journal at replay): such a buffer must fit a 32-bit address
	// space and a small box's memory next to everything else.
	maxSharedSegmentBytes = 256 << 20
	maxJournalMaxBytes    = 256 << 20
)

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	if o == nil || o.Dir == "" {
		return fmt.Errorf("%w: Options.Dir is required", ErrInvalidConfig)
	}
	if o.MaxOpenFiles < 0 || o.MaxLoadedIndexes < 0 || o.IndexIntervalBytes < 0 || o.DiskCheckInterval < 0 ||
		o.RetentionCheckInterval < 0 || o.CheckpointInterval < 0 || o.JournalMaxBytes < 0 || o.JournalSmallBytes < 0 || o.SharedSegmentBytes < 0 || o.ProducerStateScanBytes < 0 || o.CleanerInterval < 0 {
		return fmt.Errorf("%w: negative option", ErrInvalidConfig)
	}
	if o.SharedSegmentBytes > maxSharedSegmentBytes {
		return fmt.Errorf("%w: shared segment bytes %d (max %d)", ErrInvalidConfig, o.SharedSegmentBytes, maxSharedSegmentBytes)
	}
	if o.JournalMaxBytes > maxJournalMaxBytes {
		return fmt.Errorf("%w: journal max bytes %d (max %d)", ErrInvalidConfig, o.JournalMaxBytes, maxJournalMaxBytes)
	}
	if err := validateConfig(o.Defaults, false); err != nil {
		return fmt.Errorf("defaults: %w", err)
	}
	return nil
}

// withDefaults returns a copy with every zero field filled.
func (o Options) withDefaults() Options {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxOpenFiles == 0 {
		o.MaxOpenFiles = defaultMaxOpenFiles
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = defaultMinFreeBytes
	}
	if o.DiskCheckInterval == 0 {
		o.DiskCheckInterval = time.Second
	}
	if o.RetentionCheckInterval == 0 {
		o.RetentionCheckInterval = 30 * time.Second
	}
	if o.IndexIntervalBytes == 0 {
		o.IndexIntervalBytes = defaultIndexInterval
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = defaultCheckpointInterval
	}
	if o.JournalMaxBytes == 0 {
		o.JournalMaxBytes = defaultJournalMaxBytes
	}
	if o.JournalSmallBytes == 0 {
		o.JournalSmallBytes = defaultJournalSmallBytes
	}
	if o.SharedSegmentBytes == 0 {
		o.SharedSegmentBytes = defaultSharedSegmentBytes
	}
	if o.ProducerStateScanBytes == 0 {
		o.ProducerStateScanBytes = defaultProducerStateScan
	}
	if o.MaxLoadedIndexes == 0 {
		o.MaxLoadedIndexes = 512
	}
	if o.CommitDelay == 0 {
		o.CommitDelay = defaultCommitDelay
	}
	if o.CleanerBytesPerSec == 0 {
		o.CleanerBytesPerSec = defaultCleanerBytesPerSec
	}
	if o.CleanerInterval == 0 {
		o.CleanerInterval = defaultCleanerInterval
	}
	if o.DiskUsage == nil {
		o.DiskUsage = statfsUsage
	}
	o.Defaults = fillConfig(o.Defaults, builtinDefaults)
	return o
}
