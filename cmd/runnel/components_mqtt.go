package main

import (
	"fmt"
	"net"

	"github.com/runnel/runnel/ingest/mqtt"
	"github.com/runnel/runnel/web"
)

func (w *wiring) startMQTT(stops *[]stopper) error {
	o := w.cfg.mqttOptions(w.log, w.logger.With("component", "mqtt"))
	if err := o.Validate(); err != nil {
		return fmt.Errorf("config: %v", err)
	}
	if o.Addr == "" && o.TLS.Addr == "" && o.WebsocketAddr == "" {
		return nil
	}
	b, err := mqtt.New(o)
	if err != nil {
		return fmt.Errorf("mqtt: %v", err)
	}
	*stops = append(*stops, stopper{name: "mqtt", stop: b.Shutdown})
	type srv struct {
		flag, addr string
		run        func(net.Listener) error
	}
	for _, s := range []srv{{"mqtt-addr", o.Addr, b.Serve}, {"mqtt-tls-addr", o.TLS.Addr, b.ServeTLS}, {"mqtt-ws-addr", o.WebsocketAddr, b.ServeWebsocket}} {
		if s.addr == "" {
			continue
		}
		ln, err := listen(s.flag, s.addr)
		if err != nil {
			return err
		}
		go func() {
			if err := s.run(ln); err != nil && err != mqtt.ErrClosed {
				w.errc <- fmt.Errorf("mqtt listener %s: %v", s.addr, err)
			}
		}()
	}
	if !o.AllowAnonymous {
		w.logger.Info("mqtt: anonymous clients refused")
	} else {
		w.logger.Warn("mqtt: anonymous clients allowed (set mqtt-allow-anonymous: false with users for production)")
	}
	w.collectors = append(w.collectors, func(m *web.Metrics) { web.MQTTMetrics(m, b.Stats()) })
	return nil
}
