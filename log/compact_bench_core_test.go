package log

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/runnel/runnel/log/batch"
)

// BenchmarkCleanerWriteAmplification: a compacted topic of 10,000 keys
// (a "latest value per device" topic), each record a 64-byte value, at
// 1,000 records/s of simulated time (batches of 100, one every 100 ms),
// segments of 1 MiB, the cleaner run every 15 s of simulated time as
// its loop would (min.cleanable.dirty.ratio 0.5). Reported: bytes the
// cleaner wrote (and read) per byte appended, and the partition's size
// at the end against its live set. b.N is the number of records.
func BenchmarkCleanerWriteAmplification(b *testing.B) {
	dir := b.TempDir()
	if d, err := os.MkdirTemp("/dev/shm", "runnel-bench-"); err == nil {
		dir = d
		defer os.RemoveAll(d)
	}
	l, err := Open(compactOpts(dir, nil))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	cfg := TopicConfig{Partitions: 1, Cleanup: CleanupCompact, SegmentBytes: 1 << 20}
	if err := l.CreateTopic("c", cfg); err != nil {
		b.Fatal(err)
	}
	li := l.(*logImpl)
	p, _ := li.part("c", 0)
	tcfg := p.t.config()
	const keys, perBatch, rate = 10000, 100, 1000
	interval := 15 * time.Second
	rng := rand.New(rand.NewPCG(1, 2))
	value := []byte(strings.Repeat("v", 64))
	start := time.Now()
	nextClean := start.Add(interval)
	var appended int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += perBatch {
		now := start.Add(time.Duration(i) * time.Second / rate)
		var bb batch.Builder
		for j := 0; j < perBatch; j++ {
			bb.Add(now.UnixMilli(), []byte(fmt.Sprintf("device-%05d", rng.IntN(keys))), value, nil)
		}
		data := bb.Bytes()
		appended += int64(len(data))
		if _, err := l.Append(context.Background(), "c", 0, data); err != nil {
			b.Fatal(err)
		}
		if now.After(nextClean) {
			nextClean = now.Add(interval)
			if p.cleanDue(&tcfg, now) {
				if err := li.cleanPartition(p, &tcfg, now); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.StopTimer()
	st := l.Stats().Cleaner
	b.SetBytes(appended / int64(max(b.N, 1)))
	b.ReportMetric(float64(st.BytesWritten)/float64(appended), "cleaner-written/appended")
	b.ReportMetric(float64(st.BytesRead)/float64(appended), "cleaner-read/appended")
	info := l.Topics()[0].Partitions[0]
	b.ReportMetric(float64(info.Bytes)/float64(appended), "size/appended")
	b.ReportMetric(float64(st.Passes), "passes")
}
