package sitetest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Names. Every namespace and root-namespace interface a cluster creates
// starts with namePrefix followed by its id: the creating process's PID (6
// hex digits) and a per-process counter (2 hex digits). A later run removes
// leftovers whose PID is no longer alive (a test binary killed before its
// cleanup ran); live runs of other processes are never touched.
const (
	namePrefix = "rnst"
	// hostIfHub is the hub-side name of the test process's veth.
	hostIfHub = "host"
	// nodeIf is the node-side name of a node's veth (in the node's
	// namespace, so the same name in every node).
	nodeIf = "eth0"
	// bridgeName is the bridge in the hub namespace.
	bridgeName = "br0"
	// hostOctet is the test process's address on the subnet (x.y.z.254).
	hostOctet = 254
	// nftTable is the table a node's pairwise cuts live in.
	nftTable = "sitetest"
)

var clusterSeq atomic.Uint32

// netw is the network of one cluster: a hub namespace holding the bridge,
// one namespace per node (veth eth0 to the bridge), and a veth from the
// root namespace into the bridge so the test process dials nodes directly.
type netw struct {
	id     string // 8 hex digits: PID and counter
	subnet netip.Prefix
	host   netip.Addr // test process's address on the subnet
	nodes  int
}

func (w *netw) hubNS() string           { return namePrefix + "-" + w.id + "-hub" }
func (w *netw) nodeNS(i int) string     { return fmt.Sprintf("%s-%s-n%d", namePrefix, w.id, i) }
func (w *netw) hostIf() string          { return namePrefix + w.id } // 12 chars, under IFNAMSIZ
func (w *netw) nodeIP(i int) netip.Addr { return addrIn(w.subnet, byte(i)) }

func addrIn(p netip.Prefix, last byte) netip.Addr {
	a := p.Addr().As4()
	a[3] = last
	return netip.AddrFrom4(a)
}

// run runs a command (ip, nft) bounded by 20 s, returning its combined
// output in the error.
func run(stdin string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// unavailable reports why namespaces cannot be made here, or "" when they
// can: root, the ip tool, and a namespace that can actually be created.
func unavailable() string {
	if os.Geteuid() != 0 {
		return "network namespaces need root (run the tests as root)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "the ip tool is missing (apt-get install iproute2)"
	}
	return ""
}

// lockNet serializes subnet choice across processes (other test binaries
// running at the same time) until the chosen subnet is on an interface.
func lockNet() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "runnel-sitetest.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("flock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// usedPrefixes lists every IPv4 prefix routed or addressed in the root
// namespace (all tables), which a test subnet must not overlap: a subnet
// that overlapped a real network would send test traffic out of the box.
func usedPrefixes() ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, args := range [][]string{{"-4", "-o", "route", "show", "table", "all"}, {"-4", "-o", "addr", "show"}} {
		out, err := run("", "ip", args...)
		if err != nil {
			return nil, err
		}
		for _, f := range strings.Fields(out) {
			if p, err := netip.ParsePrefix(f); err == nil {
				ps = append(ps, p.Masked())
			} else if a, err := netip.ParseAddr(f); err == nil && a.Is4() {
				ps = append(ps, netip.PrefixFrom(a, 32))
			}
		}
	}
	return ps, nil
}

// pickSubnet chooses a free 10.x.y.0/24 (x in 160..254).
func pickSubnet(used []netip.Prefix) (netip.Prefix, error) {
	for range 200 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(160 + rand.IntN(95)), byte(rand.IntN(256)), 0}), 24)
		free := true
		for _, u := range used {
			if u.Bits() > 0 && u.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, errors.New("no free 10.x.y.0/24 subnet found")
}

// newNetw creates the network for n nodes. On error it removes whatever it
// made.
func newNetw(n int) (w *netw, err error) {
	removeStale()
	w = &netw{id: fmt.Sprintf("%06x%02x", os.Getpid()&0xffffff, clusterSeq.Add(1)&0xff), nodes: n}
	defer func() {
		if err != nil {
			w.remove()
		}
	}()
	unlock, err := lockNet()
	if err != nil {
		return nil, err
	}
	defer unlock()
	used, err := usedPrefixes()
	if err != nil {
		return nil, err
	}
	if w.subnet, err = pickSubnet(used); err != nil {
		return nil, err
	}
	w.host = addrIn(w.subnet, hostOctet)
	hub := w.hubNS()
	steps := [][]string{
		{"netns", "add", hub},
		{"-n", hub, "link", "set", "lo", "up"},
		{"-n", hub, "link", "add", bridgeName, "type", "bridge"},
		{"-n", hub, "link", "set", bridgeName, "up"},
		{"link", "add", w.hostIf(), "type", "veth", "peer", "name", hostIfHub, "netns", hub},
		{"-n", hub, "link", "set", hostIfHub, "master", bridgeName, "up"},
		{"addr", "add", netip.PrefixFrom(w.host, 24).String(), "dev", w.hostIf()},
		{"link", "set", w.hostIf(), "up"},
	}
	for i := 1; i <= n; i++ {
		ns, hubIf := w.nodeNS(i), "n"+strconv.Itoa(i)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"link", "add", nodeIf, "netns", ns, "type", "veth", "peer", "name", hubIf, "netns", hub},
			[]string{"-n", hub, "link", "set", hubIf, "master", bridgeName, "up"},
			[]string{"-n", ns, "addr", "add", netip.PrefixFrom(w.nodeIP(i), 24).String(), "dev", nodeIf},
			[]string{"-n", ns, "link", "set", nodeIf, "up"},
		)
	}
	for _, s := range steps {
		if _, err := run("", "ip", s...); err != nil {
			return w, err
		}
	}
	return w, nil
}

// remove kills every process left in the cluster's namespaces and deletes
// the namespaces and the root-namespace veth. It reports the first error
// but tries every step.
func (w *netw) remove() error {
	names := []string{w.hubNS()}
	for i := 1; i <= w.nodes; i++ {
		names = append(names, w.nodeNS(i))
	}
	var first error
	for _, ns := range names {
		if err := removeNS(ns); err != nil && first == nil {
			first = err
		}
	}
	// Deleting the hub namespace deletes the veth's peer, and so the veth;
	// delete it by name too in case the hub was never made.
	if linkExists(w.hostIf()) {
		// (The kernel may still be deleting it with the hub: gone by
		// the time ip looks is not an error.)
		if _, err := run("", "ip", "link", "del", w.hostIf()); err != nil && linkExists(w.hostIf()) && first == nil {
			first = err
		}
	}
	return first
}

func linkExists(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}

func nsExists(ns string) bool {
	_, err := os.Stat("/var/run/netns/" + ns)
	return err == nil
}

// removeNS kills the processes inside ns (started by this harness) and
// deletes it.
func removeNS(ns string) error {
	if !nsExists(ns) {
		return nil
	}
	if out, err := run("", "ip", "netns", "pids", ns); err == nil {
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	_, err := run("", "ip", "netns", "del", ns)
	return err
}

// ownerAlive reports whether the process that made the named object (its
// PID is the first 6 hex digits after the prefix) still runs.
func ownerAlive(id string) bool {
	if len(id) < 6 {
		return true // not ours: leave it
	}
	pid, err := strconv.ParseInt(id[:6], 16, 64)
	if err != nil {
		return true
	}
	if int(pid) == os.Getpid()&0xffffff {
		return true
	}
	err = syscall.Kill(int(pid), 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// removeStale deletes namespaces, root-namespace interfaces and binary
// directories left by runs whose process is gone.
func removeStale() {
	if out, err := run("", "ip", "netns", "list"); err == nil {
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 0 || !strings.HasPrefix(f[0], namePrefix+"-") {
				continue
			}
			if !ownerAlive(strings.TrimPrefix(f[0], namePrefix+"-")) {
				removeNS(f[0])
			}
		}
	}
	if ents, err := os.ReadDir("/sys/class/net"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), namePrefix) && !ownerAlive(strings.TrimPrefix(e.Name(), namePrefix)) {
				run("", "ip", "link", "del", e.Name())
			}
		}
	}
	if ents, err := os.ReadDir(os.TempDir()); err == nil {
		for _, e := range ents {
			if rest, ok := strings.CutPrefix(e.Name(), binDirPrefix); ok && !ownerAlive(rest) {
				os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
			}
		}
	}
}

// setLink sets a node's veth down or up (in its namespace). Down takes the
// carrier away on both ends: nothing passes in either direction.
func (w *netw) setLink(i int, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	_, err := run("", "ip", "-n", w.nodeNS(i), "link", "set", "dev", nodeIf, state)
	return err
}

// setRate limits what reaches node i to rate (tc's syntax, e.g.
// "4mbit"; empty removes the limit): a token bucket on the bridge's end of
// its veth, whose egress is the node's ingress.
func (w *netw) setRate(i int, rate string) error {
	dev := "n" + strconv.Itoa(i)
	if rate == "" {
		_, err := run("", "ip", "netns", "exec", w.hubNS(), "tc", "qdisc", "del", "dev", dev, "root")
		return err
	}
	_, err := run("", "ip", "netns", "exec", w.hubNS(), "tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate, "burst", "64kb", "latency", "400ms")
	return err
}

// setBlocked replaces node i's drop rules: every packet to or from the
// given addresses is dropped silently in its namespace, and so is TCP to
// and from the given services (nftables, applied atomically). Empty lists
// remove the table.
func (w *netw) setBlocked(i int, peers []netip.Addr, services []netip.AddrPort) error {
	var b strings.Builder
	// Create-then-delete makes the script valid whether the table exists.
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\n", nftTable, nftTable)
	if len(peers)+len(services) > 0 {
		var in, out []string
		if len(peers) > 0 {
			ss := make([]string, len(peers))
			for k, p := range peers {
				ss[k] = p.String()
			}
			sort.Strings(ss)
			set := strings.Join(ss, ", ")
			in = append(in, fmt.Sprintf("ip saddr { %s } drop;", set))
			out = append(out, fmt.Sprintf("ip daddr { %s } drop;", set))
		}
		for _, s := range services {
			in = append(in, fmt.Sprintf("ip saddr %s tcp sport %d drop;", s.Addr(), s.Port()))
			out = append(out, fmt.Sprintf("ip daddr %s tcp dport %d drop;", s.Addr(), s.Port()))
		}
		fmt.Fprintf(&b, "table inet %s {\n", nftTable)
		fmt.Fprintf(&b, "  chain in { type filter hook input priority -10; policy accept; %s }\n", strings.Join(in, " "))
		fmt.Fprintf(&b, "  chain out { type filter hook output priority -10; policy accept; %s }\n", strings.Join(out, " "))
		b.WriteString("}\n")
	}
	_, err := run(b.String(), "ip", "netns", "exec", w.nodeNS(i), "nft", "-f", "-")
	return err
}
