package log

import (
	"context"
	"time"

	"github.com/runnel/runnel/log/meta"
)

// Log is the commit log: topics → partitions → segments of Kafka RecordBatch
// v2 batches. It is the only way ingest, sync, replicate and web reach stored
// data; they know nothing of segments. All methods are safe for concurrent use.
//
// Visibility: a reader never sees a record that could still be lost. Under
// fsync "always" the high-water mark (HWM) is the end of what is on stable
// storage; under "interval" and "never" it is the end of what was written to
// the file (the page cache).
type Log interface {
	// CreateTopic creates a topic. cfg zero fields take the log's defaults.
	// Errors: ErrTopicExists, ErrInvalidTopic, ErrInvalidConfig.
	CreateTopic(name string, cfg TopicConfig) error
	// DeleteTopic removes a topic and its files. ErrUnknownTopic.
	DeleteTopic(name string) error
	// AddPartitions grows a topic to total partitions (never shrinks):
	// ErrInvalidPartitions when total <= current.
	AddPartitions(name string, total int32) error
	// SetTopicConfig replaces a topic's config (partitions are ignored; use
	// AddPartitions). Persisted in meta.
	SetTopicConfig(name string, cfg TopicConfig) error
	// Topic describes one topic. ErrUnknownTopic.
	Topic(name string) (TopicInfo, error)
	// Topics lists all topics sorted by name.
	Topics() []TopicInfo

	// Append validates batches (one or more concatenated RecordBatch v2:
	// magic, length, CRC-32C, record count), assigns offsets from the
	// partition's next offset (rewriting baseOffset in place in the caller's
	// slice, and partitionLeaderEpoch, which the log stamps to 0 so bit rot
	// in these CRC-less header bytes is detected) and returns the base offset of the first batch once the data is
	// durable per the topic's fsync policy ("always": on stable storage, one
	// sync shared by every writer waiting at that moment).
	//
	// Idempotent producers (producerId >= 0): a batch whose (producerId,
	// epoch, baseSequence) repeats one of the last 5 appended to this
	// partition is not written again; Append returns the original base
	// offset and ErrDuplicateSequence. A sequence gap returns
	// ErrOutOfOrderSequence, an older epoch ErrInvalidProducerEpoch.
	//
	// Errors: ErrUnknownTopic, ErrUnknownPartition, ErrCorruptBatch (wraps
	// the batch package error), ErrBatchTooLarge, ErrDiskFull (retriable,
	// nothing written), ErrReadOnly (the partition failed an fsync or write;
	// wraps the cause), ErrClosed, ctx.Err() (the append may still complete).
	Append(ctx context.Context, topic string, partition int32, batches []byte) (int64, error)
	// AppendAsync is Append without waiting: done (may be nil) is called
	// once the append is acknowledged per the topic's fsync policy, or
	// failed: from a log goroutine after the commit that makes it durable
	// ("always"), or before AppendAsync returns when nothing is left to
	// wait for ("interval", "never", an append refused before it was
	// written) and no earlier append of the partition is still waiting.
	// Calls for one partition complete in the order they were made. done
	// must not block.
	AppendAsync(topic string, partition int32, batches []byte, done func(base int64, err error))
	// AppendAt appends batches whose baseOffset must equal the partition's
	// next offset (replication mirrors a peer's offsets). ErrNotNextOffset
	// otherwise. Idempotence checks are skipped.
	AppendAt(ctx context.Context, topic string, partition int32, batches []byte) error

	// Read returns raw batch bytes starting with the batch that contains
	// offset, whole batches only, stopping before maxBytes is exceeded but
	// always returning at least one batch if offset < HWM. Bytes are exactly
	// as stored (the first batch may start before offset; clients skip).
	// Returns nil, nil when offset == HWM. ErrOffsetOutOfRange when offset
	// < log start or > HWM.
	Read(topic string, partition int32, offset int64, maxBytes int) ([]byte, error)
	// Offsets returns the log-start offset and the HWM (next offset a reader
	// will see).
	Offsets(topic string, partition int32) (start, hwm int64, err error)
	// OffsetForTime returns the offset of the first batch whose max
	// timestamp is >= ts (ms), or the HWM when none is.
	OffsetForTime(topic string, partition int32, ts int64) (int64, error)
	// Changed returns a channel that is closed the next time any
	// partition's HWM advances (or a topic is created or deleted). Long
	// polls wait on it and then re-check.
	Changed() <-chan struct{}

	// HoldRetention makes retention keep every record at or after the
	// offsets of cursors named name in meta (the forwarder's unsent data),
	// except under on-full "drop-oldest" while the disk is short.
	HoldRetention(name string)

	// Meta is the metadata store (group offsets, cursors, node id, KV).
	Meta() *meta.Store
	// Stats is a snapshot of counters for metrics and status.
	Stats() Stats
	// Check verifies all stored data (every CRC, index and offset sequence)
	// and reports damage without changing anything.
	Check() []Damage
	// Close syncs and closes everything. Idempotent.
	Close() error
}

// CommitFeeder is an optional capability of a Log (found by type
// assertion) for callers that coalesce many small records into one batch
// per partition (MQTT ingest): instead of handing a batch over when it is
// opened, they ask the log for the moment its next commit starts, so a
// batch holds every record that arrived before that commit, and a busy
// partition writes one batch per commit.
type CommitFeeder interface {
	// FeedNextCommit registers feed to be called once, from the log's
	// committer goroutine, just before its next commit takes the appends
	// it makes durable: what feed appends to the partition (AppendAsync)
	// is in that commit. An idle log starts that commit at once. feed
	// must not block (it may take a lock that is only held briefly).
	// False when the log is closed or the partition does not exist: feed
	// is not called.
	FeedNextCommit(topic string, partition int32, feed func()) bool
	// Gathering tells the log that a registered feed holds n more bytes
	// for the next commit; independent: they come from a writer that is
	// not waiting for an acknowledgement (its last one is at least
	// IndependentAfter old), which the commit delay counts on (see
	// Options.CommitDelay).
	Gathering(n int, independent bool)
}

// IndependentAfter: a writer whose last acknowledgement is at least this
// old is not waiting for it to append again (for Options.CommitDelay).
const IndependentAfter = 5 * time.Millisecond

// FsyncPolicy says when appends reach stable storage.
type FsyncPolicy string

const (
	FsyncAlways   FsyncPolicy = "always"
	FsyncInterval FsyncPolicy = "interval"
	FsyncNever    FsyncPolicy = "never"
)

// OnFull is what a topic does when free disk falls under the guard threshold.
type OnFull string

const (
	OnFullReject     OnFull = "reject"
	OnFullDropOldest OnFull = "drop-oldest"
)

// TopicConfig holds per-topic settings; a zero field means "log default".
type TopicConfig struct {
	Partitions     int32         // number of partitions (create only)
	Fsync          FsyncPolicy   // "always" (default), "interval", "never"
	FsyncInterval  time.Duration // loss window for "interval" (default 1s)
	RetentionAge   time.Duration // delete segments older than this; <0 = forever (default 7 days)
	RetentionBytes int64         // per partition; <0 = unlimited (default)
	SegmentBytes   int64         // roll size (default 64 MiB)
	SegmentAge     time.Duration // roll age (default 24h)
	OnFull         OnFull        // default "reject"
	MaxBatchBytes  int32         // largest accepted batch (default 1 MiB + overhead)
}

// TopicInfo describes a topic.
type TopicInfo struct {
	Name       string
	Config     TopicConfig // with defaults filled in
	Partitions []PartitionInfo
}

// PartitionInfo describes one partition.
type PartitionInfo struct {
	Partition int32
	Start     int64 // log-start offset
	HWM       int64
	Bytes     int64 // bytes on disk
	Segments  int
	Err       error // non-nil when read-only after a failure
}

// Stats is a point-in-time snapshot of the log's counters.
type Stats struct {
	AppendedRecords  uint64
	AppendedBytes    uint64
	AppendedBatches  uint64
	Fsyncs           uint64
	FsyncNanos       uint64 // total time spent in fsync
	FsyncErrors      uint64
	Rejected         uint64 // appends refused with ErrDiskFull
	DroppedSegments  uint64 // deleted by drop-oldest under disk pressure
	RetentionDeletes uint64 // segments deleted by age/size retention
	DiskFreeBytes    int64
	DiskTotalBytes   int64
	DiskShort        bool // free space under the guard threshold
	OpenFiles        int
	Partitions       int
	ReadOnly         []PartitionError // partitions that failed
	Damaged          []Damage         // damage found at open (and by reads since)
	TornTailBytes    uint64           // bytes of torn tails truncated by recovery
	JournalCommits   uint64           // commits that went through the node journal
	JournalBytes     uint64           // bytes written to the node journal
	SharedCommits    uint64           // commits that wrote shared segment files
	SharedBytes      uint64           // bytes written to shared segment files
	CommitsDelayed   uint64           // commits held back by Options.CommitDelay
	CommitDelayNanos uint64           // total time commits were held back
}

// PartitionError names a failed partition and why.
type PartitionError struct {
	Topic     string
	Partition int32
	Err       error
}

// Damage is corruption found in stored data.
type Damage struct {
	File   string // path relative to the data dir
	Offset int64  // byte offset in the file
	Reason string
}
