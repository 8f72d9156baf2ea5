package log

// The byte format of shared segment files: the file header, entries
// (a partition's batches) and seal entries, and the scan that walks them.

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/runnel/runnel/log/batch"
)

func sharedHeader(seq uint64) []byte { return fileHeader(sharedMagic, sharedVersion, seq) }

// checkSharedHeader checks a shared file's header and returns the seed
// of its entry CRCs.
func checkSharedHeader(h []byte, seq uint64) (uint32, bool) {
	v, n, ok := parseFileHeader(h, sharedMagic)
	if !ok || n != seq {
		return 0, false
	}
	switch v {
	case 1:
		return 0, true
	case sharedVersion:
		return entrySeed(seq), true
	}
	return 0, false
}

// entrySeed is the CRC-32C of a file's sequence number (u64): its entry
// CRCs are XORed with it (version 2), so an entry left over from an
// earlier use of the file (recycled, see collect) never passes for one of
// this file.
func entrySeed(seq uint64) uint32 {
	return crc32.Checksum(binary.BigEndian.AppendUint64(nil, seq), crcTable)
}

// walkEntries walks the entries of a shared file's bytes (data, from 0)
// in file order: entry gets each valid entry; seal entries record their
// ends in sealed (nil: not recorded) and end the walk (nothing is written
// after one); bad gets each unreadable stretch [pos, next) (next: the next
// valid entry, -1: none) and says whether to go on. It returns where the
// file's valid bytes end: after a seal entry, at a stretch bad stopped
// at, else at the end of data.
func walkEntries(data []byte, seed uint32, sealed map[sharedKey]int64, entry func(pos int64, e sharedEntry), bad func(pos, next int64) bool) int64 {
	pos := int64(sharedHeaderSize)
	for pos < int64(len(data)) {
		if n, ok := parseSealEntry(data, pos, seed, sealed); ok {
			return pos + sharedEntryHeader + n
		}
		if e, ok := parseSharedEntry(data, pos, seed); ok {
			entry(pos, e)
			pos += sharedEntryHeader + e.n
			continue
		}
		next := resyncShared(data, pos+1, seed)
		if !bad(pos, next) {
			return pos
		}
		if next < 0 {
			return int64(len(data))
		}
		pos = next
	}
	return int64(len(data))
}

type sharedEntry struct {
	key               sharedKey
	n                 int64
	base, next, maxTs int64
}

// parseSharedEntry checks the entry at pos: CRC, and a payload of whole
// stored batches with offsets in sequence.
// seed is XORed into the CRC (see entrySeed; 0 for version 1 files).
func parseSharedEntry(data []byte, pos int64, seed uint32) (sharedEntry, bool) {
	var e sharedEntry
	if pos+sharedEntryHeader+batch.HeaderSize > int64(len(data)) {
		return e, false
	}
	h := data[pos:]
	n := int64(binary.BigEndian.Uint32(h[4:]))
	if n < batch.HeaderSize || pos+sharedEntryHeader+n > int64(len(data)) {
		return e, false
	}
	body := h[4 : sharedEntryHeader+n]
	if binary.BigEndian.Uint32(h) != crc32.Checksum(body, crcTable)^seed {
		return e, false
	}
	e.key = sharedKey{binary.BigEndian.Uint64(h[8:]), int32(binary.BigEndian.Uint32(h[16:]))}
	e.n = n
	payload := h[sharedEntryHeader : sharedEntryHeader+n]
	e.base, e.maxTs = -1, -1
	for off := 0; off < len(payload); {
		bh, err := batch.ParseHeader(payload[off:])
		if err == nil {
			err = checkStoredHeader(&bh)
		}
		if err != nil || off+bh.Size() > len(payload) || e.base >= 0 && bh.BaseOffset != e.next {
			return e, false
		}
		if e.base < 0 {
			e.base = bh.BaseOffset
		}
		e.next = bh.LastOffset() + 1
		if bh.MaxTimestamp > e.maxTs {
			e.maxTs = bh.MaxTimestamp
		}
		off += bh.Size()
	}
	return e, e.key.partition >= 0
}

// parseSealEntry checks for a seal entry at pos and records its ends in
// into (nil: check only).
func parseSealEntry(data []byte, pos int64, seed uint32, into map[sharedKey]int64) (int64, bool) {
	if pos+sharedEntryHeader > int64(len(data)) {
		return 0, false
	}
	h := data[pos:]
	n := int64(binary.BigEndian.Uint32(h[4:]))
	if binary.BigEndian.Uint32(h[16:]) != sealPartition || binary.BigEndian.Uint64(h[8:]) != 0 || n%20 != 0 || pos+sharedEntryHeader+n > int64(len(data)) {
		return 0, false
	}
	if binary.BigEndian.Uint32(h) != crc32.Checksum(h[4:sharedEntryHeader+n], crcTable)^seed {
		return 0, false
	}
	if into != nil {
		for b := h[sharedEntryHeader : sharedEntryHeader+n]; len(b) >= 20; b = b[20:] {
			k := sharedKey{binary.BigEndian.Uint64(b), int32(binary.BigEndian.Uint32(b[8:]))}
			if next := int64(binary.BigEndian.Uint64(b[12:])); next > into[k] {
				into[k] = next
			}
		}
	}
	return n, true
}

// resyncShared finds the next valid entry at or after from (-1: none).
// Besides its CRC, an entry found there must hold batches with valid
// CRCs: a recycled file is full of entries of its earlier use (see
// recycle), which its seed tells apart, and resync tries each of them.
func resyncShared(data []byte, from int64, seed uint32) int64 {
	for i := from; i+sharedEntryHeader <= int64(len(data)); i++ {
		if binary.BigEndian.Uint32(data[i+16:]) == sealPartition {
			if _, ok := parseSealEntry(data, i, seed, nil); ok {
				return i
			}
			continue
		}
		if i+sharedEntryHeader+batch.HeaderSize > int64(len(data)) {
			continue
		}
		b := data[i+sharedEntryHeader:]
		if b[batch.OffMagic] != 2 || b[batch.OffLeaderEpoch]&0x80 != 0 {
			continue
		}
		if e, ok := parseSharedEntry(data, i, seed); ok && validateEntryBatches(data[i+sharedEntryHeader:i+sharedEntryHeader+e.n]) == nil {
			return i
		}
	}
	return -1
}
