package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log/logtest/reexec"
)

// build makes a batch of n records with varied keys, values, headers and
// timestamps.
func build(t testing.TB, codec Codec, n int) ([]byte, []Record) {
	t.Helper()
	var b Builder
	b.Codec = codec
	var want []Record
	for i := range n {
		r := Record{Offset: int64(i), Timestamp: 1_700_000_000_000 + int64(i*7%5)}
		if i%3 != 0 {
			r.Key = []byte(fmt.Sprintf("key-%d", i))
		}
		if i%4 != 1 {
			r.Value = bytes.Repeat([]byte{byte('a' + i%26)}, i*13%300)
		}
		if i%2 == 0 {
			r.Headers = []RecordHeader{{Key: "h", Value: []byte("v")}, {Key: "nil", Value: nil}}
		}
		b.Add(r.Timestamp, r.Key, r.Value, r.Headers)
		want = append(want, r)
	}
	return b.Bytes(), want
}

func sameRecords(t testing.TB, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Offset != w.Offset || g.Timestamp != w.Timestamp || !bytes.Equal(g.Key, w.Key) ||
			(g.Key == nil) != (w.Key == nil) || !bytes.Equal(g.Value, w.Value) || (g.Value == nil) != (w.Value == nil) ||
			len(g.Headers) != len(w.Headers) {
			t.Fatalf("record %d: got %+v want %+v", i, g, w)
		}
		for j := range w.Headers {
			if g.Headers[j].Key != w.Headers[j].Key || !bytes.Equal(g.Headers[j].Value, w.Headers[j].Value) ||
				(g.Headers[j].Value == nil) != (w.Headers[j].Value == nil) {
				t.Fatalf("record %d header %d: %+v want %+v", i, j, g.Headers[j], w.Headers[j])
			}
		}
	}
}

func TestBuilderRoundTrip(t *testing.T) {
	for _, codec := range []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLz4, CodecZstd} {
		for _, n := range []int{1, 2, 100} {
			t.Run(fmt.Sprintf("codec%d/n%d", codec, n), func(t *testing.T) {
				b, want := build(t, codec, n)
				h, err := Validate(b)
				if err != nil {
					t.Fatal(err)
				}
				if h.Size() != len(b) || h.RecordCount != int32(n) || h.LastOffsetDelta != int32(n-1) {
					t.Fatalf("header %+v len %d", h, len(b))
				}
				if n == 100 && h.Codec() != codec {
					t.Fatalf("codec %d want %d", h.Codec(), codec)
				}
				if h.ProducerID != -1 || h.BaseSequence != -1 || h.ProducerEpoch != -1 {
					t.Fatalf("non-idempotent producer fields %+v", h)
				}
				if h.BaseTimestamp != want[0].Timestamp {
					t.Fatalf("base ts %d", h.BaseTimestamp)
				}
				var maxTs int64
				for _, r := range want {
					maxTs = max(maxTs, r.Timestamp)
				}
				if h.MaxTimestamp != maxTs {
					t.Fatalf("max ts %d want %d", h.MaxTimestamp, maxTs)
				}
				recs, err := Records(b)
				if err != nil {
					t.Fatal(err)
				}
				sameRecords(t, recs, want)

				// baseOffset is not covered by the CRC and shifts offsets.
				SetBaseOffset(b, 1000)
				if _, err := Validate(b); err != nil {
					t.Fatalf("after SetBaseOffset: %v", err)
				}
				recs, _ = Records(b)
				if recs[0].Offset != 1000 || recs[n-1].Offset != 1000+int64(n-1) {
					t.Fatalf("offsets %d..%d", recs[0].Offset, recs[n-1].Offset)
				}
				if Checksum(b) != h.CRC {
					t.Fatal("Checksum disagrees with the stored CRC")
				}
			})
		}
	}
}

func TestBuilderProducerAndReset(t *testing.T) {
	var b Builder
	b.SetProducer(42, 3, 17)
	b.Add(5, nil, []byte("x"), nil)
	b.Add(9, nil, []byte("y"), nil)
	h, err := Validate(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if h.ProducerID != 42 || h.ProducerEpoch != 3 || h.BaseSequence != 17 || h.MaxTimestamp != 9 {
		t.Fatalf("%+v", h)
	}
	b.Reset()
	if b.Len() != 0 {
		t.Fatal("Reset kept records")
	}
	b.Add(1, nil, nil, nil)
	h, err = Validate(b.Bytes())
	if err != nil || h.ProducerID != -1 || h.RecordCount != 1 {
		t.Fatalf("after Reset: %+v %v", h, err)
	}
}

// kafkaBatch encodes records the way a Kafka client does (franz-go kmsg),
// independent of Builder.
func kafkaBatch(recs []kmsg.Record, attrs int16) []byte {
	var body []byte
	for i := range recs {
		r := recs[i]
		r.OffsetDelta = int32(i)
		enc := r.AppendTo(nil)
		r.Length = int32(len(enc) - 1) // Length 0 took one varint byte
		body = r.AppendTo(body)
	}
	rb := kmsg.RecordBatch{
		FirstOffset: 0, Magic: 2, Attributes: attrs, LastOffsetDelta: int32(len(recs) - 1),
		FirstTimestamp: 1000, MaxTimestamp: 1000 + int64(len(recs)), ProducerID: -1, ProducerEpoch: -1,
		FirstSequence: -1, NumRecords: int32(len(recs)), Records: body,
	}
	out := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(out[OffBatchLength:], uint32(len(out)-LogOverhead))
	crc := crc32.Checksum(out[OffAttributes:], crc32.MakeTable(crc32.Castagnoli))
	binary.BigEndian.PutUint32(out[OffCRC:], crc)
	return out
}

func TestInteropWithKafkaEncoding(t *testing.T) {
	recs := []kmsg.Record{
		{TimestampDelta64: 0, Key: []byte("k"), Value: []byte("v1")},
		{TimestampDelta64: 2, Key: nil, Value: []byte("v2"), Headers: []kmsg.Header{{Key: "a", Value: []byte("b")}}},
		{TimestampDelta64: 1, Key: []byte(""), Value: nil},
	}
	b := kafkaBatch(recs, 0)
	if _, err := Validate(b); err != nil {
		t.Fatal(err)
	}
	got, err := Records(b)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, []Record{
		{Offset: 0, Timestamp: 1000, Key: []byte("k"), Value: []byte("v1")},
		{Offset: 1, Timestamp: 1002, Value: []byte("v2"), Headers: []RecordHeader{{Key: "a", Value: []byte("b")}}},
		{Offset: 2, Timestamp: 1001, Key: []byte{}},
	})

	// And the other way: kmsg reads what Builder writes.
	ours, want := build(t, CodecNone, 20)
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(ours); err != nil {
		t.Fatal(err)
	}
	if rb.NumRecords != 20 || uint32(rb.CRC) != crc32.Checksum(ours[OffAttributes:], crc32.MakeTable(crc32.Castagnoli)) {
		t.Fatalf("kmsg header %+v", rb)
	}
	p := rb.Records
	for i := range 20 {
		var r kmsg.Record
		if err := r.ReadFrom(p); err != nil {
			t.Fatalf("kmsg record %d: %v", i, err)
		}
		l, n := binary.Varint(p)
		p = p[n+int(l):]
		if !bytes.Equal(r.Value, want[i].Value) || !bytes.Equal(r.Key, want[i].Key) || int(r.OffsetDelta) != i {
			t.Fatalf("record %d: kmsg read %+v want %+v", i, r, want[i])
		}
	}
}

func TestValidateRejects(t *testing.T) {
	good, _ := build(t, CodecNone, 5)
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	recrc := func(b []byte) []byte {
		binary.BigEndian.PutUint32(b[OffCRC:], Checksum(b))
		return b
	}
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"header only part", good[:HeaderSize-1], ErrShort},
		{"truncated", good[:len(good)-1], ErrShort},
		{"magic 1", mut(func(b []byte) []byte { b[OffMagic] = 1; return b }), ErrMagic},
		{"length too small", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[OffBatchLength:], 10); return b }), ErrLength},
		{"length negative", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[OffBatchLength:], 0xffffffff); return b }), ErrLength},
		{"length past end", mut(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[OffBatchLength:], uint32(len(b)))
			return b
		}), ErrShort},
		{"crc field", mut(func(b []byte) []byte { b[OffCRC] ^= 1; return b }), ErrCRC},
		{"count mismatch", mut(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[OffRecordCount:], 4)
			return recrc(b)
		}), ErrRecordCount},
		{"negative count", mut(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[OffRecordCount:], 0xffffffff)
			return recrc(b)
		}), ErrRecordCount},
		{"negative last delta", mut(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[OffLastOffsetDelta:], 0xfffffffe)
			binary.BigEndian.PutUint32(b[OffRecordCount:], 0xffffffff)
			return recrc(b)
		}), ErrRecordCount},
	}
	for _, c := range cases {
		if _, err := Validate(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// TestEveryCoveredBitFlipDetected flips each bit from attributes to the end:
// the CRC must catch every one.
func TestEveryCoveredBitFlipDetected(t *testing.T) {
	good, _ := build(t, CodecNone, 3)
	for i := OffAttributes; i < len(good); i++ {
		for bit := range 8 {
			b := append([]byte(nil), good...)
			b[i] ^= 1 << bit
			if _, err := Validate(b); !errors.Is(err, ErrCRC) {
				t.Fatalf("flip byte %d bit %d: %v", i, bit, err)
			}
		}
	}
	// Bits in the CRC field itself.
	for i := OffCRC; i < OffCRC+4; i++ {
		b := append([]byte(nil), good...)
		b[i] ^= 0x10
		if _, err := Validate(b); !errors.Is(err, ErrCRC) {
			t.Fatalf("flip crc byte %d: %v", i, err)
		}
	}
}

func TestValidateAll(t *testing.T) {
	a, _ := build(t, CodecNone, 3)
	b, _ := build(t, CodecZstd, 50)
	cat := append(append([]byte(nil), a...), b...)
	hs, err := ValidateAll(cat)
	if err != nil || len(hs) != 2 || hs[0].RecordCount != 3 || hs[1].RecordCount != 50 {
		t.Fatalf("%v %+v", err, hs)
	}
	if _, err := ValidateAll(nil); !errors.Is(err, ErrShort) {
		t.Fatalf("empty: %v", err)
	}
	if _, err := ValidateAll(append(cat, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	if _, err := ValidateAll(cat[:len(cat)-1]); err == nil {
		t.Fatal("truncated second batch accepted")
	}
}

func TestControlBatchHasNoRecords(t *testing.T) {
	b := kafkaBatch([]kmsg.Record{{Key: []byte{0, 0, 0, 0}, Value: []byte{0, 0, 0, 0, 0, 0}}}, 0x30)
	h, err := Validate(b)
	if err != nil || !h.Control() || !h.Transactional() {
		t.Fatalf("%+v %v", h, err)
	}
	recs, err := Records(b)
	if err != nil || len(recs) != 0 {
		t.Fatalf("control batch yielded %d records, %v", len(recs), err)
	}
}

func TestLogAppendTime(t *testing.T) {
	b := kafkaBatch([]kmsg.Record{{TimestampDelta64: 1}, {TimestampDelta64: 2}}, 0x08)
	h, _ := Validate(b)
	recs, err := Records(b)
	if err != nil || !h.LogAppendTime() || recs[0].Timestamp != h.MaxTimestamp || recs[1].Timestamp != h.MaxTimestamp {
		t.Fatalf("%+v %v", recs, err)
	}
}

// TestRecordsMalformedWithValidCRC: a producer can send a batch whose CRC is
// right but whose records are garbage. Validate accepts it (it checks only
// the header); Records must return an error, never panic or run away.
func TestRecordsMalformedWithValidCRC(t *testing.T) {
	good, _ := build(t, CodecNone, 3)
	cases := map[string]func(b []byte) []byte{
		"payload truncated": func(b []byte) []byte {
			b = b[:len(b)-5]
			binary.BigEndian.PutUint32(b[OffBatchLength:], uint32(len(b)-LogOverhead))
			return b
		},
		"record length huge": func(b []byte) []byte {
			b[HeaderSize] = 0x7e
			return b
		},
		"bad codec payload": func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[OffAttributes:], uint16(CodecZstd))
			return b
		},
		"codec 7": func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[OffAttributes:], 7)
			return b
		},
	}
	for name, f := range cases {
		b := f(append([]byte(nil), good...))
		binary.BigEndian.PutUint32(b[OffCRC:], Checksum(b))
		if _, err := Validate(b); err != nil {
			t.Fatalf("%s: Validate: %v", name, err)
		}
		if _, err := Records(b); err == nil {
			t.Errorf("%s: Records accepted garbage", name)
		}
	}
}

// TestRecordsHugeCountDoesNotPanic: recordCount and lastOffsetDelta are
// producer-controlled. A 61-byte batch claiming 2^31-1 records passes
// Validate; Records must fail cleanly, not allocate 2^31 Records (which
// kills the process with "fatal error: runtime: out of memory" — not a
// recoverable panic). The decode runs in a child process so a failure here
// does not take the rest of the package's tests down.
func TestRecordsHugeCountDoesNotPanic(t *testing.T) {
	b := make([]byte, HeaderSize)
	binary.BigEndian.PutUint32(b[OffBatchLength:], uint32(HeaderSize-LogOverhead))
	b[OffMagic] = 2
	binary.BigEndian.PutUint32(b[OffLastOffsetDelta:], math.MaxInt32-1)
	binary.BigEndian.PutUint32(b[OffRecordCount:], math.MaxInt32)
	binary.BigEndian.PutUint32(b[OffCRC:], Checksum(b))
	if _, err := Validate(b); err != nil {
		t.Skipf("Validate now rejects it (%v): fine", err)
	}
	if os.Getenv("BATCH_TEST_CHILD") == "huge-count" {
		if _, err := Records(b); err == nil {
			fmt.Println("Records decoded 2^31-1 records from 0 bytes")
			os.Exit(3)
		}
		return
	}
	cmd := reexec.Command("-test.run=^TestRecordsHugeCountDoesNotPanic$", "-test.count=1")
	cmd.Env = append(os.Environ(), "BATCH_TEST_CHILD=huge-count", "GOMEMLIMIT=256MiB")
	out, err := cmd.CombinedOutput()
	if err != nil {
		first, _, _ := strings.Cut(string(out), "\n")
		t.Fatalf("Records on a CRC-valid 61-byte batch claiming 2^31-1 records killed the process (%v): %s", err, first)
	}
}

// TestRecordsInvalidHeaderDoesNotPanic: Records on data that was never
// validated (a negative record count) must return an error.
func TestRecordsInvalidHeaderDoesNotPanic(t *testing.T) {
	b := make([]byte, HeaderSize)
	binary.BigEndian.PutUint32(b[OffBatchLength:], uint32(HeaderSize-LogOverhead))
	b[OffMagic] = 2
	binary.BigEndian.PutUint32(b[OffRecordCount:], 0xffffffff)
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Records panicked on recordCount -1: %v", r)
		}
	}()
	if _, err := Records(b); err == nil {
		t.Fatal("Records accepted recordCount -1")
	}
}

func TestPartitionMatchesKafka(t *testing.T) {
	// Vectors from Kafka's UtilsTest.testMurmur2.
	vectors := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	}
	for k, want := range vectors {
		if got := int32(murmur2([]byte(k))); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", k, got, want)
		}
	}
	// And the partition franz-go's default (Kafka-compatible) partitioner picks.
	p := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for i := range 2000 {
		key := []byte(fmt.Sprintf("sensor-%d/%d", i, i*i))
		for _, n := range []int32{1, 3, 7, 64} {
			want := p.Partition(&kgo.Record{Key: key}, int(n))
			if got := Partition(key, n); int(got) != want {
				t.Fatalf("Partition(%q, %d) = %d, franz-go says %d", key, n, got, want)
			}
		}
	}
}
