package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kgo"
)

// RecordHeader is one key/value header of a record.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Record is one decoded record. Key and Value are nil when null.
type Record struct {
	Offset    int64
	Timestamp int64 // ms since the epoch
	Key       []byte
	Value     []byte
	Headers   []RecordHeader
}

// ErrRecord reports a malformed record inside a batch.
var ErrRecord = errors.New("batch: malformed record")

// Builder encodes records into one uncompressed (or zstd/gzip/lz4/snappy)
// RecordBatch v2. The zero value is ready to use; baseOffset is 0 and is set
// by the log on append.
type Builder struct {
	recs       []byte
	n          int32
	baseTs     int64
	maxTs      int64
	scratch    []byte
	Codec      Codec // compression of the finished batch; CodecNone by default
	ProducerID int64 // -1 unless set through SetProducer
	epoch      int16
	seq        int32
	hasPID     bool
}

// Reset empties b for reuse, keeping its buffers.
func (b *Builder) Reset() {
	b.recs = b.recs[:0]
	b.n = 0
	b.hasPID = false
}

// Len is the number of records added.
func (b *Builder) Len() int { return int(b.n) }

// Size is the length of the batch Bytes returns without compression.
func (b *Builder) Size() int { return HeaderSize + len(b.recs) }

// RecordBound is at least the encoded size of one record with key, value
// and headers in a batch (its varints taken at their largest).
func RecordBound(key, value []byte, headers []RecordHeader) int {
	n := 5 + 1 + binary.MaxVarintLen64 + 5 + 5 + len(key) + 5 + len(value) + 5
	for _, h := range headers {
		n += 5 + len(h.Key) + 5 + len(h.Value)
	}
	return n
}

// SetProducer marks the batch as idempotent.
func (b *Builder) SetProducer(id int64, epoch int16, baseSeq int32) {
	b.ProducerID, b.epoch, b.seq, b.hasPID = id, epoch, baseSeq, true
}

// Add appends a record with timestamp ts (ms).
func (b *Builder) Add(ts int64, key, value []byte, headers []RecordHeader) {
	if b.n == 0 {
		b.baseTs, b.maxTs = ts, ts
	}
	if ts > b.maxTs {
		b.maxTs = ts
	}
	body := b.scratch[:0]
	body = append(body, 0) // attributes
	body = binary.AppendVarint(body, ts-b.baseTs)
	body = binary.AppendVarint(body, int64(b.n))
	body = appendBytes(body, key)
	body = appendBytes(body, value)
	body = binary.AppendVarint(body, int64(len(headers)))
	for _, h := range headers {
		body = binary.AppendVarint(body, int64(len(h.Key)))
		body = append(body, h.Key...)
		body = appendBytes(body, h.Value)
	}
	b.recs = binary.AppendVarint(b.recs, int64(len(body)))
	b.recs = append(b.recs, body...)
	b.scratch = body
	b.n++
}

func appendBytes(dst, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(v)))
	return append(dst, v...)
}

// Bytes returns the finished batch (a new slice). It panics if no record was
// added; callers check Len first.
func (b *Builder) Bytes() []byte {
	if b.n == 0 {
		panic("batch: Bytes on empty builder")
	}
	payload := b.recs
	codec := CodecNone
	if b.Codec != CodecNone {
		if c, err := kgo.DefaultCompressor(kgoCodec(b.Codec)); err == nil && c != nil {
			var buf bytes.Buffer
			out, typ := c.Compress(&buf, b.recs)
			if typ != kgo.CodecNone {
				payload = append([]byte(nil), out...)
				codec = Codec(typ)
			}
		}
	}
	out := make([]byte, HeaderSize, HeaderSize+len(payload))
	out = append(out, payload...)
	binary.BigEndian.PutUint32(out[OffBatchLength:], uint32(len(out)-LogOverhead))
	binary.BigEndian.PutUint32(out[OffLeaderEpoch:], 0)
	out[OffMagic] = 2
	binary.BigEndian.PutUint16(out[OffAttributes:], uint16(codec))
	binary.BigEndian.PutUint32(out[OffLastOffsetDelta:], uint32(b.n-1))
	binary.BigEndian.PutUint64(out[OffBaseTimestamp:], uint64(b.baseTs))
	binary.BigEndian.PutUint64(out[OffMaxTimestamp:], uint64(b.maxTs))
	pid, epoch, seq := int64(-1), int16(-1), int32(-1)
	if b.hasPID {
		pid, epoch, seq = b.ProducerID, b.epoch, b.seq
	}
	binary.BigEndian.PutUint64(out[OffProducerID:], uint64(pid))
	binary.BigEndian.PutUint16(out[OffProducerEpoch:], uint16(epoch))
	binary.BigEndian.PutUint32(out[OffBaseSequence:], uint32(seq))
	binary.BigEndian.PutUint32(out[OffRecordCount:], uint32(b.n))
	binary.BigEndian.PutUint32(out[OffCRC:], crc32.Checksum(out[OffAttributes:], castagnoli))
	return out
}

func kgoCodec(c Codec) kgo.CompressionCodec {
	switch c {
	case CodecGzip:
		return kgo.GzipCompression()
	case CodecSnappy:
		return kgo.SnappyCompression()
	case CodecLz4:
		return kgo.Lz4Compression()
	case CodecZstd:
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}

// Records decodes every record of the batch at the start of b (which must be
// valid; see Validate), decompressing as needed. Control batches yield no
// records. Returned slices may alias b.
func Records(b []byte) ([]Record, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	if h.Size() > len(b) {
		return nil, ErrShort
	}
	if h.Control() {
		return nil, nil
	}
	payload := b[HeaderSize:h.Size()]
	if h.Codec() != CodecNone {
		payload, err = decompress(payload, h.Codec())
		if err != nil {
			return nil, fmt.Errorf("%w: decompress codec %d: %w", ErrRecord, h.Codec(), err)
		}
	}
	if h.RecordCount < 0 {
		return nil, fmt.Errorf("%w: record count %d", ErrRecord, h.RecordCount)
	}
	// A record takes at least 7 bytes; never trust the count for memory.
	recs := make([]Record, 0, min(int(h.RecordCount), len(payload)/7+1))
	for i := int32(0); i < h.RecordCount; i++ {
		var r Record
		r, payload, err = decodeRecord(payload, &h)
		if err != nil {
			return recs, fmt.Errorf("record %d: %w", i, err)
		}
		recs = append(recs, r)
	}
	return recs, nil
}

func decodeRecord(p []byte, h *Header) (Record, []byte, error) {
	var r Record
	l, n := binary.Varint(p)
	if n <= 0 || l < 0 || int64(len(p)-n) < l {
		return r, nil, ErrRecord
	}
	body, rest := p[n:n+int(l)], p[n+int(l):]
	if len(body) < 1 {
		return r, nil, ErrRecord
	}
	body = body[1:] // attributes
	tsDelta, n := binary.Varint(body)
	if n <= 0 {
		return r, nil, ErrRecord
	}
	body = body[n:]
	offDelta, n := binary.Varint(body)
	if n <= 0 {
		return r, nil, ErrRecord
	}
	body = body[n:]
	var err error
	if r.Key, body, err = readBytes(body); err != nil {
		return r, nil, err
	}
	if r.Value, body, err = readBytes(body); err != nil {
		return r, nil, err
	}
	nh, n := binary.Varint(body)
	if n <= 0 || nh < 0 || nh > int64(len(body)) {
		return r, nil, ErrRecord
	}
	body = body[n:]
	for j := int64(0); j < nh; j++ {
		var k, v []byte
		if k, body, err = readBytes(body); err != nil {
			return r, nil, err
		}
		if v, body, err = readBytes(body); err != nil {
			return r, nil, err
		}
		r.Headers = append(r.Headers, RecordHeader{Key: string(k), Value: v})
	}
	r.Offset = h.BaseOffset + offDelta
	if h.LogAppendTime() {
		r.Timestamp = h.MaxTimestamp
	} else {
		r.Timestamp = h.BaseTimestamp + tsDelta
	}
	return r, rest, nil
}

func readBytes(p []byte) ([]byte, []byte, error) {
	l, n := binary.Varint(p)
	if n <= 0 {
		return nil, nil, ErrRecord
	}
	p = p[n:]
	if l < 0 {
		return nil, p, nil
	}
	if l > int64(len(p)) {
		return nil, nil, ErrRecord
	}
	return p[:l:l], p[l:], nil
}
