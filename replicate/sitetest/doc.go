// Package sitetest runs a site of real `runnel serve` processes for tests,
// each in its own network namespace, with fault controls and a checker
// that compares the copies of a partition byte for byte over the Kafka
// protocol.
//
// # Basics
//
//	func TestMain(m *testing.M) { os.Exit(sitetest.Main(m)) }
//
//	c := sitetest.Start(t, sitetest.Options{ // 3 nodes by default
//		Args: func(n *sitetest.Node, all []*sitetest.Node) []string {
//			return []string{"--node-id", n.Name, "--default-partitions", "2"}
//		},
//	})
//	n1, n2 := c.Node(1), c.Node(2)
//	cl := n1.Client(t, kgo.AllowAutoTopicCreation()) // dials 10.x.y.1:9092 directly
//	acks := &sitetest.Acks{}
//	for _, r := range cl.ProduceSync(ctx, recs...) { // acks=all is franz-go's default
//		if r.Err == nil {
//			acks.Add(n1, r.Record)
//		}
//	}
//	n1.Kill9(t); n1.Restart(t)     // crash, same data dir and arguments
//	n2.RestartWiped(t)             // replaced SD card, same arguments
//	n1.Pause(t); n1.Resume(t)      // SIGSTOP / SIGCONT
//	n1.CutLink(t); n1.HealLink(t)  // veth down/up: nobody reaches n1
//	c.Cut(t, n1, n2); c.Heal(t, n1, n2) // only n1<->n2 dropped
//	c.CutPort(t, sitetest.KafkaPort, n1, n2) // only n1<->n2 Kafka (gossip flows)
//	c.HealPort(t, sitetest.KafkaPort, n1, n2)
//	n1.Stop(t); n1.Start(t, "--join", n2.GossipAddr()) // new arguments
//
//	rep := c.CheckUntil(t, 20*time.Second, sitetest.Check{
//		Acked:   acks,                    // origins: every partition acked
//		Mirrors: func(o sitetest.Copy) []sitetest.Copy { ... }, // the naming of mirrors
//	})
//	if !rep.OK() {
//		t.Fatal(rep)
//	}
//
// # Network
//
// Start creates a hub namespace holding a bridge, one namespace per node
// with a veth (eth0) on the bridge, and one veth from the root namespace
// into the bridge, all on a free 10.x.y.0/24 (checked against every route
// and address of the root namespace, chosen under a file lock so parallel
// test binaries, and parallel tests of one binary (t.Parallel), do not
// collide). Node i is 10.x.y.i and listens there on the fixed ports (Kafka
// 9092, HTTP 8080, MQTT 1883; 7946 is the gossip port to pass); the test
// process is 10.x.y.254 (Cluster.HostIP), so Go clients in the test, and
// tools such as kcat run from it, dial nodes directly, and nodes reach
// servers of the test that listen on HostIP.
// Nodes have no default route: they reach nothing outside the subnet.
// Node.Command runs a tool inside a node's namespace.
//
// Names start with "rnst" and the creating process's PID: everything is
// removed in t.Cleanup (processes killed by PID first, whatever the test's
// outcome), and a later Start removes the leftovers of a process that was
// killed before its cleanup ran. Nodes also die with the test process
// (Pdeathsig). Each node's stdout and stderr go to <Cluster.Dir>/nN.log
// (appended across restarts, each start and exit marked), whose tail is
// logged when the test fails.
//
// CutLink sets the node's veth down: the carrier goes on both ends, so
// nothing passes either way. Cut drops packets between two nodes at both
// ends with nftables rules in their namespaces (a silent drop, like a
// broken path, not a refused connection); it needs the nft tool. CutPort
// drops only the TCP packets of one port between two nodes (for example
// the Kafka listener's, so a copy stops fetching while gossip still holds
// its box alive).
//
// # Checker
//
// Cluster.Check reads, for each origin partition, the origin and every
// copy that Check.Mirrors names, each from its own node's Kafka listener
// with raw Fetch requests (never redirected to the leader that Metadata
// names), from the log start offset to the high-water mark. It reports
// (see Kind):
//   - batches that fail CRC-32C or whose records do not decode, and copies
//     whose batches skip offsets or stop short of their high-water mark;
//   - a mirror that is not a byte-identical prefix of the origin: each of
//     its batches must equal the origin's batch at the same offset, and it
//     must hold nothing at or past the origin's high-water mark;
//   - any offset holding two different records (timestamp, key, value,
//     headers) on any two copies, mirrors compared with each other too;
//   - acknowledged records (offset and SHA-256 of the value, collected
//     with Acks) missing from the copies read, or another value at an
//     acknowledged offset.
//
// No byte of a batch is excused: a mirror stores the origin's batches at
// the origin's offsets, so baseOffset matches, and partitionLeaderEpoch
// (not covered by the CRC) carries the origin's epoch, which a copy must
// keep for divergence to stay visible. A mirror may start later than the
// origin (retention) and end earlier (lag); CheckUntil retries while copies
// converge. Copies on nodes that are not running are skipped and listed.
// Compare and CheckAcked work on Logs built by hand, for unit tests.
//
// # Upstream checker
//
// For forwarding scenarios, nodes forward to Apache Kafka started with
// kafkatest.Options{Host: c.HostIP().String()} (reachable from the
// namespaces). ReadUpstream reads the upstream topics to their current
// end, and CheckUpstream (CheckUpstreamUntil, retrying until nothing
// acknowledged is missing) reports per origin partition, by the origin
// headers: acknowledged offsets missing, raw duplicates, duplicates left
// after dedup by the origin headers (a record forwarded under another
// identity), origin offsets with two contents, and order per upstream
// partition (see upstream.go).
//
// # Caveats
//
// It needs root and the ip tool (iproute2); without them the test is
// skipped with the reason, and under CI=true it fails instead. The binary
// is ./cmd/runnel built once per test process (or $RUNNEL_SITETEST_BIN).
// RUNNEL_* variables of the test process are not passed to the nodes.
package sitetest
