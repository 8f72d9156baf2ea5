package log

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/runnel/runnel/log/batch"

	"github.com/runnel/runnel/log/vfs/vfstest"
)

// BenchmarkRecoveryCore opens a 512 MiB log of 500 segments after an
// unclean stop, with the recovery checkpoint (as the checkpoint loop
// leaves it) and without one (every segment is scanned).
func BenchmarkRecoveryCore(b *testing.B) {
	vfstest.RequireRealDisk(b, os.TempDir())
	dir := b.TempDir()
	l := testOpen(&testing.T{}, dir, nil)
	l.CreateTopic("r", TopicConfig{Fsync: FsyncNever, SegmentBytes: 1 << 20})
	var bb batch.Builder
	for i := 0; i < 100; i++ {
		bb.Add(time.Now().UnixMilli(), nil, make([]byte, 1024), nil)
	}
	data := bb.Bytes()
	for n := 0; n < 500<<20; n += len(data) {
		if _, err := l.Append(context.Background(), "r", 0, append([]byte(nil), data...)); err != nil {
			b.Fatal(err)
		}
	}
	l.Close()
	ck, _ := os.ReadFile(filepath.Join(dir, checkpointName))
	for _, withCk := range []bool{true, false} {
		name := "checkpoint"
		if !withCk {
			name = "no-checkpoint"
		}
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if withCk {
					os.WriteFile(filepath.Join(dir, checkpointName), ck, 0o644)
				} else {
					os.Remove(filepath.Join(dir, checkpointName))
				}
				t0 := time.Now()
				l := testOpen(&testing.T{}, dir, nil)
				b.ReportMetric(float64(time.Since(t0).Milliseconds()), "open-ms")
				if _, hwm, _ := l.Offsets("r", 0); hwm == 0 {
					b.Fatal("empty after open")
				}
				l.Close()
			}
		})
	}
}
