// Package forward is runnel's store-and-forward engine: it sends local
// topics to upstream systems (a central Kafka cluster, an MQTT broker)
// whenever the link is up, and keeps the data in the local log while it
// is not.
//
// # Basics
//
// A Route names local topics (names or globs), one Upstream, and a target
// topic template ({topic}, {node}, {site}; {key} for MQTT). Each route has
// one goroutine that reads its partitions round-robin from the log, turns
// every record into a Record (key, value, timestamp and headers kept, plus
// the origin headers runnel-node, runnel-topic, runnel-partition,
// runnel-offset and runnel-epoch) and hands it to the upstream's Sink without waiting.
// Acknowledgements come back through callbacks:
//
//	log ──Read──> route ──Send──> Sink (kgo / MQTT) ──> upstream
//	               ^                 │ done(err)
//	               └── cursor ◄──────┘  (moves only over acked prefixes)
//
// Per partition the route keeps the in-flight records in send order; the
// cursor (next offset to send after a restart) moves over the prefix the
// upstream acknowledged, and a flusher goroutine writes it to meta under
// the name "forward/<route>" (log.HoldRetention keeps unsent data).
//
// With Options.CursorTopic set, every save is also appended to that
// internal topic (the cursor log, "__runnel_cursors"), which site
// replication mirrors like any topic: the boxes that hold a node's data
// also hold how far it forwarded. CursorView reads any copy of it. The
// format, its window and its size bound are in cursorlog.go.
//
// # Duties
//
// Without Options.Duties a node forwards every local topic a route
// matches, as its own. With it (site replication wires it; forward knows
// no peers) routes forward exactly the Duty list: origin partitions,
// this node's own and other nodes' held here as mirrors at the origin's
// offsets. A mirror goes upstream as its origin would have sent it:
// runnel-node, runnel-topic, {node} and {topic} name the origin and its
// topic, runnel-offset is the origin's offset, and routes match the
// origin's topic name. A duty starts at the furthest of the route's own
// cursor and Duty.From (the replicated one); a mirror behind that cursor
// is waited for, never re-sent from its end. A duty that leaves the list
// (or changes epoch) sends nothing more, drains what is in flight, saves
// its final cursor (to the cursor log too; a mirror's cursor then leaves
// meta so it no longer holds the mirror's retention) and is reported to
// DutyStopper.Stopped. A node forwards other nodes' data with its own
// routes, so the boxes of a site must share their route configuration:
// RoutesHash digests what decides where records go, for replication to
// advertise and compare.
//
// # Guarantees
//
// At-least-once and in order per (local partition, upstream partition):
// sinks deliver the records of one partition in send order. When any
// record fails the route stops sending, waits until every in-flight record
// is resolved, rewinds every partition to its acknowledged cursor, backs
// off (exponential, with jitter) and resends, first a single probe record,
// then the full window. MaxInFlight bounds the offsets sent beyond the
// last saved cursor, so a crash re-sends at most that many records per
// route; memory is bounded by MaxInFlightBytes (the log is the buffer).
//
// # Link state
//
// A route is "connected" once the upstream acknowledges a record (or, when
// idle, answers a Ping: sinks may implement Pinger; idle routes check every
// Upstream.ProbeInterval, 5 s by default, so a lost link shows within
// seconds, not at the next record), "backing-off" after an error (failed
// record, unbuildable sink, failed ping), "paused" when configured or set
// with SetPaused, and "starting" in between. RouteStatus.StateSince says
// when the route entered its state, DownSince when its current spell of
// starting/backing-off began; errors and counters are in RouteStatus too. A ping costs one request per ProbeInterval per idle
// route: the route sleeps in between.
//
// # Order across failures
//
// Every Record carries Attempt (bumped when a partition is rewound). Once a
// record fails, sinks fail the later records of the same topic, origin
// partition and attempt (StreamGate helps), and the route stops sending
// that partition, so no record lands upstream ahead of the resend of an
// earlier failed one. (With MQTT, a broker that rejects one publish but
// accepts the next already on the wire can still reorder; the origin
// headers show it.)
//
// # Sinks
//
// Upstream-specific code lives behind the Sink interface, in sync/kafka
// (franz-go kgo) and sync/mqtt. Those packages import forward; forward
// imports neither. cmd/runnel passes their constructors in Options.Sinks:
//
//	forward.Options{..., Sinks: map[string]forward.NewSinkFunc{
//		"kafka": kafka.NewSink, "mqtt": mqtt.NewSink}}
//
// # Caveats
//
// A cursor below the log start (segments deleted under disk pressure with
// on-full drop-oldest) jumps forward; the records lost are counted per
// route (RouteStatus.Dropped), logged and shown as the last error. The
// bandwidth cap counts record bytes before compression.
package forward
