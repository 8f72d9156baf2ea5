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
	// Streaming decoders for zstd (DecodeAll trusts the frame's declared
	// size and allocates before refusing), gzip and lz4, all read through
	// readBounded.
	zstdPool = sync.Pool{New: func() any {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderConcurrency(1), // synchronous: no goroutines
			zstd.WithDecoderMaxMemory(MaxDecompressedBytes))
		if err != nil {
			panic(err) // only on invalid options
		}
		return d
	}}
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
		d := zstdPool.Get().(*zstd.Decoder)
		defer zstdPool.Put(d)
		if err := d.Reset(bytes.NewReader(src)); err != nil {
			return nil, err
		}
		hint := 0
		var fh zstd.Header
		if fh.Decode(src) == nil && fh.HasFCS {
			hint = int(min(fh.FrameContentSize, MaxDecompressedBytes+1))
		}
		out, err := readBounded(d, hint, len(src))
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
		hint := 0
		if len(src) >= 4 { // ISIZE: the uncompressed size mod 2^32 (of the last member)
			hint = int(min(uint64(binary.LittleEndian.Uint32(src[len(src)-4:])), MaxDecompressedBytes+1))
		}
		return readBounded(zr, hint, len(src))
	case CodecLz4:
		zr := lz4Pool.Get().(*lz4.Reader)
		defer lz4Pool.Put(zr)
		zr.Reset(bytes.NewReader(src))
		return readBounded(zr, 0, len(src))
	default:
		return nil, fmt.Errorf("unknown compression codec %d", c)
	}
}

// readBounded reads r to the end, refusing more than MaxDecompressedBytes.
// The buffer starts at hint (a size the data declares, itself capped) or
// a guess from the compressed size, and doubles up to the bound + 1 at
// most: a batch that would exceed it is refused after allocating at most
// about twice the bound in total (1.5 times live), whatever its header
// claims.
func readBounded(r io.Reader, hint, compressed int) ([]byte, error) {
	const limit = MaxDecompressedBytes
	if hint <= 0 {
		hint = 4 * compressed
	}
	buf := make([]byte, 0, min(max(hint, 512), limit+1))
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return nil, ErrDecompressedTooLarge
			}
			grown := make([]byte, len(buf), min(2*cap(buf), limit+1))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if len(buf) > limit {
		return nil, ErrDecompressedTooLarge
	}
	return buf, nil
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
