package replicate_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/runnel/runnel/replicate/sitetest"
)

// TestFailoverSoak: the three forwarding nodes of the failover tests
// under a steady load (each node 300 rec/s, acks=all, its own two
// partitions with two copies) through a randomized schedule of faults,
// one at a time: kill -9 and restart of a node, SIGSTOP and SIGCONT, a
// node's link cut (peers and upstream), a node cut from its peers only
// (uplink kept), its uplink cut only, and the upstream Kafka restarted.
// After the last fault everything heals and the checker reads the
// upstream: nothing acknowledged missing, nothing twice after dedup by
// the origin headers, no conflicts, order kept per origin partition; raw
// duplicates and the failover counters of every node are printed. Each
// origin partition ends with one forwarder, its origin.
//
// RUNNEL_SOAK=1 (make soak): 30 minutes. RUNNEL_FAILOVER_SOAK=<duration>
// sets the length (a short run: 3m). The seed is logged;
// RUNNEL_FAILOVER_SOAK_SEED replays a schedule.
var faultKinds = [...]string{"kill -9", "SIGSTOP", "link cut", "split", "uplink cut", "upstream restart"}

func TestFailoverSoak(t *testing.T) {
	t.Parallel()
	length := 30 * time.Minute
	if s := os.Getenv("RUNNEL_FAILOVER_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("RUNNEL_FAILOVER_SOAK=%q: %v", s, err)
		}
		length = d
	} else if os.Getenv("RUNNEL_SOAK") != "1" {
		t.Skip("soak test: set RUNNEL_SOAK=1 (make soak) or RUNNEL_FAILOVER_SOAK=3m")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("RUNNEL_FAILOVER_SOAK_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("fault schedule seed %d (RUNNEL_FAILOVER_SOAK_SEED), %v", seed, length)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))

	c, b := forwardingSite(t)
	waitAliveWithin(t, c.Node(1), 3, 60*time.Second)
	for _, n := range c.Nodes {
		createSensors(t, n, "sensors", 2, 2)
	}
	for _, n := range c.Nodes {
		for p := int32(0); p < 2; p++ {
			waitInSync(t, n, "sensors", p, 2)
		}
	}
	acks := &sitetest.Acks{}
	var loads []*loadRun
	for _, n := range c.Nodes {
		loads = append(loads, startLoad(t, n, acks, "sensors", 300))
	}
	defer func() {
		for _, l := range loads {
			if l != nil {
				l.stop(false)
			}
		}
	}()

	faults := map[string]int{}
	deadline := time.Now().Add(length)
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(5+rng.IntN(10)) * time.Second)
		n := c.Nodes[rng.IntN(len(c.Nodes))]
		others := []*sitetest.Node{}
		for _, o := range c.Nodes {
			if o != n {
				others = append(others, o)
			}
		}
		hold := time.Duration(5+rng.IntN(20)) * time.Second
		var what string
		kind := rng.IntN(len(faultKinds))
		switch kind {
		case 0:
			what = "kill -9 " + n.Name
			n.Kill9(t)
			time.Sleep(hold)
			n.Restart(t)
		case 1:
			what = "SIGSTOP " + n.Name
			n.Pause(t)
			time.Sleep(hold)
			n.Resume(t)
		case 2:
			what = "link cut " + n.Name
			n.CutLink(t)
			time.Sleep(hold)
			n.HealLink(t)
		case 3:
			what = "split " + n.Name + " from its peers"
			c.Cut(t, n, others...)
			time.Sleep(hold)
			c.Heal(t, n, others...)
		case 4:
			what = "uplink cut " + n.Name
			n.CutService(t, b.Addr())
			time.Sleep(hold)
			n.HealService(t, b.Addr())
		case 5:
			what = "upstream restart"
			b.Stop()
			time.Sleep(hold)
			b.Restart()
		}
		faults[faultKinds[kind]]++
		t.Logf("%s for %v (acknowledged so far: %d)", what, hold, acks.Len())
		waitAliveWithin(t, c.Node(1), 3, 90*time.Second)
	}
	for i, l := range loads {
		l.stop(true)
		loads[i] = nil
	}
	t.Logf("faults: %v", faults)
	rep := sitetest.CheckUpstreamUntil(t, 300*time.Second, []string{b.Addr()}, sitetest.AcksUpstream(acks), "central.sensors")
	t.Logf("soak totals: %v", rep)
	for _, n := range c.Nodes {
		if doc, err := peersOf(n); err == nil && doc.Failover != nil {
			fs := doc.Failover
			t.Logf("%s: %d takeovers, %d hand-backs, %d releases, %d overlaps, %d dropped on a stale view", n.Name, fs.Takeovers, fs.HandBacks, fs.Releases, fs.Overlaps, fs.StaleDrops)
		}
	}
	if !rep.OK() {
		t.Fatalf("upstream after the soak: %v", rep)
	}
	waitUntil(t, "one forwarder per origin partition, its origin", 120*time.Second, func() bool {
		for _, o := range c.Nodes {
			for p := int32(0); p < 2; p++ {
				n := 0
				for _, x := range c.Nodes {
					if forwarderOf(t, []*sitetest.Node{x}, o.Name, "sensors", p) != nil {
						n++
					}
				}
				if n != 1 || forwarderOf(t, []*sitetest.Node{o}, o.Name, "sensors", p) != o {
					return false
				}
			}
		}
		return true
	})
	fmt.Fprintf(os.Stderr, "failover soak: seed %d, %v, faults %v\n%v\n", seed, length, faults, rep)
}
