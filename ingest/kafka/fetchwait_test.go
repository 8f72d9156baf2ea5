package kafka

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
)

// readCounter is the log with every Read counted by partition: a long poll
// that wakes reads its partitions again, so reads count wakeups.
type readCounter struct {
	log.Log
	mu    sync.Mutex
	reads map[int32]int
}

func newReadCounter(l log.Log) *readCounter { return &readCounter{Log: l, reads: map[int32]int{}} }

func (c *readCounter) Read(topic string, partition int32, offset int64, maxBytes int) ([]byte, error) {
	c.mu.Lock()
	c.reads[partition]++
	c.mu.Unlock()
	return c.Log.Read(topic, partition, offset, maxBytes)
}

func (c *readCounter) count(partitions ...int32) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, p := range partitions {
		n += c.reads[p]
	}
	return n
}

// waitReads waits until the partitions were read at least n times in all.
func (c *readCounter) waitReads(t testing.TB, n int, partitions ...int32) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); c.count(partitions...) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("partitions %v read %d times, want %d", partitions, c.count(partitions...), n)
		}
	}
}

// A long poll waits for its own partitions only: appends to another
// partition of the same topic do not wake it (it reads its partition once
// before waiting and once after the append that ends the wait).
func TestFetchLongPollWaitsForItsPartitionsOnly(t *testing.T) {
	real := openLog(t, "")
	if err := real.CreateTopic("lp", log.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	l := newReadCounter(real)
	ts := startServer(t, l, nil)
	r := dialRaw(t, ts.addr)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.write(frame(fetchReq("lp", []int32{0}, 0, 1, 20000, 1<<20, 1<<20), 1))
		if _, err := r.readFrame(); err != nil {
			t.Errorf("fetch: %v", err)
		}
	}()
	l.waitReads(t, 1, 0)
	ctx := context.Background()
	for range 20 {
		if _, err := real.Append(ctx, "lp", 1, (&batchBuilder{}).one("other")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := real.Append(ctx, "lp", 0, (&batchBuilder{}).one("mine")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll did not end after an append to its partition")
	}
	if n := l.count(0); n > 3 {
		t.Fatalf("partition 0 read %d times during one long poll: woken by appends to partition 1", n)
	}
}

// BenchmarkFetchLongPollWakeups: 1,000 partitions, 100 long polls (Kafka
// Fetch, MaxWait 60 s) each on 10 idle partitions, and appends to the one
// active partition, which no poll names. wakeups/append counts how many
// polls each append wakes (each wake reads its partitions again): 0 when
// a poll waits for its own partitions only, 100 with one log-wide signal.
func BenchmarkFetchLongPollWakeups(b *testing.B) {
	const parts, polls = 1000, 100
	real := openLog(b, "")
	if err := real.CreateTopic("lp", log.TopicConfig{Partitions: parts}); err != nil {
		b.Fatal(err)
	}
	l := newReadCounter(real)
	ts := startServer(b, l, nil)
	var firsts []int32 // the first partition of each poll: one read per wake
	for i := range polls {
		var ps []int32
		for p := int32(1 + i); p < parts; p += polls {
			ps = append(ps, p)
		}
		firsts = append(firsts, ps[0])
		r := dialRaw(b, ts.addr)
		r.write(frame(fetchReq("lp", ps, 0, 1, 60000, 1<<20, 1<<20), 1))
	}
	l.waitReads(b, polls, firsts...)
	before := l.count(firsts...)
	data := (&batchBuilder{}).one("x")
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := real.Append(ctx, "lp", 0, data); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	time.Sleep(10 * time.Millisecond) // let the last wakeups read
	b.ReportMetric(float64(l.count(firsts...)-before)/float64(b.N), "wakeups/append")
}
