package mqtt

import (
	"sync/atomic"
)

// Stats is a snapshot of the broker's counters: runnel's own (ingest,
// acks, rejections, limits) and mochi's $SYS values, for /metrics.
type Stats struct {
	// Ingest.
	Ingested         uint64 // publishes (and will messages) durable in the log
	Acked            uint64 // positive PUBACK/PUBREC sent after durability
	Nacked           uint64 // MQTT 5 PUBACK/PUBREC with an error reason code
	Failed           uint64 // publishes the log refused or failed
	RejectedDiskFull uint64 // of Failed: log.ErrDiskFull (reason 0x97)
	FailDisconnects  uint64 // MQTT 3 clients disconnected after a failed append
	Unrouted         uint64 // publishes matching no route (not stored)
	WillsIngested    uint64 // will messages handed to the log
	Pending          int64  // publishes waiting for the log now
	PendingPeak      int64  // most publishes one client had waiting at once since start (never above MaxPendingPerClient)
	PendingBytesPeak int64  // most bytes one client had waiting at once since start (above MaxPendingBytesPerClient only by a lone publish)
	Throttled        uint64 // times a client waited at its pending cap
	Batches          uint64 // record batches handed to the log
	// Reply holds (doc.go, "Reply holds"): a pipelining client's
	// records wait for the publishes answering its last acks, so its
	// window shares one commit.
	ReplyHolds        uint64 // holds begun
	ReplyHoldTimeouts uint64 // holds ended by their bound before every owed publish arrived
	ReplyHoldNanos    uint64 // time records were held, summed over holds
	FannedOut         uint64 // log records (Publish routes) sent to MQTT subscribers
	// ReservedPropertiesDropped counts MQTT 5 user properties named in
	// the "mqtt." space of runnel's own headers, dropped at ingest.
	ReservedPropertiesDropped uint64

	// Security and limits.
	AuthFailures    uint64 // CONNECTs refused for bad credentials
	QuotaThrottled  uint64 // publishes held for a produce quota (Options.Quotas)
	ACLDenied       uint64 // publish/subscribe/delivery refused by ACL
	ConnsRefusedIP  uint64 // connections closed at the per-IP cap
	ConnsRefused    uint64 // connections closed at the cap of all connections (MaxConns)
	SubsRefused     uint64 // subscription filters refused at a subscription cap
	Malformed       uint64 // connections closed for a malformed packet or a protocol violation
	ConnectTimeouts uint64 // connections that sent no CONNECT in time

	// Persistence.
	PersistWrites uint64 // KV writes of sessions/retained messages
	PersistErrors uint64

	// mochi $SYS counters.
	ClientsConnected int64
	ClientsTotal     int64
	ClientsMaximum   int64
	BytesReceived    int64
	BytesSent        int64
	PacketsReceived  int64
	PacketsSent      int64
	MessagesReceived int64
	MessagesSent     int64
	MessagesDropped  int64
	Retained         int64
	Inflight         int64
	InflightDropped  int64
	SessionsEvicted  int64 // sessions dropped at Options.MaxSessions
	QueuedBytes      int64 // topic and payload bytes of all sessions' unacknowledged QoS 1/2 messages
	Subscriptions    int64
}

// counters are the broker's own atomics.
type counters struct {
	ingested, acked, nacked, failed, rejectedDiskFull, failDisconnects atomic.Uint64
	unrouted, willsIngested, throttled, batches, fannedOut             atomic.Uint64
	authFailures, aclDenied, connsRefusedIP, connectTimeouts           atomic.Uint64
	quotaThrottled                                                     atomic.Uint64
	replyHolds, replyHoldTimeouts, replyHoldNanos                      atomic.Uint64
	reservedDropped                                                    atomic.Uint64
	connsRefused, subsRefused, malformed                               atomic.Uint64
	persistWrites, persistErrors                                       atomic.Uint64
	pending                                                            atomic.Int64
	pendingPeak, pendingBytesPeak                                      peak
}

// peak is a high-water mark.
type peak struct{ v atomic.Int64 }

// note raises the mark to n if n is higher.
func (p *peak) note(n int64) {
	for {
		cur := p.v.Load()
		if n <= cur || p.v.CompareAndSwap(cur, n) {
			return
		}
	}
}

// Stats returns a snapshot of the counters.
func (b *Broker) Stats() Stats {
	c := &b.stats
	i := b.server.Info
	return Stats{
		Ingested:                  c.ingested.Load(),
		Acked:                     c.acked.Load(),
		Nacked:                    c.nacked.Load(),
		Failed:                    c.failed.Load(),
		RejectedDiskFull:          c.rejectedDiskFull.Load(),
		FailDisconnects:           c.failDisconnects.Load(),
		Unrouted:                  c.unrouted.Load(),
		WillsIngested:             c.willsIngested.Load(),
		Pending:                   c.pending.Load(),
		PendingPeak:               c.pendingPeak.v.Load(),
		PendingBytesPeak:          c.pendingBytesPeak.v.Load(),
		Throttled:                 c.throttled.Load(),
		Batches:                   c.batches.Load(),
		ReplyHolds:                c.replyHolds.Load(),
		ReplyHoldTimeouts:         c.replyHoldTimeouts.Load(),
		ReplyHoldNanos:            c.replyHoldNanos.Load(),
		FannedOut:                 c.fannedOut.Load(),
		ReservedPropertiesDropped: c.reservedDropped.Load(),
		AuthFailures:              c.authFailures.Load(),
		QuotaThrottled:            c.quotaThrottled.Load(),
		ACLDenied:                 c.aclDenied.Load(),
		ConnsRefusedIP:            c.connsRefusedIP.Load(),
		ConnsRefused:              c.connsRefused.Load(),
		SubsRefused:               c.subsRefused.Load(),
		Malformed:                 c.malformed.Load(),
		ConnectTimeouts:           c.connectTimeouts.Load(),
		PersistWrites:             c.persistWrites.Load(),
		PersistErrors:             c.persistErrors.Load(),
		ClientsConnected:          atomic.LoadInt64(&i.ClientsConnected),
		ClientsTotal:              int64(b.server.Clients.Len()),
		ClientsMaximum:            atomic.LoadInt64(&i.ClientsMaximum),
		BytesReceived:             atomic.LoadInt64(&i.BytesReceived),
		BytesSent:                 atomic.LoadInt64(&i.BytesSent),
		PacketsReceived:           atomic.LoadInt64(&i.PacketsReceived),
		PacketsSent:               atomic.LoadInt64(&i.PacketsSent),
		MessagesReceived:          atomic.LoadInt64(&i.MessagesReceived),
		MessagesSent:              atomic.LoadInt64(&i.MessagesSent),
		MessagesDropped:           atomic.LoadInt64(&i.MessagesDropped),
		Retained:                  atomic.LoadInt64(&i.Retained),
		Inflight:                  atomic.LoadInt64(&i.Inflight),
		InflightDropped:           atomic.LoadInt64(&i.InflightDropped),
		SessionsEvicted:           atomic.LoadInt64(&i.SessionsEvicted),
		QueuedBytes:               atomic.LoadInt64(&i.InflightBytes),
		Subscriptions:             atomic.LoadInt64(&i.Subscriptions),
	}
}
