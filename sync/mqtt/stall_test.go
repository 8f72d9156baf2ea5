package mqtt_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/sync/mqtt"
)

// TestSendHonoursContextWhileConnecting: a broker that accepts the TCP
// connection and never answers CONNECT cannot hold a Send (or the
// forwarder's shutdown behind it) past the end of its ctx.
func TestSendHonoursContextWhileConnecting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	s, err := mqtt.New(forward.Upstream{Kind: "mqtt", URL: "mqtt://" + ln.Addr().String()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background()) // no deadline: cancelled
	time.AfterFunc(200*time.Millisecond, cancel)
	done := make(chan error, 1)
	start := time.Now()
	s.Send(ctx, &forward.Record{Topic: "t", Value: []byte("v")}, func(err error) { done <- err })
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("done(%v), want the ctx's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("done not called")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Send took %v with a ctx cancelled after 200ms", took)
	}
}
