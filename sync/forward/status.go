package forward

import "time"

// Route states.
//
// A route is connected while the upstream acknowledges its records or,
// with nothing to send, answers a probe every Upstream.ProbeInterval. A
// failed record, probe or sink build makes it backing-off; an idle route
// stays there, probing, until a probe is answered; a route with records
// to send retries them after the backoff (starting again until the first
// acknowledgement or the next failure).
const (
	StateStarting   = "starting"    // no acknowledgement yet since start or the last error
	StateConnected  = "connected"   // the upstream acknowledges records
	StateBackingOff = "backing-off" // waiting before a retry after an error
	StatePaused     = "paused"      // configured paused; data stays in the log
	StateClosed     = "closed"
)

// RouteStatus is a snapshot of one route for `runnel status`, /metrics and
// GET /api/routes.
type RouteStatus struct {
	Name     string `json:"name"`
	Upstream string `json:"upstream"`
	Kind     string `json:"kind"`
	Priority int    `json:"priority"`
	State    string `json:"state"`
	// StateSince is when the route entered State (it moves only when
	// State changes: failed probes of an idle route that is already
	// backing-off keep it).
	StateSince time.Time `json:"state_since"`
	// DownSince is when the route's current spell without a working
	// link began (it left connected, was resumed or started) while it is
	// starting or backing-off: a route retrying a backlog alternates
	// between the two, and this stays put. Zero while connected, paused
	// or closed.
	DownSince time.Time `json:"down_since,omitzero"`
	// Partitions is the number of local partitions the route covers.
	Partitions int `json:"partitions"`
	// LagRecords is the number of offsets between the acknowledged cursor
	// and the high-water mark, summed over partitions.
	LagRecords int64 `json:"lag_records"`
	// LagBytes estimates the bytes behind (LagRecords times the mean
	// forwarded record size).
	LagBytes int64 `json:"lag_bytes"`
	// OldestUnsentAge is the age of the oldest record not yet acknowledged
	// (by its timestamp); 0 when caught up.
	OldestUnsentAge time.Duration `json:"oldest_unsent_age_ns"`
	// InFlight is the number of records sent and not yet acknowledged.
	InFlight int `json:"in_flight"`
	// RecordsPerSec and BytesPerSec are acknowledged rates over the last
	// few seconds.
	RecordsPerSec float64 `json:"records_per_sec"`
	BytesPerSec   float64 `json:"bytes_per_sec"`
	// Totals since start.
	SentRecords  uint64 `json:"sent_records"`
	AckedRecords uint64 `json:"acked_records"`
	AckedBytes   uint64 `json:"acked_bytes"`
	Errors       uint64 `json:"errors"`
	Retries      uint64 `json:"retries"`
	// Dropped counts records this route will never forward: removed from
	// the log (drop-oldest under disk pressure) before it got to them, or
	// in a batch whose records cannot be decoded (skipped, logged).
	Dropped uint64 `json:"dropped_unforwarded"`
	// LastError is the latest upstream or read error ("" when none) and
	// when it happened.
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	// LastAck is when the upstream last acknowledged a record.
	LastAck time.Time `json:"last_ack,omitzero"`
	// Origins says whose partitions the route forwards: per origin node
	// and reason (own, takeover, hand-back), how many and since when.
	Origins []OriginStatus `json:"origins,omitempty"`
}

// OriginStatus is a route's forwarding of one origin node's partitions
// for one reason.
type OriginStatus struct {
	Origin     string    `json:"origin"`
	Why        string    `json:"why"`
	Partitions int       `json:"partitions"`
	Since      time.Time `json:"since"` // the earliest partition's start
}

// Stats is a snapshot of the forwarder's totals over all routes.
type Stats struct {
	Routes       int
	SentRecords  uint64
	AckedRecords uint64
	AckedBytes   uint64
	Errors       uint64
	Dropped      uint64
	LagRecords   int64
	// CursorLogErrors counts failed appends to the cursor log.
	CursorLogErrors uint64
}
