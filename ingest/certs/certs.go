// Package certs serves a TLS key pair from files and replaces it without
// a restart: on Reload (runnel calls it on SIGHUP) and when the files
// change (their size or modification time, looked at during a handshake
// at most once a second). Connections already open keep the certificate
// they were made with; new ones get the new one. A pair that does not
// load (a half-copied file, a key that does not match) is refused, logged,
// and the one in use is kept.
package certs

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// checkEvery bounds how often a handshake looks at the files.
const checkEvery = time.Second

// Pair is a reloadable key pair. Safe for concurrent use.
type Pair struct {
	certFile, keyFile string
	logger            *slog.Logger

	mu      sync.Mutex
	cur     *tls.Certificate // guarded by mu
	stamp   string           // guarded by mu: the files' size and mtime when cur was loaded
	checked time.Time        // guarded by mu
}

// Load loads the pair; the error names the files.
func Load(certFile, keyFile string, logger *slog.Logger) (*Pair, error) {
	if logger == nil {
		logger = slog.Default()
	}
	p := &Pair{certFile: certFile, keyFile: keyFile, logger: logger}
	if err := p.Reload(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Pair) fileStamp() string {
	s := ""
	for _, f := range []string{p.certFile, p.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "missing"
		}
		s += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return s
}

// Reload reads the files again. On error the pair in use is kept.
func (p *Pair) Reload() error {
	stamp := p.fileStamp()
	c, err := tls.LoadX509KeyPair(p.certFile, p.keyFile)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checked = time.Now()
	if err != nil {
		if p.cur != nil {
			p.stamp = stamp // do not retry until the files change again
			p.logger.Error("tls: certificate not reloaded; the one in use is kept", "cert_file", p.certFile, "key_file", p.keyFile, "err", err)
		}
		return fmt.Errorf("certs: load %s, %s: %w", p.certFile, p.keyFile, err)
	}
	changed := p.cur != nil
	p.cur, p.stamp = &c, stamp
	if changed {
		p.logger.Info("tls: certificate reloaded", "cert_file", p.certFile)
	}
	return nil
}

// GetCertificate is tls.Config.GetCertificate.
func (p *Pair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	p.mu.Lock()
	due := time.Since(p.checked) >= checkEvery
	if due {
		p.checked = time.Now()
	}
	stamp := p.stamp
	p.mu.Unlock()
	if due && p.fileStamp() != stamp {
		p.Reload() // logged
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur, nil
}

// ServerConfig is a TLS server configuration (TLS 1.2 or later) that
// serves the pair.
func (p *Pair) ServerConfig() *tls.Config {
	return &tls.Config{GetCertificate: p.GetCertificate, MinVersion: tls.VersionTLS12}
}
