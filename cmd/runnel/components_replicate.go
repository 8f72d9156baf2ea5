package main

import (
	"context"
	"fmt"

	"github.com/runnel/runnel/ingest/kafka"
	"github.com/runnel/runnel/replicate"
	"github.com/runnel/runnel/web"
)

// startReplicate joins the site (serf) and starts mirroring when
// --join or --gossip-addr is set. It runs before every other component:
// they all get the replicating view of the log (acks=all, read-only
// mirrors, acknowledged ends).
func (w *wiring) startReplicate(ctx context.Context, stops *[]stopper) error {
	if !w.cfg.Replication.enabled() {
		return nil
	}
	o, err := w.cfg.replicateOptions(w.log, w.logger.With("component", "replicate"), w.nodeID)
	if err != nil {
		return err
	}
	r, err := replicate.Start(ctx, o)
	if err != nil {
		return err
	}
	*stops = append(*stops, stopper{name: "replicate", stop: func(context.Context) error { return r.Close() }, after: true})
	w.repl = r
	w.log = r.Log()
	w.status["replication"] = func() any { return r.Status() }
	w.peers = func() any { return r.Status() }
	w.collectors = append(w.collectors, func(m *web.Metrics) { replicationMetrics(m, r.Status()) })
	return nil
}

// kafkaSite sets the Kafka server's broker id and site view.
func (w *wiring) kafkaSite(o *kafka.Options) {
	if w.repl == nil {
		return
	}
	o.NodeID = w.repl.BrokerID()
	o.Cluster = w.repl
	o.ClusterID = "runnel-site"
	if w.cfg.Site != "" {
		o.ClusterID = "runnel-site-" + w.cfg.Site
	}
}

func replicationMetrics(m *web.Metrics, st replicate.Status) {
	for _, p := range st.Peers {
		for _, s := range []string{"alive", "leaving", "left", "failed"} {
			v := 0.0
			if p.State == s {
				v = 1
			}
			m.Gauge("runnel_peer_state", "1 for each site member's current state.", v, web.Labels{"peer": p.NodeID, "state": s})
		}
	}
	for _, p := range st.Partitions {
		l := web.Labels{"topic": p.Topic, "partition": fmt.Sprint(p.Partition)}
		m.Gauge("runnel_replication_in_sync_copies", "Copies of this node's partition in the in-sync set, this node's included.", float64(len(p.InSync)), l)
		for _, ms := range p.Mirrors {
			ml := web.Labels{"topic": p.Topic, "partition": fmt.Sprint(p.Partition), "peer": ms.NodeID}
			m.Gauge("runnel_replication_mirror_lag_records", "Records of this node's partition not yet durable on the mirror.", float64(ms.LagRecords), ml)
			m.Gauge("runnel_replication_mirror_lag_seconds", "Time since the mirror last held everything.", ms.LagSeconds, ml)
		}
	}
	for _, c := range st.Copies {
		l := web.Labels{"topic": c.Topic, "partition": fmt.Sprint(c.Partition), "peer": c.Origin}
		m.Gauge("runnel_replication_copy_lag_records", "Records of the origin's partition this node's copy lacks.", float64(c.LagRecords), l)
		m.Gauge("runnel_replication_copy_lag_seconds", "Time since this node's copy last held everything.", c.LagSeconds, l)
		stalled := 0.0
		if c.Stalled {
			stalled = 1
		}
		m.Gauge("runnel_replication_copy_stalled", "1 when the copy had no fetch answer for twice the fetch timeout.", stalled, l)
	}
	m.Counter("runnel_replication_not_enough_replicas_total", "acks=all produces refused for lack of in-sync copies.", float64(st.NotEnoughReplicas), nil)
	m.Counter("runnel_replication_mirrored_bytes_total", "Bytes of peers' partitions stored here.", float64(st.MirroredBytes), nil)
	m.Counter("runnel_replication_divergences_total", "Copies stopped because they diverged from their origin.", float64(st.Divergences), nil)
}
