package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"

	"github.com/runnel/runnel/log/vfs"
)

// Index files (see doc.go for the drawing). Never change these constants.
const (
	offsetIndexMagic = "RNLOIDX\x00" // .index
	timeIndexMagic   = "RNLTIDX\x00" // .timeindex
	indexVersion     = 1
	indexHeaderSize  = 24 // magic 8, version u16, entry size u16, base i64, crc u32
	offsetEntrySize  = 12 // relOffset u32, position u32, crc u32
	timeEntrySize    = 16 // maxTimestamp i64, relOffset u32, crc u32
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errBadIndex means an index file is missing, torn or inconsistent; the
// caller rebuilds it from the .log.
var errBadIndex = errors.New("log: bad index file")

// indexEntry is one sparse index point: the batch starting at pos has base
// offset segBase+relOff; maxTs is the largest batch maxTimestamp of the
// segment up to and including that batch.
type indexEntry struct {
	relOff uint32
	pos    uint32
	maxTs  int64
}

// lookupOffset returns the entry with the largest offset <= rel, or the
// zero entry (position 0) when none.
func lookupOffset(idx []indexEntry, rel uint32) indexEntry {
	i := sort.Search(len(idx), func(i int) bool { return idx[i].relOff > rel })
	if i == 0 {
		return indexEntry{}
	}
	return idx[i-1]
}

// lookupTime returns the last entry whose maxTs < ts (every batch up to it
// is older than ts, so a scan for ts starts there), or the zero entry.
func lookupTime(idx []indexEntry, ts int64) indexEntry {
	i := sort.Search(len(idx), func(i int) bool { return idx[i].maxTs >= ts })
	if i == 0 {
		return indexEntry{}
	}
	return idx[i-1]
}

func indexHeader(magic string, entrySize int, base int64) []byte {
	h := make([]byte, indexHeaderSize)
	copy(h, magic)
	binary.BigEndian.PutUint16(h[8:], indexVersion)
	binary.BigEndian.PutUint16(h[10:], uint16(entrySize))
	binary.BigEndian.PutUint64(h[12:], uint64(base))
	binary.BigEndian.PutUint32(h[20:], crc32.Checksum(h[:20], crcTable))
	return h
}

func checkIndexHeader(b []byte, magic string, entrySize int, base int64) error {
	if len(b) < indexHeaderSize || string(b[:8]) != magic ||
		binary.BigEndian.Uint16(b[8:]) != indexVersion ||
		int(binary.BigEndian.Uint16(b[10:])) != entrySize ||
		int64(binary.BigEndian.Uint64(b[12:])) != base ||
		binary.BigEndian.Uint32(b[20:]) != crc32.Checksum(b[:20], crcTable) {
		return errBadIndex
	}
	return nil
}

// encodeIndexes returns the .index and .timeindex file contents.
func encodeIndexes(base int64, idx []indexEntry) (oi, ti []byte) {
	oi = indexHeader(offsetIndexMagic, offsetEntrySize, base)
	ti = indexHeader(timeIndexMagic, timeEntrySize, base)
	for _, e := range idx {
		n := len(oi)
		oi = binary.BigEndian.AppendUint32(oi, e.relOff)
		oi = binary.BigEndian.AppendUint32(oi, e.pos)
		oi = binary.BigEndian.AppendUint32(oi, crc32.Checksum(oi[n:], crcTable))
		n = len(ti)
		ti = binary.BigEndian.AppendUint64(ti, uint64(e.maxTs))
		ti = binary.BigEndian.AppendUint32(ti, e.relOff)
		ti = binary.BigEndian.AppendUint32(ti, crc32.Checksum(ti[n:], crcTable))
	}
	return oi, ti
}

// decodeIndexes parses both index files of a segment of logSize bytes and
// checks every entry (CRC, increasing offsets and positions, positions
// inside the log). The timeindex must hold the same entries.
func decodeIndexes(base, logSize int64, oi, ti []byte) ([]indexEntry, error) {
	if err := checkIndexHeader(oi, offsetIndexMagic, offsetEntrySize, base); err != nil {
		return nil, err
	}
	if err := checkIndexHeader(ti, timeIndexMagic, timeEntrySize, base); err != nil {
		return nil, err
	}
	oi, ti = oi[indexHeaderSize:], ti[indexHeaderSize:]
	if len(oi)%offsetEntrySize != 0 || len(ti)%timeEntrySize != 0 || len(oi)/offsetEntrySize != len(ti)/timeEntrySize {
		return nil, errBadIndex
	}
	n := len(oi) / offsetEntrySize
	idx := make([]indexEntry, 0, n)
	for i := 0; i < n; i++ {
		o := oi[i*offsetEntrySize : (i+1)*offsetEntrySize]
		t := ti[i*timeEntrySize : (i+1)*timeEntrySize]
		if binary.BigEndian.Uint32(o[8:]) != crc32.Checksum(o[:8], crcTable) ||
			binary.BigEndian.Uint32(t[12:]) != crc32.Checksum(t[:12], crcTable) {
			return nil, errBadIndex
		}
		e := indexEntry{
			relOff: binary.BigEndian.Uint32(o),
			pos:    binary.BigEndian.Uint32(o[4:]),
			maxTs:  int64(binary.BigEndian.Uint64(t)),
		}
		if binary.BigEndian.Uint32(t[8:]) != e.relOff || int64(e.pos) >= logSize {
			return nil, errBadIndex
		}
		if i > 0 {
			p := idx[i-1]
			if e.relOff < p.relOff || e.pos <= p.pos || e.maxTs < p.maxTs {
				return nil, errBadIndex
			}
		}
		idx = append(idx, e)
	}
	return idx, nil
}

// writeIndexes writes both index files of a sealed segment. They are not
// synced: they can always be rebuilt from the .log, and a torn one fails
// its checks on load.
func writeIndexes(fs vfs.FS, logPath string, base int64, idx []indexEntry) error {
	oi, ti := encodeIndexes(base, idx)
	for _, w := range []struct {
		path string
		b    []byte
	}{{indexPath(logPath), oi}, {timeIndexPath(logPath), ti}} {
		f, err := fs.Create(w.path)
		if err != nil {
			return err
		}
		_, err = f.Write(w.b)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readIndexes loads both index files of a segment.
func readIndexes(fs vfs.FS, logPath string, base, logSize int64) ([]indexEntry, error) {
	oi, err := readWhole(fs, indexPath(logPath))
	if err != nil {
		return nil, err
	}
	ti, err := readWhole(fs, timeIndexPath(logPath))
	if err != nil {
		return nil, err
	}
	return decodeIndexes(base, logSize, oi, ti)
}

// maxReadWhole bounds a file that is read whole into memory (an index, the
// checkpoint, a topic config, the journal, a shared file scanned at open).
// Every such file the log writes stays far below it (Options bounds the
// journal and shared files); a larger one is damage and is reported, where
// a buffer of its size would not fit a 32-bit address space (make panics
// past 2 GiB there) or the memory of a small box.
const maxReadWhole = 1 << 30

// errTooLargeToRead reports a file over maxReadWhole.
func errTooLargeToRead(path string, size int64) error {
	return fmt.Errorf("%w: %s is %d bytes, more than any file of its kind (%d) the log reads whole", ErrCorrupt, path, size, int64(maxReadWhole))
}

func readWhole(fs vfs.FS, path string) ([]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > maxReadWhole {
		return nil, errTooLargeToRead(path, st.Size())
	}
	b := make([]byte, st.Size())
	if err := readAtFull(f, b, 0); err != nil {
		return nil, err
	}
	return b, nil
}
