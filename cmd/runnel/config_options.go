package main

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"strings"

	"github.com/runnel/runnel/ingest/kafka"
	"github.com/runnel/runnel/ingest/mqtt"
	"github.com/runnel/runnel/ingest/users"
	rlog "github.com/runnel/runnel/log"
	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/web"
)

// Each component's Options, built from the configuration tree. This is
// the one place that turns the tree into Options; the wiring adds only
// what exists at run time (the log, the node id, loggers).

// newLogger is the process logger (logging.*).
func newLogger(cfg *serveConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(cfg.Logging.Level))
	ho := &slog.HandlerOptions{Level: lvl}
	if cfg.Logging.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// logOptions are the commit log's options (data-dir, log.*).
func (c *serveConfig) logOptions(logger *slog.Logger) *rlog.Options {
	return &rlog.Options{
		Dir:                c.DataDir,
		Logger:             logger,
		MaxOpenFiles:       c.Log.MaxOpenFiles,
		MinFreeBytes:       c.Log.MinFreeBytes,
		NoSharedSegments:   !c.Log.SharedSegments,
		CommitDelay:        cmp.Or(c.Log.CommitDelay, -1), // 0 here means never (the log's 0 is its default)
		CleanerBytesPerSec: c.Log.CleanerBytesPerSec,
		CleanerInterval:    c.Log.CleanerInterval,
		Defaults: rlog.TopicConfig{
			Partitions:     c.Log.DefaultPartitions,
			Fsync:          rlog.FsyncPolicy(c.Log.Fsync),
			FsyncInterval:  c.Log.FsyncInterval,
			RetentionAge:   c.Log.Retention,
			RetentionBytes: c.Log.RetentionBytes,
			SegmentBytes:   c.Log.SegmentBytes,
			OnFull:         rlog.OnFull(c.Log.OnFull),
			// Site replication: the copies each topic asks for by default.
			ReplicationFactor: c.defaultReplicationFactor(),
			MinInsyncReplicas: c.Replication.DefaultMinInsyncReplicas,
		},
	}
}

// kafkaAccounts are the Kafka listener's accounts: users-file,
// kafka.users and the site peers' credential derived from the gossip key,
// which alone does not make SASL required (optional).
func (c *serveConfig) kafkaAccounts() (st *users.Store, optional bool, err error) {
	f, st, err := c.accounts()
	if err != nil {
		return nil, false, fmt.Errorf("config: users-file: %v", err)
	}
	pc, err := c.sitePeerCredential()
	if err != nil || !pc.derived {
		return st, false, err
	}
	inClear := map[string]string{sitePeerUser: pc.pass}
	for _, u := range c.Kafka.Users {
		name, pass, _ := strings.Cut(u, ":")
		inClear[name] = pass
	}
	optional = st.Len() == 0
	if st, err = users.NewStore(f.Users, inClear); err != nil {
		return nil, false, fmt.Errorf("config: users-file: %v", err)
	}
	return st, optional, nil
}

// kafkaOptions are the Kafka listener's options (kafka.*). It reads the
// TLS key pair.
func (c *serveConfig) kafkaOptions(l rlog.Log, groups kafka.GroupHandler, logger *slog.Logger, nodeID string) (kafka.Options, error) {
	accounts, optionalSASL, err := c.kafkaAccounts()
	if err != nil {
		return kafka.Options{}, err
	}
	var tc *tls.Config
	if c.Kafka.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.Kafka.TLS.CertFile, c.Kafka.TLS.KeyFile)
		if err != nil {
			return kafka.Options{}, fmt.Errorf("config: kafka.tls.cert-file, kafka.tls.key-file: %v", err)
		}
		tc = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	policy, err := c.accessPolicy()
	if err != nil {
		return kafka.Options{}, fmt.Errorf("config: access.rules: %v", err)
	}
	return kafka.Options{
		Access:                policy,
		Log:                   l,
		Groups:                groups,
		Logger:                logger,
		ClusterID:             "runnel-" + nodeID,
		AdvertisedAddr:        c.Kafka.AdvertisedAddr,
		AutoCreateTopics:      c.Kafka.AutoCreateTopics,
		MaxFrameBytes:         c.Kafka.MaxFrameBytes,
		MaxQueuedRequestBytes: cmp.Or(c.Kafka.MaxQueuedBytes, -1), // 0 here means no bound
		MaxConns:              c.kafkaMaxConns(),
		MaxConnsPerIP:         c.Kafka.MaxConnsPerIP,
		ConnectTimeout:        cmp.Or(c.Kafka.ConnectTimeout, -1), // 0 here means none (the package's 0 is its default)
		IdleTimeout:           cmp.Or(c.Kafka.IdleTimeout, -1),
		TLS:                   tc,
		Users:                 accounts,
		AllowPlainWithoutTLS:  c.Kafka.AllowPlainNoTLS,
		OptionalSASL:          optionalSASL,
		AllowRemoteAnonymous:  c.AllowRemoteAnonymous,
	}, nil
}

// mqttOptions are the MQTT broker's options (mqtt.*). Anonymous access is
// allowed by default only while no users are configured, and then from
// the loopback interface only unless allow-remote-anonymous (security.go);
// a client CA requires client certificates unless require-client-cert
// says otherwise.
func (c *serveConfig) mqttOptions(l rlog.Log, logger *slog.Logger) mqtt.Options {
	m := &c.MQTT
	anon, remoteAnon := c.mqttAnonymous()
	policy, _ := c.accessPolicy() // checked by validate
	requireCert := m.TLS.ClientCAFile != ""
	if m.TLS.RequireClientCert != nil {
		requireCert = *m.TLS.RequireClientCert
	}
	return mqtt.Options{
		Log:           l,
		Logger:        logger,
		Addr:          m.Addr,
		WebsocketAddr: m.WebsocketAddr,
		WebsocketTLS:  m.WebsocketTLS,
		WebsocketPath: m.WebsocketPath,
		TLS: mqtt.TLSOptions{
			Addr:              m.TLS.Addr,
			CertFile:          m.TLS.CertFile,
			KeyFile:           m.TLS.KeyFile,
			ClientCAFile:      m.TLS.ClientCAFile,
			RequireClientCert: requireCert,
			CertAsUsername:    m.TLS.CertAsUsername,
		},
		Routes:                    m.Routes,
		Publish:                   m.Publish,
		AllowAnonymous:            anon,
		AllowRemoteAnonymous:      remoteAnon,
		Access:                    policy,
		Users:                     c.mqttUsers(),
		ACL:                       m.ACL,
		MaxPendingPerClient:       m.MaxPendingPerClient,
		MaxPendingBytesPerClient:  m.MaxPendingBytesPerClient,
		MaxPacketSize:             m.MaxPacketSize,
		ConnectTimeout:            m.ConnectTimeout,
		MaxConnsPerIP:             m.MaxConnsPerIP,
		MaxQueuedPerClient:        m.MaxQueuedPerClient,
		MaxClients:                m.MaxClients,
		MaxConns:                  c.mqttMaxConns(),
		MaxSubscriptionsPerClient: cmp.Or(m.MaxSubsPerClient, -1), // 0 here means none (the package's 0 is its default)
		MaxSubscriptions:          cmp.Or(m.MaxSubs, -1),
		MaxSessions:               cmp.Or(m.MaxSessions, -1),
		MaxSessionQueueBytes:      cmp.Or(m.MaxSessionQueueBytes, -1),
		MaxQueueBytes:             cmp.Or(m.MaxQueueBytes, -1),
		SysInterval:               m.SysInterval,
		NoPersist:                 m.NoPersist,
	}
}

// forwardOptions are the forwarder's options: the upstreams and routes
// keys plus the common case, upstream-kafka BROKERS (the upstream
// "default") and forward GLOB (routes to it, upstream name =
// forward-prefix + local name). Sinks are left to the wiring.
func (c *serveConfig) forwardOptions(l rlog.Log, logger *slog.Logger, nodeID string) forward.Options {
	o := forward.Options{
		Log: l, Logger: logger, NodeID: nodeID, Site: c.Site,
		Upstreams: maps.Clone(c.Upstreams),
		Routes:    append([]forward.Route(nil), c.Routes...),
	}
	if o.Upstreams == nil {
		o.Upstreams = map[string]forward.Upstream{}
	}
	if c.UpstreamKafka != "" {
		o.Upstreams[forward.DefaultUpstream] = forward.Upstream{Kind: "kafka", Brokers: splitList(c.UpstreamKafka)}
	}
	for _, glob := range c.Forward {
		o.Routes = append(o.Routes, forward.Route{
			Name:     "forward-" + strings.NewReplacer("*", "all", "?", "_", "/", "_").Replace(glob),
			Upstream: forward.DefaultUpstream,
			Topics:   []string{glob},
			Target:   c.ForwardPrefix + "{topic}",
		})
	}
	return o
}

// webAuth is the HTTP listener's access control (http.*): the Kafka
// listener's SASL users for HTTP Basic, read-only users, bearer tokens
// from http.tokens-file (read here).
func (c *serveConfig) webAuth() (web.AuthOptions, error) {
	a := web.AuthOptions{Users: map[string]string{}, ReadOnlyUsers: c.HTTP.ReadOnlyUsers, Anonymous: c.httpAnonymous()}
	if _, accounts, err := c.accounts(); err == nil && (accounts.Len() > 0 || c.UsersFile != "") {
		a.Passwords = accounts // replaced on SIGHUP (reloadUsers)
	}
	a.Access, _ = c.accessPolicy() // checked by validate
	for _, u := range c.Kafka.Users {
		name, pass, _ := strings.Cut(u, ":")
		a.Users[name] = pass
	}
	if c.HTTP.TokensFile != "" {
		b, err := os.ReadFile(c.HTTP.TokensFile)
		if err != nil {
			return a, fmt.Errorf("config: http.tokens-file: %v", err)
		}
		a.Tokens = map[string]string{}
		for i, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			r, tok, ok := strings.Cut(line, " ")
			tok = strings.TrimSpace(tok)
			if !ok || (r != "read" && r != "write") || tok == "" {
				return a, fmt.Errorf("config: http.tokens-file %s line %d: want `read TOKEN` or `write TOKEN`", c.HTTP.TokensFile, i+1)
			}
			a.Tokens[tok] = r
		}
	}
	if err := a.Validate(); err != nil {
		return a, fmt.Errorf("config: http: %v", err)
	}
	return a, nil
}
