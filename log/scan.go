package log

import (
	"bytes"
	"fmt"
	"io"

	"github.com/runnel/runnel/log/batch"
)

// readAtFull reads len(b) bytes at off; a short read is io.ErrUnexpectedEOF.
func readAtFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// checkStoredHeader checks the header fields of a stored batch that the
// CRC does not cover and ParseHeader does not check. The leader epoch is
// never negative in a stored batch; whether it is the right one, the
// partition's epoch history says (checkEpoch).
func checkStoredHeader(h *batch.Header) error {
	if h.LeaderEpoch < 0 {
		return errLeaderEpoch
	}
	if h.LastOffsetDelta < 0 || h.RecordCount < 0 {
		return batch.ErrRecordCount
	}
	return nil
}

// scanner walks the batches of a segment file from pos to end through a
// read buffer, so a scan costs a few large reads, not one per batch.
type scanner struct {
	r      io.ReaderAt
	pos    int64 // file position of the next batch
	end    int64 // file size (or limit) to scan to
	verify bool  // full CRC validation, else header only

	buf    []byte
	bufPos int64 // file position of buf[0]
	bufLen int
}

const scanChunk = 1 << 20

func newScanner(r io.ReaderAt, pos, end int64, verify bool) *scanner {
	return &scanner{r: r, pos: pos, end: end, verify: verify}
}

// window returns at least n bytes at s.pos (fewer only near s.end).
func (s *scanner) window(n int) ([]byte, error) {
	if s.pos >= s.bufPos && s.pos+int64(n) <= s.bufPos+int64(s.bufLen) {
		off := int(s.pos - s.bufPos)
		return s.buf[off:s.bufLen], nil
	}
	want := n
	if want < scanChunk {
		want = scanChunk
	}
	if rem := s.end - s.pos; int64(want) > rem {
		want = int(rem)
	}
	if cap(s.buf) < want {
		s.buf = make([]byte, want)
	}
	s.buf = s.buf[:want]
	if err := readAtFull(s.r, s.buf, s.pos); err != nil {
		return nil, err
	}
	s.bufPos, s.bufLen = s.pos, want
	return s.buf[:want], nil
}

// errBadBatch reports an unparsable or invalid batch at a position.
type errBadBatch struct {
	pos int64
	err error
}

func (e *errBadBatch) Error() string { return fmt.Sprintf("bad batch at byte %d: %v", e.pos, e.err) }
func (e *errBadBatch) Unwrap() error { return e.err }

// next returns the batch at s.pos (raw is the whole batch when verify is
// set, else only its header) and advances. io.EOF at a clean end;
// *errBadBatch when the bytes at s.pos are not a valid batch (including a
// batch cut short by the end).
func (s *scanner) next() (h batch.Header, raw []byte, pos int64, err error) {
	pos = s.pos
	if s.pos >= s.end {
		return h, nil, pos, io.EOF
	}
	if s.end-s.pos < batch.HeaderSize {
		return h, nil, pos, &errBadBatch{pos, batch.ErrShort}
	}
	w, err := s.window(batch.HeaderSize)
	if err != nil {
		return h, nil, pos, err
	}
	h, err = batch.ParseHeader(w)
	if err == nil {
		err = checkStoredHeader(&h)
	}
	if err != nil {
		return h, nil, pos, &errBadBatch{pos, err}
	}
	size := int64(h.Size())
	if s.pos+size > s.end {
		return h, nil, pos, &errBadBatch{pos, batch.ErrShort}
	}
	if s.verify {
		w, err = s.window(int(size))
		if err != nil {
			return h, nil, pos, err
		}
		if _, err := batch.Validate(w[:size]); err != nil {
			return h, nil, pos, &errBadBatch{pos, err}
		}
		raw = w[:size]
	} else {
		raw = w[:batch.HeaderSize]
	}
	s.pos += size
	return h, raw, pos, nil
}

// resyncBudget bounds the bytes resync checksums before giving up, so a
// segment full of plausible-looking garbage costs bounded time.
const resyncBudget = 64 << 20

// resync searches [from, end) for the next position holding a valid stored
// batch whose base offset is in [minOff, maxOff). It returns -1 when none
// (or when the search budget runs out).
func resync(r io.ReaderAt, from, end, minOff, maxOff int64) int64 {
	const chunk = 1 << 20
	n0 := end - from
	if n0 <= 0 {
		return -1
	}
	if n0 > chunk+batch.HeaderSize {
		n0 = chunk + batch.HeaderSize
	}
	buf := make([]byte, n0)
	budget := int64(resyncBudget)
	for base := from; base < end; base += chunk {
		n := int64(len(buf))
		if base+n > end {
			n = end - base
		}
		if readAtFull(r, buf[:n], base) != nil {
			return -1
		}
		b := buf[:n]
		for i := 0; i+batch.HeaderSize <= len(b) && int64(i) < chunk; i++ {
			j := bytes.IndexByte(b[i+batch.OffMagic:], 2)
			if j < 0 {
				break
			}
			i += j
			if i+batch.HeaderSize > len(b) || int64(i) >= chunk {
				break
			}
			// Cheap filters first: a stored leader epoch is never
			// negative; then the header.
			if b[i+batch.OffLeaderEpoch]&0x80 != 0 {
				continue
			}
			h, err := batch.ParseHeader(b[i:])
			if err == nil {
				err = checkStoredHeader(&h)
			}
			if err != nil || h.BaseOffset < minOff || h.BaseOffset >= maxOff {
				continue
			}
			p := base + int64(i)
			size := int64(h.Size())
			if p+size > end {
				continue
			}
			if budget -= size; budget < 0 {
				return -1
			}
			whole := b[i:min(int64(len(b)), int64(i)+size)]
			if int64(len(whole)) < size {
				whole = make([]byte, size)
				if readAtFull(r, whole, p) != nil {
					continue
				}
			}
			if _, err := batch.Validate(whole); err == nil {
				return p
			}
		}
	}
	return -1
}
