package forward

import (
	"context"
	"log/slog"
)

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

// Origin header keys added to every forwarded record. Never change.
const (
	HeaderNode      = "runnel-node"
	HeaderTopic     = "runnel-topic"
	HeaderPartition = "runnel-partition"
	HeaderOffset    = "runnel-offset"
	// HeaderEpoch is the origin partition's leader epoch of the record's
	// batch (decimal). Node, topic, partition, offset and epoch together
	// name one record for good: an offset the origin writes again after
	// it lost its tail (fsync interval or never and a power cut, or a
	// wiped data dir no peer could restore) comes with a higher epoch, so
	// an upstream that drops duplicates by these headers keeps it.
	HeaderEpoch = "runnel-epoch"
)

// Record is one record on its way upstream.
type Record struct {
	// Topic is the upstream topic (the route's rendered Target).
	Topic string
	// Key and Value are nil when null.
	Key, Value []byte
	// Timestamp in ms since the epoch, as stored locally.
	Timestamp int64
	// Headers: the record's own headers followed by the origin headers.
	Headers []Header
	// Partition and Offset locate the record in the local log (the origin
	// headers carry the same); Partition is also a partitioning hint.
	Partition int32
	Offset    int64
	// Attempt counts the forwarder's resends of this origin partition.
	// Once a record of (Topic, Partition, Attempt) failed, a sink should
	// fail the later records of the same triple instead of delivering
	// them, so nothing lands upstream ahead of the resend of the failed
	// record (order per partition is kept even across failures).
	Attempt uint64
}

// Size is the number of bytes the record accounts for in windows and the
// bandwidth cap: key, value, header keys and values, plus 16 bytes.
func (r *Record) Size() int {
	n := len(r.Key) + len(r.Value) + 16
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// Sink ships records to one upstream. One Sink serves every route of its
// upstream; methods are safe for concurrent use.
type Sink interface {
	// Send hands rec to the upstream and returns without waiting for the
	// acknowledgement. done is called exactly once, from any goroutine,
	// with nil after the upstream acknowledged rec or with the error that
	// made the sink give up on it (the forwarder then resends from its
	// cursor). Records sent in order for one (Topic, Partition) must reach
	// the upstream in that order unless one of them fails. Send may block
	// briefly for buffer space; it returns early when ctx ends (calling
	// done with ctx.Err()). The Sink must not keep rec after done.
	Send(ctx context.Context, rec *Record, done func(error))
	// Close releases connections; records not yet acknowledged get done
	// with an error. Idempotent.
	Close() error
}

// Pinger is an optional Sink capability: Ping checks the upstream is
// reachable (used to probe a link before resending a backlog).
type Pinger interface {
	Ping(ctx context.Context) error
}

// NewSinkFunc builds the Sink of one upstream. It should not block on the
// network: connection problems show up as failed records (and are retried),
// only bad configuration (unreadable TLS files, bad URL) is an error here.
type NewSinkFunc func(name string, u Upstream, logger *slog.Logger) (Sink, error)
