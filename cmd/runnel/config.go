package main

// Configuration of `runnel serve`: one typed tree (serveConfig) and one
// table of keys (serveConfig.keys) that every source maps onto.
//
// Each key has a path in the tree, which is its nested YAML form
// (kafka.max-frame-bytes is `kafka: {max-frame-bytes: …}`), and, unless it
// is a structured file-only key, one flat name that is at once the flag
// (--kafka-max-frame-bytes), the environment variable
// (RUNNEL_KAFKA_MAX_FRAME_BYTES: upper case, dashes as underscores, lists
// comma-separated) and a top-level YAML key accepted as an alias of the
// nested form (kafka-max-frame-bytes: …). The flat names are the flags
// runnel has always had, so old flat config files keep loading; a file
// that sets one key both ways is refused.
//
// Precedence, the same for every key: flag > environment > file > default.
// A list (a repeatable flag) from a higher source replaces the lower one's;
// it does not add to it.
// A key whose default depends on other keys (mqtt.allow-anonymous,
// mqtt.tls.require-client-cert) is a *bool left nil by the default and
// resolved where the component's Options are built (config_options.go).
//
// One validation pass (serveConfig.validate) runs after all sources: each
// key's own check, then the checks that span keys. Every error starts with
// "config: " and names the key's path and where its value came from, e.g.
// `config: kafka.max-frame-bytes (flag --kafka-max-frame-bytes): must be > 0`.
// Unknown YAML keys and values that do not parse are refused the same way
// while loading (config_load.go).
//
// Each component's Options are built from the tree in one place,
// config_options.go; the wiring adds only what exists at run time (the
// log, the node id, loggers) and reads the listener addresses.
//
// Adding a key is a one-place change plus its use:
//  1. add the field to the tree below (a new component gets its own branch
//     struct, e.g. Replication replicationConfig for replication.*);
//  2. add one row to keys(): path, flat name (flag/env; "" for a
//     structured file-only key), default text, value binding
//     (str, dur, i32, i64, integer, boolean, optBool, strList, list,
//     fileOnly) and the one-line doc shown by --help and in the README;
//     give it a check when some values are wrong;
//  3. read the field in config_options.go where that component's Options
//     are built;
//  4. run `go test ./cmd/runnel -run TestREADMEConfigTable -update` to
//     regenerate the README's reference table (the test fails until the
//     README matches the table).
//
// A repeatable flag (--join A --join B) is strList or list; a cross-key
// rule goes into validate. The flat name is the path with dots as dashes
// unless a shorter established name exists; it must not equal another
// key's path or branch (TestConfigTableCoversTree checks), so site
// replication goes under its own branch, not under site (a key):
//
//	Replication struct{ Join []string; GossipAddr string }   // in serveConfig
//	{path: "replication.join", flag: "join", v: strList(&c.Replication.Join, nil),
//		doc: "peer to join, host:port (repeatable)"},
//	{path: "replication.gossip-addr", flag: "gossip-addr", def: ":7946",
//		v: str(&c.Replication.GossipAddr), check: addr(&c.Replication.GossipAddr),
//		doc: "serf gossip listener"},
//
// HTTP API settings go under http.*; when web.Options gains a field that
// comes from configuration, build it in config_options.go like the others.

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runnel/runnel/ingest/access"
	"github.com/runnel/runnel/ingest/kafka"
	"github.com/runnel/runnel/ingest/mqtt"
	"github.com/runnel/runnel/ingest/users"
	"github.com/runnel/runnel/sync/forward"
)

// serveConfig is the configuration tree of `runnel serve`. Field comments
// are in keys(), which documents each key once.
type serveConfig struct {
	ConfigFile      string
	DataDir         string
	NodeID          string
	Site            string
	ShutdownTimeout time.Duration

	AllowRemoteAnonymous bool
	UsersFile            string

	Logging     loggingConfig
	Log         logConfig
	Kafka       kafkaConfig
	MQTT        mqttConfig
	HTTP        httpConfig
	Access      accessConfig
	Replication replicationConfig

	// Forwarding: the flat common case (upstream-kafka, forward,
	// forward-prefix) and the structured upstreams and routes.
	UpstreamKafka string
	Forward       []string
	ForwardPrefix string
	Upstreams     map[string]forward.Upstream
	Routes        []forward.Route

	// table is keys() bound to this tree, with where each value came from.
	table []*key
}

type loggingConfig struct {
	Level, Format string
}

// logConfig is the commit log (log.Options and its topic defaults).
type logConfig struct {
	Fsync              string
	FsyncInterval      time.Duration
	DefaultPartitions  int32
	Retention          time.Duration
	RetentionBytes     int64
	SegmentBytes       int64
	OnFull             string
	MinFreeBytes       int64
	MaxOpenFiles       int
	SharedSegments     bool
	CommitDelay        time.Duration
	CleanerBytesPerSec int64
	CleanerInterval    time.Duration
}

// replicationConfig is site replication (replicate/): gossip membership,
// copies and acks=all. Off (no gossip port) without join and gossip-addr.
type replicationConfig struct {
	Join                     []string
	GossipAddr               string
	GossipKeyFile            string
	GossipInsecure           bool
	PeerUser                 string
	PeerPasswordFile         string
	DefaultReplicationFactor int32
	DefaultMinInsyncReplicas int32
	ReplicaLagTimeMax        time.Duration
	Failover                 bool
	FailoverWaitMax          time.Duration
	RestoreTimeout           time.Duration
}

type kafkaConfig struct {
	Addr             string
	AdvertisedAddr   string
	AutoCreateTopics bool
	Users            []string
	AllowPlainNoTLS  bool
	TLS              struct{ CertFile, KeyFile, ClientCAFile string }
	MaxFrameBytes    int32
	MaxQueuedBytes   int64
	MaxConns         int
	MaxConnsPerIP    int
	ConnectTimeout   time.Duration
	IdleTimeout      time.Duration
}

type mqttConfig struct {
	Addr           string
	WebsocketAddr  string
	WebsocketTLS   bool
	WebsocketPath  string
	TLS            mqttTLSConfig
	Routes         []mqtt.Route
	Publish        []mqtt.PublishRoute
	AllowAnonymous *bool // nil: allowed when there are no users
	Users          []mqtt.User
	ACL            []mqtt.ACLRule

	MaxPendingPerClient      int
	MaxPendingBytesPerClient int
	MaxPacketSize            int
	ConnectTimeout           time.Duration
	MaxConnsPerIP            int
	MaxQueuedPerClient       int
	MaxClients               int
	MaxConns                 int
	MaxSubsPerClient         int
	MaxSubs                  int
	MaxSessions              int
	MaxSessionQueueBytes     int
	MaxQueueBytes            int
	SysInterval              time.Duration
	NoPersist                bool
}

type mqttTLSConfig struct {
	Addr              string
	CertFile          string
	KeyFile           string
	ClientCAFile      string
	RequireClientCert *bool // nil: required when ClientCAFile is set
	CertAsUsername    bool
}

// accessConfig is the permission model (package access) applied to
// Kafka, MQTT and HTTP. Without rules and superusers every authenticated
// client may do everything.
type accessConfig struct {
	Superusers []string
	Rules      []access.RuleSpec
	Quotas     []quotaConfig
}

// quotaConfig is one produce quota (Kafka's producer_byte_rate).
type quotaConfig struct {
	User             string `yaml:"user"`
	ProducerByteRate int64  `yaml:"producer-byte-rate"`
}

type httpConfig struct {
	Addr          string
	MaxBodyBytes  int64
	TLS           struct{ CertFile, KeyFile string }
	Anonymous     string
	ReadOnlyUsers []string
	TokensFile    string
	LinkBudget    int64
}

// keys is the table of every configuration key, bound to c's fields. The
// order is the order of --help and of the README table.
func (c *serveConfig) keys() []*key {
	return []*key{
		{path: "config", flag: "config", noFile: true, v: str(&c.ConfigFile),
			doc: "YAML config file (nested keys as below, or the flat names at top level)"},
		{path: "data-dir", flag: "data-dir", def: "./runnel-data", v: str(&c.DataDir), check: nonEmpty(&c.DataDir),
			doc: "data directory (locked: a second runnel on it refuses to start)"},
		{path: "node-id", flag: "node-id", defDoc: "generated", v: str(&c.NodeID),
			doc: "node id, generated once and kept in the data dir"},
		{path: "site", flag: "site", v: str(&c.Site),
			doc: "site id, `{site}` in upstream topic templates"},
		{path: "shutdown-timeout", flag: "shutdown-timeout", def: "10s", v: dur(&c.ShutdownTimeout), check: notNegative(&c.ShutdownTimeout),
			doc: "time allowed for a stop on SIGTERM: components finish in-flight work until 90% of it (then upstream records still unacknowledged are sent again after the next start and slow clients are disconnected), the log syncs and the process exits within it"},

		{path: "allow-remote-anonymous", flag: "allow-remote-anonymous", def: "false", v: boolean(&c.AllowRemoteAnonymous),
			doc: "let clients that are not on the loopback interface use Kafka (while `kafka.users` is empty), MQTT (while anonymous MQTT is allowed) and HTTP (`http.anonymous: loopback` acts as `write`) without credentials. Off, such a client is refused with the protocol's own error (Kafka: TOPIC_AUTHORIZATION_FAILED and an empty topic list; MQTT: CONNACK not authorized; HTTP: 401). A trusted, isolated network only: warned at every start and in `/api/status` `security.warnings`"},

		{path: "users-file", flag: "users-file", v: str(&c.UsersFile), check: c.checkUsersFile,
			doc: "accounts for Kafka SASL (PLAIN, SCRAM-SHA-256/512), MQTT and HTTP Basic: bcrypt and SCRAM credentials, never a password; managed with `runnel user add|del|list --users-file FILE`, read again on SIGHUP. Any account means credentials are required (Kafka: SASL on every connection; MQTT: anonymous refused unless `mqtt.allow-anonymous`)"},

		{path: "logging.level", flag: "log-level", def: "info", v: str(&c.Logging.Level), check: oneOf(&c.Logging.Level, "debug", "info", "warn", "error"),
			doc: "`debug`, `info`, `warn`, `error`"},
		{path: "logging.format", flag: "log-format", def: "text", v: str(&c.Logging.Format), check: oneOf(&c.Logging.Format, "text", "json"),
			doc: "`text` or `json`"},

		{path: "log.fsync", flag: "fsync", def: "always", v: str(&c.Log.Fsync), check: oneOf(&c.Log.Fsync, "always", "interval", "never"),
			doc: "default fsync policy: `always` (ack after sync), `interval`, `never`"},
		{path: "log.fsync-interval", flag: "fsync-interval", def: "1s", v: dur(&c.Log.FsyncInterval), check: positive(&c.Log.FsyncInterval),
			doc: "loss window of `fsync: interval`"},
		{path: "log.default-partitions", flag: "default-partitions", def: "1", v: i32(&c.Log.DefaultPartitions), check: atLeast(&c.Log.DefaultPartitions, 1),
			doc: "partitions of auto-created topics"},
		{path: "log.retention", flag: "retention", def: "168h", v: dur(&c.Log.Retention),
			doc: "default retention by age (negative = forever)"},
		{path: "log.retention-bytes", flag: "retention-bytes", def: "-1", v: i64(&c.Log.RetentionBytes),
			doc: "default retention by size per partition (negative = unlimited)"},
		{path: "log.segment-bytes", flag: "segment-bytes", def: "67108864", v: i64(&c.Log.SegmentBytes), check: positive(&c.Log.SegmentBytes),
			doc: "segment roll size (on a data volume it does not fit, segments roll at a sixteenth of the usable space: a warning at start)"},
		{path: "log.on-full", flag: "on-full", def: "reject", v: str(&c.Log.OnFull), check: oneOf(&c.Log.OnFull, "reject", "drop-oldest"),
			doc: "when the disk is short: `reject` (retriable error to producers) or `drop-oldest`"},
		{path: "log.min-free-bytes", flag: "min-free-bytes", def: "67108864", v: i64(&c.Log.MinFreeBytes),
			doc: "disk guard: free bytes under which `on-full` applies (negative = off; half the data volume or more is lowered to an eighth of it, with a warning at start)"},
		{path: "log.max-open-files", flag: "max-open-files", def: "256", v: integer(&c.Log.MaxOpenFiles), check: positive(&c.Log.MaxOpenFiles),
			doc: "bound on open segment files (LRU)"},
		{path: "log.shared-segments", flag: "shared-segments", def: "true", v: boolean(&c.Log.SharedSegments),
			doc: "store small `fsync: always` commits once, in node-wide shared segment files (about 1.4 instead of 3 device bytes per byte for many trickling partitions: SD-card wear); `false` = each partition's own segment files made durable through a node journal. A data dir that holds shared files keeps them on (see `log/doc.go`)"},
		{path: "log.commit-delay", flag: "commit-delay", def: "10ms", v: dur(&c.Log.CommitDelay), check: notNegative(&c.Log.CommitDelay),
			doc: "longest a commit may wait to gather appends of many trickling writers (ones not waiting for an ack) into fuller pages: fewer syncs, less SD-card wear. Never applied to a writer that waits alone or to writers that each wait for their ack (MQTT QoS 1 clients, Kafka producers waiting for acks): those get each ack when the sync covering it ends. `0` = never wait. Each hold is counted (`runnel_log_commits_delayed_total`); figures per value in `log/doc.go`"},

		{path: "log.cleaner-bytes-per-sec", flag: "cleaner-bytes-per-sec", def: "4194304", v: i64(&c.Log.CleanerBytesPerSec),
			doc: "I/O bound of the cleaner of compacted topics (`cleanup.policy=compact`): bytes read plus written per second, so compaction never saturates an SD card (negative = unbounded)"},

		{path: "log.cleaner-interval", flag: "cleaner-interval", def: "15s", v: dur(&c.Log.CleanerInterval), check: positive(&c.Log.CleanerInterval),
			doc: "how often the cleaner looks for compacted partitions whose dirty share reached `min.cleanable.dirty.ratio`"},

		{path: "kafka.addr", flag: "kafka-addr", def: ":9092", v: str(&c.Kafka.Addr), check: addr(&c.Kafka.Addr),
			doc: "Kafka wire protocol listener (empty = off)"},
		{path: "kafka.advertised-addr", flag: "kafka-advertised-addr", v: str(&c.Kafka.AdvertisedAddr), check: addr(&c.Kafka.AdvertisedAddr),
			doc: "host:port given to Kafka clients (default: the address they connected to)"},
		{path: "kafka.auto-create-topics", flag: "auto-create-topics", def: "true", v: boolean(&c.Kafka.AutoCreateTopics),
			doc: "create unknown topics on produce/metadata"},
		{path: "kafka.users", flag: "kafka-user", v: strList(&c.Kafka.Users, parseKafkaUser),
			doc: "deprecated (the password shows in `ps` and in the config): use `users-file`. SASL user `NAME:PASSWORD` (repeatable; any = SASL required), for PLAIN, SCRAM-SHA-256/512 and HTTP Basic; a warning at start"},
		{path: "kafka.allow-plain-without-tls", flag: "kafka-allow-plain-without-tls", def: "false", v: boolean(&c.Kafka.AllowPlainNoTLS),
			doc: "offer SASL/PLAIN to clients off the loopback interface on a listener without TLS (the password crosses the network in clear). Off, they are offered SCRAM-SHA-256/512 only: SaslHandshake answers UNSUPPORTED_SASL_MECHANISM for PLAIN"},
		{path: "kafka.tls.cert-file", flag: "kafka-tls-cert", v: str(&c.Kafka.TLS.CertFile),
			doc: "TLS certificate (PEM) for the Kafka listener"},
		{path: "kafka.tls.key-file", flag: "kafka-tls-key", v: str(&c.Kafka.TLS.KeyFile),
			doc: "TLS key (PEM) for the Kafka listener"},
		{path: "kafka.tls.client-ca-file", flag: "kafka-tls-client-ca", v: str(&c.Kafka.TLS.ClientCAFile),
			doc: "CA bundle (PEM) Kafka client certificates are verified against (mutual TLS): a client with a valid certificate is the user named by its common name, without SASL, under the same access rules"},
		{path: "kafka.max-frame-bytes", flag: "kafka-max-frame-bytes", def: strconv.Itoa(kafka.DefaultMaxFrameBytes), v: i32(&c.Kafka.MaxFrameBytes), check: positive(&c.Kafka.MaxFrameBytes),
			doc: "largest Kafka request accepted (the Java client and librdkafka send at most 1 MB; franz-go up to its `BrokerMaxWriteBytes`, 100 MiB by default: set it to this)"},
		{path: "kafka.max-queued-request-bytes", flag: "kafka-max-queued-request-bytes", def: strconv.Itoa(kafka.DefaultMaxQueuedRequestBytes), v: i64(&c.Kafka.MaxQueuedBytes),
			doc: "request bytes all Kafka connections together may hold from the read of a frame until its response is ready (Kafka's `queued.max.request.bytes`); a connection whose next request does not fit stops reading until others complete (negative = no bound). With 16 maximal requests at once RSS grows by at most about twice this"},
		{path: "kafka.max-connections", flag: "kafka-max-connections", defDoc: "derived from `RLIMIT_NOFILE`", v: integer(&c.Kafka.MaxConns),
			doc: "Kafka connections open at once; one more is closed at accept (`runnel_kafka_connections_refused_total`). `0` = half of what `RLIMIT_NOFILE` leaves after `log.max-open-files`, 128 reserved and 64 HTTP connections (the start log shows it); negative = no cap"},
		{path: "kafka.max-connections-per-ip", flag: "kafka-max-connections-per-ip", def: strconv.Itoa(kafka.DefaultMaxConnsPerIP), v: integer(&c.Kafka.MaxConnsPerIP),
			doc: "Kafka connections open at once from one IP address; one more is closed at accept (`runnel_kafka_connections_refused_total`; negative = unlimited)"},
		{path: "kafka.connect-timeout", flag: "kafka-connect-timeout", def: kafka.DefaultConnectTimeout.String(), v: dur(&c.Kafka.ConnectTimeout), check: notNegative(&c.Kafka.ConnectTimeout),
			doc: "time a new Kafka connection has to send its first request and, with SASL, to authenticate (TLS handshake included)"},
		{path: "kafka.idle-timeout", flag: "kafka-idle-timeout", def: "10m0s", v: dur(&c.Kafka.IdleTimeout), check: notNegative(&c.Kafka.IdleTimeout),
			doc: "a Kafka connection without a request for this long is closed (Kafka's `connections.max.idle.ms`; clients close theirs after 9 minutes)"},

		{path: "mqtt.addr", flag: "mqtt-addr", def: ":1883", v: str(&c.MQTT.Addr), check: addr(&c.MQTT.Addr),
			doc: "MQTT listener (empty = off)"},
		{path: "mqtt.routes", flag: "mqtt-route", v: list(&c.MQTT.Routes, mqtt.ParseRoute, mqtt.Route.Validate, "key", "acks"),
			doc: "`FILTER=TOPIC[,key=topic|client|none][,acks=1|all]` or `{filter, topic, key, acks}` (repeatable); default: everything to topic `mqtt`, key = MQTT topic. `acks: all`: PUBACK/PUBREC once every in-sync copy on the site holds the message (else MQTT 5 reason 0x97, MQTT 3.1.1 disconnect)"},
		{path: "mqtt.publish", flag: "mqtt-publish", v: list(&c.MQTT.Publish, mqtt.ParsePublishRoute, mqtt.PublishRoute.Validate, "qos"),
			doc: "`TOPIC=MQTT_PREFIX[,qos=0|1]` or `{topic, prefix, qos}`: fan records of a log topic out to MQTT subscribers, a record with key K to MQTT topic `MQTT_PREFIX/K` (`MQTT_PREFIX` for a null key; repeatable)"},
		{path: "mqtt.allow-anonymous", flag: "mqtt-allow-anonymous", defDoc: "`true` without `mqtt.users`, else `false`", v: optBool(&c.MQTT.AllowAnonymous),
			doc: "allow MQTT clients without credentials: from the loopback interface only unless `allow-remote-anonymous`"},
		{path: "mqtt.users", v: fileOnly(&c.MQTT.Users), check: c.checkMQTTUsers,
			doc: "accounts: list of `{name, password-hash}` (bcrypt: `htpasswd -bnBC 10 \"\" PASSWORD | tr -d ':\\n'`)"},
		{path: "mqtt.acl", v: fileOnly(&c.MQTT.ACL), check: each(&c.MQTT.ACL, mqtt.ACLRule.Validate),
			doc: "rules `{user, topic, access: read|write|readwrite|deny}`, first match wins; with rules, a topic no rule matches is denied"},
		{path: "mqtt.tls.addr", flag: "mqtt-tls-addr", v: str(&c.MQTT.TLS.Addr), check: addr(&c.MQTT.TLS.Addr),
			doc: "MQTT over TLS listener (needs `mqtt.tls.cert-file` and `key-file`)"},
		{path: "mqtt.tls.cert-file", flag: "mqtt-tls-cert", v: str(&c.MQTT.TLS.CertFile),
			doc: "TLS certificate (PEM) for MQTT"},
		{path: "mqtt.tls.key-file", flag: "mqtt-tls-key", v: str(&c.MQTT.TLS.KeyFile),
			doc: "TLS key (PEM) for MQTT"},
		{path: "mqtt.tls.client-ca-file", flag: "mqtt-tls-client-ca", v: str(&c.MQTT.TLS.ClientCAFile),
			doc: "CA bundle (PEM) that MQTT client certificates are verified against"},
		{path: "mqtt.tls.require-client-cert", flag: "mqtt-tls-require-client-cert", defDoc: "`true` with `mqtt.tls.client-ca-file`", v: optBool(&c.MQTT.TLS.RequireClientCert),
			doc: "refuse MQTT TLS clients without a valid certificate (`false`: verify one when offered)"},
		{path: "mqtt.tls.cert-as-username", flag: "mqtt-tls-cert-as-username", def: "false", v: boolean(&c.MQTT.TLS.CertAsUsername),
			doc: "use the verified client certificate's common name as the MQTT user name"},
		{path: "mqtt.websocket-addr", flag: "mqtt-ws-addr", v: str(&c.MQTT.WebsocketAddr), check: addr(&c.MQTT.WebsocketAddr),
			doc: "MQTT over websocket listener"},
		{path: "mqtt.websocket-tls", flag: "mqtt-websocket-tls", def: "false", v: boolean(&c.MQTT.WebsocketTLS),
			doc: "serve the websocket listener over TLS (wss) with `mqtt.tls`'s certificate"},
		{path: "mqtt.websocket-path", flag: "mqtt-websocket-path", def: mqtt.DefaultWebsocketPath, v: str(&c.MQTT.WebsocketPath),
			doc: "HTTP path of the websocket listener"},
		{path: "mqtt.max-pending-per-client", flag: "mqtt-max-pending-per-client", def: strconv.Itoa(mqtt.DefaultMaxPendingPerClient), v: integer(&c.MQTT.MaxPendingPerClient), check: notNegative(&c.MQTT.MaxPendingPerClient),
			doc: "messages of one client waiting for the log before its connection is no longer read"},
		{path: "mqtt.max-pending-bytes-per-client", flag: "mqtt-max-pending-bytes-per-client", def: strconv.Itoa(mqtt.DefaultMaxPendingBytesPerClient), v: integer(&c.MQTT.MaxPendingBytesPerClient), check: notNegative(&c.MQTT.MaxPendingBytesPerClient),
			doc: "payload bytes of those messages"},
		{path: "mqtt.max-packet-size", flag: "mqtt-max-packet-size", def: strconv.Itoa(mqtt.DefaultMaxPacketSize), v: integer(&c.MQTT.MaxPacketSize), check: between(&c.MQTT.MaxPacketSize, 0, 256<<20),
			doc: "largest MQTT packet accepted (bytes); MQTT 5 clients learn it from their CONNACK, and a larger packet closes the connection (after DISCONNECT 0x95 for MQTT 5). A message must also fit its log topic's `max.message.bytes` (else PUBACK 0x95)"},
		{path: "mqtt.connect-timeout", flag: "mqtt-connect-timeout", def: mqtt.DefaultConnectTimeout.String(), v: dur(&c.MQTT.ConnectTimeout), check: notNegative(&c.MQTT.ConnectTimeout),
			doc: "time a new connection has to send CONNECT"},
		{path: "mqtt.max-conns-per-ip", flag: "mqtt-max-conns-per-ip", def: strconv.Itoa(mqtt.DefaultMaxConnsPerIP), v: integer(&c.MQTT.MaxConnsPerIP),
			doc: "concurrent connections from one IP address (negative = unlimited)"},
		{path: "mqtt.max-queued-per-client", flag: "mqtt-max-queued-per-client", def: strconv.Itoa(mqtt.DefaultMaxQueuedPerClient), v: integer(&c.MQTT.MaxQueuedPerClient), check: notNegative(&c.MQTT.MaxQueuedPerClient),
			doc: "outgoing messages queued per subscriber before deliveries to it are dropped"},
		{path: "mqtt.max-clients", flag: "mqtt-max-clients", def: "0", v: integer(&c.MQTT.MaxClients), check: notNegative(&c.MQTT.MaxClients),
			doc: "connected clients in total (0 = unlimited)"},
		{path: "mqtt.max-subscriptions-per-client", flag: "mqtt-max-subscriptions-per-client", def: strconv.Itoa(mqtt.DefaultMaxSubscriptionsPerClient), v: integer(&c.MQTT.MaxSubsPerClient),
			doc: "subscriptions one client may hold (its persistent session's included); a filter beyond it is refused in the SUBACK with 0x97 quota exceeded (MQTT 5) or 0x80 (MQTT 3.1.1), counted in `runnel_mqtt_subscriptions_refused_total` (negative = no cap)"},
		{path: "mqtt.max-subscriptions", flag: "mqtt-max-subscriptions", def: strconv.Itoa(mqtt.DefaultMaxSubscriptions), v: integer(&c.MQTT.MaxSubs),
			doc: "subscriptions of all clients together (each costs about 2.7 KiB of memory); refused as above (negative = no cap)"},
		{path: "mqtt.max-sessions", flag: "mqtt-max-sessions", def: strconv.Itoa(mqtt.DefaultMaxSessions), v: integer(&c.MQTT.MaxSessions),
			doc: "sessions held, connected clients and persistent sessions whose client is away together (about 6 KiB each without queued messages). A new client id at the cap drops the session disconnected longest ago, counted in `runnel_mqtt_sessions_evicted_total`; when every session is connected it is refused (CONNACK 0x97, MQTT 3.1.1 0x03). Negative or 0 = no cap"},
		{path: "mqtt.max-session-queue-bytes", flag: "mqtt-max-session-queue-bytes", def: strconv.Itoa(mqtt.DefaultMaxSessionQueueBytes), v: integer(&c.MQTT.MaxSessionQueueBytes),
			doc: "topic and payload bytes of one session's unacknowledged QoS 1/2 messages, those queued while its client is away included (Mosquitto's `max_queued_bytes`); one more is dropped for that session, counted in `runnel_mqtt_session_queue_dropped_total`. Negative or 0 = no cap"},
		{path: "mqtt.max-queue-bytes", flag: "mqtt-max-queue-bytes", def: strconv.Itoa(mqtt.DefaultMaxQueueBytes), v: integer(&c.MQTT.MaxQueueBytes),
			doc: "the same for all sessions together, each session's copy counted (`runnel_mqtt_session_queue_bytes`). Negative or 0 = no cap"},
		{path: "mqtt.max-conns", flag: "mqtt-max-conns", defDoc: "derived from `RLIMIT_NOFILE`", v: integer(&c.MQTT.MaxConns),
			doc: "MQTT connections open at once, before or after CONNECT, all listeners together; one more is closed at accept. `0` = the other half of what `kafka.max-connections` is derived from; negative = no cap"},
		{path: "mqtt.sys-interval", flag: "mqtt-sys-interval", def: mqtt.DefaultSysInterval.String(), v: dur(&c.MQTT.SysInterval), check: notNegative(&c.MQTT.SysInterval),
			doc: "how often the `$SYS` topics are republished"},
		{path: "mqtt.no-persist", flag: "mqtt-no-persist", def: "false", v: boolean(&c.MQTT.NoPersist),
			doc: "keep MQTT sessions and retained messages in memory only"},

		{path: "http.addr", flag: "http-addr", def: ":8080", v: str(&c.HTTP.Addr), check: addr(&c.HTTP.Addr),
			doc: "HTTP listener: dashboard (/ui/), REST produce and read (/topics), live tail, MQTT publish, /healthz /readyz /metrics /api (empty = off)"},
		{path: "http.tls.cert-file", flag: "http-tls-cert", v: str(&c.HTTP.TLS.CertFile),
			doc: "TLS certificate (PEM) for the HTTP listener (HTTPS); reloaded on SIGHUP and when the file changes, as the Kafka and MQTT ones"},
		{path: "http.tls.key-file", flag: "http-tls-key", v: str(&c.HTTP.TLS.KeyFile),
			doc: "TLS key (PEM) for the HTTP listener"},
		{path: "http.max-body-bytes", flag: "http-max-body-bytes", def: "4194304", v: i64(&c.HTTP.MaxBodyBytes), check: positive(&c.HTTP.MaxBodyBytes),
			doc: "largest HTTP request body (produce, publish), refused with 413 before it is read"},
		{path: "http.anonymous", flag: "http-anonymous", def: "loopback", v: str(&c.HTTP.Anonymous), check: oneOf(&c.HTTP.Anonymous, "loopback", "none", "read", "write"),
			doc: "access without credentials: `loopback` (clients on the loopback interface may do everything, others need credentials), `none`, `read` (anyone may read), `write` (anyone may do everything: a trusted, isolated network only). `/healthz` and `/readyz` are always open"},
		{path: "http.read-only-users", flag: "http-read-only-user", v: strList(&c.HTTP.ReadOnlyUsers, nil),
			doc: "users of `kafka.users` that may only read over HTTP (repeatable); the others may also produce, publish and pause routes. HTTP Basic authentication uses the Kafka SASL users"},
		{path: "http.tokens-file", flag: "http-tokens-file", v: str(&c.HTTP.TokensFile),
			doc: "bearer tokens, one a line: `read TOKEN` or `write TOKEN` (`#` starts a comment); `Authorization: Bearer TOKEN`"},
		{path: "http.link-budget-bytes-per-day", flag: "http-link-budget-bytes-per-day", def: "0", v: i64(&c.HTTP.LinkBudget), check: notNegative(&c.HTTP.LinkBudget),
			doc: "the uplink's data plan per day, shown against each route's bytes per day on the dashboard and in `/api/uplink` (0 = none)"},

		{path: "access.superusers", flag: "access-superuser", v: strList(&c.Access.Superusers, nil),
			doc: "users that may do everything (repeatable); with it or `access.rules`, every other client, `ANONYMOUS` (a client without credentials) included, may do only what the rules grant"},
		{path: "access.rules", v: fileOnly(&c.Access.Rules), check: c.checkAccessRules,
			doc: "permission rules over log topics, consumer groups, Kafka transactional ids and the cluster, for Kafka, MQTT (the log topics MQTT routes store in and publish routes fan out of) and HTTP: `{user, topic|group|transactional-id: PATTERN, cluster: true, allow|deny: [read, write, create, delete, alter, describe, cluster-action, all]}`; `user: \"*\"` is everyone; PATTERN `*`, `prefix*` or a name; a deny wins, nothing matched = denied (Kafka's rules, see `ingest/access/doc.go`)"},

		{path: "access.quotas", v: fileOnly(&c.Access.Quotas), check: c.checkQuotas,
			doc: "produce quotas: `{user, producer-byte-rate}` (bytes/s, Kafka's `producer_byte_rate`, one budget per user for Kafka and MQTT together; `user: \"*\"` = each user without its own, `ANONYMOUS` included, each with its own budget). A Kafka producer over its rate is answered with `throttle_time_ms` and its connection is not read until that time has passed (`runnel_kafka_throttled_total`); an MQTT client's next packets are read only after it (`runnel_mqtt_quota_throttled_total`)"},

		{path: "upstream-kafka", flag: "upstream-kafka", v: str(&c.UpstreamKafka),
			doc: "central Kafka brokers (comma-separated): the upstream named `default`"},
		{path: "forward", flag: "forward", v: strList(&c.Forward, nil),
			doc: "local topic glob forwarded to upstream `default` (repeatable)"},
		{path: "forward-prefix", flag: "forward-prefix", v: str(&c.ForwardPrefix),
			doc: "prefix for upstream topic names of `forward` routes"},
		{path: "replication.join", flag: "join", v: strList(&c.Replication.Join, nil),
			doc: "site peer to join: `HOST[:PORT]` of its gossip address (repeatable, DNS names allowed, port 7946 when left out); turns site replication on"},
		{path: "replication.gossip-addr", flag: "gossip-addr", defDoc: "`:7946` with `replication.join`", v: str(&c.Replication.GossipAddr),
			doc: "gossip (serf) address `HOST[:PORT]`, UDP and TCP (port 7946 when left out); turns site replication on. Without it and `replication.join` no gossip port is opened"},
		{path: "replication.gossip-key-file", flag: "gossip-key-file", v: str(&c.Replication.GossipKeyFile),
			doc: "serf keyring: base64 AES keys (16, 24 or 32 bytes: `openssl rand -base64 32`), one a line, the first encrypts; a box without the key cannot join. Required on a non-loopback gossip address"},
		{path: "replication.gossip-insecure", flag: "gossip-insecure", def: "false", v: boolean(&c.Replication.GossipInsecure),
			doc: "allow unencrypted gossip on a non-loopback address (a trusted, isolated network only)"},
		{path: "replication.peer-user", flag: "peer-user", v: str(&c.Replication.PeerUser),
			doc: "site credential: the account (in every box's `users-file`) peers fetch copies with, over SASL/SCRAM-SHA-512. With access rules it gets exactly what mirroring needs and nothing more: `cluster-action` on the cluster (follower fetches) and `read` (with its implied `describe`) on every topic. Without it peers use an account derived from the gossip key (every box of the site holds the key), else the first `kafka.users` account"},
		{path: "replication.peer-password-file", flag: "peer-password-file", v: str(&c.Replication.PeerPasswordFile),
			doc: "file holding `replication.peer-user`'s password (first line; mode 0600)"},
		{path: "replication.default-replication-factor", flag: "default-replication-factor", def: "2", v: i32(&c.Replication.DefaultReplicationFactor), check: atLeast(&c.Replication.DefaultReplicationFactor, 1),
			doc: "topics' `replication.factor` default with site replication on: copies on the site, this box's included (1 without replication)"},
		{path: "replication.default-min-insync-replicas", flag: "default-min-insync-replicas", def: "1", v: i32(&c.Replication.DefaultMinInsyncReplicas), check: atLeast(&c.Replication.DefaultMinInsyncReplicas, 1),
			doc: "topics' `min.insync.replicas` default: copies an `acks=all` produce needs (2: never acknowledge what only one box holds)"},
		{path: "replication.replica-lag-time-max", flag: "replica-lag-time-max", def: "10s", v: dur(&c.Replication.ReplicaLagTimeMax), check: positive(&c.Replication.ReplicaLagTimeMax),
			doc: "a copy not caught up for this long leaves the in-sync set (Kafka's `replica.lag.time.max.ms`)"},
		{path: "replication.failover", flag: "failover", def: "true", v: boolean(&c.Replication.Failover),
			doc: "forward a failed box's partitions from a copy here (its origin's identity and offsets, from its replicated cursor) and hand them back when it returns; the site's boxes must share their routes"},
		{path: "replication.failover-wait-max", flag: "failover-wait-max", def: "30s", v: dur(&c.Replication.FailoverWaitMax), check: positive(&c.Replication.FailoverWaitMax),
			doc: "after start or a pause, how long forwarding waits for this box's copies of the peers' cursor logs before it acts on what it knows"},
		{path: "replication.restore-timeout", flag: "restore-timeout", def: "15s", v: dur(&c.Replication.RestoreTimeout), check: positive(&c.Replication.RestoreTimeout),
			doc: "at start, how long to wait for the site's other boxes before taking back from their copies what they hold of this box's partitions (a lost unsynced tail, a wiped data dir); appends wait for it"},
		{path: "upstreams", v: fileOnly(&c.Upstreams), check: c.checkUpstreams,
			doc: "named upstreams: `{kind: kafka|mqtt, brokers, url, tls, sasl, …}` (sync/forward `Upstream`)"},
		{path: "routes", v: fileOnly(&c.Routes), check: c.checkRoutes,
			doc: "forwarding routes: `{name, upstream, topics, target, priority, …}` (sync/forward `Route`)"},
	}
}

// validate is the one validation pass: every key's check, then the rules
// that span keys. It returns the first problem.
func (c *serveConfig) validate() error {
	for _, k := range c.table {
		if k.check == nil {
			continue
		}
		if err := k.check(); err != nil {
			return k.errorf("%v", err)
		}
	}
	for _, p := range [][2]string{{"kafka.tls.cert-file", "kafka.tls.key-file"}, {"mqtt.tls.cert-file", "mqtt.tls.key-file"}, {"http.tls.cert-file", "http.tls.key-file"}} {
		a, b := c.key(p[0]), c.key(p[1])
		switch {
		case a.v.String() != "" && b.v.String() == "":
			return a.errorf("needs %s too", b.path)
		case a.v.String() == "" && b.v.String() != "":
			return b.errorf("needs %s too", a.path)
		}
	}
	if c.Kafka.TLS.ClientCAFile != "" && c.Kafka.TLS.CertFile == "" {
		return c.key("kafka.tls.client-ca-file").errorf("needs kafka.tls.cert-file and kafka.tls.key-file")
	}
	if c.MQTT.TLS.Addr != "" && c.MQTT.TLS.CertFile == "" {
		return c.key("mqtt.tls.addr").errorf("needs mqtt.tls.cert-file and mqtt.tls.key-file")
	}
	if c.MQTT.WebsocketTLS && c.MQTT.TLS.CertFile == "" {
		return c.key("mqtt.websocket-tls").errorf("needs mqtt.tls.cert-file and mqtt.tls.key-file")
	}
	if r := c.MQTT.TLS.RequireClientCert; r != nil && *r && c.MQTT.TLS.ClientCAFile == "" {
		return c.key("mqtt.tls.require-client-cert").errorf("needs mqtt.tls.client-ca-file")
	}
	if (c.Replication.PeerUser == "") != (c.Replication.PeerPasswordFile == "") {
		return c.key("replication.peer-user").errorf("needs replication.peer-password-file (and the reverse)")
	}
	if c.UpstreamKafka != "" {
		if _, dup := c.Upstreams[forward.DefaultUpstream]; dup {
			return c.key("upstream-kafka").errorf("upstreams has an entry named %q too", forward.DefaultUpstream)
		}
	}
	if len(c.Forward) > 0 && c.UpstreamKafka == "" && len(c.Upstreams) == 0 {
		return c.key("forward").errorf("needs upstream-kafka (or an upstreams entry)")
	}
	return nil
}

// key returns the table entry at path; the path must exist.
func (c *serveConfig) key(path string) *key {
	for _, k := range c.table {
		if k.path == path {
			return k
		}
	}
	panic("config: no key " + path)
}

func (c *serveConfig) checkMQTTUsers() error {
	seen := map[string]bool{}
	for i, u := range c.MQTT.Users {
		switch {
		case u.Name == "":
			return fmt.Errorf("[%d]: empty name", i)
		case seen[u.Name]:
			return fmt.Errorf("[%d]: user %q listed twice", i, u.Name)
		case !strings.HasPrefix(u.PasswordHash, "$2"):
			return fmt.Errorf("[%d]: user %q: password-hash is not a bcrypt hash", i, u.Name)
		}
		seen[u.Name] = true
	}
	return nil
}

// checkUsersFile checks the file when it is there (serve refuses to
// start without it: usersFileExists).
func (c *serveConfig) checkUsersFile() error {
	_, _, err := c.accounts()
	return err
}

// usersFileExists: a users-file that is not there is refused at start
// (a typo would otherwise leave the box without its accounts).
func (c *serveConfig) usersFileExists() error {
	if c.UsersFile == "" {
		return nil
	}
	if _, err := os.Stat(c.UsersFile); err != nil {
		return fmt.Errorf("config: users-file: %v (create it with `runnel user add --users-file %s NAME`)", err, c.UsersFile)
	}
	return nil
}

// accounts reads users-file and merges kafka.users (in clear) into one
// store; f is the file's content (empty without one).
func (c *serveConfig) accounts() (*users.File, *users.Store, error) {
	f := &users.File{}
	if c.UsersFile != "" {
		var err error
		if f, err = users.ReadFile(c.UsersFile); err != nil {
			return nil, nil, err
		}
	}
	clear := map[string]string{}
	for _, u := range c.Kafka.Users {
		name, pass, _ := strings.Cut(u, ":")
		clear[name] = pass
	}
	st, err := users.NewStore(f.Users, clear)
	if err != nil {
		return nil, nil, err
	}
	return f, st, nil
}

func (c *serveConfig) checkQuotas() error {
	seen := map[string]bool{}
	for i, q := range c.Access.Quotas {
		switch {
		case q.User == "":
			return fmt.Errorf("[%d]: no user (use \"*\" for everyone)", i)
		case seen[q.User]:
			return fmt.Errorf("[%d]: user %q listed twice", i, q.User)
		case q.ProducerByteRate <= 0:
			return fmt.Errorf("[%d]: producer-byte-rate must be > 0", i)
		}
		seen[q.User] = true
	}
	return nil
}

// producerByteRate is access.quotas as kafka.Options.ProducerByteRate
// (nil without quotas).
func (c *serveConfig) producerByteRate() func(string) int64 {
	if len(c.Access.Quotas) == 0 {
		return nil
	}
	rates := map[string]int64{}
	for _, q := range c.Access.Quotas {
		rates[q.User] = q.ProducerByteRate
	}
	return func(user string) int64 {
		if r, ok := rates[user]; ok {
			return r
		}
		return rates["*"]
	}
}

func (c *serveConfig) checkAccessRules() error {
	_, err := c.accessPolicy()
	return err
}

// accessPolicy is access.* as a policy; nil without rules and superusers.
func (c *serveConfig) accessPolicy() (*access.Policy, error) {
	if len(c.Access.Rules) == 0 && len(c.Access.Superusers) == 0 {
		return nil, nil
	}
	var rules []access.Rule
	for i, s := range c.Access.Rules {
		rs, err := s.Rules()
		if err != nil {
			return nil, fmt.Errorf("[%d]: %v", i, err)
		}
		rules = append(rules, rs...)
	}
	if pc, err := c.sitePeerCredential(); err == nil && (pc.derived || c.Replication.PeerUser != "") {
		u := pc.user
		// Exactly what mirroring needs: follower fetches, and reading
		// (metadata, configs, offsets, leader epochs, records) every topic.
		rules = append(rules,
			access.Rule{User: u, Kind: access.Cluster, Pattern: access.ClusterName, Ops: access.ClusterAction},
			access.Rule{User: u, Kind: access.Topic, Pattern: "*", Ops: access.Read})
	}
	return access.NewPolicy(rules, c.Access.Superusers)
}

func (c *serveConfig) checkUpstreams() error {
	for _, name := range slices.Sorted(maps.Keys(c.Upstreams)) {
		if err := c.Upstreams[name].WithDefaults("").Validate(); err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
	}
	return nil
}

// checkFiles loads the files the configuration names that the start would
// otherwise meet only later: an upstream's TLS files are read at its first
// connection, where a missing or bad one would only keep its routes
// backing off. runServe calls it after loading (exit 2 like any
// configuration error); the config tests load example files whose paths
// do not exist here.
func (c *serveConfig) checkFiles() error {
	for _, name := range slices.Sorted(maps.Keys(c.Upstreams)) {
		if _, err := c.Upstreams[name].TLS.Config(""); err != nil {
			return c.key("upstreams").errorf("%s: %v", name, err)
		}
	}
	return nil
}

func (c *serveConfig) checkRoutes() error {
	for i, r := range c.Routes {
		up := r.Upstream
		if up == "" {
			up = forward.DefaultUpstream
		}
		_, ok := c.Upstreams[up]
		if !ok && !(up == forward.DefaultUpstream && c.UpstreamKafka != "") {
			return fmt.Errorf("[%d] (%s): unknown upstream %q", i, r.Name, up)
		}
		if len(r.Topics) == 0 {
			return fmt.Errorf("[%d] (%s): no topics", i, r.Name)
		}
	}
	// The routes key's own routes (forward GLOB's are checked by its key).
	o := c.forwardOptions(nil, nil, "")
	o.Routes = c.Routes
	return o.ValidateRoutes()
}

func parseKafkaUser(s string) (string, error) {
	if i := strings.IndexByte(s, ':'); i <= 0 {
		return "", errors.New("want NAME:PASSWORD")
	}
	return s, nil
}
