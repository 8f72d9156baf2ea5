package sitetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	"github.com/runnel/runnel/log/batch"
)

// Batch is one RecordBatch as a copy served it.
type Batch struct {
	Base, Last int64  // first and last offset it covers
	Raw        []byte // the whole batch, header included
}

// Log is what was read from one copy of a partition: its batches from the
// log start to the high-water mark, in offset order.
type Log struct {
	Name    string // for reports, e.g. "n2:sensors/0"
	Start   int64  // log start offset the copy reported
	End     int64  // high-water mark the copy reported (next offset)
	Batches []Batch

	recs map[int64]record // decoded records by offset (see records)
	bad  []Problem        // batches that failed validation or decoding
}

// record is what the checker keeps of one record: digest covers
// timestamp, key, value and headers (what makes two records "the same");
// value is the hash an Acked entry is compared with.
type record struct {
	digest [32]byte
	value  [32]byte
}

// ParseBatches walks concatenated RecordBatches by baseOffset and
// batchLength (the layout of a Fetch response's RecordBatches). A trailing
// partial batch, which a Fetch may return when it hits its byte limit, is
// returned as rest. Batches are not validated here (Compare does that).
func ParseBatches(raw []byte) (batches []Batch, rest []byte, err error) {
	pos := 0
	for len(raw) > 0 {
		if len(raw) < batch.HeaderSize {
			return batches, raw, nil
		}
		h, err := batch.ParseHeader(raw)
		if err != nil {
			return batches, raw, fmt.Errorf("batch at byte %d: %w", pos, err)
		}
		n := h.Size()
		if n > len(raw) {
			return batches, raw, nil
		}
		batches = append(batches, Batch{Base: h.BaseOffset, Last: h.LastOffset(), Raw: raw[:n:n]})
		raw, pos = raw[n:], pos+n
	}
	return batches, nil, nil
}

// Kind classifies a Problem.
type Kind int

const (
	// Unreadable: the copy could not be read over the Kafka protocol.
	Unreadable Kind = iota + 1
	// Damaged: a batch fails its CRC or structure checks, or its records
	// cannot be decoded.
	Damaged
	// Gap: a copy's batches skip or repeat offsets, or do not reach the
	// high-water mark it reports.
	Gap
	// NotPrefix: a mirror's batch differs from the origin's batch at the
	// same offset, or has no origin batch starting at its offset.
	NotPrefix
	// BeyondOrigin: a mirror holds offsets at or past the origin's
	// high-water mark (a fork waiting to happen when the origin writes
	// there).
	BeyondOrigin
	// Fork: two copies hold different records at one offset.
	Fork
	// AckMissing: an acknowledged record is on fewer copies than required.
	AckMissing
	// AckWrong: an acknowledged offset holds a different value on a copy.
	AckWrong
)

var kindNames = map[Kind]string{
	Unreadable: "unreadable", Damaged: "damaged", Gap: "gap", NotPrefix: "not-prefix",
	BeyondOrigin: "beyond-origin", Fork: "fork", AckMissing: "ack-missing", AckWrong: "ack-wrong",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Problem is one finding of the checker.
type Problem struct {
	Kind   Kind
	Copy   string // the copy it was found on
	Offset int64  // first offset concerned (-1 when none)
	Detail string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s: %s at offset %d: %s", p.Kind, p.Copy, p.Offset, p.Detail)
}

// headerFields names the RecordBatch header fields by byte offset, for
// reports of the first differing byte.
var headerFields = []struct {
	off  int
	name string
}{
	{batch.OffBaseOffset, "baseOffset"}, {batch.OffBatchLength, "batchLength"},
	{batch.OffLeaderEpoch, "partitionLeaderEpoch"}, {batch.OffMagic, "magic"},
	{batch.OffCRC, "crc"}, {batch.OffAttributes, "attributes"},
	{batch.OffLastOffsetDelta, "lastOffsetDelta"}, {batch.OffBaseTimestamp, "baseTimestamp"},
	{batch.OffMaxTimestamp, "maxTimestamp"}, {batch.OffProducerID, "producerId"},
	{batch.OffProducerEpoch, "producerEpoch"}, {batch.OffBaseSequence, "baseSequence"},
	{batch.OffRecordCount, "recordCount"}, {batch.HeaderSize, "records"},
}

func fieldAt(i int) string {
	name := headerFields[0].name
	for _, f := range headerFields {
		if i >= f.off {
			name = f.name
		}
	}
	return name
}

// batchDiff describes how b differs from want ("" when identical). Every
// byte is compared: a mirror stores the origin's batch byte for byte at
// the origin's offsets, so baseOffset and partitionLeaderEpoch (the
// origin's epoch, which a copy must keep to make divergence visible) must
// match as well as the CRC-covered rest.
func batchDiff(want, b []byte) string {
	if bytes.Equal(want, b) {
		return ""
	}
	n := min(len(want), len(b))
	for i := range n {
		if want[i] != b[i] {
			return fmt.Sprintf("byte %d (%s) is %#02x, origin has %#02x (batch %d bytes, origin %d)", i, fieldAt(i), b[i], want[i], len(b), len(want))
		}
	}
	return fmt.Sprintf("batch is %d bytes, origin's %d", len(b), len(want))
}

// records validates every batch of l once and decodes its records.
func (l *Log) records() map[int64]record {
	if l.recs != nil {
		return l.recs
	}
	l.recs = map[int64]record{}
	for _, b := range l.Batches {
		if b.Base < 0 {
			// Offsets are never negative (the CRC does not cover the
			// base offset, so such a batch validates).
			l.bad = append(l.bad, Problem{Damaged, l.Name, b.Base, fmt.Sprintf("negative base offset %d", b.Base)})
			continue
		}
		if _, err := batch.Validate(b.Raw); err != nil {
			l.bad = append(l.bad, Problem{Damaged, l.Name, b.Base, err.Error()})
			continue
		}
		rs, err := batch.Records(b.Raw)
		if err != nil {
			l.bad = append(l.bad, Problem{Damaged, l.Name, b.Base, err.Error()})
			continue
		}
		for _, r := range rs {
			l.recs[r.Offset] = record{digest: recordDigest(r), value: sha256.Sum256(r.Value)}
		}
	}
	return l.recs
}

func recordDigest(r batch.Record) [32]byte {
	h := sha256.New()
	var n [8]byte
	put := func(b []byte, null bool) {
		l := int64(len(b))
		if null {
			l = -1
		}
		binary.BigEndian.PutUint64(n[:], uint64(l))
		h.Write(n[:])
		h.Write(b)
	}
	binary.BigEndian.PutUint64(n[:], uint64(r.Timestamp))
	h.Write(n[:])
	put(r.Key, r.Key == nil)
	put(r.Value, r.Value == nil)
	binary.BigEndian.PutUint64(n[:], uint64(len(r.Headers)))
	h.Write(n[:])
	for _, hd := range r.Headers {
		put([]byte(hd.Key), false)
		put(hd.Value, hd.Value == nil)
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// contiguity reports batches that skip or repeat offsets, a first batch
// after the log start, and a last batch short of the high-water mark.
func contiguity(l *Log) []Problem {
	var ps []Problem
	if len(l.Batches) == 0 {
		if l.End > l.Start {
			ps = append(ps, Problem{Gap, l.Name, l.Start, fmt.Sprintf("no batch served, but log start %d and high-water mark %d", l.Start, l.End)})
		}
		return ps
	}
	if first := l.Batches[0]; first.Base > l.Start {
		ps = append(ps, Problem{Gap, l.Name, l.Start, fmt.Sprintf("log start %d but first batch at %d", l.Start, first.Base)})
	}
	for i := 1; i < len(l.Batches); i++ {
		prev, b := l.Batches[i-1], l.Batches[i]
		if b.Base != prev.Last+1 {
			ps = append(ps, Problem{Gap, l.Name, prev.Last + 1, fmt.Sprintf("batch [%d..%d] follows batch [%d..%d]", b.Base, b.Last, prev.Base, prev.Last)})
		}
	}
	if last := l.Batches[len(l.Batches)-1]; last.Last+1 < l.End {
		ps = append(ps, Problem{Gap, l.Name, last.Last + 1, fmt.Sprintf("batches end at %d but high-water mark is %d", last.Last, l.End)})
	}
	return ps
}

// Compare checks the copies of one origin partition: each copy's batches
// are valid and contiguous; every mirror is a byte-identical prefix of the
// origin (each of its batches equals the origin's batch at the same
// offset; it holds nothing past the origin's high-water mark); and no
// offset holds two different records on any two copies (mirrors compared
// with each other too, which also covers offsets the origin no longer has
// or that were read while it was down). origin is nil when it could not be
// read. A mirror may start later than the origin and end earlier (it lags
// or its retention ran ahead): missing acknowledged records are
// CheckAcked's to report.
func Compare(origin *Log, mirrors []*Log) []Problem {
	var ps []Problem
	all := mirrors
	if origin != nil {
		all = append([]*Log{origin}, mirrors...)
	}
	for _, l := range all {
		l.records()
		ps = append(ps, l.bad...)
		ps = append(ps, contiguity(l)...)
	}
	if origin != nil {
		byBase := make(map[int64][]byte, len(origin.Batches))
		for _, b := range origin.Batches {
			byBase[b.Base] = b.Raw
		}
		var originFirst int64 = origin.End
		if len(origin.Batches) > 0 {
			originFirst = origin.Batches[0].Base
		}
		for _, m := range mirrors {
			for _, b := range m.Batches {
				switch {
				case b.Last >= origin.End:
					ps = append(ps, Problem{BeyondOrigin, m.Name, max(b.Base, origin.End), fmt.Sprintf("batch [%d..%d] reaches past the origin's high-water mark %d (%s)", b.Base, b.Last, origin.End, origin.Name)})
				case b.Base < originFirst:
					// The origin no longer holds it: only the fork check applies.
				default:
					want, ok := byBase[b.Base]
					if !ok {
						ps = append(ps, Problem{NotPrefix, m.Name, b.Base, fmt.Sprintf("batch [%d..%d] has no batch of %s starting at its offset", b.Base, b.Last, origin.Name)})
					} else if d := batchDiff(want, b.Raw); d != "" {
						ps = append(ps, Problem{NotPrefix, m.Name, b.Base, fmt.Sprintf("batch [%d..%d] differs from %s: %s", b.Base, b.Last, origin.Name, d)})
					}
				}
			}
		}
	}
	ps = append(ps, forks(all)...)
	return ps
}

// forks reports offsets where two copies hold different records, one
// problem per pair of copies and run of consecutive offsets.
func forks(logs []*Log) []Problem {
	var ps []Problem
	for i := 0; i < len(logs); i++ {
		for j := i + 1; j < len(logs); j++ {
			a, b := logs[i], logs[j]
			var offs []int64
			for off, ra := range a.records() {
				if rb, ok := b.records()[off]; ok && rb.digest != ra.digest {
					offs = append(offs, off)
				}
			}
			for _, r := range runs(offs) {
				ps = append(ps, Problem{Fork, b.Name, r[0], fmt.Sprintf("offsets %d..%d hold different records on %s and %s", r[0], r[1], a.Name, b.Name)})
			}
		}
	}
	return ps
}

// Acked is one record a producer had acknowledged: its offset and the
// SHA-256 of its value.
type Acked struct {
	Offset int64
	Value  [32]byte
}

// AckedValue makes an Acked from an offset and a value.
func AckedValue(offset int64, value []byte) Acked {
	return Acked{Offset: offset, Value: sha256.Sum256(value)}
}

// CheckAcked reports acknowledged records held by fewer than need of logs
// (need <= 0 means every log), and acknowledged offsets that hold another
// value on any log; consecutive offsets are reported as one problem.
func CheckAcked(logs []*Log, acked []Acked, need int) []Problem {
	if need <= 0 || need > len(logs) {
		need = len(logs)
	}
	if len(logs) == 0 {
		if len(acked) == 0 {
			return nil
		}
		return []Problem{{AckMissing, "", acked[0].Offset, fmt.Sprintf("%d acknowledged records and no copy could be read", len(acked))}}
	}
	names := make([]string, len(logs))
	for i, l := range logs {
		names[i] = l.Name
	}
	wrong := make([][]int64, len(logs))
	var missing []int64
	for _, a := range acked {
		have := 0
		for i, l := range logs {
			r, ok := l.records()[a.Offset]
			switch {
			case !ok:
			case r.value != a.Value:
				wrong[i] = append(wrong[i], a.Offset)
			default:
				have++
			}
		}
		if have < need {
			missing = append(missing, a.Offset)
		}
	}
	var ps []Problem
	for i, offs := range wrong {
		for _, r := range runs(offs) {
			ps = append(ps, Problem{AckWrong, logs[i].Name, r[0], fmt.Sprintf("%d acknowledged offsets in %d..%d hold other values than acknowledged", r[2], r[0], r[1])})
		}
	}
	for _, r := range runs(missing) {
		ps = append(ps, Problem{AckMissing, strings.Join(names, ","), r[0], fmt.Sprintf("%d acknowledged records in %d..%d on fewer than %d of the %d copies read", r[2], r[0], r[1], need, len(logs))})
	}
	return ps
}

// runs sorts offs and groups them into runs of consecutive offsets:
// {first, last, count}.
func runs(offs []int64) [][3]int64 {
	sort.Slice(offs, func(x, y int) bool { return offs[x] < offs[y] })
	var rs [][3]int64
	for k := 0; k < len(offs); {
		e := k
		for e+1 < len(offs) && offs[e+1] <= offs[e]+1 {
			e++
		}
		rs = append(rs, [3]int64{offs[k], offs[e], int64(e - k + 1)})
		k = e + 1
	}
	return rs
}
