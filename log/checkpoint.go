package log

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"

	"github.com/runnel/runnel/log/vfs"
)

// The recovery checkpoint (see doc.go) records, per partition, a position
// known to be durable, so recovery after a crash scans only what follows.
// Never change these constants.
const (
	checkpointName    = "recovery-point"
	checkpointMagic   = "RNLCKPT\x00"
	checkpointVersion = 3 // 2: no topic ids; 1: no log start, no shared end (both still read)
)

type ckptKey struct {
	topic     string
	partition int32
}

type ckptEntry struct {
	topicID uint64 // the topic's id (config.json; 0: unknown, before version 3)
	segBase int64  // segment holding the durable end
	pos     int64  // durable bytes of that segment
	next    int64  // offset after the durable end
	start   int64  // log start (-1: unknown, version 1)
}

// checkpoint is a decoded recovery checkpoint.
type checkpoint struct {
	parts map[ckptKey]ckptEntry
	// the last shared file and its durable size: bad bytes before it are
	// damage, never a torn tail
	sharedSeq uint64
	sharedPos int64
}

// get returns the entry of partition id of topic, whose id is topicID
// (0: unknown). An entry of another topic of that name (deleted and
// re-created since) is none.
func (c *checkpoint) get(topic string, topicID uint64, id int32) (ckptEntry, bool) {
	if c == nil {
		return ckptEntry{}, false
	}
	e, ok := c.parts[ckptKey{topic, id}]
	if ok && e.topicID != 0 && topicID != 0 && e.topicID != topicID {
		return ckptEntry{}, false
	}
	return e, ok
}

func encodeCheckpoint(parts map[ckptKey]ckptEntry, sharedSeq uint64, sharedPos int64) []byte {
	b := []byte(checkpointMagic)
	b = binary.BigEndian.AppendUint16(b, checkpointVersion)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(parts)))
	for k, e := range parts {
		b = binary.BigEndian.AppendUint16(b, uint16(len(k.topic)))
		b = append(b, k.topic...)
		b = binary.BigEndian.AppendUint32(b, uint32(k.partition))
		b = binary.BigEndian.AppendUint64(b, e.topicID)
		b = binary.BigEndian.AppendUint64(b, uint64(e.segBase))
		b = binary.BigEndian.AppendUint64(b, uint64(e.pos))
		b = binary.BigEndian.AppendUint64(b, uint64(e.next))
		b = binary.BigEndian.AppendUint64(b, uint64(e.start))
	}
	b = binary.BigEndian.AppendUint64(b, sharedSeq)
	b = binary.BigEndian.AppendUint64(b, uint64(sharedPos))
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

var errBadCheckpoint = errors.New("log: bad recovery checkpoint")

func decodeCheckpoint(b []byte) (*checkpoint, error) {
	if len(b) < 20 || string(b[:8]) != checkpointMagic {
		return nil, errBadCheckpoint
	}
	v := binary.BigEndian.Uint16(b[8:])
	if v < 1 || v > checkpointVersion {
		return nil, errBadCheckpoint
	}
	// Per entry after the topic name: partition i32, topic id u64
	// (version 3), then segment base, position, next offset i64 and log
	// start i64 (version 2 on).
	idSize, esize := 0, 28
	if v >= 2 {
		esize = 36
	}
	if v >= 3 {
		idSize = 8
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return nil, errBadCheckpoint
	}
	r := body[16:]
	// Each entry takes at least 2+idSize+esize bytes: a count the body
	// cannot hold is damage (and must not size the map: 2^32-1 entries
	// exhaust memory, and turn negative in a 32-bit int).
	n64 := uint64(binary.BigEndian.Uint32(body[12:]))
	if n64 > uint64(len(r)/(2+idSize+esize)) {
		return nil, errBadCheckpoint
	}
	n := int(n64)
	c := &checkpoint{parts: make(map[ckptKey]ckptEntry, n)}
	for i := 0; i < n; i++ {
		if len(r) < 2 {
			return nil, errBadCheckpoint
		}
		tl := int(binary.BigEndian.Uint16(r))
		if len(r) < 2+tl+idSize+esize {
			return nil, errBadCheckpoint
		}
		k := ckptKey{topic: string(r[2 : 2+tl])}
		r = r[2+tl:]
		k.partition = int32(binary.BigEndian.Uint32(r))
		var e ckptEntry
		if idSize > 0 {
			e.topicID = binary.BigEndian.Uint64(r[4:])
			r = r[idSize:]
		}
		e.segBase = int64(binary.BigEndian.Uint64(r[4:]))
		e.pos = int64(binary.BigEndian.Uint64(r[12:]))
		e.next = int64(binary.BigEndian.Uint64(r[20:]))
		e.start = -1
		if v >= 2 {
			e.start = int64(binary.BigEndian.Uint64(r[28:]))
		}
		c.parts[k] = e
		r = r[esize:]
	}
	if v >= 2 {
		if len(r) < 16 {
			return nil, errBadCheckpoint
		}
		c.sharedSeq, c.sharedPos = binary.BigEndian.Uint64(r), int64(binary.BigEndian.Uint64(r[8:]))
		r = r[16:]
	}
	if len(r) != 0 {
		return nil, errBadCheckpoint
	}
	return c, nil
}

func readCheckpoint(fs vfs.FS, dir string) (*checkpoint, error) {
	b, err := readWhole(fs, filepath.Join(dir, checkpointName))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	return decodeCheckpoint(b)
}

// writeCheckpoint records every partition's durable end: temp file, fsync,
// rename, fsync of the directory.
func (l *logImpl) writeCheckpoint() error {
	l.ckptMu.Lock()
	defer l.ckptMu.Unlock()
	return l.writeCheckpointHolding(nil)
}

// writeCheckpointHolding is writeCheckpoint for a caller that holds
// ckptMu and the mu of held (nil: none).
func (l *logImpl) writeCheckpointHolding(held *partition) error {
	// The shared end first: everything durable now is at or before it.
	seq, pos := l.shared.durableEnd()
	parts := map[ckptKey]ckptEntry{}
	for _, t := range l.topicList() {
		for _, p := range t.partitions() {
			if p != held {
				p.mu.Lock()
			}
			if p.durableSeg != nil && !p.closed || p.durableSeg != nil && l.closed.Load() {
				parts[ckptKey{t.name, p.id}] = ckptEntry{topicID: t.id, segBase: p.durableSeg.base, pos: p.durablePos, next: p.durable, start: p.startLocked()}
			}
			if p != held {
				p.mu.Unlock()
			}
		}
	}
	return writeFileAtomic(l.fs, filepath.Join(l.dir, checkpointName), encodeCheckpoint(parts, seq, pos))
}

// kickCheckpoint asks for a checkpoint soon (a sealed segment became
// durable: recovery then need not scan it).
func (l *logImpl) kickCheckpoint() {
	select {
	case l.ckptKick <- struct{}{}:
	default:
	}
}

// checkpointMinGap rate-limits checkpoints asked for by kickCheckpoint.
const checkpointMinGap = time.Second

// checkpointLoop rewrites the checkpoint while durable ends move: at most
// every CheckpointInterval while appends come (sooner, but at most every
// checkpointMinGap, when kicked), never while the log takes none.
func (l *logImpl) checkpointLoop() {
	w := NewWaiter()
	last := l.stats.appendedBatches.Load() // Open wrote a checkpoint
	lastWrite := time.Now()
	for {
		// Asleep until an append or a kick.
		w.Reset()
		l.appends.Add(w, int64(last), int64(last))
		if l.stats.appendedBatches.Load() > last {
			w.Signal() // an append between the read and the registration
		}
		kicked := false
		select {
		case <-l.quit:
			return
		case <-w.C():
		case <-l.ckptKick:
			kicked = true
		}
		// Then the rest of the interval since the last write, or a whole
		// one after a quiet spell (a kick cuts it short): a stream of
		// appends writes one checkpoint per interval.
		wait := l.opts.CheckpointInterval - time.Since(lastWrite)
		if wait <= 0 {
			wait = l.opts.CheckpointInterval
		}
		if !kicked {
			t := time.NewTimer(wait)
			select {
			case <-l.quit:
				t.Stop()
				return
			case <-t.C:
			case <-l.ckptKick:
				t.Stop()
				kicked = true
			}
		}
		if wait := checkpointMinGap - time.Since(lastWrite); kicked && wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-l.quit:
				t.Stop()
				return
			case <-t.C:
			}
		}
		last = l.stats.appendedBatches.Load()
		lastWrite = time.Now()
		l.shared.indexPending()
		if err := l.writeCheckpoint(); err != nil {
			l.logger.Warn("log: cannot write recovery checkpoint", "err", err)
		}
	}
}
