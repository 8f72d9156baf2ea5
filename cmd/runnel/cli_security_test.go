package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTestPKI writes a CA and a server certificate for 127.0.0.1 (PEM)
// into dir and returns their paths.
func writeTestPKI(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "runnel test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", der), write("server.key", "EC PRIVATE KEY", kb)
}

// TestCLISecuredServer: runnel serve with SASL/PLAIN users and TLS, as the
// README advises. The client commands reach it with flags, with the
// environment and with a client config file; without credentials they
// fail with a message that says so.
func TestCLISecuredServer(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := writeTestPKI(t, dir)
	pw := filepath.Join(dir, "ops.pass")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	s := newRunnel(t, nil, 1, "--kafka-user", "ops:s3cret", "--kafka-tls-cert", cert, "--kafka-tls-key", key)
	s.sec = clientSecurity{user: "ops", password: "s3cret", caFile: ca}
	if err := s.start(); err != nil {
		t.Fatalf("start: %v\n%s", err, s.LogTail())
	}
	b := []string{"--brokers", s.Addr(), "--timeout", "5s"}

	// Without TLS and SASL: refused, with a message naming SASL/TLS.
	r := runCLI(t, "", "topic", append([]string{"list"}, b...)...)
	if r.code == 0 {
		t.Fatalf("topic list without credentials succeeded:\n%s", r.stdout)
	}
	t.Logf("without credentials: %s", strings.TrimSpace(r.stderr))

	// Flags.
	flags := append(b, "--sasl-user", "ops", "--sasl-password-file", pw, "--tls-ca", ca)
	mustCLI(t, "", "topic", append([]string{"create", "secure", "--partitions", "1"}, flags...)...)
	mustCLI(t, "a\nb\nc\n", "produce", append([]string{"secure"}, flags...)...)
	if out := mustCLI(t, "", "consume", append([]string{"secure", "--from-beginning", "-n", "3"}, flags...)...); out != "a\nb\nc\n" {
		t.Fatalf("consume with flags: %q", out)
	}
	// A wrong password is refused.
	bad := filepath.Join(dir, "bad.pass")
	os.WriteFile(bad, []byte("nope"), 0o600)
	if r := runCLI(t, "", "topic", append([]string{"list", "--sasl-user", "ops", "--sasl-password-file", bad, "--tls-ca", ca}, b...)...); r.code == 0 {
		t.Fatal("a wrong password was accepted")
	}

	// The environment.
	t.Setenv("RUNNEL_SASL_USER", "ops")
	t.Setenv("RUNNEL_SASL_PASSWORD", "s3cret")
	t.Setenv("RUNNEL_TLS_CA", ca)
	mustCLI(t, "d\n", "produce", append([]string{"secure"}, b...)...)
	if out := mustCLI(t, "", "topic", append([]string{"list"}, b...)...); !strings.Contains(out, "secure") {
		t.Fatalf("topic list with the environment: %q", out)
	}
	os.Unsetenv("RUNNEL_SASL_USER")
	os.Unsetenv("RUNNEL_SASL_PASSWORD")
	os.Unsetenv("RUNNEL_TLS_CA")

	// A client config file (brokers too).
	cfg := filepath.Join(dir, "client.yaml")
	os.WriteFile(cfg, []byte("brokers: "+s.Addr()+"\nsasl:\n  mechanism: PLAIN\n  user: ops\n  password-file: "+pw+"\ntls:\n  enabled: true\n  ca-file: "+ca+"\n"), 0o600)
	if out := mustCLI(t, "", "consume", "secure", "--from-beginning", "-n", "4", "--client-config", cfg); out != "a\nb\nc\nd\n" {
		t.Fatalf("consume with a client config file: %q", out)
	}
	if out := mustCLI(t, "", "status", "--client-config", cfg, "--http", s.HTTPAddr()); !strings.Contains(out, "secure") {
		t.Fatalf("status with a client config file: %q", out)
	}
	// A flag beats the file: a wrong user on the command line is refused.
	if r := runCLI(t, "", "topic", "list", "--client-config", cfg, "--sasl-user", "nobody", "--timeout", "5s"); r.code == 0 {
		t.Fatal("--sasl-user did not take precedence over the client config file")
	}
}
