package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/runnel/runnel/ingest/kafka"
	"github.com/runnel/runnel/ingest/kafka/group"
	"github.com/runnel/runnel/web"
)

// startComponents starts the background services and protocol servers
// that sit on the log. Forwarding starts first: it fixes up cursors left
// beyond the log end by a lost tail before any new record can reuse those
// offsets.
func (w *wiring) startComponents(ctx context.Context, stops *[]stopper) error {
	if err := w.startForward(ctx, stops); err != nil {
		return err
	}
	if err := w.startKafka(stops); err != nil {
		return err
	}
	return w.startMQTT(stops)
}

func (w *wiring) startKafka(stops *[]stopper) error {
	if w.cfg.KafkaAddr == "" {
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
	users := map[string]string{}
	for _, u := range w.cfg.KafkaUsers {
		name, pass, _ := strings.Cut(u, ":")
		users[name] = pass
	}
	var tc *tls.Config
	if w.cfg.KafkaTLSCert != "" {
		cert, err := tls.LoadX509KeyPair(w.cfg.KafkaTLSCert, w.cfg.KafkaTLSKey)
		if err != nil {
			return fmt.Errorf("--kafka-tls-cert/--kafka-tls-key: %v", err)
		}
		tc = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ks, err := kafka.New(kafka.Options{
		Log:              w.log,
		Groups:           coord,
		Logger:           w.logger.With("component", "kafka"),
		ClusterID:        "runnel-" + w.nodeID,
		AdvertisedAddr:   w.cfg.KafkaAdvertisedAddr,
		AutoCreateTopics: w.cfg.AutoCreateTopics,
		MaxFrameBytes:    w.cfg.KafkaMaxFrameBytes,
		TLS:              tc,
		SASLPlain:        users,
	})
	if err != nil {
		return fmt.Errorf("kafka: %v", err)
	}
	ln, err := listen("kafka-addr", w.cfg.KafkaAddr)
	if err != nil {
		return err
	}
	go func() {
		if err := ks.Serve(ln); err != nil {
			w.errc <- fmt.Errorf("kafka listener: %v", err)
		}
	}()
	// The coordinator stops after the server (its handlers use it).
	*stops = append(*stops, stopper{"kafka", func(ctx context.Context) error {
		err := ks.Shutdown(ctx)
		coord.Close()
		return err
	}})
	started = true
	w.collectors = append(w.collectors, func(m *web.Metrics) { web.KafkaMetrics(m, ks.Stats(), coord.Stats()) })
	return nil
}
