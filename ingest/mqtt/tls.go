package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// loadTLS builds the server TLS config from files.
func loadTLS(o *TLSOptions) (*tls.Config, error) {
	cfg := &tls.Config{GetCertificate: o.GetCertificate, MinVersion: tls.VersionTLS12}
	if o.GetCertificate == nil {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: load certificate: %v", ErrTLS, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if o.ClientCAFile != "" {
		pem, err := os.ReadFile(o.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: read client CA: %v", ErrTLS, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: no certificate in %s", ErrTLS, o.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if o.RequireClientCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return cfg, nil
}
