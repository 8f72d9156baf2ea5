package sitetest

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/sync/kafka/kafkatest"
)

// up builds an upstream record at upstream offset upOff of partition
// upPart, forwarded for origin node/topic/partition at origin offset
// off, with value v.
func up(upPart int32, upOff int64, node string, part int32, off int64, v string) UpstreamRecord {
	return UpstreamRecordOf(&kgo.Record{Topic: "central", Partition: upPart, Offset: upOff, Value: []byte(v),
		Timestamp: time.UnixMilli(1700000000000),
		Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("x")},
			{Key: forward.HeaderNode, Value: []byte(node)}, {Key: forward.HeaderTopic, Value: []byte("sensors")},
			{Key: forward.HeaderPartition, Value: []byte(strconv.Itoa(int(part)))},
			{Key: forward.HeaderOffset, Value: []byte(strconv.FormatInt(off, 10))}}})
}

// val is the value the hand-made origin n, partition p wrote at off.
func val(n string, p int32, off int64) string { return fmt.Sprintf("%s/%d/%d", n, p, off) }

// stream makes the arrivals of origin offsets offs (in arrival order),
// appended to one upstream partition.
type stream struct {
	part int32
	next int64
	recs []UpstreamRecord
}

func (s *stream) add(node string, p int32, offs ...int64) {
	for _, o := range offs {
		s.recs = append(s.recs, up(s.part, s.next, node, p, o, val(node, p, o)))
		s.next++
	}
}

func span(a, b int64) []int64 {
	var out []int64
	for i := a; i <= b; i++ {
		out = append(out, i)
	}
	return out
}

func acked(node string, p int32, offs ...int64) []Acked {
	var out []Acked
	for _, o := range offs {
		out = append(out, AckedValue(o, []byte(val(node, p, o))))
	}
	return out
}

func TestCheckUpstream(t *testing.T) {
	o1 := OriginPartition{"n1", "sensors", 0}
	o2 := OriginPartition{"n2", "sensors", 0}
	type want struct {
		ok                                         bool
		missing, raw, dedup, conflicts, order, bad int
		runs                                       [][3]int64
	}
	for _, tc := range []struct {
		name  string
		build func() ([]UpstreamRecord, map[OriginPartition][]Acked)
		want  want
	}{
		{"everything once", func() ([]UpstreamRecord, map[OriginPartition][]Acked) {
			s := &stream{}
			s.add("n1", 0, span(0, 9)...)
			s.add("n2", 0, span(0, 4)...)
			return s.recs, map[OriginPartition][]Acked{o1: acked("n1", 0, span(0, 9)...), o2: acked("n2", 0, span(0, 4)...)}
		}, want{ok: true}},
		{"missing acknowledged offsets", func() ([]UpstreamRecord, map[OriginPartition][]Acked) {
			s := &stream{}
			s.add("n1", 0, 0, 1, 2, 3, 4, 7, 8, 9)
			return s.recs, map[OriginPartition][]Acked{o1: acked("n1", 0, span(0, 9)...)}
		}, want{missing: 2, runs: [][3]int64{{5, 6, 2}}}},
		{"a resend after a takeover: raw duplicates only", func() ([]UpstreamRecord, map[OriginPartition][]Acked) {
			s := &stream{}
			s.add("n1", 0, span(0, 7)...)
			s.add("n1", 0, span(5, 9)...) // the survivor resumes from the replicated cursor 5
			return s.recs, map[OriginPartition][]Acked{o1: acked("n1", 0, span(0, 9)...)}
		}, want{ok: true, raw: 3}},
		{"forwarded under the survivor's name: a duplicate dedup cannot drop", func() ([]UpstreamRecord, map[OriginPartition][]Acked) {
			s := &stream{}
			s.add("n1", 0, span(0, 4)...)
			// n2 sends n1's record 3 as its own.
			s.recs = append(s.recs, up(0, s.next, "n2", 0, 3, val("n1", 0, 3)))
			return s.recs, map[OriginPartition][]Acked{o1: acked("n1", 0, span(0, 4)...)}
		}, want{dedup: 1}},
		{"the mirror's offsets instead of the origin's", func() ([]UpstreamRecord, map[OriginPartition][]Acked) {
			s := &stream{}
			s.add("n1", 0, span(0, 4)...)
			s.recs = append(s.recs, up(0, s.next, "n1", 0, 103, val("n1", 0, 3)))
			return s.recs, nil
		}, want{dedup: 1}},
		{"one origin offset with two contents", func() ([]UpstreamRecord, map[OriginPartition][]Acked) {
			s := &stream{}
			s.add("n1", 0, span(0, 4)...)
			s.recs = append(s.recs, up(0, s.next, "n1", 0, 2, "something else"))
			return s.recs, nil
		}, want{conflicts: 1, raw: 1}},
		{"acknowledged value differs", func() ([]UpstreamRecord, map[OriginPartition][]Acked) {
			s := &stream{}
			s.add("n1", 0, span(0, 4)...)
			a := acked("n1", 0, span(0, 4)...)
			a[2] = AckedValue(2, []byte("what the producer wrote"))
			return s.recs, map[OriginPartition][]Acked{o1: a}
		}, want{conflicts: 1}},
		{"order broken within an upstream partition", func() ([]UpstreamRecord, map[OriginPartition][]Acked) {
			s := &stream{}
			s.add("n1", 0, 0, 1, 3, 2, 4)
			return s.recs, nil
		}, want{order: 1}},
		{"order kept per upstream partition", func() ([]UpstreamRecord, map[OriginPartition][]Acked) {
			a, b := &stream{part: 0}, &stream{part: 1}
			a.add("n1", 0, 1, 3, 5)
			b.add("n1", 0, 0, 2, 4)
			return append(b.recs, a.recs...), map[OriginPartition][]Acked{o1: acked("n1", 0, span(0, 5)...)}
		}, want{ok: true}},
		{"records without origin headers", func() ([]UpstreamRecord, map[OriginPartition][]Acked) {
			s := &stream{}
			s.add("n1", 0, 0)
			bad := UpstreamRecordOf(&kgo.Record{Topic: "central", Value: []byte("x")})
			odd2 := UpstreamRecordOf(&kgo.Record{Topic: "central", Value: []byte("z"), Headers: []kgo.RecordHeader{
				{Key: forward.HeaderNode, Value: []byte("n1")}, {Key: forward.HeaderTopic, Value: []byte("s")},
				{Key: forward.HeaderPartition, Value: []byte("zero")}, {Key: forward.HeaderOffset, Value: []byte("1")}}})
			return append(s.recs, bad, odd2), nil
		}, want{bad: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, acks := tc.build()
			rep := CheckUpstream(recs, acks)
			t.Log(rep)
			w := tc.want
			got := want{ok: rep.OK(), missing: rep.Missing, raw: rep.RawDuplicates, dedup: rep.DedupDups,
				conflicts: rep.Conflicts, order: rep.OutOfOrder, bad: rep.NoOrigin}
			if w.runs != nil {
				got.runs = rep.Partition(o1).MissingRuns
			}
			if fmt.Sprint(got) != fmt.Sprint(w) {
				t.Fatalf("got %+v, want %+v", got, w)
			}
		})
	}
}

// TestUpstreamFromNamespace: a node in a network namespace forwards to
// Apache Kafka listening on the test process's address (kafkatest's
// Host); ReadUpstream and CheckUpstream find every acknowledged record
// once, under the node's identity.
func TestUpstreamFromNamespace(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Apache Kafka and a runnel process in a network namespace: skipped with -short")
	}
	c := Start(t, Options{Nodes: 1, NoStart: true})
	b := kafkatest.StartOpts(t, kafkatest.Options{Host: c.HostIP().String()})
	b.CreateTopic("central.sensors", 2)
	n1 := c.Node(1)
	n1.Start(t, "--node-id", n1.Name, "--default-partitions", "2",
		"--upstream-kafka", b.Addr(), "--forward", "sensors*", "--forward-prefix", "central.")
	acks := &Acks{}
	produce(t, n1, acks, "sensors", 500, "a")
	rep := CheckUpstreamUntil(t, 60*time.Second, []string{b.Addr()}, AcksUpstream(acks), "central.sensors")
	t.Log(rep)
	if !rep.OK() || rep.Unique != 500 || len(rep.Partitions) != 2 || rep.Partitions[0].Origin.Node != "n1" {
		t.Fatalf("upstream: %v", rep)
	}
	// An empty or missing topic reads as nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if recs, err := ReadUpstream(ctx, []string{b.Addr()}, "nothing-here"); err != nil || len(recs) != 0 {
		t.Fatalf("missing topic: %d records, %v", len(recs), err)
	}
}
