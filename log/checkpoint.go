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
	checkpointVersion = 1
)

type ckptKey struct {
	topic     string
	partition int32
}

type ckptEntry struct {
	segBase int64 // segment holding the durable end
	pos     int64 // durable bytes of that segment
	next    int64 // offset after the durable end
}

// checkpoint is a decoded recovery checkpoint.
type checkpoint struct {
	parts map[ckptKey]ckptEntry
}

func (c *checkpoint) get(topic string, id int32) (ckptEntry, bool) {
	if c == nil {
		return ckptEntry{}, false
	}
	e, ok := c.parts[ckptKey{topic, id}]
	return e, ok
}

func encodeCheckpoint(parts map[ckptKey]ckptEntry) []byte {
	b := []byte(checkpointMagic)
	b = binary.BigEndian.AppendUint16(b, checkpointVersion)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(parts)))
	for k, e := range parts {
		b = binary.BigEndian.AppendUint16(b, uint16(len(k.topic)))
		b = append(b, k.topic...)
		b = binary.BigEndian.AppendUint32(b, uint32(k.partition))
		b = binary.BigEndian.AppendUint64(b, uint64(e.segBase))
		b = binary.BigEndian.AppendUint64(b, uint64(e.pos))
		b = binary.BigEndian.AppendUint64(b, uint64(e.next))
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

var errBadCheckpoint = errors.New("log: bad recovery checkpoint")

func decodeCheckpoint(b []byte) (*checkpoint, error) {
	if len(b) < 20 || string(b[:8]) != checkpointMagic || binary.BigEndian.Uint16(b[8:]) != checkpointVersion {
		return nil, errBadCheckpoint
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return nil, errBadCheckpoint
	}
	n := int(binary.BigEndian.Uint32(body[12:]))
	r := body[16:]
	c := &checkpoint{parts: make(map[ckptKey]ckptEntry, n)}
	for i := 0; i < n; i++ {
		if len(r) < 2 {
			return nil, errBadCheckpoint
		}
		tl := int(binary.BigEndian.Uint16(r))
		if len(r) < 2+tl+28 {
			return nil, errBadCheckpoint
		}
		k := ckptKey{topic: string(r[2 : 2+tl])}
		r = r[2+tl:]
		k.partition = int32(binary.BigEndian.Uint32(r))
		c.parts[k] = ckptEntry{
			segBase: int64(binary.BigEndian.Uint64(r[4:])),
			pos:     int64(binary.BigEndian.Uint64(r[12:])),
			next:    int64(binary.BigEndian.Uint64(r[20:])),
		}
		r = r[28:]
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
	parts := map[ckptKey]ckptEntry{}
	for _, t := range l.topicList() {
		for _, p := range t.partitions() {
			p.mu.Lock()
			if p.durableSeg != nil && !p.closed || p.durableSeg != nil && l.closed.Load() {
				parts[ckptKey{t.name, p.id}] = ckptEntry{segBase: p.durableSeg.base, pos: p.durablePos, next: p.durable}
			}
			p.mu.Unlock()
		}
	}
	return writeFileAtomic(l.fs, filepath.Join(l.dir, checkpointName), encodeCheckpoint(parts))
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

// checkpointLoop rewrites the checkpoint while durable ends move.
func (l *logImpl) checkpointLoop() {
	t := time.NewTicker(l.opts.CheckpointInterval)
	defer t.Stop()
	var last uint64
	lastWrite := time.Now()
	for {
		kicked := false
		select {
		case <-l.quit:
			return
		case <-t.C:
		case <-l.ckptKick:
			kicked = true
			if wait := checkpointMinGap - time.Since(lastWrite); wait > 0 {
				select {
				case <-l.quit:
					return
				case <-time.After(wait):
				}
			}
		}
		n := l.stats.appendedBatches.Load()
		if n == last && !kicked {
			continue
		}
		last = n
		lastWrite = time.Now()
		if err := l.writeCheckpoint(); err != nil {
			l.logger.Warn("log: cannot write recovery checkpoint", "err", err)
		}
	}
}
