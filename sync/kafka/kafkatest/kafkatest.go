// Package kafkatest runs a real Apache Kafka broker (single node, KRaft) for
// tests and benchmarks: the central cluster runnel forwards to, and a peer
// to measure runnel against.
//
// Basics
//
//	b := kafkatest.Start(t)          // formats and starts Kafka in t.TempDir()
//	cl, _ := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
//	b.Kill(); b.Restart()            // link-loss tests
//	kafkatest.StartOpts(t, kafkatest.Options{Host: c.HostIP().String()}) // reachable from sitetest namespaces
//
// The jars come from Maven Central through fetch.sh (pom.xml beside it),
// cached in ~/.cache/runnel/kafka-<version>/libs (or $RUNNEL_KAFKA_LIBS).
// The broker listens on free ports of 127.0.0.1 (or of Options.Host, for
// clients in network namespaces), keeps its data in the test's temp dir,
// and is killed by PID when the test ends.
//
// # Caveats
//
// When java, the jars or mvn are missing the test is skipped with a clear
// message, unless CI=true, in which case it fails. Starting takes ~5-10 s
// and ~300-500 MB of RAM; share one broker between subtests where you can.
// Restart reuses the same ports, which another process could take in the
// short window while the broker is down (unlikely on loopback ephemeral
// ports, and reported clearly if it happens).
package kafkatest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log/logtest/reexec"
)

// ClusterID is the fixed KRaft cluster id used to format storage.
const ClusterID = "MkU3OEVBNTcwNTJENDM2Qk"

// StartTimeout bounds how long Start and Restart wait for the broker.
var StartTimeout = 90 * time.Second

// Options tunes a broker; the zero value is what Start uses.
type Options struct {
	// Heap is the JVM -Xmx value; default "512m". With StandardJVM it
	// is both -Xmx and -Xms; default "1G" (kafka-server-start.sh's).
	Heap string
	// Partitions is num.partitions for auto-created topics; default 1.
	Partitions int
	// AutoCreateTopics enables auto.create.topics.enable; default true
	// (set DisableAutoCreate to turn it off).
	DisableAutoCreate bool
	// Props are extra server.properties lines ("key=value").
	Props []string
	// Security adds a SASL_PLAINTEXT listener (PLAIN, SCRAM-SHA-256 and
	// SCRAM-SHA-512; user User, password Password) and an SSL listener
	// that requires client certificates (see Broker.TLSFiles).
	Security bool
	// StandardJVM starts the broker with the JVM flags of Apache Kafka's
	// own launcher, as `bin/kafka-server-start.sh server.properties` runs
	// it (StandardJVMFlags): -Xmx1G -Xms1G, -server, G1 with a 20 ms pause
	// goal, the full tiered JIT, its GC log (in Dir) and local JMX. Every
	// benchmark uses it: it is how Kafka is run. Without it the broker
	// starts with C1 only and serial GC, which start fastest on a small
	// machine (functional tests).
	StandardJVM bool
	// JVMFlags replace the fast-start JIT/GC flags (C1 only and serial
	// GC); ignored with StandardJVM.
	JVMFlags []string
	// Host is the IP address the client listeners (plain, SASL, SSL) bind
	// and advertise; default "127.0.0.1". Processes in network namespaces
	// reach a broker on the address the test process has on their network
	// (sitetest's Cluster.HostIP). The controller listener stays on
	// 127.0.0.1.
	Host string
	// NodeID is the broker's node.id; default 1.
	NodeID int
	// Voter, when set, is another broker's Voter(): this one joins its
	// cluster as a broker only (process.roles=broker), making a cluster
	// of several brokers on this machine. Empty: a single node that is
	// its own controller.
	Voter string
}

// StandardJVMFlags are the flags Apache Kafka 4.x's bin/kafka-run-class.sh
// passes to every JVM it starts when the environment sets none
// (KAFKA_JVM_PERFORMANCE_OPTS and KAFKA_JMX_OPTS). kafka-server-start.sh
// adds KAFKA_HEAP_OPTS="-Xmx1G -Xms1G" and a GC log; the tool scripts
// (kafka-producer-perf-test.sh) add -Xmx512M.
var StandardJVMFlags = []string{
	"-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
	"-XX:+ExplicitGCInvokesConcurrent", "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true",
	"-Dcom.sun.management.jmxremote=true", "-Dcom.sun.management.jmxremote.authenticate=false",
	"-Dcom.sun.management.jmxremote.ssl=false",
}

// fastStartFlags are the JIT/GC flags of the functional tests' brokers.
var fastStartFlags = []string{"-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:CICompilerCount=1"}

// Broker is one running (or stopped) single-node Kafka.
type Broker struct {
	t     testing.TB
	opts  Options
	libs  string
	dir   string
	host  string // client listeners' address
	port  int
	cport int

	sport, tport int      // SASL and SSL listener ports (Security)
	tlsFiles     TLSFiles // client PEM files (Security)
	keystore     string

	mu   sync.Mutex // guards cmd, done, logf
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exits
	logf *os.File
}

// Start fetches the jars if needed, formats storage in t.TempDir() and
// starts a broker, returning once it answers Metadata with itself as a
// broker. It skips (or fails under CI=true) when Kafka cannot be run here.
func Start(t testing.TB) *Broker { return StartOpts(t, Options{}) }

// StartOpts is Start with options.
func StartOpts(t testing.TB, opts Options) *Broker {
	t.Helper()
	// A JVM broker beside a client under a user-mode emulator misses the
	// tests' delivery timeouts; interoperability with Apache Kafka does not
	// depend on the client's architecture.
	reexec.SkipIfEmulated(t, "kafkatest: an emulated client misses the delivery timeouts of a JVM broker")
	libs, err := Libs()
	if err != nil {
		unavailable(t, err)
	}
	if opts.Partitions <= 0 {
		opts.Partitions = 1
	}
	b := &Broker{t: t, opts: opts, libs: libs, dir: t.TempDir(), host: hostOf(opts)}
	if b.port, err = b.freePort(b.host); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	if b.cport, err = b.freePort(loopback); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	if err := b.security(); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	if err := b.writeConfig(); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	if err := b.format(); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(b.Kill)
	if err := b.start(); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	return b
}

// New starts a broker outside a test (TestMain, shared benchmark
// brokers): dir is its working directory; the caller must Kill it.
// Helpers that take the test (Restart, CreateTopic) must not be used;
// use RestartErr and the CreateTopic function.
func New(dir string, opts Options) (*Broker, error) {
	libs, err := Libs()
	if err != nil {
		return nil, err
	}
	if opts.Partitions <= 0 {
		opts.Partitions = 1
	}
	b := &Broker{opts: opts, libs: libs, dir: dir, host: hostOf(opts)}
	if b.port, err = b.freePort(b.host); err != nil {
		return nil, err
	}
	if b.cport, err = b.freePort(loopback); err != nil {
		return nil, err
	}
	if err := b.security(); err != nil {
		return nil, err
	}
	if err := b.writeConfig(); err != nil {
		return nil, err
	}
	if err := b.format(); err != nil {
		return nil, err
	}
	if err := b.start(); err != nil {
		return nil, err
	}
	return b, nil
}

// unavailable skips the test, or fails it when CI=true.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("kafkatest: Apache Kafka unavailable (CI=true makes this a failure): %v", err)
	}
	t.Skipf("kafkatest: skipping, Apache Kafka unavailable: %v (needs java and the jars from sync/kafka/kafkatest/fetch.sh)", err)
}

var libsOnce struct {
	sync.Once
	dir string
	err error
}

// Libs returns the directory holding Kafka's jars, running fetch.sh once
// per process when they are not cached yet.
func Libs() (string, error) {
	libsOnce.Do(func() {
		libsOnce.dir, libsOnce.err = fetch()
	})
	return libsOnce.dir, libsOnce.err
}

func fetch() (string, error) {
	if _, err := exec.LookPath("java"); err != nil {
		return "", errors.New("java not found in PATH")
	}
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate fetch.sh")
	}
	script := filepath.Join(filepath.Dir(self), "fetch.sh")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "sh", script)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %v: %s", script, err, strings.TrimSpace(stderr.String()))
	}
	dir := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(dir, '\n'); i >= 0 {
		dir = dir[i+1:]
	}
	if _, err := os.Stat(filepath.Join(dir, "kafka-clients-"+version()+".jar")); err != nil {
		// Fall back to any kafka-clients jar (version read from pom may differ).
		m, _ := filepath.Glob(filepath.Join(dir, "kafka-clients-*.jar"))
		if len(m) == 0 {
			return "", fmt.Errorf("no kafka jars in %s", dir)
		}
	}
	return dir, nil
}

func version() string {
	_, self, _, _ := runtime.Caller(0)
	pom, err := os.ReadFile(filepath.Join(filepath.Dir(self), "pom.xml"))
	if err != nil {
		return ""
	}
	s := string(pom)
	i := strings.Index(s, "<kafka.version>")
	j := strings.Index(s, "</kafka.version>")
	if i < 0 || j < i {
		return ""
	}
	return s[i+len("<kafka.version>") : j]
}

// loopback is the default listener address and the controller's.
const loopback = "127.0.0.1"

func hostOf(opts Options) string {
	if opts.Host == "" {
		return loopback
	}
	return opts.Host
}

// freePort returns a port free on host and not yet taken by another of
// b's listeners: the kernel may hand the same ephemeral port out again
// once its probe socket is closed, and Kafka refuses two listeners on one
// port. (A later bind can still lose it to another process; start reports
// that clearly.)
func (b *Broker) freePort(host string) (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, fmt.Errorf("free port on %s: %w", host, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !slices.Contains([]int{b.port, b.cport, b.sport, b.tport}, port) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("free port on %s: the kernel keeps handing out ports this broker already uses", host)
}

func (b *Broker) security() error {
	if !b.opts.Security {
		return nil
	}
	var err error
	if b.sport, err = b.freePort(b.host); err != nil {
		return err
	}
	if b.tport, err = b.freePort(b.host); err != nil {
		return err
	}
	b.tlsFiles, b.keystore, err = writeCerts(b.dir, b.host)
	return err
}

// SASLAddr is the SASL_PLAINTEXT listener (Options.Security).
func (b *Broker) SASLAddr() string { return net.JoinHostPort(b.host, strconv.Itoa(b.sport)) }

// TLSAddr is the mutual-TLS listener (Options.Security).
func (b *Broker) TLSAddr() string { return net.JoinHostPort(b.host, strconv.Itoa(b.tport)) }

// TLSFiles are the client's PEM files for TLSAddr (Options.Security).
func (b *Broker) TLSFiles() TLSFiles { return b.tlsFiles }

// Addr is the broker's bootstrap address (host:port).
func (b *Broker) Addr() string { return net.JoinHostPort(b.host, strconv.Itoa(b.port)) }

// Voter is the broker's entry in controller.quorum.voters ("ID@host:port"
// of its controller listener), for Options.Voter of more brokers.
func (b *Broker) Voter() string {
	return fmt.Sprintf("%d@127.0.0.1:%d", cmp.Or(b.opts.NodeID, 1), b.cport)
}

// Dir is the broker's working directory (config, data, server.log).
func (b *Broker) Dir() string { return b.dir }

// LibsDir is the directory of Kafka's jars (for console tools).
func (b *Broker) LibsDir() string { return b.libs }

func (b *Broker) propsPath() string { return filepath.Join(b.dir, "server.properties") }

func (b *Broker) writeConfig() error {
	auto := "true"
	if b.opts.DisableAutoCreate {
		auto = "false"
	}
	roles, voters := "broker,controller", b.Voter()
	listeners := fmt.Sprintf("listeners=PLAINTEXT://%s,CONTROLLER://127.0.0.1:%d", b.Addr(), b.cport)
	if b.opts.Voter != "" {
		roles, voters = "broker", b.opts.Voter
		listeners = fmt.Sprintf("listeners=PLAINTEXT://%s", b.Addr())
	}
	lines := []string{
		"process.roles=" + roles,
		"node.id=" + strconv.Itoa(cmp.Or(b.opts.NodeID, 1)),
		"controller.quorum.voters=" + voters,
		listeners,
		fmt.Sprintf("advertised.listeners=PLAINTEXT://%s", b.Addr()),
		"controller.listener.names=CONTROLLER",
		"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"inter.broker.listener.name=PLAINTEXT",
		"log.dirs=" + filepath.Join(b.dir, "data"),
		"offsets.topic.replication.factor=1",
		"offsets.topic.num.partitions=1",
		"transaction.state.log.replication.factor=1",
		"transaction.state.log.min.isr=1",
		"share.coordinator.state.topic.replication.factor=1",
		"share.coordinator.state.topic.min.isr=1",
		"group.initial.rebalance.delay.ms=0",
		"num.partitions=" + strconv.Itoa(b.opts.Partitions),
		"auto.create.topics.enable=" + auto,
		"log.flush.interval.messages=9223372036854775807",
		// Fast restarts after Kill: the controller fences the dead
		// broker's session quickly.
		"broker.session.timeout.ms=2000",
		"broker.heartbeat.interval.ms=500",
	}
	if b.opts.Security {
		for i, l := range lines {
			switch {
			case strings.HasPrefix(l, "listeners="):
				lines[i] = fmt.Sprintf("%s,SASL_PLAINTEXT://%s,SSL://%s", l, b.SASLAddr(), b.TLSAddr())
			case strings.HasPrefix(l, "advertised.listeners="):
				lines[i] = fmt.Sprintf("%s,SASL_PLAINTEXT://%s,SSL://%s", l, b.SASLAddr(), b.TLSAddr())
			case strings.HasPrefix(l, "listener.security.protocol.map="):
				lines[i] = l + ",SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL"
			}
		}
		jaas := func(mod, extra string) string {
			return "org.apache.kafka.common.security." + mod + " required" + extra + ";"
		}
		lines = append(lines,
			"sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
			"listener.name.sasl_plaintext.plain.sasl.jaas.config="+jaas("plain.PlainLoginModule",
				fmt.Sprintf(` username="%s" password="%s" user_%s="%s"`, User, Password, User, Password)),
			"listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config="+jaas("scram.ScramLoginModule", ""),
			"listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config="+jaas("scram.ScramLoginModule", ""),
			"ssl.keystore.type=PEM",
			"ssl.keystore.location="+b.keystore,
			"ssl.truststore.type=PEM",
			"ssl.truststore.location="+b.tlsFiles.CA,
			"ssl.client.auth=required",
			"ssl.endpoint.identification.algorithm=",
		)
	}
	lines = append(lines, b.opts.Props...)
	if err := os.WriteFile(b.propsPath(), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	// Log at WARN to a file so tests stay quiet and failures can show it.
	l4j := strings.Join([]string{
		"status = error",
		"appender.out.type = Console",
		"appender.out.name = OUT",
		"appender.out.layout.type = PatternLayout",
		"appender.out.layout.pattern = [%d] %p %m (%c)%n",
		"rootLogger.level = WARN",
		"rootLogger.appenderRef.out.ref = OUT",
		"logger.server.name = kafka.server.KafkaRaftServer",
		"logger.server.level = INFO",
	}, "\n") + "\n"
	return os.WriteFile(filepath.Join(b.dir, "log4j2.properties"), []byte(l4j), 0o644)
}

// JVMFlags are the flags the broker's JVM runs with (heap, JIT, GC,
// JMX), for a benchmark to print beside its figures.
func (b *Broker) JVMFlags() []string { return b.jvmFlags(true) }

// jvmFlags are the broker's JVM flags; the one-off format step (server
// false) always starts fast.
func (b *Broker) jvmFlags(server bool) []string {
	if server && b.opts.StandardJVM {
		heap := cmp.Or(b.opts.Heap, "1G")
		flags := []string{"-Xmx" + heap, "-Xms" + heap}
		flags = append(flags, StandardJVMFlags...)
		// kafka-server-start.sh's "-name kafkaServer -loggc".
		return append(flags, "-Xlog:gc*:file="+filepath.Join(b.dir, "kafkaServer-gc.log")+":time,tags:filecount=10,filesize=100M")
	}
	flags := []string{"-Xms128m", "-Xmx" + cmp.Or(b.opts.Heap, "512m"), "-Djava.awt.headless=true", "-XX:-UsePerfData"}
	if server && b.opts.JVMFlags != nil {
		return append(flags, b.opts.JVMFlags...)
	}
	return append(flags, fastStartFlags...)
}

func (b *Broker) java(server bool, extra ...string) []string {
	args := append(b.jvmFlags(server),
		"-Dlog4j2.configurationFile="+filepath.Join(b.dir, "log4j2.properties"),
		"-cp", filepath.Join(b.libs, "*"),
	)
	return append(args, extra...)
}

func (b *Broker) format() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"kafka.tools.StorageTool", "format", "-t", ClusterID, "-c", b.propsPath()}
	if b.opts.Security {
		for _, m := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512"} {
			args = append(args, "--add-scram", fmt.Sprintf("%s=[name=%s,password=%s]", m, User, Password))
		}
	}
	cmd := exec.CommandContext(ctx, "java", b.java(false, args...)...)
	cmd.Dir = b.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("format storage: %v: %s", err, out)
	}
	return nil
}

// errExited: the JVM ended before the broker was ready.
var errExited = errors.New("kafkatest: broker exited during startup")

// start launches the JVM and waits until the broker is ready. A JVM that
// ends before that is started once more: on a loaded box running tests
// side by side a start can fail on what another test holds for a moment
// (a port picked as free).
func (b *Broker) start() error {
	err := b.startOnce()
	if !errors.Is(err, errExited) {
		return err
	}
	time.Sleep(time.Second)
	if err2 := b.startOnce(); err2 != nil {
		return fmt.Errorf("%w\n--- the first start ---\n%v", err2, err)
	}
	return nil
}

func (b *Broker) startOnce() error {
	b.mu.Lock()
	if b.cmd != nil {
		b.mu.Unlock()
		return errors.New("kafkatest: broker already running")
	}
	logf, err := os.OpenFile(filepath.Join(b.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		b.mu.Unlock()
		return err
	}
	cmd := exec.Command("java", b.java(true, "kafka.Kafka", b.propsPath())...)
	cmd.Dir = b.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		b.mu.Unlock()
		return fmt.Errorf("start java: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	b.cmd, b.done, b.logf = cmd, done, logf
	b.mu.Unlock()

	if err := b.waitReady(done); err != nil {
		b.Kill()
		return fmt.Errorf("%w\n--- server.log tail ---\n%s", err, b.LogTail(4000))
	}
	return nil
}

// waitReady polls Metadata until the broker lists itself and the
// controller is known.
func (b *Broker) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(StartTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errExited
		default:
		}
		if b.ready() {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("kafkatest: broker not ready after %v", StartTimeout)
}

func (b *Broker) ready() bool {
	c, err := net.DialTimeout("tcp", b.Addr(), 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.RetryTimeout(time.Second),
		kgo.RequestRetries(0), kgo.DialTimeout(time.Second))
	if err != nil {
		return false
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	resp, err := req.RequestWith(ctx, cl)
	return err == nil && len(resp.Brokers) > 0 && resp.ControllerID >= 0
}

// Stop ends the broker gracefully (SIGTERM), killing it after 20 s.
func (b *Broker) Stop() { b.signal(syscall.SIGTERM, 20*time.Second) }

// Kill ends the broker with SIGKILL (a crash). Idempotent; Cleanup calls it.
func (b *Broker) Kill() { b.signal(syscall.SIGKILL, 10*time.Second) }

func (b *Broker) signal(sig syscall.Signal, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return
	}
	pid := b.cmd.Process.Pid
	syscall.Kill(pid, sig)
	select {
	case <-b.done:
	case <-time.After(wait):
		syscall.Kill(pid, syscall.SIGKILL)
		<-b.done
	}
	b.logf.Close()
	b.cmd, b.done, b.logf = nil, nil, nil
}

// Running reports whether the broker process is alive.
func (b *Broker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return false
	}
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

// Restart starts a stopped or killed broker again on the same ports and
// data, waiting until it is ready. It stops a running one first.
func (b *Broker) Restart() {
	b.t.Helper()
	if err := b.RestartErr(); err != nil {
		b.t.Errorf("kafkatest: restart: %v", err)
	}
}

// RestartErr is Restart returning the error (for use off the test goroutine).
func (b *Broker) RestartErr() error {
	b.Stop()
	return b.start()
}

// CreateTopic creates a topic with the given partitions (replication 1).
// An existing topic is not an error.
func (b *Broker) CreateTopic(topic string, partitions int32) {
	b.t.Helper()
	if err := CreateTopic(context.Background(), b.Addr(), topic, partitions); err != nil {
		b.t.Fatalf("kafkatest: %v", err)
	}
}

// CreateTopic creates a topic on the cluster at addr and waits until it has
// a leader for every partition. An existing topic is not an error.
func CreateTopic(ctx context.Context, addr, topic string, partitions int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, 1
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 20000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	for ctx.Err() == nil {
		m := kmsg.NewPtrMetadataRequest()
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(topic)
		m.Topics = append(m.Topics, mt)
		mr, err := m.RequestWith(ctx, cl)
		if err == nil && len(mr.Topics) == 1 && mr.Topics[0].ErrorCode == 0 &&
			len(mr.Topics[0].Partitions) == int(partitions) {
			ok := true
			for _, p := range mr.Topics[0].Partitions {
				if p.Leader < 0 || p.ErrorCode != 0 {
					ok = false
				}
			}
			if ok {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("create topic %s: not ready: %w", topic, ctx.Err())
}

// LogTail returns the last n bytes of the broker's server.log.
func (b *Broker) LogTail(n int) string {
	data, err := os.ReadFile(filepath.Join(b.dir, "server.log"))
	if err != nil {
		return err.Error()
	}
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return string(data)
}

// ToolCommand returns the command Apache Kafka's bin/ scripts run for the
// tool class (e.g. "org.apache.kafka.tools.ProducerPerformance", which
// kafka-producer-perf-test.sh runs with heap "512M"): java with -Xmx heap,
// StandardJVMFlags and Kafka's jars on the class path.
func ToolCommand(ctx context.Context, heap, class string, args ...string) (*exec.Cmd, error) {
	libs, err := Libs()
	if err != nil {
		return nil, err
	}
	jargs := append([]string{"-Xmx" + heap}, StandardJVMFlags...)
	jargs = append(jargs, "-cp", filepath.Join(libs, "*"), class)
	return exec.CommandContext(ctx, "java", append(jargs, args...)...), nil
}
