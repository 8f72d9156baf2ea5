package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/runnel/runnel/ingest/kafka"
	"github.com/runnel/runnel/ingest/kafka/group"
	"github.com/runnel/runnel/web"
)

// startComponents starts the background services and protocol servers
// that sit on the log. Forwarding starts first: it fixes up cursors left
// beyond the log end by a lost tail before any new record can reuse those
// offsets.
func (w *wiring) startComponents(ctx context.Context, stops *[]stopper) error {
	if err := w.startReplicate(ctx, stops); err != nil {
		return err
	}
	if err := w.startForward(ctx, stops); err != nil {
		return err
	}
	if err := w.startKafka(stops); err != nil {
		return err
	}
	return w.startMQTT(stops)
}

func (w *wiring) startKafka(stops *[]stopper) error {
	if w.cfg.Kafka.Addr == "" {
		return nil
	}
	coord, err := group.New(group.Options{Meta: w.log.Meta(), Log: w.log, Logger: w.logger.With("component", "groups")})
	if err != nil {
		return fmt.Errorf("consumer groups: %v", err)
	}
	started := false
	defer func() {
		if !started {
			coord.Close()
		}
	}()
	o, err := w.cfg.kafkaOptions(w.log, coord, w.logger.With("component", "kafka"), w.nodeID)
	if err != nil {
		return err
	}
	if w.cfg.Kafka.TLS.CertFile != "" {
		p, err := w.tlsPair("kafka.tls", w.cfg.Kafka.TLS.CertFile, w.cfg.Kafka.TLS.KeyFile)
		if err != nil {
			return err
		}
		o.TLS = p.ServerConfig()
		if ca := w.cfg.Kafka.TLS.ClientCAFile; ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return fmt.Errorf("config: kafka.tls.client-ca-file: %v", err)
			}
			o.TLS.ClientCAs = x509.NewCertPool()
			if !o.TLS.ClientCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("config: kafka.tls.client-ca-file: no certificate in %s", ca)
			}
			o.TLS.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	w.kafkaUsers = o.Users
	o.Quotas = w.produceQuotas()
	w.kafkaSite(&o)
	ks, err := kafka.New(o)
	if err != nil {
		return fmt.Errorf("kafka: %v", err)
	}
	ln, err := listen("kafka-addr", w.cfg.Kafka.Addr)
	if err != nil {
		return err
	}
	go func() {
		if err := ks.Serve(ln); err != nil {
			w.errc <- fmt.Errorf("kafka listener: %v", err)
		}
	}()
	// The coordinator stops after the server (its handlers use it).
	*stops = append(*stops, stopper{name: "kafka", stop: func(ctx context.Context) error {
		err := ks.Shutdown(ctx)
		coord.Close()
		return err
	}})
	started = true
	w.collectors = append(w.collectors, func(m *web.Metrics) { kafkaMetrics(m, ks.Stats(), coord.Stats()) })
	w.ingest["kafka"] = func() web.IngestCount {
		st := ks.Stats()
		return web.IngestCount{Records: st.ProduceRecords, Bytes: st.ProduceBytes}
	}
	w.consumers = func() ([]web.ConsumerGroup, error) { return consumerGroups(coord) }
	return nil
}

// consumerGroups is the coordinator's groups for the HTTP surface.
func consumerGroups(c *group.Coordinator) ([]web.ConsumerGroup, error) {
	gs, err := c.Groups()
	if err != nil {
		return nil, err
	}
	out := make([]web.ConsumerGroup, 0, len(gs))
	for _, g := range gs {
		cg := web.ConsumerGroup{Name: g.Name, State: g.State}
		for _, m := range g.Members {
			cg.Members = append(cg.Members, web.ConsumerMember{ID: m.ID, ClientID: m.ClientID, ClientHost: m.ClientHost})
		}
		for _, o := range g.Offsets {
			cg.Offsets = append(cg.Offsets, web.CommittedOffset{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset})
		}
		out = append(out, cg)
	}
	return out, nil
}
