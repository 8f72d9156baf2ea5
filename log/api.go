package log

import (
	"context"
	"strconv"
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
	// AddPartitions; Origin is kept as created). Persisted in meta.
	SetTopicConfig(name string, cfg TopicConfig) error
	// Topic describes one topic. ErrUnknownTopic.
	Topic(name string) (TopicInfo, error)
	// Topics lists all topics sorted by name.
	Topics() []TopicInfo

	// Append validates batches (one or more concatenated RecordBatch v2:
	// magic, length, CRC-32C, record count), assigns offsets from the
	// partition's next offset (rewriting baseOffset in place in the caller's
	// slice, and partitionLeaderEpoch, which the log stamps with the node's
	// epoch, see LeaderEpochs; for a topic with message.timestamp.type
	// LogAppendTime also the attributes' timestamp-type bit and
	// maxTimestamp, set to the append time, with the CRC recomputed: the
	// Kafka produce answer reads its log_append_time_ms from there) and
	// returns the base offset of the first
	// batch once the data is durable per the topic's fsync policy
	// ("always": on stable storage, one sync shared by every writer
	// waiting at that moment).
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
	// otherwise. Idempotence checks are skipped. Each batch keeps its
	// partitionLeaderEpoch (the origin's): epochs must not go back, nor be
	// older than the partition's latest epoch (ErrStaleEpoch), and each new
	// one enters the partition's epoch history.
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
	// Watch registers w to be signalled once the partition's HWM is past
	// after (HWM > after), at once when it already is. The partition
	// going away (its topic deleted, or deleted and created again) and
	// Close signal it too. A registration fires once; w.Reset drops it
	// (see Waiter). A long poll reads, and when there is nothing new
	// watches each of its partitions with the HWM it saw: an advance of
	// any other partition does not wake it. Errors: ErrUnknownTopic,
	// ErrUnknownPartition, ErrClosed (nothing registered).
	Watch(w *Waiter, topic string, partition int32, after int64) error
	// WatchTopics registers w to be signalled at the next change of the
	// topic set: a topic created or deleted, partitions added, or Close
	// (after Close: at once). Register before reading Topics, so no
	// change in between is missed.
	WatchTopics(w *Waiter)

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

// AppendWatcher is an optional capability of a Log, found by type
// assertion: a loop with work only while appends come (a health check)
// sleeps without a timer between them.
type AppendWatcher interface {
	// WatchAppends registers w to be signalled once Stats().AppendedBatches
	// is past after, at once when it already is. A registration fires
	// once; w.Reset drops it.
	WatchAppends(w *Waiter, after uint64)
}

// AllAppender is an optional capability of a Log, found by type assertion:
// appends acknowledged like Kafka acks=-1, once every in-sync copy on the
// site holds the batch (replicate/ wraps the log to provide it).
type AllAppender interface {
	// AppendAsyncAll is AppendAsync that completes once the batch is
	// durable here and on every copy in the in-sync set, or fails with
	// ErrNotEnoughReplicas (retriable) when fewer copies than the topic's
	// MinInsyncReplicas are in sync.
	AppendAsyncAll(topic string, partition int32, batches []byte, done func(base int64, err error))
}

// AwaitedAppender is an optional capability of a Log, found by type
// assertion: AppendAsync for a writer that waits for done however long it
// takes, such as a Kafka acks=all produce, whose acknowledgement also
// waits for the copies on other boxes (so the partition's last sync is
// always older than IndependentAfter when its next batch comes, and it
// would look like a trickle). Its bytes never count toward the commit
// delay (Options.CommitDelay): holding its commit would only add to the
// wait. AppendAt (a mirror's copy: one writer that fetches again only
// once its last copy is durable) counts the same way.
type AwaitedAppender interface {
	AppendAsyncAwaited(topic string, partition int32, batches []byte, done func(base int64, err error))
}

// AtAppender is an optional capability of a Log, found by type
// assertion: AppendAt without waiting, so a mirror storing one fetch's
// batches for several partitions writes them all before it waits, and
// they share one commit. done is called once the batches are durable (or
// refused), in order per partition; it must not block. Awaited as AppendAt
// (see AwaitedAppender).
type AtAppender interface {
	AppendAtAsync(topic string, partition int32, batches []byte, done func(err error))
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

	// Compaction (cleaner.go). Cleanup "compact" keeps the latest record
	// per key and no retention by age or size applies; "compact,delete"
	// does both.
	Cleanup           CleanupPolicy // "delete" (default), "compact", "compact,delete"
	DeleteRetention   time.Duration // how long a tombstone (null value) stays readable (default 24h)
	MinCompactionLag  time.Duration // records younger than this are never compacted away (default 0)
	MinCleanableRatio float64       // dirty share of a partition that starts a pass (default 0.5)

	// TimestampType is Kafka's message.timestamp.type: with
	// LogAppendTime the log stamps the append time into each batch it is
	// given (Append, not AppendAt): the batch's maxTimestamp and its
	// timestamp-type attribute, the CRC recomputed; the records stay as
	// the producer sent them, so the producer's own timestamps remain in
	// the stored bytes while every Kafka client reads the append time.
	TimestampType TimestampType // "CreateTime" (default) or "LogAppendTime"

	// Site replication (replicate/). The log stores these and refuses
	// Append/AppendAsync on a mirror; the rest is replicate's.
	ReplicationFactor int32  // copies on the site, origin included (default 1)
	MinInsyncReplicas int32  // copies acks=all needs (default 1)
	Origin            string // node id this topic mirrors; "" = this node's own topic
}

// TimestampType is the timestamp a topic's records are read with (Kafka's
// message.timestamp.type).
type TimestampType string

const (
	CreateTime    TimestampType = "CreateTime"    // the producer's
	LogAppendTime TimestampType = "LogAppendTime" // the time the log appended the batch
)

// CleanupPolicy is what removes old records of a topic (Kafka's
// cleanup.policy).
type CleanupPolicy string

const (
	CleanupDelete        CleanupPolicy = "delete"
	CleanupCompact       CleanupPolicy = "compact"
	CleanupCompactDelete CleanupPolicy = "compact,delete"
)

// Compacted reports whether the cleaner keeps only the latest record per
// key of the topic.
func (c TopicConfig) Compacted() bool {
	return c.Cleanup == CleanupCompact || c.Cleanup == CleanupCompactDelete
}

// Deletes reports whether retention by age and size applies.
func (c TopicConfig) Deletes() bool { return c.Cleanup != CleanupCompact }

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
	// Compacted topics: the share of the partition's bytes not cleaned
	// since the last pass (or since open), and when that pass ended
	// (zero: none yet).
	DirtyRatio float64
	LastClean  time.Time
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
	DroppedRecords   uint64 // records in them
	DroppedBytes     uint64 // bytes in them
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
	OutOfFiles       uint64           // opens that failed with EMFILE/ENFILE (retried; see ErrTooManyOpenFiles)
	CommitRunning    time.Duration    // how long the commit now writing and syncing has run (0: none); a large value is a hung fsync
	Cleaner          CleanerStats     // compaction of compacted topics (cleaner.go)
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
	// Topic and Partition name the partition whose records the damage
	// holds ("" for damage that is no partition's, such as a metadata
	// file); From and To the offsets it makes unreadable, [From, To)
	// (To -1: up to the end of the segment or the partition).
	Topic     string
	Partition int32
	From, To  int64
	// Repaired: runnel repair moved the damaged bytes aside and the
	// offsets are skipped (a gap readers pass over).
	Repaired bool
}

// PartitionRange reports whether d names offsets of a partition.
func (d Damage) PartitionRange() bool { return d.Topic != "" }

// RangeString is "topic/partition offsets From-To" (To-1 when known).
func (d Damage) RangeString() string {
	to := "end"
	if d.To >= 0 {
		to = strconv.FormatInt(d.To-1, 10)
	}
	return d.Topic + "/" + strconv.Itoa(int(d.Partition)) + " offsets " + strconv.FormatInt(d.From, 10) + "-" + to
}

// LeaderEpochs is implemented by a Log that keeps a leader-epoch history
// per partition (the one Open returns does): Kafka's leader epochs
// (KIP-101, KIP-279), with the log's incarnations as leaders. Find it by
// type assertion.
//
// Every open of the log after an unclean stop (a crash, a power cut, a
// Close that could not make everything durable) takes a new node epoch,
// stored durably before any append; after a clean Close the epoch goes on
// (everything it wrote is on stable storage: nothing a copy holds can be
// missing). Append stamps it into each batch's partitionLeaderEpoch, and the
// first append of an epoch to a partition records (epoch, start offset) in
// the partition's history. AppendAt keeps the origin's epochs and records
// them the same way. So two copies of a partition agree up to an offset
// only if their histories do: a mirror compares its latest epoch's end with
// the origin's EpochEnd for that epoch before it continues, and truncates
// what the origin no longer holds.
type LeaderEpochs interface {
	// NodeEpoch is the epoch local appends stamp now (>= 1).
	NodeEpoch() int32
	// EpochEnd answers Kafka's OffsetForLeaderEpoch for one partition:
	// the largest epoch <= epoch in its history and the offset where that
	// epoch ends: the start of the next epoch, or, for the latest, the
	// log end (the next offset to be written, which may be past the HWM
	// by appends not yet durable). An epoch older than every entry
	// answers (epoch, start of the first entry); -1 or an epoch newer
	// than every entry, or a partition without history, answers (-1, -1)
	// (Kafka's UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET).
	// Errors: ErrUnknownTopic, ErrUnknownPartition, ErrClosed.
	EpochEnd(topic string, partition int32, epoch int32) (leaderEpoch int32, endOffset int64, err error)
	// EpochHistory is the partition's history, oldest first (the first
	// entry starts at the log start at the latest). An entry may start at
	// the log end (an epoch whose first append is not written yet).
	EpochHistory(topic string, partition int32) ([]EpochStart, error)
}

// EpochStart is one entry of a partition's leader-epoch history: batches
// from StartOffset on carry Epoch, up to the next entry's start.
type EpochStart struct {
	Epoch       int32
	StartOffset int64
	// Replicated: recorded by AppendAt (an epoch of the origin this copy
	// mirrors), not by a local Append. A history rebuilt from the batches
	// (its file was missing or damaged) knows no better: false.
	Replicated bool
}

// Truncater is implemented by a Log whose partitions can be cut back (the
// one Open returns does). Find it by type assertion. Only replication may
// call it: a mirror removes what its origin no longer holds (after
// comparing leader-epoch histories, see LeaderEpochs), or a box being
// restored discards a copy it will fetch again. Never on a partition whose
// records this node acknowledged to a producer.
type Truncater interface {
	// Truncate removes every batch at and after offset from the partition:
	// offset must be where a batch starts (ErrNotBatchStart), in [log
	// start, next offset] (ErrOffsetOutOfRange; the next offset itself
	// changes nothing). The epoch history loses its entries from offset
	// on, the HWM and the next offset become offset, and appends continue
	// there (AppendAt at offset). Durable before it returns: a crash at any
	// point leaves the partition either as it was or wholly truncated,
	// never a mix. It refuses (ErrTruncateLocal) to remove batches of an
	// epoch that AppendAt did not record (this node's own appends, or a
	// history rebuilt from the batches) unless opts.Local says so. Appends
	// to the partition wait while it runs; appends still waiting for their
	// commit are answered first. Errors also: ErrUnknownTopic,
	// ErrUnknownPartition, ErrClosed, ErrReadOnly (a write failed after the
	// truncation was decided: the next open completes it), ErrDiskFull
	// (nothing changed), ctx.Err() (the truncation may still happen).
	Truncate(ctx context.Context, topic string, partition int32, offset int64, opts *TruncateOptions) error
}

// TruncateOptions adjusts Truncate; nil means the zero value.
type TruncateOptions struct {
	// Local allows removing batches of epochs this node appended itself
	// (not recorded by AppendAt).
	Local bool
}

// EpochRaiser is implemented by a Log with leader epochs (the one Open
// returns does). Find it by type assertion. A box restored from its
// copies on the site raises its node epoch past every epoch they hold for
// it before it appends, so no later batch of its own can pass for one of
// an earlier incarnation.
type EpochRaiser interface {
	// RaiseNodeEpoch makes the node's epoch at least min, durably before
	// it returns, and returns it (unchanged when already at least min).
	RaiseNodeEpoch(min int32) (int32, error)
}
