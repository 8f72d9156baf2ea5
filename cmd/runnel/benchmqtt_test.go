package main

// TestBenchVsMosquitto (make bench-vs-mosquitto, RUNNEL_BENCH_VS_MOSQUITTO=1)
// runs the same loads of mosquitto_pub clients against Debian's Mosquitto
// 2.0 and against runnel, cell by cell in one run, and prints the whole
// matrix side by side with the ratio: in-flight windows 1, 20 (`-M 20`),
// mosquitto_pub's default (no -M; 20), 100 and 1000; 1, 10 and 100
// clients; QoS 1 and QoS 0 (which has no window); 100-byte payloads; with
// each server's CPU time per message and runnel's fsyncs. Both
// servers run with their defaults: Mosquitto as its binary starts with a
// config holding only its listener (it never syncs: no persistence), runnel
// as `runnel serve` starts (fsync always: each PUBACK waits for an fsync
// that covers its message). The fdatasync latency of the data directory's
// disk is measured in the same run, before and after the matrix: one
// client with window 1 can get at most 1/latency PUBACKs per second from a
// server that syncs before each. Then the RSS cost of 10,000 idle MQTT
// connections to runnel.
//
// Each client is a `mosquitto_pub -l` process with its own topic. All of
// a cell's clients are started and connected first; the clock starts when
// their input is released (each gets its share of lines on stdin at once)
// and stops when the last one has exited (QoS 1: after its last PUBACK;
// QoS 0: after its last send). Cells alternate which server goes first.
//
// Knobs (environment): RUNNEL_BIN (a prebuilt runnel to measure instead of
// this tree's), RUNNEL_BENCH_MQTT_MSGS (messages per cell with window ≥ 20
// and QoS 0, default 60000; window 1 cells send a third of it, a sixth
// with one client),
// RUNNEL_BENCH_IDLE_CONNS (default 10000), RUNNEL_BENCH_OUT (also write
// the tables to this file), RUNNEL_BENCH_STRICT=1 (fail on a missed target).

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mqttCell is one load of the matrix.
type mqttCell struct {
	qos     int
	window  int // mosquitto_pub -M; 0: no -M (its default, 20)
	clients int
	msgs    int // in total at first; each client sends msgs/clients
}

func (c mqttCell) windowName() string {
	switch {
	case c.qos == 0:
		return "— (QoS 0)"
	case c.window == 0:
		return "default (no -M: 20)"
	default:
		return fmt.Sprintf("%d (-M %d)", c.window, c.window)
	}
}

// mqttRun is one cell's result on one server.
type mqttRun struct {
	msgs    int     // sent in the measured run
	rate    float64 // messages/s
	elapsed time.Duration
	err     error
	// cpu is the server's CPU time (utime + stime) from releasing the
	// clients' input until they ended and every message was in (runnel)
	// or read by (Mosquitto, QoS 0) the server; zero when unreadable.
	cpu time.Duration
	// runnel only: what its log did for the cell (from /metrics).
	fsyncs, fsyncSecs float64
	ingested          float64
}

func TestBenchVsMosquitto(t *testing.T) {
	if os.Getenv("RUNNEL_BENCH_VS_MOSQUITTO") != "1" {
		t.Skip("benchmark: run with RUNNEL_BENCH_VS_MOSQUITTO=1 (make bench-vs-mosquitto)")
	}
	needTool(t, "mosquitto_pub")
	mosqBin := "/usr/sbin/mosquitto"
	if _, err := os.Stat(mosqBin); err != nil {
		t.Fatalf("mosquitto broker not installed (%s): apt-get install mosquitto", mosqBin)
	}
	msgs := int(envInt("RUNNEL_BENCH_MQTT_MSGS", 60000))
	maxMsgs := int(envInt("RUNNEL_BENCH_MQTT_MAX_MSGS", 1_000_000))
	runnelDesc := serverUnderTest(t)
	dir := t.TempDir()
	fsDesc := checkDataFS(t, dir)
	loadBefore := loadAvg()
	syncBefore := measureFdatasync(t, dir)

	// Mosquitto with its defaults: the config names only its listener
	// (a config with a listener must also allow anonymous clients, which
	// the no-config default does on loopback).
	maddr := freeAddr(t)
	_, mport, _ := net.SplitHostPort(maddr)
	mconf := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\n", mport)
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(mconf), 0o644); err != nil {
		t.Fatal(err)
	}
	mq := exec.Command(mosqBin, "-c", confPath)
	mq.Dir = dir
	mq.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := mq.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mq.Process.Kill(); mq.Wait() })
	waitTCP(t, maddr)

	// runnel with its defaults.
	rs := startRunnel(t, 0)

	var cells []mqttCell
	for _, clients := range []int{1, 10, 100} {
		for _, w := range []int{1, 20, 0, 100, 1000} {
			n := msgs
			if w == 1 {
				n = msgs / 3
				if clients == 1 {
					n = msgs / 6
				}
			}
			cells = append(cells, mqttCell{qos: 1, window: w, clients: clients, msgs: n})
		}
	}
	for _, clients := range []int{1, 10, 100} {
		cells = append(cells, mqttCell{qos: 0, clients: clients, msgs: msgs})
	}
	type result struct {
		cell         mqttCell
		mosq, runnel mqttRun
	}
	var results []result
	for i, c := range cells {
		var r result
		r.cell = c
		topic := fmt.Sprintf("bench/q%d/w%d/c%d", c.qos, c.window, c.clients)
		runMosq := func() { r.mosq = pubCell(t, maddr, topic, c, maxMsgs, nil, mq.Process.Pid) }
		runRunnel := func() { r.runnel = pubCell(t, rs.mqtt, topic, c, maxMsgs, rs, rs.PID()) }
		if i%2 == 0 {
			runMosq()
			runRunnel()
		} else {
			runRunnel()
			runMosq()
		}
		t.Logf("load %s; QoS %d, window %s, %d clients: Mosquitto %d msgs %.0f msg/s (%v), runnel %d msgs %.0f msg/s (%v)",
			loadAvg(), c.qos, c.windowName(), c.clients, r.mosq.msgs, r.mosq.rate, r.mosq.err, r.runnel.msgs, r.runnel.rate, r.runnel.err)
		results = append(results, r)
	}
	syncAfter := measureFdatasync(t, dir)
	loadAfter := loadAvg()
	rs.Stop(t)

	// RSS of idle connections, on a runnel whose per-IP cap is lifted
	// (every idle connection comes from 127.0.0.1; this also exercises
	// the config file's mqtt section).
	rcfg := filepath.Join(dir, "runnel.yaml")
	os.WriteFile(rcfg, []byte("mqtt:\n  max-conns-per-ip: -1\n"), 0o644)
	idle := startRunnel(t, 1, "--config", rcfg)
	rssBefore, _ := procStatusBytes(idle.PID(), "VmRSS")
	conns := idleConns(t, idle.mqtt, int(envInt("RUNNEL_BENCH_IDLE_CONNS", 10000)))
	time.Sleep(time.Second)
	rssAfter, _ := procStatusBytes(idle.PID(), "VmRSS")
	for _, c := range conns {
		c.Close()
	}
	idle.Stop(t)

	// The limit for one client with window 1: one fsync per message, at
	// the mean latency of the append probes before and after the matrix.
	syncLimit := float64(time.Second) / float64((syncBefore[0].mean+syncAfter[0].mean)/2)
	var b strings.Builder
	fmt.Fprintf(&b, "\n## MQTT: runnel vs Mosquitto, one run (make bench-vs-mosquitto)\n\n")
	fmt.Fprintf(&b, "- machine: %s; 1-minute load average before/after: %s/%s\n", machine(), loadBefore, loadAfter)
	fmt.Fprintf(&b, "- data directories: %s\n", fsDesc)
	for i, s := range syncBefore {
		fmt.Fprintf(&b, "- fdatasync of 100 B on that disk, before the matrix, %s\n", s)
		fmt.Fprintf(&b, "- fdatasync of 100 B on that disk, after the matrix, %s\n", syncAfter[i])
	}
	fmt.Fprintf(&b, "- Mosquitto: %s, `mosquitto -c mosquitto.conf` with only `%s` (its defaults otherwise: no persistence; it never syncs before a PUBACK)\n",
		toolVersion(mosqBin, "-h"), strings.ReplaceAll(strings.TrimSpace(mconf), "\n", "`, `"))
	fmt.Fprintf(&b, "- runnel: %s, `runnel serve` with its defaults (fsync always: every PUBACK after an fsync covering its message); data dir, ports only\n", runnelDesc)
	fmt.Fprintf(&b, "- load: %s; `mosquitto_pub -q Q -t bench/... -l [-M window]` per client, MQTT 3.1.1, 100-byte payloads, one topic per client; window-1 cells send %d messages (%d with one client), the others %d, and a cell that took less than %v is run again with more messages (at most %d, and %d per client: mosquitto_pub's message ids wrap at 65,535, after which -l ends early) for about %v: mosquitto_pub 2.0 -l sleeps 100 ms after its input ends, a floor under every run; the clock runs from releasing every client's input to the last client's exit\n",
		toolVersion("mosquitto_pub", "--help"), msgs/3, msgs/6, msgs, minCell, maxMsgs, maxPerClient, targetCell)
	fmt.Fprintf(&b, "- runnel msg/fsync and ms/fsync: its log's fsyncs during the cell (from /metrics)\n")
	fmt.Fprintf(&b, "- CPU µs/msg: the server process's utime + stime (/proc/PID/stat, %d Hz ticks) from releasing the clients' input until they ended and the server took every message (runnel: all in its log; Mosquitto with QoS 0: its CPU time stopped growing), per message; steadier than the rates on a shared box, where the clients compete with the server for the same cores\n\n", int(clockTicks))
	fmt.Fprintln(&b, "| QoS | in-flight window | clients | messages (Mosquitto / runnel) | Mosquitto msg/s | runnel msg/s | runnel / Mosquitto | runnel msg/fsync | runnel ms/fsync | CPU µs/msg: Mosquitto / runnel | target |")
	fmt.Fprintln(&b, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	var missed []string
	for _, r := range results {
		c := r.cell
		rate := func(m mqttRun) string {
			if m.err != nil {
				return "error: " + m.err.Error()
			}
			if m.elapsed < minCell {
				return fmt.Sprintf("%.0f (in %.2f s)", m.rate, m.elapsed.Seconds())
			}
			return fmt.Sprintf("%.0f", m.rate)
		}
		ratio := "—"
		if r.mosq.err == nil && r.runnel.err == nil && r.mosq.rate > 0 {
			ratio = fmt.Sprintf("%.2fx", r.runnel.rate/r.mosq.rate)
		}
		perFsync, fsyncMs := "—", "—"
		if r.runnel.fsyncs > 0 {
			perFsync = fmt.Sprintf("%.1f", r.runnel.ingested/r.runnel.fsyncs)
			fsyncMs = fmt.Sprintf("%.2f", r.runnel.fsyncSecs*1000/r.runnel.fsyncs)
		}
		cpu := func(m mqttRun) string {
			if m.cpu <= 0 || m.msgs == 0 {
				return "—"
			}
			return fmt.Sprintf("%.1f", float64(m.cpu.Microseconds())/float64(m.msgs))
		}
		target := mqttTarget(c, r.mosq, r.runnel, syncLimit)
		if strings.Contains(target, "MISSED") {
			missed = append(missed, fmt.Sprintf("QoS %d, window %s, %d clients: %s", c.qos, c.windowName(), c.clients, target))
		}
		fmt.Fprintf(&b, "| %d | %s | %d | %d / %d | %s | %s | %s | %s | %s | %s / %s | %s |\n",
			c.qos, c.windowName(), c.clients, r.mosq.msgs, r.runnel.msgs, rate(r.mosq), rate(r.runnel), ratio, perFsync, fsyncMs, cpu(r.mosq), cpu(r.runnel), target)
	}
	fmt.Fprintf(&b, "\nRSS added to runnel by %d idle MQTT connections: %.1f MiB (target ≤ 150 MiB)\n", len(conns), float64(rssAfter-rssBefore)/(1<<20))
	fmt.Println(b.String())
	if out := os.Getenv("RUNNEL_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
			t.Errorf("write %s: %v", out, err)
		}
	}
	for _, r := range results {
		if r.mosq.err != nil || r.runnel.err != nil {
			t.Errorf("QoS %d, window %s, %d clients: Mosquitto: %v; runnel: %v", r.cell.qos, r.cell.windowName(), r.cell.clients, r.mosq.err, r.runnel.err)
		}
	}
	if os.Getenv("RUNNEL_BENCH_STRICT") == "1" {
		for _, m := range missed {
			t.Errorf("target missed: %s", m)
		}
	}
}

// mqttTarget is the target of "Acknowledge as soon as the disk allows" for
// a cell, with its verdict, or "—" where there is none.
func mqttTarget(c mqttCell, m, r mqttRun, syncLimit float64) string {
	if c.qos != 1 || m.err != nil || r.err != nil || m.rate == 0 {
		return "—"
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	ratio := r.rate / m.rate
	switch {
	case c.clients == 1 && c.window == 1:
		if syncLimit <= 0 {
			return "—"
		}
		return fmt.Sprintf("≥ 80%% of 1/fdatasync (append, mean of both probes: %.0f/s): %.0f%% %s", syncLimit, 100*r.rate/syncLimit, verdict(r.rate >= 0.8*syncLimit))
	case c.window == 1:
		return "≥ 0.7x " + verdict(ratio >= 0.7)
	case c.clients == 1 || c.window == 20 || c.window == 0:
		return "≥ 1.0x " + verdict(ratio >= 1.0)
	}
	return "—"
}

// A cell's run shorter than minCell is run again with more messages, for
// about targetCell.
const minCell, targetCell = time.Second, 2 * time.Second

// maxPerClient bounds what one mosquitto_pub -l sends: its message ids
// wrap after 65,535, and once its input has ended it disconnects at the
// first acknowledgement whose id equals its last message's, which an
// earlier message with the same id provides (200,000 QoS 1 lines stored
// 4,129 in runnel, and Mosquitto's rate looked like 900,000 msg/s).
const maxPerClient = 60_000

// pubCell runs cell c against the broker at addr with c.msgs messages,
// and again with more (at most maxMsgs) while a run takes less than
// minCell (and at most maxPerClient per client); it returns the last run.
// pid is the server's process.
func pubCell(t *testing.T, addr, topic string, c mqttCell, maxMsgs int, rs *runnelServer, pid int) mqttRun {
	t.Helper()
	maxMsgs = min(maxMsgs, maxPerClient*c.clients)
	n := min(c.msgs, maxMsgs)
	r := pubLoad(t, addr, topic, c, n, rs, pid)
	for r.err == nil && r.elapsed < minCell && n < maxMsgs {
		n = min(maxMsgs, int(float64(n)*targetCell.Seconds()/max(r.elapsed.Seconds(), 0.01)))
		r = pubLoad(t, addr, topic, c, n, rs, pid)
	}
	return r
}

// pubLoad runs cell c with n messages in total against the broker at addr
// and returns its rate and the CPU time of the server's process pid. rs,
// when not nil, is the runnel server, whose /metrics are read before and
// after.
func pubLoad(t *testing.T, addr, topic string, c mqttCell, n int, rs *runnelServer, pid int) mqttRun {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	per := max(n/c.clients, 1)
	input := []byte(strings.Repeat(strings.Repeat("x", 100)+"\n", per))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var m0 map[string]float64
	if rs != nil {
		m0 = scrapeMetrics(t, rs.http)
	}
	// The previous cell's connections first leave (a server still reading
	// a QoS 0 backlog keeps them open a while): counted in established0,
	// their closing would hide this cell's clients.
	for deadline := time.Now().Add(time.Minute); establishedTo(port) > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	established0 := establishedTo(port)
	type client struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		stderr bytes.Buffer
	}
	clients := make([]*client, c.clients)
	run := mqttRun{msgs: per * c.clients}
	for i := range clients {
		args := []string{"-h", host, "-p", port, "-q", strconv.Itoa(c.qos), "-t", fmt.Sprintf("%s/%d", topic, i), "-l"}
		if c.window > 0 {
			args = append(args, "-M", strconv.Itoa(c.window))
		}
		cl := &client{cmd: exec.CommandContext(ctx, "mosquitto_pub", args...)}
		cl.cmd.Stderr = &cl.stderr
		cl.cmd.WaitDelay = 2 * time.Second
		var err error
		if cl.stdin, err = cl.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := cl.cmd.Start(); err != nil {
			t.Fatalf("mosquitto_pub: %v", err)
		}
		clients[i] = cl
	}
	// Every client connected (its TCP connection established on the
	// server's side; mosquitto_pub reads its input after the CONNACK).
	for deadline := time.Now().Add(time.Minute); establishedTo(port)-established0 < c.clients; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			run.err = fmt.Errorf("%d of %d clients connected after a minute (%d connections established to the port, %d before the clients started)",
				establishedTo(port)-established0, c.clients, establishedTo(port), established0)
			break
		}
	}
	time.Sleep(200 * time.Millisecond)
	cpu0, cpuErr := procCPUTicks(pid)
	start := time.Now()
	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl.stdin.Write(input)
			cl.stdin.Close()
		}()
	}
	var errs []string
	for i, cl := range clients {
		if err := cl.cmd.Wait(); err != nil && len(errs) < 3 {
			errs = append(errs, fmt.Sprintf("client %d: %v: %s", i, err, strings.TrimSpace(cl.stderr.String())))
		}
	}
	run.elapsed = time.Since(start)
	wg.Wait()
	if len(errs) > 0 && run.err == nil {
		run.err = fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	run.rate = float64(per*c.clients) / run.elapsed.Seconds()
	if rs != nil {
		// QoS 0 messages may still be on their way into the log.
		want := float64(per * c.clients)
		var m1 map[string]float64
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
			m1 = scrapeMetrics(t, rs.http)
			if m1["runnel_mqtt_ingested_total"]-m0["runnel_mqtt_ingested_total"] >= want || time.Now().After(deadline) {
				break
			}
		}
		run.ingested = m1["runnel_mqtt_ingested_total"] - m0["runnel_mqtt_ingested_total"]
		run.fsyncs = m1["runnel_log_fsyncs_total"] - m0["runnel_log_fsyncs_total"]
		run.fsyncSecs = m1["runnel_log_fsync_seconds_total"] - m0["runnel_log_fsync_seconds_total"]
		if run.ingested != want && run.err == nil {
			run.err = fmt.Errorf("runnel stored %.0f of %.0f messages (a minute after the clients ended)", run.ingested, want)
		}
	}
	if rs == nil && c.qos == 0 {
		// Mosquitto may still be reading QoS 0 messages the clients
		// wrote before they exited: its CPU time is read once it
		// stopped growing (two readings 200 ms apart, at most 10 s).
		prev, _ := procCPUTicks(pid)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			time.Sleep(200 * time.Millisecond)
			cur, err := procCPUTicks(pid)
			if err != nil || cur == prev {
				break
			}
			prev = cur
		}
	}
	if cpu1, err := procCPUTicks(pid); err == nil && cpuErr == nil {
		run.cpu = time.Duration(cpu1-cpu0) * time.Second / clockTicks
	}
	return run
}

// establishedTo counts the established TCP connections whose local port
// is port (the server's side of each client's connection).
func establishedTo(port string) int {
	p, _ := strconv.Atoi(port)
	want := fmt.Sprintf(":%04X", p)
	n := 0
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 3 && strings.HasSuffix(f[1], want) && f[3] == "01" {
				n++
			}
		}
	}
	return n
}

// scrapeMetrics reads runnel's /metrics into name → value (series with
// labels are summed under their name).
func scrapeMetrics(t *testing.T, httpAddr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatalf("scrape /metrics: %v", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		name, val := line[:sp], line[sp+1:]
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] += v
		}
	}
	return out
}

// toolVersion returns the line of `bin arg` output that names its version.
func toolVersion(bin string, arg string) string {
	out, _ := exec.Command(bin, arg).CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if i := strings.Index(l, "version"); i >= 0 {
			return strings.TrimSuffix(strings.TrimSpace(l), ".")
		}
	}
	return bin + " (version unknown)"
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
