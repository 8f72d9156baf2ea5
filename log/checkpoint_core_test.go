package log

import (
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// Version 3 entries carry the topic id: an entry of a deleted topic does
// not apply to a re-created one of the same name. Version 2 files (no
// ids) still read, and apply to any topic of their name.
func TestCheckpointTopicIDs(t *testing.T) {
	parts := map[ckptKey]ckptEntry{
		{"t", 0}: {topicID: 11, segBase: 100, pos: 200, next: 150, start: 5},
		{"u", 3}: {topicID: 12, segBase: 0, pos: 24, next: 1, start: 0},
	}
	c, err := decodeCheckpoint(encodeCheckpoint(parts, 7, 4096))
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := c.get("t", 11, 0); !ok || e != parts[ckptKey{"t", 0}] {
		t.Fatalf("get t/0 of topic 11: %+v %v", e, ok)
	}
	if _, ok := c.get("t", 99, 0); ok {
		t.Fatal("an entry of topic id 11 applied to a re-created topic (id 99)")
	}
	if c.sharedSeq != 7 || c.sharedPos != 4096 {
		t.Fatalf("shared end %d/%d", c.sharedSeq, c.sharedPos)
	}

	// The same entry as version 2 wrote it.
	b := []byte(checkpointMagic)
	b = binary.BigEndian.AppendUint16(b, 2)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = append(b, 't')
	b = binary.BigEndian.AppendUint32(b, 0) // partition
	for _, v := range []int64{100, 200, 150, 5} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	b = binary.BigEndian.AppendUint64(b, 7)
	b = binary.BigEndian.AppendUint64(b, 4096)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	c, err = decodeCheckpoint(b)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := c.get("t", 99, 0)
	if want := (ckptEntry{segBase: 100, pos: 200, next: 150, start: 5}); !ok || e != want {
		t.Fatalf("version 2 entry: %+v %v, want %+v", e, ok, want)
	}
	b[len(b)-1] ^= 1
	if _, err := decodeCheckpoint(b); err == nil {
		t.Fatal("a bad CRC decoded")
	}
}

// A CRC-valid checkpoint whose entry count its body cannot hold is
// rejected before the count sizes anything (2^32-1 entries would exhaust
// memory on a 64-bit box and turn negative in a 32-bit int).
func TestCheckpointHugeEntryCount(t *testing.T) {
	for _, count := range []uint32{3, 1 << 31, 1<<32 - 1} {
		b := encodeCheckpoint(map[ckptKey]ckptEntry{{"t", 0}: {topicID: 1, pos: 24, next: 1}}, 0, 0)
		binary.BigEndian.PutUint32(b[12:], count)
		binary.BigEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], crcTable))
		if _, err := decodeCheckpoint(b); err != errBadCheckpoint {
			t.Fatalf("entry count %d in a 1-entry body: %v, want errBadCheckpoint", count, err)
		}
	}
}
