package log

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/runnel/runnel/log/vfs"
)

// BenchmarkGrowSync: pwrite + fdatasync of entries one after another in a
// file grown ahead by growFile, with fallocate or with zeros, on the file
// system of the test's temp dir (TMPDIR picks it): what an entry's sync
// costs when its block was preallocated ("unwritten") against written
// zeros (sharedZerosBelow, log/doc.go). Reports the p50 and p90 of the
// syncs in µs.
//
//	go test -run XXX -bench GrowSync -benchtime 1500x ./log/
func BenchmarkGrowSync(b *testing.B) {
	for _, entry := range []int{600, 3400} {
		for _, zeros := range []bool{false, true} {
			name := fmt.Sprintf("entry=%d/fallocate", entry)
			if zeros {
				name = fmt.Sprintf("entry=%d/zeros", entry)
			}
			b.Run(name, func(b *testing.B) {
				f, err := vfs.Default.Create(filepath.Join(b.TempDir(), "f"))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				buf := make([]byte, entry)
				for i := range buf {
					buf[i] = byte(i)
				}
				lat := make([]time.Duration, 0, b.N)
				var off, alloc int64
				b.ResetTimer()
				for range b.N {
					if end := off + int64(entry); end > alloc {
						alloc = alignUp(end, sharedGrow)
						if err := growFile(f, alloc, zeros); err != nil {
							b.Fatal(err)
						}
					}
					t := time.Now()
					if _, err := f.WriteAt(buf, off); err != nil {
						b.Fatal(err)
					}
					if err := f.Sync(); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t))
					off += int64(entry)
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds()), "p90-µs")
			})
		}
	}
}
