package kafka

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestMaxConns: a connection beyond Options.MaxConns is closed at accept
// and counted; one that ends makes room for the next.
func TestMaxConns(t *testing.T) {
	s := startServer(t, openLog(t, ""), func(o *Options) { o.MaxConns = 2 })
	a, b := dialRaw(t, s.addr), dialRaw(t, s.addr)
	for _, c := range []*rawConn{a, b} {
		if err := c.apiVersions(); err != nil {
			t.Fatal(err)
		}
	}
	over := dialRaw(t, s.addr)
	over.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := over.nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("third connection: read %v, want EOF (closed at the cap)", err)
	}
	if st := s.Stats(); st.ConnsRefused != 1 {
		t.Fatalf("ConnsRefused = %d, want 1", st.ConnsRefused)
	}
	a.nc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Conns > 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := dialRaw(t, s.addr).apiVersions(); err != nil {
		t.Fatalf("a connection after one closed: %v", err)
	}
}

// TestMaxConnsPerIP: one address holds at most MaxConnsPerIP connections;
// one more from it is closed at accept while another address connects.
func TestMaxConnsPerIP(t *testing.T) {
	s := startServer(t, openLog(t, ""), func(o *Options) { o.MaxConnsPerIP = 2 })
	for range 2 {
		if err := dialRaw(t, s.addr).apiVersions(); err != nil {
			t.Fatal(err)
		}
	}
	over := dialRaw(t, s.addr)
	over.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := over.nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("third connection from 127.0.0.1: read %v, want EOF (closed at the cap)", err)
	}
	_, port, _ := net.SplitHostPort(s.addr)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	nc, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := (&rawConn{t: t, nc: nc}).apiVersions(); err != nil {
		t.Fatalf("a connection from another address: %v", err)
	}
	if st := s.Stats(); st.ConnsRefused != 1 {
		t.Fatalf("ConnsRefused = %d, want 1", st.ConnsRefused)
	}
}

// TestConnectTimeout: a connection that sends nothing is closed after
// Options.ConnectTimeout (counted); one that sent a request is then only
// subject to IdleTimeout. With SASL the deadline lasts until
// authentication, requests before it (ApiVersions) notwithstanding.
func TestConnectTimeout(t *testing.T) {
	const d = 300 * time.Millisecond
	for _, sasl := range []bool{false, true} {
		s := startServer(t, openLog(t, ""), func(o *Options) {
			o.ConnectTimeout = d
			if sasl {
				o.SASLPlain = map[string]string{"u": "p"}
			}
		})
		silent, talker := dialRaw(t, s.addr), dialRaw(t, s.addr)
		talker.write(frame(kmsg.NewPtrApiVersionsRequest(), 1))
		if _, err := talker.readFrame(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * d)
		silent.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := silent.nc.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("sasl=%v: silent connection: read %v, want EOF", sasl, err)
		}
		talker.nc.SetWriteDeadline(time.Now().Add(time.Second))
		talker.nc.Write(frame(kmsg.NewPtrApiVersionsRequest(), 2))
		_, err := talker.readFrame()
		if sasl && err == nil {
			t.Fatalf("sasl: an unauthenticated connection outlived the connect timeout")
		}
		if !sasl && err != nil {
			t.Fatalf("a connection that sent a request was closed: %v", err)
		}
		if st := s.Stats(); st.ConnectTimeouts != map[bool]uint64{false: 1, true: 2}[sasl] {
			t.Fatalf("sasl=%v: ConnectTimeouts = %d", sasl, st.ConnectTimeouts)
		}
	}
}
