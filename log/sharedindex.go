package log

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/runnel/runnel/log/vfs"
)

// The extent index of a shared file (~shared/%020d.sidx, see doc.go): which
// entries of the file belong to which partition. Written once the file is
// rolled and wholly durable: open trusts it only when its checksums hold and it names the file's exact size, else scans the file
// (and writes it again). Never change these constants.
const (
	sidxSuffix     = ".sidx"
	sidxMagic      = "RNLSIDX\x00"
	sidxVersion    = 1
	sidxHeaderSize = 40 // magic 8, version u16, flags u16, sequence u64, file size i64, key count u32, directory CRC u32, header CRC u32
	sidxDirEntry   = 60 // topic id u64, partition i32, base i64, next i64, bytes i64, max ts i64, entries u32, section pos u32, length u32, CRC u32
)

func sidxPath(slogPath string) string {
	return strings.TrimSuffix(slogPath, sharedSuffix) + sidxSuffix
}

// sharedEnt is one entry of a shared file: payload bytes [fpos, fpos+n)
// holding offsets [base, next).
type sharedEnt struct {
	fpos, n, base, next, maxTs int64
}

// secLoc is where a partition's entries of a shared file lie in the
// file's extent index (n == 0: the file has no index).
type secLoc struct {
	pos, n, crc uint32
}

// foundRun is the entries of one partition in one shared file found at
// open: offsets [base, next), n payload bytes. ents is nil when they are
// left in the extent index (sec).
type foundRun struct {
	file          *sharedFile
	base, next, n int64
	maxTs         int64
	sec           secLoc
	ents          []sharedEnt
	entries       int
}

// streamEntries reads every entry of a shared file of size bytes (through
// a buffer: files are large) and groups them by partition. It fails at the
// first byte that is not a valid entry.
func streamEntries(r io.ReaderAt, seq uint64, size int64) (map[sharedKey][]sharedEnt, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 1<<20)
	out := map[sharedKey][]sharedEnt{}
	buf := make([]byte, sharedHeaderSize, 64<<10)
	if _, err := io.ReadFull(br, buf); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	seed, ok := checkSharedHeader(buf, seq)
	if !ok {
		return nil, errors.New("bad header")
	}
	for pos := int64(sharedHeaderSize); pos < size; {
		buf = buf[:sharedEntryHeader]
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, fmt.Errorf("read at %d: %w", pos, err)
		}
		n := int64(binary.BigEndian.Uint32(buf[4:]))
		if pos+sharedEntryHeader+n > size {
			return nil, fmt.Errorf("bad entry at %d", pos)
		}
		buf = slices.Grow(buf, int(n))[:sharedEntryHeader+n]
		if _, err := io.ReadFull(br, buf[sharedEntryHeader:]); err != nil {
			return nil, fmt.Errorf("read at %d: %w", pos, err)
		}
		if _, ok := parseSealEntry(buf, 0, seed, nil); !ok {
			e, ok := parseSharedEntry(buf, 0, seed)
			if !ok {
				return nil, fmt.Errorf("bad entry at %d", pos)
			}
			out[e.key] = append(out[e.key], sharedEnt{fpos: pos + sharedEntryHeader, n: e.n, base: e.base, next: e.next, maxTs: e.maxTs})
		}
		pos += sharedEntryHeader + n
	}
	return out, nil
}

// encodeSharedIndex builds the extent index of a file of size bytes.
// Sections: per entry uvarint(fpos - end of the previous entry),
// uvarint(n), uvarint(base - previous next), uvarint(next - base), the
// first entry's against 0.
func encodeSharedIndex(seq uint64, size int64, byKey map[sharedKey][]sharedEnt) ([]byte, map[sharedKey]secLoc) {
	keys := make([]sharedKey, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	// sort.Slice: slices.SortFunc links one more copy of the sort for each element type
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].topicID != keys[j].topicID {
			return keys[i].topicID < keys[j].topicID
		}
		return keys[i].partition < keys[j].partition
	})
	dirEnd := sidxHeaderSize + sidxDirEntry*len(keys)
	buf := make([]byte, dirEnd, dirEnd+len(keys)*64)
	locs := make(map[sharedKey]secLoc, len(keys))
	for i, k := range keys {
		ents := byKey[k]
		start := len(buf)
		var end, next int64
		maxTs := int64(-1)
		bytes := int64(0)
		for _, e := range ents {
			buf = binary.AppendUvarint(buf, uint64(e.fpos-end))
			buf = binary.AppendUvarint(buf, uint64(e.n))
			buf = binary.AppendUvarint(buf, uint64(e.base-next))
			buf = binary.AppendUvarint(buf, uint64(e.next-e.base))
			end, next = e.fpos+e.n, e.next
			maxTs = max(maxTs, e.maxTs)
			bytes += e.n
		}
		loc := secLoc{pos: uint32(start), n: uint32(len(buf) - start), crc: crc32.Checksum(buf[start:], crcTable)}
		locs[k] = loc
		d := buf[sidxHeaderSize+i*sidxDirEntry:]
		binary.BigEndian.PutUint64(d[0:], k.topicID)
		binary.BigEndian.PutUint32(d[8:], uint32(k.partition))
		binary.BigEndian.PutUint64(d[12:], uint64(ents[0].base))
		binary.BigEndian.PutUint64(d[20:], uint64(next))
		binary.BigEndian.PutUint64(d[28:], uint64(bytes))
		binary.BigEndian.PutUint64(d[36:], uint64(maxTs))
		binary.BigEndian.PutUint32(d[44:], uint32(len(ents)))
		binary.BigEndian.PutUint32(d[48:], loc.pos)
		binary.BigEndian.PutUint32(d[52:], loc.n)
		binary.BigEndian.PutUint32(d[56:], loc.crc)
	}
	h := buf[:sidxHeaderSize]
	copy(h, sidxMagic)
	binary.BigEndian.PutUint16(h[8:], sidxVersion)
	binary.BigEndian.PutUint64(h[12:], seq)
	binary.BigEndian.PutUint64(h[20:], uint64(size))
	binary.BigEndian.PutUint32(h[28:], uint32(len(keys)))
	binary.BigEndian.PutUint32(h[32:], crc32.Checksum(buf[sidxHeaderSize:dirEnd], crcTable))
	binary.BigEndian.PutUint32(h[36:], crc32.Checksum(h[:36], crcTable))
	return buf, locs
}

var errBadSharedIndex = errors.New("bad shared extent index")

// readSharedIndexDir reads the header and directory of sf's extent index
// and returns one run per partition. It fails unless the index is intact
// and names size, the shared file's size.
func (s *sharedLog) readSharedIndexDir(sf *sharedFile, size int64) (map[sharedKey]foundRun, error) {
	f, err := s.l.fs.Open(sidxPath(sf.path))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := make([]byte, sidxHeaderSize)
	if _, err := f.ReadAt(h, 0); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadSharedIndex, err)
	}
	if string(h[:8]) != sidxMagic || binary.BigEndian.Uint16(h[8:]) != sidxVersion ||
		binary.BigEndian.Uint32(h[36:]) != crc32.Checksum(h[:36], crcTable) ||
		binary.BigEndian.Uint64(h[12:]) != sf.seq || int64(binary.BigEndian.Uint64(h[20:])) != size {
		return nil, errBadSharedIndex
	}
	nkeys := int(binary.BigEndian.Uint32(h[28:]))
	if nkeys > 1<<24 {
		return nil, errBadSharedIndex
	}
	dir := make([]byte, nkeys*sidxDirEntry)
	if _, err := f.ReadAt(dir, sidxHeaderSize); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadSharedIndex, err)
	}
	if binary.BigEndian.Uint32(h[32:]) != crc32.Checksum(dir, crcTable) {
		return nil, errBadSharedIndex
	}
	out := make(map[sharedKey]foundRun, nkeys)
	for d := dir; len(d) >= sidxDirEntry; d = d[sidxDirEntry:] {
		k := sharedKey{binary.BigEndian.Uint64(d), int32(binary.BigEndian.Uint32(d[8:]))}
		r := foundRun{
			file:    sf,
			base:    int64(binary.BigEndian.Uint64(d[12:])),
			next:    int64(binary.BigEndian.Uint64(d[20:])),
			n:       int64(binary.BigEndian.Uint64(d[28:])),
			maxTs:   int64(binary.BigEndian.Uint64(d[36:])),
			entries: int(binary.BigEndian.Uint32(d[44:])),
			sec:     secLoc{pos: binary.BigEndian.Uint32(d[48:]), n: binary.BigEndian.Uint32(d[52:]), crc: binary.BigEndian.Uint32(d[56:])},
		}
		if r.base < 0 || r.next <= r.base || r.n <= 0 || r.n > size || r.sec.n == 0 {
			return nil, errBadSharedIndex
		}
		out[k] = r
	}
	return out, nil
}

// entriesOf returns the entries of partition key in sf: from the extent
// index section loc when there is one and it is intact, else by scanning
// the shared file itself.
func (s *sharedLog) entriesOf(sf *sharedFile, key sharedKey, loc secLoc) ([]sharedEnt, error) {
	if loc.n > 0 {
		if ents, err := s.readSection(sf, loc); err == nil {
			return ents, nil
		}
	}
	s.mu.Lock()
	size := sf.size
	s.mu.Unlock()
	if size > maxReadWhole {
		return nil, errTooLargeToRead(sf.path, size)
	}
	cf, err := s.l.files.get(sf.path, false)
	if err != nil {
		return nil, err
	}
	data := make([]byte, size)
	_, err = cf.f.ReadAt(data, 0)
	s.l.files.release(cf)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read %s: %w", sf.rel, err)
	}
	seed, ok := checkSharedHeader(data, sf.seq)
	if !ok {
		return nil, fmt.Errorf("%s: bad shared file header", sf.rel)
	}
	var out []sharedEnt
	walkEntries(data, seed, nil, func(pos int64, e sharedEntry) {
		if e.key == key {
			out = append(out, sharedEnt{fpos: pos + sharedEntryHeader, n: e.n, base: e.base, next: e.next, maxTs: e.maxTs})
		}
	}, func(int64, int64) bool { return true }) // damage: the batches it hides are reported by reads
	return out, nil
}

// readSection reads and decodes one section of sf's extent index.
func (s *sharedLog) readSection(sf *sharedFile, loc secLoc) ([]sharedEnt, error) {
	cf, err := s.l.files.get(sidxPath(sf.path), false)
	if err != nil {
		return nil, err
	}
	b := make([]byte, loc.n)
	_, err = cf.f.ReadAt(b, int64(loc.pos))
	s.l.files.release(cf)
	if err != nil {
		return nil, err
	}
	if crc32.Checksum(b, crcTable) != loc.crc {
		return nil, errBadSharedIndex
	}
	return decodeSection(b)
}

// decodeSection decodes one section of an extent index; it fails on bytes
// no encoder wrote (never panics: fuzzed).
func decodeSection(b []byte) ([]sharedEnt, error) {
	var out []sharedEnt
	var end, next int64
	for len(b) > 0 {
		var v [4]uint64
		for i := range v {
			x, n := binary.Uvarint(b)
			if n <= 0 {
				return nil, errBadSharedIndex
			}
			v[i], b = x, b[n:]
		}
		if v[0] > 1<<32 || v[1] == 0 || v[1] > 1<<32 || v[2] > 1<<62 || v[3] == 0 || v[3] > 1<<32 {
			return nil, errBadSharedIndex
		}
		e := sharedEnt{fpos: end + int64(v[0]), n: int64(v[1]), base: next + int64(v[2])}
		e.next, e.maxTs = e.base+int64(v[3]), -1
		if e.fpos > 1<<40 || e.base > 1<<62 {
			return nil, errBadSharedIndex
		}
		out = append(out, e)
		end, next = e.fpos+e.n, e.next
	}
	return out, nil
}

// writeSharedIndex writes sf's extent index.
func (s *sharedLog) writeSharedIndex(sf *sharedFile, size int64, byKey map[sharedKey][]sharedEnt) (map[sharedKey]secLoc, error) {
	buf, locs := encodeSharedIndex(sf.seq, size, byKey)
	path := sidxPath(sf.path)
	f, err := s.l.fs.Create(path)
	if err != nil {
		return nil, err
	}
	// Synced (one fsync per shared file): not needed for safety, but an
	// index lost to a power cut costs a full read of its file at open.
	_, err = f.WriteAt(buf, 0)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = vfs.SyncDir(s.l.fs, s.dir)
	}
	if err != nil {
		s.l.fs.Remove(path)
		return nil, err
	}
	return locs, nil
}

// isSidxName reports whether name is an extent index file name.
func isSidxName(name string) bool {
	_, ok := parseSharedName(strings.TrimSuffix(name, sidxSuffix) + sharedSuffix)
	return ok && strings.HasSuffix(name, sidxSuffix)
}
