package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/runnel/runnel/ingest/kafka"
	"github.com/runnel/runnel/replicate"
	"github.com/runnel/runnel/sync/forward"
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
	w.peers = func() any {
		st := struct {
			replicate.Status
			Failover *replicate.FailoverStatus `json:"failover,omitempty"`
		}{Status: r.Status()}
		if w.failoverStatus != nil {
			fs := w.failoverStatus()
			st.Failover = &fs
		}
		return st
	}
	w.collectors = append(w.collectors, func(m *web.Metrics) { replicationMetrics(m, r.Status()) })
	return nil
}

// failover makes forwarding follow the site (replication.failover): the
// duties come from replication, progress goes to the cursor log peers
// mirror. nil when this box does not replicate or failover is off.
func (w *wiring) failover(o *forward.Options) *replicate.Failover {
	if w.repl == nil || !w.cfg.Replication.Failover {
		return nil
	}
	fo := w.repl.Failover(w.cfg.failoverOptions(w.logger.With("component", "failover")))
	o.Duties = fo
	o.CursorTopic = forward.CursorTopic
	w.status["failover"] = func() any { return fo.Status() }
	w.failoverStatus = fo.Status
	w.collectors = append(w.collectors, func(m *web.Metrics) { failoverMetrics(m, fo.Status()) })
	return fo
}

func failoverMetrics(m *web.Metrics, st replicate.FailoverStatus) {
	n := map[[2]string]int{}
	for _, d := range st.Duties {
		if d.State == "forwarding" {
			n[[2]string{d.Origin, d.Why}]++
		}
	}
	for k, v := range n {
		m.Gauge("runnel_failover_forwarded_partitions", "Origin partitions this box forwards, by origin and why (own, takeover, hand-back).", float64(v), web.Labels{"origin": k[0], "why": k[1]})
	}
	for _, d := range st.Duties {
		m.Gauge("runnel_failover_duty_since_timestamp_seconds", "When this box began forwarding (or stopping) an origin partition, by origin, topic, partition, why and state (forwarding, releasing, dropping).",
			float64(d.Since.UnixMilli())/1000, web.Labels{"origin": d.Origin, "topic": d.Topic, "partition": strconv.Itoa(int(d.Partition)), "why": d.Why, "state": d.State})
	}
	m.Gauge("runnel_failover_fresh", "1 when this box's copies of the peers' cursor logs are recent enough to act on.", b2f(st.Fresh), nil)
	m.Counter("runnel_failover_takeovers_total", "Origin partitions of other boxes this box took over.", float64(st.Takeovers), nil)
	m.Counter("runnel_failover_hand_backs_total", "Own partitions this box took back from a survivor.", float64(st.HandBacks), nil)
	m.Counter("runnel_failover_releases_total", "Partitions this box stopped forwarding for their returning origin.", float64(st.Releases), nil)
	m.Counter("runnel_failover_overlaps_total", "Partitions this box forwarded while another box had taken them (fenced on learning it).", float64(st.Overlaps), nil)
	m.Counter("runnel_failover_stale_drops_total", "Partitions this box stopped forwarding because its view of the site was stale (after a pause).", float64(st.StaleDrops), nil)
	m.Counter("runnel_failover_cursor_log_errors_total", "Claims or releases that could not be written to the cursor log.", float64(st.LogErrors), nil)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
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
			stalled := 0.0
			if ms.Stalled {
				stalled = 1
			}
			m.Gauge("runnel_replication_mirror_stalled", "1 when the mirror has not fetched for twice its fetch timeout.", stalled, ml)
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
	restoring := 0.0
	if st.Restoring {
		restoring = 1
	}
	m.Gauge("runnel_replication_restoring", "1 while the start takes back from the site's copies what this node lacks (appends wait).", restoring, nil)
	m.Counter("runnel_replication_not_enough_replicas_total", "acks=all produces refused for lack of in-sync copies.", float64(st.NotEnoughReplicas), nil)
	m.Counter("runnel_replication_mirrored_bytes_total", "Bytes of peers' partitions stored here.", float64(st.MirroredBytes), nil)
	m.Counter("runnel_replication_divergences_total", "Copies stopped because they diverged from their origin.", float64(st.Divergences), nil)
	m.Counter("runnel_replication_truncations_total", "Copies cut back to their origin's epoch history (the origin lost records it had not synced).", float64(st.Truncations), nil)
	m.Counter("runnel_replication_restored_records_total", "Records this node took back from its copies on the site at start.", float64(st.RestoredRecords), nil)
	m.Counter("runnel_replication_truncated_records_total", "Records removed from copies cut back to their origin's history.", float64(st.TruncatedRecords), nil)
	m.Counter("runnel_replication_kept_records_total", "Records cut from copies that were kept first in a __runnel_diverged.<origin>.<topic> topic.", float64(st.KeptRecords), nil)
}
