package mqtt

import (
	"crypto/tls"
	"fmt"
	"github.com/runnel/runnel/ingest/access"
	"log/slog"
	"strings"
	"time"

	"github.com/runnel/runnel/log"
)

// Defaults for zero Options fields.
const (
	DefaultTopic                     = "mqtt"
	DefaultMaxPendingPerClient       = 4096
	DefaultMaxPendingBytesPerClient  = 16 << 20
	DefaultMaxPacketSize             = 1 << 20
	DefaultConnectTimeout            = 10 * time.Second
	DefaultMaxConnsPerIP             = 1024
	DefaultMaxConns                  = 4096
	DefaultMaxSubscriptionsPerClient = 1000
	DefaultMaxSubscriptions          = 20000
	DefaultMaxSessions               = 10000
	DefaultMaxSessionQueueBytes      = 16 << 20
	DefaultMaxQueueBytes             = 512 << 20
	DefaultSysInterval               = 10 * time.Second
	DefaultWebsocketPath             = "/mqtt"
	DefaultMaxQueuedPerClient        = 1024
)

// Options configures a Broker. Zero fields take the documented defaults.
// Every field except Log and Logger can be set from the YAML config file
// (kebab-case keys).
type Options struct {
	// Log is the commit log every publish is appended to. Required.
	Log log.Log `yaml:"-"`
	// Logger receives structured logs; nil = slog.Default().
	Logger *slog.Logger `yaml:"-"`

	// Addr, TLS.Addr and WebsocketAddr are used by Start, which listens on
	// each non-empty address. Serve, ServeTLS and ServeWebsocket take a
	// listener the caller made and ignore them.
	Addr string `yaml:"addr"`
	// WebsocketAddr is the address of the optional MQTT-over-websocket
	// listener (path WebsocketPath); empty = none.
	WebsocketAddr string `yaml:"websocket-addr"`
	// WebsocketTLS makes Start serve the websocket listener over TLS (wss)
	// with the TLS options' certificate.
	WebsocketTLS bool `yaml:"websocket-tls"`
	// WebsocketPath is the HTTP path websocket clients connect to; default
	// "/mqtt" ("/" is accepted too).
	WebsocketPath string `yaml:"websocket-path"`
	// TLS configures the TLS listener (ServeTLS). Optional.
	TLS TLSOptions `yaml:"tls"`

	// Routes map MQTT topic filters to log topics and record keys; the
	// first route whose filter matches a publish wins. With no routes,
	// every publish goes to log topic "mqtt" with key = MQTT topic. A
	// publish that matches no route is delivered to subscribers and
	// acknowledged (in arrival order with the others) but not written to
	// the log.
	Routes []Route `yaml:"routes"`
	// Publish fans records appended to a log topic by other ingest paths
	// (Kafka) out to MQTT subscribers under a topic prefix. Records
	// that came in over MQTT are skipped (subscribers already had them).
	Publish []PublishRoute `yaml:"publish"`

	// AllowAnonymous lets clients connect without a user name. The zero
	// value refuses them: the zero-config `runnel serve` sets it to true
	// explicitly (and says so in the README).
	AllowAnonymous bool `yaml:"allow-anonymous"`
	// AllowRemoteAnonymous extends AllowAnonymous to clients that are not
	// on the loopback interface. The zero value refuses them (CONNACK
	// "not authorized"), so that a box on a plant network is not open by
	// accident.
	AllowRemoteAnonymous bool `yaml:"allow-remote-anonymous"`
	// Users are the accounts clients log in with (bcrypt password hashes).
	Users []User `yaml:"users"`
	// ACL rules, first match wins; with no rules every authenticated client
	// may read and write every topic. With rules, a topic no rule matches is
	// denied.
	ACL []ACLRule `yaml:"acl"`
	// Access, when set, is runnel's permission model over log topics
	// (package access), applied on top of ACL: a publish that a route
	// stores in log topic T needs Write on T; the delivery of a message
	// whose MQTT topic a route stores in T, or that a publish route fans
	// out of T, needs Read on T. The principal is the user name (or the
	// certificate's name), access.Anonymous without one. nil = no check.
	Access *access.Policy `yaml:"-"`
	// Quotas are the produce quotas per user (Kafka's producer_byte_rate,
	// one budget with Kafka's): a client over its user's rate has its
	// next packets read only after the throttle time (TCP holds it back;
	// MQTT has no throttle field). nil = none.
	Quotas *access.Quotas `yaml:"-"`

	// MaxPendingPerClient caps the messages of one client that are waiting
	// for the log (any QoS). At the cap the broker stops reading from that
	// client's connection until earlier messages are durable, so a flooding
	// client is slowed down instead of growing memory. Default 4096.
	MaxPendingPerClient int `yaml:"max-pending-per-client"`
	// MaxPendingBytesPerClient caps the payload bytes of those messages;
	// default 16 MiB.
	MaxPendingBytesPerClient int `yaml:"max-pending-bytes-per-client"`
	// MaxPacketSize is the largest MQTT packet accepted (bytes, fixed header
	// included). Checked on the Remaining Length before the packet is
	// allocated; larger packets close the connection. Default 1 MiB.
	MaxPacketSize int `yaml:"max-packet-size"`
	// ConnectTimeout is how long a new connection may take to send CONNECT;
	// default 10s.
	ConnectTimeout time.Duration `yaml:"connect-timeout"`
	// MaxConnsPerIP caps concurrent connections from one IP address; excess
	// connections are closed at once. Default 1024; <0 = unlimited.
	MaxConnsPerIP int `yaml:"max-conns-per-ip"`
	// MaxQueuedPerClient is the number of outgoing messages queued per
	// subscriber before further deliveries to it are dropped (counted in
	// MessagesDropped); memory for the queue is taken at connect (8 bytes
	// a slot). Default 1024 (mosquitto queues 1000); 256 saves 6 KiB per connection.
	MaxQueuedPerClient int `yaml:"max-queued-per-client"`
	// MaxClients caps connected clients in total; 0 = unlimited.
	MaxClients int `yaml:"max-clients"`
	// MaxSubscriptionsPerClient caps one client's subscriptions (a
	// persistent session's included); a SUBSCRIBE filter beyond it is
	// refused with 0x97 (MQTT 5) or 0x80 (MQTT 3.1.1), the others in the
	// packet are served. Default DefaultMaxSubscriptionsPerClient; <0 = no
	// cap.
	MaxSubscriptionsPerClient int `yaml:"max-subscriptions-per-client"`
	// MaxSubscriptions caps the subscriptions of all clients together
	// (each costs about 2.7 KiB, TestSubscriptionMemory: 20,000 take 54 MiB); refused as above. Default
	// DefaultMaxSubscriptions; <0 = no cap.
	MaxSubscriptions int `yaml:"max-subscriptions"`
	// MaxSessions caps the sessions held, connected and persistent ones
	// whose client is away together (each costs about 6 KiB without its
	// queued messages: 100,000 took 613 MB). A new client id at the cap
	// drops the session disconnected longest ago (counted in
	// SessionsEvicted; Mosquitto keeps them all); when every session is
	// connected, it is refused (CONNACK 0x97 quota exceeded, MQTT 3.1.1
	// 0x03 server unavailable). Default DefaultMaxSessions; <0 = no cap.
	MaxSessions int `yaml:"max-sessions"`
	// MaxSessionQueueBytes caps the topic and payload bytes of one
	// session's unacknowledged QoS 1/2 messages, those queued while its
	// client is away included (Mosquitto's max_queued_bytes); a message
	// over it is dropped for that session and counted in
	// InflightDropped. Default DefaultMaxSessionQueueBytes; <0 = no cap.
	MaxSessionQueueBytes int `yaml:"max-session-queue-bytes"`
	// MaxQueueBytes is the same cap for all sessions together, each
	// session's copy counted. Default DefaultMaxQueueBytes; <0 = no cap.
	MaxQueueBytes int `yaml:"max-queue-bytes"`
	// MaxConns caps the connections open at once on all listeners
	// together, before CONNECT or after; one more is closed at accept
	// (counted in ConnsRefused), so a flood cannot take the descriptors
	// the log needs. Default DefaultMaxConns; <0 = no cap. runnel serve
	// derives it from RLIMIT_NOFILE.
	MaxConns int `yaml:"max-conns"`
	// SysInterval is how often the $SYS topics are republished; default 10s.
	SysInterval time.Duration `yaml:"sys-interval"`
	// NoPersist disables keeping sessions and retained messages in the
	// log's metadata store (they then live in memory only).
	NoPersist bool `yaml:"no-persist"`
}

// TLSOptions configures the TLS listener. Empty CertFile = no TLS.
type TLSOptions struct {
	// Addr is the TLS listener address used by Start; empty = none.
	Addr string `yaml:"addr"`
	// CertFile and KeyFile are the PEM server certificate and key.
	CertFile string `yaml:"cert-file"`
	KeyFile  string `yaml:"key-file"`
	// ClientCAFile (PEM) enables client certificates, verified against it.
	ClientCAFile string `yaml:"client-ca-file"`
	// RequireClientCert refuses clients without a valid certificate (needs
	// ClientCAFile). Without it a certificate is verified when offered.
	RequireClientCert bool `yaml:"require-client-cert"`
	// CertAsUsername uses the verified client certificate's common name as
	// the user name (no password needed) for users and ACL rules.
	CertAsUsername bool `yaml:"cert-as-username"`
	// GetCertificate, when set, serves the certificate instead of
	// CertFile and KeyFile being loaded once (a reloadable pair: package
	// certs); CertFile is still what turns TLS on.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error) `yaml:"-"`
}

// Key rules of a Route.
const (
	KeyTopic  = "topic"  // key = MQTT topic (default)
	KeyClient = "client" // key = client id
	KeyNone   = "none"   // no key; the partition is chosen by client id so per-client order holds
)

// Acknowledgement rules of a Route.
const (
	AcksLocal = "1"   // PUBACK/PUBREC once durable on this box (default)
	AcksAll   = "all" // once durable here and on every in-sync copy on the site (Kafka acks=all)
)

// Route maps an MQTT topic filter to a log topic.
type Route struct {
	// Filter is an MQTT topic filter (+ and # wildcards).
	Filter string `yaml:"filter"`
	// Topic is the log topic (created with the log's defaults if missing).
	Topic string `yaml:"topic"`
	// Key is the record key rule: "topic" (default), "client" or "none".
	Key string `yaml:"key"`
	// Acks is when a QoS 1/2 publish is acknowledged: "1" (default, "" as
	// well) once durable on this box; "all" once durable here and on
	// every in-sync copy of the site (log.AllAppender, Kafka's acks=all,
	// the topic's min.insync.replicas as the floor). A publish that
	// cannot have that is refused: MQTT 5 reason 0x97 (quota exceeded),
	// an MQTT 3.1.1 client is disconnected (it sends it again). On a log
	// without site replication "all" is "1".
	Acks string `yaml:"acks"`
}

// PublishRoute fans a log topic out to MQTT subscribers: a record with key
// K is published to MQTT topic Prefix/K (Prefix when K is empty; + and #
// in K become _; a trailing / of Prefix is dropped, so "cmd/" is "cmd").
type PublishRoute struct {
	// Topic is the log topic to watch. Only records appended after the
	// broker started are published.
	Topic string `yaml:"topic"`
	// Prefix is the MQTT topic prefix (no wildcards).
	Prefix string `yaml:"prefix"`
	// QoS is the QoS subscribers receive at most (0 or 1); default 0.
	QoS byte `yaml:"qos"`
}

// User is an account: name and bcrypt hash of the password
// (`htpasswd -bnBC 10 "" PASSWORD | tr -d ':\n'` makes one).
type User struct {
	Name         string `yaml:"name"`
	PasswordHash string `yaml:"password-hash"`
}

// ACL access values.
const (
	AccessRead      = "read"
	AccessWrite     = "write"
	AccessReadWrite = "readwrite"
	AccessDeny      = "deny"
)

// ACLRule grants or denies access to topics matching a filter.
type ACLRule struct {
	// User the rule applies to; "" or "*" = every client, anonymous too.
	User string `yaml:"user"`
	// Topic is an MQTT filter; %u is replaced by the user name and %c by the
	// client id (a rule whose substitution is empty or contains + # / does
	// not match).
	Topic string `yaml:"topic"`
	// Access is read, write, readwrite or deny.
	Access string `yaml:"access"`
}

// ParseRoute parses the --mqtt-route flag: "FILTER=TOPIC" followed by
// ",key=RULE" (RULE: topic, client, none) and ",acks=ACKS" (1, all) in
// any order. The last '=' before the topic splits, so filters may
// contain '='.
func ParseRoute(s string) (Route, error) {
	var r Route
	rest := s
	for {
		k, a := strings.LastIndex(rest, ",key="), strings.LastIndex(rest, ",acks=")
		if k >= 0 && k > a {
			r.Key = rest[k+len(",key="):]
			rest = rest[:k]
		} else if a >= 0 {
			r.Acks = rest[a+len(",acks="):]
			rest = rest[:a]
			if r.Acks == "" {
				return Route{}, fmt.Errorf("%w %q: empty acks (want 1 or all)", ErrInvalidRoute, s)
			}
		} else {
			break
		}
	}
	i := strings.LastIndexByte(rest, '=')
	if i <= 0 || i == len(rest)-1 {
		return Route{}, fmt.Errorf("%w %q: want FILTER=TOPIC[,key=topic|client|none][,acks=1|all]", ErrInvalidRoute, s)
	}
	r.Filter, r.Topic = rest[:i], rest[i+1:]
	if err := r.Validate(); err != nil {
		return Route{}, err
	}
	return r, nil
}

// Validate checks the route.
func (r Route) Validate() error {
	if !validFilter(r.Filter) {
		return fmt.Errorf("%w: bad MQTT filter %q", ErrInvalidRoute, r.Filter)
	}
	if !log.ValidTopicName(r.Topic) {
		return fmt.Errorf("%w: bad log topic %q (letters, digits, . _ -)", ErrInvalidRoute, r.Topic)
	}
	switch r.Key {
	case "", KeyTopic, KeyClient, KeyNone:
	default:
		return fmt.Errorf("%w: key rule %q (want topic, client or none)", ErrInvalidRoute, r.Key)
	}
	switch r.Acks {
	case "", AcksLocal, AcksAll:
	default:
		return fmt.Errorf("%w: acks %q (want 1 or all)", ErrInvalidRoute, r.Acks)
	}
	return nil
}

// ParsePublishRoute parses the --mqtt-publish flag: "TOPIC=MQTT_PREFIX" or
// "TOPIC=MQTT_PREFIX,qos=1".
func ParsePublishRoute(s string) (PublishRoute, error) {
	var p PublishRoute
	rest := s
	if i := strings.LastIndex(rest, ",qos="); i >= 0 {
		switch rest[i+len(",qos="):] {
		case "0":
		case "1":
			p.QoS = 1
		default:
			return PublishRoute{}, fmt.Errorf("%w %q: qos must be 0 or 1", ErrInvalidRoute, s)
		}
		rest = rest[:i]
	}
	i := strings.IndexByte(rest, '=')
	if i <= 0 || i == len(rest)-1 {
		return PublishRoute{}, fmt.Errorf("%w %q: want TOPIC=MQTT_PREFIX[,qos=0|1]", ErrInvalidRoute, s)
	}
	p.Topic, p.Prefix = rest[:i], rest[i+1:]
	if err := p.Validate(); err != nil {
		return PublishRoute{}, err
	}
	return p, nil
}

// Validate checks the publish route.
func (p PublishRoute) Validate() error {
	if !log.ValidTopicName(p.Topic) {
		return fmt.Errorf("%w: bad log topic %q", ErrInvalidRoute, p.Topic)
	}
	if p.Prefix == "" || strings.ContainsAny(p.Prefix, "+#") || strings.HasPrefix(p.Prefix, "$") {
		return fmt.Errorf("%w: bad MQTT prefix %q (no wildcards, not $)", ErrInvalidRoute, p.Prefix)
	}
	if p.QoS > 1 {
		return fmt.Errorf("%w: publish qos %d (want 0 or 1)", ErrInvalidRoute, p.QoS)
	}
	return nil
}

// Validate checks every option (Log must be set).
func (o *Options) Validate() error {
	if o.Log == nil {
		return ErrNoLog
	}
	for _, r := range o.Routes {
		if err := r.Validate(); err != nil {
			return err
		}
	}
	for _, p := range o.Publish {
		if err := p.Validate(); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for _, u := range o.Users {
		if u.Name == "" {
			return fmt.Errorf("%w: user with empty name", ErrInvalidOptions)
		}
		if seen[u.Name] {
			return fmt.Errorf("%w: user %q listed twice", ErrInvalidOptions, u.Name)
		}
		seen[u.Name] = true
		if !strings.HasPrefix(u.PasswordHash, "$2") {
			return fmt.Errorf("%w: user %q: password-hash is not a bcrypt hash", ErrInvalidOptions, u.Name)
		}
	}
	for _, a := range o.ACL {
		if err := a.Validate(); err != nil {
			return err
		}
	}
	if o.MaxPendingPerClient < 0 || o.MaxPendingBytesPerClient < 0 || o.MaxPacketSize < 0 || o.ConnectTimeout < 0 || o.MaxClients < 0 || o.MaxQueuedPerClient < 0 || o.SysInterval < 0 {
		return fmt.Errorf("%w: negative limit", ErrInvalidOptions)
	}
	if o.MaxPacketSize > 256<<20 {
		return fmt.Errorf("%w: max-packet-size %d over the MQTT limit of 256 MiB", ErrInvalidOptions, o.MaxPacketSize)
	}
	if (o.TLS.CertFile == "") != (o.TLS.KeyFile == "") {
		return fmt.Errorf("%w: cert-file and key-file go together", ErrTLS)
	}
	if o.TLS.RequireClientCert && o.TLS.ClientCAFile == "" {
		return fmt.Errorf("%w: require-client-cert needs client-ca-file", ErrTLS)
	}
	if o.WebsocketTLS && o.TLS.CertFile == "" {
		return fmt.Errorf("%w: websocket-tls without cert-file", ErrTLS)
	}
	if o.TLS.Addr != "" && o.TLS.CertFile == "" {
		return fmt.Errorf("%w: tls addr set without cert-file", ErrTLS)
	}
	return nil
}

// Validate checks the rule.
func (a ACLRule) Validate() error {
	switch a.Access {
	case AccessRead, AccessWrite, AccessReadWrite, AccessDeny:
	default:
		return fmt.Errorf("%w: access %q (want read, write, readwrite or deny)", ErrInvalidACL, a.Access)
	}
	if !validFilter(a.Topic) {
		return fmt.Errorf("%w: topic filter %q", ErrInvalidACL, a.Topic)
	}
	return nil
}

// withDefaults returns a copy with zero fields filled in.
func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxPendingPerClient == 0 {
		o.MaxPendingPerClient = DefaultMaxPendingPerClient
	}
	if o.MaxPendingBytesPerClient == 0 {
		o.MaxPendingBytesPerClient = DefaultMaxPendingBytesPerClient
	}
	if o.MaxPacketSize == 0 {
		o.MaxPacketSize = DefaultMaxPacketSize
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.MaxConnsPerIP == 0 {
		o.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.MaxSubscriptionsPerClient == 0 {
		o.MaxSubscriptionsPerClient = DefaultMaxSubscriptionsPerClient
	}
	if o.MaxSubscriptions == 0 {
		o.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if o.MaxSessions == 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	if o.MaxSessionQueueBytes == 0 {
		o.MaxSessionQueueBytes = DefaultMaxSessionQueueBytes
	}
	if o.MaxQueueBytes == 0 {
		o.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if o.MaxQueuedPerClient == 0 {
		o.MaxQueuedPerClient = DefaultMaxQueuedPerClient
	}
	if o.SysInterval == 0 {
		o.SysInterval = DefaultSysInterval
	}
	if o.WebsocketPath == "" {
		o.WebsocketPath = DefaultWebsocketPath
	}
	return o
}

// validFilter reports whether f is a valid MQTT topic filter.
func validFilter(f string) bool {
	if f == "" || len(f) > 65535 || strings.ContainsRune(f, 0) {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return false
		}
		if strings.Contains(l, "+") && l != "+" {
			return false
		}
	}
	return true
}
