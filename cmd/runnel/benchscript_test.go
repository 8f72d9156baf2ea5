package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBenchScriptRefusesTmpfs: make bench (cmd/scripts/bench.sh) refuses
// temp dirs on tmpfs, where fsync is free, before it runs any benchmark:
// on a plain tmpfs mount and on one with a second tmpfs stacked on the
// same mount point (as /dev/shm is on some boxes: findmnt then lists two
// file systems). RUNNEL_BENCH_ALLOW_TMPFS=1 lets it run, marked. GO is a
// command that fails, so a script that does not refuse ends in seconds
// with its benchmarks listed as failed.
func TestBenchScriptRefusesTmpfs(t *testing.T) {
	needTool(t, "findmnt")
	run := func(tmp string, env ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "../scripts/bench.sh")
		cmd.Env = append(os.Environ(), append([]string{"TMPDIR=" + tmp, "GO=false", "RUNNEL_BENCH_ALLOW_TMPFS=", "RUNNEL_BENCH_WRITE_DOCS=", "RUNNEL_BENCH_DIR="}, env...)...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	single := mountTmpfs(t, "1m")
	stacked := mountTmpfs(t, "1m")
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", stacked).CombinedOutput(); err != nil {
		t.Fatalf("mount a second tmpfs on %s: %v %s", stacked, err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", stacked).Run() })
	for name, dir := range map[string]string{"tmpfs": single, "stacked tmpfs": stacked} {
		stdout, stderr, err := run(dir)
		if err == nil || !strings.Contains(stderr, "where fsync is free") || strings.Contains(stdout, "== go test") {
			t.Errorf("%s: bench.sh with TMPDIR=%s: %v, want a refusal before any benchmark\nstdout:\n%s\nstderr:\n%s", name, dir, err, tail(stdout, 1500), stderr)
		}
	}
	stdout, _, _ := run(stacked, "RUNNEL_BENCH_ALLOW_TMPFS=1")
	if !strings.Contains(stdout, "== go test") || !strings.Contains(stdout, "WARNING: fsync is free") {
		t.Errorf("RUNNEL_BENCH_ALLOW_TMPFS=1: bench.sh did not run marked:\n%s", tail(stdout, 1500))
	}
}

// TestMountOfStacked: the benchmark harnesses' mountOf names the file
// system on top when a tmpfs is mounted over a directory of a disk file
// system (the one a path is really on), so checkDataFS refuses it.
func TestMountOfStacked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "--bind", dir, dir).CombinedOutput(); err != nil {
		t.Skipf("cannot bind-mount (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	under, _ := mountOf(dir)
	if under == "tmpfs" {
		t.Skipf("the temp dir is on tmpfs here: nothing to stack over")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs over %s: %v %s", dir, err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	if fstype, source := mountOf(dir); fstype != "tmpfs" {
		t.Errorf("mountOf(%s) = %s on %s with a tmpfs mounted over %s: want tmpfs", dir, fstype, source, under)
	}
}
