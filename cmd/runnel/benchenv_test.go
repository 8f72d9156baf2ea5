package main

// What the comparison harnesses (make bench-vs-mosquitto, make
// bench-vs-kafka) print beside their figures: the binary under test
// (RUNNEL_BIN), the file system of the data directory (a tmpfs makes
// fsync free and the figures fiction, so it is refused), the disk's
// fdatasync latency measured in the same run (one writer that waits for
// each sync can do no better than 1/latency), the machine and its load.

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// serverUnderTest describes the runnel binary the harness starts.
func serverUnderTest(t *testing.T) string {
	t.Helper()
	bin := serverBinary(t)
	v, _, _ := strings.Cut(strings.TrimSpace(runTool(t, 30*time.Second, "", bin, "version")), "\n") // the build line, not the formats
	if os.Getenv("RUNNEL_BIN") != "" {
		return fmt.Sprintf("%s (RUNNEL_BIN=%s)", v, bin)
	}
	return v + " (built from this tree)"
}

// mountOf returns the file system type and source of the mount holding
// path (the longest mount point that is a prefix of it; of mounts stacked
// on one mount point, the last listed, the one on top).
func mountOf(path string) (fstype, source string) {
	path, _ = filepath.Abs(path)
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "?", "?"
	}
	defer f.Close()
	best := -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		fs := strings.Fields(sc.Text())
		sep := slices.Index(fs, "-")
		if len(fs) < 5 || sep < 0 || sep+2 >= len(fs) {
			continue
		}
		mp := fs[4]
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= best {
			best, fstype, source = len(mp), fs[sep+1], fs[sep+2]
		}
	}
	if best < 0 {
		return "?", "?"
	}
	return fstype, source
}

// checkDataFS fails the benchmark when dir is on a file system where
// fsync costs nothing (tmpfs, ramfs), unless RUNNEL_BENCH_ALLOW_TMPFS=1,
// and returns a description of it for the settings.
func checkDataFS(t *testing.T, dir string) string {
	t.Helper()
	fstype, source := mountOf(dir)
	desc := fmt.Sprintf("%s on %s (%s)", dir, source, fstype)
	if fstype == "tmpfs" || fstype == "ramfs" {
		if os.Getenv("RUNNEL_BENCH_ALLOW_TMPFS") != "1" {
			t.Fatalf("data directory %s is on %s, where fsync is free: the figures would not mean what they say. Point TMPDIR at a real disk (or set RUNNEL_BENCH_ALLOW_TMPFS=1 to measure anyway)", dir, fstype)
		}
		desc += " — WARNING: fsync is free on " + fstype + ", durable-ack figures are not real"
	}
	return desc
}

// syncLatency is one measurement of write+fdatasync on a disk.
type syncLatency struct {
	mode      string
	n         int
	mean, p50 time.Duration
	p99       time.Duration
}

// perSec is the most syncs per second one writer waiting for each can do.
func (s syncLatency) perSec() float64 {
	if s.mean <= 0 {
		return 0
	}
	return float64(time.Second) / float64(s.mean)
}

func (s syncLatency) String() string {
	return fmt.Sprintf("%s: mean %.3f ms, p50 %.3f ms, p99 %.3f ms over %d syncs → at most %.0f syncs/s for one waiting writer",
		s.mode, ms(s.mean), ms(s.p50), ms(s.p99), s.n, s.perSec())
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// measureFdatasync times a loop of 100-byte writes each followed by
// fdatasync in a new file in dir (at most 2,000 syncs or 3 s per mode):
// "append" grows the file (each sync also commits its new size, as a log
// appending to a file does), "overwrite" rewrites the first 100 bytes of
// a file already allocated and synced (the cheapest sync the disk can do).
func measureFdatasync(t *testing.T, dir string) []syncLatency {
	t.Helper()
	var out []syncLatency
	for _, mode := range []string{"append", "overwrite"} {
		name := filepath.Join(dir, "fdatasync-probe-"+mode)
		f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		if mode == "overwrite" {
			if _, err := f.Write(make([]byte, 4096)); err != nil {
				t.Fatal(err)
			}
			if err := unix.Fsync(int(f.Fd())); err != nil {
				t.Fatal(err)
			}
		}
		var lats []time.Duration
		for deadline := time.Now().Add(3 * time.Second); len(lats) < 2000 && time.Now().Before(deadline); {
			buf[0]++
			t0 := time.Now()
			if mode == "overwrite" {
				_, err = f.WriteAt(buf, 0)
			} else {
				_, err = f.Write(buf)
			}
			if err == nil {
				err = unix.Fdatasync(int(f.Fd()))
			}
			if err != nil {
				t.Fatalf("fdatasync probe: %v", err)
			}
			lats = append(lats, time.Since(t0))
		}
		f.Close()
		os.Remove(name)
		var sum time.Duration
		for _, d := range lats {
			sum += d
		}
		slices.Sort(lats)
		out = append(out, syncLatency{mode: mode, n: len(lats), mean: sum / time.Duration(len(lats)),
			p50: lats[len(lats)/2], p99: lats[len(lats)*99/100]})
	}
	return out
}

// machine describes the host for the settings.
func machine() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s, %d CPUs, %s/%s", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
}
