package replicate_test

// Forwarding failover scenarios: three `runnel serve` processes in
// network namespaces forward `sensors*` to a real Apache Kafka broker
// (kafkatest on the test process's address); the upstream checker judges
// what the central side received by the origin headers.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/replicate"
	"github.com/runnel/runnel/replicate/sitetest"
	"github.com/runnel/runnel/sync/kafka/kafkatest"
)

// window is the test route's max-in-flight: the most a crash re-sends.
const window = 2000

// forwardingSite starts Apache Kafka on the host address and three nodes
// that join each other (gossip key) and forward sensors* to it as
// central.<topic>; extra are more serve flags of every node.
func forwardingSite(t *testing.T, extra ...string) (*sitetest.Cluster, *kafkatest.Broker) {
	t.Helper()
	if testing.Short() {
		t.Skip("site test: skipped with -short")
	}
	c := sitetest.Start(t, sitetest.Options{Nodes: 3, NoStart: true})
	b := kafkatest.StartOpts(t, kafkatest.Options{Host: c.HostIP().String(), Partitions: 2})
	b.CreateTopic("central.sensors", 2)
	startForwarding(t, c, fmt.Sprintf("{kind: kafka, brokers: [%q]}", b.Addr()), "central.{topic}", extra...)
	return c, b
}

// startForwarding starts c's nodes, joined (gossip key), each with one
// route sending sensors* to upstream (a YAML mapping) under target, its
// window small enough that the duplicate bounds of the tests mean
// something.
func startForwarding(t testing.TB, c *sitetest.Cluster, upstream, target string, extra ...string) {
	t.Helper()
	key := filepath.Join(t.TempDir(), "site.key")
	if err := os.WriteFile(key, []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logFailover(t, c)
	conf := filepath.Join(t.TempDir(), "runnel.yaml")
	yaml := fmt.Sprintf("upstreams:\n  default: %s\nroutes:\n  - {name: sensors, topics: [\"sensors*\"], target: %q, max-in-flight: %d}\n", upstream, target, window)
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		args := []string{"--config", conf, "--node-id", n.Name, "--gossip-addr", n.GossipAddr(), "--gossip-key-file", key,
			"--replica-lag-time-max", "3s", "--mqtt-addr", "", "--default-partitions", "2"}
		args = append(args, extra...)
		for _, o := range c.Nodes {
			if o != n {
				args = append(args, "--join", o.GossipAddr())
			}
		}
		n.Start(t, args...)
	}
}

type peersFailover struct {
	Peers []struct {
		NodeID string `json:"node_id"`
		State  string `json:"state"`
	} `json:"peers"`
	Partitions []struct {
		Topic     string   `json:"topic"`
		Partition int32    `json:"partition"`
		InSync    []string `json:"in_sync"`
	} `json:"partitions"`
	Failover *replicate.FailoverStatus `json:"failover"`
}

func peersOf(n *sitetest.Node) (peersFailover, error) { return peersAs[peersFailover](n) }

// waitUntil is waitFor with a fixed description of what it waits for.
func waitUntil(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	waitFor(t, timeout, cond, func() string { return "waiting for " + what })
}

// logFailover logs every node's /api/peers failover section when the test
// failed.
func logFailover(t testing.TB, c *sitetest.Cluster) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, n := range c.Nodes {
			if doc, err := peersOf(n); err == nil && doc.Failover != nil {
				b, _ := json.MarshalIndent(doc.Failover, "", "  ")
				t.Logf("%s failover: %s", n.Name, b)
			}
		}
	})
}

// createSensors creates topic on n with partitions and replication
// factor rf.
func createSensors(t testing.TB, n *sitetest.Node, topic string, partitions int32, rf int16) {
	t.Helper()
	cl := n.Client(t)
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, rf
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("create %s on %s: %v", topic, n.Name, err)
	}
}

// produceN writes n records with acks=all to node's topic (round robin
// over its partitions, unique values) and adds the acknowledged ones.
func produceN(t testing.TB, node *sitetest.Node, acks *sitetest.Acks, topic string, n int, tag string) {
	t.Helper()
	cl := node.Client(t, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const chunk = 5000
	for i := 0; i < n; i += chunk {
		recs := make([]*kgo.Record, 0, chunk)
		for j := i; j < min(n, i+chunk); j++ {
			recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "%s-%s-%d", node.Name, tag, j)})
		}
		for _, r := range cl.ProduceSync(ctx, recs...) {
			if r.Err != nil {
				t.Fatalf("produce to %s: %v", node.Name, r.Err)
			}
			acks.Add(node, r.Record)
		}
	}
}

// upstreamOf counts the records of origin node that reached the upstream
// topic.
func upstreamOf(t testing.TB, b *kafkatest.Broker, node string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recs, err := sitetest.ReadUpstream(ctx, []string{b.Addr()}, "central.sensors")
	if err != nil {
		t.Logf("read upstream: %v", err)
		return 0
	}
	n := 0
	for _, r := range recs {
		if r.HasOrigin && r.Origin.Node == node {
			n++
		}
	}
	return n
}

// TestFailoverKill9: n1 forwards part of its data, loses its uplink and
// builds a backlog of 100,000 records (acks=all, so every record is also
// on a peer), then is
// killed (-9). A survivor holding the copy forwards n1's partitions from
// n1's replicated cursor, as n1 (origin headers, origin offsets): the
// central side misses nothing acknowledged, has nothing twice after dedup
// by the origin headers, and order per origin partition is kept. n1 then
// restarts with its uplink back and takes its partitions back from where
// the survivors stood.
func TestFailoverKill9(t *testing.T) {
	t.Parallel()
	backlog := 100000 // the scenario; RUNNEL_FAILOVER_BACKLOG overrides it
	if s := os.Getenv("RUNNEL_FAILOVER_BACKLOG"); s != "" {
		backlog, _ = strconv.Atoi(s)
	}
	c, b := forwardingSite(t)
	n1, n2, n3 := c.Node(1), c.Node(2), c.Node(3)
	waitUntil(t, "three alive members", 30*time.Second, func() bool {
		doc, err := peersOf(n1)
		alive := 0
		for _, p := range doc.Peers {
			if p.State == "alive" {
				alive++
			}
		}
		return err == nil && alive == 3
	})
	for _, n := range c.Nodes {
		createSensors(t, n, "sensors", 2, 2)
	}
	for p := int32(0); p < 2; p++ {
		waitInSync(t, n1, "sensors", p, 2)
	}
	acks := &sitetest.Acks{}
	produceN(t, n1, acks, "sensors", 1000, "before")
	produceN(t, n2, acks, "sensors", 1000, "before")
	produceN(t, n3, acks, "sensors", 1000, "before")
	waitUntil(t, "n1 forwarding its first records", 60*time.Second, func() bool { return upstreamOf(t, b, "n1") >= 1000 })

	// n1's uplink fails; its backlog grows (on its copies too).
	n1.CutService(t, b.Addr())
	produceN(t, n1, acks, "sensors", backlog, "backlog")
	produceN(t, n2, acks, "sensors", 1000, "backlog")
	time.Sleep(2 * time.Second) // cursors saved and mirrored (one flush)
	killed := time.Now()
	n1.Kill9(t)

	// A survivor takes over: n1's records keep arriving.
	before := upstreamOf(t, b, "n1")
	var first time.Duration
	waitUntil(t, "a survivor forwarding n1's backlog", 60*time.Second, func() bool {
		if upstreamOf(t, b, "n1") > before {
			first = time.Since(killed)
			return true
		}
		return false
	})
	t.Logf("kill -9 to the first record of n1 forwarded by a survivor: %v", first.Round(10*time.Millisecond))
	rep := sitetest.CheckUpstreamUntil(t, 120*time.Second, []string{b.Addr()}, sitetest.AcksUpstream(acks), "central.sensors")
	t.Logf("after the takeover: %v", rep)
	if !rep.OK() {
		t.Fatalf("upstream after n1's kill -9: %v", rep)
	}
	takeovers := uint64(0)
	for _, n := range []*sitetest.Node{n2, n3} {
		doc, err := peersOf(n)
		if err != nil || doc.Failover == nil {
			t.Fatalf("%s /api/peers: %v %+v", n.Name, err, doc)
		}
		takeovers += doc.Failover.Takeovers
		for _, d := range doc.Failover.Duties {
			if d.Origin == "n1" {
				t.Logf("%s forwards n1's %s/%d (epoch %d, %s since %v)", n.Name, d.Topic, d.Partition, d.Epoch, d.Why, d.Since.Format(time.TimeOnly))
			}
		}
	}
	if takeovers < 2 {
		t.Fatalf("survivors report %d takeovers of n1's 2 partitions", takeovers)
	}
	checkShowsTakeover(t, forwarderOf(t, []*sitetest.Node{n2, n3}, "n1", "sensors", 0), "n1")
	// The survivors resumed from n1's replicated cursor: at most one
	// cursor save (half the window) is sent again.
	for p := int32(0); p < 2; p++ {
		pr := rep.Partition(sitetest.OriginPartition{Node: "n1", Topic: "sensors", Partition: p})
		if pr.RawDuplicates > window/2 {
			t.Errorf("n1:sensors/%d: %d raw duplicates: the survivor did not resume from the replicated cursor", p, pr.RawDuplicates)
		}
	}

	// n1 comes back with its uplink: it takes its partitions back once it
	// knows where the survivors stood, and forwards what it gets next.
	n1.HealService(t, b.Addr())
	n1.Restart(t)
	waitUntil(t, "n1 forwarding its own partitions again", 60*time.Second, func() bool {
		doc, err := peersOf(n1)
		if err != nil || doc.Failover == nil {
			return false
		}
		own := 0
		for _, d := range doc.Failover.Duties {
			if d.Origin == "n1" && d.Topic == "sensors" && d.State == "forwarding" {
				own++
			}
		}
		return own == 2
	})
	produceN(t, n1, acks, "sensors", 2000, "after")
	rep = sitetest.CheckUpstreamUntil(t, 120*time.Second, []string{b.Addr()}, sitetest.AcksUpstream(acks), "central.sensors")
	t.Logf("after the hand-back: %v", rep)
	if !rep.OK() {
		t.Fatalf("upstream after n1's return: %v", rep)
	}
	for _, n := range c.Nodes {
		t.Logf("%s routes: %s", n.Name, httpGet(n, "/api/routes"))
	}
	// Raw duplicates stay within the documented windows: what n1 had in
	// flight when it was killed (at most the route's window; a process
	// killed with its uplink cut leaves those bytes in orphaned kernel
	// sockets, delivered when the path heals), plus one cursor save of
	// the survivor's and of n1's at the hand-back.
	for p := int32(0); p < 2; p++ {
		pr := rep.Partition(sitetest.OriginPartition{Node: "n1", Topic: "sensors", Partition: p})
		if pr.RawDuplicates > 2*window {
			t.Errorf("n1:sensors/%d: %d raw duplicates after the hand-back (window %d)", p, pr.RawDuplicates, window)
		}
	}
}

// checkShowsTakeover fails the test unless /metrics, /api/routes and
// `runnel status` of n say that it forwards origin's partitions as a
// takeover, since when, and count the takeover.
func checkShowsTakeover(t *testing.T, n *sitetest.Node, origin string) {
	t.Helper()
	if n == nil {
		t.Fatalf("no node forwards %s's partition", origin)
	}
	metrics := httpGet(n, "/metrics")
	var since, count bool
	for _, l := range strings.Split(metrics, "\n") {
		since = since || strings.HasPrefix(l, "runnel_failover_duty_since_timestamp_seconds{") &&
			strings.Contains(l, `origin="`+origin+`"`) && strings.Contains(l, `why="takeover"`) && strings.Contains(l, `state="forwarding"`)
		count = count || strings.HasPrefix(l, "runnel_failover_takeovers_total ") && !strings.HasSuffix(l, " 0")
	}
	if !since || !count {
		t.Errorf("%s /metrics: duty since of %s's takeover %v, takeovers counted %v:\n%s", n.Name, origin, since, count, grepLines(metrics, "runnel_failover"))
	}
	var routes []struct {
		Origins []struct {
			Origin, Why string
			Since       time.Time
		}
	}
	if err := json.Unmarshal([]byte(httpGet(n, "/api/routes")), &routes); err != nil {
		t.Fatalf("%s /api/routes: %v", n.Name, err)
	}
	found := false
	for _, r := range routes {
		for _, o := range r.Origins {
			found = found || o.Origin == origin && o.Why == "takeover" && !o.Since.IsZero()
		}
	}
	if !found {
		t.Errorf("%s /api/routes does not list %s's partitions as a takeover: %s", n.Name, origin, httpGet(n, "/api/routes"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, sitetest.Binary(t), "status", "-b", n.KafkaAddr(), "--http", n.HTTPAddr()).CombinedOutput()
	if err != nil {
		t.Fatalf("runnel status: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("takeover")) || !bytes.Contains(out, []byte(`"origin":"`+origin+`"`)) || !bytes.Contains(out, []byte("takeovers: ")) {
		t.Errorf("runnel status on %s does not show the takeover of %s's partitions:\n%s", n.Name, origin, out)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// httpGet returns the body of an HTTP GET of path on n (or the error).
func httpGet(n *sitetest.Node, path string) string {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + n.HTTPAddr() + path)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

// forwarderOf returns the node (among nodes) whose failover status says
// it forwards origin's topic/partition, or nil.
func forwarderOf(t testing.TB, nodes []*sitetest.Node, origin, topic string, partition int32) *sitetest.Node {
	t.Helper()
	for _, n := range nodes {
		doc, err := peersOf(n)
		if err != nil || doc.Failover == nil {
			continue
		}
		for _, d := range doc.Failover.Duties {
			if d.Origin == origin && d.Topic == topic && d.Partition == partition && d.State == "forwarding" {
				return n
			}
		}
	}
	return nil
}

// checkWindow fails the test when an origin partition of node was sent
// more than twice the route's window again.
func checkWindow(t testing.TB, rep *sitetest.UpstreamReport, node string) {
	t.Helper()
	for p := int32(0); p < 2; p++ {
		pr := rep.Partition(sitetest.OriginPartition{Node: node, Topic: "sensors", Partition: p})
		if pr.RawDuplicates > 2*window {
			t.Errorf("%s:sensors/%d: %d raw duplicates (window %d)", node, p, pr.RawDuplicates, window)
		}
	}
}

// TestFailoverSurvivorDies: with three copies of every partition, n1 is
// killed with a backlog; the survivor that takes a partition over is
// killed in turn while it drains it, and the third node takes over from
// the latest replicated cursor (the first survivor's, read from its copy
// of that survivor's cursor log).
func TestFailoverSurvivorDies(t *testing.T) {
	t.Parallel()
	c, b := forwardingSite(t)
	n1, n2, n3 := c.Node(1), c.Node(2), c.Node(3)
	waitAliveWithin(t, n1, 3, 60*time.Second)
	for _, n := range c.Nodes {
		createSensors(t, n, "sensors", 2, 3)
	}
	for p := int32(0); p < 2; p++ {
		waitInSync(t, n1, "sensors", p, 3)
		waitInSync(t, n2, "sensors", p, 3)
	}
	acks := &sitetest.Acks{}
	produceN(t, n1, acks, "sensors", 1000, "before")
	waitUntil(t, "n1 forwarding", 60*time.Second, func() bool { return upstreamOf(t, b, "n1") >= 1000 })
	n1.CutService(t, b.Addr())
	produceN(t, n1, acks, "sensors", 40000, "backlog")
	produceN(t, n2, acks, "sensors", 1000, "backlog")
	time.Sleep(2 * time.Second)
	n1.Kill9(t)
	var first *sitetest.Node
	waitUntil(t, "a survivor forwarding n1's partition 0", 60*time.Second, func() bool {
		first = forwarderOf(t, []*sitetest.Node{n2, n3}, "n1", "sensors", 0)
		return first != nil
	})
	waitUntil(t, "n1's records arriving again", 60*time.Second, func() bool { return upstreamOf(t, b, "n1") > 1000 })
	first.Kill9(t)
	killedAt := time.Now()
	third := n2
	if first == n2 {
		third = n3
	}
	waitUntil(t, third.Name+" taking n1's partition 0 over", 60*time.Second, func() bool {
		return forwarderOf(t, []*sitetest.Node{third}, "n1", "sensors", 0) == third
	})
	t.Logf("%s killed during its takeover; %s took over after %v", first.Name, third.Name, time.Since(killedAt).Round(10*time.Millisecond))
	rep := sitetest.CheckUpstreamUntil(t, 120*time.Second, []string{b.Addr()}, sitetest.AcksUpstream(acks), "central.sensors")
	t.Logf("after two takeovers: %v", rep)
	if !rep.OK() {
		t.Fatalf("upstream: %v", rep)
	}
	checkWindow(t, rep, "n1")
}

// TestFailoverPause: n1 is stopped (SIGSTOP) for 20 s with a backlog: the
// site declares it failed and a survivor forwards its partitions. When n1
// resumes it notices the pause, sends nothing more until it has read the
// takeover, then takes its partitions back from where the survivors
// stood. The overlap is bounded (what n1 had in flight) and counted.
func TestFailoverPause(t *testing.T) {
	t.Parallel()
	c, b := forwardingSite(t)
	n1, n2, n3 := c.Node(1), c.Node(2), c.Node(3)
	waitAliveWithin(t, n1, 3, 60*time.Second)
	for _, n := range c.Nodes {
		createSensors(t, n, "sensors", 2, 2)
	}
	for p := int32(0); p < 2; p++ {
		waitInSync(t, n1, "sensors", p, 2)
	}
	acks := &sitetest.Acks{}
	produceN(t, n1, acks, "sensors", 1000, "before")
	waitUntil(t, "n1 forwarding", 60*time.Second, func() bool { return upstreamOf(t, b, "n1") >= 1000 })
	n1.CutService(t, b.Addr())
	produceN(t, n1, acks, "sensors", 20000, "backlog")
	time.Sleep(2 * time.Second)
	n1.Pause(t)
	paused := time.Now()
	waitUntil(t, "survivors forwarding n1's partitions", 60*time.Second, func() bool {
		return forwarderOf(t, []*sitetest.Node{n2, n3}, "n1", "sensors", 0) != nil &&
			forwarderOf(t, []*sitetest.Node{n2, n3}, "n1", "sensors", 1) != nil
	})
	n1.HealService(t, b.Addr()) // what n1 had in flight may now get through
	time.Sleep(time.Until(paused.Add(20 * time.Second)))
	n1.Resume(t)
	// Right after SIGCONT n1 still shows the duties it held before the
	// pause; it drops them on a stale view and takes them back once its
	// copies of the peers' cursor logs caught up (at most
	// replication.failover-wait-max later, 30 s): wait for the hand-backs,
	// not for that state.
	waitUntil(t, "n1 taking its own partitions back", 90*time.Second, func() bool {
		doc, err := peersOf(n1)
		return err == nil && doc.Failover != nil && doc.Failover.HandBacks >= 2 &&
			forwarderOf(t, []*sitetest.Node{n1}, "n1", "sensors", 0) == n1 &&
			forwarderOf(t, []*sitetest.Node{n1}, "n1", "sensors", 1) == n1
	})
	produceN(t, n1, acks, "sensors", 2000, "after")
	rep := sitetest.CheckUpstreamUntil(t, 120*time.Second, []string{b.Addr()}, sitetest.AcksUpstream(acks), "central.sensors")
	t.Logf("after the pause: %v", rep)
	if !rep.OK() {
		t.Fatalf("upstream: %v", rep)
	}
	checkWindow(t, rep, "n1")
	doc, err := peersOf(n1)
	if err != nil || doc.Failover == nil {
		t.Fatalf("n1 /api/peers: %v", err)
	}
	fs := doc.Failover
	t.Logf("n1 after the pause: %d overlaps, %d dropped on a stale view, %d hand-backs", fs.Overlaps, fs.StaleDrops, fs.HandBacks)
	if fs.HandBacks < 2 {
		t.Errorf("n1 took %d partitions back, want 2", fs.HandBacks)
	}
	if fs.StaleDrops+fs.Overlaps == 0 {
		t.Errorf("n1 noticed neither its pause nor the takeover")
	}
}

// TestFailoverUpstreamDown: the upstream is down when n1 dies; the
// survivors take its partitions over and wait; when the upstream comes
// back they drain n1's backlog with their own: nothing is lost.
func TestFailoverUpstreamDown(t *testing.T) {
	t.Parallel()
	c, b := forwardingSite(t)
	n1, n2, n3 := c.Node(1), c.Node(2), c.Node(3)
	waitAliveWithin(t, n1, 3, 60*time.Second)
	for _, n := range c.Nodes {
		createSensors(t, n, "sensors", 2, 2)
	}
	for p := int32(0); p < 2; p++ {
		waitInSync(t, n1, "sensors", p, 2)
	}
	acks := &sitetest.Acks{}
	produceN(t, n1, acks, "sensors", 1000, "before")
	waitUntil(t, "n1 forwarding", 60*time.Second, func() bool { return upstreamOf(t, b, "n1") >= 1000 })
	b.Stop()
	produceN(t, n1, acks, "sensors", 10000, "backlog")
	produceN(t, n2, acks, "sensors", 2000, "backlog")
	time.Sleep(2 * time.Second)
	n1.Kill9(t)
	waitUntil(t, "survivors holding n1's partitions", 60*time.Second, func() bool {
		return forwarderOf(t, []*sitetest.Node{n2, n3}, "n1", "sensors", 0) != nil &&
			forwarderOf(t, []*sitetest.Node{n2, n3}, "n1", "sensors", 1) != nil
	})
	produceN(t, n3, acks, "sensors", 2000, "during")
	b.Restart()
	rep := sitetest.CheckUpstreamUntil(t, 120*time.Second, []string{b.Addr()}, sitetest.AcksUpstream(acks), "central.sensors")
	t.Logf("after the upstream came back: %v", rep)
	if !rep.OK() {
		t.Fatalf("upstream: %v", rep)
	}
	checkWindow(t, rep, "n1")
}

// TestFailoverSplit: n1 is cut off from its peers but keeps its uplink.
// Both sides forward n1's partitions for a while (n1 its own, a survivor
// its copy up to where the copy stopped), and n1 the copies it holds of
// the others: the central side's view after dedup by the origin headers
// is exact. Healed, one forwarder per origin partition remains: its
// origin.
func TestFailoverSplit(t *testing.T) {
	t.Parallel()
	c, b := forwardingSite(t)
	n1, n2, n3 := c.Node(1), c.Node(2), c.Node(3)
	waitAliveWithin(t, n1, 3, 60*time.Second)
	for _, n := range c.Nodes {
		createSensors(t, n, "sensors", 2, 2)
	}
	for _, n := range c.Nodes {
		for p := int32(0); p < 2; p++ {
			waitInSync(t, n, "sensors", p, 2)
		}
	}
	acks := &sitetest.Acks{}
	for _, n := range c.Nodes {
		produceN(t, n, acks, "sensors", 1000, "before")
	}
	waitUntil(t, "everything forwarded", 60*time.Second, func() bool { return upstreamOf(t, b, "n1") >= 1000 })
	c.Cut(t, n1, n2, n3)
	waitUntil(t, "the survivors forwarding n1's partitions", 60*time.Second, func() bool {
		return forwarderOf(t, []*sitetest.Node{n2, n3}, "n1", "sensors", 0) != nil &&
			forwarderOf(t, []*sitetest.Node{n2, n3}, "n1", "sensors", 1) != nil
	})
	for _, n := range c.Nodes {
		produceN(t, n, acks, "sensors", 3000, "split")
	}
	time.Sleep(3 * time.Second)
	c.Heal(t, n1, n2, n3)
	waitUntil(t, "one forwarder per origin partition, its origin", 90*time.Second, func() bool {
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
	for _, n := range c.Nodes {
		produceN(t, n, acks, "sensors", 1000, "after")
	}
	rep := sitetest.CheckUpstreamUntil(t, 120*time.Second, []string{b.Addr()}, sitetest.AcksUpstream(acks), "central.sensors")
	t.Logf("after the split healed: %v", rep)
	if !rep.OK() {
		t.Fatalf("upstream: %v", rep)
	}
	for _, n := range c.Nodes {
		if doc, err := peersOf(n); err == nil && doc.Failover != nil {
			t.Logf("%s: %d takeovers, %d hand-backs, %d releases, %d overlaps", n.Name, doc.Failover.Takeovers, doc.Failover.HandBacks, doc.Failover.Releases, doc.Failover.Overlaps)
		}
	}
}

// TestFailoverRestoredCursors: n1 forwards its whole backlog, then comes
// back with a wiped data dir and the same node id (a replaced SD card).
// It takes back its partitions from its copies and its forwarding
// cursors from its peers' copies of its cursor log, so it goes on from
// where it stood upstream: at most one cursor save is sent again, not the
// whole backlog. Then it is replaced again while a survivor forwards its
// backlog, and takes its partitions back from where the survivor stood;
// its new producers get producer ids above those its restored batches
// carry (its id counter was lost with meta.db), so none of their records
// is answered as a duplicate and dropped.
func TestFailoverRestoredCursors(t *testing.T) {
	t.Parallel()
	const backlog = 20000
	c, b := forwardingSite(t)
	n1 := c.Node(1)
	waitAliveWithin(t, n1, 3, 60*time.Second)
	createSensors(t, n1, "sensors", 2, 2)
	for p := int32(0); p < 2; p++ {
		waitInSync(t, n1, "sensors", p, 2)
	}
	acks := &sitetest.Acks{}
	produceN(t, n1, acks, "sensors", backlog, "before")
	waitUntil(t, "n1's backlog forwarded", 90*time.Second, func() bool { return upstreamOf(t, b, "n1") >= backlog })
	time.Sleep(3 * time.Second) // the last cursor save in the cursor log, mirrored

	n1.RestartWiped(t)
	waitUntil(t, "n1 forwarding its own partitions again", 90*time.Second, func() bool {
		return forwarderOf(t, []*sitetest.Node{n1}, "n1", "sensors", 0) == n1 &&
			forwarderOf(t, []*sitetest.Node{n1}, "n1", "sensors", 1) == n1
	})
	produceN(t, n1, acks, "sensors", 1000, "after")
	rep := sitetest.CheckUpstreamUntil(t, 120*time.Second, []string{b.Addr()}, sitetest.AcksUpstream(acks), "central.sensors")
	t.Logf("after the wiped restart: %v", rep)
	t.Logf("n1 routes: %s", httpGet(n1, "/api/routes"))
	if !rep.OK() {
		t.Fatalf("upstream: %v", rep)
	}
	for p := int32(0); p < 2; p++ {
		pr := rep.Partition(sitetest.OriginPartition{Node: "n1", Topic: "sensors", Partition: p})
		if pr.RawDuplicates > window {
			t.Errorf("n1:sensors/%d: %d raw duplicates after the wiped restart (window %d, backlog %d): the cursors were not restored", p, pr.RawDuplicates, window, backlog/2)
		}
	}

	// Replaced while a survivor forwards its backlog: n1 loses its uplink,
	// builds a backlog, dies, a survivor drains it; n1 comes back wiped
	// and takes its partitions back from where the survivors stood.
	dupsBefore := map[int32]int{}
	for p := int32(0); p < 2; p++ {
		dupsBefore[p] = rep.Partition(sitetest.OriginPartition{Node: "n1", Topic: "sensors", Partition: p}).RawDuplicates
	}
	n1.CutService(t, b.Addr())
	produceN(t, n1, acks, "sensors", backlog, "backlog")
	time.Sleep(2 * time.Second) // cursors saved and mirrored
	n1.Kill9(t)
	rep = sitetest.CheckUpstreamUntil(t, 120*time.Second, []string{b.Addr()}, sitetest.AcksUpstream(acks), "central.sensors")
	if !rep.OK() {
		t.Fatalf("upstream after the takeover: %v", rep)
	}
	n1.HealService(t, b.Addr())
	n1.RestartWiped(t)
	waitUntil(t, "n1 forwarding its own partitions again after the takeover", 90*time.Second, func() bool {
		return forwarderOf(t, []*sitetest.Node{n1}, "n1", "sensors", 0) == n1 &&
			forwarderOf(t, []*sitetest.Node{n1}, "n1", "sensors", 1) == n1
	})
	produceN(t, n1, acks, "sensors", 1000, "after2")
	rep = sitetest.CheckUpstreamUntil(t, 120*time.Second, []string{b.Addr()}, sitetest.AcksUpstream(acks), "central.sensors")
	t.Logf("after the wiped restart that followed a takeover: %v", rep)
	if !rep.OK() {
		t.Fatalf("upstream: %v", rep)
	}
	for p := int32(0); p < 2; p++ {
		pr := rep.Partition(sitetest.OriginPartition{Node: "n1", Topic: "sensors", Partition: p})
		if d := pr.RawDuplicates - dupsBefore[p]; d > 2*window {
			t.Errorf("n1:sensors/%d: %d raw duplicates from the takeover and the wiped restart (window %d)", p, d, window)
		}
	}
}

// TestFailoverMQTTUpstream: the takeover and the hand-back of
// TestFailoverKill9 for a route to an MQTT broker (Mosquitto, MQTT 5):
// the survivor publishes n1's backlog with n1's origin headers as user
// properties, from n1's replicated cursor; n1 takes its partitions back
// when it returns. The subscriber's view, judged by the origin
// properties, misses nothing acknowledged and has nothing twice after
// dedup; order per origin partition is kept.
func TestFailoverMQTTUpstream(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("site test: skipped with -short")
	}
	c := sitetest.Start(t, sitetest.Options{Nodes: 3, NoStart: true})
	m := sitetest.StartMQTTUpstream(t, c.HostIP().String(), "central/#")
	startForwarding(t, c, fmt.Sprintf("{kind: mqtt, url: %q}", m.URL()), "central/{topic}")
	n1, n2, n3 := c.Node(1), c.Node(2), c.Node(3)
	of := func(node string) int {
		recs, err := m.Records()
		if err != nil {
			return 0
		}
		n := 0
		for _, r := range recs {
			if r.HasOrigin && r.Origin.Node == node {
				n++
			}
		}
		return n
	}
	waitAliveWithin(t, n1, 3, 60*time.Second)
	createSensors(t, n1, "sensors", 2, 2)
	for p := int32(0); p < 2; p++ {
		waitInSync(t, n1, "sensors", p, 2)
	}
	acks := &sitetest.Acks{}
	produceN(t, n1, acks, "sensors", 1000, "before")
	waitUntil(t, "n1 forwarding its first records", 60*time.Second, func() bool { return of("n1") >= 1000 })

	n1.CutService(t, m.Addr())
	produceN(t, n1, acks, "sensors", 10000, "backlog")
	time.Sleep(2 * time.Second) // cursors saved and mirrored (one flush)
	killed := time.Now()
	n1.Kill9(t)
	before := of("n1")
	waitUntil(t, "a survivor publishing n1's backlog", 60*time.Second, func() bool { return of("n1") > before })
	t.Logf("kill -9 to the first record of n1 published by a survivor: %v", time.Since(killed).Round(10*time.Millisecond))
	rep := m.CheckUntil(t, 120*time.Second, sitetest.AcksUpstream(acks))
	t.Logf("after the takeover: %v", rep)
	if !rep.OK() {
		t.Fatalf("MQTT upstream after n1's kill -9: %v", rep)
	}
	for p := int32(0); p < 2; p++ {
		if forwarderOf(t, []*sitetest.Node{n2, n3}, "n1", "sensors", p) == nil {
			t.Errorf("no survivor reports forwarding n1's sensors/%d", p)
		}
		pr := rep.Partition(sitetest.OriginPartition{Node: "n1", Topic: "sensors", Partition: p})
		if pr.RawDuplicates > window/2 {
			t.Errorf("n1:sensors/%d: %d raw duplicates: the survivor did not resume from the replicated cursor", p, pr.RawDuplicates)
		}
	}

	n1.HealService(t, m.Addr())
	n1.Restart(t)
	waitUntil(t, "n1 forwarding its own partitions again", 90*time.Second, func() bool {
		return forwarderOf(t, []*sitetest.Node{n1}, "n1", "sensors", 0) == n1 &&
			forwarderOf(t, []*sitetest.Node{n1}, "n1", "sensors", 1) == n1
	})
	produceN(t, n1, acks, "sensors", 2000, "after")
	rep = m.CheckUntil(t, 120*time.Second, sitetest.AcksUpstream(acks))
	t.Logf("after the hand-back: %v", rep)
	if !rep.OK() {
		t.Fatalf("MQTT upstream after n1's return: %v", rep)
	}
	checkWindow(t, rep, "n1")
}

// TestFailoverLostTailNewRecordsForwarded: a box that lost the tail of a
// partition it had already forwarded (here cut from the segment while it
// was down, as a power cut under fsync never leaves it) and could not
// take it back (its copy's box unreachable while it restarts) writes new
// records at the offsets it lost. Its cursor log, which survived, says
// the route forwarded past them; the new records still go upstream.
func TestFailoverLostTailNewRecordsForwarded(t *testing.T) {
	t.Parallel()
	const n = 2000
	// fsync never: the partition's records are in its own segment file
	// (fsync always stores small commits in the shared file), whose tail
	// the test cuts.
	c, b := forwardingSite(t, "--fsync", "never", "--restore-timeout", "5s")
	n1, n2, n3 := c.Node(1), c.Node(2), c.Node(3)
	waitAliveWithin(t, n1, 3, 60*time.Second)
	createSensors(t, n1, "sensors", 1, 2)
	waitInSync(t, n1, "sensors", 0, 2)
	produceN(t, n1, &sitetest.Acks{}, "sensors", n, "before")
	waitUntil(t, "n1's records forwarded", 90*time.Second, func() bool { return upstreamOf(t, b, "n1") >= n })
	time.Sleep(3 * time.Second) // the last cursor save in n1's cursor log

	c.Cut(t, n1, n2, n3)
	n1.Kill9(t)
	loseTail(t, n1, "sensors", 0, 0.5)
	n1.Restart(t)
	waitRestored(t, n1) // after restore-timeout: no peer answers
	_, end := offsets(t, n1, "sensors", 0)
	if end >= n-300 {
		t.Fatalf("n1's sensors/0 ends at %d after losing half its segment", end)
	}
	after := &sitetest.Acks{}
	produceN(t, n1, after, "sensors", 300, "after")
	want := sitetest.AcksUpstream(after)[sitetest.OriginPartition{Node: "n1", Topic: "sensors", Partition: 0}]
	if len(want) != 300 || want[0].Offset != end {
		t.Fatalf("%d records acknowledged after the restart, the first at %v, want 300 from %d", len(want), want[:min(1, len(want))], end)
	}
	var missing int
	waitFor(t, 90*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		recs, err := sitetest.ReadUpstream(ctx, []string{b.Addr()}, "central.sensors")
		if err != nil {
			return false
		}
		got := map[int64]map[[32]byte]bool{}
		for _, r := range recs {
			if r.HasOrigin && r.Origin.Node == "n1" && r.Origin.Partition == 0 {
				if got[r.OriginOffset] == nil {
					got[r.OriginOffset] = map[[32]byte]bool{}
				}
				got[r.OriginOffset][r.Value] = true
			}
		}
		missing = 0
		for _, a := range want {
			if !got[a.Offset][a.Value] {
				missing++
			}
		}
		return missing == 0
	}, func() string {
		return fmt.Sprintf("%d of the %d records written from offset %d after the lost tail never arrived upstream", missing, len(want), end)
	})
}
