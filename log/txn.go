package log

import (
	"encoding/binary"
	"fmt"
	"io"
	"path/filepath"
	"sort"

	"github.com/runnel/runnel/log/batch"
)

// Transactions is implemented by a Log that tracks Kafka transactions per
// partition (the one Open returns does). Find it by type assertion.
//
// A transaction's batches carry the transactional attribute bit; it ends
// with a control batch (a commit or abort marker) of the same producer id.
// A read_committed reader stops at the last stable offset (LSO): the first
// offset of the oldest transaction still open, or the HWM when none is;
// and it drops the records of aborted transactions, which AbortedTxns
// lists (Kafka's FetchResponse aborted_transactions).
//
// The state is rebuilt from the batch headers (and the markers' keys) of
// the whole partition the first time a partition is asked, after every
// open and after a truncation, then kept up to date by every append
// (Append and AppendAt alike, so a mirror knows what its origin knows).
type Transactions interface {
	// StableOffset is the partition's LSO (<= HWM).
	// Errors: ErrUnknownTopic, ErrUnknownPartition, ErrClosed, an I/O
	// error of the first scan.
	StableOffset(topic string, partition int32) (int64, error)
	// AbortedTxns lists the partition's aborted transactions that hold
	// records in [from, to), by first offset.
	AbortedTxns(topic string, partition int32, from, to int64) ([]AbortedTxn, error)
}

// AbortedTxn is one aborted transaction of a partition.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64 // first offset of its first batch
	LastOffset  int64 // offset of its abort marker
}

// Control record types (the key of a control batch's record: version
// int16, type int16). Never change: they are Kafka's.
const (
	ControlAbort  int16 = 0
	ControlCommit int16 = 1
)

// ControlType returns the marker type of the control batch b (one whole
// batch, uncompressed as Kafka writes them): ControlAbort or
// ControlCommit; -1 when b holds no readable control record.
func ControlType(b []byte) int16 {
	if len(b) <= batch.HeaderSize {
		return -1
	}
	return controlRecordType(b[batch.HeaderSize:])
}

// controlRecordType decodes the type from the first record of a control
// batch (rec starts at the record's length varint).
func controlRecordType(rec []byte) int16 {
	for i := 0; i < 4; i++ { // length, attributes (1 byte), timestampDelta, offsetDelta
		if i == 1 {
			if len(rec) < 1 {
				return -1
			}
			rec = rec[1:]
			continue
		}
		_, n := binary.Varint(rec)
		if n <= 0 {
			return -1
		}
		rec = rec[n:]
	}
	klen, n := binary.Varint(rec)
	if n <= 0 || klen < 4 || len(rec[n:]) < 4 {
		return -1
	}
	return int16(binary.BigEndian.Uint16(rec[n+2:]))
}

// txnMarkFile, in a partition's directory, says the partition has held
// a transactional batch (an empty file, synced before the first such
// batch is written). Without it the state is known without a scan: no
// transaction ever. Never change the name.
const txnMarkFile = "transactional"

// markTxnsLocked creates the partition's txnMarkFile before the first
// transactional batch is written, after raising the data dir to data
// format generation 2 (format.go): a release that would serve the
// batches as plain records (aborted ones as committed) refuses the dir
// from then on. Both are synced before the batch is written, so no crash
// leaves a transactional batch in a dir an older release would open.
// Mirror copies (AppendAt) come through here as well.
func (p *partition) markTxnsLocked(hdrs []batch.Header) error {
	if p.txnMarked {
		return nil
	}
	for i := range hdrs {
		if !hdrs[i].Transactional() {
			continue
		}
		if err := p.l.raiseDataFormat(DataFormatTransactions); err != nil {
			if isNoSpace(err) {
				return ErrDiskFull
			}
			return fmt.Errorf("log: %s: raise the data dir to data format %d before its first transactional batch (older releases cannot read transactions): %w", p.rel, DataFormatTransactions, err)
		}
		if err := writeFileAtomic(p.l.fs, filepath.Join(p.dir, txnMarkFile), nil); err != nil {
			if isNoSpace(err) {
				return ErrDiskFull
			}
			return fmt.Errorf("log: mark %s transactional: %w", p.rel, err)
		}
		p.txnMarked = true
		return nil
	}
	return nil
}

// raiseDataFormatForTxns raises, at Open, a data dir whose partitions hold
// transactions but whose marker does not say so (written before
// transactions raised the data format) to generation 2.
func (l *logImpl) raiseDataFormatForTxns() error {
	if l.format.readableFrom >= DataFormatTransactions {
		return nil
	}
	for _, t := range l.topicList() {
		for _, p := range t.partitions() {
			if !p.txnMarked {
				continue
			}
			if err := l.raiseDataFormat(DataFormatTransactions); err != nil {
				return fmt.Errorf("log: raise the data dir to data format %d (%s holds transactions): %w", DataFormatTransactions, p.rel, err)
			}
			return nil
		}
	}
	return nil
}

// txnIndex is one partition's transaction state. The partition's lock
// guards it.
type txnIndex struct {
	loaded  bool
	open    map[int64]int64 // producer id → first offset of its open transaction
	aborted []AbortedTxn    // by LastOffset
}

func (x *txnIndex) reset() { *x = txnIndex{} }

// note applies one appended batch (b: its bytes, at least the header and,
// for a control batch, its first record).
func (x *txnIndex) note(h *batch.Header, b []byte) {
	if !h.Transactional() || h.ProducerID < 0 {
		return
	}
	if h.Control() {
		first, ok := x.open[h.ProducerID]
		if !ok {
			return
		}
		delete(x.open, h.ProducerID)
		if ControlType(b) == ControlAbort {
			x.aborted = append(x.aborted, AbortedTxn{ProducerID: h.ProducerID, FirstOffset: first, LastOffset: h.BaseOffset})
		}
		return
	}
	if _, ok := x.open[h.ProducerID]; !ok {
		if x.open == nil {
			x.open = map[int64]int64{}
		}
		x.open[h.ProducerID] = h.BaseOffset
	}
}

// noteTxnsLocked applies the batches of one append (data: their bytes, in
// hdrs order) once the index is loaded; before, the first query scans
// them with the rest.
func (p *partition) noteTxnsLocked(hdrs []batch.Header, data []byte) {
	if !p.txns.loaded {
		return
	}
	off := 0
	for i := range hdrs {
		n := hdrs[i].Size()
		p.txns.note(&hdrs[i], data[off:off+n])
		off += n
	}
}

// loadTxnsLocked builds the index from every batch of the partition.
func (p *partition) loadTxnsLocked() error {
	if p.txns.loaded {
		return nil
	}
	if !p.txnMarked {
		p.txns = txnIndex{loaded: true} // never a transactional batch
		return nil
	}
	var x txnIndex
	for _, seg := range p.segs {
		if seg.size == 0 {
			continue
		}
		r, release, err := p.l.segReader(seg)
		if err != nil {
			return fmt.Errorf("log: transactions of %s: %w", p.rel, err)
		}
		sc := newScanner(r, 0, seg.size, false)
		for {
			h, raw, pos, err := sc.next()
			if err != nil {
				// io.EOF, or damage (reported by reads and check):
				// the batches before it count.
				break
			}
			if !h.Transactional() {
				continue
			}
			p.l.notePID(h.ProducerID) // ProducerIDFloor: an old transaction's id is never handed out again
			b := raw
			if h.Control() {
				buf := make([]byte, min(h.Size(), batch.HeaderSize+32))
				if _, err := r.ReadAt(buf, pos); err != nil && err != io.EOF {
					release()
					return fmt.Errorf("log: transactions of %s: %w", p.rel, err)
				}
				b = buf
			}
			x.note(&h, b)
		}
		release()
	}
	x.loaded = true
	p.txns = x
	return nil
}

func (p *partition) stableOffset() (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.loadTxnsLocked(); err != nil {
		return -1, err
	}
	lso := p.hwm
	for _, first := range p.txns.open {
		lso = min(lso, first)
	}
	return lso, nil
}

func (p *partition) abortedTxns(from, to int64) ([]AbortedTxn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.loadTxnsLocked(); err != nil {
		return nil, err
	}
	// Forget what retention removed.
	start := p.startLocked()
	i := sort.Search(len(p.txns.aborted), func(i int) bool { return p.txns.aborted[i].LastOffset >= start })
	if i > 0 {
		p.txns.aborted = append(p.txns.aborted[:0:0], p.txns.aborted[i:]...)
	}
	var out []AbortedTxn
	for _, a := range p.txns.aborted {
		if a.LastOffset >= from && a.FirstOffset < to {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FirstOffset < out[j].FirstOffset })
	return out, nil
}

// StableOffset implements Transactions.
func (l *logImpl) StableOffset(topic string, partition int32) (int64, error) {
	p, err := l.part(topic, partition)
	if err != nil {
		return -1, err
	}
	return p.stableOffset()
}

// AbortedTxns implements Transactions.
func (l *logImpl) AbortedTxns(topic string, partition int32, from, to int64) ([]AbortedTxn, error) {
	p, err := l.part(topic, partition)
	if err != nil {
		return nil, err
	}
	return p.abortedTxns(from, to)
}
