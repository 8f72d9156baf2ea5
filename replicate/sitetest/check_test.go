package sitetest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/runnel/runnel/log/batch"
)

// mkBatch builds a valid batch at base holding one record per value.
func mkBatch(base int64, values ...string) []byte {
	var b batch.Builder
	for i, v := range values {
		b.Add(1_700_000_000_000+base+int64(i), []byte("k"), []byte(v), nil)
	}
	raw := b.Bytes()
	batch.SetBaseOffset(raw, base)
	return raw
}

// mkLog makes a Log from batches (start = first base, end = last+1).
func mkLog(name string, raws ...[]byte) *Log {
	l := &Log{Name: name}
	for _, raw := range raws {
		bs, rest, err := ParseBatches(raw)
		if err != nil || len(rest) != 0 || len(bs) != 1 {
			panic(fmt.Sprintf("mkLog: %v %d %d", err, len(rest), len(bs)))
		}
		l.Batches = append(l.Batches, bs[0])
	}
	if len(l.Batches) > 0 {
		l.Start = l.Batches[0].Base
		l.End = l.Batches[len(l.Batches)-1].Last + 1
	}
	return l
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// flip returns raw with byte i inverted (CRC left as it was).
func flip(raw []byte, i int) []byte {
	b := clone(raw)
	b[i] ^= 0xff
	return b
}

// reCRC returns raw with its CRC recomputed (a well-formed batch).
func reCRC(raw []byte) []byte {
	b := clone(raw)
	binary.BigEndian.PutUint32(b[batch.OffCRC:], batch.Checksum(b))
	return b
}

func kinds(ps []Problem) []string {
	var ks []string
	for _, p := range ps {
		ks = append(ks, p.Kind.String())
	}
	slices.Sort(ks)
	return slices.Compact(ks)
}

func TestCompare(t *testing.T) {
	b0 := mkBatch(0, "a", "b", "c")
	b3 := mkBatch(3, "d", "e")
	b5 := mkBatch(5, "f")
	b6 := mkBatch(6, "g", "h")
	valueByte := len(b3) - 2 // inside the last record's value ("e"), before its header count

	for _, tc := range []struct {
		name    string
		origin  *Log
		mirrors []*Log
		want    []string // problem kinds, sorted
		detail  string   // substring of some problem's text
	}{
		{name: "identical", origin: mkLog("o", b0, b3, b5), mirrors: []*Log{mkLog("m", b0, b3, b5)}},
		{name: "mirror lags", origin: mkLog("o", b0, b3, b5), mirrors: []*Log{mkLog("m", b0, b3)}},
		{name: "mirror starts later", origin: mkLog("o", b0, b3, b5), mirrors: []*Log{mkLog("m", b3, b5)}},
		{name: "origin retention ran ahead", origin: mkLog("o", b3, b5), mirrors: []*Log{mkLog("m", b0, b3, b5)}},
		{name: "no mirrors", origin: mkLog("o", b0, b3)},
		{
			name: "flipped value byte", origin: mkLog("o", b0, b3, b5),
			mirrors: []*Log{mkLog("m", b0, flip(b3, valueByte), b5)},
			want:    []string{"damaged", "not-prefix"}, detail: "(records)",
		},
		{
			name: "flipped value byte with a valid CRC", origin: mkLog("o", b0, b3, b5),
			mirrors: []*Log{mkLog("m", b0, reCRC(flip(b3, valueByte)), b5)},
			want:    []string{"fork", "not-prefix"}, detail: "offsets 4..4 hold different records",
		},
		{
			name: "flipped partitionLeaderEpoch", origin: mkLog("o", b0, b3),
			mirrors: []*Log{mkLog("m", b0, flip(b3, batch.OffLeaderEpoch+3))},
			want:    []string{"not-prefix"}, detail: "partitionLeaderEpoch",
		},
		{
			name: "flipped byte on the origin", origin: mkLog("o", b0, flip(b3, valueByte)),
			mirrors: []*Log{mkLog("m", b0, b3)},
			want:    []string{"damaged", "not-prefix"},
		},
		{
			name: "missing batch", origin: mkLog("o", b0, b3, b5, b6),
			mirrors: []*Log{mkLog("m", b0, b5, b6)},
			want:    []string{"gap"}, detail: "batch [5..5] follows batch [0..2]",
		},
		{
			name: "missing tail below the high-water mark", origin: mkLog("o", b0, b3),
			mirrors: []*Log{func() *Log { l := mkLog("m", b0); l.End = 5; return l }()},
			want:    []string{"gap"}, detail: "high-water mark is 5",
		},
		{
			name: "forked offset", origin: mkLog("o", b0, b3, b5),
			mirrors: []*Log{mkLog("m", b0, mkBatch(3, "d", "X"), b5)},
			want:    []string{"fork", "not-prefix"}, detail: "offsets 4..4",
		},
		{
			name:    "fork between mirrors while the origin is down",
			mirrors: []*Log{mkLog("m1", b0, b3), mkLog("m2", b0, mkBatch(3, "D", "E"))},
			want:    []string{"fork"}, detail: "offsets 3..4 hold different records on m1 and m2",
		},
		{
			name: "mirror beyond the origin", origin: mkLog("o", b0, b3),
			mirrors: []*Log{mkLog("m", b0, b3, b5)},
			want:    []string{"beyond-origin"},
		},
		{
			name: "other batch boundaries", origin: mkLog("o", b0, b3),
			mirrors: []*Log{mkLog("m", mkBatch(0, "a", "b"), mkBatch(2, "c", "d", "e"))},
			want:    []string{"not-prefix"}, detail: "no batch of o starting at its offset",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := Compare(tc.origin, tc.mirrors)
			if got := kinds(ps); !slices.Equal(got, tc.want) {
				t.Fatalf("kinds %v, want %v; problems:\n%v", got, tc.want, ps)
			}
			if tc.detail != "" && !strings.Contains(fmt.Sprint(ps), tc.detail) {
				t.Fatalf("no problem mentions %q:\n%v", tc.detail, ps)
			}
		})
	}
}

func TestCheckAcked(t *testing.T) {
	b0 := mkBatch(0, "a", "b", "c")
	b3 := mkBatch(3, "d", "e")
	acked := []Acked{AckedValue(1, []byte("b")), AckedValue(4, []byte("e"))}
	full := func() *Log { return mkLog("full", b0, b3) }
	lag := func() *Log { return mkLog("lag", b0) }
	for _, tc := range []struct {
		name string
		logs []*Log
		need int
		want []string
	}{
		{name: "on every copy", logs: []*Log{full(), full()}},
		{name: "missing on a lagging copy", logs: []*Log{full(), lag()}, want: []string{"ack-missing"}},
		{name: "one copy is enough", logs: []*Log{full(), lag()}, need: 1},
		{name: "on no copy", logs: []*Log{lag()}, need: 1, want: []string{"ack-missing"}},
		{name: "other value at an acknowledged offset", logs: []*Log{full(), mkLog("other", b0, mkBatch(3, "d", "X"))}, need: 1, want: []string{"ack-wrong"}},
		{name: "nothing readable", want: []string{"ack-missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := CheckAcked(tc.logs, acked, tc.need)
			if got := kinds(ps); !slices.Equal(got, tc.want) {
				t.Fatalf("kinds %v, want %v; problems:\n%v", got, tc.want, ps)
			}
		})
	}
}

func TestParseBatches(t *testing.T) {
	b0, b3 := mkBatch(0, "a", "b", "c"), mkBatch(3, "d")
	raw := append(clone(b0), b3...)
	for cut := 0; cut <= len(b3); cut++ {
		in := raw[:len(b0)+cut]
		bs, rest, err := ParseBatches(in)
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		wantN, wantRest := 1, cut
		if cut == len(b3) {
			wantN, wantRest = 2, 0
		}
		if len(bs) != wantN || len(rest) != wantRest {
			t.Fatalf("cut %d: %d batches, %d rest bytes; want %d, %d", cut, len(bs), len(rest), wantN, wantRest)
		}
		if bs[0].Base != 0 || bs[0].Last != 2 || len(bs[0].Raw) != len(b0) {
			t.Fatalf("cut %d: first batch %+v", cut, bs[0])
		}
	}
	bad := flip(b0, batch.OffMagic)
	if _, _, err := ParseBatches(bad); err == nil {
		t.Fatal("a batch with magic != 2 parsed")
	}
}

// FuzzCompare feeds arbitrary bytes to the batch walker and the checker as
// a mirror of a valid origin: nothing may panic, and a mirror whose bytes
// differ from the origin's must never pass.
func FuzzCompare(f *testing.F) {
	origin := append(mkBatch(0, "a", "b", "c"), mkBatch(3, "d", "e")...)
	f.Add(clone(origin))
	f.Add(flip(origin, 30))
	f.Add(origin[:40])
	f.Fuzz(func(t *testing.T, raw []byte) {
		bs, _, _ := ParseBatches(raw)
		m := &Log{Name: "m", Batches: bs}
		if len(bs) > 0 {
			m.Start, m.End = bs[0].Base, bs[len(bs)-1].Last+1
		}
		o := &Log{Name: "o", End: 5}
		o.Batches, _, _ = ParseBatches(origin)
		ps := Compare(o, []*Log{m})
		CheckAcked([]*Log{o, m}, []Acked{AckedValue(1, []byte("b"))}, 0)
		var got []byte
		for _, b := range bs {
			got = append(got, b.Raw...)
		}
		if len(ps) == 0 && len(bs) > 0 && !bytes.HasPrefix(origin[bytesBefore(o, bs[0].Base):], got) {
			t.Fatalf("mirror %x passed against origin %x", got, origin)
		}
	})
}

// bytesBefore is the byte position of the origin batch starting at base
// (len of the origin when none does).
func bytesBefore(o *Log, base int64) int {
	n := 0
	for _, b := range o.Batches {
		if b.Base == base {
			return n
		}
		n += len(b.Raw)
	}
	return n
}
