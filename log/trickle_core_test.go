package log

import (
	"context"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel/runnel/log/batch"

	"github.com/runnel/runnel/log/vfs/vfstest"
)

// procWriteBytes reads write_bytes of /proc/self/io (bytes this process
// caused to be sent to the storage layer, counted when pages are dirtied).
func procWriteBytes() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return -1
}

// trickle drives parts partitions at rate records/s in total (one record
// per append, each appender waiting for its ack) for d, and returns the
// p99 latency and the device bytes written per byte appended.
func trickle(tb testing.TB, dir string, mod func(*Options), parts, rate int, d time.Duration) (p50, p99 time.Duration, amp float64, n int) {
	l := testOpen(&testing.T{}, dir, mod)
	defer func() {
		st := l.Stats()
		tb.Logf("journal commits %d (%.0f B each), shared commits %d (%.0f B each), fsyncs %d, appended %d B", st.JournalCommits, float64(st.JournalBytes)/float64(st.JournalCommits+1),
			st.SharedCommits, float64(st.SharedBytes)/float64(st.SharedCommits+1), st.Fsyncs, st.AppendedBytes)
		l.Close()
	}()
	if err := l.CreateTopic("trickle", TopicConfig{Partitions: int32(parts)}); err != nil {
		tb.Fatal(err)
	}
	const workers = 100
	perWorker := parts / workers
	interval := time.Duration(int64(time.Second) * int64(workers) / int64(rate))
	var mu sync.Mutex
	var lats []time.Duration
	var appended int64
	w0 := procWriteBytes()
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			val := make([]byte, 100)
			next := time.Now().Add(time.Duration(w) * interval / workers)
			var my []time.Duration
			var bytes int64
			for i := 0; time.Now().Before(stop); i++ {
				time.Sleep(time.Until(next))
				next = next.Add(interval)
				var b batch.Builder
				b.Add(time.Now().UnixMilli(), []byte("sensor"), val, nil)
				data := b.Bytes()
				p := int32(w*perWorker + i%perWorker)
				t0 := time.Now()
				if _, err := l.Append(context.Background(), "trickle", p, data); err != nil {
					tb.Error(err)
					return
				}
				my = append(my, time.Since(t0))
				bytes += int64(len(data))
			}
			mu.Lock()
			lats = append(lats, my...)
			appended += bytes
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	w1 := procWriteBytes()
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	if len(lats) == 0 {
		return 0, 0, 0, 0
	}
	return lats[len(lats)/2], lats[len(lats)*99/100], float64(w1-w0) / float64(appended), len(lats)
}

// BenchmarkTrickleCore is the design measurement behind doc.go: 1,000
// partitions, 10,000 records/s in total, fsync always, with and without
// the node journal. Run on a real disk (write_bytes is not counted on
// tmpfs): go test -run XXX -bench TrickleCore ./log/
func BenchmarkTrickleCore(b *testing.B) {
	vfstest.RequireRealDisk(b, os.TempDir())
	for _, mode := range []string{"shared", "journal", "files"} {
		mod := func(o *Options) {
			o.NoSharedSegments = mode != "shared"
			o.NoJournal = mode == "files"
		}
		b.Run(mode, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				p50, p99, amp, n := trickle(b, b.TempDir(), mod, 1000, 10000, 3*time.Second)
				b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
				b.ReportMetric(amp, "write-amp")
				b.ReportMetric(float64(n)/3, "rec/s")
			}
		})
	}
}

// BenchmarkManyWritersCore: 64 goroutines on 64 partitions, 100-byte
// records, each waiting for its ack (fsync always).
func BenchmarkManyWritersCore(b *testing.B) {
	vfstest.RequireRealDisk(b, os.TempDir())
	for _, mode := range []string{"shared", "journal", "files"} {
		b.Run(mode, func(b *testing.B) {
			l := testOpen(&testing.T{}, b.TempDir(), func(o *Options) {
				o.NoSharedSegments = mode != "shared"
				o.NoJournal = mode == "files"
				o.CommitDelay = benchWindow
			})
			defer l.Close()
			l.CreateTopic("w", TopicConfig{Partitions: 64})
			var bb batch.Builder
			bb.Add(time.Now().UnixMilli(), nil, make([]byte, 100), nil)
			data := bb.Bytes()
			b.SetBytes(100)
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/64 + 1
			t0 := time.Now()
			for g := 0; g < 64; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					buf := append([]byte(nil), data...)
					for i := 0; i < per; i++ {
						if _, err := l.Append(context.Background(), "w", int32(g), buf); err != nil {
							b.Error(err)
							return
						}
					}
				}(g)
			}
			wg.Wait()
			b.ReportMetric(float64(per*64)/time.Since(t0).Seconds(), "rec/s")
			st := l.Stats()
			b.ReportMetric(float64(st.FsyncNanos)/float64(st.Fsyncs+1)/1000, "us/fsync")
			b.ReportMetric(float64(st.AppendedRecords)/float64(st.Fsyncs+1), "rec/fsync")
		})
	}
}

// BenchmarkBulkCore: one partition, 100 records of 1 KiB per batch, fsync
// always, against a plain file written with one fdatasync per batch.
func BenchmarkBulkCore(b *testing.B) {
	vfstest.RequireRealDisk(b, os.TempDir())
	var bb batch.Builder
	for i := 0; i < 100; i++ {
		bb.Add(time.Now().UnixMilli(), nil, make([]byte, 1024), nil)
	}
	data := bb.Bytes()
	b.Run("baseline", func(b *testing.B) {
		f, err := os.Create(b.TempDir() + "/plain")
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := f.Write(data); err != nil {
				b.Fatal(err)
			}
			if err := fdatasyncFile(f); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("log", func(b *testing.B) {
		l := testOpen(&testing.T{}, b.TempDir(), nil)
		defer l.Close()
		l.CreateTopic("bulk", TopicConfig{})
		buf := append([]byte(nil), data...)
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := l.Append(context.Background(), "bulk", 0, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReadCore: sequential Read of a partition from the page cache,
// 1 MiB per call.
func BenchmarkReadCore(b *testing.B) {
	vfstest.RequireRealDisk(b, os.TempDir())
	l := testOpen(&testing.T{}, b.TempDir(), nil)
	defer l.Close()
	l.CreateTopic("r", TopicConfig{Fsync: FsyncNever, SegmentBytes: 64 << 20})
	var bb batch.Builder
	for i := 0; i < 100; i++ {
		bb.Add(time.Now().UnixMilli(), nil, make([]byte, 1024), nil)
	}
	data := bb.Bytes()
	const total = 128 << 20
	for n := 0; n < total; n += len(data) {
		if _, err := l.Append(context.Background(), "r", 0, append([]byte(nil), data...)); err != nil {
			b.Fatal(err)
		}
	}
	_, hwm, _ := l.Offsets("r", 0)
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		off := int64(0)
		for off < hwm {
			d, err := l.Read("r", 0, off, 1<<20)
			if err != nil || len(d) == 0 {
				b.Fatal(err)
			}
			for len(d) > 0 {
				h, _ := batch.ParseHeader(d)
				off = h.LastOffset() + 1
				d = d[h.Size():]
			}
		}
	}
}

// benchWindow is Options.CommitDelay for the core benchmarks (0 = default).
var benchWindow = func() time.Duration {
	d, _ := time.ParseDuration(os.Getenv("RUNNEL_BENCH_COMMIT_DELAY"))
	return d
}()

// BenchmarkAppendCPUCore: the CPU cost of one small Append (fsync never,
// 64 partitions round robin, one goroutine).
func BenchmarkAppendCPUCore(b *testing.B) {
	l := testOpen(&testing.T{}, b.TempDir(), nil)
	defer l.Close()
	l.CreateTopic("c", TopicConfig{Partitions: 64, Fsync: FsyncNever})
	var bb batch.Builder
	bb.Add(time.Now().UnixMilli(), nil, make([]byte, 100), nil)
	data := bb.Bytes()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := l.Append(context.Background(), "c", int32(i%64), data); err != nil {
			b.Fatal(err)
		}
	}
}
