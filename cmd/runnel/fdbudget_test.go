package main

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestDescriptorBudget: RLIMIT_NOFILE less the log's cache, the reserve
// and HTTP is split between Kafka and MQTT; a limit too low is reported.
func TestDescriptorBudget(t *testing.T) {
	b := descriptorBudget(1024, 256)
	if b.Kafka != 288 || b.MQTT != 288 || b.short() {
		t.Fatalf("1024 with 256 cached files: %+v", b)
	}
	if b := descriptorBudget(300, 256); b.Kafka != fdMinConns || !b.short() {
		t.Fatalf("300 with 256 cached files: %+v", b)
	}
}

// limitedAccepts serves a limitListener of n over a new loopback listener
// and returns the inner listener and the connections it accepts.
func limitedAccepts(t *testing.T, n int) (net.Listener, chan net.Conn) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := limitListener(inner, n)
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, n+1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	return inner, accepted
}

// TestLimitListener: the n+1st connection is accepted only once one of n
// closes.
func TestLimitListener(t *testing.T) {
	inner, accepted := limitedAccepts(t, 2)
	for i := range 3 { // from three addresses: one may hold a quarter (here 1)
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}}
		c, err := d.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	a := <-accepted
	<-accepted
	select {
	case <-accepted:
		t.Fatal("a third connection accepted while two are open")
	case <-time.After(200 * time.Millisecond):
	}
	a.Close()
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the third connection was not accepted after one closed")
	}
}

// TestLimitListenerPerAddress: one address holds at most a quarter of the
// connections; one more from it is closed at once while others still get
// theirs.
func TestLimitListenerPerAddress(t *testing.T) {
	inner, accepted := limitedAccepts(t, 8) // 2 per address
	dial := func(ip byte) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, ip)}}
		c, err := d.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial(5)
	dial(5)
	third := dial(5)
	third.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := third.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a third connection from one address: read %v, want it closed", err)
	}
	dial(6)
	for range 3 {
		select {
		case <-accepted:
		case <-time.After(5 * time.Second):
			t.Fatal("a connection within the caps was not accepted")
		}
	}
}
