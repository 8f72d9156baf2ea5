package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/runnel/runnel/sync/forward"
	synckafka "github.com/runnel/runnel/sync/kafka"
	syncmqtt "github.com/runnel/runnel/sync/mqtt"
	"github.com/runnel/runnel/web"
)

// forwardOptions builds the forwarder's options from the config file's
// upstreams and routes sections plus the flags for the common case:
// --upstream-kafka BROKERS (the upstream "default") and --forward GLOB
// (routes to it, upstream name = --forward-prefix + local name).
func (w *wiring) forwardOptions() (forward.Options, error) {
	o := forward.Options{
		Log: w.log, Logger: w.logger.With("component", "forward"),
		NodeID: w.nodeID, Site: w.cfg.Site,
		Upstreams: map[string]forward.Upstream{},
		Sinks:     map[string]forward.NewSinkFunc{"kafka": synckafka.NewSink, "mqtt": syncmqtt.NewSink},
	}
	if sec := &w.cfg.sections.Upstreams; sec.Kind != 0 {
		if err := decodeStrict(sec, &o.Upstreams); err != nil {
			return o, fmt.Errorf("config file section upstreams: %v", err)
		}
	}
	if sec := &w.cfg.sections.Routes; sec.Kind != 0 {
		if err := decodeStrict(sec, &o.Routes); err != nil {
			return o, fmt.Errorf("config file section routes: %v", err)
		}
	}
	if w.cfg.UpstreamKafka != "" {
		if _, dup := o.Upstreams[forward.DefaultUpstream]; dup {
			return o, fmt.Errorf("--upstream-kafka and an upstreams entry named %q both given", forward.DefaultUpstream)
		}
		o.Upstreams[forward.DefaultUpstream] = forward.Upstream{Kind: "kafka", Brokers: splitList(w.cfg.UpstreamKafka)}
	}
	for _, glob := range w.cfg.Forward {
		o.Routes = append(o.Routes, forward.Route{
			Name:     "forward-" + strings.NewReplacer("*", "all", "?", "_", "/", "_").Replace(glob),
			Upstream: forward.DefaultUpstream,
			Topics:   []string{glob},
			Target:   w.cfg.ForwardPrefix + "{topic}",
		})
	}
	return o, nil
}

func (w *wiring) startForward(ctx context.Context, stops *[]stopper) error {
	o, err := w.forwardOptions()
	if err != nil {
		return err
	}
	if len(o.Routes) == 0 {
		if len(o.Upstreams) > 0 {
			w.logger.Warn("upstreams configured but no routes: nothing is forwarded")
		}
		return nil
	}
	f, err := forward.New(o)
	if err != nil {
		return fmt.Errorf("forwarding: %v", err)
	}
	// Start never fails on an unreachable upstream: routes report and retry.
	if err := f.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("forwarding: %v", err)
	}
	*stops = append(*stops, stopper{"forward", f.Shutdown})
	w.routes = func() any { return f.Routes() }
	w.status["routes"] = func() any { return f.Routes() }
	w.collectors = append(w.collectors, func(m *web.Metrics) { web.ForwardMetrics(m, f.Routes()) })
	return nil
}
