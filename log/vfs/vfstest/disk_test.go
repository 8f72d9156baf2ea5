package vfstest

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// recordingTB is a testing.TB whose Fatalf and Logf are recorded, not
// acted on, so a test can see what RequireRealDisk does to its caller.
type recordingTB struct {
	testing.TB
	fatal, logs []string
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.fatal = append(r.fatal, fmt.Sprintf(format, args...))
}
func (r *recordingTB) Logf(format string, args ...any) {
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

// tmpfsDir returns a directory on tmpfs (/dev/shm), skipping when there is
// none.
func tmpfsDir(t *testing.T) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || uint64(st.Type) != tmpfsMagic {
		t.Skip("no tmpfs at /dev/shm")
	}
	return "/dev/shm"
}

// TestRequireRealDiskRefusesTmpfs: a data dir on tmpfs, where fsync is
// free, fails the benchmark or test that asks, naming the file system;
// RUNNEL_BENCH_ALLOW_TMPFS=1 lets it run with a loud warning instead.
func TestRequireRealDiskRefusesTmpfs(t *testing.T) {
	dir := tmpfsDir(t)
	t.Setenv("RUNNEL_BENCH_ALLOW_TMPFS", "")
	r := &recordingTB{TB: t}
	RequireRealDisk(r, dir)
	if len(r.fatal) != 1 || !strings.Contains(r.fatal[0], "tmpfs") || !strings.Contains(r.fatal[0], "fsync is free") {
		t.Fatalf("data dir on tmpfs: Fatalf calls %q, want one naming tmpfs", r.fatal)
	}

	t.Setenv("RUNNEL_BENCH_ALLOW_TMPFS", "1")
	r = &recordingTB{TB: t}
	RequireRealDisk(r, dir)
	if len(r.fatal) != 0 || len(r.logs) != 1 || !strings.HasPrefix(r.logs[0], "WARNING:") {
		t.Fatalf("tmpfs allowed: Fatalf %q, Logf %q; want no failure and one WARNING line", r.fatal, r.logs)
	}
}

// TestRequireRealDiskAcceptsDisk: a data dir on a disk file system passes
// and its file system is logged.
func TestRequireRealDiskAcceptsDisk(t *testing.T) {
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if uint64(st.Type) == tmpfsMagic || uint64(st.Type) == ramfsMagic {
		t.Skipf("the temp dir %s is on tmpfs here", dir)
	}
	r := &recordingTB{TB: t}
	RequireRealDisk(r, dir)
	if len(r.fatal) != 0 || len(r.logs) != 1 || !strings.Contains(r.logs[0], dir) {
		t.Fatalf("data dir on a disk: Fatalf %q, Logf %q; want no failure and one line naming the dir", r.fatal, r.logs)
	}
}
