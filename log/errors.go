package log

import (
	"errors"
	"strconv"
)

// Errors returned by the log. Callers test with errors.Is.
var (
	ErrClosed               = errors.New("log: closed")
	ErrUnknownTopic         = errors.New("log: unknown topic")
	ErrUnknownPartition     = errors.New("log: unknown partition")
	ErrTopicExists          = errors.New("log: topic already exists")
	ErrInvalidTopic         = errors.New("log: invalid topic name")
	ErrInvalidConfig        = errors.New("log: invalid topic config")
	ErrInvalidPartitions    = errors.New("log: invalid partition count")
	ErrCorruptBatch         = errors.New("log: corrupt or invalid record batch")
	ErrBatchTooLarge        = errors.New("log: record batch too large")
	ErrOffsetOutOfRange     = errors.New("log: offset out of range")
	ErrNotNextOffset        = errors.New("log: batch base offset is not the partition's next offset")
	ErrDuplicateSequence    = errors.New("log: duplicate sequence number (batch already appended)")
	ErrOutOfOrderSequence   = errors.New("log: out of order sequence number")
	ErrInvalidProducerEpoch = errors.New("log: producer epoch is older than the current one")
	// ErrDiskFull is retriable: nothing was written; retry when space returns.
	ErrDiskFull = errors.New("log: disk full (free space under the guard threshold); retry later")
	// ErrTooManyOpenFiles is retriable: the process (EMFILE) or the system
	// (ENFILE) is out of file descriptors, so a file the append needs
	// could not be opened. Nothing was written and the partition stays
	// writable: running out of descriptors is not a storage fault.
	ErrTooManyOpenFiles = errors.New("log: out of file descriptors (too many open files); retry later")
	// ErrReadOnly wraps the I/O error that made a partition read-only.
	ErrReadOnly = errors.New("log: partition is read-only after an I/O error")
	// ErrNotLeader: an append to a mirror (TopicConfig.Origin set); only
	// the origin node writes it.
	ErrNotLeader = errors.New("log: partition is a read-only mirror of another node's")
	// ErrNotEnoughReplicas (retriable): fewer in-sync copies than the
	// topic's MinInsyncReplicas; the batch is not acknowledged.
	ErrNotEnoughReplicas = errors.New("log: fewer in-sync copies than min.insync.replicas")
	// ErrStaleEpoch: AppendAt got a batch whose leader epoch is older than
	// the partition's latest (the origin's history diverged from this
	// copy: compare with EpochEnd and Truncate).
	ErrStaleEpoch = errors.New("log: batch leader epoch is older than the partition's latest epoch")
	// ErrNotBatchStart: Truncate's offset is not where a batch starts.
	ErrNotBatchStart = errors.New("log: offset is not the first offset of a batch")
	// ErrTruncateLocal: Truncate would remove batches this node appended
	// itself (TruncateOptions.Local allows it).
	ErrTruncateLocal = errors.New("log: truncation would remove batches this node appended (not replicated)")
	// ErrCorrupt is returned (wrapped in *CorruptError) for damaged data.
	ErrCorrupt = errors.New("log: corrupt data")
)

// CorruptError reports damaged stored data with its file and byte offset.
type CorruptError struct {
	File   string
	Offset int64
	Reason string

	found bool // found by the read that returns it (retried once: partition.read)
}

func (e *CorruptError) Error() string {
	return "log: corrupt data in " + e.File + " at byte " + strconv.FormatInt(e.Offset, 10) + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }
