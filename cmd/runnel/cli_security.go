package main

// Connection security of the client commands (topic, produce, consume,
// status, bench): SASL and TLS, from flags, the environment or a client
// config file, with serve's precedence: flag > environment > file >
// default. Secrets come from files or the environment, never from the
// command line.
//
// The client config file (--client-config FILE or RUNNEL_CLIENT_CONFIG),
// YAML:
//
//	brokers: gateway.plant.local:9093
//	sasl:
//	  mechanism: PLAIN              # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
//	  user: ops
//	  password-file: /etc/runnel/ops.pass   # or password: … (the file is the secret)
//	tls:
//	  enabled: true
//	  ca-file: /etc/runnel/ca.pem
//	  cert-file: /etc/runnel/client.pem     # client certificate (mutual TLS)
//	  key-file: /etc/runnel/client.key
//	  server-name: gateway.plant.local
//	  insecure-skip-verify: false

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.yaml.in/yaml/v3"
)

// clientFile is the client config file.
type clientFile struct {
	Brokers string `yaml:"brokers"`
	SASL    struct {
		Mechanism    string `yaml:"mechanism"`
		User         string `yaml:"user"`
		Password     string `yaml:"password"`
		PasswordFile string `yaml:"password-file"`
	} `yaml:"sasl"`
	TLS struct {
		Enabled            bool   `yaml:"enabled"`
		CAFile             string `yaml:"ca-file"`
		CertFile           string `yaml:"cert-file"`
		KeyFile            string `yaml:"key-file"`
		ServerName         string `yaml:"server-name"`
		InsecureSkipVerify bool   `yaml:"insecure-skip-verify"`
	} `yaml:"tls"`
}

// clientSecurity are the SASL and TLS settings of a client command.
type clientSecurity struct {
	configFile   string
	mechanism    string
	user         string
	passwordFile string
	password     string // from RUNNEL_SASL_PASSWORD or the config file only
	tls          bool
	caFile       string
	certFile     string
	keyFile      string
	serverName   string
	insecure     bool
}

// addSecurityFlags registers the SASL and TLS flags on fs.
func addSecurityFlags(fs *pflag.FlagSet, s *clientSecurity) {
	fs.StringVar(&s.configFile, "client-config", "", "client config file (YAML: brokers, sasl, tls; env RUNNEL_CLIENT_CONFIG)")
	fs.StringVar(&s.mechanism, "sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (default PLAIN with --sasl-user; env RUNNEL_SASL_MECHANISM)")
	fs.StringVar(&s.user, "sasl-user", "", "SASL user (env RUNNEL_SASL_USER)")
	fs.StringVar(&s.passwordFile, "sasl-password-file", "", "file holding the SASL password (env RUNNEL_SASL_PASSWORD_FILE, or the password itself in RUNNEL_SASL_PASSWORD)")
	fs.BoolVar(&s.tls, "tls", false, "connect with TLS (env RUNNEL_TLS; implied by the other --tls-* flags)")
	fs.StringVar(&s.caFile, "tls-ca", "", "CA bundle (PEM) to verify the brokers with (default: the system's; env RUNNEL_TLS_CA)")
	fs.StringVar(&s.certFile, "tls-cert", "", "client certificate (PEM) for mutual TLS (env RUNNEL_TLS_CERT)")
	fs.StringVar(&s.keyFile, "tls-key", "", "client key (PEM) for mutual TLS (env RUNNEL_TLS_KEY)")
	fs.StringVar(&s.serverName, "tls-server-name", "", "name to verify the brokers' certificate against (default: the broker host; env RUNNEL_TLS_SERVER_NAME)")
	fs.BoolVar(&s.insecure, "tls-insecure-skip-verify", false, "do not verify the brokers' certificate (tests only; env RUNNEL_TLS_INSECURE_SKIP_VERIFY)")
}

// resolveClient applies the environment and the client config file to
// what no flag set: flag > environment > file > default.
func (cf *clientFlags) resolveClient(getenv func(string) (string, bool)) error {
	s := &cf.sec
	fromEnv := func(flag, env string, p *string) {
		if cf.fs.Changed(flag) {
			return
		}
		if v, ok := getenv(env); ok && v != "" {
			*p = v
		}
	}
	fromEnvBool := func(flag, env string, p *bool) error {
		if cf.fs.Changed(flag) {
			return nil
		}
		if v, ok := getenv(env); ok && v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return usageErrorf("%s=%q: not a bool", env, v)
			}
			*p = b
		}
		return nil
	}
	fromEnv("client-config", "RUNNEL_CLIENT_CONFIG", &s.configFile)
	fromEnv("sasl-mechanism", "RUNNEL_SASL_MECHANISM", &s.mechanism)
	fromEnv("sasl-user", "RUNNEL_SASL_USER", &s.user)
	fromEnv("sasl-password-file", "RUNNEL_SASL_PASSWORD_FILE", &s.passwordFile)
	if v, ok := getenv("RUNNEL_SASL_PASSWORD"); ok && !cf.fs.Changed("sasl-password-file") {
		s.password = v
	}
	fromEnv("tls-ca", "RUNNEL_TLS_CA", &s.caFile)
	fromEnv("tls-cert", "RUNNEL_TLS_CERT", &s.certFile)
	fromEnv("tls-key", "RUNNEL_TLS_KEY", &s.keyFile)
	fromEnv("tls-server-name", "RUNNEL_TLS_SERVER_NAME", &s.serverName)
	if err := fromEnvBool("tls", "RUNNEL_TLS", &s.tls); err != nil {
		return err
	}
	if err := fromEnvBool("tls-insecure-skip-verify", "RUNNEL_TLS_INSECURE_SKIP_VERIFY", &s.insecure); err != nil {
		return err
	}
	if s.configFile != "" {
		b, err := os.ReadFile(s.configFile)
		if err != nil {
			return fmt.Errorf("client config: %w", err)
		}
		var f clientFile
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("client config %s: %v", s.configFile, err)
		}
		// Only what neither a flag nor the environment set.
		_, brokersEnv := getenv(envBrokers)
		orFile := func(p *string, v string) {
			if *p == "" {
				*p = v
			}
		}
		if f.Brokers != "" && !cf.fs.Changed("brokers") && !brokersEnv {
			cf.brokers = f.Brokers
		}
		orFile(&s.mechanism, f.SASL.Mechanism)
		orFile(&s.user, f.SASL.User)
		if s.passwordFile == "" && s.password == "" {
			s.passwordFile, s.password = f.SASL.PasswordFile, f.SASL.Password
		}
		orFile(&s.caFile, f.TLS.CAFile)
		orFile(&s.certFile, f.TLS.CertFile)
		orFile(&s.keyFile, f.TLS.KeyFile)
		orFile(&s.serverName, f.TLS.ServerName)
		if !cf.fs.Changed("tls") {
			s.tls = s.tls || f.TLS.Enabled
		}
		if !cf.fs.Changed("tls-insecure-skip-verify") {
			s.insecure = s.insecure || f.TLS.InsecureSkipVerify
		}
	}
	return nil
}

// securityOpts are the kgo options for the resolved SASL and TLS settings.
func (s *clientSecurity) securityOpts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if s.user != "" || s.mechanism != "" {
		if s.user == "" {
			return nil, usageErrorf("--sasl-mechanism needs --sasl-user")
		}
		pass := s.password
		if s.passwordFile != "" {
			b, err := os.ReadFile(s.passwordFile)
			if err != nil {
				return nil, fmt.Errorf("SASL password: %w", err)
			}
			pass = strings.TrimRight(string(b), "\r\n")
		}
		var m sasl.Mechanism
		switch strings.ToUpper(s.mechanism) {
		case "", "PLAIN":
			m = plain.Auth{User: s.user, Pass: pass}.AsMechanism()
		case "SCRAM-SHA-256":
			m = scram.Auth{User: s.user, Pass: pass}.AsSha256Mechanism()
		case "SCRAM-SHA-512":
			m = scram.Auth{User: s.user, Pass: pass}.AsSha512Mechanism()
		default:
			return nil, usageErrorf("--sasl-mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.mechanism)
		}
		opts = append(opts, kgo.SASL(m))
	}
	if s.tls || s.caFile != "" || s.certFile != "" || s.keyFile != "" || s.serverName != "" || s.insecure {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.serverName, InsecureSkipVerify: s.insecure}
		if s.caFile != "" {
			pem, err := os.ReadFile(s.caFile)
			if err != nil {
				return nil, fmt.Errorf("TLS CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("TLS CA %s: no PEM certificate in it", s.caFile)
			}
			tc.RootCAs = pool
		}
		if (s.certFile == "") != (s.keyFile == "") {
			return nil, usageErrorf("--tls-cert and --tls-key go together")
		}
		if s.certFile != "" {
			cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
			if err != nil {
				return nil, fmt.Errorf("TLS client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	return opts, nil
}
