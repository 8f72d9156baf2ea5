package kafka

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/ingest/access"
	"github.com/runnel/runnel/ingest/users"
)

// clientCert makes a self-signed client certificate for cn (its own CA).
func clientCert(t *testing.T, cn string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf
}

// TestMutualTLSPrincipal: with SASL required, a client whose certificate
// the listener's client CAs verify is the user its common name says,
// without SASL, under the access rules; a certificate from another CA is
// not, and a client without one must use SASL.
func TestMutualTLSPrincipal(t *testing.T) {
	srv, pool := selfSigned(t)
	dev, devLeaf := clientCert(t, "device-7")
	stranger, _ := clientCert(t, "device-7") // same name, not trusted
	cas := x509.NewCertPool()
	cas.AddCert(devLeaf)
	st, _ := users.NewStore(nil, map[string]string{"ops": "pw"})
	pol, err := access.NewPolicy([]access.Rule{{User: "device-7", Kind: access.Topic, Pattern: "dev.*", Ops: access.Write | access.Create}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, openLog(t, ""), func(o *Options) {
		o.Users, o.Access = st, pol
		o.TLS = &tls.Config{Certificates: []tls.Certificate{srv}, ClientCAs: cas, ClientAuth: tls.VerifyClientCertIfGiven}
	})
	ctx := testCtx(t, 30*time.Second)
	client := func(cert *tls.Certificate) *kgo.Client {
		cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		return newClient(t, ts.addr, kgo.DialTLSConfig(cfg), kgo.AllowAutoTopicCreation(), kgo.RequestRetries(0), kgo.RecordRetries(1), kgo.RetryTimeout(time.Second))
	}
	cl := client(&dev)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "dev.a", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("device-7 by certificate, dev.a: %v", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "ops.a", Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("device-7 by certificate, ops.a: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	// Go's TLS server refuses a certificate it cannot verify; a client
	// without one must authenticate with SASL.
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, client(&stranger)); err == nil {
		t.Fatal("an untrusted certificate got in")
	}
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, client(nil)); err == nil {
		t.Fatal("a client without certificate or SASL got in")
	}
}
