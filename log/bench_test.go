package log_test

// Benchmarks of the commit log on the real file system (t.TempDir), each
// with its baseline in the same run:
//
//	BenchmarkBulk          one partition, 100 × 1 KiB records per batch,
//	                       fsync always  vs  write + fdatasync per batch
//	BenchmarkManyWriters   64 goroutines × 64 partitions, 100-byte records,
//	                       each waiting for its ack (acked-rec/s)
//	                       vs  64 files, write + fdatasync per record
//	BenchmarkTrickle       1,000 partitions, 10,000 rec/s paced, fsync
//	                       always: p99 latency and device bytes written per
//	                       appended byte (/proc/self/io write_bytes)
//	                       vs  1,000 files, write + fdatasync per record
//	BenchmarkSequentialRead  1 GiB (64 MiB with -short) from page cache
//	                       vs  pread of the same segment files
//	BenchmarkRecovery      open a 2 GiB log of 500 segments (200 MiB / 50
//	                       with -short) after an unclean stop (a child
//	                       process exits without Close)  vs  reading and
//	                       CRC-checking every batch
//
// One op is enough work that `make bench` (-benchtime 3x) measures
// something: Bulk 100 batches, ManyWriters and Trickle 10,000 records,
// SequentialRead the whole log, Recovery one Open.
//
// Run: go test -run XXX -bench . -benchtime 3x ./log/

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/logtest/reexec"

	"github.com/runnel/runnel/log/vfs/vfstest"
)

func benchOptions(dir string) *log.Options {
	return &log.Options{
		Dir:          dir,
		Logger:       slog.New(slog.DiscardHandler),
		MinFreeBytes: -1,
		MaxOpenFiles: 512,
		CommitDelay:  benchCommitDelay,
	}
}

// benchCommitDelay is Options.CommitDelay for the benchmarks, from
// RUNNEL_BENCH_COMMIT_DELAY (unset: the default; e.g. -1ns: off), to
// measure each value (log/doc.go).
var benchCommitDelay = func() time.Duration {
	d, _ := time.ParseDuration(os.Getenv("RUNNEL_BENCH_COMMIT_DELAY"))
	return d
}()

func openBench(b *testing.B, dir string, topic string, cfg log.TopicConfig, mods ...func(*log.Options)) log.Log {
	b.Helper()
	o := benchOptions(dir)
	for _, m := range mods {
		m(o)
	}
	l, err := log.Open(o)
	if err != nil {
		b.Fatal(err)
	}
	if err := l.CreateTopic(topic, cfg); err != nil {
		b.Fatal(err)
	}
	return l
}

// recordBatch builds one batch of n records with values of size bytes.
func recordBatch(n, size int, seed int) []byte {
	var bl batch.Builder
	v := make([]byte, size)
	for i := range v {
		v[i] = byte(seed + i*31)
	}
	for i := range n {
		bl.Add(1_700_000_000_000+int64(i), nil, v, nil)
	}
	return bl.Bytes()
}

// bulkBatches is the number of batches per op of BenchmarkBulk.
const bulkBatches = 100

func BenchmarkBulk(b *testing.B) {
	vfstest.RequireRealDisk(b, os.TempDir())
	data := recordBatch(100, 1024, 1)
	b.Run("log-fsync-always", func(b *testing.B) {
		l := openBench(b, b.TempDir(), "bulk", log.TopicConfig{Partitions: 1, Fsync: log.FsyncAlways})
		defer l.Close()
		ctx := context.Background()
		b.SetBytes(int64(len(data)) * bulkBatches)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N * bulkBatches {
			if _, err := l.Append(ctx, "bulk", 0, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-write-fdatasync", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "plain"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(int64(len(data)) * bulkBatches)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N * bulkBatches {
			if _, err := f.Write(data); err != nil {
				b.Fatal(err)
			}
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// recordsPerOp is the number of records per op of ManyWriters and Trickle.
const recordsPerOp = 10000

// writers runs n goroutines that together call do total times; do gets the
// goroutine's index.
func writers(n, total int, do func(w int) error) error {
	var wg sync.WaitGroup
	var left atomic.Int64
	left.Store(int64(total))
	errs := make(chan error, n)
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if err := do(w); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func BenchmarkManyWriters(b *testing.B) {
	vfstest.RequireRealDisk(b, os.TempDir())
	const n = 64
	data := recordBatch(1, 100, 2)
	many := func(b *testing.B, mods ...func(*log.Options)) {
		l := openBench(b, b.TempDir(), "many", log.TopicConfig{Partitions: n, Fsync: log.FsyncAlways}, mods...)
		defer l.Close()
		bufs := make([][]byte, n)
		for i := range bufs {
			bufs[i] = append([]byte(nil), data...)
		}
		ctx := context.Background()
		b.SetBytes(int64(len(data)) * recordsPerOp)
		b.ReportAllocs()
		st0 := l.Stats()
		b.ResetTimer()
		err := writers(n, b.N*recordsPerOp, func(w int) error {
			_, err := l.Append(ctx, "many", int32(w), bufs[w])
			return err
		})
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		st := l.Stats()
		fsyncs := float64(st.Fsyncs - st0.Fsyncs)
		b.ReportMetric(float64(b.N*recordsPerOp)/b.Elapsed().Seconds(), "acked-rec/s")
		b.ReportMetric(float64(b.N*recordsPerOp)/fsyncs, "rec/fsync")
		b.ReportMetric(float64(st.FsyncNanos-st0.FsyncNanos)/fsyncs/1e3, "us/fsync")
	}
	b.Run("log-fsync-always-journal", func(b *testing.B) { many(b, func(o *log.Options) { o.NoSharedSegments = true }) })
	b.Run("log-fsync-always-shared", func(b *testing.B) { many(b) })
	b.Run("baseline-file-per-writer-fdatasync", func(b *testing.B) {
		dir := b.TempDir()
		files := make([]*os.File, n)
		for i := range files {
			f, err := os.Create(filepath.Join(dir, fmt.Sprint(i)))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			files[i] = f
		}
		b.SetBytes(int64(len(data)) * recordsPerOp)
		b.ReportAllocs()
		b.ResetTimer()
		err := writers(n, b.N*recordsPerOp, func(w int) error {
			if _, err := files[w].Write(data); err != nil {
				return err
			}
			return unix.Fdatasync(int(files[w].Fd()))
		})
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N*recordsPerOp)/b.Elapsed().Seconds(), "acked-rec/s")
	})
}

// writeBytes reads write_bytes of /proc/self/io (bytes this process caused
// to be sent to the block layer).
func writeBytes(b *testing.B) int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		b.Skipf("no /proc/self/io: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Skip("no write_bytes in /proc/self/io")
	return 0
}

// pace calls issue(i) for i in [0, n) at rate per second, open loop (late
// calls catch up, so latency includes queueing), and returns each call's
// scheduled time.
func pace(n int, rate float64, issue func(i int, scheduled time.Time)) {
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for i := 0; i < n; {
		due := int(time.Since(start)/interval) + 1
		for ; i < n && i < due; i++ {
			issue(i, start.Add(time.Duration(i)*interval))
		}
		time.Sleep(time.Millisecond)
	}
}

// reportLatency reports p50/p99/max in ms.
func reportLatency(b *testing.B, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / 1e6
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
}

// paceAppends appends total copies of data to "trickle" at rate records/s
// (round-robin over partitions) with AppendAsync, waits for every ack,
// stops the timer and returns each append's latency from its scheduled
// time. A failed append fails the benchmark.
func paceAppends(b *testing.B, l log.Log, data []byte, total, partitions int, rate float64) []time.Duration {
	lat := make([]time.Duration, total)
	var wg sync.WaitGroup
	var failed atomic.Int64
	wg.Add(total)
	pace(total, rate, func(i int, scheduled time.Time) {
		mine := append([]byte(nil), data...)
		l.AppendAsync("trickle", int32(i%partitions), mine, func(_ int64, err error) {
			lat[i] = time.Since(scheduled)
			if err != nil {
				failed.Add(1)
			}
			wg.Done()
		})
	})
	wg.Wait()
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d appends failed", failed.Load())
	}
	return lat
}

func BenchmarkTrickle(b *testing.B) {
	vfstest.RequireRealDisk(b, os.TempDir())
	const partitions, rate = 1000, 10000.0
	data := recordBatch(1, 100, 3)
	trickle := func(b *testing.B, mods ...func(*log.Options)) {
		l := openBench(b, b.TempDir(), "trickle", log.TopicConfig{Partitions: partitions, Fsync: log.FsyncAlways}, mods...)
		defer l.Close()
		total := b.N * recordsPerOp
		b.SetBytes(int64(len(data)) * recordsPerOp)
		b.ReportAllocs()
		wb := writeBytes(b)
		st0 := l.Stats()
		b.ResetTimer()
		lat := paceAppends(b, l, data, total, partitions, rate)
		reportLatency(b, lat)
		b.ReportMetric(float64(writeBytes(b)-wb)/float64(total*len(data)), "dev-bytes/byte")
		b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "acked-rec/s")
		st := l.Stats()
		b.ReportMetric(float64(st.Fsyncs-st0.Fsyncs)/b.Elapsed().Seconds(), "fsyncs/s")
	}
	// The default: shared segments, small commits stored once.
	b.Run("log-fsync-always-shared", func(b *testing.B) { trickle(b) })
	// NoSharedSegments: partition segment files made durable through the
	// node journal (every byte written twice).
	b.Run("log-fsync-always-journal", func(b *testing.B) { trickle(b, func(o *log.Options) { o.NoSharedSegments = true }) })
	b.Run("baseline-file-per-partition-fdatasync", func(b *testing.B) {
		dir := b.TempDir()
		type req struct {
			i         int
			scheduled time.Time
		}
		total := b.N * recordsPerOp
		lat := make([]time.Duration, total)
		chans := make([]chan req, partitions)
		var wg, workers sync.WaitGroup
		for p := range chans {
			chans[p] = make(chan req, 64)
			f, err := os.Create(filepath.Join(dir, fmt.Sprint(p)))
			if err != nil {
				b.Fatal(err)
			}
			workers.Add(1)
			go func() {
				defer workers.Done()
				defer f.Close()
				for r := range chans[p] {
					f.Write(data)
					unix.Fdatasync(int(f.Fd()))
					lat[r.i] = time.Since(r.scheduled)
					wg.Done()
				}
			}()
		}
		b.SetBytes(int64(len(data)) * recordsPerOp)
		b.ReportAllocs()
		wb := writeBytes(b)
		b.ResetTimer()
		wg.Add(total)
		pace(total, rate, func(i int, scheduled time.Time) { chans[i%partitions] <- req{i, scheduled} })
		wg.Wait()
		b.StopTimer()
		for _, c := range chans {
			close(c)
		}
		workers.Wait()
		reportLatency(b, lat)
		b.ReportMetric(float64(writeBytes(b)-wb)/float64(total*len(data)), "dev-bytes/byte")
		b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "acked-rec/s")
	})
}

// readFixture is a log holding size bytes in one partition, built once per
// process.
type readFixture struct {
	dir   string
	l     log.Log
	hwm   int64
	bytes int64
	files []string
}

// sequentialReadFixture builds the log; call it from a top-level benchmark
// (run once), it is removed when that benchmark ends.
func sequentialReadFixture(b *testing.B) *readFixture {
	var readFix *readFixture
	readErr := func() error {
		size := int64(1 << 30)
		if testing.Short() {
			size = 64 << 20
		}
		dir := b.TempDir()
		l, err := log.Open(benchOptions(dir))
		if err != nil {
			return err
		}
		b.Cleanup(func() { l.Close() })
		if err := l.CreateTopic("read", log.TopicConfig{Partitions: 1, Fsync: log.FsyncNever}); err != nil {
			return err
		}
		data := recordBatch(1000, 1000, 4) // ~1 MiB batches
		ctx := context.Background()
		var written int64
		for written < size {
			if _, err := l.Append(ctx, "read", 0, data); err != nil {
				return err
			}
			written += int64(len(data))
		}
		_, hwm, _ := l.Offsets("read", 0)
		files, _ := filepath.Glob(filepath.Join(dir, "read", "0", "*.log"))
		readFix = &readFixture{dir: dir, l: l, hwm: hwm, bytes: written, files: files}
		return nil
	}()
	if readErr != nil {
		b.Fatal(readErr)
	}
	return readFix
}

func BenchmarkSequentialRead(b *testing.B) {
	vfstest.RequireRealDisk(b, os.TempDir())
	fx := sequentialReadFixture(b)
	b.Run("log-read", func(b *testing.B) {
		b.SetBytes(fx.bytes)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			var got int64
			for off := int64(0); off < fx.hwm; {
				buf, err := fx.l.Read("read", 0, off, 1<<20)
				if err != nil || len(buf) == 0 {
					b.Fatalf("Read(%d): %v", off, err)
				}
				got += int64(len(buf))
				// Advance past the last whole batch returned.
				for pos := 0; pos+batch.HeaderSize <= len(buf); {
					h, err := batch.ParseHeader(buf[pos:])
					if err != nil {
						b.Fatal(err)
					}
					off = h.LastOffset() + 1
					pos += h.Size()
				}
			}
			if got < fx.bytes {
				b.Fatalf("read %d of %d bytes", got, fx.bytes)
			}
		}
	})
	b.Run("baseline-pread", func(b *testing.B) {
		buf := make([]byte, 1<<20)
		b.SetBytes(fx.bytes)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			for _, name := range fx.files {
				f, err := os.Open(name)
				if err != nil {
					b.Fatal(err)
				}
				for off := int64(0); ; {
					n, err := f.ReadAt(buf, off)
					off += int64(n)
					if err != nil {
						break
					}
				}
				f.Close()
			}
		}
	})
}

// Recovery fixture: a child process (this test binary, re-run with
// recoveryEnv set) builds the log and exits without Close.
const recoveryEnv = "RUNNEL_BENCH_RECOVERY_BUILD"

func recoverySize() (total int64, segments int) {
	if testing.Short() {
		return 200 << 20, 50
	}
	return 2 << 30, 500
}

// buildUncleanLog runs in the child: fill dir, then exit without Close.
func buildUncleanLog(spec string) {
	var dir string
	var total int64
	var segments int
	parts := strings.Split(spec, ":")
	dir = parts[0]
	total, _ = strconv.ParseInt(parts[1], 10, 64)
	segments, _ = strconv.Atoi(parts[2])
	l, err := log.Open(benchOptions(dir))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cfg := log.TopicConfig{Partitions: 1, Fsync: log.FsyncAlways, SegmentBytes: total / int64(segments), RetentionAge: -1}
	if err := l.CreateTopic("rec", cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	data := recordBatch(1000, 1000, 5)
	ctx := context.Background()
	for written := int64(0); written < total; written += int64(len(data)) {
		if _, err := l.Append(ctx, "rec", 0, data); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	_, hwm, _ := l.Offsets("rec", 0)
	fmt.Printf("hwm=%d\n", hwm)
	os.Exit(0) // unclean: no Close
}

type recoveryFixture struct {
	dir    string
	hwm    int64
	small  map[string][]byte // every file but the segments, as the crash left them
	logs   []string
	segs   int
	totalB int64
}

// uncleanLogFixture builds the log in a child process; call it from a
// top-level benchmark, it is removed when that benchmark ends.
func uncleanLogFixture(b *testing.B) *recoveryFixture {
	var recFix *recoveryFixture
	recErr := func() error {
		total, segments := recoverySize()
		dir := b.TempDir()
		cmd := reexec.Command("-test.run=^$", "-test.bench=^BenchmarkRecovery$", "-test.benchtime=1x")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s:%d:%d", recoveryEnv, dir, total, segments))
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("building the log in a child: %v: %s", err, out)
		}
		m := regexpHWM(string(out))
		if m < 0 {
			return fmt.Errorf("child output without hwm: %s", out)
		}
		fx := &recoveryFixture{dir: dir, hwm: m, small: map[string][]byte{}, segs: segments, totalB: total}
		filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() {
				return err
			}
			if strings.HasSuffix(p, ".log") {
				fx.logs = append(fx.logs, p)
				return nil
			}
			fx.small[p], _ = os.ReadFile(p)
			return nil
		})
		recFix = fx
		return nil
	}()
	if recErr != nil {
		b.Fatal(recErr)
	}
	return recFix
}

func regexpHWM(out string) int64 {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "hwm="); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// restore puts back every non-segment file as the unclean stop left it
// (a clean Close after each timed Open rewrites checkpoints).
func (fx *recoveryFixture) restore(b *testing.B) {
	for p, data := range fx.small {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecovery(b *testing.B) {
	vfstest.RequireRealDisk(b, os.TempDir())
	if spec := os.Getenv(recoveryEnv); spec != "" {
		buildUncleanLog(spec)
	}
	fx := uncleanLogFixture(b)
	b.Run(fmt.Sprintf("open-after-unclean-stop-%dMiB-%dsegs", fx.totalB>>20, fx.segs), func(b *testing.B) {
		b.ReportAllocs()
		var total time.Duration
		for range b.N {
			b.StopTimer()
			fx.restore(b)
			b.StartTimer()
			t0 := time.Now()
			l, err := log.Open(benchOptions(fx.dir))
			total += time.Since(t0)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if _, hwm, err := l.Offsets("rec", 0); err != nil || hwm < fx.hwm {
				b.Fatalf("after recovery HWM %d (err %v), acknowledged %d", hwm, err, fx.hwm)
			}
			if d := l.Stats().Damaged; len(d) > 0 {
				b.Fatalf("damage after an unclean stop: %+v", d)
			}
			l.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/open")
	})
	b.Run("baseline-full-crc-scan", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(fx.totalB)
		t0 := time.Now()
		for range b.N {
			for _, name := range fx.logs {
				data, err := os.ReadFile(name)
				if err != nil {
					b.Fatal(err)
				}
				for pos := 0; pos < len(data); {
					h, err := batch.Validate(data[pos:])
					if err != nil {
						break // preallocated tail or torn end
					}
					pos += h.Size()
				}
			}
		}
		b.ReportMetric(float64(time.Since(t0).Milliseconds())/float64(b.N), "ms/scan")
	})
}
