package forward

import (
	"sync"
	"sync/atomic"
)

// StreamGate helps a Sink honour Record.Attempt: after Failed(rec), Blocked
// is true for later records of the same topic, origin partition and
// attempt. The zero value is ready; safe for concurrent use.
type StreamGate struct {
	mu sync.Mutex // guards m
	m  map[gateKey]uint64
	n  atomic.Int64 // len(m), read without the lock by Blocked
}

type gateKey struct {
	topic string
	part  int32
}

// Failed notes that rec failed.
func (g *StreamGate) Failed(rec *Record) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = map[gateKey]uint64{}
	}
	g.m[gateKey{rec.Topic, rec.Partition}] = rec.Attempt + 1
	g.n.Store(int64(len(g.m)))
}

// Blocked reports whether rec must fail because an earlier record of its
// stream and attempt failed.
func (g *StreamGate) Blocked(rec *Record) bool {
	if g.n.Load() == 0 {
		// Nothing failed (or every failure was followed by a newer
		// attempt): the common case, without the lock. Failed happens
		// before the forwarder learns of the failure, so a record of a
		// newer attempt or a later one it still sends sees it.
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	a, ok := g.m[gateKey{rec.Topic, rec.Partition}]
	if ok && a < rec.Attempt+1 {
		delete(g.m, gateKey{rec.Topic, rec.Partition}) // a newer attempt began
		g.n.Store(int64(len(g.m)))
		return false
	}
	return ok && a == rec.Attempt+1
}
