package kafka

import "sync/atomic"

// Stats is a point-in-time snapshot of the server's counters.
type Stats struct {
	Conns            int64            // open connections
	ConnsTotal       uint64           // connections accepted since New
	ConnsRefused     uint64           // connections closed at accept: Options.MaxConns reached
	ConnectTimeouts  uint64           // connections closed before their first request (or SASL) within Options.ConnectTimeout
	IdleTimeouts     uint64           // connections closed after Options.IdleTimeout without a request
	Requests         map[int16]uint64 // requests by API key (only keys seen)
	ProduceRecords   uint64           // records acknowledged as appended (duplicates excluded)
	ProduceBytes     uint64           // record-batch bytes appended
	ProduceErrors    uint64           // partitions answered with an error in Produce
	FetchBytes       uint64           // record-batch bytes sent in Fetch responses
	Errors           uint64           // responses (or partitions) carrying an error code
	Unsupported      uint64           // requests answered UNSUPPORTED_VERSION
	BadFrames        uint64           // connections closed for malformed/oversized frames
	AuthFailures     uint64           // failed SASL authentications
	AnonymousRefused uint64           // connections of anonymous clients off loopback, given no rights
	Throttled        uint64           // produce requests answered with a quota's throttle time
	// QueuedRequestBytes is the request bytes held now (MaxQueuedRequestBytes).
	QueuedRequestBytes int64
	// RequestBudgetWaits counts frames that waited for room in MaxQueuedRequestBytes.
	RequestBudgetWaits uint64
	// MemoryReturns counts the times memory was given back to the OS after a burst of requests.
	MemoryReturns uint64
	// Txn is the transaction coordinator's.
	Txn TxnStats
}

type stats struct {
	conns            atomic.Int64
	connsTotal       atomic.Uint64
	connsRefused     atomic.Uint64
	connectTimeouts  atomic.Uint64
	idleTimeouts     atomic.Uint64
	requests         [maxKey]atomic.Uint64
	produceRecords   atomic.Uint64
	produceBytes     atomic.Uint64
	produceErrors    atomic.Uint64
	fetchBytes       atomic.Uint64
	errors           atomic.Uint64
	unsupported      atomic.Uint64
	badFrames        atomic.Uint64
	authFailures     atomic.Uint64
	anonymousRefused atomic.Uint64
	throttled        atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Conns:              s.stats.conns.Load(),
		ConnsTotal:         s.stats.connsTotal.Load(),
		ConnsRefused:       s.stats.connsRefused.Load(),
		ConnectTimeouts:    s.stats.connectTimeouts.Load(),
		IdleTimeouts:       s.stats.idleTimeouts.Load(),
		Requests:           map[int16]uint64{},
		ProduceRecords:     s.stats.produceRecords.Load(),
		ProduceBytes:       s.stats.produceBytes.Load(),
		ProduceErrors:      s.stats.produceErrors.Load(),
		FetchBytes:         s.stats.fetchBytes.Load(),
		Errors:             s.stats.errors.Load(),
		Unsupported:        s.stats.unsupported.Load(),
		BadFrames:          s.stats.badFrames.Load(),
		AuthFailures:       s.stats.authFailures.Load(),
		AnonymousRefused:   s.stats.anonymousRefused.Load(),
		Throttled:          s.stats.throttled.Load(),
		QueuedRequestBytes: s.budget.held.Load() + s.unauth.held.Load(),
		RequestBudgetWaits: s.budget.waits.Load() + s.unauth.waits.Load(),
		MemoryReturns:      s.budget.frees.Load(),
		Txn:                s.txns.stats(),
	}
	for k := range s.stats.requests {
		if n := s.stats.requests[k].Load(); n > 0 {
			st.Requests[int16(k)] = n
		}
	}
	return st
}
