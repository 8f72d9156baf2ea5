package replicate

import (
	"sort"
	"time"
)

// Status is a snapshot for /api/peers, `runnel status` and metrics.
type Status struct {
	NodeID   string `json:"node_id"`
	BrokerID int32  `json:"broker_id"`
	// Restoring: the start's taking back from the site's copies runs;
	// appends to this node's partitions wait.
	Restoring bool   `json:"restoring"`
	Peers     []Peer `json:"peers"`
	// Partitions are this node's own partitions with copies.
	Partitions []OriginPartition `json:"partitions"`
	// Copies are the peers' partitions this node holds.
	Copies []Copy `json:"copies"`
	// NotEnoughReplicas counts acks=all produces refused for lack of
	// in-sync copies; Divergences copies stopped for diverging.
	NotEnoughReplicas uint64 `json:"not_enough_replicas"`
	MirroredBytes     uint64 `json:"mirrored_bytes"`
	Divergences       uint64 `json:"divergences"`
	// Truncations counts copies cut back to their origin's epoch history
	// (the origin lost records it had not synced), TruncatedRecords the
	// records they lost.
	Truncations      uint64 `json:"truncations"`
	TruncatedRecords uint64 `json:"truncated_records"`
	// KeptRecords counts the records cut from copies that were kept
	// first in a "__runnel_diverged." topic (see DivergedPrefix).
	KeptRecords uint64 `json:"kept_records"`
	// RestoredRecords counts records this node took back from copies at
	// start.
	RestoredRecords uint64 `json:"restored_records"`
}

// Peer is one member of the site.
type Peer struct {
	NodeID      string    `json:"node_id"`
	BrokerID    int32     `json:"broker_id"`
	State       string    `json:"state"`
	GossipAddr  string    `json:"gossip_addr"`
	KafkaAddr   string    `json:"kafka_addr"`
	Incarnation uint64    `json:"incarnation"`
	LastContact time.Time `json:"last_contact"`
	Self        bool      `json:"self,omitempty"`
}

// OriginPartition is one of this node's partitions and its copies.
type OriginPartition struct {
	Topic             string        `json:"topic"`
	Partition         int32         `json:"partition"`
	End               int64         `json:"end"`
	Acked             int64         `json:"acked_end"`
	ReplicationFactor int32         `json:"replication_factor"`
	MinInsyncReplicas int32         `json:"min_insync_replicas"`
	Mirrors           []MirrorState `json:"mirrors"`
	InSync            []string      `json:"in_sync"`
}

// MirrorState is one copy of an origin partition, as the origin sees it.
type MirrorState struct {
	NodeID     string  `json:"node_id"`
	End        int64   `json:"end"` // durable on the copy
	LagRecords int64   `json:"lag_records"`
	LagSeconds float64 `json:"lag_seconds"`
	InSync     bool    `json:"in_sync"`
	// Stalled: no fetch from the mirror for twice its fetch timeout
	// (FetchMaxWait + FetchTimeout).
	Stalled bool `json:"stalled"`
}

// Copy is a peer's partition held here.
type Copy struct {
	Origin      string  `json:"origin"`
	Topic       string  `json:"topic"` // local name
	Partition   int32   `json:"partition"`
	End         int64   `json:"end"`
	OriginStart int64   `json:"origin_start"`
	OriginEnd   int64   `json:"origin_end"`
	LagRecords  int64   `json:"lag_records"`
	LagSeconds  float64 `json:"lag_seconds"`
	Stalled     bool    `json:"stalled"`
	Diverged    string  `json:"diverged,omitempty"`
	Error       string  `json:"error,omitempty"`
}

// Status returns a snapshot.
func (r *Replicator) Status() Status {
	now := time.Now()
	stallAfter := 2 * (r.opts.FetchMaxWait + r.opts.FetchTimeout)
	st := Status{NodeID: r.nodeID, BrokerID: r.brokerID,
		NotEnoughReplicas: r.stats.notEnough.Load(), MirroredBytes: r.stats.mirroredBytes.Load(), Divergences: r.stats.divergences.Load(),
		Truncations: r.stats.truncations.Load(), TruncatedRecords: r.stats.truncatedRecords.Load(),
		KeptRecords:     r.stats.keptRecords.Load(),
		RestoredRecords: r.stats.restoredRecords.Load(), Restoring: r.restoring.Load()}
	names := map[int32]string{}
	for _, m := range r.peers() {
		names[m.BrokerID] = m.NodeID
		st.Peers = append(st.Peers, Peer{NodeID: m.NodeID, BrokerID: m.BrokerID, State: string(m.State),
			GossipAddr: m.GossipAddr, KafkaAddr: m.KafkaAddr, Incarnation: m.Incarnation, LastContact: m.LastContact, Self: m.Self})
	}
	for _, info := range r.inner.Topics() {
		if info.Config.Origin != "" || info.Config.ReplicationFactor <= 1 {
			continue
		}
		for _, p := range info.Partitions {
			inSync, mirrors := r.origin.isr(info.Name, p.Partition, info.Config.ReplicationFactor)
			op := OriginPartition{Topic: info.Name, Partition: p.Partition, End: p.HWM,
				Acked:             r.origin.ackedEnd(info.Name, p.Partition),
				ReplicationFactor: info.Config.ReplicationFactor, MinInsyncReplicas: info.Config.MinInsyncReplicas,
				Mirrors: []MirrorState{}, InSync: []string{r.nodeID}}
			for _, id := range inSync {
				op.InSync = append(op.InSync, names[id])
			}
			r.origin.mu.Lock()
			part := r.origin.parts[tp{info.Name, p.Partition}]
			for _, m := range mirrors {
				ms := MirrorState{NodeID: m.NodeID, End: -1, LagRecords: p.HWM, InSync: contains(inSync, m.BrokerID), Stalled: true}
				if part != nil {
					if f := part.followers[m.BrokerID]; f != nil {
						ms.Stalled = now.Sub(f.lastFetch) > stallAfter
						ms.End = f.end
						ms.LagRecords = max(p.HWM-f.end, 0)
						if ms.LagRecords > 0 && !f.caughtUp.IsZero() {
							ms.LagSeconds = now.Sub(f.caughtUp).Seconds()
						}
					}
				}
				op.Mirrors = append(op.Mirrors, ms)
			}
			r.origin.mu.Unlock()
			st.Partitions = append(st.Partitions, op)
		}
	}
	r.mu.Lock()
	fs := make([]*fetcher, 0, len(r.fetchers))
	for _, f := range r.fetchers {
		fs = append(fs, f)
	}
	r.mu.Unlock()
	for _, f := range fs {
		f.mu.Lock()
		for k, p := range f.parts {
			if !p.assigned {
				continue
			}
			c := Copy{Origin: f.peer.NodeID, Topic: MirrorName(f.peer.NodeID, k.topic), Partition: k.partition,
				End: p.localEnd, OriginStart: p.originStart, OriginEnd: p.originHWM,
				LagRecords: max(p.originHWM-p.localEnd, 0), Diverged: p.diverged, Error: f.lastErr}
			if c.LagRecords > 0 && !p.caughtUp.IsZero() {
				c.LagSeconds = now.Sub(p.caughtUp).Seconds()
			}
			c.Stalled = p.lastFetch.IsZero() || now.Sub(p.lastFetch) > stallAfter
			st.Copies = append(st.Copies, c)
		}
		f.mu.Unlock()
	}
	sort.Slice(st.Copies, func(i, j int) bool {
		a, b := st.Copies[i], st.Copies[j]
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return a.Partition < b.Partition
	})
	if st.Peers == nil {
		st.Peers = []Peer{}
	}
	if st.Partitions == nil {
		st.Partitions = []OriginPartition{}
	}
	if st.Copies == nil {
		st.Copies = []Copy{}
	}
	return st
}
