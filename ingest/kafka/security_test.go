package kafka

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

func TestSASLPlain(t *testing.T) {
	ts := startServer(t, openLog(t, ""), func(o *Options) { o.SASLPlain = map[string]string{"edge": "s3cret"} })
	ctx := testCtx(t, 20*time.Second)

	good := newClient(t, ts.addr, kgo.SASL(plain.Auth{User: "edge", Pass: "s3cret"}.AsMechanism()),
		kgo.DefaultProduceTopic("sasl"), kgo.AllowAutoTopicCreation())
	if err := good.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("authenticated produce: %v", err)
	}

	bad := newClient(t, ts.addr, kgo.SASL(plain.Auth{User: "edge", Pass: "wrong"}.AsMechanism()),
		kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, bad); err == nil {
		t.Fatal("wrong password accepted")
	}
	// Without SASL, anything but ApiVersions closes the connection.
	r := dialRaw(t, ts.addr)
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 3
	av.ClientSoftwareName, av.ClientSoftwareVersion = "t", "1"
	r.roundTrip(av, 1)
	r.write(frame(kmsg.NewPtrMetadataRequest(), 2))
	r.expectClosed()
	if ts.Stats().AuthFailures < 2 {
		t.Fatalf("AuthFailures = %d", ts.Stats().AuthFailures)
	}
}

func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	ts := startServer(t, openLog(t, ""), func(o *Options) { o.TLS = &tls.Config{Certificates: []tls.Certificate{cert}} })
	ctx := testCtx(t, 20*time.Second)
	cl := newClient(t, ts.addr, kgo.DialTLSConfig(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}),
		kgo.DefaultProduceTopic("tls"), kgo.AllowAutoTopicCreation())
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("over tls")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, ts.addr, kgo.DialTLSConfig(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}),
		kgo.ConsumeTopics("tls"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	fs := c.PollFetches(ctx)
	if err := fs.Err0(); err != nil || fs.NumRecords() != 1 {
		t.Fatalf("consume over TLS: %v, %d records", err, fs.NumRecords())
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "runnel-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
