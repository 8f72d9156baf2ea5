// Package vfstest holds helpers for tests and benchmarks that use the real
// file system.
package vfstest

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// File system magic numbers (statfs f_type) of the file systems that keep
// everything in memory, where fsync costs nothing.
const (
	tmpfsMagic = 0x01021994
	ramfsMagic = 0x858458f6
)

// names of common disk file systems, for the log line.
var names = map[uint64]string{0xef53: "ext2/3/4", 0x58465342: "xfs", 0x9123683e: "btrfs", 0xf2f52010: "f2fs", 0x4d44: "vfat"}

// RequireRealDisk fails tb when dir is on tmpfs or ramfs, where fsync is
// free and a figure of "acknowledged after fsync" would be fiction, unless
// RUNNEL_BENCH_ALLOW_TMPFS=1, which only marks the figures loudly. Call it
// at the start of a benchmark or durability test on the directory its data
// goes to (os.TempDir() for b.TempDir()). It logs the file system either way.
func RequireRealDisk(tb testing.TB, dir string) {
	tb.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		tb.Fatalf("statfs %s: %v", dir, err)
	}
	var name string
	switch uint64(st.Type) {
	case tmpfsMagic:
		name = "tmpfs"
	case ramfsMagic:
		name = "ramfs"
	default:
		fs := names[uint64(st.Type)]
		if fs == "" {
			fs = fmt.Sprintf("type %#x", uint64(st.Type))
		}
		tb.Logf("data dir %s on %s", dir, fs)
		return
	}
	if os.Getenv("RUNNEL_BENCH_ALLOW_TMPFS") == "1" {
		tb.Logf("WARNING: data dir %s is on %s, where fsync is free: durable-ack figures of this run are not real", dir, name)
		return
	}
	tb.Fatalf("data dir %s is on %s, where fsync is free: point TMPDIR at a real disk (or set RUNNEL_BENCH_ALLOW_TMPFS=1 to run anyway, marked)", dir, name)
}
