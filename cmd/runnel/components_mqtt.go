package main

import (
	"fmt"
	"net"

	"github.com/runnel/runnel/ingest/mqtt"
	"github.com/runnel/runnel/web"
)

// mqttOptions builds the broker's options: the config file's mqtt section,
// then the flat keys (flags/env/file) on top.
//
// Anonymous access: --mqtt-allow-anonymous when given explicitly; else the
// section's allow-anonymous when it sets one; else allowed only when no users
// are configured (the zero-config bench setup; the README warns about it).
func (w *wiring) mqttOptions() (mqtt.Options, error) {
	var o mqtt.Options
	sec := &w.cfg.sections.MQTT
	anonInSection := false
	if sec.Kind != 0 {
		if err := decodeStrict(sec, &o); err != nil {
			return o, fmt.Errorf("config file section mqtt: %v", err)
		}
		var probe struct {
			A *bool `yaml:"allow-anonymous"`
		}
		sec.Decode(&probe)
		anonInSection = probe.A != nil
	}
	o.Log, o.Logger = w.log, w.logger.With("component", "mqtt")
	for _, s := range w.cfg.MQTTRoutes {
		r, err := mqtt.ParseRoute(s)
		if err != nil {
			return o, fmt.Errorf("--mqtt-route %q: %v", s, err)
		}
		o.Routes = append(o.Routes, r)
	}
	for _, s := range w.cfg.MQTTPublish {
		p, err := mqtt.ParsePublishRoute(s)
		if err != nil {
			return o, fmt.Errorf("--mqtt-publish %q: %v", s, err)
		}
		o.Publish = append(o.Publish, p)
	}
	switch {
	case w.cfg.set["mqtt-allow-anonymous"]:
		o.AllowAnonymous = w.cfg.MQTTAllowAnonymous
	case anonInSection:
	default:
		o.AllowAnonymous = len(o.Users) == 0
	}
	if w.cfg.MQTTTLSCert != "" {
		o.TLS.CertFile, o.TLS.KeyFile = w.cfg.MQTTTLSCert, w.cfg.MQTTTLSKey
	}
	if w.cfg.MQTTTLSClientCA != "" {
		o.TLS.ClientCAFile, o.TLS.RequireClientCert = w.cfg.MQTTTLSClientCA, true
	}
	if w.cfg.MQTTTLSAddr != "" {
		o.TLS.Addr = w.cfg.MQTTTLSAddr
	}
	if w.cfg.MQTTWSAddr != "" {
		o.WebsocketAddr = w.cfg.MQTTWSAddr
	}
	if w.cfg.MQTTAddr != "" || w.cfg.set["mqtt-addr"] {
		o.Addr = w.cfg.MQTTAddr
	}
	return o, o.Validate()
}

func (w *wiring) startMQTT(stops *[]stopper) error {
	o, err := w.mqttOptions()
	if err != nil {
		return err
	}
	if o.Addr == "" && o.TLS.Addr == "" && o.WebsocketAddr == "" {
		return nil
	}
	b, err := mqtt.New(o)
	if err != nil {
		return fmt.Errorf("mqtt: %v", err)
	}
	*stops = append(*stops, stopper{"mqtt", b.Shutdown})
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
