// Package mqtt is runnel's MQTT ingest: an embedded mochi-mqtt broker
// (MQTT 3.1, 3.1.1 and 5; TCP, TLS, websocket) whose every acknowledged
// publish is durable in the commit log, and whose subscribers see what the
// log holds, including records produced through Kafka (Options.Publish).
//
// # Basics
//
//	b, err := mqtt.New(mqtt.Options{Log: lg, AllowAnonymous: true})
//	go b.Serve(ln)          // plain MQTT on a listener the caller made
//	go b.ServeTLS(ln2)      // TLS per Options.TLS (client certs optional)
//	go b.ServeWebsocket(ln3) // MQTT over websocket at Options.WebsocketPath
//	// or b.Start() to listen on Options.Addr / TLS.Addr / WebsocketAddr
//	defer b.Close()         // before closing the log
//
// Routes map MQTT topic filters to log topics and record keys (first match
// wins; none configured = everything to log topic "mqtt", key = MQTT
// topic). Every record carries headers mqtt.topic, mqtt.qos, mqtt.retain,
// mqtt.client (mqtt.will for will messages), mqtt.content-type,
// mqtt.correlation-data, mqtt.response-topic and the MQTT 5 user
// properties under their own names. The value is the payload (empty, not
// null, for an empty publish), except for an empty retained publish, which
// clears the topic's retained message: its record has a null value (a
// tombstone for the key, which is the MQTT topic by default) and the header
// mqtt.retain-cleared: true. Partition = murmur2(key) mod N, as
// Kafka's default partitioner (the client id for key rule "none").
//
// # The ack pipeline
//
// mochi has no way to delay a PUBACK, and blocking in OnPublish would allow
// one message per fsync per connection. Instead:
//
//	client read loop        appender (per partition)      log            completion goroutine
//	────────────────        ────────────────────────      ───            ────────────────────
//	PUBLISH ─► OnPublish
//	  push on the client's ─► add record to the open ──► the next    ──► done(err): queue only
//	  FIFO (wait at cap)      batch; the log's next       commit takes      │
//	  return ErrRejectPacket  commit takes it (feed:      it (group         ▼
//	  (mochi: no ack, no      AppendAsync just before     commit,    finish each record's
//	  fan-out)                the commit starts)          fsync)     FIFO entry; if the head
//	                                                                 is finished, start the
//	                                                                 client's drainer
//	drainer (≤ 1 per client): pops the finished prefix of the FIFO, fans
//	each durable message out through an inline client (InjectPacket:
//	subscribers, retained store), and writes all their PUBACK/PUBREC in
//	one write, in arrival order. Drainer goroutines are reused: up to
//	maxIdleDrainers wait for the next client to drain (a new goroutine
//	for each drain grew its stack each time).
//
// The appender asks the log (log.CommitFeeder) to call it when its next
// commit starts; an idle log starts one at once, a busy one when its
// current syncs end, so a batch holds every record that arrived until its
// commit and a PUBACK waits for the sync that covers it and nothing else
// (no timer on this path but the bound of a reply hold, below). A
// client's publishes that already arrived (mochi's read buffer holds
// more: Client.Buffered, patch 7) are read before the appender asks, and
// a reply hold (below) waits for the rest of a group still on its way,
// so a client answering a group of PUBACKs with a group of publishes
// stays one commit. Each record tells the log whether
// its sender waits for an acknowledgement (QoS 1/2 with messages pending,
// or a PUBACK less than log.IndependentAfter ago) or not (QoS 0, wills,
// an idle device): only the latter count toward the log's commit delay,
// which gathers many trickling devices into fuller pages and never holds
// a client that waits for its PUBACKs. With a log that cannot feed its
// commits (log/logtest) a batch is handed over at once while fewer than
// two of the partition's batches are in flight.
//
// # Reply holds
//
// A pipelining client answers a group of PUBACKs with a group of
// publishes. Natural group commit alone splits such a group: its first
// publish finds the disk idle and starts a commit at once, the rest
// arrive during that commit's sync and go into the next one, and the
// split never closes (mosquitto_pub with its default window of 20 got 10
// messages per commit, one commit of 1 and one of 19 in turn). Two things
// keep a client's window in one commit:
//
//   - Quick TCP ACKs (quickack_linux.go): connections set TCP_QUICKACK
//     after each read. A client with Nagle's algorithm on (mosquitto_pub
//     and libmosquitto by default) sends only the first publish of a group
//     until the TCP ACK of it comes back; Linux delays that ACK until the
//     server sends data, here the next PUBACK, a whole fsync later. A
//     client without subscriptions whose last lazyAckAfter (16) QoS 1/2
//     publishes each arrived alone (window 1: nothing else of it pending)
//     has them turned off, since its PUBACKs carry the ACKs; its first
//     publish that finds another pending, or a QoS 0 one, or a
//     subscription, turns them on again (session.notePublish).
//   - The reply hold (session.go): a QoS 1/2 publish is held (its record
//     waits in the open batch, the appender's feed is not registered for
//     it) while the client has QoS 1/2 records in a commit, whose acks
//     will bring the rest of its window back (routes with acks "all" do
//     not count: their acks wait for the site's copies), and then while
//     it has not yet answered every ack written less than
//     log.IndependentAfter ago.
//     The hold ends when the last owed publish arrives, or one bound after
//     it began: about one commit (the average time from handing a batch
//     to the log to its completion, at most 2 ms), beyond which holding
//     costs more than the split. A client with nothing in the log and no
//     acks owed (one that waits alone, or one with window 1) is never
//     held; one that left a hold's acks unanswered (a device that sent two
//     messages and went quiet) is not held again until it answers a whole
//     group. Another client's feed takes a held record along. Counted:
//     Stats ReplyHolds, ReplyHoldTimeouts, ReplyHoldNanos
//     (runnel_mqtt_reply_hold*). Go's timers are coarser than a fast
//     disk's commit, so a hold that times out can last about a
//     millisecond.
//
// So a pipelining client has up to MaxPendingPerClient messages in flight,
// and a busy partition writes one batch per commit (no linger timer: a
// quiet one writes each message at once). QoS 0 takes the same path (same group
// commit, no promise). QoS 2 PUBREC goes out after the fsync and mochi
// completes PUBREL/PUBCOMP. Will messages are appended in OnWillSent.
//
// # Rejections
//
// When the log refuses an append, MQTT 5 clients get PUBACK/PUBREC reason
// 0x97 (quota exceeded) for log.ErrDiskFull and for
// log.ErrNotEnoughReplicas (a route with acks "all" whose topic has fewer
// in-sync copies on the site than its min.insync.replicas), 0x95 (packet
// too large) for a message that does not fit its topic's max.message.bytes
// alone (it fails before it joins a batch, and a batch is closed before
// it outgrows that limit, so other clients' messages never fail with it),
// and 0x80 with the error as reason string otherwise; MQTT 3.1.1 clients,
// which have no negative ack,
// are disconnected (acks of earlier durable messages are written first).
// A failed message is neither stored nor fanned out. At MaxPendingPerClient
// (or MaxPendingBytesPerClient) the client's read loop waits: TCP
// backpressure instead of memory growth.
//
// # Limits
//
// MaxConns connections on all listeners together and MaxConnsPerIP per
// address are closed at accept; ConnectTimeout bounds the wait for
// CONNECT. Subscriptions are capped per client and in total
// (subscribe.go): OnSubscribe blanks each filter past a cap, so mochi
// refuses it (0x80 in MQTT 3.1.1), and OnPacketEncode turns those refusals
// into 0x97 (quota exceeded) in the MQTT 5 SUBACK; no mochi patch. A
// connection that ends with a malformed packet or a protocol violation is
// counted (Stats().Malformed) and logged at most once a second.
//
// # Persistence
//
// Sessions (clients, subscriptions, unacknowledged outbound messages) of
// non-clean clients and retained messages live in KV buckets of the log's
// meta store (see persist.go), written in batches every 200 ms, restored at
// New. mochi's bolt hook is not used.
//
// # Caveats
//
//   - The broker is a patched copy of mochi-mqtt v2.7.9
//     (ingest/mqtt/third_party/mochi, PATCHES.md): smaller idle
//     connections, and MQTT 5 Receive Maximum enforced as the spec says
//     (mochi's own flow control deadlocked, leaked quota and reordered).
//   - QoS 2 is exactly-once on the wire of one connection; a QoS 2 publish
//     resent on a new connection before its PUBREC may be stored twice.
//   - Messages pending when a connection drops still reach the log and the
//     subscribers; their acks are lost with the connection (the client
//     resends: at-least-once).
//   - Publishes matching no route are delivered and acknowledged but not
//     stored.
package mqtt
