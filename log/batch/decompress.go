package batch

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// MaxDecompressedBytes bounds what one batch may decompress to. A batch is
// accepted by its compressed size (TopicConfig.MaxBatchBytes, 1 MiB by
// default) and its CRC, neither of which says anything about what it
// expands to: a few KiB of zstd can claim gigabytes. Records refuses such a
// batch with ErrDecompressedTooLarge instead of allocating (Kafka clients
// apply the same kind of bound, e.g. franz-go's MaxDecompressBatchBytes).
// 64 MiB is 64x the default batch limit: far above what real telemetry
// compresses by, small enough for a 1 GiB edge box.
const MaxDecompressedBytes = 64 << 20

// ErrDecompressedTooLarge: the batch would decompress past
// MaxDecompressedBytes.
var ErrDecompressedTooLarge = errors.New("batch: decompressed size exceeds 64 MiB")

var (
	zstdDec = sync.OnceValue(func() *zstd.Decoder {
		// DecodeAll is safe for concurrent use; WithDecoderMaxMemory makes
		// it refuse a frame declaring (or growing to) more than the bound
		// before allocating it.
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderConcurrency(2),
			zstd.WithDecoderMaxMemory(MaxDecompressedBytes))
		if err != nil {
			panic(err) // only on invalid options
		}
		return d
	})
	gzipPool sync.Pool // *gzip.Reader
	lz4Pool  = sync.Pool{New: func() any { return lz4.NewReader(nil) }}
)

// decompress returns the decompressed payload of codec c, never allocating
// more than MaxDecompressedBytes.
func decompress(src []byte, c Codec) ([]byte, error) {
	switch c {
	case CodecNone:
		return src, nil
	case CodecZstd:
		out, err := zstdDec().DecodeAll(src, nil)
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return nil, ErrDecompressedTooLarge
		}
		return out, err
	case CodecSnappy:
		return decompressSnappy(src)
	case CodecGzip:
		var zr *gzip.Reader
		if v := gzipPool.Get(); v != nil {
			zr = v.(*gzip.Reader)
			if err := zr.Reset(bytes.NewReader(src)); err != nil {
				return nil, err
			}
		} else {
			var err error
			if zr, err = gzip.NewReader(bytes.NewReader(src)); err != nil {
				return nil, err
			}
		}
		defer gzipPool.Put(zr)
		return readBounded(zr)
	case CodecLz4:
		zr := lz4Pool.Get().(*lz4.Reader)
		defer lz4Pool.Put(zr)
		zr.Reset(bytes.NewReader(src))
		return readBounded(zr)
	default:
		return nil, fmt.Errorf("unknown compression codec %d", c)
	}
}

// readBounded reads r to the end, refusing more than MaxDecompressedBytes.
func readBounded(r io.Reader) ([]byte, error) {
	var out bytes.Buffer
	n, err := out.ReadFrom(io.LimitReader(r, MaxDecompressedBytes+1))
	if err != nil {
		return nil, err
	}
	if n > MaxDecompressedBytes {
		return nil, ErrDecompressedTooLarge
	}
	return out.Bytes(), nil
}

// xerialPrefix starts snappy data framed the way the Java producer writes
// it: the prefix, two version ints, then blocks of (length u32, raw snappy).
var xerialPrefix = []byte{130, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

var errXerial = errors.New("malformed xerial snappy framing")

func decompressSnappy(src []byte) ([]byte, error) {
	if len(src) < 16 || !bytes.HasPrefix(src, xerialPrefix) {
		// Raw snappy: the decoded length is in the header; check the
		// claim before decoding allocates it.
		l, err := s2.DecodedLen(src)
		if err != nil {
			return nil, err
		}
		if l > MaxDecompressedBytes {
			return nil, ErrDecompressedTooLarge
		}
		return s2.Decode(nil, src)
	}
	// Sum the blocks' claimed lengths first so nothing is allocated for
	// a batch that would exceed the bound.
	total := 0
	for rem := src[16:]; len(rem) > 0; {
		if len(rem) < 4 {
			return nil, errXerial
		}
		size := binary.BigEndian.Uint32(rem)
		rem = rem[4:]
		if uint64(size) > uint64(len(rem)) {
			return nil, errXerial
		}
		l, err := s2.DecodedLen(rem[:size])
		if err != nil {
			return nil, err
		}
		if total += l; total > MaxDecompressedBytes {
			return nil, ErrDecompressedTooLarge
		}
		rem = rem[size:]
	}
	out := make([]byte, 0, total)
	for rem := src[16:]; len(rem) > 0; {
		size := binary.BigEndian.Uint32(rem)
		block := rem[4 : 4+size]
		rem = rem[4+size:]
		l, _ := s2.DecodedLen(block)
		d, err := s2.Decode(out[len(out):len(out)+l], block)
		if err != nil {
			return nil, err
		}
		out = out[:len(out)+len(d)]
	}
	return out, nil
}
