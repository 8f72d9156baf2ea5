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
// pauses (backpressure).
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
// int16 error code). An ApiVersions request above the served range gets a v0
// response with UNSUPPORTED_VERSION and the full key list, as Kafka does.
//
// # Caveats
//
//   - Transactions are not supported; isolation read_committed reads the
//     same as read_uncommitted (no transactional batches can be stored).
//   - Fetch sessions are not created (SessionID 0): clients send full fetches.
//   - Errors from the log map to Kafka codes in errors.go (errorCode): a full
//     disk answers KAFKA_STORAGE_ERROR (56), which every client retries.
//   - Replication factor in CreateTopics is accepted and ignored (one node
//     owns each partition); the topic reports replication factor 1.
package kafka
