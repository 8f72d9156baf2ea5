package log

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// builtinDefaults are the log's own defaults under Options.Defaults.
var builtinDefaults = TopicConfig{
	Partitions:     1,
	Fsync:          FsyncAlways,
	FsyncInterval:  time.Second,
	RetentionAge:   7 * 24 * time.Hour,
	RetentionBytes: -1,
	SegmentBytes:   64 << 20,
	SegmentAge:     24 * time.Hour,
	OnFull:         OnFullReject,
	MaxBatchBytes:  1<<20 + 12,

	Cleanup:           CleanupDelete,
	DeleteRetention:   24 * time.Hour,
	MinCleanableRatio: 0.5,

	ReplicationFactor: 1,
	MinInsyncReplicas: 1,
}

// maxSegmentBytes keeps every position in a segment within the uint32 of
// the index (with room for one append past the roll size).
const maxSegmentBytes = 1 << 30

// fillConfig returns c with zero fields taken from d.
func fillConfig(c, d TopicConfig) TopicConfig {
	if c.Partitions == 0 {
		c.Partitions = d.Partitions
	}
	if c.Fsync == "" {
		c.Fsync = d.Fsync
	}
	if c.FsyncInterval == 0 {
		c.FsyncInterval = d.FsyncInterval
	}
	if c.RetentionAge == 0 {
		c.RetentionAge = d.RetentionAge
	}
	if c.RetentionBytes == 0 {
		c.RetentionBytes = d.RetentionBytes
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = d.SegmentBytes
	}
	if c.SegmentAge == 0 {
		c.SegmentAge = d.SegmentAge
	}
	if c.OnFull == "" {
		c.OnFull = d.OnFull
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = d.MaxBatchBytes
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = d.ReplicationFactor
	}
	if c.Cleanup == "" {
		c.Cleanup = d.Cleanup
	}
	if c.DeleteRetention == 0 {
		c.DeleteRetention = d.DeleteRetention
	}
	if c.MinCompactionLag == 0 {
		c.MinCompactionLag = d.MinCompactionLag
	}
	if c.MinCleanableRatio == 0 {
		c.MinCleanableRatio = d.MinCleanableRatio
	}
	if c.MinInsyncReplicas == 0 {
		c.MinInsyncReplicas = d.MinInsyncReplicas
	}
	if c.TimestampType == "" {
		c.TimestampType = d.TimestampType
	}
	return c
}

// validateConfig checks a (possibly partly zero) config.
func validateConfig(c TopicConfig, needPartitions bool) error {
	switch c.Fsync {
	case "", FsyncAlways, FsyncInterval, FsyncNever:
	default:
		return fmt.Errorf("%w: fsync %q (want always, interval or never)", ErrInvalidConfig, c.Fsync)
	}
	switch c.OnFull {
	case "", OnFullReject, OnFullDropOldest:
	default:
		return fmt.Errorf("%w: on-full %q (want reject or drop-oldest)", ErrInvalidConfig, c.OnFull)
	}
	switch c.TimestampType {
	case "", CreateTime, LogAppendTime:
	default:
		return fmt.Errorf("%w: timestamp type %q (want CreateTime or LogAppendTime)", ErrInvalidConfig, c.TimestampType)
	}
	switch c.Cleanup {
	case "", CleanupDelete, CleanupCompact, CleanupCompactDelete:
	default:
		return fmt.Errorf("%w: cleanup policy %q (want delete, compact or compact,delete)", ErrInvalidConfig, c.Cleanup)
	}
	if c.DeleteRetention < 0 || c.MinCompactionLag < 0 {
		return fmt.Errorf("%w: negative delete retention or min compaction lag", ErrInvalidConfig)
	}
	if c.MinCleanableRatio < 0 || c.MinCleanableRatio > 1 {
		return fmt.Errorf("%w: min cleanable ratio %v (want 0 to 1)", ErrInvalidConfig, c.MinCleanableRatio)
	}
	if c.Partitions < 0 || (needPartitions && c.Partitions == 0) || c.Partitions > MaxPartitions {
		return fmt.Errorf("%w: %d partitions (at most %d)", ErrInvalidPartitions, c.Partitions, MaxPartitions)
	}
	if c.FsyncInterval < 0 {
		return fmt.Errorf("%w: negative fsync interval", ErrInvalidConfig)
	}
	if c.SegmentBytes < 0 || c.SegmentBytes > maxSegmentBytes {
		return fmt.Errorf("%w: segment bytes %d (max %d)", ErrInvalidConfig, c.SegmentBytes, maxSegmentBytes)
	}
	if c.SegmentAge < 0 {
		return fmt.Errorf("%w: negative segment age", ErrInvalidConfig)
	}
	if c.MaxBatchBytes < 0 {
		return fmt.Errorf("%w: negative max batch bytes", ErrInvalidConfig)
	}
	if c.ReplicationFactor < 0 || c.MinInsyncReplicas < 0 {
		return fmt.Errorf("%w: negative replication factor or min in-sync replicas", ErrInvalidConfig)
	}
	return nil
}

// ValidTopicName reports whether name is a topic name, by Kafka's rule:
// 1-249 characters of [a-zA-Z0-9._-], not "." or "..". (CreateTopic also
// refuses the few names the data directory uses for its own files.)
func ValidTopicName(name string) bool {
	if name == "" || len(name) > 249 || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// storedConfig is the JSON form kept in meta (bucket "topics"). Field names
// never change; durations are milliseconds.
type storedConfig struct {
	Partitions         int32   `json:"partitions"`
	Fsync              string  `json:"fsync,omitempty"`
	FsyncIntervalMs    int64   `json:"fsync_interval_ms,omitempty"`
	RetentionAgeMs     int64   `json:"retention_age_ms,omitempty"`
	RetentionBytes     int64   `json:"retention_bytes,omitempty"`
	SegmentBytes       int64   `json:"segment_bytes,omitempty"`
	SegmentAgeMs       int64   `json:"segment_age_ms,omitempty"`
	OnFull             string  `json:"on_full,omitempty"`
	MaxBatchBytes      int32   `json:"max_batch_bytes,omitempty"`
	RebuiltFromFiles   bool    `json:"rebuilt_from_files,omitempty"`
	ReplicationFactor  int32   `json:"replication_factor,omitempty"`
	MinInsyncReplicas  int32   `json:"min_insync_replicas,omitempty"`
	Origin             string  `json:"origin,omitempty"`
	Cleanup            string  `json:"cleanup_policy,omitempty"`
	DeleteRetentionMs  int64   `json:"delete_retention_ms,omitempty"`
	MinCompactionLagMs int64   `json:"min_compaction_lag_ms,omitempty"`
	MinCleanableRatio  float64 `json:"min_cleanable_ratio,omitempty"`
	TimestampType      string  `json:"timestamp_type,omitempty"`
	// ID tells incarnations of a topic name apart (journal records of a
	// deleted topic must not replay into a new one of the same name).
	ID uint64 `json:"id,omitempty"`
}

func encodeConfig(c TopicConfig, rebuilt bool, id uint64) []byte {
	s := storedConfig{
		Partitions:        c.Partitions,
		Fsync:             string(c.Fsync),
		FsyncIntervalMs:   durMs(c.FsyncInterval),
		RetentionAgeMs:    durMs(c.RetentionAge),
		RetentionBytes:    c.RetentionBytes,
		SegmentBytes:      c.SegmentBytes,
		SegmentAgeMs:      durMs(c.SegmentAge),
		OnFull:            string(c.OnFull),
		MaxBatchBytes:     c.MaxBatchBytes,
		RebuiltFromFiles:  rebuilt,
		ID:                id,
		ReplicationFactor: c.ReplicationFactor,
		MinInsyncReplicas: c.MinInsyncReplicas,
		Origin:            c.Origin,

		Cleanup:            string(c.Cleanup),
		DeleteRetentionMs:  durMs(c.DeleteRetention),
		MinCompactionLagMs: durMs(c.MinCompactionLag),
		MinCleanableRatio:  c.MinCleanableRatio,
		TimestampType:      string(c.TimestampType),
	}
	b, _ := json.Marshal(s)
	return b
}

func durMs(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return int64(d / time.Millisecond)
}

func msDur(ms int64) time.Duration {
	if ms < 0 {
		return -1
	}
	return time.Duration(ms) * time.Millisecond
}

func decodeConfig(b []byte) (TopicConfig, error) {
	c, _, err := decodeConfigID(b)
	return c, err
}

func decodeConfigID(b []byte) (TopicConfig, uint64, error) {
	var s storedConfig
	if err := json.Unmarshal(b, &s); err != nil {
		return TopicConfig{}, 0, err
	}
	return TopicConfig{
		Partitions:     s.Partitions,
		Fsync:          FsyncPolicy(s.Fsync),
		FsyncInterval:  msDur(s.FsyncIntervalMs),
		RetentionAge:   msDur(s.RetentionAgeMs),
		RetentionBytes: s.RetentionBytes,
		SegmentBytes:   s.SegmentBytes,
		SegmentAge:     msDur(s.SegmentAgeMs),
		OnFull:         OnFull(s.OnFull),
		MaxBatchBytes:  s.MaxBatchBytes,

		ReplicationFactor: s.ReplicationFactor,
		MinInsyncReplicas: s.MinInsyncReplicas,
		Origin:            s.Origin,

		Cleanup:           CleanupPolicy(s.Cleanup),
		DeleteRetention:   msDur(s.DeleteRetentionMs),
		MinCompactionLag:  msDur(s.MinCompactionLagMs),
		MinCleanableRatio: s.MinCleanableRatio,
		TimestampType:     TimestampType(s.TimestampType),
	}, s.ID, nil
}

// newTopicID returns a random non-zero topic incarnation id.
func newTopicID() uint64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		if id := binary.BigEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

// DefaultTopicConfig is the config whose fields fill the zero fields of
// Options.Defaults (and so of every topic's config).
func DefaultTopicConfig() TopicConfig { return builtinDefaults }

// Validate checks c as CreateTopic and SetTopicConfig do; zero fields are
// valid (they take the defaults). Errors: ErrInvalidConfig,
// ErrInvalidPartitions.
func (c TopicConfig) Validate() error { return validateConfig(c, false) }

// WithDefaults returns c with every zero field taken from d.
func (c TopicConfig) WithDefaults(d TopicConfig) TopicConfig { return fillConfig(c, d) }

// MaxPartitions is the most partitions a topic may have. Creating
// partitions holds the log's topic lock and costs files and space for each
// (100,000 took 784 MB and stopped every append for 25 s on a 2-core box);
// 10,000 is ten times the trickle load the log is measured with (1,000
// partitions at 10,000 records a second).
const MaxPartitions = 10000
