package mqtt

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	dir                           string
	caFile, certFile, keyFile     string
	clientCert                    tls.Certificate
	pool                          *x509.CertPool
	clientCertFile, clientKeyFile string
}

func newTestPKI(t *testing.T, clientCN string) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{dir: dir}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(ca)
	write := func(name, typ string, der []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	p.caFile = write("ca.pem", "CERTIFICATE", caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	sDER, sKey := issue(2, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	p.certFile = write("server.pem", "CERTIFICATE", sDER)
	kb, _ := x509.MarshalECPrivateKey(sKey)
	p.keyFile = write("server-key.pem", "EC PRIVATE KEY", kb)
	cDER, cKey := issue(3, clientCN, x509.ExtKeyUsageClientAuth)
	ckb, _ := x509.MarshalECPrivateKey(cKey)
	p.clientCertFile = write("client.pem", "CERTIFICATE", cDER)
	p.clientKeyFile = write("client-key.pem", "EC PRIVATE KEY", ckb)
	p.clientCert, err = tls.LoadX509KeyPair(p.clientCertFile, p.clientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startTLSBroker serves TLS on 127.0.0.1:0.
func startTLSBroker(t *testing.T, opts Options) (*Broker, string) {
	t.Helper()
	opts.Logger = testLogger(t)
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go b.ServeTLS(ln)
	t.Cleanup(func() { b.Close() })
	return b, ln.Addr().String()
}

func TestTLSClientCertificates(t *testing.T) {
	pki := newTestPKI(t, "sensor-17")
	l := newMemLog(t)
	_, addr := startTLSBroker(t, Options{
		Log: l,
		TLS: TLSOptions{CertFile: pki.certFile, KeyFile: pki.keyFile, ClientCAFile: pki.caFile, RequireClientCert: true, CertAsUsername: true},
		ACL: []ACLRule{{Topic: "sensors/%u/#", Access: AccessReadWrite}},
	})
	dial := func(certs []tls.Certificate) (*rawClient, error) {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.pool, Certificates: certs, ServerName: "127.0.0.1"})
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Handshake(); err != nil {
			return nil, err
		}
		return &rawClient{t: t, c: c, r: bufio.NewReader(c)}, nil
	}
	c, err := dial([]tls.Certificate{pki.clientCert})
	if err != nil {
		t.Fatal(err)
	}
	if ack := c.connect(5, "s17", "", ""); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %#x", ack.ReasonCode)
	}
	c.send(publishPacket("sensors/sensor-17/t", 1, 1, []byte("20")))
	if ack := c.read(5 * time.Second); ack.ReasonCode != 0 {
		t.Fatalf("own topic rc %#x", ack.ReasonCode)
	}
	c.send(publishPacket("sensors/other/t", 1, 2, []byte("20")))
	if ack := c.read(5 * time.Second); ack.ReasonCode != packets.ErrNotAuthorized.Code {
		t.Fatalf("other topic rc %#x", ack.ReasonCode)
	}
	if rs := records(t, l, DefaultTopic, 0); len(rs) != 1 {
		t.Fatalf("%d records", len(rs))
	}

	// No client certificate: refused during the handshake.
	if nc, err := dial(nil); err == nil {
		if _, rerr := nc.tryRead(2 * time.Second); rerr == nil {
			t.Fatal("client without certificate was served")
		}
	}
}

func TestWebsocket(t *testing.T) {
	l := newMemLog(t)
	b, err := New(Options{Log: l, AllowAnonymous: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.ServeWebsocket(ln) }()
	t.Cleanup(func() {
		b.Close()
		if err := <-done; err != ErrClosed {
			t.Errorf("ServeWebsocket: %v", err)
		}
	})

	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial("ws://"+ln.Addr().String()+DefaultWebsocketPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn := &wsConn{Conn: ws.NetConn(), c: ws}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, c: conn, r: bufio.NewReader(conn)}
	c.connect(4, "browser", "", "")
	c.send(publishPacket("ws/t", 1, 1, []byte("over websocket")))
	if ack := c.read(5 * time.Second); ack.FixedHeader.Type != packets.Puback || ack.PacketID != 1 {
		t.Fatalf("type %d id %d", ack.FixedHeader.Type, ack.PacketID)
	}
	if rs := records(t, l, DefaultTopic, 0); len(rs) != 1 || string(rs[0].Value) != "over websocket" {
		t.Fatalf("records %+v", rs)
	}
}

func TestStartListensOnConfiguredAddrs(t *testing.T) {
	pki := newTestPKI(t, "x")
	l := newMemLog(t)
	b, err := New(Options{Log: l, AllowAnonymous: true, Logger: testLogger(t),
		Addr: "127.0.0.1:0", WebsocketAddr: "127.0.0.1:0",
		TLS: TLSOptions{Addr: "127.0.0.1:0", CertFile: pki.certFile, KeyFile: pki.keyFile}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	}()
	as := b.Addrs()
	if len(as) != 3 {
		t.Fatalf("addrs %v", as)
	}
	c := dialRaw(t, as[0].String())
	c.connect(4, "plain", "", "")
	tc, err := tls.Dial("tcp", as[1].String(), &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	(&rawClient{t: t, c: tc, r: bufio.NewReader(tc)}).connect(5, "tls", "", "")
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
	ws, _, err := d.Dial("ws://"+as[2].String()+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	wc := &wsConn{Conn: ws.NetConn(), c: ws}
	defer wc.Close()
	(&rawClient{t: t, c: wc, r: bufio.NewReader(wc)}).connect(4, "ws", "", "")
}
