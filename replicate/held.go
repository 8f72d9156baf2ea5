package replicate

import (
	"fmt"
	"sync"

	"github.com/runnel/runnel/log"
)

// A node holds copies of only some partitions of an origin topic (the
// origin places each partition's copies, see placement), but its local
// copy topic has them all. A read of a partition it does not hold is
// answered as Kafka answers it on a broker that does not host the
// partition: NOT_LEADER_OR_FOLLOWER (log.ErrNotLeader), never as an
// empty partition that would pass for a caught-up copy.

// holdings remembers which partitions of each local copy topic this node
// holds, as their origins last announced (kept while an origin is away:
// its copies are read then most of all).
type holdings struct {
	mu sync.Mutex        // guards m
	m  map[string][]bool // local copy topic → held, by partition
}

// note records the partitions of copy topic local this node holds.
func (h *holdings) note(local string, held []bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string][]bool{}
	}
	h.m[local] = held
}

// forget drops a deleted copy's record.
func (h *holdings) forget(local string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m, local)
}

// holds reports whether this node holds partition of copy topic local.
// A copy whose origin was not heard from since this node started counts
// as held (what it holds on disk is served as before).
func (h *holdings) holds(local string, partition int32) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	held, ok := h.m[local]
	if !ok || partition < 0 || int(partition) >= len(held) {
		return true // unknown: the log answers
	}
	return held[partition]
}

// notHeld is the error of a read of a copy partition this node does not
// hold.
func notHeld(topic string, partition int32, origin string) error {
	return fmt.Errorf("%w: this node holds no copy of partition %d of node %s's %s", log.ErrNotLeader, partition, origin, topic)
}
