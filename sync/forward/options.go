package forward

import (
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/runnel/runnel/log"
)

// DefaultUpstream is the name of the upstream the --upstream-kafka flag
// creates and the one a Route uses when it names none.
const DefaultUpstream = "default"

// Options configures a Forwarder. Zero fields take the documented defaults.
type Options struct {
	// Log is the local commit log to forward from. Required.
	Log log.Log `yaml:"-"`
	// Logger receives structured logs; nil = slog.Default().
	Logger *slog.Logger `yaml:"-"`
	// NodeID names this node in the runnel-node header and {node}. Required.
	NodeID string `yaml:"node-id"`
	// Site fills {site} in target templates.
	Site string `yaml:"site"`
	// Upstreams by name.
	Upstreams map[string]Upstream `yaml:"upstreams"`
	// Routes say which local topics go to which upstream.
	Routes []Route `yaml:"routes"`
	// Sinks maps an upstream Kind ("kafka", "mqtt") to the constructor of
	// its Sink. cmd/runnel fills it with kafka.NewSink and mqtt.NewSink
	// (forward imports neither, so those packages can import forward).
	Sinks map[string]NewSinkFunc `yaml:"-"`
	// CursorFlushInterval is how often acknowledged progress is written to
	// meta; default 1s. Progress is also written whenever half of a route's
	// in-flight window is acknowledged but unsaved, so a crash re-sends at
	// most MaxInFlight records per route.
	CursorFlushInterval time.Duration `yaml:"cursor-flush-interval"`
	// Duties, when set, says which origin partitions this node forwards
	// (its own among them, and other nodes' partitions held here as
	// mirrors): routes then forward exactly the duties whose origin topic
	// they match, instead of every local topic they match. Nil: every
	// local topic a route matches is forwarded as this node's own.
	Duties Duties `yaml:"-"`
	// CursorTopic, when set, is the internal topic (normally CursorTopic,
	// "__runnel_cursors") every cursor save is also appended to, so peers
	// that mirror this node hold its forwarding progress (see the cursor
	// log notes in cursorlog.go). "" = cursors live in meta only.
	CursorTopic string `yaml:"-"`
	// CursorSnapshotInterval is how often every partition's cursor is
	// written to CursorTopic again, moved or not, so retention never
	// removes the latest one; default 1 minute, at most CursorRetention/2.
	CursorSnapshotInterval time.Duration `yaml:"-"`
	// TopicRefreshInterval is how often the topic list is re-read to pick
	// up new topics and partitions matching a route; default 1s.
	TopicRefreshInterval time.Duration `yaml:"topic-refresh-interval"`
	// BackoffMin and BackoffMax bound the exponential backoff (with jitter)
	// after an upstream error; defaults 250ms and 30s.
	BackoffMin time.Duration `yaml:"backoff-min"`
	BackoffMax time.Duration `yaml:"backoff-max"`
}

// Upstream is one central system to forward to.
type Upstream struct {
	// Kind is "kafka" (default) or "mqtt".
	Kind string `yaml:"kind"`
	// Brokers are Kafka seed brokers (host:port). Kafka only.
	Brokers []string `yaml:"brokers"`
	// URL is the MQTT broker: mqtt://host:1883, tcp://, mqtts:// or ssl://
	// (TLS; default port 8883). MQTT only.
	URL string `yaml:"url"`
	// ClientID is the client id (MQTT) or client.id (Kafka); default
	// "runnel-<node>".
	ClientID string `yaml:"client-id"`
	// TLS settings; TLS is used when Enabled or any file is given.
	TLS TLS `yaml:"tls"`
	// SASL for Kafka.
	SASL SASL `yaml:"sasl"`
	// Username and Password for MQTT.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// BandwidthBytesPerSec caps the record bytes (key, value, headers,
	// before compression) sent to this upstream per second; 0 = no cap.
	// Routes with a higher Priority are served first when it is short.
	BandwidthBytesPerSec int64 `yaml:"bandwidth-bytes-per-sec"`
	// Compression for Kafka: "zstd" (default), "lz4", "snappy", "gzip",
	// "none".
	Compression string `yaml:"compression"`
	// Acks for Kafka: "all" (default) or "leader".
	Acks string `yaml:"acks"`
	// Partitioning for Kafka: "key" (default: murmur2 of the key as Kafka's
	// producer does; records without a key keep their local partition
	// number modulo the upstream count) or "origin" (always the local
	// partition number modulo the upstream partition count).
	Partitioning string `yaml:"partitioning"`
	// DeliveryTimeout fails a record the upstream has not acknowledged in
	// this time, which makes the route back off and retry from its cursor;
	// default 30s.
	DeliveryTimeout time.Duration `yaml:"delivery-timeout"`
	// Linger for Kafka: how long a partition's batch waits for more
	// records; default 10ms (kgo's). Larger batches compress better on slow
	// links; smaller lingers cut live latency.
	Linger time.Duration `yaml:"linger"`
	// QoS for MQTT: only 1 is supported.
	QoS int `yaml:"qos"`
	// KeepAlive for MQTT; default 30s.
	KeepAlive time.Duration `yaml:"keep-alive"`
	// ProbeInterval is how often a route with nothing to send checks that
	// this upstream answers (Kafka: a Metadata request; MQTT: a PINGREQ
	// round trip), so a lost link shows as backing-off within about this
	// time even when idle; default 5s. Each probe waits at most 5s (or
	// DeliveryTimeout, if shorter).
	ProbeInterval time.Duration `yaml:"probe-interval"`
}

// TLS holds TLS client settings (PEM files).
type TLS struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca-file"`
	CertFile           string `yaml:"cert-file"` // with KeyFile: mTLS
	KeyFile            string `yaml:"key-file"`
	ServerName         string `yaml:"server-name"`
	InsecureSkipVerify bool   `yaml:"insecure-skip-verify"`
}

// On reports whether TLS is to be used.
func (t TLS) On() bool { return t.Enabled || t.CAFile != "" || t.CertFile != "" }

// SASL holds Kafka SASL settings.
type SASL struct {
	// Mechanism: "" (none), "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512".
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
}

// DefaultProbeInterval is Upstream.ProbeInterval's default.
const DefaultProbeInterval = 5 * time.Second

// Start positions for a route's partitions that have no cursor yet.
const (
	StartEarliest = "earliest"
	StartLatest   = "latest"
)

// Route forwards local topics to one upstream.
type Route struct {
	// Name identifies the route (cursor name "forward/<name>", status,
	// metrics). Default: the upstream name plus the first topic pattern.
	Name string `yaml:"name"`
	// Upstream names an entry of Options.Upstreams; default "default".
	Upstream string `yaml:"upstream"`
	// Topics are local topic names or path.Match globs ("sensors.*", "*").
	// Globs never match internal topics (names starting with "__").
	Topics []string `yaml:"topics"`
	// Target is the upstream topic template: {topic}, {node}, {site}, and
	// for MQTT also {key} (the record key). Default "{topic}".
	Target string `yaml:"target"`
	// Start is where a partition without a cursor begins: "earliest"
	// (default) or "latest" ("latest" applies to the partitions present
	// when the route first starts; partitions created later start at their
	// beginning so nothing written after the route existed is skipped).
	Start string `yaml:"start"`
	// Priority orders routes sharing a bandwidth-capped upstream: higher
	// first. Default 0.
	Priority int `yaml:"priority"`
	// Paused routes send nothing (their data stays held in the log).
	Paused bool `yaml:"paused"`
	// MaxInFlight bounds the records sent but not yet saved as acknowledged
	// (so also the duplicates after a crash); default 100000. Cursors are
	// saved whenever half of it is acknowledged, so smaller windows mean
	// more meta writes (and a slower drain on slow disks).
	MaxInFlight int `yaml:"max-in-flight"`
	// MaxInFlightBytes bounds the bytes of those records; default 16 MiB.
	MaxInFlightBytes int64 `yaml:"max-in-flight-bytes"`
	// ReadBytes is the size of one read from the log; default 1 MiB.
	ReadBytes int `yaml:"read-bytes"`
}

func (o *Options) withDefaults() Options {
	c := *o
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.CursorFlushInterval <= 0 {
		c.CursorFlushInterval = time.Second
	}
	if c.CursorSnapshotInterval <= 0 {
		c.CursorSnapshotInterval = time.Minute
	}
	if c.TopicRefreshInterval <= 0 {
		c.TopicRefreshInterval = time.Second
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = 250 * time.Millisecond
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 30 * time.Second
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = c.BackoffMin
	}
	ups := make(map[string]Upstream, len(c.Upstreams))
	for n, u := range c.Upstreams {
		ups[n] = u.WithDefaults(c.NodeID)
	}
	c.Upstreams = ups
	c.Routes = append([]Route(nil), c.Routes...)
	for i := range c.Routes {
		c.Routes[i] = c.Routes[i].withDefaults()
	}
	return c
}

// WithDefaults returns u with zero fields filled in (sinks call it too).
func (u Upstream) WithDefaults(node string) Upstream {
	if u.Kind == "" {
		u.Kind = "kafka"
	}
	if u.ClientID == "" {
		u.ClientID = "runnel-" + node
	}
	if u.Compression == "" {
		u.Compression = "zstd"
	}
	if u.Acks == "" {
		u.Acks = "all"
	}
	if u.Partitioning == "" {
		u.Partitioning = "key"
	}
	if u.DeliveryTimeout <= 0 {
		u.DeliveryTimeout = 30 * time.Second
	}
	if u.QoS == 0 {
		u.QoS = 1
	}
	if u.KeepAlive <= 0 {
		u.KeepAlive = 30 * time.Second
	}
	if u.ProbeInterval <= 0 {
		u.ProbeInterval = DefaultProbeInterval
	}
	return u
}

func (r Route) withDefaults() Route {
	if r.Upstream == "" {
		r.Upstream = DefaultUpstream
	}
	if r.Name == "" && len(r.Topics) > 0 {
		r.Name = r.Upstream + ":" + r.Topics[0]
	}
	if r.Target == "" {
		r.Target = "{topic}"
	}
	if r.Start == "" {
		r.Start = StartEarliest
	}
	if r.MaxInFlight <= 0 {
		r.MaxInFlight = 100000
	}
	if r.MaxInFlightBytes <= 0 {
		r.MaxInFlightBytes = 16 << 20
	}
	if r.ReadBytes <= 0 {
		r.ReadBytes = 1 << 20
	}
	return r
}

// Validate reports the first problem in o (after defaults are applied).
func (o *Options) Validate() error {
	if o.Log == nil {
		return fmt.Errorf("%w: Log is required", ErrInvalidOptions)
	}
	if o.NodeID == "" {
		return fmt.Errorf("%w: NodeID is required", ErrInvalidOptions)
	}
	c := o.withDefaults()
	if c.CursorSnapshotInterval > CursorRetention/2 {
		return fmt.Errorf("%w: cursor snapshot interval %v exceeds %v (half the cursor topic's retention)", ErrInvalidOptions, c.CursorSnapshotInterval, CursorRetention/2)
	}
	return o.ValidateRoutes()
}

// ValidateRoutes reports the first problem in o's upstreams and routes
// (after defaults are applied): what a configuration names, checked
// before anything starts.
func (o *Options) ValidateRoutes() error {
	c := o.withDefaults()
	for _, name := range slices.Sorted(maps.Keys(c.Upstreams)) {
		u := c.Upstreams[name]
		if err := u.Validate(); err != nil {
			return fmt.Errorf("upstream %q: %w", name, err)
		}
	}
	names := map[string]bool{}
	for i, r := range c.Routes {
		if len(r.Topics) == 0 {
			return fmt.Errorf("%w: route %d has no topics", ErrInvalidOptions, i)
		}
		if names[r.Name] {
			return fmt.Errorf("%w: duplicate route name %q", ErrInvalidOptions, r.Name)
		}
		names[r.Name] = true
		u, ok := c.Upstreams[r.Upstream]
		if !ok {
			return fmt.Errorf("%w: route %q names unknown upstream %q", ErrInvalidOptions, r.Name, r.Upstream)
		}
		for _, p := range r.Topics {
			if _, err := path.Match(p, ""); err != nil || p == "" {
				return fmt.Errorf("%w: route %q: bad topic pattern %q", ErrInvalidOptions, r.Name, p)
			}
		}
		if r.Start != StartEarliest && r.Start != StartLatest {
			return fmt.Errorf("%w: route %q: start must be earliest or latest, not %q", ErrInvalidOptions, r.Name, r.Start)
		}
		if err := checkTemplate(r.Target, u.Kind == "mqtt"); err != nil {
			return fmt.Errorf("%w: route %q: %v", ErrInvalidOptions, r.Name, err)
		}
		if _, ok := o.Sinks[u.Kind]; !ok && o.Sinks != nil {
			return fmt.Errorf("%w: route %q: no sink registered for upstream kind %q", ErrInvalidOptions, r.Name, u.Kind)
		}
	}
	return nil
}

// Validate checks one upstream (defaults applied).
func (u Upstream) Validate() error {
	switch u.Kind {
	case "kafka":
		if len(u.Brokers) == 0 {
			return fmt.Errorf("%w: kafka upstream needs brokers", ErrInvalidOptions)
		}
		switch strings.ToLower(u.Compression) {
		case "zstd", "lz4", "snappy", "gzip", "none":
		default:
			return fmt.Errorf("%w: unknown compression %q", ErrInvalidOptions, u.Compression)
		}
		switch strings.ToUpper(u.SASL.Mechanism) {
		case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			return fmt.Errorf("%w: unknown SASL mechanism %q", ErrInvalidOptions, u.SASL.Mechanism)
		}
		if u.Acks != "all" && u.Acks != "leader" {
			return fmt.Errorf("%w: acks must be all or leader", ErrInvalidOptions)
		}
		if u.Partitioning != "key" && u.Partitioning != "origin" {
			return fmt.Errorf("%w: partitioning must be key or origin", ErrInvalidOptions)
		}
	case "mqtt":
		if u.URL == "" {
			return fmt.Errorf("%w: mqtt upstream needs a url", ErrInvalidOptions)
		}
		pu, err := url.Parse(u.URL)
		if err != nil {
			return fmt.Errorf("%w: mqtt url %q: %v", ErrInvalidOptions, u.URL, err)
		}
		switch pu.Scheme {
		case "mqtt", "tcp", "mqtts", "ssl", "tls":
		default:
			return fmt.Errorf("%w: mqtt url %q: scheme must be mqtt, tcp, mqtts, ssl or tls", ErrInvalidOptions, u.URL)
		}
		if pu.Hostname() == "" {
			return fmt.Errorf("%w: mqtt url %q: no host", ErrInvalidOptions, u.URL)
		}
		if u.QoS != 1 {
			return fmt.Errorf("%w: mqtt qos must be 1", ErrInvalidOptions)
		}
	default:
		return fmt.Errorf("%w: unknown upstream kind %q", ErrInvalidOptions, u.Kind)
	}
	if (u.TLS.CertFile == "") != (u.TLS.KeyFile == "") {
		return fmt.Errorf("%w: tls cert-file and key-file go together", ErrInvalidOptions)
	}
	if u.BandwidthBytesPerSec < 0 {
		return fmt.Errorf("%w: negative bandwidth", ErrInvalidOptions)
	}
	return nil
}

// FlagOptions maps the common-case flags onto upstreams and routes:
// `--upstream-kafka BROKERS` (comma-separated; upstream "default"),
// `--forward GLOB` (repeatable; one route named "default" holding every
// glob) and `--forward-prefix P` (target "P{topic}"; the prefix may use
// {site} and {node}). It returns nil maps/slices when brokers or globs
// are empty, so YAML-configured upstreams and routes can be merged in.
func FlagOptions(brokers string, globs []string, prefix string) (map[string]Upstream, []Route) {
	var ups map[string]Upstream
	var bs []string
	for _, b := range strings.Split(brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			bs = append(bs, b)
		}
	}
	if len(bs) > 0 {
		ups = map[string]Upstream{DefaultUpstream: {Kind: "kafka", Brokers: bs}}
	}
	if len(globs) == 0 {
		return ups, nil
	}
	return ups, []Route{{Name: DefaultUpstream, Upstream: DefaultUpstream, Topics: globs, Target: prefix + "{topic}"}}
}
