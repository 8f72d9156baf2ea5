package replicate

import (
	"slices"
	"testing"

	"github.com/runnel/runnel/log/meta"
	"github.com/runnel/runnel/replicate/member"
	"github.com/runnel/runnel/sync/forward"
)

// TestCopyBookKept: which nodes an origin last announced as holding
// in-sync copies outlives a restart (meta.db), and the topics pruned are
// gone after the next restart too.
func TestCopyBookKept(t *testing.T) {
	dir := t.TempDir()
	store, err := meta.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := map[int32]string{}
	for _, n := range []string{"n1", "n2", "n3"} {
		names[member.BrokerID(n)] = n
	}
	b1, b2, b3 := member.BrokerID("n1"), member.BrokerID("n2"), member.BrokerID("n3")
	book := copyBook{store: store}
	if err := book.load(); err != nil {
		t.Fatal(err)
	}
	// t/0: n3 fell out of the in-sync set; t/1: nobody in sync yet, the
	// replica list stands in; "a.b" has a dot in its name.
	if err := book.note("n1", "t", [][]int32{{b1, b2}, {b1}}, [][]int32{{b1, b2, b3}, {b1, b3}}, names); err != nil {
		t.Fatal(err)
	}
	if err := book.note("n1", "a.b", [][]int32{{b1, b3}}, [][]int32{{b1, b3}}, names); err != nil {
		t.Fatal(err)
	}
	writes := func() int {
		n := 0
		store.KVForEach(copyBookBucket, func(string, []byte) error { n++; return nil })
		return n
	}
	if n := writes(); n != 3 {
		t.Fatalf("%d entries stored, want 3", n)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	store, err = meta.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	book = copyBook{store: store}
	if err := book.load(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		topic string
		p     int32
		want  []string
	}{{"t", 0, []string{"n2"}}, {"t", 1, []string{"n3"}}, {"a.b", 0, []string{"n3"}}} {
		got, ok := book.get(forward.DutyKey{Origin: "n1", Topic: c.topic, Partition: c.p})
		if !ok || !slices.Equal(got, c.want) {
			t.Errorf("after a restart %s/%d holders %v (known %v), want %v", c.topic, c.p, got, ok, c.want)
		}
	}
	if err := book.prune("n1", func(topic string) bool { return topic != "a.b" }); err != nil {
		t.Fatal(err)
	}
	book = copyBook{store: store}
	if err := book.load(); err != nil {
		t.Fatal(err)
	}
	if _, ok := book.get(forward.DutyKey{Origin: "n1", Topic: "a.b"}); ok {
		t.Error("a pruned topic is still in the stored book")
	}
	if n := writes(); n != 2 {
		t.Errorf("%d entries stored after the prune, want 2", n)
	}
}

// TestCopyBookRetriesFailedWrite: an announcement whose write to meta.db
// failed is written by the next note, although that one changes nothing
// (the book in memory already holds it).
func TestCopyBookRetriesFailedWrite(t *testing.T) {
	dir := t.TempDir()
	store, err := meta.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := map[int32]string{member.BrokerID("n1"): "n1", member.BrokerID("n2"): "n2", member.BrokerID("n3"): "n3"}
	b1, b2, b3 := member.BrokerID("n1"), member.BrokerID("n2"), member.BrokerID("n3")
	book := copyBook{store: store}
	if err := book.load(); err != nil {
		t.Fatal(err)
	}
	if err := book.note("n1", "t", [][]int32{{b1, b2}}, [][]int32{{b1, b2, b3}}, names); err != nil {
		t.Fatal(err)
	}
	store.Close() // writes fail from here on
	if err := book.note("n1", "t", [][]int32{{b1, b3}}, [][]int32{{b1, b2, b3}}, names); err == nil {
		t.Fatal("a note on a closed meta.db succeeded")
	}
	if store, err = meta.Open(dir); err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	book.store = store
	if err := book.note("n1", "t", [][]int32{{b1, b3}}, [][]int32{{b1, b2, b3}}, names); err != nil {
		t.Fatal(err)
	}
	again := copyBook{store: store}
	if err := again.load(); err != nil {
		t.Fatal(err)
	}
	if got, _ := again.get(forward.DutyKey{Origin: "n1", Topic: "t"}); !slices.Equal(got, []string{"n3"}) {
		t.Errorf("stored holders of t/0 %v, want [n3] (the failed write was not retried)", got)
	}
}
