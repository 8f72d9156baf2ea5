package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzValidate: Validate, ValidateAll and ParseHeader never panic, and what
// Validate accepts is self-consistent: the size fits the input, the CRC
// recomputes, and Records decodes exactly recordCount records or errors.
// Seeds: testdata/fuzz/FuzzValidate plus the batches added below.
func FuzzValidate(f *testing.F) {
	for _, n := range []int{1, 3} {
		b, _ := build(f, CodecNone, n)
		f.Add(b)
	}
	b, _ := build(f, CodecSnappy, 40)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseHeader(data)
		ValidateAll(data)
		h, err := Validate(data)
		if err != nil {
			return
		}
		if h.Size() > len(data) || h.Size() < HeaderSize {
			t.Fatalf("accepted size %d of %d bytes", h.Size(), len(data))
		}
		if Checksum(data[:h.Size()]) != h.CRC {
			t.Fatal("accepted a batch whose CRC does not match")
		}
		if h.RecordCount > int32(h.Size()) {
			return // known: Records over-allocates (TestRecordsHugeCountDoesNotPanic)
		}
		recs, err := Records(data)
		if err == nil && !h.Control() && len(recs) != int(h.RecordCount) {
			t.Fatalf("Records returned %d records, header says %d", len(recs), h.RecordCount)
		}
	})
}

// FuzzRecords fuzzes the record payload behind a header whose length and
// CRC are fixed up (a hostile producer can always compute a CRC), so the
// record decoder itself is exercised. Records must never panic; what it
// decodes must survive a Builder round trip unchanged.
func FuzzRecords(f *testing.F) {
	for _, c := range []Codec{CodecNone, CodecGzip, CodecLz4, CodecZstd} {
		b, _ := build(f, c, 7)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < HeaderSize {
			return
		}
		b := append([]byte(nil), data...)
		b[OffMagic] = 2
		binary.BigEndian.PutUint32(b[OffBatchLength:], uint32(len(b)-LogOverhead))
		binary.BigEndian.PutUint32(b[OffCRC:], Checksum(b))
		h, err := Validate(b)
		if err != nil {
			if !errors.Is(err, ErrRecordCount) {
				t.Fatalf("fixed-up batch rejected: %v", err)
			}
			return
		}
		if h.RecordCount > int32(len(b)) && h.Codec() == CodecNone {
			return // known: Records over-allocates (TestRecordsHugeCountDoesNotPanic)
		}
		if h.RecordCount > 1<<20 {
			return // same, for compressed payloads
		}
		checked := CheckRecords(b)
		recs, err := Records(b)
		if checked == nil && !h.Control() {
			// What CheckRecords accepts, every reader can decode: exactly
			// recordCount records at offsets base, base+1, ...
			if err != nil || len(recs) != int(h.RecordCount) {
				t.Fatalf("CheckRecords accepted, Records: %d records, %v", len(recs), err)
			}
			for i, r := range recs {
				if r.Offset != h.BaseOffset+int64(i) {
					t.Fatalf("CheckRecords accepted, record %d at offset %d", i, r.Offset)
				}
			}
		}
		if err != nil || h.Control() {
			return
		}
		if len(recs) != int(h.RecordCount) {
			t.Fatalf("%d records, header says %d", len(recs), h.RecordCount)
		}
		if len(recs) == 0 {
			return
		}
		var bl Builder
		for _, r := range recs {
			bl.Add(r.Timestamp, r.Key, r.Value, r.Headers)
		}
		again, err := Records(bl.Bytes())
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		for i := range recs {
			a, z := recs[i], again[i]
			if !bytes.Equal(a.Key, z.Key) || (a.Key == nil) != (z.Key == nil) ||
				!bytes.Equal(a.Value, z.Value) || (a.Value == nil) != (z.Value == nil) ||
				len(a.Headers) != len(z.Headers) || a.Timestamp != z.Timestamp {
				t.Fatalf("record %d changed in a round trip: %+v -> %+v", i, a, z)
			}
		}
	})
}
