package sitetest

import (
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// nftPortTable is the table a node's per-port cuts live in (apart from
// the pairwise cuts of Cut, so each can be healed alone).
const nftPortTable = "sitetest_ports"

// portCut is one pair of nodes (lower index first) and a TCP port.
type portCut struct {
	a, b int
	port uint16
}

// CutPort drops the TCP packets between a and each of others that go to
// or come from port on either side, in both directions, at both ends
// (nftables rules in the nodes' namespaces). Everything else still
// passes: CutPort(t, KafkaPort, n1, n2) stops n2's fetches from n1 (and
// n1's from n2) while their gossip goes on. Connections already open
// hang, as on a broken path. It needs the nft tool.
func (c *Cluster) CutPort(t testing.TB, port uint16, a *Node, others ...*Node) {
	t.Helper()
	c.setPortCut(t, true, port, a, others)
}

// HealPort removes the drops CutPort added for port between a and others.
func (c *Cluster) HealPort(t testing.TB, port uint16, a *Node, others ...*Node) {
	t.Helper()
	c.setPortCut(t, false, port, a, others)
}

func (c *Cluster) setPortCut(t testing.TB, cut bool, port uint16, a *Node, others []*Node) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		unavailableSkip(t, "the nft tool is missing (apt-get install nftables)")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.portCuts == nil {
		c.portCuts = map[portCut]bool{}
	}
	touched := map[int]bool{a.Index: true}
	for _, b := range others {
		if b == a {
			t.Fatalf("sitetest: cut %s from itself", a.Name)
		}
		k := portCut{min(a.Index, b.Index), max(a.Index, b.Index), port}
		if cut {
			c.portCuts[k] = true
		} else {
			delete(c.portCuts, k)
		}
		touched[b.Index] = true
	}
	for i := range touched {
		var rules []string
		for k := range c.portCuts {
			var peer int
			switch i {
			case k.a:
				peer = k.b
			case k.b:
				peer = k.a
			default:
				continue
			}
			ip := c.w.nodeIP(peer)
			rules = append(rules,
				fmt.Sprintf("in: ip saddr %s tcp dport %d drop", ip, k.port),
				fmt.Sprintf("in: ip saddr %s tcp sport %d drop", ip, k.port),
				fmt.Sprintf("out: ip daddr %s tcp dport %d drop", ip, k.port),
				fmt.Sprintf("out: ip daddr %s tcp sport %d drop", ip, k.port))
		}
		if err := c.w.setPortRules(i, rules); err != nil {
			t.Fatalf("sitetest: %v", err)
		}
	}
}

// setPortRules replaces node i's per-port drop rules ("in: <match>" or
// "out: <match>"); none removes the table.
func (w *netw) setPortRules(i int, rules []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\n", nftPortTable, nftPortTable)
	if len(rules) > 0 {
		sort.Strings(rules)
		var in, out []string
		for _, r := range rules {
			if m, ok := strings.CutPrefix(r, "in: "); ok {
				in = append(in, m)
			} else if m, ok := strings.CutPrefix(r, "out: "); ok {
				out = append(out, m)
			}
		}
		fmt.Fprintf(&b, "table inet %s {\n", nftPortTable)
		fmt.Fprintf(&b, "  chain in { type filter hook input priority -11; policy accept;\n")
		for _, m := range in {
			fmt.Fprintf(&b, "    %s\n", m)
		}
		b.WriteString("  }\n")
		fmt.Fprintf(&b, "  chain out { type filter hook output priority -11; policy accept;\n")
		for _, m := range out {
			fmt.Fprintf(&b, "    %s\n", m)
		}
		b.WriteString("  }\n}\n")
	}
	_, err := run(b.String(), "ip", "netns", "exec", w.nodeNS(i), "nft", "-f", "-")
	return err
}
