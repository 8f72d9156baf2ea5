package sitetest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BinaryEnv names the environment variable that points the harness at a
// prebuilt runnel binary instead of building ./cmd/runnel.
const BinaryEnv = "RUNNEL_SITETEST_BIN"

// binDirPrefix names the per-process directory the built binary lives in
// (under os.TempDir, followed by the PID in 6 hex digits).
const binDirPrefix = "runnel-sitetest-bin-"

// Options configure Start. The zero value starts three nodes.
type Options struct {
	// Nodes is the number of runnel serve processes; default 3.
	Nodes int
	// Args returns extra `runnel serve` arguments for node n, given all
	// nodes (their addresses are known: --join, --gossip-addr); they are
	// appended after the harness's own (--data-dir, --kafka-addr,
	// --http-addr, --mqtt-addr), so a repeated flag overrides those, and
	// they are the node's arguments for restarts too. Nil means none.
	Args func(n *Node, nodes []*Node) []string
	// Env is added to each process's environment. RUNNEL_* variables of
	// the test process are not passed on (they would configure every node).
	Env []string
	// NoStart creates the network and nodes without starting processes;
	// the test starts each with Node.Start (for example with --join
	// addresses it computes from the nodes' IPs).
	NoStart bool
	// StartTimeout bounds how long a start waits for the node's Kafka
	// listener to answer; default 30 s.
	StartTimeout time.Duration
}

// Cluster is N runnel nodes, each in its own network namespace, joined by
// a bridge that the test process is attached to as well.
type Cluster struct {
	t     testing.TB
	w     *netw
	bin   string
	dir   string
	Nodes []*Node

	mu       sync.Mutex                      // guards cuts, services and portCuts
	cuts     map[[2]int]bool                 // unordered node pairs (lower index first)
	services map[int]map[netip.AddrPort]bool // per node: services it cannot reach
	portCuts map[portCut]bool                // CutPort's pairs and ports
}

// Start builds (once per process) or finds the runnel binary, creates the
// network and starts the nodes. Everything is removed when the test ends,
// whatever its outcome; processes are killed by PID. Where namespaces
// cannot be made (not root, no ip tool) the test is skipped, or fails
// under CI=true.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if why := unavailable(); why != "" {
		unavailableSkip(t, why)
	}
	if opts.Nodes <= 0 {
		opts.Nodes = 3
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	bin := Binary(t)
	w, err := newNetw(opts.Nodes)
	if err != nil {
		unavailableSkip(t, fmt.Sprintf("cannot create network namespaces: %v", err))
	}
	c := &Cluster{t: t, w: w, bin: bin, dir: t.TempDir(), cuts: map[[2]int]bool{}, services: map[int]map[netip.AddrPort]bool{}}
	for i := 1; i <= opts.Nodes; i++ {
		n := &Node{c: c, Index: i, Name: "n" + strconv.Itoa(i), IP: w.nodeIP(i), env: opts.Env, startTimeout: opts.StartTimeout}
		n.dir = filepath.Join(c.dir, n.Name)
		n.DataDir = filepath.Join(n.dir, "data")
		n.LogPath = filepath.Join(c.dir, n.Name+".log")
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			w.remove()
			t.Fatal(err)
		}
		c.Nodes = append(c.Nodes, n)
	}
	if opts.Args != nil {
		for _, n := range c.Nodes {
			n.extra = opts.Args(n, c.Nodes)
		}
	}
	t.Cleanup(c.close)
	if opts.NoStart {
		return c
	}
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for k, n := range c.Nodes {
		wg.Go(func() { errs[k] = n.StartErr(n.extra...) })
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			t.Fatalf("start %s: %v", c.Nodes[k].Name, err)
		}
	}
	return c
}

func unavailableSkip(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("sitetest: %s (CI=true: not skipping)", why)
	}
	t.Skipf("sitetest: skipping: %s", why)
}

// close kills every node, dumps their logs when the test failed, and
// removes the network.
func (c *Cluster) close() {
	for _, n := range c.Nodes {
		n.kill()
	}
	if c.t.Failed() {
		for _, n := range c.Nodes {
			c.t.Logf("--- %s (%s) log tail ---\n%s", n.Name, n.IP, n.LogTail(6000))
		}
		if dir := os.Getenv(LogsEnv); dir != "" {
			c.keepLogs(dir)
		}
	}
	if err := c.w.remove(); err != nil {
		c.t.Errorf("sitetest: removing the network: %v", err)
	}
}

// LogsEnv names the environment variable of a directory where the whole
// node logs of a failed test are copied (<dir>/<test>/nN.log).
const LogsEnv = "RUNNEL_SITETEST_LOGS"

func (c *Cluster) keepLogs(dir string) {
	dst := filepath.Join(dir, strings.ReplaceAll(c.t.Name(), "/", "_"))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		c.t.Logf("sitetest: keep logs: %v", err)
		return
	}
	for _, n := range c.Nodes {
		if data, err := os.ReadFile(n.LogPath); err == nil {
			os.WriteFile(filepath.Join(dst, n.Name+".log"), data, 0o644)
		}
	}
	c.t.Logf("sitetest: node logs kept in %s", dst)
}

// Subnet is the cluster's private /24.
func (c *Cluster) Subnet() netip.Prefix { return c.w.subnet }

// HostIP is the test process's address on the subnet: nodes reach
// services of the test (listening on it or on 0.0.0.0) there.
func (c *Cluster) HostIP() netip.Addr { return c.w.host }

// Dir is the cluster's temp dir (node logs, node dirs).
func (c *Cluster) Dir() string { return c.dir }

// Node returns node i (1-based).
func (c *Cluster) Node(i int) *Node { return c.Nodes[i-1] }

// Cut drops every packet between a and each of others, in both directions,
// at both ends (nftables rules in the nodes' namespaces). Their links stay
// up: each keeps talking to the test process and to the remaining nodes.
// Processes keep running. It needs the nft tool (apt-get install nftables).
func (c *Cluster) Cut(t testing.TB, a *Node, others ...*Node) {
	t.Helper()
	c.setCut(t, true, a, others)
}

// Heal removes the drops Cut added between a and each of others.
func (c *Cluster) Heal(t testing.TB, a *Node, others ...*Node) {
	t.Helper()
	c.setCut(t, false, a, others)
}

func (c *Cluster) setCut(t testing.TB, cut bool, a *Node, others []*Node) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		unavailableSkip(t, "the nft tool is missing (apt-get install nftables)")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	touched := map[int]bool{a.Index: true}
	for _, b := range others {
		if b == a {
			t.Fatalf("sitetest: cut %s from itself", a.Name)
		}
		k := [2]int{min(a.Index, b.Index), max(a.Index, b.Index)}
		if cut {
			c.cuts[k] = true
		} else {
			delete(c.cuts, k)
		}
		touched[b.Index] = true
	}
	for i := range touched {
		if err := c.applyRulesLocked(i); err != nil {
			t.Fatalf("sitetest: %v", err)
		}
	}
}

// applyRulesLocked writes node i's drop rules from cuts and services.
func (c *Cluster) applyRulesLocked(i int) error {
	var peers []netip.Addr
	for k := range c.cuts {
		switch i {
		case k[0]:
			peers = append(peers, c.w.nodeIP(k[1]))
		case k[1]:
			peers = append(peers, c.w.nodeIP(k[0]))
		}
	}
	var svcs []netip.AddrPort
	for s := range c.services[i] {
		svcs = append(svcs, s)
	}
	sort.Slice(svcs, func(a, b int) bool { return svcs[a].String() < svcs[b].String() })
	return c.w.setBlocked(i, peers, svcs)
}

// setService blocks or unblocks TCP between node n and addr (host:port).
func (c *Cluster) setService(t testing.TB, n *Node, addr string, block bool) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		unavailableSkip(t, "the nft tool is missing (apt-get install nftables)")
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatalf("sitetest: service address %q: %v", addr, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.services[n.Index] == nil {
		c.services[n.Index] = map[netip.AddrPort]bool{}
	}
	if block {
		c.services[n.Index][ap] = true
	} else {
		delete(c.services[n.Index], ap)
	}
	if err := c.applyRulesLocked(n.Index); err != nil {
		t.Fatalf("sitetest: %v", err)
	}
}

// built is the runnel binary built for this process.
var built struct {
	once sync.Once
	path string
	err  error
}

// Binary returns the runnel binary the nodes run: $RUNNEL_SITETEST_BIN, or
// ./cmd/runnel built once per test process (CGO_ENABLED=0) into a
// directory that Main removes at the end (a later run removes it if Main
// was not used).
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(BinaryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("sitetest: %s=%s: %v", BinaryEnv, p, err)
		}
		return p
	}
	built.once.Do(func() {
		dir := binDir()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			built.err = err
			return
		}
		p := filepath.Join(dir, "runnel")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", p, "github.com/runnel/runnel/cmd/runnel")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build ./cmd/runnel: %v\n%s", err, out)
			return
		}
		built.path = p
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

func binDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("%s%06x", binDirPrefix, os.Getpid()&0xffffff))
}

// Main runs the tests and removes the binary built for them. Use it from
// TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(sitetest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	os.RemoveAll(binDir())
	return code
}

// childEnv is the environment of a node: the test's without RUNNEL_*
// variables, plus extra.
func childEnv(extra []string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return len(kv) > 7 && kv[:7] == "RUNNEL_"
	})
	return append(env, extra...)
}
