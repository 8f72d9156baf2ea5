package main

// What the idle-link probe costs: runnel serve without routes, and with
// one idle route to an MQTT upstream (Mosquitto) and to a Kafka upstream
// (kfake, in this process), each with the default probe-interval (5s) and
// with probes an hour apart, sampled over the same window (60 s by
// default, RUNNEL_BENCH_IDLE_SECONDS): wakeups/s and CPU as in
// TestBenchIdle.
//
//	RUNNEL_BENCH_PROBE_IDLE=1 go test -count=1 -timeout 0 -run TestBenchProbeIdle -v ./cmd/runnel/

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func TestBenchProbeIdle(t *testing.T) {
	if os.Getenv("RUNNEL_BENCH_PROBE_IDLE") != "1" {
		t.Skip("benchmark: run with RUNNEL_BENCH_PROBE_IDLE=1")
	}
	window := time.Duration(envInt("RUNNEL_BENCH_IDLE_SECONDS", 60)) * time.Second
	settle := time.Duration(envInt("RUNNEL_BENCH_IDLE_SETTLE_SECONDS", 10)) * time.Second
	dir := t.TempDir()
	maddr := startMosquitto(t) // the MQTT route's upstream
	kf, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()

	config := func(kind, probe string) string {
		up := `kind: mqtt, url: "mqtt://` + maddr + `"`
		if kind == "kafka" {
			up = `kind: kafka, brokers: ["` + kf.ListenAddrs()[0] + `"]`
		}
		p := filepath.Join(dir, kind+"-"+probe+".yaml")
		y := fmt.Sprintf("upstreams:\n  central: {%s, probe-interval: %s}\nroutes:\n  - {name: idle, upstream: central, topics: [idle]}\n", up, probe)
		if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	type proc struct {
		name string
		s    *runnelServer
	}
	procs := []proc{{"no route", startRunnel(t, 0)}}
	for _, c := range []struct{ kind, probe string }{{"mqtt", "5s"}, {"mqtt", "1h"}, {"kafka", "5s"}, {"kafka", "1h"}} {
		procs = append(procs, proc{"idle " + c.kind + " route, probe-interval " + c.probe, startRunnel(t, 0, "--config", config(c.kind, c.probe))})
	}
	t.Logf("settling %v, then sampling %v", settle, window)
	time.Sleep(settle)
	type sample struct{ switches, ticks int64 }
	take := func(pid int) sample {
		sw, err := procSwitches(pid)
		if err != nil {
			t.Fatal(err)
		}
		tk, err := procCPUTicks(pid)
		if err != nil {
			t.Fatal(err)
		}
		return sample{sw, tk}
	}
	first := make([]sample, len(procs))
	start := time.Now()
	for i, p := range procs {
		first[i] = take(p.s.PID())
	}
	time.Sleep(window)
	secs := time.Since(start).Seconds()
	var b strings.Builder
	fmt.Fprintf(&b, "\n| idle, %v | wakeups/s | vs no route | CPU, %% of one core |\n|---|---|---|---|\n", window)
	var base float64
	for i, p := range procs {
		last := take(p.s.PID())
		w := float64(last.switches-first[i].switches) / secs
		if i == 0 {
			base = w
		}
		fmt.Fprintf(&b, "| %s | %.2f | %.2fx | %.3f |\n", p.name, w, w/base, float64(last.ticks-first[i].ticks)/clockTicks/secs*100)
	}
	t.Log(b.String())
}
