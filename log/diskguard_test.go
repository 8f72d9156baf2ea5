package log

import (
	"testing"

	"github.com/shirou/gopsutil/v4/disk"
)

// TestStatfsUsage checks the disk guard's figures against gopsutil's
// disk.Usage, which it replaced: the same total, and free space equal but
// for what other writers on the machine changed between the two calls.
func TestStatfsUsage(t *testing.T) {
	dir := t.TempDir()
	free, total, err := statfsUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	u, err := disk.Usage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if total != u.Total || total == 0 {
		t.Errorf("total %d, gopsutil %d", total, u.Total)
	}
	const slack = 64 << 20
	if d := int64(free) - int64(u.Free); d > slack || d < -slack || free > total {
		t.Errorf("free %d, gopsutil %d (total %d)", free, u.Free, total)
	}
	if _, _, err := statfsUsage(dir + "/missing"); err == nil {
		t.Errorf("no error for a missing directory")
	}
}
