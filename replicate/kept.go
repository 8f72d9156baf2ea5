package replicate

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/meta"
)

// Records a copy holds that its origin's history does not are kept
// before the copy is cut back. The origin lost them (a power cut under
// fsync interval or never, or a wiped data dir) and could not take them
// back from this copy because this box was unreachable while the origin
// restarted; some may have been acknowledged (acks=all waited for this
// copy). They are appended, in order, to this node's topic
// "__runnel_diverged.<origin>.<topic>", same partition, before the cut:
// retention forever, never forwarded (an internal topic), replicated to
// the site like any topic of this node. Offsets are new there; the log
// line of each keeping names both ranges. Producer ids and transaction
// marks are cleared (control batches are left out): these are records
// to read back, not a producer's stream. Where they cannot be kept (a
// full disk), the copy is not cut: it stops fetching as diverged.

// DivergedPrefix starts the name of the topic that keeps what a copy of
// origin's topic held beyond the origin's history: DivergedPrefix +
// "<origin>.<topic>".
const DivergedPrefix = "__runnel_diverged."

// keptBucket (meta.db) holds, per copy partition, the range being kept,
// the CRC of its first batch and how far it is kept: a keeping cut short
// (an error, a stop, a crash) or a cut that failed after it goes on from
// there when tried again, and does not keep the same records twice. The
// entry goes once the cut is done.
const keptBucket = "replicate-kept"

type keptRange struct {
	From  int64  `json:"from"`
	To    int64  `json:"to"`
	First uint32 `json:"first_crc"`
	Done  int64  `json:"done"` // kept before this offset
}

func keptKey(local string, partition int32) string {
	return local + "\x00" + strconv.Itoa(int(partition))
}

// forgetKept drops k's keeping record (its cut is done).
func (f *fetcher) forgetKept(k tp) {
	key := keptKey(MirrorName(f.peer.NodeID, k.topic), k.partition)
	if err := f.r.registry.store.KVApply(keptBucket, []meta.KVWrite{{Key: key}}); err != nil {
		f.r.logger.Warn("mirror: cannot drop a kept range's record", "topic", MirrorName(f.peer.NodeID, k.topic), "partition", k.partition, "err", err)
	}
}

// keepCut appends the batches of the copy of k in [from, to) to its
// diverged topic and returns the records appended.
func (f *fetcher) keepCut(ctx context.Context, k tp, from, to int64) (int64, error) {
	if from >= to {
		return 0, nil
	}
	// The diverged topic is this node's own: nothing is appended to it
	// while the start takes back what the site's copies hold of this
	// node's topics (it may be one of them).
	for f.r.restoring.Load() {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	local := MirrorName(f.peer.NodeID, k.topic)
	info, err := f.r.inner.Topic(local)
	if err != nil {
		return 0, err
	}
	data, err := f.r.inner.Read(local, k.partition, from, 1)
	if err != nil {
		return 0, err
	}
	h, err := batch.ParseHeader(data)
	if err != nil {
		return 0, err
	}
	this := keptRange{From: from, To: to, First: h.CRC, Done: from}
	key := keptKey(local, k.partition)
	var before keptRange
	if v, err := f.r.registry.store.KVGet(keptBucket, key); err == nil && v != nil {
		json.Unmarshal(v, &before)
	}
	if before.From == this.From && before.To == this.To && before.First == this.First {
		this.Done = max(before.Done, from) // kept that far already
	}
	record := func() {
		v, _ := json.Marshal(this)
		if err := f.r.registry.store.KVApply(keptBucket, []meta.KVWrite{{Key: key, Value: v}}); err != nil {
			f.r.logger.Warn("mirror: cannot record a kept range", "topic", local, "partition", k.partition, "err", err)
		}
	}
	name := divergedName(local)
	n := int32(len(info.Partitions))
	ti, err := f.r.inner.Topic(name)
	switch {
	case errors.Is(err, log.ErrUnknownTopic):
		// Synced before each append returns and never dropped for space,
		// whatever the node's defaults: the copy is cut once they are
		// kept.
		cfg := log.TopicConfig{
			Partitions:        n,
			Fsync:             log.FsyncAlways,
			OnFull:            log.OnFullReject,
			RetentionAge:      -1,
			RetentionBytes:    -1,
			MaxBatchBytes:     info.Config.MaxBatchBytes,
			ReplicationFactor: info.Config.ReplicationFactor,
		}
		if err := f.r.inner.CreateTopic(name, cfg); err != nil && !errors.Is(err, log.ErrTopicExists) {
			return 0, fmt.Errorf("create %s: %w", name, err)
		}
	case err != nil:
		return 0, err
	default:
		if cfg := ti.Config; cfg.Fsync != log.FsyncAlways || cfg.OnFull != log.OnFullReject {
			// Made with the node's defaults, or changed since.
			cfg.Fsync, cfg.OnFull = log.FsyncAlways, log.OnFullReject
			if err := f.r.inner.SetTopicConfig(name, cfg); err != nil {
				return 0, fmt.Errorf("set %s to sync every append: %w", name, err)
			}
		}
		if int32(len(ti.Partitions)) < n {
			if err := f.r.inner.AddPartitions(name, n); err != nil {
				return 0, fmt.Errorf("grow %s: %w", name, err)
			}
		}
	}
	var records int64
	first, last := int64(-1), int64(-1)
	for off := this.Done; off < to; {
		if err := ctx.Err(); err != nil {
			return records, err
		}
		data, err := f.r.inner.Read(local, k.partition, off, 1<<20)
		if err != nil {
			return records, fmt.Errorf("read %s/%d at %d: %w", local, k.partition, off, err)
		}
		if len(data) == 0 {
			break
		}
		var out []byte
		for len(data) >= batch.HeaderSize {
			h, err := batch.ParseHeader(data)
			if err != nil || h.Size() > len(data) {
				return records, fmt.Errorf("read %s/%d at %d: %v", local, k.partition, off, err)
			}
			b := data[:h.Size()]
			data = data[h.Size():]
			if h.BaseOffset >= to {
				data = nil
				break
			}
			off = h.LastOffset() + 1
			if h.Control() || h.RecordCount == 0 || h.LastOffset() < this.Done {
				continue // a marker, or what compaction left of removed records
			}
			out = append(out, b...)
			plain(out[len(out)-len(b):])
			records += int64(h.RecordCount)
		}
		if len(out) == 0 {
			continue
		}
		base, err := f.r.inner.Append(ctx, name, k.partition, out)
		if err != nil {
			return records, fmt.Errorf("append to %s/%d: %w", name, k.partition, err)
		}
		if first < 0 {
			first = base
		}
		last = base + recordsIn(out) - 1
		this.Done = off
		record()
	}
	this.Done = to
	record()
	if records > 0 {
		f.r.stats.keptRecords.Add(uint64(records))
		f.r.logger.Error("mirror: kept what this copy held beyond its origin's history before cutting it; some may have been acknowledged",
			"peer", f.peer.NodeID, "topic", local, "partition", k.partition, "from", from, "to", to,
			"kept_in", name, "kept_from", first, "kept_to", last+1, "records", records)
	}
	return records, nil
}

// divergedName is DivergedPrefix + local, cut to Kafka's 249 characters
// with a hash of the whole name where longer.
func divergedName(local string) string {
	name := DivergedPrefix + local
	if len(name) <= 249 {
		return name
	}
	h := fnv.New32a()
	h.Write([]byte(local))
	return fmt.Sprintf("%s-%08x", name[:240], h.Sum32())
}

// plain clears the producer id, epoch and sequence and the transactional
// mark of the batch b (whole), and sets its CRC again.
func plain(b []byte) {
	binary.BigEndian.PutUint64(b[batch.OffProducerID:], ^uint64(0))
	binary.BigEndian.PutUint16(b[batch.OffProducerEpoch:], ^uint16(0))
	binary.BigEndian.PutUint32(b[batch.OffBaseSequence:], ^uint32(0))
	a := binary.BigEndian.Uint16(b[batch.OffAttributes:])
	binary.BigEndian.PutUint16(b[batch.OffAttributes:], a&^uint16(batch.AttrTransactional))
	binary.BigEndian.PutUint32(b[batch.OffCRC:], batch.Checksum(b))
}
