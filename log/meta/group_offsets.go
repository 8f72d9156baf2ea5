package meta

import (
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// DeleteGroupOffsets removes the committed offsets of group for the given
// partitions in one transaction (Kafka's OffsetDelete). Partitions with no
// committed offset are ignored.
func (s *Store) DeleteGroupOffsets(group string, tps []TopicPartition) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketGroups)
		for _, tp := range tps {
			if err := b.Delete(makeKey(group, tp.Topic, tp.Partition)); err != nil {
				return err
			}
		}
		return nil
	})
}

// CommitOffsetsBatched stores offsets for group, durably, through bbolt's
// Batch: concurrent callers (many consumers committing at once) share one
// transaction and one fsync, at the cost of up to the batch delay (10 ms)
// of extra latency.
func (s *Store) CommitOffsetsBatched(group string, offs map[TopicPartition]GroupOffset) error {
	return s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketGroups)
		for tp, o := range offs {
			v := binary.BigEndian.AppendUint64(nil, uint64(o.Offset))
			v = append(v, o.Metadata...)
			if err := b.Put(makeKey(group, tp.Topic, tp.Partition), v); err != nil {
				return err
			}
		}
		return nil
	})
}
