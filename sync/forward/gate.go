package forward

import "sync"

// StreamGate helps a Sink honour Record.Attempt: after Failed(rec), Blocked
// is true for later records of the same topic, origin partition and
// attempt. The zero value is ready; safe for concurrent use.
type StreamGate struct {
	mu sync.Mutex // guards m
	m  map[gateKey]uint64
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
}

// Blocked reports whether rec must fail because an earlier record of its
// stream and attempt failed.
func (g *StreamGate) Blocked(rec *Record) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	a, ok := g.m[gateKey{rec.Topic, rec.Partition}]
	if ok && a < rec.Attempt+1 {
		delete(g.m, gateKey{rec.Topic, rec.Partition}) // a newer attempt began
		return false
	}
	return ok && a == rec.Attempt+1
}
