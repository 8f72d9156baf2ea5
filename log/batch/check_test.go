package batch

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestCheckRecordsAcceptsWhatBuilderWrites(t *testing.T) {
	var all []byte
	for _, codec := range []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLz4, CodecZstd} {
		for _, n := range []int{1, 2, 50} {
			b, _ := build(t, codec, n)
			if err := CheckRecords(b); err != nil {
				t.Fatalf("codec %d, %d records: %v", codec, n, err)
			}
			all = append(all, b...)
		}
	}
	if err := CheckRecords(all); err != nil {
		t.Fatalf("concatenated batches: %v", err)
	}
	if err := CheckRecords(nil); err != nil {
		t.Fatalf("no batches: %v", err)
	}
}

// TestCheckRecordsRejects: each damage a CRC cannot see (a hostile or
// buggy producer computes the CRC over what it sends).
func TestCheckRecordsRejects(t *testing.T) {
	// One record: key "k", value "v", one header h=x, so the layout after
	// the 61-byte header is fixed: len, attrs, tsDelta, offDelta, keyLen,
	// 'k', valLen, 'v', nHeaders, hKeyLen, 'h', hValLen, 'x'.
	one := func() []byte {
		var b Builder
		b.Add(5, []byte("k"), []byte("v"), []RecordHeader{{Key: "h", Value: []byte("x")}})
		return b.Bytes()
	}
	fix := func(b []byte) []byte {
		binary.BigEndian.PutUint32(b[OffBatchLength:], uint32(len(b)-LogOverhead))
		binary.BigEndian.PutUint32(b[OffCRC:], Checksum(b))
		if _, err := Validate(b); err != nil {
			t.Fatalf("fixed-up batch invalid: %v", err)
		}
		return b
	}
	const rec = HeaderSize
	cases := []struct {
		name, want string
		mutate     func([]byte) []byte
	}{
		{"offset delta 1 for the first record", "offset delta 1, want 0", func(b []byte) []byte { b[rec+3] = 2; return b }},
		{"record length past the batch", "overruns", func(b []byte) []byte { b[rec] = 0x7e; return b }},
		{"bytes after the last record", "after the last of 1 records", func(b []byte) []byte { return append(b, 0, 0) }},
		{"null header key", "bad header key length -1", func(b []byte) []byte { b[rec+9] = 1; return b }},
		{"bytes left inside the record", "leaves 1 bytes unread", func(b []byte) []byte {
			// Shorten the header value to 0 bytes: one byte stays unread.
			b[rec+11] = 0
			return b
		}},
	}
	for _, c := range cases {
		b := fix(c.mutate(one()))
		err := CheckRecords(b)
		if !errors.Is(err, ErrRecord) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ErrRecord %q", c.name, err, c.want)
		}
	}
}

// BenchmarkCheckRecords: the per-record cost the Kafka produce path pays
// (100 records of 100-byte values per batch).
func BenchmarkCheckRecords(b *testing.B) {
	for _, codec := range []Codec{CodecNone, CodecZstd} {
		var bl Builder
		bl.Codec = codec
		v := make([]byte, 100)
		for i := range 100 {
			v[0] = byte(i)
			bl.Add(int64(i), nil, v, nil)
		}
		data := bl.Bytes()
		b.Run(map[Codec]string{CodecNone: "none", CodecZstd: "zstd"}[codec], func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(100 * 100)
			for b.Loop() {
				if err := CheckRecords(data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*100/b.Elapsed().Seconds(), "rec/s")
		})
	}
}
