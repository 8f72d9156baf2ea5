package produce

import (
	"context"
	"errors"
	"testing"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

func openLog(t *testing.T) log.Log {
	t.Helper()
	l, err := log.Open(&log.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestTopic: an unknown topic is created only when asked, a bad name is
// refused either way, and the partition count is the log's.
func TestTopic(t *testing.T) {
	l := openLog(t)
	var created []string
	p := New(Options{Log: l, OnCreate: func(n string) { created = append(created, n) }})
	if _, err := p.Topic("t1", false); !errors.Is(err, log.ErrUnknownTopic) {
		t.Fatalf("Topic(create=false) of an unknown topic = %v", err)
	}
	if _, err := l.Topic("t1"); !errors.Is(err, log.ErrUnknownTopic) {
		t.Fatalf("topic created without create: %v", err)
	}
	n, err := p.Topic("t1", true)
	if err != nil || n != 1 {
		t.Fatalf("Topic(create) = %d, %v", n, err)
	}
	if len(created) != 1 || created[0] != "t1" {
		t.Fatalf("OnCreate calls %v", created)
	}
	for _, bad := range []string{"", "a b", "..", "x/y"} {
		if _, err := p.Topic(bad, true); !errors.Is(err, log.ErrInvalidTopic) {
			t.Errorf("Topic(%q) = %v, want ErrInvalidTopic", bad, err)
		}
	}
	if err := l.CreateTopic("four", log.TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	if n, err := p.Topic("four", false); err != nil || n != 4 {
		t.Fatalf("Topic(four) = %d, %v", n, err)
	}
}

// TestPartition: a key goes where Kafka's default partitioner puts it; no
// key goes round-robin.
func TestPartition(t *testing.T) {
	p := New(Options{Log: openLog(t)})
	for _, k := range []string{"", "a", "sensor/1", "hall3/temp"} {
		if got, want := p.Partition([]byte(k), 7), batch.Partition([]byte(k), 7); got != want {
			t.Errorf("Partition(%q) = %d, want %d", k, got, want)
		}
	}
	seen := map[int32]int{}
	for range 8 {
		seen[p.Partition(nil, 4)]++
	}
	for i := int32(0); i < 4; i++ {
		if seen[i] != 2 {
			t.Fatalf("round-robin spread %v", seen)
		}
	}
}

type allLog struct {
	log.Log
	calls int
}

func (a *allLog) AppendAsyncAll(topic string, partition int32, b []byte, done func(int64, error)) {
	a.calls++
	a.Log.AppendAsync(topic, partition, b, done)
}

// TestAcksAll: AcksAll uses the log's AllAppender, AcksLeader never.
func TestAcksAll(t *testing.T) {
	al := &allLog{Log: openLog(t)}
	p := New(Options{Log: al})
	if _, err := p.Topic("t", true); err != nil {
		t.Fatal(err)
	}
	var b batch.Builder
	b.Add(1, nil, []byte("v"), nil)
	if _, err := p.Append(context.Background(), "t", 0, b.Bytes(), AcksLeader); err != nil {
		t.Fatal(err)
	}
	if al.calls != 0 {
		t.Fatal("AcksLeader went through AppendAsyncAll")
	}
	off, err := p.Append(context.Background(), "t", 0, b.Bytes(), AcksAll)
	if err != nil || off != 1 || al.calls != 1 {
		t.Fatalf("AcksAll: offset %d err %v calls %d", off, err, al.calls)
	}
}

// TestForgetOnUnknown: an append that finds the topic gone drops it from
// the cache, so the next Topic asks the log (and may create it again).
func TestForgetOnUnknown(t *testing.T) {
	l := openLog(t)
	p := New(Options{Log: l})
	if _, err := p.Topic("t", true); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	var b batch.Builder
	b.Add(1, nil, []byte("v"), nil)
	if _, err := p.Append(context.Background(), "t", 0, b.Bytes(), AcksLeader); !errors.Is(err, log.ErrUnknownTopic) {
		t.Fatalf("append to a deleted topic: %v", err)
	}
	if _, err := p.Topic("t", false); !errors.Is(err, log.ErrUnknownTopic) {
		t.Fatalf("cache kept a deleted topic: %v", err)
	}
}
