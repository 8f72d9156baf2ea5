package main

// make bench-idle: what an idle box costs. `runnel serve` with no client
// and Debian's Mosquitto 2.0 with no client run side by side in one run;
// after a settling time both are sampled over the same window (60 s by
// default, RUNNEL_BENCH_IDLE_SECONDS): voluntary context switches summed
// over every thread (/proc/PID/task/*/status: each is the process going
// to sleep, so each is a wakeup) and CPU time (/proc/PID/stat utime +
// stime). Printed per second and as a share of one core, runnel against
// Mosquitto.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestBenchIdle(t *testing.T) {
	if os.Getenv("RUNNEL_BENCH_IDLE") != "1" {
		t.Skip("benchmark: run with RUNNEL_BENCH_IDLE=1 (make bench-idle)")
	}
	window := time.Duration(envInt("RUNNEL_BENCH_IDLE_SECONDS", 60)) * time.Second
	settle := time.Duration(envInt("RUNNEL_BENCH_IDLE_SETTLE_SECONDS", 5)) * time.Second
	mosqBin := "/usr/sbin/mosquitto"
	if _, err := os.Stat(mosqBin); err != nil {
		t.Fatalf("mosquitto broker not installed (%s): apt-get update && apt-get install -y mosquitto", mosqBin)
	}

	// Mosquitto with its standard settings on a free loopback port.
	dir := t.TempDir()
	maddr := freeAddr(t)
	_, mport, _ := net.SplitHostPort(maddr)
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte("listener "+mport+" 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mq := exec.Command(mosqBin, "-c", conf)
	mq.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := mq.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mq.Process.Kill(); mq.Wait() })
	waitTCP(t, maddr)

	// runnel with its defaults (the readiness probe is its only client).
	s := startRunnel(t, 0)
	procs := []struct {
		name string
		pid  int
	}{{"runnel serve", s.PID()}, {"Mosquitto 2.0", mq.Process.Pid}}

	t.Logf("settling %v, then sampling %v", settle, window)
	time.Sleep(settle)
	type sample struct {
		at       time.Time
		switches int64
		ticks    int64
	}
	take := func(pid int) sample {
		sw, err := procSwitches(pid)
		if err != nil {
			t.Fatal(err)
		}
		tk, err := procCPUTicks(pid)
		if err != nil {
			t.Fatal(err)
		}
		return sample{time.Now(), sw, tk}
	}
	// Samples every tenth of the window show bursts (timers that fire
	// every 30 s, the runtime's forced GC every 2 min).
	const slices = 10
	samples := make([][]sample, len(procs))
	for i, p := range procs {
		samples[i] = append(samples[i], take(p.pid))
	}
	for range slices {
		time.Sleep(window / slices)
		for i, p := range procs {
			samples[i] = append(samples[i], take(p.pid))
		}
	}

	type figure struct{ wakeups, worst, core float64 }
	figs := make([]figure, len(procs))
	for i, p := range procs {
		ss := samples[i]
		first, last := ss[0], ss[len(ss)-1]
		secs := last.at.Sub(first.at).Seconds()
		figs[i].wakeups = float64(last.switches-first.switches) / secs
		figs[i].core = float64(last.ticks-first.ticks) / clockTicks / secs * 100
		var per []string
		for j := 1; j < len(ss); j++ {
			w := float64(ss[j].switches-ss[j-1].switches) / ss[j].at.Sub(ss[j-1].at).Seconds()
			figs[i].worst = max(figs[i].worst, w)
			per = append(per, fmt.Sprintf("%.1f/%d", w, ss[j].ticks-ss[j-1].ticks))
		}
		t.Logf("%s, each tenth (wakeups/s / CPU ticks): %s", p.name, strings.Join(per, " "))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| idle, no client, %v | %s | %s | ratio | target |\n|---|---|---|---|---|\n", window, procs[0].name, procs[1].name)
	ratio := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", a/b)
	}
	r, m := figs[0], figs[1]
	fmt.Fprintf(&b, "| wakeups/s (voluntary context switches, all threads) | %.2f | %.2f | %s | a few |\n", r.wakeups, m.wakeups, ratio(r.wakeups, m.wakeups))
	fmt.Fprintf(&b, "| wakeups/s, busiest tenth of the window | %.2f | %.2f | %s | |\n", r.worst, m.worst, ratio(r.worst, m.worst))
	fmt.Fprintf(&b, "| CPU, %% of one core (utime+stime, %d Hz ticks) | %.3f | %.3f | %s | < 0.1 |\n", int(clockTicks), r.core, m.core, ratio(r.core, m.core))
	t.Log(b.String())
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat (100
// on every Linux architecture runnel is built for).
const clockTicks = 100

// procSwitches sums voluntary_ctxt_switches over every thread of pid.
func procSwitches(pid int) (int64, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		n, err := procStatusField(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid), "voluntary_ctxt_switches")
		if err != nil {
			continue // the thread ended meanwhile
		}
		sum += n
	}
	return sum, nil
}

// procStatusField reads one numeric field of a /proc status file.
func procStatusField(path, field string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, field)
}

// procCPUTicks is utime + stime of pid (fields 14 and 15 of
// /proc/PID/stat), in clock ticks.
func procCPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count after its ')'.
	s := string(b)
	fs := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fs) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fs))
	}
	u, err1 := strconv.ParseInt(fs[11], 10, 64)
	st, err2 := strconv.ParseInt(fs[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, fs[11], fs[12])
	}
	return u + st, nil
}
