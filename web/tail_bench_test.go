package web

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"testing"
	"time"

	rlog "github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// BenchmarkTailLatency: records appended one at a time at 1,000 a second
// (each waits for its fsync, as a producer does), read by one live tail
// (an HTTP client parsing the event stream); the latency is from the
// append's acknowledgement to the event's arrival. Reports p50 and p99.
//
//	go test -run '^$' -bench BenchmarkTailLatency -benchtime 5000x ./web/
func BenchmarkTailLatency(b *testing.B) {
	dir := b.TempDir()
	l, err := rlog.Open(&rlog.Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	s, err := New(Options{Log: l, NodeID: "n"})
	if err != nil {
		b.Fatal(err)
	}
	if err := l.CreateTopic("t", rlog.TopicConfig{}); err != nil {
		b.Fatal(err)
	}
	srv := newBenchServer(b, s)
	c := openTailB(b, srv+"/topics/t/tail?from=latest")
	acked := make([]time.Time, b.N)
	lat := make([]time.Duration, 0, b.N)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(lat) < b.N {
			ev, ok := <-c
			if !ok {
				return
			}
			now := time.Now()
			var r recordJSON
			if json.Unmarshal([]byte(ev), &r) != nil {
				continue
			}
			i, _ := strconv.Atoi(r.Value.(string))
			for acked[i].IsZero() { // the ack and the event race: wait for the ack time
				time.Sleep(10 * time.Microsecond)
			}
			lat = append(lat, now.Sub(acked[i]))
		}
	}()
	b.ResetTimer()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var bld batch.Builder
	for i := 0; i < b.N; i++ {
		<-tick.C
		bld.Reset()
		bld.Add(time.Now().UnixMilli(), nil, []byte(strconv.Itoa(i)), nil)
		if _, err := l.Append(context.Background(), "t", 0, bld.Bytes()); err != nil {
			b.Fatal(err)
		}
		acked[i] = time.Now()
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		b.Fatalf("tail delivered %d of %d", len(lat), b.N)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
