package kafkatest

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
	"time"
)

// Credentials of the SASL user created when Options.Security is set
// (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512).
const (
	User     = "runnel"
	Password = "runnel-secret"
)

// TLSFiles are PEM files for a client of the SSL listener (mutual TLS).
type TLSFiles struct {
	CA   string // CA certificate (trust it to verify the broker)
	Cert string // client certificate (signed by CA)
	Key  string // client private key (PKCS#8)
}

// CertFiles are PEM files written by WriteCerts.
type CertFiles struct {
	Client     TLSFiles // CA plus client certificate and key
	ServerCert string   // server certificate for 127.0.0.1 and localhost
	ServerKey  string   // its private key (PKCS#8)
	Keystore   string   // server key followed by its certificate (Kafka PEM keystore)
}

// WriteCerts creates a CA, a server certificate for 127.0.0.1/localhost
// and a client certificate in dir (for TLS tests of any server).
func WriteCerts(dir string) (CertFiles, error) {
	c, ks, err := writeCerts(dir, loopback)
	return CertFiles{Client: c, ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey: filepath.Join(dir, "server-key.pem"), Keystore: ks}, err
}

// writeCerts creates a CA, a broker certificate for 127.0.0.1, localhost
// and host, and a client certificate in dir.
func writeCerts(dir, host string) (TLSFiles, string, error) {
	ips := []net.IP{net.ParseIP(loopback)}
	if ip := net.ParseIP(host); ip != nil && !ip.Equal(ips[0]) {
		ips = append(ips, ip)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return TLSFiles{}, "", err
	}
	now := time.Now().Add(-time.Hour)
	caTpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kafkatest CA"},
		NotBefore: now, NotAfter: now.Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		return TLSFiles{}, "", err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) ([]byte, []byte, error) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now, NotAfter: now.Add(48 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: ips, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			return nil, nil, err
		}
		p8, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), nil
	}
	srvCert, srvKey, err := leaf(2, "localhost", x509.ExtKeyUsageServerAuth)
	if err != nil {
		return TLSFiles{}, "", err
	}
	cliCert, cliKey, err := leaf(3, "runnel-client", x509.ExtKeyUsageClientAuth)
	if err != nil {
		return TLSFiles{}, "", err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	f := TLSFiles{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "client.pem"), Key: filepath.Join(dir, "client-key.pem")}
	keystore := filepath.Join(dir, "broker-keystore.pem")
	for path, data := range map[string][]byte{
		f.CA: caPEM, f.Cert: cliCert, f.Key: cliKey,
		keystore:                             append(append([]byte{}, srvKey...), srvCert...),
		filepath.Join(dir, "server.pem"):     srvCert,
		filepath.Join(dir, "server-key.pem"): srvKey,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return TLSFiles{}, "", err
		}
	}
	return f, keystore, nil
}
