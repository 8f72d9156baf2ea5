package main

import (
	"context"
	"fmt"

	"github.com/runnel/runnel/sync/forward"
	synckafka "github.com/runnel/runnel/sync/kafka"
	syncmqtt "github.com/runnel/runnel/sync/mqtt"
	"github.com/runnel/runnel/web"
)

func (w *wiring) startForward(ctx context.Context, stops *[]stopper) error {
	o := w.cfg.forwardOptions(w.log, w.logger.With("component", "forward"), w.nodeID)
	o.Sinks = map[string]forward.NewSinkFunc{"kafka": synckafka.NewSink, "mqtt": syncmqtt.NewSink}
	if len(o.Routes) == 0 {
		if len(o.Upstreams) > 0 {
			w.logger.Warn("upstreams configured but no routes: nothing is forwarded")
		}
		return nil
	}
	fo := w.failover(&o)
	f, err := forward.New(o)
	if err != nil {
		return fmt.Errorf("forwarding: %v", err)
	}
	if fo != nil {
		fo.Start(f)
		*stops = append(*stops, stopper{name: "failover", stop: func(context.Context) error { fo.Close(); return nil }})
	}
	// Start never fails on an unreachable upstream: routes report and retry.
	if err := f.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("forwarding: %v", err)
	}
	*stops = append(*stops, stopper{name: "forward", stop: f.Shutdown})
	w.routes = func() any { return f.Routes() }
	w.status["routes"] = func() any { return f.Routes() }
	w.collectors = append(w.collectors, func(m *web.Metrics) { forwardMetrics(m, f.Routes()) })
	w.pauseRoute = f.SetPaused
	return nil
}
