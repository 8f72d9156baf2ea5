package mqtt_test

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/sync/mqtt"
)

// A broker that accepts the connection, answers PINGREQ and never
// acknowledges a publish: the publish fails after DeliveryTimeout even
// when it is the first after an idle spell (the pinger, asleep until the
// next ping, is woken by it).
func TestOverduePubackAfterIdle(t *testing.T) {
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
			go func() {
				defer c.Close()
				buf := make([]byte, 512)
				c.Read(buf)                                   // CONNECT
				c.Write([]byte{0x20, 0x03, 0x00, 0x00, 0x00}) // CONNACK v5: accepted, no properties
				answerPings(c)                                // publishes never answered
			}()
		}
	}()
	s, err := mqtt.New(forward.Upstream{Kind: "mqtt", URL: "mqtt://" + ln.Addr().String(),
		DeliveryTimeout: 300 * time.Millisecond, KeepAlive: time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // idle: the pinger sleeps until the ping due in 30 s
	got := make(chan error, 1)
	start := time.Now()
	s.Send(ctx, &forward.Record{Topic: "t", Value: []byte("v")}, func(err error) { got <- err })
	select {
	case err := <-got:
		if err == nil || !strings.Contains(err.Error(), "PUBACK") {
			t.Fatalf("publish without PUBACK: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("overdue PUBACK noticed after %v (DeliveryTimeout 300 ms)", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a publish without PUBACK never failed")
	}
}

// answerPings reads MQTT packets from c until it fails, answering each
// PINGREQ with a PINGRESP and ignoring everything else.
func answerPings(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		h, err := r.ReadByte()
		if err != nil {
			return
		}
		n, shift := 0, 0
		for {
			b, err := r.ReadByte()
			if err != nil {
				return
			}
			n |= int(b&0x7f) << shift
			shift += 7
			if b < 0x80 {
				break
			}
		}
		if _, err := r.Discard(n); err != nil {
			return
		}
		if h>>4 == 12 { // PINGREQ
			c.Write([]byte{0xd0, 0x00})
		}
	}
}

// Ping waits for a PINGRESP on an idle connection (a broker that answers
// nothing fails it, and the next Ping dials again), but not while
// publishes are in flight: their PUBACK deadline watches the connection,
// and a PINGREQ behind them on a slow link could time out on a link that
// works.
func TestPingNeedsPingresp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var dials atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dials.Add(1)
			go func() {
				defer c.Close()
				buf := make([]byte, 512)
				c.Read(buf)                                   // CONNECT
				c.Write([]byte{0x20, 0x03, 0x00, 0x00, 0x00}) // CONNACK v5: accepted, no properties
				for {                                         // nothing answered
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	s, err := mqtt.New(forward.Upstream{Kind: "mqtt", URL: "mqtt://" + ln.Addr().String(),
		DeliveryTimeout: 5 * time.Second, KeepAlive: time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		return s.Ping(ctx)
	}
	if err := ping(); err == nil || !strings.Contains(err.Error(), "no PINGRESP") {
		t.Fatalf("ping of a broker that does not answer: %v", err)
	}
	time.Sleep(600 * time.Millisecond) // redialWait
	got := make(chan error, 1)
	s.Send(context.Background(), &forward.Record{Topic: "t", Value: []byte("v")}, func(err error) { got <- err })
	if err := ping(); err != nil {
		t.Fatalf("ping with a publish in flight: %v", err)
	}
	select {
	case err := <-got:
		t.Fatalf("the publish ended early: %v", err)
	default:
	}
	if n := dials.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (the first killed by the failed ping)", n)
	}
}
