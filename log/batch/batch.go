// Package batch reads and writes Kafka RecordBatch v2, the unit runnel stores
// on disk and sends on the wire.
//
// Layout of one batch (big-endian; never change, it is Kafka's format):
//
//	 0 +---------------------+
//	   | baseOffset    int64 |  rewritten by the log on append (not CRC'd)
//	 8 | batchLength   int32 |  bytes after this field
//	12 | leaderEpoch   int32 |
//	16 | magic          int8 |  always 2
//	17 | crc          uint32 |  CRC-32C of bytes [21, end)
//	21 | attributes    int16 |  bits 0-2 codec, 3 timestamp type, 4 txn, 5 control
//	23 | lastOffsetDelta int32|
//	27 | baseTimestamp int64 |
//	35 | maxTimestamp  int64 |
//	43 | producerId    int64 |
//	51 | producerEpoch int16 |
//	53 | baseSequence  int32 |
//	57 | recordCount   int32 |
//	61 | records ...         |  possibly compressed
//	   +---------------------+
//
// Each record: length varint, attributes int8, timestampDelta varlong,
// offsetDelta varint, key (varint length, -1 = null), value (same), header
// count varint, then per header key (varint length) and value (varint length).
package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Header field offsets. Never change.
const (
	OffBaseOffset      = 0
	OffBatchLength     = 8
	OffLeaderEpoch     = 12
	OffMagic           = 16
	OffCRC             = 17
	OffAttributes      = 21
	OffLastOffsetDelta = 23
	OffBaseTimestamp   = 27
	OffMaxTimestamp    = 35
	OffProducerID      = 43
	OffProducerEpoch   = 51
	OffBaseSequence    = 53
	OffRecordCount     = 57
	HeaderSize         = 61
	// LogOverhead is the part of the header not counted in batchLength.
	LogOverhead = 12
)

// Codec is the compression codec in attributes bits 0-2.
type Codec int8

const (
	CodecNone   Codec = 0
	CodecGzip   Codec = 1
	CodecSnappy Codec = 2
	CodecLz4    Codec = 3
	CodecZstd   Codec = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors returned by Parse and Validate.
var (
	ErrShort       = errors.New("batch: truncated batch")
	ErrMagic       = errors.New("batch: unsupported magic (only RecordBatch v2)")
	ErrCRC         = errors.New("batch: CRC mismatch")
	ErrLength      = errors.New("batch: bad batch length")
	ErrRecordCount = errors.New("batch: bad record count")
)

// Header is the fixed part of a batch.
type Header struct {
	BaseOffset      int64
	BatchLength     int32
	LeaderEpoch     int32
	Magic           int8
	CRC             uint32
	Attributes      int16
	LastOffsetDelta int32
	BaseTimestamp   int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	RecordCount     int32
}

// Size is the whole batch size in bytes including the 12-byte log overhead.
func (h *Header) Size() int { return int(h.BatchLength) + LogOverhead }

// LastOffset is the offset of the last record in the batch.
func (h *Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Codec returns the compression codec.
func (h *Header) Codec() Codec { return Codec(h.Attributes & 0x7) }

// Transactional reports attributes bit 4.
func (h *Header) Transactional() bool { return h.Attributes&0x10 != 0 }

// Control reports attributes bit 5.
func (h *Header) Control() bool { return h.Attributes&0x20 != 0 }

// LogAppendTime reports attributes bit 3.
func (h *Header) LogAppendTime() bool { return h.Attributes&0x08 != 0 }

// ParseHeader decodes the fixed header of the batch at the start of b. It
// checks only that the header is present and batchLength is sane; it does not
// check the CRC (see Validate).
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, ErrShort
	}
	h.BaseOffset = int64(binary.BigEndian.Uint64(b[OffBaseOffset:]))
	h.BatchLength = int32(binary.BigEndian.Uint32(b[OffBatchLength:]))
	h.LeaderEpoch = int32(binary.BigEndian.Uint32(b[OffLeaderEpoch:]))
	h.Magic = int8(b[OffMagic])
	h.CRC = binary.BigEndian.Uint32(b[OffCRC:])
	h.Attributes = int16(binary.BigEndian.Uint16(b[OffAttributes:]))
	h.LastOffsetDelta = int32(binary.BigEndian.Uint32(b[OffLastOffsetDelta:]))
	h.BaseTimestamp = int64(binary.BigEndian.Uint64(b[OffBaseTimestamp:]))
	h.MaxTimestamp = int64(binary.BigEndian.Uint64(b[OffMaxTimestamp:]))
	h.ProducerID = int64(binary.BigEndian.Uint64(b[OffProducerID:]))
	h.ProducerEpoch = int16(binary.BigEndian.Uint16(b[OffProducerEpoch:]))
	h.BaseSequence = int32(binary.BigEndian.Uint32(b[OffBaseSequence:]))
	h.RecordCount = int32(binary.BigEndian.Uint32(b[OffRecordCount:]))
	if h.Magic != 2 {
		return h, fmt.Errorf("%w: magic %d", ErrMagic, h.Magic)
	}
	if int(h.BatchLength) < HeaderSize-LogOverhead {
		return h, fmt.Errorf("%w: %d", ErrLength, h.BatchLength)
	}
	return h, nil
}

// Validate checks the batch at the start of b completely: header, length
// within b, CRC-32C, and record count consistent with lastOffsetDelta. It
// returns the header and the batch size.
func Validate(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	n := h.Size()
	if n > len(b) {
		return h, ErrShort
	}
	if got := crc32.Checksum(b[OffAttributes:n], castagnoli); got != h.CRC {
		return h, fmt.Errorf("%w: stored %08x computed %08x", ErrCRC, h.CRC, got)
	}
	if h.RecordCount < 0 || h.LastOffsetDelta < 0 || (!h.Control() && h.RecordCount != h.LastOffsetDelta+1 && h.RecordCount != 0) {
		return h, fmt.Errorf("%w: count %d lastOffsetDelta %d", ErrRecordCount, h.RecordCount, h.LastOffsetDelta)
	}
	return h, nil
}

// ValidateAll validates a sequence of one or more concatenated batches that
// must fill b exactly, and returns their headers.
func ValidateAll(b []byte) ([]Header, error) {
	var hs []Header
	for len(b) > 0 {
		h, err := Validate(b)
		if err != nil {
			return hs, err
		}
		hs = append(hs, h)
		b = b[h.Size():]
	}
	if len(hs) == 0 {
		return nil, ErrShort
	}
	return hs, nil
}

// SetBaseOffset rewrites baseOffset in place (it is not covered by the CRC).
func SetBaseOffset(b []byte, base int64) {
	binary.BigEndian.PutUint64(b[OffBaseOffset:], uint64(base))
}

// Checksum returns the CRC-32C that the batch in b should carry.
func Checksum(b []byte) uint32 {
	return crc32.Checksum(b[OffAttributes:], castagnoli)
}

// SetLogAppendTime marks the batch at the start of b as stamped with the
// log append time ts (ms): the timestamp-type attribute, maxTimestamp, and
// the CRC over both. The records are not touched.
func SetLogAppendTime(b []byte, ts int64) {
	attrs := binary.BigEndian.Uint16(b[OffAttributes:])
	binary.BigEndian.PutUint16(b[OffAttributes:], attrs|uint16(AttrLogAppendTime))
	binary.BigEndian.PutUint64(b[OffMaxTimestamp:], uint64(ts))
	n := int(binary.BigEndian.Uint32(b[OffBatchLength:])) + LogOverhead
	binary.BigEndian.PutUint32(b[OffCRC:], crc32.Checksum(b[OffAttributes:n], castagnoli))
}
