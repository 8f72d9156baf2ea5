package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"

	"github.com/klauspost/compress/s2"
)

// TestDecompressionBomb: a CRC-valid batch whose records expand past
// MaxDecompressedBytes is refused with ErrDecompressedTooLarge for every
// codec (it would otherwise be allocated whole by whoever decodes it: the
// forwarder, the MQTT publish route).
func TestDecompressionBomb(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 65 MiB per codec")
	}
	big := make([]byte, MaxDecompressedBytes+1024)
	for _, codec := range []Codec{CodecGzip, CodecSnappy, CodecLz4, CodecZstd} {
		var b Builder
		b.Codec = codec
		b.Add(1, nil, big, nil)
		data := b.Bytes()
		h, err := Validate(data)
		if err != nil {
			t.Fatalf("codec %d: %v", codec, err)
		}
		if h.Codec() != codec {
			t.Fatalf("codec %d: builder fell back to %d", codec, h.Codec())
		}
		if len(data) > 8<<20 {
			t.Fatalf("codec %d: %d bytes compressed, not a bomb", codec, len(data))
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err = Records(data)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrDecompressedTooLarge) || !errors.Is(err, ErrRecord) {
			t.Fatalf("codec %d (%d bytes): got %v, want ErrDecompressedTooLarge", codec, len(data), err)
		}
		// Refusing it must not cost more than about twice the bound in
		// total (a buffer doubling up to the bound), whatever the data
		// claims (before: 221-434 MiB for zstd, 260 MiB for lz4).
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2*MaxDecompressedBytes+8<<20 {
			t.Fatalf("codec %d: refusing the bomb allocated %d MiB", codec, alloc>>20)
		}
	}
}

// TestXerialSnappy decodes snappy framed the way the Java producer frames
// it, and rejects broken framing without panicking.
func TestXerialSnappy(t *testing.T) {
	want := bytes.Repeat([]byte("runnel xerial "), 10000)
	src := append([]byte{}, xerialPrefix...)
	src = append(src, 0, 0, 0, 1, 0, 0, 0, 1)
	for in := want; len(in) > 0; {
		n := min(32<<10, len(in))
		block := s2.EncodeSnappy(nil, in[:n])
		src = binary.BigEndian.AppendUint32(src, uint32(len(block)))
		src = append(src, block...)
		in = in[n:]
	}
	got, err := decompress(src, CodecSnappy)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("xerial decode: %d bytes, err %v", len(got), err)
	}
	for _, cut := range []int{17, 20, len(src) - 1} {
		if _, err := decompress(src[:cut], CodecSnappy); err == nil {
			t.Fatalf("truncated at %d: no error", cut)
		}
	}
	bad := append([]byte{}, src...)
	binary.BigEndian.PutUint32(bad[16:], 0xffffffff)
	if _, err := decompress(bad, CodecSnappy); err == nil {
		t.Fatal("oversize block length: no error")
	}
}
