package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/runnel/runnel/ingest/mqtt"
	"github.com/runnel/runnel/web"
)

func (w *wiring) startMQTT(stops *[]stopper) error {
	o := w.cfg.mqttOptions(w.log, w.logger.With("component", "mqtt"))
	o.Quotas = w.produceQuotas()
	if o.TLS.CertFile != "" {
		p, err := w.tlsPair("mqtt.tls", o.TLS.CertFile, o.TLS.KeyFile)
		if err != nil {
			return err
		}
		o.TLS.GetCertificate = p.GetCertificate
	}
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
	switch {
	case !o.AllowAnonymous:
		w.logger.Info("mqtt: anonymous clients refused")
	case !o.AllowRemoteAnonymous:
		w.logger.Info("mqtt: anonymous clients allowed from the loopback interface only")
	}
	w.mqttUsers = b.SetUsers
	w.collectors = append(w.collectors, func(m *web.Metrics) { mqttMetrics(m, b.Stats()) })
	w.mqttPublish = func(ctx context.Context, m web.MQTTMessage) error { return mqttPublish(ctx, b, m) }
	w.mqttStatus = func() any { return b.Snapshot(500) }
	w.ingest["mqtt"] = func() web.IngestCount {
		st := b.Stats()
		return web.IngestCount{Records: st.Ingested, Bytes: uint64(st.BytesReceived)}
	}
	return nil
}

// mqttPublish hands an HTTP publish to the broker (web does not import
// ingest/mqtt).
func mqttPublish(ctx context.Context, b *mqtt.Broker, m web.MQTTMessage) error {
	msg := mqtt.Message{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain, ClientID: m.ClientID,
		ContentType: m.ContentType, ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData}
	for _, u := range m.UserProperties {
		msg.UserProperties = append(msg.UserProperties, packets.UserProperty{Key: u[0], Val: u[1]})
	}
	if user, ok := web.Principal(ctx); ok && !b.MayPublish(user, m.Topic, m.ClientID) {
		return fmt.Errorf("%w: user %s may not write the log topic MQTT topic %q is stored in", web.ErrForbidden, user, m.Topic)
	}
	stored, err := b.Publish(ctx, msg)
	switch {
	case errors.Is(err, mqtt.ErrInvalidMessage):
		// The HTTP answer says why, once: not "web: invalid MQTT
		// message: mqtt: invalid message: topic ...".
		return fmt.Errorf("%w: %s", web.ErrInvalidMessage, strings.TrimPrefix(err.Error(), mqtt.ErrInvalidMessage.Error()+": "))
	case err != nil:
		return err
	case !stored:
		return web.ErrNotStored
	}
	return nil
}
