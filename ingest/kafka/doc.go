// Package kafka is runnel's Kafka wire-protocol server: enough of the
// protocol that librdkafka (kcat), franz-go and the Apache Kafka Java client
// produce to and consume from the commit log unmodified. Requests and
// responses are encoded with franz-go's kmsg; record batches are never
// decoded on the hot paths: Produce hands the bytes the client sent to
// log.AppendAsync, Fetch sends the bytes log.Read returns.
//
// # Basics
//
// One Server serves any number of listeners (Serve). Each connection has two
// goroutines:
//
//	          frames in                               responses out
//	client ──────────────> reader ──slots (FIFO)──> writer ──────────────> client
//	                         │  ▲                     ▲
//	   Produce: AppendAsync ─┘  │ (inline, in read    │ waits for each slot's
//	     order; done() fills    │  order, so a        │ response in request
//	     the slot)              │  partition's order  │ order, flushes when
//	   Fetch, groups: a         │  is kept)           │ nothing more is ready
//	     goroutine per request ─┘
//	   everything else: inline
//
// The reader never waits for a produce's fsync before reading the next
// request; responses are still written strictly in request order. At most
// Options.MaxInFlight requests per connection are unanswered; then reading
// pauses (backpressure). Reading also pauses at a connection's fourth
// Fetch in flight (maxConnFetches) until one is answered, and no Fetch
// waits longer than Options.MaxFetchWait.
//
// Frame: int32 size (checked against MaxFrameBytes before any allocation),
// request header v1 (key int16, version int16, correlation id int32, client
// id nullable string) or v2 (plus tagged fields) when the request version is
// flexible, then the body. A malformed frame or an oversized size closes that
// connection only, with one log line.
//
// # Versions
//
// The served versions are in versions.go. Produce stops at v12 and Fetch at
// v12 (v13 switched both to topic IDs). Known keys at versions outside the
// served range, and keys the server does not serve, get a response of the
// requested version with every error code set to UNSUPPORTED_VERSION (or,
// when kmsg cannot encode that version, the correlation id followed by the
// int16 error code). Those answers are bytes generated from kmsg
// (unsupported_answers.go, checked by TestUnsupportedAnswers): the server
// names only the request types it decodes (newRequest), so the other keys'
// codecs are not linked into the binary. An ApiVersions request above the
// served range gets a v0 response with UNSUPPORTED_VERSION and the full key
// list, as Kafka does.
//
// # Who may do what
//
// With Options.Users (or SASLPlain) every connection authenticates: SASL
// PLAIN or SCRAM-SHA-256/512 (sasl.go; PLAIN off loopback only over TLS
// or with AllowPlainWithoutTLS), or a client certificate verified against
// the TLS config's ClientCAs (its common name is the user). Without
// accounts a loopback client is anonymous with every right and any other
// client is anonymous with none (AllowRemoteAnonymous opens it). Each
// request is checked against Options.Access in one step before its
// handler (authz.go: the refused parts are taken out of the request and
// answered with TOPIC_, GROUP_ or CLUSTER_AUTHORIZATION_FAILED); the ACL
// APIs (acls.go) edit the policy's dynamic rules, stored in meta.db.
// Failed authentications are answered later and later per address
// (access.Backoff); Options.ProducerByteRate throttles producers
// (quota.go: throttle_time_ms, then the connection is not read for that
// long).
//
// # Topic configs
//
// DescribeConfigs, AlterConfigs, IncrementalAlterConfigs and CreateTopics
// map these names to log.TopicConfig (configs.go): retention.ms,
// retention.bytes, segment.bytes, segment.ms, max.message.bytes,
// runnel.fsync (always|interval|never), runnel.fsync.interval.ms,
// runnel.on.full (reject|drop-oldest), cleanup.policy (delete|compact|
// compact,delete, either order), delete.retention.ms,
// min.compaction.lag.ms, min.cleanable.dirty.ratio, message.timestamp.type
// (CreateTime|LogAppendTime; for LogAppendTime the produce response's
// log_append_time_ms is the time the log stamped into the batch, read from
// the request's own bytes, which the log stamps in place as it does the
// offsets; a duplicate's is read back from the log). compression.type=producer,
// min.insync.replicas=1, unclean.leader.election.enable=false
// and message.downconversion.enable=false are reported and accepted only
// with those values; any other name is INVALID_CONFIG. Which names were set
// explicitly through the Kafka API is kept in meta KV bucket
// "kafka-topic-configs" (topic → JSON), so DescribeConfigs reports the
// source and an incremental DELETE returns a name to the log default.
//
// # Producer ids
//
// InitProducerId hands out ids from a counter reserved in blocks of 1000 in
// meta KV bucket "kafka", key "producer-id-next", so an id is never reused
// after a restart. Sequence checks are the log's (per partition).
//
// # Caveats
//
//   - Transactions (txn*.go): every box coordinates every transactional
//     id; the coordinator's state is in meta KV bucket "kafka-txn", synced
//     before every answer. Transactions v2 (KIP-890) is not advertised.
//   - The README's Kafka compatibility table is generated from the
//     version table (TestREADMEKafkaAPITable), and TestApiVersionsIsTheTable
//     checks that ApiVersions advertises exactly that table and that every
//     other key and version kmsg knows gets UNSUPPORTED_VERSION.
//   - Fetch sessions are not created (SessionID 0): clients send full fetches.
//   - Metadata reports leader epoch -1, so clients never fence requests
//     on it. OffsetForLeaderEpoch (v0-v4) is served from the log's
//     leader-epoch history (log.LeaderEpochs; every open after an unclean
//     stop is a new epoch, stamped into the batches) with Kafka's semantics and
//     error codes (UNKNOWN_TOPIC_OR_PARTITION; FENCED_LEADER_EPOCH and
//     UNKNOWN_LEADER_EPOCH when a CurrentLeaderEpoch >= 0 is below or
//     above the partition's latest epoch): a consumer resuming from a
//     committed offset and epoch learns when the log no longer holds them
//     (KIP-320), and a mirror checks its copy against the origin's. It is
//     not advertised over a log without epochs.
//   - Errors from the log map to Kafka codes in codes.go (errorCode): a full
//     disk answers KAFKA_STORAGE_ERROR (56), which librdkafka, franz-go and
//     the Java client all retry; the message (Produce v8+) says why.
//   - Replication factor in CreateTopics is accepted and ignored (one node
//     owns each partition); the topic reports replication factor 1.
//   - Before SASL authentication frames are capped at 512 KiB. After it, a
//     frame up to MaxFrameBytes is decoded by kmsg, whose arrays are bounded
//     by the frame size: a hostile authenticated client can still make one
//     request allocate a multiple of its size.
//   - Bounded resources (budget.go, server.go): MaxConns connections (one
//     more is closed at accept), ConnectTimeout to send the first request
//     and to authenticate, IdleTimeout without a request; the frames all
//     connections hold from the read of their length until their response
//     is ready are bounded by MaxQueuedRequestBytes (a reader waits for
//     room before it allocates; a frame is charged to its response slot),
//     and after a burst the memory is given back to the OS.
package kafka
