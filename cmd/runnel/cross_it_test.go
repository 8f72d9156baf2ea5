package main

// The armv7 and arm64 binaries, cross-built and run under qemu-user:
// `make test-arm` runs this with RUNNEL_CROSS_SMOKE=1 (other runs skip it:
// it builds two binaries and emulates them), and with RUNNEL_CROSS_BIN set
// to the directory where `make build-all` put the release binaries, which
// it then runs instead of building its own.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// crossTarget is one cross-built binary and the emulator that runs it.
type crossTarget struct {
	name, goarch, goarm, emulator string
	ldflags                       string // as make build-all links it
}

var crossTargets = []crossTarget{
	{"armv7", "arm", "7", "qemu-arm", "-R 0x1000"}, // 4 KiB segment layout
	{"arm64", "arm64", "", "qemu-aarch64", ""},
}

// buildCross builds ./cmd/runnel for target into dir, or returns the
// release binary for it from RUNNEL_CROSS_BIN when that is set.
func buildCross(t *testing.T, ct crossTarget, dir string) string {
	t.Helper()
	if bin := os.Getenv("RUNNEL_CROSS_BIN"); bin != "" {
		out := filepath.Join(bin, "runnel-linux-"+ct.name)
		if _, err := os.Stat(out); err != nil {
			t.Fatalf("RUNNEL_CROSS_BIN: %v (make build-all builds it)", err)
		}
		return out
	}
	out := filepath.Join(dir, "runnel-linux-"+ct.name)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ct.ldflags, "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+ct.goarch, "GOARM="+ct.goarm)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build for %s: %v\n%s", ct.name, err, b)
	}
	return out
}

// TestCrossSmoke serves with the armv7 and arm64 binaries under qemu-user:
// kcat produces 20,000 records with acks=all, the server is killed with
// SIGKILL and restarted, and every record reads back in order; one MQTT
// QoS 1 message goes from mosquitto_pub through the server to
// mosquitto_sub and into the log.
func TestCrossSmoke(t *testing.T) {
	if os.Getenv("RUNNEL_CROSS_SMOKE") == "" {
		t.Skip("set RUNNEL_CROSS_SMOKE=1 to run the armv7 and arm64 binaries under qemu-user (make test-arm)")
	}
	needTool(t, "kcat")
	needTool(t, "mosquitto_pub")
	needTool(t, "mosquitto_sub")
	dir := t.TempDir()
	for _, ct := range crossTargets {
		t.Run(ct.name, func(t *testing.T) {
			emu := needTool(t, ct.emulator)
			bin := buildCross(t, ct, dir)
			if out, err := exec.Command(emu, bin, "version").CombinedOutput(); err != nil {
				t.Fatalf("%s %s version: %v\n%s", ct.emulator, bin, err, out)
			} else {
				t.Logf("%s", strings.TrimSpace(string(out)))
			}
			crossSmoke(t, bin, []string{emu})
		})
	}
}

func crossSmoke(t *testing.T, bin string, emu []string) {
	dir := t.TempDir()
	s := &runnelServer{
		bin: bin, emu: emu, dir: dir,
		kafka: freeAddr(t), http: freeAddr(t), mqtt: freeAddr(t),
		logPath:      filepath.Join(dir, "server.log"),
		startTimeout: 90 * time.Second, stopTimeout: 30 * time.Second,
		extra: []string{"--default-partitions", "1"},
	}
	t.Cleanup(func() { s.kill() })
	if err := s.start(); err != nil {
		t.Fatalf("start: %v\n%s", err, s.LogTail())
	}

	const n = 20000
	var in strings.Builder
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("reading-%05d temp=%d", i, 20+i%10)
		in.WriteString(want[i] + "\n")
	}
	runTool(t, 3*time.Minute, in.String(), "kcat", "-P", "-b", s.Addr(), "-t", "smoke", "-X", "acks=all")
	s.Kill9(t)
	if err := s.start(); err != nil {
		t.Fatalf("restart after kill -9: %v\n%s", err, s.LogTail())
	}
	got := lines(runTool(t, 3*time.Minute, "", "kcat", "-C", "-b", s.Addr(), "-t", "smoke", "-o", "beginning", "-e", "-q", "-f", "%s\n"))
	if len(got) != n {
		t.Fatalf("read back %d records after kill -9, want %d\n%s", len(got), n, s.LogTail())
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("record %d = %q, want %q", i, got[i], want[i])
		}
	}

	host, port, _ := net.SplitHostPort(s.mqtt)
	sub := startBackground(t, "mosquitto_sub", "-h", host, "-p", port, "-q", "1", "-t", "smoke/#", "-C", "1", "-v", "-W", "60")
	time.Sleep(2 * time.Second) // let the subscription register (emulated)
	runTool(t, time.Minute, "", "mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-t", "smoke/qos1", "-m", "hello-qos1")
	if got := strings.TrimSpace(sub.wait(t, 70*time.Second)); got != "smoke/qos1 hello-qos1" {
		t.Fatalf("mosquitto_sub got %q", got)
	}
	out := runTool(t, time.Minute, "", "kcat", "-C", "-b", s.Addr(), "-t", "mqtt", "-o", "beginning", "-e", "-q", "-f", "%k|%s\n")
	if strings.TrimSpace(out) != "smoke/qos1|hello-qos1" {
		t.Fatalf("mqtt topic holds %q, want the QoS 1 message", out)
	}
	s.Stop(t)
}
