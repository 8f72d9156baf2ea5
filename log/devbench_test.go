package log_test

// BenchmarkTrickleDevice: the trickle workload of BenchmarkTrickle on a
// file system of its own, so that what the storage device is asked to
// write can be read from the block device's counters. /proc/self/io
// write_bytes counts the pages the process dirties; it misses the file
// system's own journal (jbd2 commits the kernel's journal thread writes
// when an fdatasync must also make a file's new size or extent state
// durable), and it counts a page each time it is dirtied even when the
// device gets it once.
//
// Each sub-benchmark gets a fresh ext4 (default features, data=ordered)
// on a loop device over a sparse 1 GiB image in b.TempDir(), so the loop
// device's flushes reach the real disk. It is made with
// lazy_itable_init=0 and lazy_journal_init=0 (the layout is the default
// one; only the zeroing is done at mkfs time, so the kernel's background
// init thread does not write during the run). After the run a syncfs
// writes back what the file system still holds dirty (segment pages the
// journal format leaves to writeback, metadata checkpoints), and that
// is counted too (dev-bytes/byte); dev-run-bytes/byte is the part
// written during the run.
//
// Needs root, losetup, mkfs.ext4 and mount; skipped otherwise.
//
// Run: go test -run XXX -bench TrickleDevice -benchtime 3x ./log/

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runnel/runnel/log"
)

// ext4Variant is how a sub-benchmark's file system is made and mounted.
type ext4Variant struct {
	name  string
	mkfs  []string // extra mkfs.ext4 arguments
	mount string   // mount -o options ("" for the defaults)
}

var ext4Default = ext4Variant{name: "ext4"}

// devFS is a mounted ext4 on a loop device.
type devFS struct {
	dir  string // mount point
	loop string // e.g. loop3
}

// sectorsWritten reads field 7 of /sys/block/<loop>/stat (512-byte
// sectors written).
func (d *devFS) sectorsWritten(b *testing.B) int64 {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join("/sys/block", d.loop, "stat"))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw))
	if len(f) < 7 {
		b.Fatalf("/sys/block/%s/stat: %q", d.loop, raw)
	}
	n, err := strconv.ParseInt(f[6], 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// syncFS makes the kernel write back everything dirty on the file system
// (data pages, its journal, metadata).
func (d *devFS) syncFS(b *testing.B) {
	b.Helper()
	fd, err := unix.Open(d.dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		b.Fatal(err)
	}
}

// run runs a command, returning its trimmed stdout or an error that
// includes its stderr.
func run(name string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// needDevTools skips b unless a loop device file system can be made.
func needDevTools(b *testing.B) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root (losetup, mount)")
	}
	for _, tool := range []string{"losetup", "mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("needs %s: %v", tool, err)
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		b.Skipf("no loop devices: %v", err)
	}
}

// mountExt4 makes a 1 GiB ext4 image in b.TempDir(), attaches it to a
// free loop device, and mounts it; b.Cleanup unmounts and detaches it (the
// image goes with the temp dir). Only what it made is undone.
func mountExt4(b *testing.B, v ext4Variant) *devFS {
	b.Helper()
	needDevTools(b)
	tmp := b.TempDir()
	img := filepath.Join(tmp, "ext4.img")
	f, err := os.Create(img)
	if err != nil {
		b.Fatal(err)
	}
	err = errors.Join(f.Truncate(1<<30), f.Close())
	if err != nil {
		b.Fatal(err)
	}
	dev, err := run("losetup", "--find", "--show", img)
	if err != nil {
		b.Skipf("cannot attach a loop device: %v", err)
	}
	b.Cleanup(func() {
		if _, err := run("losetup", "--detach", dev); err != nil {
			b.Errorf("detach: %v", err)
		}
	})
	args := append([]string{"-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"}, v.mkfs...)
	if _, err := run("mkfs.ext4", append(args, dev)...); err != nil {
		b.Fatal(err)
	}
	mnt := filepath.Join(tmp, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		b.Fatal(err)
	}
	margs := []string{"-t", "ext4"}
	if v.mount != "" {
		margs = append(margs, "-o", v.mount)
	}
	if _, err := run("mount", append(margs, dev, mnt)...); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if _, err := run("umount", mnt); err != nil {
			b.Errorf("unmount: %v", err)
			// detach cannot free a mounted device: lazy unmount so the
			// loop device is released once nothing uses it.
			run("umount", "--lazy", mnt)
		}
	})
	d := &devFS{dir: filepath.Join(mnt, "data"), loop: filepath.Base(dev)}
	if err := os.Mkdir(d.dir, 0o755); err != nil {
		b.Fatal(err)
	}
	return d
}

// firstInt reads the integer before word in the first line of file that
// has it (-1 if the file or the line is missing): the counters of
// /proc/fs/jbd2/<dev>-8/info ("N transactions (M requested), ...") and
// /proc/fs/ext4/<dev>/fc_info ("N commits").
func firstInt(file, word string) int64 {
	raw, err := os.ReadFile(file)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[1] == word {
			if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				return n
			}
		}
	}
	return -1
}

// devCounters is a snapshot of what the run has written so far.
type devCounters struct {
	wb      int64 // /proc/self/io write_bytes
	sectors int64 // device sectors written
	jbd2    int64 // jbd2 transactions committed (-1: unknown)
	fc      int64 // ext4 fast commits (-1: unknown)
}

func (d *devFS) counters(b *testing.B) devCounters {
	return devCounters{
		wb:      writeBytes(b),
		sectors: d.sectorsWritten(b),
		jbd2:    firstInt(filepath.Join("/proc/fs/jbd2", d.loop+"-8", "info"), "transactions"),
		fc:      firstInt(filepath.Join("/proc/fs/ext4", d.loop, "fc_info"), "commits"),
	}
}

// reportDevice syncs the file system and reports, per byte appended:
// write_bytes, device bytes during the run (at c1) and device bytes
// including the final syncfs.
func (d *devFS) reportDevice(b *testing.B, c0, c1 devCounters, appended int64) {
	d.syncFS(b)
	c2 := d.counters(b)
	if c1.sectors <= c0.sectors {
		b.Fatalf("device %s: no sectors written during the run (%d → %d): wrong counter?", d.loop, c0.sectors, c1.sectors)
	}
	per := func(n int64) float64 { return float64(n) / float64(appended) }
	b.ReportMetric(per(c1.wb-c0.wb), "write_bytes/byte")
	b.ReportMetric(per(512*(c1.sectors-c0.sectors)), "dev-run-bytes/byte")
	b.ReportMetric(per(512*(c2.sectors-c0.sectors)), "dev-bytes/byte")
	secs := b.Elapsed().Seconds()
	if c0.jbd2 >= 0 && c1.jbd2 >= 0 {
		b.ReportMetric(float64(c1.jbd2-c0.jbd2)/secs, "jbd2-tx/s")
	}
	if c0.fc >= 0 && c1.fc > c0.fc {
		b.ReportMetric(float64(c1.fc-c0.fc)/secs, "fast-commits/s")
	}
}

// trickleDeviceLog runs BenchmarkTrickle's workload against a log on a
// fresh ext4 and reports its latency and write costs. steady first
// brings the log to a steady state where retention frees shared files
// (each partition keeps ~8 KiB, in 2 MiB shared files) and the log
// reuses them (Options: at most two spares), as a log that has run for
// longer than its retention does.
func trickleDeviceLog(b *testing.B, v ext4Variant, steady bool, mods ...func(*log.Options)) {
	const partitions, rate = 1000, 10000.0
	data := recordBatch(1, 100, 3)
	d := mountExt4(b, v)
	cfg := log.TopicConfig{Partitions: partitions, Fsync: log.FsyncAlways}
	if steady {
		cfg.SegmentBytes, cfg.RetentionBytes = 4<<10, 8<<10
		mods = append(mods, func(o *log.Options) {
			o.SharedSegmentBytes, o.RetentionCheckInterval = 2<<20, 50*time.Millisecond
		})
	}
	l := openBench(b, d.dir, "trickle", cfg, mods...)
	defer l.Close()
	if steady {
		var warm sync.WaitGroup
		warm.Add(60000)
		for i := range 60000 { // ~12 MiB: six shared files, most freed
			l.AppendAsync("trickle", int32(i%partitions), append([]byte(nil), data...), func(int64, error) { warm.Done() })
		}
		warm.Wait()
		time.Sleep(300 * time.Millisecond) // retention, then reuse
		if m, _ := filepath.Glob(filepath.Join(d.dir, "~shared", "*.free")); len(m) == 0 {
			b.Fatal("no freed shared file kept for reuse after the warm-up")
		}
	}
	total := b.N * recordsPerOp
	b.SetBytes(int64(len(data)) * recordsPerOp)
	b.ReportAllocs()
	d.syncFS(b) // creating 1,000 partitions is not part of the run
	c0 := d.counters(b)
	st0 := l.Stats()
	b.ResetTimer()
	lat := paceAppends(b, l, data, total, partitions, rate)
	c1 := d.counters(b)
	st := l.Stats()
	reportLatency(b, lat)
	d.reportDevice(b, c0, c1, int64(total*len(data)))
	b.ReportMetric(float64(st.Fsyncs-st0.Fsyncs)/b.Elapsed().Seconds(), "fdatasyncs/s")
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "acked-rec/s")
}

// trickleDeviceBaseline: 1,000 files, each record written and
// fdatasynced by the file's own goroutine.
func trickleDeviceBaseline(b *testing.B, v ext4Variant) {
	const partitions, rate = 1000, 10000.0
	data := recordBatch(1, 100, 3)
	d := mountExt4(b, v)
	type req struct {
		i         int
		scheduled time.Time
	}
	total := b.N * recordsPerOp
	lat := make([]time.Duration, total)
	chans := make([]chan req, partitions)
	var wg, workers sync.WaitGroup
	var failed atomic.Int64
	defer workers.Wait()
	for p := range chans {
		chans[p] = make(chan req, 64)
		defer close(chans[p])
		f, err := os.Create(filepath.Join(d.dir, fmt.Sprint(p)))
		if err != nil {
			b.Fatal(err)
		}
		workers.Add(1)
		go func() {
			defer workers.Done()
			defer f.Close()
			for r := range chans[p] {
				_, err := f.Write(data)
				if err == nil {
					err = unix.Fdatasync(int(f.Fd()))
				}
				if err != nil {
					failed.Add(1)
				}
				lat[r.i] = time.Since(r.scheduled)
				wg.Done()
			}
		}()
	}
	b.SetBytes(int64(len(data)) * recordsPerOp)
	b.ReportAllocs()
	d.syncFS(b)
	c0 := d.counters(b)
	b.ResetTimer()
	wg.Add(total)
	pace(total, rate, func(i int, scheduled time.Time) { chans[i%partitions] <- req{i, scheduled} })
	wg.Wait()
	b.StopTimer()
	c1 := d.counters(b)
	if failed.Load() > 0 {
		b.Fatalf("%d writes or fdatasyncs failed", failed.Load())
	}
	reportLatency(b, lat)
	d.reportDevice(b, c0, c1, int64(total*len(data)))
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "fdatasyncs/s")
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "acked-rec/s")
}

func BenchmarkTrickleDevice(b *testing.B) {
	journal := func(o *log.Options) { o.NoSharedSegments = true }
	variants := []ext4Variant{
		ext4Default,
		// What an SD card deployment might pick: no atime updates, and
		// fast commits (an fdatasync that only grew a file writes a
		// small fast-commit record instead of a full jbd2 transaction).
		{name: "ext4-noatime-fastcommit", mkfs: []string{"-O", "fast_commit"}, mount: "noatime"},
	}
	for _, v := range variants {
		// Shared segments (the default): new, growing shared files.
		b.Run(v.name+"/shared", func(b *testing.B) { trickleDeviceLog(b, v, false) })
		// Shared files freed by retention and reused in place.
		b.Run(v.name+"/shared-steady", func(b *testing.B) { trickleDeviceLog(b, v, true) })
		b.Run(v.name+"/journal", func(b *testing.B) { trickleDeviceLog(b, v, false, journal) })
		b.Run(v.name+"/baseline-file-per-partition-fdatasync", func(b *testing.B) { trickleDeviceBaseline(b, v) })
	}
}
