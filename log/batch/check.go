package batch

import (
	"encoding/binary"
	"fmt"
)

// CheckRecords walks every record of every batch in b, decompressing as
// needed (bounded by MaxDecompressedBytes), and reports the first that is
// malformed: a length that overruns, an offset delta that does not count
// 0, 1, 2, ..., a header with a null key, bytes left inside a record or
// after the last one. Nothing is kept or allocated per record.
//
// It is what a Kafka broker checks before it accepts a produce (Kafka
// answers CORRUPT_MESSAGE with an InvalidRecordException): a batch the log
// stores must decode, or every reader of it (consumers, the forwarder, the
// MQTT publish routes) would fail on it later. The errors wrap ErrRecord
// (or ParseHeader's errors for a bad header).
func CheckRecords(b []byte) error {
	for i := 0; len(b) > 0; i++ {
		h, err := ParseHeader(b)
		if err != nil {
			return err
		}
		if h.Size() > len(b) {
			return ErrShort
		}
		if err := checkBatch(b[:h.Size()], &h); err != nil {
			return fmt.Errorf("batch %d: %w", i, err)
		}
		b = b[h.Size():]
	}
	return nil
}

func checkBatch(b []byte, h *Header) error {
	payload := b[HeaderSize:]
	if h.Codec() != CodecNone {
		var err error
		if payload, err = decompress(payload, h.Codec()); err != nil {
			return fmt.Errorf("%w: decompress codec %d: %w", ErrRecord, h.Codec(), err)
		}
	}
	for i := int64(0); i < int64(h.RecordCount); i++ {
		var err error
		if payload, err = skipRecord(payload, i); err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
	}
	if len(payload) != 0 {
		return fmt.Errorf("%w: %d bytes after the last of %d records", ErrRecord, len(payload), h.RecordCount)
	}
	return nil
}

// skipRecord checks the record at the start of p, whose offset delta must
// be want, and returns what follows it.
func skipRecord(p []byte, want int64) ([]byte, error) {
	l, n := binary.Varint(p)
	if n <= 0 || l < 1 || int64(len(p)-n) < l {
		return nil, fmt.Errorf("%w: record length %d overruns the batch", ErrRecord, l)
	}
	body, rest := p[n+1:n+int(l)], p[n+int(l):] // body after the attributes byte
	if _, n = binary.Varint(body); n <= 0 {
		return nil, fmt.Errorf("%w: bad timestamp delta", ErrRecord)
	}
	body = body[n:]
	off, n := binary.Varint(body)
	if n <= 0 {
		return nil, fmt.Errorf("%w: bad offset delta", ErrRecord)
	}
	if off != want {
		return nil, fmt.Errorf("%w: offset delta %d, want %d", ErrRecord, off, want)
	}
	body = body[n:]
	var err error
	if body, err = skipBytes(body, true, "key"); err != nil {
		return nil, err
	}
	if body, err = skipBytes(body, true, "value"); err != nil {
		return nil, err
	}
	nh, n := binary.Varint(body)
	if n <= 0 || nh < 0 || nh > int64(len(body)) {
		return nil, fmt.Errorf("%w: bad header count %d", ErrRecord, nh)
	}
	body = body[n:]
	for j := int64(0); j < nh; j++ {
		if body, err = skipBytes(body, false, "header key"); err != nil {
			return nil, err
		}
		if body, err = skipBytes(body, true, "header value"); err != nil {
			return nil, err
		}
	}
	if len(body) != 0 {
		return nil, fmt.Errorf("%w: record length %d leaves %d bytes unread", ErrRecord, l, len(body))
	}
	return rest, nil
}

func skipBytes(p []byte, nullable bool, what string) ([]byte, error) {
	l, n := binary.Varint(p)
	if n <= 0 || l < -1 || (l == -1 && !nullable) || l > int64(len(p)-n) {
		return nil, fmt.Errorf("%w: bad %s length %d", ErrRecord, what, l)
	}
	return p[n+max(int(l), 0):], nil
}
