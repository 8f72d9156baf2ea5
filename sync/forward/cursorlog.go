package forward

// The cursor log: forwarding progress appended to an internal topic, so
// that the peers that mirror a node's topics also hold how far it
// forwarded, and a survivor can resume where it stood.
//
// Each save of a route's cursors (every CursorFlushInterval, or when half
// the in-flight window is acknowledged) appends one batch to CursorTopic,
// partition 0, with one record per partition whose cursor moved. The
// record's key is "<origin>/<topic>/<partition>" (for people reading the
// topic with runnel consume; readers never parse it); its value is:
//
//	 0       1       2                 10                18           22
//	┌───────┬───────┬─────────────────┬─────────────────┬────────────┬───────────────────────────┐
//	│version│ kind  │ epoch (u64, BE) │ offset (i64, BE)│ partition  │ node, origin, topic, route│
//	│  = 1  │ 1,2,3 │                 │                 │ (i32, BE)  │ each: len (u16, BE), bytes│
//	└───────┴───────┴─────────────────┴─────────────────┴────────────┴───────────────────────────┘
//
// kind 1 (progress): route forwarded every offset of (origin, topic,
// partition) below offset, and the upstream acknowledged it; kind 2
// (claim): node starts forwarding the partition at epoch; kind 3
// (release): node stopped forwarding it and saved its final progress
// (written after that progress). node is the writer, origin the node whose
// partition it is, topic the origin's topic name. Claims and releases
// carry no route and offset 0. A reader ignores bytes after route (fields
// added later go there) and skips a record with another version.
//
// # Window
//
// A record is appended after the same cursors were saved in meta, so the
// cursor log never runs ahead of what the upstream acknowledged. It lags
// the acknowledged position by at most one save: CursorFlushInterval, or
// half of the route's MaxInFlight records, whichever comes first. A peer's
// copy lags by its mirror's lag in addition. A survivor that resumes from
// it therefore re-sends at most that many records per partition (the
// central side drops them by the origin headers).
//
// # Size
//
// The log has no compaction. The topic is bounded by retention
// (CursorTopicConfig: 10 minutes, 64 MiB, 1 MiB segments, drop-oldest
// when the disk is short), and every CursorSnapshotInterval (default 1
// minute, at most 5) each route writes the cursors of all its partitions
// again, moved or not, so the last 10 minutes always hold the latest
// cursor of every partition. A record is about 40 bytes plus the names;
// a route writes at most one batch per save, so 100 partitions moving
// every second write about 6 KB/s.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// CursorTopic is the internal topic a node's forwarding progress goes to
// (Options.CursorTopic). Never change.
const CursorTopic = "__runnel_cursors"

// cursorVersion is the value format version. Never change.
const cursorVersion = 1

// cursorFixed is the size of the fixed part of a value. Never change.
const cursorFixed = 22

// CursorKind says what a cursor record states. Never change the values.
type CursorKind uint8

const (
	// CursorProgress: Route forwarded every offset below Offset.
	CursorProgress CursorKind = 1
	// CursorClaim: Node starts forwarding the partition at Epoch.
	CursorClaim CursorKind = 2
	// CursorRelease: Node stopped forwarding the partition (its final
	// progress records precede this one).
	CursorRelease CursorKind = 3
)

func (k CursorKind) String() string {
	switch k {
	case CursorProgress:
		return "progress"
	case CursorClaim:
		return "claim"
	case CursorRelease:
		return "release"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// CursorRecord is one entry of a cursor log.
type CursorRecord struct {
	Kind CursorKind
	// Node wrote the record (the forwarding node).
	Node string
	// Origin, Topic and Partition name the origin partition (the origin's
	// node id and topic name, whatever local topic holds the copy).
	Origin    string
	Topic     string
	Partition int32
	// Route and Offset: progress only.
	Route  string
	Offset int64
	// Epoch is the duty epoch the writer forwards under (0 without
	// duties).
	Epoch uint64
	// Time is the record timestamp (ms), set when read.
	Time int64
}

// DutyKey names one origin partition.
func (r *CursorRecord) DutyKey() DutyKey {
	return DutyKey{Origin: r.Origin, Topic: r.Topic, Partition: r.Partition}
}

// appendValue encodes r's value.
func (r *CursorRecord) appendValue(b []byte) []byte {
	b = append(b, cursorVersion, byte(r.Kind))
	b = binary.BigEndian.AppendUint64(b, r.Epoch)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Offset))
	b = binary.BigEndian.AppendUint32(b, uint32(r.Partition))
	for _, s := range [...]string{r.Node, r.Origin, r.Topic, r.Route} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	return b
}

func (r *CursorRecord) key() []byte {
	return []byte(r.Origin + "/" + r.Topic + "/" + strconv.Itoa(int(r.Partition)))
}

// ErrCursorRecord reports a cursor log record that cannot be decoded.
var ErrCursorRecord = errors.New("forward: bad cursor record")

// DecodeCursorRecord decodes a cursor record's value.
func DecodeCursorRecord(v []byte) (CursorRecord, error) {
	var r CursorRecord
	if len(v) < cursorFixed {
		return r, fmt.Errorf("%w: %d bytes", ErrCursorRecord, len(v))
	}
	if v[0] != cursorVersion {
		return r, fmt.Errorf("%w: version %d", ErrCursorRecord, v[0])
	}
	r.Kind = CursorKind(v[1])
	if r.Kind < CursorProgress || r.Kind > CursorRelease {
		return r, fmt.Errorf("%w: kind %d", ErrCursorRecord, v[1])
	}
	r.Epoch = binary.BigEndian.Uint64(v[2:])
	r.Offset = int64(binary.BigEndian.Uint64(v[10:]))
	r.Partition = int32(binary.BigEndian.Uint32(v[18:]))
	p := v[cursorFixed:]
	var s [4]string
	for i := range s {
		if len(p) < 2 {
			return r, fmt.Errorf("%w: truncated", ErrCursorRecord)
		}
		n := int(binary.BigEndian.Uint16(p))
		if len(p) < 2+n {
			return r, fmt.Errorf("%w: truncated", ErrCursorRecord)
		}
		s[i] = string(p[2 : 2+n])
		p = p[2+n:]
	}
	r.Node, r.Origin, r.Topic, r.Route = s[0], s[1], s[2], s[3]
	if r.Node == "" || r.Origin == "" || r.Topic == "" || r.Partition < 0 {
		return r, fmt.Errorf("%w: missing node, origin, topic or partition", ErrCursorRecord)
	}
	if r.Kind == CursorProgress && (r.Route == "" || r.Offset < 0) {
		return r, fmt.Errorf("%w: progress without route or offset", ErrCursorRecord)
	}
	return r, nil
}

// CursorBatch encodes recs as one RecordBatch v2 (timestamp now), ready
// for log.Append. It returns nil for no records.
func CursorBatch(recs []CursorRecord, now time.Time) []byte {
	if len(recs) == 0 {
		return nil
	}
	var b batch.Builder
	ts := now.UnixMilli()
	var v []byte
	for i := range recs {
		v = recs[i].appendValue(v[:0])
		b.Add(ts, recs[i].key(), v, nil)
	}
	return b.Bytes()
}

// CursorTopicConfig is the config of a cursor topic: one partition,
// bounded by retention (see the package's cursor log notes).
func CursorTopicConfig() log.TopicConfig {
	return log.TopicConfig{
		Partitions:     1,
		RetentionAge:   CursorRetention,
		RetentionBytes: 64 << 20,
		SegmentBytes:   1 << 20,
		SegmentAge:     time.Minute,
		OnFull:         log.OnFullDropOldest,
	}
}

// CursorRetention is how long a cursor topic keeps records. Snapshots
// (Options.CursorSnapshotInterval) must come at least twice as often.
const CursorRetention = 10 * time.Minute

// AppendCursorRecords appends recs to topic (partition 0) as one batch,
// creating the topic (CursorTopicConfig) when it does not exist, and
// returns once the batch is durable.
func AppendCursorRecords(ctx context.Context, lg log.Log, topic string, recs ...CursorRecord) error {
	b := CursorBatch(recs, time.Now())
	if b == nil {
		return nil
	}
	_, err := lg.Append(ctx, topic, 0, b)
	if errors.Is(err, log.ErrUnknownTopic) {
		if cerr := lg.CreateTopic(topic, CursorTopicConfig()); cerr != nil && !errors.Is(cerr, log.ErrTopicExists) {
			return fmt.Errorf("create %s: %w", topic, cerr)
		}
		_, err = lg.Append(ctx, topic, 0, b)
	}
	if err != nil {
		return fmt.Errorf("append to %s: %w", topic, err)
	}
	return nil
}

// DutyKey names one origin partition: the origin node, its topic name and
// the partition.
type DutyKey struct {
	Origin    string
	Topic     string
	Partition int32
}

func (k DutyKey) String() string {
	return k.Origin + "/" + k.Topic + "/" + strconv.Itoa(int(k.Partition))
}

// CursorKey names one route's progress on one origin partition.
type CursorKey struct {
	DutyKey
	Route string
}

// Cursor is the furthest progress known for a CursorKey.
type Cursor struct {
	Offset int64  // every offset below was acknowledged upstream
	Node   string // the node that forwarded up to it
	Epoch  uint64
	Time   int64 // ms
}

// Claim is the highest claim known on an origin partition: the node
// forwarding it (or that did last) and its epoch.
type Claim struct {
	Node     string
	Epoch    uint64
	Released bool  // Node stopped forwarding it (hand-back)
	Time     int64 // of the record that set or released it (ms)
}

// Less orders claims by epoch, then node id (a claim with a higher epoch
// wins; equal epochs, possible only when two nodes claim from different
// views, are ordered by node id so every node agrees).
func (c Claim) Less(o Claim) bool {
	if c.Epoch != o.Epoch {
		return c.Epoch < o.Epoch
	}
	return c.Node < o.Node
}

// CursorView folds cursor records from any number of cursor logs (a
// node's own and its copies of its peers') into the latest state: per
// (origin, route, topic, partition) the furthest progress, per origin
// partition the highest claim. Adding records is commutative across logs
// (each log must be added in its order), so copies can be read in any
// order. Not safe for concurrent use.
type CursorView struct {
	cursors map[CursorKey]Cursor
	claims  map[DutyKey]Claim
	bad     int
}

// NewCursorView returns an empty view.
func NewCursorView() *CursorView {
	return &CursorView{cursors: map[CursorKey]Cursor{}, claims: map[DutyKey]Claim{}}
}

// Add folds one record in. Progress moves the cursor forward only (it is
// the furthest acknowledged position, whoever forwarded it); any record
// with a higher (epoch, node) than the current claim becomes the claim
// (progress implies a claim); a release of the current claim marks it
// released.
func (v *CursorView) Add(r CursorRecord) {
	dk := r.DutyKey()
	if r.Kind == CursorProgress {
		ck := CursorKey{DutyKey: dk, Route: r.Route}
		if c, ok := v.cursors[ck]; !ok || r.Offset > c.Offset {
			v.cursors[ck] = Cursor{Offset: r.Offset, Node: r.Node, Epoch: r.Epoch, Time: r.Time}
		}
	}
	nc := Claim{Node: r.Node, Epoch: r.Epoch, Released: r.Kind == CursorRelease, Time: r.Time}
	c, ok := v.claims[dk]
	switch {
	case !ok || c.Less(nc):
		v.claims[dk] = nc
	case c.Node == nc.Node && c.Epoch == nc.Epoch && nc.Released && !c.Released:
		c.Released, c.Time = true, r.Time
		v.claims[dk] = c
	}
}

// AddBatches folds in every record of raw batches (as log.Read returns
// them) at or after from. It returns the offset after the last record
// read; undecodable records are skipped and counted (Bad).
func (v *CursorView) AddBatches(data []byte, from int64) (next int64, err error) {
	next = from
	for len(data) >= batch.HeaderSize {
		h, err := batch.ParseHeader(data)
		if err != nil {
			return next, err
		}
		if h.Size() > len(data) {
			break
		}
		if h.LastOffset() >= next && !h.Control() {
			rs, err := batch.Records(data[:h.Size()])
			if err != nil {
				v.bad += int(h.LastOffset() + 1 - max(h.BaseOffset, next))
			}
			for _, br := range rs {
				if br.Offset < next {
					continue
				}
				r, err := DecodeCursorRecord(br.Value)
				if err != nil {
					v.bad++
					continue
				}
				r.Time = br.Timestamp
				v.Add(r)
			}
		}
		next = max(next, h.LastOffset()+1)
		data = data[h.Size():]
	}
	return next, nil
}

// Cursor returns the furthest progress of route on k.
func (v *CursorView) Cursor(k DutyKey, route string) (Cursor, bool) {
	c, ok := v.cursors[CursorKey{DutyKey: k, Route: route}]
	return c, ok
}

// Cursors returns the furthest progress of every route on k (route name
// to offset), nil when none is known.
func (v *CursorView) Cursors(k DutyKey) map[string]int64 {
	var out map[string]int64
	for ck, c := range v.cursors {
		if ck.DutyKey == k {
			if out == nil {
				out = map[string]int64{}
			}
			out[ck.Route] = c.Offset
		}
	}
	return out
}

// Claim returns the highest claim on k.
func (v *CursorView) Claim(k DutyKey) (Claim, bool) {
	c, ok := v.claims[k]
	return c, ok
}

// Keys lists every origin partition the view knows of.
func (v *CursorView) Keys() []DutyKey {
	out := make([]DutyKey, 0, len(v.claims))
	for k := range v.claims {
		out = append(out, k)
	}
	return out
}

// Bad counts records that could not be decoded.
func (v *CursorView) Bad() int { return v.bad }

// ReadCursorLog folds partition 0 of topic (a cursor log, or a local copy
// of a peer's) into v from offset from up to its high-water mark, and
// returns where the next read starts. Offsets below the log start (gone
// to retention) are skipped. An unknown topic reads as empty.
func ReadCursorLog(lg log.Log, topic string, from int64, v *CursorView) (int64, error) {
	start, hwm, err := lg.Offsets(topic, 0)
	if errors.Is(err, log.ErrUnknownTopic) || errors.Is(err, log.ErrUnknownPartition) {
		return from, nil
	}
	if err != nil {
		return from, err
	}
	if from > hwm {
		// The topic was created again (or lost a tail): read it anew.
		from = 0
	}
	from = max(from, start)
	for from < hwm {
		data, err := lg.Read(topic, 0, from, 1<<20)
		if errors.Is(err, log.ErrOffsetOutOfRange) {
			if start, _, oerr := lg.Offsets(topic, 0); oerr == nil && start > from {
				from = start
				continue
			}
		}
		if err != nil {
			return from, err
		}
		if len(data) == 0 {
			break
		}
		next, err := v.AddBatches(data, from)
		if err != nil {
			return from, err
		}
		if next <= from {
			break
		}
		from = next
	}
	return from, nil
}
