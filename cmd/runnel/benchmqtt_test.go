package main

// make bench-vs-mosquitto: the same load tool (pipelined `mosquitto_pub -l -M 1000`,
// of 60,000 lines of 100-byte payloads) against Debian's Mosquitto (which
// does not write messages to disk) and against runnel (every QoS 1 message
// fsynced before its PUBACK), one after the other in one run; then the RSS
// cost of 10,000 idle MQTT connections to runnel.

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestBenchVsMosquitto(t *testing.T) {
	if os.Getenv("RUNNEL_BENCH_VS_MOSQUITTO") != "1" {
		t.Skip("benchmark: run with RUNNEL_BENCH_VS_MOSQUITTO=1 (make bench-vs-mosquitto)")
	}
	needTool(t, "mosquitto_pub")
	mosqBin := "/usr/sbin/mosquitto"
	if _, err := os.Stat(mosqBin); err != nil {
		t.Fatalf("mosquitto broker not installed (%s): apt-get install mosquitto", mosqBin)
	}
	lines := int(envInt("RUNNEL_BENCH_MQTT_LINES", 60000))
	payload := strings.Repeat("x", 100)
	input := strings.Repeat(payload+"\n", lines)

	// Mosquitto on a free loopback port.
	dir := t.TempDir()
	maddr := freeAddr(t)
	_, mport, _ := net.SplitHostPort(maddr)
	conf := filepath.Join(dir, "mosquitto.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n", mport)), 0o644)
	mq := exec.Command(mosqBin, "-c", conf)
	mq.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := mq.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mq.Process.Kill(); mq.Wait() })
	waitTCP(t, maddr)

	// All idle connections come from 127.0.0.1: lift the per-IP cap (this
	// also exercises the config file's mqtt section).
	rcfg := filepath.Join(dir, "runnel.yaml")
	os.WriteFile(rcfg, []byte("mqtt:\n  max-conns-per-ip: -1\n"), 0o644)
	s := startRunnel(t, 1, "--config", rcfg)
	type row struct {
		name         string
		mosq, runnel float64
		target       float64
	}
	var rows []row
	for _, qos := range []string{"1", "0"} {
		m := pubRate(t, maddr, qos, input, lines)
		r := pubRate(t, s.mqtt, qos, input, lines)
		target := 1.0
		if qos == "0" {
			target = 0.8
		}
		rows = append(rows, row{"QoS " + qos + " msg/s", m, r, target})
	}
	rssBefore, _ := procStatusBytes(s.PID(), "VmRSS")
	conns := idleConns(t, s.mqtt, int(envInt("RUNNEL_BENCH_IDLE_CONNS", 10000)))
	time.Sleep(time.Second)
	rssAfter, _ := procStatusBytes(s.PID(), "VmRSS")
	for _, c := range conns {
		c.Close()
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\n| %d × 100-byte payloads, mosquitto_pub -l | Mosquitto 2.0 (no disk) | runnel (fsync before PUBACK) | ratio | target |\n|---|---|---|---|---|\n", lines)
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.2fx | ≥ %.1fx |\n", r.name, r.mosq, r.runnel, r.runnel/r.mosq, r.target)
	}
	fmt.Fprintf(&b, "| RSS added by %d idle MQTT connections | | %.1f MiB | | ≤ 150 MiB |\n", len(conns), float64(rssAfter-rssBefore)/(1<<20))
	t.Log(b.String())
}

func waitTCP(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("%s not listening", addr)
}

// pubRate runs one pipelined mosquitto_pub -l and returns messages/s over
// its whole run (connect to disconnect, so every QoS 1 PUBACK is in).
func pubRate(t *testing.T, addr, qos, input string, n int) float64 {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	start := time.Now()
	runTool(t, 5*time.Minute, input, "mosquitto_pub", "-h", host, "-p", port, "-q", qos, "-t", "bench/q"+qos, "-l", "-M", "1000")
	return float64(n) / time.Since(start).Seconds()
}

// idleConns opens n MQTT 3.1.1 connections (CONNECT, wait for CONNACK) and
// leaves them idle.
func idleConns(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if lim.Cur < uint64(n)+1000 && lim.Max >= uint64(n)+1000 {
		lim.Cur = uint64(n) + 1000
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	var out []net.Conn
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Logf("idle connection %d: %v", i, err)
			break
		}
		id := fmt.Sprintf("idle-%06d", i)
		// CONNECT: protocol MQTT v4, clean session, keepalive 600 s.
		body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0x02, 0x58, 0, byte(len(id))}
		body = append(body, id...)
		pkt := append([]byte{0x10, byte(len(body))}, body...)
		c.Write(pkt)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		ack := make([]byte, 4)
		if _, err := bufio.NewReader(c).Read(ack); err != nil || ack[0] != 0x20 {
			t.Logf("idle connection %d: no CONNACK: %v", i, err)
			c.Close()
			break
		}
		out = append(out, c)
	}
	return out
}
