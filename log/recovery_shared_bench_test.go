package log_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/logtest/reexec"

	"github.com/runnel/runnel/log/vfs/vfstest"
)

// BenchmarkRecoveryShared: issue 2's recovery benchmark on the default
// format's trickle data. A child process appends 2 GiB (200 MiB with
// -short) of 1 KiB batches to 1,000 partitions, fsync always (all of it
// stored once, in shared segment files), and exits without Close a
// moment later (the extent indexes of rolled files are written in the
// background; the file being written is not indexed). Measured: the time
// to open, and the heap the open leaves behind, against reading and
// CRC-checking every shared file (what open did before the extent index).
//
// Run: go test -run '^$' -bench 'BenchmarkRecoveryShared$' -benchtime 3x ./log/
func BenchmarkRecoveryShared(b *testing.B) {
	vfstest.RequireRealDisk(b, os.TempDir())
	if spec := os.Getenv(recoverySharedEnv); spec != "" {
		buildUncleanShared(spec)
	}
	total := int64(2 << 30)
	if testing.Short() {
		total = 200 << 20
	}
	dir := b.TempDir()
	cmd := reexec.Command("-test.run=^$", "-test.bench=^BenchmarkRecoveryShared$", "-test.benchtime=1x")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s:%d", recoverySharedEnv, dir, total))
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("building the log in a child: %v: %s", err, out)
	}
	acked := map[int32]int64{}
	for _, line := range strings.Split(string(out), "\n") {
		var p int32
		var hwm int64
		if n, _ := fmt.Sscanf(strings.TrimSpace(line), "hwm %d %d", &p, &hwm); n == 2 {
			acked[p] = hwm
		}
	}
	if len(acked) != recoverySharedParts {
		b.Fatalf("child reported %d partitions: %s", len(acked), out)
	}
	slogs, _ := filepath.Glob(filepath.Join(dir, "~shared", "*.slog"))
	idx, _ := filepath.Glob(filepath.Join(dir, "~shared", "*.sidx"))
	// Each open may index the file the child left unindexed and writes a
	// checkpoint: keep the crash state and put it back before each open.
	snap := b.TempDir()
	if err := exec.Command("cp", "-a", dir+"/.", snap).Run(); err != nil {
		b.Fatal(err)
	}
	restore := func() {
		os.RemoveAll(dir)
		if err := exec.Command("cp", "-a", snap+"/.", dir).Run(); err != nil {
			b.Fatal(err)
		}
	}
	b.Run(fmt.Sprintf("open-after-unclean-stop-%dMiB-%dshared-%dindexed", total>>20, len(slogs), len(idx)), func(b *testing.B) {
		var openTime time.Duration
		var heap uint64
		for range b.N {
			b.StopTimer()
			restore()
			runtime.GC()
			var m0 runtime.MemStats
			runtime.ReadMemStats(&m0)
			b.StartTimer()
			t0 := time.Now()
			l, err := log.Open(benchOptions(dir))
			openTime += time.Since(t0)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			var m1 runtime.MemStats
			runtime.ReadMemStats(&m1)
			heap += m1.HeapAlloc - min(m1.HeapAlloc, m0.HeapAlloc)
			for p, hwm := range acked {
				if _, got, err := l.Offsets("trk", p); err != nil || got < hwm {
					b.Fatalf("partition %d: HWM %d (err %v) after recovery, acknowledged %d", p, got, err, hwm)
				}
			}
			if d := l.Stats().Damaged; len(d) > 0 {
				b.Fatalf("damage after an unclean stop: %+v", d[0])
			}
			// Every partition reads back from its start.
			for p := range int32(recoverySharedParts) {
				if data, err := l.Read("trk", p, 0, 1<<16); err != nil || len(data) == 0 {
					b.Fatalf("partition %d: read %d bytes: %v", p, len(data), err)
				}
			}
			l.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(openTime.Milliseconds())/float64(b.N), "ms/open")
		b.ReportMetric(float64(heap)/float64(b.N)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(heap)/float64(b.N)/float64(total)*100, "heap-%-of-data")
	})
	b.Run("baseline-read-and-crc-every-shared-file", func(b *testing.B) {
		b.SetBytes(total)
		t0 := time.Now()
		for range b.N {
			for _, name := range slogs {
				f, err := os.Open(name)
				if err != nil {
					b.Fatal(err)
				}
				data, err := io.ReadAll(f)
				f.Close()
				if err != nil {
					b.Fatal(err)
				}
				for pos := 24; pos+20 < len(data); {
					n := int(uint32(data[pos+4])<<24 | uint32(data[pos+5])<<16 | uint32(data[pos+6])<<8 | uint32(data[pos+7]))
					if pos+20+n > len(data) {
						break
					}
					batch.ValidateAll(data[pos+20 : pos+20+n])
					pos += 20 + n
				}
			}
		}
		b.ReportMetric(float64(time.Since(t0).Milliseconds())/float64(b.N), "ms/scan")
	})
}

const (
	recoverySharedEnv   = "RUNNEL_BENCH_RECOVERY_SHARED_BUILD"
	recoverySharedParts = 1000
)

// buildUncleanShared runs in the child: fill dir, then exit without Close.
func buildUncleanShared(spec string) {
	dir, totalS, _ := strings.Cut(spec, ":")
	total, _ := strconv.ParseInt(totalS, 10, 64)
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	l, err := log.Open(benchOptions(dir))
	if err != nil {
		fail(err)
	}
	cfg := log.TopicConfig{Partitions: recoverySharedParts, Fsync: log.FsyncAlways, RetentionAge: -1}
	if err := l.CreateTopic("trk", cfg); err != nil {
		fail(err)
	}
	data := recordBatch(10, 100, 7) // ~1 KiB: a small commit, stored in shared files
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4096)
	var mu sync.Mutex
	var firstErr error
	for written, i := int64(0), 0; written < total; written, i = written+int64(len(data)), i+1 {
		sem <- struct{}{}
		wg.Add(1)
		b := append([]byte(nil), data...)
		l.AppendAsync("trk", int32(i%recoverySharedParts), b, func(_ int64, err error) {
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
			<-sem
			wg.Done()
		})
	}
	wg.Wait()
	if firstErr != nil {
		fail(firstErr)
	}
	for p := range int32(recoverySharedParts) {
		_, hwm, _ := l.Offsets("trk", p)
		fmt.Printf("hwm %d %d\n", p, hwm)
	}
	if st := l.Stats(); st.SharedBytes < uint64(total)/2 {
		fail(fmt.Errorf("only %d of %d bytes went to shared files", st.SharedBytes, total))
	}
	time.Sleep(1500 * time.Millisecond) // the background indexing of rolled files
	os.Exit(0)                          // unclean: no Close
}
