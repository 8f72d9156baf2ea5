package main

// A power cut under the real binary. SIGKILL (the other crash tests) kills
// the process but not the kernel: the page cache survives, so a missing
// fsync goes unseen. Here `runnel serve` keeps its data dir on an ext4 file
// system of its own, on a loop device whose backing file lives on an XFS
// file system (itself on a loop device over a sparse file in the test's
// temp dir). While producers write, the test clones the backing file with
// a reflink (cp --reflink=always, the FICLONE ioctl): XFS takes the
// file's locks, writes back its page cache and shares its extents, so the
// clone is the device as it was at one instant, holding every write the
// loop device had completed by then and nothing that was still in the
// inner file system's page cache. Mounting the clone (ext4 replays its
// journal) and opening it with runnel is a restart after a power cut at
// that instant.
//
// What the model leaves out: a disk's volatile write cache (a write the
// device completed but not yet flushed survives the clone, while a real
// cut may lose it) and torn sectors. It catches what matters most here:
// an acknowledgement given before the data left the page cache.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestIntegrationPowerCut: every record acknowledged (acks=all) before the
// power cut began is there, at its offset, after the restart. Under
// --fsync never the same run must lose acknowledged records (the acks come
// from the page cache): that shows the cut is one a missing fsync cannot
// survive.
func TestIntegrationPowerCut(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	if os.Getenv("RUNNEL_IT_TARGET") == "kafka" {
		t.Skip("needs runnel itself (its data dir on a file system the test cuts): runs against runnel only")
	}
	needPowerCutTools(t)
	for _, tc := range []struct {
		fsync    string
		wantLoss bool
	}{
		{"always", false},
		{"never", true},
	} {
		t.Run("fsync-"+tc.fsync, func(t *testing.T) {
			acked, stored, snapAt := powerCutRun(t, tc.fsync)
			lost, firstLost := 0, ""
			for _, a := range acked[:snapAt] {
				if s, ok := stored[a.partition][a.offset]; !ok || s != a.seq {
					if lost == 0 {
						firstLost = fmt.Sprintf("seq %d at %d/%d (stored %d, present %v)", a.seq, a.partition, a.offset, s, ok)
					}
					lost++
				}
			}
			// The clone is of one instant: records acknowledged well after
			// it (the producers went on for 500 more) are not in it.
			later := 0
			for _, a := range acked[snapAt:] {
				if s, ok := stored[a.partition][a.offset]; ok && s == a.seq {
					later++
				}
			}
			t.Logf("fsync %s: %d records acknowledged before the cut, %d after it began (%d of those in the clone); %d of the former lost (first: %s)",
				tc.fsync, snapAt, len(acked)-snapAt, later, lost, firstLost)
			if len(acked)-snapAt < 100 || later == len(acked)-snapAt {
				t.Fatalf("the cut did not happen with writes in flight: %d records acknowledged after it, %d of them in the clone", len(acked)-snapAt, later)
			}
			switch {
			case !tc.wantLoss && lost > 0:
				t.Fatalf("%d of %d records acknowledged before the power cut are lost or changed; first: %s", lost, snapAt, firstLost)
			case tc.wantLoss && lost == 0:
				t.Fatalf("--fsync never lost none of %d acknowledged records: the power cut kept the page cache, so it cannot catch a missing fsync", snapAt)
			}
		})
	}
}

// needPowerCutTools skips (or, with CI=true, fails) unless loop devices,
// ext4 and XFS with reflinks can be made here.
func needPowerCutTools(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (losetup, mount)")
	}
	for _, tool := range []string{"losetup", "mkfs.ext4", "mkfs.xfs", "mount", "umount", "cp"} {
		needTool(t, tool)
	}
	fsys, _ := os.ReadFile("/proc/filesystems")
	if _, err := os.Stat("/dev/loop-control"); err != nil || !strings.Contains(string(fsys), "\txfs\n") || !strings.Contains(string(fsys), "\text4\n") {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no loop devices or no xfs/ext4 in this kernel (CI=true makes this a failure)")
		}
		t.Skip("no loop devices or no xfs/ext4 in this kernel")
	}
}

// loopFS is a file system made on a loop device over a sparse file and
// mounted; t's cleanup unmounts it and detaches the device.
func loopFS(t *testing.T, image string, size int64, mkfs []string, mnt string) {
	t.Helper()
	f, err := os.Create(image)
	if err == nil {
		err = f.Truncate(size)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if mkfs != nil {
		runTool(t, time.Minute, "", mkfs[0], append(mkfs[1:], image)...)
	}
	mountLoop(t, image, mnt)
}

// mountLoop attaches image to a free loop device and mounts it at mnt.
func mountLoop(t *testing.T, image, mnt string) {
	t.Helper()
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	dev := strings.TrimSpace(runTool(t, 30*time.Second, "", "losetup", "--find", "--show", image))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	runTool(t, time.Minute, "", "mount", dev, mnt)
	t.Cleanup(func() {
		// A process that held files may still be exiting, and a loop
		// device detached from a file here lets go of it a little later.
		for i := 0; i < 50; i++ {
			if exec.Command("umount", mnt).Run() == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		if out, err := exec.Command("umount", "--lazy", mnt).CombinedOutput(); err != nil {
			t.Errorf("cannot unmount %s: %v %s", mnt, err, out)
		}
	})
}

// powerCutRun starts runnel (--fsync mode) on a fresh ext4, produces for a
// while, cuts the power (clones the device) with writes in flight, and
// restarts runnel on the clone. It returns every acknowledged record in
// the order of their acks, how many of them were acknowledged before the
// cut began, and what the restarted runnel serves (partition → offset →
// seq).
func powerCutRun(t *testing.T, fsync string) (acked []ackedRecord, stored map[int32]map[int64]int64, snapAt int) {
	tmp := t.TempDir()
	outer, inner, after := filepath.Join(tmp, "outer"), filepath.Join(tmp, "inner"), filepath.Join(tmp, "after")
	loopFS(t, filepath.Join(tmp, "outer.img"), 2<<30, []string{"mkfs.xfs", "-q", "-m", "reflink=1"}, outer)
	device := filepath.Join(outer, "device.img")
	loopFS(t, device, 1<<30, []string{"mkfs.ext4", "-q", "-F"}, inner)

	const parts = 3
	s := &runnelServer{
		bin: serverBinary(t), dir: inner,
		kafka: freeAddr(t), http: freeAddr(t), mqtt: freeAddr(t),
		extra:        []string{"--default-partitions", strconv.Itoa(parts), "--fsync", fsync},
		logPath:      filepath.Join(tmp, "server.log"),
		startTimeout: 20 * time.Second, stopTimeout: 10 * time.Second,
	}
	t.Cleanup(s.kill)
	if err := s.start(); err != nil {
		t.Fatalf("start runnel: %v\n%s", err, s.LogTail())
	}
	const topic = "power"
	mustCLI(t, "", "topic", "create", topic, "--partitions", strconv.Itoa(parts), "--brokers", s.Addr())

	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr()), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.MaxBufferedRecords(1000),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var (
		mu      sync.Mutex // guards acked, failed
		failed  int
		stopped = make(chan struct{})
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	go func() {
		// About 5,000 records/s of 100 bytes, as long as the test runs
		// (bounded by ctx and the 60 s below).
		defer close(stopped)
		end := time.Now().Add(60 * time.Second)
		for seq := int64(0); ctx.Err() == nil && time.Now().Before(end); seq++ {
			wg.Add(1)
			v := fmt.Sprintf("%-100d", seq)
			cl.Produce(ctx, &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed++
					return
				}
				acked = append(acked, ackedRecord{r.Partition, r.Offset, seq})
			})
			if seq%5 == 4 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	ackedNow := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	for deadline := time.Now().Add(20 * time.Second); ackedNow() < 5000; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no progress: %d acks (failed %d)\n%s", ackedNow(), failed, s.LogTail())
		}
	}
	// The cut: everything acknowledged so far must survive it. The
	// producers keep writing while the device is cloned.
	snapAt = ackedNow()
	runTool(t, time.Minute, "", "cp", "--reflink=always", device, filepath.Join(outer, "cut.img"))
	// Writes go on after the cut: 500 more acknowledgements (or 10 s),
	// which the clone must not hold.
	for deadline := time.Now().Add(10 * time.Second); ackedNow() < snapAt+500 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-stopped
	wg.Wait()
	s.kill()
	mu.Lock()
	acked = append([]ackedRecord(nil), acked...)
	mu.Unlock()

	// The restart: the clone mounted (its journal replayed) and opened.
	mountLoop(t, filepath.Join(outer, "cut.img"), after)
	r := &runnelServer{
		bin: s.bin, dir: after,
		kafka: freeAddr(t), http: freeAddr(t), mqtt: freeAddr(t),
		extra:        s.extra,
		logPath:      filepath.Join(tmp, "after.log"),
		startTimeout: 60 * time.Second, stopTimeout: 10 * time.Second,
	}
	t.Cleanup(r.kill)
	if err := r.start(); err != nil {
		t.Fatalf("runnel does not start after the power cut: %v\n%s", err, r.LogTail())
	}
	stored = map[int32]map[int64]int64{}
	out := mustCLI(t, "", "consume", topic, "--from-beginning", "--exit", "--format", `%p %o %v\n`, "--brokers", r.Addr())
	for _, l := range lines(out) {
		var p int32
		var off, seq int64
		if _, err := fmt.Sscanf(l, "%d %d %d", &p, &off, &seq); err != nil {
			t.Fatalf("bad line %q", l)
		}
		if stored[p] == nil {
			stored[p] = map[int64]int64{}
		}
		stored[p][off] = seq
	}
	r.kill()
	return acked, stored, snapAt
}
