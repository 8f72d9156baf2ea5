// runnel: upstream's TestMemberlist_Join_Cancel and
// TestMemberlist_Join_Cancel_Passive, with the one change that makes them
// deterministic. The node that is joined answers a push/pull with its own
// state before it merges the joiner's (net.go, handleConn: sendLocalState,
// then mergeRemoteState), so the joiner's Join can return before the
// joined node has called its merge or alive delegate. Upstream reads the
// joined node's delegate right after Join (and without a lock); on a
// loaded box that read comes first and the test fails. These versions wait
// up to 10 s for the delegate and read it under a mutex. test-upstream.sh
// skips the upstream two.

package memberlist

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

type waitedDelegate struct {
	mu      sync.Mutex
	calls   int
	ignore  string
	verdict error
}

func (d *waitedDelegate) NotifyMerge(nodes []*Node) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	return d.verdict
}

func (d *waitedDelegate) NotifyAlive(peer *Node) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if peer.Name == d.ignore {
		return nil
	}
	return d.verdict
}

// waitCalled waits until the delegate has been called at least once.
func (d *waitedDelegate) waitCalled(t *testing.T, who string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.mu.Lock()
		n := d.calls
		d.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: delegate not invoked within 10 s", who)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startPair(t *testing.T, set func(c *Config, d *waitedDelegate), verdict string) (m1, m2 *Memberlist, d1, d2 *waitedDelegate) {
	t.Helper()
	c1 := testConfig(t)
	d1 = &waitedDelegate{ignore: c1.Name, verdict: fmt.Errorf("%s", verdict)}
	set(c1, d1)
	m1, err := Create(c1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m1.Shutdown() })

	c2 := testConfig(t)
	c2.BindPort = m1.config.BindPort
	d2 = &waitedDelegate{ignore: c2.Name, verdict: fmt.Errorf("%s", verdict)}
	set(c2, d2)
	m2, err = Create(c2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m2.Shutdown() })
	return m1, m2, d1, d2
}

func TestRunnelJoinCancelWaitsForDelegates(t *testing.T) {
	m1, m2, d1, d2 := startPair(t, func(c *Config, d *waitedDelegate) { c.Merge = d }, "Custom merge canceled")

	num, err := m2.Join([]string{m1.config.Name + "/" + m1.config.BindAddr})
	if num != 0 {
		t.Fatalf("joined %d, want 0", num)
	}
	if err == nil || !strings.Contains(err.Error(), "Custom merge canceled") {
		t.Fatalf("unexpected err: %v", err)
	}
	d2.waitCalled(t, "joining node")
	d1.waitCalled(t, "joined node")
	if len(m2.Members()) != 1 {
		t.Fatalf("m2 should have 1 node: %v", m2.Members())
	}
	if len(m1.Members()) != 1 {
		t.Fatalf("m1 should have 1 node: %v", m1.Members())
	}
}

func TestRunnelJoinCancelPassiveWaitsForDelegates(t *testing.T) {
	m1, m2, d1, d2 := startPair(t, func(c *Config, d *waitedDelegate) { c.Alive = d }, "Custom alive canceled")

	num, err := m2.Join([]string{m1.config.Name + "/" + m1.config.BindAddr})
	if num != 1 {
		t.Fatalf("joined %d, want 1", num)
	}
	if err != nil {
		t.Fatal(err)
	}
	d2.waitCalled(t, "joining node")
	d1.waitCalled(t, "joined node")
	if len(m2.Members()) != 1 {
		t.Fatalf("m2 should have 1 node: %v", m2.Members())
	}
	if len(m1.Members()) != 1 {
		t.Fatalf("m1 should have 1 node: %v", m1.Members())
	}
}
