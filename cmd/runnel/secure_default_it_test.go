package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel/runnel/replicate/sitetest"
)

// TestSecureDefaultRemoteAnonymousRefused starts `runnel serve` with no
// configuration at all (no flag, no file, no RUNNEL_* variable) inside a
// network namespace, reached from the test's namespace through a veth
// pair. Anonymous MQTT (mosquitto_pub), Kafka (kcat and franz-go) and HTTP
// (curl) clients from the other end of the veth are refused, each with its
// protocol's own error and a reason, while the same clients on 127.0.0.1
// inside the namespace work. With --allow-remote-anonymous the remote
// clients get in, and the start log and /api/status say so.
func TestSecureDefaultRemoteAnonymousRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	for _, tool := range []string{"mosquitto_pub", "kcat", "curl"} {
		needTool(t, tool)
	}
	bin := runnelBinary(t)
	c := sitetest.Start(t, sitetest.Options{Nodes: 1, NoStart: true})
	n := c.Node(1)
	ip := n.IP.String()

	var pid int // of the runnel serve last started
	start := func(t *testing.T, args ...string) (logf string) {
		dir := t.TempDir() // the working directory: ./runnel-data lands here
		logf = filepath.Join(dir, "runnel.log")
		out, err := os.Create(logf)
		if err != nil {
			t.Fatal(err)
		}
		cmd := n.Command(context.Background(), bin, append([]string{"serve"}, args...)...)
		cmd.Dir, cmd.Stdout, cmd.Stderr = dir, out, out
		cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "RUNNEL_") })
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid = cmd.Process.Pid
		done := make(chan struct{})
		go func() { cmd.Wait(); out.Close(); close(done) }()
		t.Cleanup(func() {
			cmd.Process.Signal(os.Interrupt) // ip netns exec execs runnel: this PID is runnel's
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		})
		// Ready: HTTP answers on the namespace's loopback.
		deadline := time.Now().Add(30 * time.Second)
		for {
			if b, _ := os.ReadFile(logf); strings.Contains(string(b), "runnel started") {
				if r := inNS(t, n, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:8080/readyz"); r.out == "200" {
					return logf
				}
			}
			select {
			case <-done:
				b, _ := os.ReadFile(logf)
				t.Fatalf("runnel serve exited:\n%s", b)
			default:
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(logf)
				t.Fatalf("runnel serve not ready in 30s:\n%s", b)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	t.Run("default", func(t *testing.T) {
		logf := start(t)

		// Loopback inside the namespace: every anonymous client works.
		if r := inNS(t, n, "mosquitto_pub", "-h", "127.0.0.1", "-p", "1883", "-q", "1", "-t", "plant/line1", "-m", "local"); r.err != nil {
			t.Fatalf("mosquitto_pub on 127.0.0.1: %v: %s", r.err, r.out)
		}
		if r := inNS(t, n, "kcat", "-P", "-b", "127.0.0.1:9092", "-t", "local", "-X", "message.timeout.ms=10000"); r.err != nil {
			t.Fatalf("kcat -P on 127.0.0.1: %v: %s", r.err, r.out)
		}
		if r := inNS(t, n, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:8080/api/topics"); r.out != "200" {
			t.Fatalf("curl on 127.0.0.1: HTTP %s, want 200", r.out)
		}

		// From the other end of the veth: refused, with a reason.
		r := execOut(t, "mosquitto_pub", "-h", ip, "-p", "1883", "-q", "1", "-t", "plant/line1", "-m", "remote")
		if r.err == nil || !strings.Contains(r.out, "not authori") {
			t.Errorf("remote mosquitto_pub: err %v, output %q; want a refused connection (not authorised)", r.err, r.out)
		}
		r = execOut(t, "sh", "-c", fmt.Sprintf("echo remote | kcat -P -b %s:9092 -t local -X message.timeout.ms=10000 -X topic.metadata.refresh.interval.ms=200", ip))
		if r.err == nil || !strings.Contains(r.out, "Topic authorization failed") {
			t.Errorf("remote kcat -P: err %v, output %q; want Topic authorization failed", r.err, r.out)
		}
		r = execOut(t, "kcat", "-L", "-b", ip+":9092")
		if r.err != nil || !strings.Contains(r.out, "0 topics") {
			t.Errorf("remote kcat -L: err %v, output %q; want an empty topic list", r.err, r.out)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(ip+":9092"), kgo.RecordRetries(1), kgo.RecordDeliveryTimeout(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err = cl.ProduceSync(ctx, &kgo.Record{Topic: "local", Value: []byte("remote")}).FirstErr()
		if !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Errorf("remote franz-go produce: %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		code, body := getURL(t, "http://"+ip+":8080/api/topics")
		if code != http.StatusUnauthorized || !strings.Contains(body, "loopback") {
			t.Errorf("remote curl /api/topics: HTTP %d %s; want 401 naming the loopback rule", code, body)
		}
		r = execOut(t, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://"+ip+":8080/api/topics")
		if r.out != "401" {
			t.Errorf("remote curl: HTTP %s, want 401", r.out)
		}

		// Nothing remote got in: the log holds the local records only.
		r = inNS(t, n, "kcat", "-C", "-b", "127.0.0.1:9092", "-t", "local", "-e", "-q", "-f", "%s\n")
		if got := strings.TrimSpace(r.out); got != "" && got != "local" {
			t.Errorf("topic local holds %q, want nothing from remote", got)
		}
		b, _ := os.ReadFile(logf)
		for _, want := range []string{"anonymous Kafka clients are allowed from the loopback interface only", "anonymous client refused"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("log lacks %q:\n%s", want, b)
			}
		}
		if st := securityOf(t, n, "127.0.0.1:8080"); st.AllowRemoteAnonymous || len(st.Warnings) != 0 {
			t.Errorf("/api/status security = %+v, want no warning", st)
		}
	})

	t.Run("allow-remote-anonymous", func(t *testing.T) {
		logf := start(t, "--allow-remote-anonymous")
		if r := execOut(t, "mosquitto_pub", "-h", ip, "-p", "1883", "-q", "1", "-t", "plant/line1", "-m", "remote"); r.err != nil {
			t.Errorf("remote mosquitto_pub: %v: %s", r.err, r.out)
		}
		if r := execOut(t, "sh", "-c", fmt.Sprintf("echo remote | kcat -P -b %s:9092 -t remote -X message.timeout.ms=10000", ip)); r.err != nil {
			t.Errorf("remote kcat -P: %v: %s", r.err, r.out)
		}
		if code, body := getURL(t, "http://"+ip+":8080/api/topics"); code != http.StatusOK {
			t.Errorf("remote /api/topics: HTTP %d %s, want 200", code, body)
		}
		st := securityOf(t, n, "127.0.0.1:8080")
		if !st.AllowRemoteAnonymous || len(st.Warnings) != 3 {
			t.Errorf("/api/status security = %+v, want allow_remote_anonymous and a warning for kafka, mqtt and http", st)
		}
		b, _ := os.ReadFile(logf)
		if got := strings.Count(string(b), "SECURITY:"); got != 3 {
			t.Errorf("start log has %d SECURITY warnings, want 3:\n%s", got, b)
		}
	})

	t.Run("users-file", func(t *testing.T) {
		uf := filepath.Join(t.TempDir(), "users.yaml")
		add := exec.Command(bin, "user", "add", "--users-file", uf, "plc")
		add.Stdin = strings.NewReader("plc-pw\n")
		if out, err := add.CombinedOutput(); err != nil {
			t.Fatalf("runnel user add: %v: %s", err, out)
		}
		if out, _ := exec.Command(bin, "user", "list", "--users-file", uf).Output(); strings.TrimSpace(string(out)) != "plc" {
			t.Fatalf("runnel user list: %q", out)
		}
		if b, _ := os.ReadFile(uf); strings.Contains(string(b), "plc-pw") {
			t.Fatal("the users file holds the password in clear")
		}
		logf := start(t, "--users-file", uf, "--kafka-user", "legacy:legacy-pw")
		sasl := func(mech, user, pass string) []string {
			return []string{"-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=" + mech, "-X", "sasl.username=" + user, "-X", "sasl.password=" + pass}
		}
		kcat := func(extra ...string) cmdResult {
			return execOut(t, "sh", "-c", "echo remote | kcat -P -b "+ip+":9092 -t plc -X message.timeout.ms=10000 "+strings.Join(extra, " "))
		}
		for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512"} {
			if r := kcat(sasl(mech, "plc", "plc-pw")...); r.err != nil {
				t.Errorf("remote kcat %s: %v: %s", mech, r.err, r.out)
			}
			if r := kcat(sasl(mech, "legacy", "legacy-pw")...); r.err != nil {
				t.Errorf("remote kcat %s, --kafka-user account: %v: %s", mech, r.err, r.out)
			}
			if r := kcat(sasl(mech, "plc", "wrong")...); r.err == nil || !strings.Contains(r.out, "Authentication failed") {
				t.Errorf("remote kcat %s with a wrong password: %v: %s", mech, r.err, r.out)
			}
		}
		// PLAIN off loopback without TLS: the password would cross in clear.
		if r := kcat(sasl("PLAIN", "plc", "plc-pw")...); r.err == nil || !strings.Contains(r.out, "Unsupported SASL mechanism") {
			t.Errorf("remote kcat PLAIN without TLS: %v: %s; want the mechanism refused", r.err, r.out)
		}
		r := inNS(t, n, "sh", "-c", "echo local | kcat -P -b 127.0.0.1:9092 -t plc -X message.timeout.ms=10000 "+strings.Join(sasl("PLAIN", "plc", "plc-pw"), " "))
		if r.err != nil {
			t.Errorf("kcat PLAIN on loopback: %v: %s", r.err, r.out)
		}
		// The same account over MQTT and HTTP (bcrypt).
		if r := execOut(t, "mosquitto_pub", "-h", ip, "-u", "plc", "-P", "plc-pw", "-q", "1", "-t", "plant/x", "-m", "v"); r.err != nil {
			t.Errorf("remote mosquitto_pub as plc: %v: %s", r.err, r.out)
		}
		if r := execOut(t, "mosquitto_pub", "-h", ip, "-u", "plc", "-P", "wrong", "-q", "1", "-t", "plant/x", "-m", "v"); r.err == nil {
			t.Errorf("remote mosquitto_pub with a wrong password got in: %s", r.out)
		}
		if r := execOut(t, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", "plc:plc-pw", "http://"+ip+":8080/api/topics"); r.out != "200" {
			t.Errorf("remote curl as plc: HTTP %s", r.out)
		}
		// An account added while serving works after SIGHUP, on every
		// protocol, without a restart.
		add = exec.Command(bin, "user", "add", "--users-file", uf, "late")
		add.Stdin = strings.NewReader("late-pw\n")
		if out, err := add.CombinedOutput(); err != nil {
			t.Fatalf("runnel user add late: %v: %s", err, out)
		}
		if r := kcat(sasl("SCRAM-SHA-512", "late", "late-pw")...); r.err == nil {
			t.Errorf("account late works before SIGHUP: %s", r.out)
		}
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			b, _ := os.ReadFile(logf)
			if strings.Contains(string(b), "users-file reloaded") || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if r := kcat(sasl("SCRAM-SHA-512", "late", "late-pw")...); r.err != nil {
			t.Errorf("remote kcat SCRAM as late after SIGHUP: %v: %s", r.err, r.out)
		}
		if r := execOut(t, "mosquitto_pub", "-h", ip, "-u", "late", "-P", "late-pw", "-q", "1", "-t", "plant/x", "-m", "v"); r.err != nil {
			t.Errorf("remote mosquitto_pub as late after SIGHUP: %v: %s", r.err, r.out)
		}
		if r := execOut(t, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", "late:late-pw", "http://"+ip+":8080/api/topics"); r.out != "200" {
			t.Errorf("remote curl as late after SIGHUP: HTTP %s", r.out)
		}
		b, _ := os.ReadFile(logf)
		if !strings.Contains(string(b), "kafka.users (--kafka-user NAME:PASSWORD) is deprecated") {
			t.Errorf("no deprecation warning for --kafka-user:\n%s", b)
		}
	})
}

type cmdResult struct {
	out string
	err error
}

func execOut(t *testing.T, name string, args ...string) cmdResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	return cmdResult{strings.TrimSpace(string(out)), err}
}

// inNS runs a command inside the node's namespace (stdin: "local").
func inNS(t *testing.T, n *sitetest.Node, name string, args ...string) cmdResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := n.Command(ctx, name, args...)
	cmd.Stdin = strings.NewReader("local\n")
	out, err := cmd.CombinedOutput()
	return cmdResult{strings.TrimSpace(string(out)), err}
}

func getURL(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// securityOf reads /api/status "security" from inside the namespace.
func securityOf(t *testing.T, n *sitetest.Node, addr string) securityStatus {
	t.Helper()
	r := inNS(t, n, "curl", "-s", "http://"+addr+"/api/status")
	var st struct {
		Security securityStatus `json:"security"`
	}
	if err := json.Unmarshal([]byte(r.out), &st); err != nil {
		t.Fatalf("/api/status: %v: %s", err, r.out)
	}
	return st.Security
}
