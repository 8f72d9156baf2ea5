package main

// Integration tests with real clients (the runnel CLI, kcat, the Apache
// Kafka Java console tools, franz-go) against the real runnel binary, built
// once per package run. RUNNEL_IT_TARGET=kafka runs the same tests against a
// single-node Apache Kafka instead (sync/kafka/kafkatest), which proves the
// tests themselves and the CLI against a reference server. RUNNEL_BIN
// names a prebuilt runnel to start instead of this tree's (serverBinary).
//
// Missing tools (kcat, java) skip a test with a clear message, or fail it
// when CI=true.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/sync/kafka/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// itBin is the runnel binary built for this package run (see TestMain).
var itBin struct {
	once sync.Once
	dir  string // temp dir owned by TestMain
	path string
	err  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "runnel-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	itBin.dir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runnelBinary builds ./cmd/runnel once per package run (on first use, so
// unit-test-only runs do not pay for it) and returns its path.
func runnelBinary(t testing.TB) string {
	t.Helper()
	itBin.once.Do(func() {
		itBin.path = filepath.Join(itBin.dir, "runnel")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", itBin.path, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			itBin.err = fmt.Errorf("go build ./cmd/runnel: %v\n%s", err, out)
		}
	})
	if itBin.err != nil {
		t.Fatal(itBin.err)
	}
	return itBin.path
}

// serverBinary is the `runnel serve` binary the tests start: the one
// RUNNEL_BIN names (a prebuilt runnel, e.g. another version to compare
// in a benchmark), else the one built from this tree. The CLI tools the
// tests run (runnel produce, consume, bench) are always this tree's.
func serverBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("RUNNEL_BIN")
	if bin == "" {
		return runnelBinary(t)
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatalf("RUNNEL_BIN=%s: %v", bin, err)
	}
	if fi, err := os.Stat(abs); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("RUNNEL_BIN=%s: not an executable file (%v)", bin, err)
	}
	return abs
}

// needTool skips (or, with CI=true, fails) when name is not in PATH.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found in PATH (CI=true makes this a failure)", name)
		}
		t.Skipf("skipping: %s not found in PATH (apt-get install %s)", name, name)
	}
	return p
}

// itServer is the server under test.
type itServer interface {
	Addr() string     // Kafka bootstrap address
	HTTPAddr() string // "" when the server has no runnel HTTP API
	Kill9(t testing.TB)
	Stop(t testing.TB)
	Restart(t testing.TB)
	PID() int // 0 when not running
	LogTail() string
}

// startServer starts the server the tests target: runnel (default) or,
// with RUNNEL_IT_TARGET=kafka, Apache Kafka.
func startServer(t testing.TB, partitions int) itServer {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	switch target := os.Getenv("RUNNEL_IT_TARGET"); target {
	case "", "runnel":
		return startRunnel(t, partitions)
	case "kafka":
		return &kafkaServer{b: kafkatest.StartOpts(t, kafkatest.Options{Partitions: partitions})}
	default:
		t.Fatalf("RUNNEL_IT_TARGET=%q: want runnel or kafka", target)
		return nil
	}
}

// kafkaServer adapts kafkatest.Broker.
type kafkaServer struct{ b *kafkatest.Broker }

func (k *kafkaServer) Addr() string         { return k.b.Addr() }
func (k *kafkaServer) HTTPAddr() string     { return "" }
func (k *kafkaServer) Kill9(t testing.TB)   { k.b.Kill() }
func (k *kafkaServer) Stop(t testing.TB)    { k.b.Stop() }
func (k *kafkaServer) Restart(t testing.TB) { k.b.Restart() }
func (k *kafkaServer) PID() int             { return 0 }
func (k *kafkaServer) LogTail() string      { return k.b.LogTail(4000) }

// runnelServer is one `runnel serve` process with its own data dir and
// ports, restartable on the same ports and data.
type runnelServer struct {
	bin                       string
	emu                       []string // emulator command the binary runs under (qemu-user), or none
	dir                       string
	kafka, http, mqtt         string
	extra                     []string
	wrap                      []string       // command and arguments the server is started under (prlimit …)
	sec                       clientSecurity // how start's readiness probe connects (SASL, TLS)
	mu                        sync.Mutex     // guards cmd, done
	cmd                       *exec.Cmd
	done                      chan struct{}
	logPath                   string
	startTimeout, stopTimeout time.Duration
}

func freeAddr(t testing.TB) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		addr := l.Addr().String()
		l.Close()
		if handedOut.take(addr) {
			return addr
		}
	}
	t.Fatal("free port: only ports handed out before")
	return ""
}

// handedOut holds every port freeAddr and freeAddrOn returned in this
// process: the kernel may hand a probe's port out again once it is
// closed, and one server's Kafka, HTTP and MQTT listeners then got the
// same port.
var handedOut = &portsHandedOut{ports: map[int]bool{}}

type portsHandedOut struct {
	sync.Mutex
	ports map[int]bool
}

// take records addr's port as handed out; false if it was before.
func (h *portsHandedOut) take(addr string) bool {
	_, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	if h.ports[port] {
		return false
	}
	h.ports[port] = true
	return true
}

// startRunnel starts `runnel serve` on free loopback ports in a temp dir.
// A test that calls it (not startServer) needs runnel itself: its HTTP
// API, MQTT, data dir or flags. With RUNNEL_IT_TARGET=kafka it is skipped,
// saying so: that mode runs the tests that hold for any Kafka server.
func startRunnel(t testing.TB, partitions int, extra ...string) *runnelServer {
	t.Helper()
	if os.Getenv("RUNNEL_IT_TARGET") == "kafka" {
		t.Skip("needs runnel itself (HTTP API, MQTT, data dir or runnel flags): runs against runnel only, not RUNNEL_IT_TARGET=kafka")
	}
	return startRunnelUnder(t, nil, partitions, extra...)
}

// startRunnelUnder is startRunnel with the server started under the
// command wrap (e.g. prlimit --nofile=1024:1024), restarts included.
func startRunnelUnder(t testing.TB, wrap []string, partitions int, extra ...string) *runnelServer {
	t.Helper()
	s := newRunnel(t, wrap, partitions, extra...)
	if err := s.start(); err != nil {
		t.Fatalf("start runnel: %v\n--- server log ---\n%s", err, s.LogTail())
	}
	return s
}

// newRunnel prepares a runnelServer (not started; start does).
func newRunnel(t testing.TB, wrap []string, partitions int, extra ...string) *runnelServer {
	t.Helper()
	dir := t.TempDir()
	s := &runnelServer{
		bin: serverBinary(t), dir: dir,
		kafka: freeAddr(t), http: freeAddr(t), mqtt: freeAddr(t),
		logPath:      filepath.Join(dir, "server.log"),
		startTimeout: 20 * time.Second, stopTimeout: 10 * time.Second,
		wrap: wrap,
	}
	if partitions > 0 {
		extra = append([]string{"--default-partitions", strconv.Itoa(partitions)}, extra...)
	}
	s.extra = extra
	t.Cleanup(func() { s.kill() })
	return s
}

func (s *runnelServer) Addr() string     { return s.kafka }
func (s *runnelServer) HTTPAddr() string { return s.http }

func (s *runnelServer) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *runnelServer) start() error {
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return errors.New("already running")
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	args := append([]string{"serve",
		"--data-dir", filepath.Join(s.dir, "data"),
		"--kafka-addr", s.kafka, "--http-addr", s.http, "--mqtt-addr", s.mqtt,
	}, s.extra...)
	argv := append(append(append(slices.Clip(s.wrap), s.emu...), s.bin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.mu.Unlock()
		return err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return waitKafkaReady(s.kafka, done, s.startTimeout, s.sec)
}

// waitKafkaReady polls Metadata until the server lists a broker.
func waitKafkaReady(addr string, exited <-chan struct{}, timeout time.Duration, sec clientSecurity) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("server exited during startup")
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			cf := &clientFlags{brokers: addr, timeout: time.Second, sec: sec}
			if cl, err := cf.newClient(kgo.RequestRetries(0)); err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, _, err := fetchMetadata(ctx, cl, nil)
				cancel()
				cl.Close()
				if err == nil {
					return nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("kafka listener %s not ready after %v", addr, timeout)
}

func (s *runnelServer) signal(sig syscall.Signal, wait time.Duration) (exited bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return true
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
		exited = true
	case <-time.After(wait):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
	return exited
}

func (s *runnelServer) kill() { s.signal(syscall.SIGKILL, 10*time.Second) }

// Kill9 crashes the server (SIGKILL) and waits for it to be gone.
func (s *runnelServer) Kill9(t testing.TB) { s.kill() }

// Stop sends SIGTERM and fails the test unless the server exits cleanly
// within 10 s.
func (s *runnelServer) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if !s.signal(syscall.SIGTERM, s.stopTimeout) {
		t.Errorf("runnel did not exit within %v of SIGTERM\n%s", s.stopTimeout, s.LogTail())
		return
	}
	if cmd != nil && cmd.ProcessState != nil && !cmd.ProcessState.Success() {
		t.Errorf("runnel exited with %v after SIGTERM\n%s", cmd.ProcessState, s.LogTail())
	}
}

// Restart starts the server again (stopping it first if it runs).
func (s *runnelServer) Restart(t testing.TB) {
	t.Helper()
	if s.PID() != 0 {
		s.Stop(t)
	}
	if err := s.start(); err != nil {
		t.Fatalf("restart runnel: %v\n--- server log ---\n%s", err, s.LogTail())
	}
}

func (s *runnelServer) LogTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// runTool runs an external command with stdin, bounded by timeout, and
// returns stdout; it fails the test on a non-zero exit.
func runTool(t testing.TB, timeout time.Duration, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v (ctx %v)\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), err, ctx.Err(), tail(out.String(), 2000), tail(errb.String(), 3000))
	}
	return out.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// lines splits output into lines without the trailing empty one.
func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// sortedCopy returns a sorted copy of ss.
func sortedCopy(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return out
}

// TestIntegrationCLIRoundTrip drives the built binary's client commands
// against the server: topic create/list/describe/delete, produce with keys,
// consume directly and as a group, status.
func TestIntegrationCLIRoundTrip(t *testing.T) {
	srv := startServer(t, 1)
	bin := runnelBinary(t)
	b := "--brokers=" + srv.Addr()
	cli := func(stdin string, args ...string) string {
		t.Helper()
		return runTool(t, 30*time.Second, stdin, bin, append(args, b)...)
	}
	// Exit codes pass through the binary's dispatcher.
	if out := runTool(t, 10*time.Second, "", bin, "topic", "--help"); !strings.HasPrefix(out, "Usage: runnel topic") {
		t.Errorf("runnel topic --help: %q", out)
	}
	if err := exec.Command(bin, "produce").Run(); err == nil || err.(*exec.ExitError).ExitCode() != 2 {
		t.Errorf("runnel produce without a topic: %v, want exit status 2", err)
	}
	cli("", "topic", "create", "it-cli", "--partitions", "3", "--config", "retention.ms=3600000")
	var in strings.Builder
	var want []string
	for i := range 300 {
		fmt.Fprintf(&in, "user%d:event %d\n", i%11, i)
		want = append(want, fmt.Sprintf("user%d:event %d", i%11, i))
	}
	cli(in.String(), "produce", "it-cli", "--key-separator", ":", "--acks", "all")
	got := lines(cli("", "consume", "it-cli", "--from-beginning", "--exit", "--format", `%p|%k:%v\n`))
	if len(got) != len(want) {
		t.Fatalf("consumed %d records, want %d", len(got), len(want))
	}
	var kv []string
	lastByKey := map[string]int{}
	for _, l := range got {
		p, rec, _ := strings.Cut(l, "|")
		kv = append(kv, rec)
		k, v, _ := strings.Cut(rec, ":")
		if want := batch.Partition([]byte(k), 3); p != strconv.Itoa(int(want)) {
			t.Errorf("key %s in partition %s, murmur2 says %d", k, p, want)
		}
		n, _ := strconv.Atoi(strings.TrimPrefix(v, "event "))
		if prev, ok := lastByKey[k]; ok && n < prev {
			t.Errorf("key %s: event %d after %d (order per partition broken)", k, n, prev)
		}
		lastByKey[k] = n
	}
	if !slices.Equal(sortedCopy(kv), sortedCopy(want)) {
		t.Fatalf("consumed records differ from produced ones")
	}
	desc := cli("", "topic", "describe", "it-cli")
	if !strings.Contains(desc, "Partitions: 3") || !strings.Contains(desc, "retention.ms") {
		t.Errorf("describe:\n%s", desc)
	}
	if !regexpMatch(`it-cli\s+3\s+300\s`, cli("", "topic", "list")) {
		t.Errorf("list does not show it-cli with 3 partitions and 300 records")
	}

	// A group reads 100, then the rest; nothing twice.
	first := lines(cli("", "consume", "it-cli", "--group", "it-g", "--from-beginning", "-n", "100"))
	rest := lines(cli("", "consume", "it-cli", "--group", "it-g", "--from-beginning", "--exit"))
	if len(first) != 100 || len(first)+len(rest) != 300 {
		t.Errorf("group consumed %d then %d records, want 100 then 200", len(first), len(rest))
	}
	if all := append(sortedCopy(first), rest...); len(slices.Compact(sortedCopy(all))) != len(all) {
		t.Errorf("group consumed a record twice")
	}

	st := runTool(t, 30*time.Second, "", bin, "status", b, "--http", srv.HTTPAddr())
	if !strings.Contains(st, "it-cli") {
		t.Errorf("status:\n%s", st)
	}
	if srv.HTTPAddr() != "" && !strings.Contains(st, "node_id: ") {
		t.Errorf("status does not show the node id from /api/status:\n%s", st)
	}
	t.Logf("status:\n%s", st)
	cli("", "topic", "delete", "it-cli")
	if r := runCLI(t, "", "topic", "describe", "it-cli", b); r.code != 1 {
		t.Errorf("describe after delete: %+v", r)
	}
}

// TestIntegrationKcatCodecs produces with kcat in every codec and reads the
// records back with kcat and with franz-go.
func TestIntegrationKcatCodecs(t *testing.T) {
	kcat := needTool(t, "kcat")
	srv := startServer(t, 1)
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			topic := "it-codec-" + codec
			mustCLI(t, "", "topic", "create", topic, "--partitions", "2", "--brokers", srv.Addr())
			var in strings.Builder
			var want []string
			for i := range 2000 {
				// Repetitive values so the codecs actually compress.
				l := fmt.Sprintf("k%d|%s value number %d", i%7, strings.Repeat(codec, 5), i)
				in.WriteString(l + "\n")
				want = append(want, l)
			}
			runTool(t, 30*time.Second, in.String(), kcat, "-b", srv.Addr(), "-t", topic, "-P", "-K", "|",
				"-z", codec, "-X", "linger.ms=20", "-X", "topic.partitioner=murmur2_random")
			got := lines(runTool(t, 30*time.Second, "", kcat, "-b", srv.Addr(), "-t", topic, "-C", "-e", "-o", "beginning", "-q", "-f", `%k|%s\n`))
			if !slices.Equal(sortedCopy(got), sortedCopy(want)) {
				t.Fatalf("kcat read back %d records, want %d equal ones", len(got), len(want))
			}
			got = lines(mustCLI(t, "", "consume", topic, "--from-beginning", "--exit", "--format", `%k|%v\n`, "--brokers", srv.Addr()))
			if !slices.Equal(sortedCopy(got), sortedCopy(want)) {
				t.Fatalf("franz-go read back %d records, want %d equal ones", len(got), len(want))
			}
		})
	}
}

// TestIntegrationKcatGroupRestart consumes with a kcat consumer group,
// restarts the server, and checks the group resumes after its commits.
func TestIntegrationKcatGroupRestart(t *testing.T) {
	kcat := needTool(t, "kcat")
	srv := startServer(t, 1)
	topic := "it-kgroup"
	mustCLI(t, "", "topic", "create", topic, "--partitions", "2", "--brokers", srv.Addr())
	produce := func(from, to int) {
		var in strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&in, "m%d\n", i)
		}
		mustCLI(t, in.String(), "produce", topic, "--brokers", srv.Addr())
	}
	group := func() []string {
		return lines(runTool(t, 45*time.Second, "", kcat, "-b", srv.Addr(), "-G", "it-kcat-group", topic, "-e", "-q",
			"-X", "auto.offset.reset=earliest", "-X", "auto.commit.interval.ms=100", "-f", `%s\n`))
	}
	produce(0, 100)
	first := group()
	if len(first) != 100 {
		t.Fatalf("kcat -G read %d records first, want 100", len(first))
	}
	srv.Stop(t)
	srv.Restart(t)
	produce(100, 150)
	second := group()
	var want []string
	for i := 100; i < 150; i++ {
		want = append(want, fmt.Sprintf("m%d", i))
	}
	if !slices.Equal(sortedCopy(second), sortedCopy(want)) {
		t.Fatalf("after restart kcat -G read %d records (%v...), want exactly m100..m149", len(second), second[:min(5, len(second))])
	}
	// Acknowledged commits also survive a crash.
	srv.Kill9(t)
	srv.Restart(t)
	produce(150, 170)
	third := group()
	want = want[:0]
	for i := 150; i < 170; i++ {
		want = append(want, fmt.Sprintf("m%d", i))
	}
	if !slices.Equal(sortedCopy(third), sortedCopy(want)) {
		t.Fatalf("after kill -9 kcat -G read %d records (%v...), want exactly m150..m169", len(third), third[:min(5, len(third))])
	}
}

// TestIntegrationKcatMetadata lists metadata with kcat -L -J.
func TestIntegrationKcatMetadata(t *testing.T) {
	kcat := needTool(t, "kcat")
	srv := startServer(t, 1)
	mustCLI(t, "", "topic", "create", "it-meta", "--partitions", "3", "--brokers", srv.Addr())
	out := runTool(t, 30*time.Second, "", kcat, "-b", srv.Addr(), "-L", "-J")
	var md struct {
		Brokers []struct {
			ID   int32  `json:"id"`
			Name string `json:"name"`
		} `json:"brokers"`
		Topics []struct {
			Topic      string `json:"topic"`
			Partitions []struct {
				Partition int32 `json:"partition"`
				Leader    int32 `json:"leader"`
			} `json:"partitions"`
		} `json:"topics"`
	}
	if err := json.Unmarshal([]byte(out), &md); err != nil {
		t.Fatalf("kcat -L -J: %v\n%s", err, out)
	}
	if len(md.Brokers) == 0 || md.Brokers[0].Name != srv.Addr() {
		t.Errorf("brokers %+v, want one named %s", md.Brokers, srv.Addr())
	}
	found := false
	for _, tp := range md.Topics {
		if tp.Topic != "it-meta" {
			continue
		}
		found = true
		if len(tp.Partitions) != 3 {
			t.Errorf("it-meta has %d partitions, want 3", len(tp.Partitions))
		}
		for _, p := range tp.Partitions {
			if p.Leader != md.Brokers[0].ID {
				t.Errorf("partition %d leader %d, want broker %d", p.Partition, p.Leader, md.Brokers[0].ID)
			}
		}
	}
	if !found {
		t.Errorf("kcat -L does not list it-meta:\n%s", out)
	}
}

// TestIntegrationKcatKeyPartition checks that keyed records produced by kcat
// with librdkafka's murmur2 partitioner land where Apache Kafka's Java
// partitioner (and runnel's batch.Partition) put them.
func TestIntegrationKcatKeyPartition(t *testing.T) {
	kcat := needTool(t, "kcat")
	srv := startServer(t, 1)
	topic := "it-keys"
	const n = 5
	mustCLI(t, "", "topic", "create", topic, "--partitions", strconv.Itoa(n), "--brokers", srv.Addr())
	var in strings.Builder
	for i := range 200 {
		fmt.Fprintf(&in, "sensor-%d/%d:reading %d\n", i%37, i%3, i)
	}
	runTool(t, 30*time.Second, in.String(), kcat, "-b", srv.Addr(), "-t", topic, "-P", "-K", ":", "-X", "topic.partitioner=murmur2_random")
	got := lines(mustCLI(t, "", "consume", topic, "--from-beginning", "--exit", "--format", `%p %k\n`, "--brokers", srv.Addr()))
	if len(got) != 200 {
		t.Fatalf("read %d records, want 200", len(got))
	}
	used := map[string]bool{}
	for _, l := range got {
		p, k, _ := strings.Cut(l, " ")
		used[p] = true
		if want := strconv.Itoa(int(batch.Partition([]byte(k), n))); p != want {
			t.Errorf("key %q in partition %s, murmur2 says %s", k, p, want)
		}
	}
	if len(used) < 3 {
		t.Errorf("keys landed in only %d partitions", len(used))
	}
}

// TestIntegrationJavaConsole runs Apache Kafka's ConsoleProducer and
// ConsoleConsumer (from the Maven jars) against the server.
func TestIntegrationJavaConsole(t *testing.T) {
	needTool(t, "java")
	libs, err := kafkatest.Libs()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kafka jars: %v", err)
		}
		t.Skipf("skipping: kafka jars unavailable: %v", err)
	}
	srv := startServer(t, 1)
	topic := "it-java"
	mustCLI(t, "", "topic", "create", topic, "--partitions", "2", "--brokers", srv.Addr())
	cp := filepath.Join(libs, "*")
	var in strings.Builder
	var want []string
	for i := range 500 {
		fmt.Fprintf(&in, "j%d:java line %d\n", i%5, i)
		want = append(want, fmt.Sprintf("j%d:java line %d", i%5, i))
	}
	java := []string{"-Xmx256m", "-XX:TieredStopAtLevel=1", "-Dlog4j2.level=WARN", "-cp", cp}
	runTool(t, 60*time.Second, in.String(), "java", append(java, "org.apache.kafka.tools.ConsoleProducer",
		"--bootstrap-server", srv.Addr(), "--topic", topic,
		"--property", "parse.key=true", "--property", "key.separator=:",
		"--producer-property", "acks=all")...)
	got := lines(mustCLI(t, "", "consume", topic, "--from-beginning", "--exit", "--format", `%k:%v\n`, "--brokers", srv.Addr()))
	if !slices.Equal(sortedCopy(got), sortedCopy(want)) {
		t.Fatalf("franz-go read %d records after ConsoleProducer, want %d equal ones", len(got), len(want))
	}
	out := runTool(t, 60*time.Second, "", "java", append(java, "org.apache.kafka.tools.consumer.ConsoleConsumer",
		"--bootstrap-server", srv.Addr(), "--topic", topic, "--from-beginning",
		"--max-messages", "500", "--timeout-ms", "30000",
		"--property", "print.key=true", "--property", "key.separator=:",
		"--group", "it-java-group")...)
	got = slices.DeleteFunc(lines(out), func(s string) bool { return strings.HasPrefix(s, "Processed a total") })
	if !slices.Equal(sortedCopy(got), sortedCopy(want)) {
		t.Fatalf("ConsoleConsumer read %d records, want %d equal ones\n%s", len(got), len(want), tail(out, 500))
	}
	// The Java group committed: the CLI in the same group finds nothing left.
	if rest := mustCLI(t, "", "consume", topic, "--group", "it-java-group", "--exit", "--brokers", srv.Addr()); rest != "" {
		t.Errorf("after ConsoleConsumer's commit the group still had %d records", len(lines(rest)))
	}
}

// ackedRecord is one record the server acknowledged.
type ackedRecord struct {
	partition int32
	offset    int64
	seq       int64
}

// TestIntegrationKill9Loop produces with acks=-1 while the server is
// kill -9ed and restarted three times; every acknowledged record must be
// readable afterwards at its offset, in produce order per partition.
func TestIntegrationKill9Loop(t *testing.T) {
	srv := startServer(t, 1)
	topic := "it-crash"
	const parts = 3
	mustCLI(t, "", "topic", "create", topic, "--partitions", strconv.Itoa(parts), "--brokers", srv.Addr())
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.Addr()), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.MaxBufferedRecords(2000),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	var (
		mu      sync.Mutex
		acked   []ackedRecord
		failed  int
		lastErr error
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for seq := int64(0); ctx.Err() == nil; seq++ {
			wg.Add(1)
			r := &kgo.Record{Value: []byte(strconv.FormatInt(seq, 10))}
			cl.Produce(ctx, r, func(r *kgo.Record, err error) {
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed++
					lastErr = err
					return
				}
				acked = append(acked, ackedRecord{r.Partition, r.Offset, seq})
			})
			if seq%50 == 0 {
				time.Sleep(time.Millisecond) // a steady stream, not a flood
			}
		}
	}()
	ackedNow := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	waitAcks := func(more int) {
		t.Helper()
		want := ackedNow() + more
		for deadline := time.Now().Add(20 * time.Second); ackedNow() < want; {
			if time.Now().After(deadline) {
				t.Fatalf("no progress: %d acks, want %d (failed %d, last error %v)\n%s", ackedNow(), want, failed, lastErr, srv.LogTail())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for round := range 3 {
		waitAcks(2000)
		srv.Kill9(t)
		t.Logf("round %d: killed after %d acks", round, ackedNow())
		time.Sleep(100 * time.Millisecond)
		srv.Restart(t)
	}
	waitAcks(2000)
	cancel()
	<-stopped
	fctx, fcancel := context.WithTimeout(context.Background(), 20*time.Second)
	cl.Flush(fctx)
	fcancel()
	wg.Wait()
	cl.Close()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d records acknowledged, %d failed (last error %v)", len(acked), failed, lastErr)

	// Read everything back.
	stored := map[int32]map[int64]int64{} // partition → offset → seq
	for _, l := range lines(mustCLI(t, "", "consume", topic, "--from-beginning", "--exit", "--format", `%p %o %v\n`, "--brokers", srv.Addr())) {
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
	lost := 0
	for _, a := range acked {
		if s, ok := stored[a.partition][a.offset]; !ok || s != a.seq {
			if lost < 5 {
				t.Errorf("acked record seq %d at %d/%d: stored %d (present %v)", a.seq, a.partition, a.offset, s, ok)
			}
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged records lost or changed", lost, len(acked))
	}
	// Order per partition: acked sequence numbers increase with offsets.
	byPart := map[int32][]ackedRecord{}
	for _, a := range acked {
		byPart[a.partition] = append(byPart[a.partition], a)
	}
	for p, as := range byPart {
		slices.SortFunc(as, func(a, b ackedRecord) int { return int(a.offset - b.offset) })
		for i := 1; i < len(as); i++ {
			if as[i].seq <= as[i-1].seq {
				t.Fatalf("partition %d: seq %d at offset %d after seq %d at offset %d", p, as[i].seq, as[i].offset, as[i-1].seq, as[i-1].offset)
			}
		}
	}
}

// TestIntegrationBenchSmoke runs the three bench modes briefly against the
// server through the built binary.
func TestIntegrationBenchSmoke(t *testing.T) {
	srv := startServer(t, 1)
	bin := runnelBinary(t)
	for _, args := range [][]string{
		{"produce", "--records", "50000", "--topic", "it-bench"},
		{"consume", "--records", "50000", "--topic", "it-bench"},
		{"e2e", "--records", "3000", "--rate", "3000", "--warmup", "0", "--topic", "it-bench-e2e"},
	} {
		out := runTool(t, 60*time.Second, "", bin, append(append([]string{"bench"}, args...), "--brokers", srv.Addr(), "--json")...)
		var r benchResult
		if err := json.Unmarshal([]byte(lastLine(out)), &r); err != nil {
			t.Fatalf("bench %s: %q: %v", args[0], out, err)
		}
		want, _ := strconv.ParseInt(args[2], 10, 64)
		if r.Records != want || r.Errors != 0 || r.RecPerSec <= 0 {
			t.Errorf("bench %s: %+v", args[0], r)
		}
		if args[0] != "consume" && (r.Samples == 0 || r.P99Millis <= 0) {
			t.Errorf("bench %s: no latencies: %+v", args[0], r)
		}
		t.Logf("bench %s: %.0f rec/s, p50 %.2f ms, p99 %.2f ms", args[0], r.RecPerSec, r.P50Millis, r.P99Millis)
	}
}
