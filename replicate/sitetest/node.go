package sitetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Ports every node listens on, at its own address.
const (
	KafkaPort  = 9092
	HTTPPort   = 8080
	MQTTPort   = 1883
	GossipPort = 7946
)

// Node is one `runnel serve` process in its own network namespace, with
// its own data dir, restartable with the same arguments.
type Node struct {
	c *Cluster
	// Index is the node's number, 1-based; Name is "n<Index>".
	Index int
	Name  string
	// IP is the node's address on the cluster subnet.
	IP netip.Addr
	// DataDir is the node's --data-dir; LogPath collects its stdout and
	// stderr across restarts.
	DataDir string
	LogPath string

	dir          string
	env          []string
	startTimeout time.Duration

	mu     sync.Mutex // guards the fields below
	extra  []string   // arguments after the harness's own
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited
	starts int
	paused bool
}

// KafkaAddr, HTTPAddr, MQTTAddr and GossipAddr are the node's listener
// addresses (GossipAddr is where --gossip-addr should bind; the harness
// does not pass it).
func (n *Node) KafkaAddr() string  { return n.hostPort(KafkaPort) }
func (n *Node) HTTPAddr() string   { return n.hostPort(HTTPPort) }
func (n *Node) MQTTAddr() string   { return n.hostPort(MQTTPort) }
func (n *Node) GossipAddr() string { return n.hostPort(GossipPort) }

func (n *Node) hostPort(p uint16) string { return netip.AddrPortFrom(n.IP, p).String() }

// Netns is the name of the node's network namespace.
func (n *Node) Netns() string { return n.c.w.nodeNS(n.Index) }

func (n *Node) String() string { return n.Name }

// Args returns the full `runnel serve` argument list the node starts with.
func (n *Node) Args() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.argsLocked()
}

// Extra returns the arguments the node starts with after the harness's
// own (those of Options.Args or the last Start).
func (n *Node) Extra() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.extra...)
}

func (n *Node) argsLocked() []string {
	return append([]string{"serve",
		"--data-dir", n.DataDir,
		"--kafka-addr", n.KafkaAddr(),
		"--http-addr", n.HTTPAddr(),
		"--http-anonymous", "read", // the test reads /api/peers from outside the node's namespace
		// The test's clients (Kafka, MQTT) reach the nodes from the
		// bridge, not from loopback: the cluster's network is isolated.
		// A test of credentials passes --allow-remote-anonymous=false.
		"--allow-remote-anonymous",
		"--mqtt-addr", n.MQTTAddr(),
	}, n.extra...)
}

// Start starts the node with extra arguments (which replace those it had,
// and are kept for restarts) and waits until its Kafka listener answers.
func (n *Node) Start(t testing.TB, extra ...string) {
	t.Helper()
	if err := n.StartErr(extra...); err != nil {
		t.Fatalf("sitetest: start %s: %v\n--- %s log tail ---\n%s", n.Name, err, n.Name, n.LogTail(4000))
	}
}

// StartErr is Start returning the error, for tests that expect a start to
// fail (the process exits, or never answers).
func (n *Node) StartErr(extra ...string) error {
	n.mu.Lock()
	if n.cmd != nil {
		n.mu.Unlock()
		return fmt.Errorf("%s is already running (pid %d)", n.Name, n.cmd.Process.Pid)
	}
	n.extra = append([]string(nil), extra...)
	done, err := n.launchLocked()
	n.mu.Unlock()
	if err != nil {
		return err
	}
	return n.waitReady(done)
}

func (n *Node) launchLocked() (chan struct{}, error) {
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	n.starts++
	args := n.argsLocked()
	fmt.Fprintf(logf, "=== sitetest: start %d of %s at %s: %s\n", n.starts, n.Name, time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	// ip netns exec enters the namespace and execs the binary: the PID is
	// runnel's own, so signals reach it directly.
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Netns(), n.c.bin}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = childEnv(n.env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logf, "=== sitetest: %s exited: %v\n", n.Name, exitText(err))
		logf.Close()
		close(done)
	}()
	n.cmd, n.done, n.paused = cmd, done, false
	return done, nil
}

func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// waitReady polls the node's Kafka listener (ApiVersions) until it
// answers, the process exits, or the start timeout passes.
func (n *Node) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(n.startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited during startup")
		default:
		}
		if n.answers(time.Second) {
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited during startup")
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("kafka listener %s not answering after %v", n.KafkaAddr(), n.startTimeout)
}

// answers reports whether the Kafka listener answers ApiVersions within d.
func (n *Node) answers(d time.Duration) bool {
	conn, err := net.DialTimeout("tcp", n.KafkaAddr(), d)
	if err != nil {
		return false
	}
	conn.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr()), kgo.RequestRetries(0), kgo.DialTimeout(d))
	if err != nil {
		return false
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req := kmsg.NewPtrApiVersionsRequest()
	req.ClientSoftwareName, req.ClientSoftwareVersion = "sitetest", "0"
	_, err = cl.SeedBrokers()[0].Request(ctx, req)
	return err == nil
}

// Running reports whether the process is alive (a paused one is).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// PID is the process id, 0 when not running.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// signal sends sig and waits up to wait for the exit; past it the process
// is killed. It reports whether the process exited by itself and how.
func (n *Node) signal(sig syscall.Signal, wait time.Duration) (exited bool, state *os.ProcessState) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return true, nil
	}
	n.cmd.Process.Signal(sig)
	if n.paused && sig != syscall.SIGKILL {
		n.cmd.Process.Signal(syscall.SIGCONT)
	}
	select {
	case <-n.done:
		exited = true
	case <-time.After(wait):
		n.cmd.Process.Kill()
		<-n.done
	}
	state = n.cmd.ProcessState
	n.cmd, n.done, n.paused = nil, nil, false
	return exited, state
}

func (n *Node) kill() { n.signal(syscall.SIGKILL, 10*time.Second) }

// Kill9 crashes the node (SIGKILL) and waits until it is gone. Killing a
// node that is not running does nothing.
func (n *Node) Kill9(t testing.TB) { n.kill() }

// Stop sends SIGTERM and fails the test unless the node exits cleanly
// within 15 s (a paused node is resumed so it can).
func (n *Node) Stop(t testing.TB) {
	t.Helper()
	if !n.Running() {
		return
	}
	exited, state := n.signal(syscall.SIGTERM, 15*time.Second)
	if !exited {
		t.Errorf("sitetest: %s did not exit within 15s of SIGTERM\n%s", n.Name, n.LogTail(4000))
	} else if state != nil && !state.Success() {
		t.Errorf("sitetest: %s exited with %v after SIGTERM\n%s", n.Name, state, n.LogTail(4000))
	}
}

// Restart stops the node cleanly if it runs, then starts it with the same
// data dir and arguments. After Kill9 it is the restart after a crash.
func (n *Node) Restart(t testing.TB) {
	t.Helper()
	n.Stop(t)
	n.mu.Lock()
	extra := n.extra
	n.mu.Unlock()
	n.Start(t, extra...)
}

// RestartWiped kills the node if it runs, deletes its data dir (a replaced
// SD card) and starts it with the same arguments.
func (n *Node) RestartWiped(t testing.TB) {
	t.Helper()
	n.kill()
	if err := os.RemoveAll(n.DataDir); err != nil {
		t.Fatalf("sitetest: wipe %s: %v", n.DataDir, err)
	}
	n.mu.Lock()
	extra := n.extra
	n.mu.Unlock()
	n.Start(t, extra...)
}

// Pause stops the process with SIGSTOP (a hung box: its sockets stay open,
// nothing answers). Resume continues it.
func (n *Node) Pause(t testing.TB) { t.Helper(); n.stopCont(t, true) }

// Resume sends SIGCONT to a paused node.
func (n *Node) Resume(t testing.TB) { t.Helper(); n.stopCont(t, false) }

func (n *Node) stopCont(t testing.TB, pause bool) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		t.Fatalf("sitetest: %s is not running", n.Name)
	}
	sig := syscall.SIGCONT
	if pause {
		sig = syscall.SIGSTOP
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("sitetest: signal %v to %s: %v", sig, n.Name, err)
	}
	if pause {
		// SIGSTOP takes effect when the kernel next schedules each of
		// the process's threads: on a busy box a request sent right
		// after the signal could still be answered. Wait until every
		// thread is stopped.
		waitStopped(t, n.Name, n.cmd.Process.Pid)
	}
	n.paused = pause
}

// waitStopped waits (at most 5 s) until every thread of pid is in the
// stopped state ('T' in /proc/PID/task/TID/stat).
func waitStopped(t testing.TB, name string, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		stopped := len(tasks) > 0
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil {
				continue // the thread ended
			}
			// The state follows the ")" that ends the command name.
			if i := bytes.LastIndexByte(b, ')'); i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
				stopped = false
				break
			}
		}
		if stopped {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sitetest: %s (pid %d) not stopped 5 s after SIGSTOP", name, pid)
		}
		time.Sleep(time.Millisecond)
	}
}

// CutLink takes the node's link down (its veth, so both directions): it
// reaches nobody, not the test process either. The process keeps running.
func (n *Node) CutLink(t testing.TB) {
	t.Helper()
	if err := n.c.w.setLink(n.Index, false); err != nil {
		t.Fatalf("sitetest: %v", err)
	}
}

// HealLink brings the node's link back up.
func (n *Node) HealLink(t testing.TB) {
	t.Helper()
	if err := n.c.w.setLink(n.Index, true); err != nil {
		t.Fatalf("sitetest: %v", err)
	}
}

// LimitRate limits what reaches the node to rate (tc's syntax, e.g.
// "4mbit"), from its peers and the test process alike; "" lifts it.
func (n *Node) LimitRate(t testing.TB, rate string) {
	t.Helper()
	if err := n.c.w.setRate(n.Index, rate); err != nil {
		t.Fatalf("sitetest: %v", err)
	}
}

// CutService drops TCP between the node and addr (host:port, e.g. the
// upstream Kafka on Cluster.HostIP) at the node's end, silently: the
// node's uplink fails while its peers and the test process still reach
// it. It needs the nft tool.
func (n *Node) CutService(t testing.TB, addr string) {
	t.Helper()
	n.c.setService(t, n, addr, true)
}

// HealService undoes CutService.
func (n *Node) HealService(t testing.TB, addr string) {
	t.Helper()
	n.c.setService(t, n, addr, false)
}

// Client returns a franz-go client seeded with this node only, closed
// when the test ends (before the network is removed).
func (n *Node) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(n.KafkaAddr())}, opts...)...)
	if err != nil {
		t.Fatalf("sitetest: client for %s: %v", n.Name, err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Command returns a command that runs inside the node's network namespace
// (for example kcat or a probe that must start from the node).
func (n *Node) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Netns(), name}, args...)...)
}

// LogTail returns the last max bytes of the node's stdout and stderr.
func (n *Node) LogTail(max int) string {
	b, err := os.ReadFile(n.LogPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}
