package main

// Lifecycle tests of `runnel serve` as a real process: clean stop on
// SIGTERM, the data-dir lock, configuration errors, HTTP endpoints.

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServeStopsCleanlyOnSIGTERM(t *testing.T) {
	s := startRunnel(t, 2)
	runTool(t, 20*time.Second, "a\nb\nc\n", runnelBinary(t), "produce", "lifecycle", "--brokers", s.Addr(), "--acks", "-1")
	start := time.Now()
	s.Stop(t) // fails the test unless exit 0 within 10 s
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("stop took %v", d)
	}
	if !strings.Contains(s.LogTail(), "stopped cleanly") {
		t.Fatalf("no clean-stop log line:\n%s", s.LogTail())
	}
	s.Restart(t)
	out := runTool(t, 20*time.Second, "", runnelBinary(t), "consume", "lifecycle", "--brokers", s.Addr(), "--from-beginning", "-n", "3")
	if got := strings.Fields(out); len(got) != 3 {
		t.Fatalf("after restart consumed %q, want 3 records", out)
	}
}

func TestServeSecondInstanceRefused(t *testing.T) {
	s := startRunnel(t, 1)
	cmd := exec.Command(runnelBinary(t), "serve", "--data-dir", filepath.Join(s.dir, "data"),
		"--kafka-addr", freeAddr(t), "--http-addr", "", "--mqtt-addr", "")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("second runnel on the same data dir exited 0")
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("second runnel on the same data dir kept running")
	}
	if !strings.Contains(stderr.String(), "in use by another runnel") {
		t.Fatalf("stderr = %q, want a clear lock message", stderr.String())
	}
}

func TestServeBadConfigExitsWithOneLine(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bad.yaml")
	os.WriteFile(cfg, []byte("kafka-addr: 127.0.0.1:0\nfsink: always\n"), 0o644)
	ro := filepath.Join(dir, "ro")
	os.Mkdir(ro, 0o555)
	notDir := filepath.Join(dir, "file")
	os.WriteFile(notDir, nil, 0o644)
	tlsCfg := filepath.Join(dir, "tls.yaml")
	os.WriteFile(tlsCfg, []byte("upstreams:\n  central: {brokers: [\"127.0.0.1:1\"], tls: {ca-file: /nonexistent/ca.pem}}\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
		code int // the exit status, when it matters (0: any failure)
	}{
		{"unknown key", []string{"--config", cfg}, `unknown key "fsink"`, 0},
		{"bad address", []string{"--kafka-addr", "localhost:notaport"}, "--kafka-addr", 0},
		{"bad fsync", []string{"--fsync", "sometimes"}, "--fsync", 0},
		{"unknown flag", []string{"--fsink", "always"}, "unknown flag: --fsink", 0},
		{"data dir is a file", []string{"--data-dir", filepath.Join(notDir, "x")}, "data dir", 0},
		{"port in use", []string{"--kafka-addr", "PLACEHOLDER"}, "--kafka-addr", 0},
		{"meta.db unusable", nil, "meta.db", 0},
		{"upstream tls file missing", []string{"--config", tlsCfg}, "config: upstreams (file " + tlsCfg + " line 1): central: forward: tls ca-file: open /nonexistent/ca.pem", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--data-dir", filepath.Join(dir, "d-"+strings.ReplaceAll(tc.name, " ", "-")),
				"--mqtt-addr", "", "--http-addr", ""}, tc.args...)
			if tc.name == "meta.db unusable" {
				// Not damage (the system refuses to open it as a file):
				// the start stops, nothing is moved aside.
				os.MkdirAll(filepath.Join(args[2], "meta.db"), 0o755)
				args = append(args, "--kafka-addr", "127.0.0.1:0")
				defer func() {
					if m, _ := filepath.Glob(filepath.Join(args[2], "meta.db.corrupt-*")); len(m) != 0 {
						t.Errorf("moved aside: %v", m)
					}
				}()
			}
			if tc.name == "port in use" {
				// Occupy a port ourselves so the listen must fail.
				ln := mustListen(t)
				args[len(args)-1] = ln
			}
			bin := runnelBinary(t) // built before the clock starts
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if err == nil {
				t.Fatalf("exit 0, want failure")
			}
			if ee, ok := err.(*exec.ExitError); tc.code != 0 && (!ok || ee.ExitCode() != tc.code) {
				t.Fatalf("exit %v, want %d", err, tc.code)
			}
			msg := strings.TrimSpace(stderr.String())
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("stderr %q does not mention %q", msg, tc.want)
			}
			if n := strings.Count(msg, "\n"); n > 0 && !strings.Contains(msg, "level=") {
				t.Fatalf("want one line, got %d:\n%s", n+1, msg)
			}
		})
	}
	if os.Geteuid() != 0 { // root ignores directory permissions
		cmd := exec.Command(runnelBinary(t), "serve", "--data-dir", filepath.Join(ro, "data"), "--mqtt-addr", "", "--http-addr", "", "--kafka-addr", "127.0.0.1:0")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "data dir") {
			t.Fatalf("unwritable dir: err=%v out=%s", err, out)
		}
	}
}

func mustListen(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

func TestServeHTTPEndpoints(t *testing.T) {
	s := startRunnel(t, 1)
	runTool(t, 20*time.Second, "x\ny\n", runnelBinary(t), "produce", "metrics-topic", "--brokers", s.Addr(), "--acks", "-1")
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + s.HTTPAddr() + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Fatalf("/readyz = %d %q", code, body)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		"runnel_log_appended_records_total 2",
		`runnel_partition_end_offset{partition="0",topic="metrics-topic"} 2`,
		"# TYPE runnel_log_fsyncs_total counter",
		"runnel_kafka_produce_records_total 2",
		"runnel_disk_free_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	code, body = get("/api/status")
	if code != 200 || !strings.Contains(body, `"node_id"`) {
		t.Fatalf("/api/status = %d %s", code, body)
	}
	code, body = get("/api/topics")
	if code != 200 || !strings.Contains(body, `"metrics-topic"`) {
		t.Fatalf("/api/topics = %d %s", code, body)
	}
}

// TestServeReportsDamagedMeta: a damaged meta.db is moved aside at start
// and the node says so: an error log line, the damaged-files metric, and
// runnel status lists it under damaged.
func TestServeReportsDamagedMeta(t *testing.T) {
	s := startRunnel(t, 1)
	runTool(t, 20*time.Second, "a\n", runnelBinary(t), "produce", "kept", "--brokers", s.Addr(), "--acks", "-1")
	s.Stop(t)
	if err := os.WriteFile(filepath.Join(s.dir, "data", "meta.db"), bytes.Repeat([]byte("rot"), 5000), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Restart(t)
	if !strings.Contains(s.LogTail(), "level=ERROR") || !strings.Contains(s.LogTail(), "meta.db.corrupt-") {
		t.Errorf("no error log line about meta.db:\n%s", s.LogTail())
	}
	resp, err := http.Get("http://" + s.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "runnel_log_damaged_files 1") {
		t.Errorf("metric: %s", grepLines(string(body), "damaged"))
	}
	out := runTool(t, 20*time.Second, "", runnelBinary(t), "status", "--brokers", s.Addr(), "--http", s.HTTPAddr())
	if !strings.Contains(out, "damaged: (1)") || !strings.Contains(out, "file: meta.db") {
		t.Errorf("runnel status does not show the damaged meta.db:\n%s", out)
	}
	out = runTool(t, 20*time.Second, "", runnelBinary(t), "consume", "kept", "--brokers", s.Addr(), "--from-beginning", "-n", "1")
	if strings.TrimSpace(out) != "a" {
		t.Errorf("record after the rebuild: %q", out)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
