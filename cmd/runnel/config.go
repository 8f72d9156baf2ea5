package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// serveConfig is everything `runnel serve` reads. Every flat field is a flag
// (--name), a top-level key of the YAML config file (name: value) and an
// environment variable (RUNNEL_NAME, dashes as underscores). Precedence:
// flag > environment > file > default. Structured settings (MQTT users and
// ACLs, upstreams, routes) live in YAML sections; see sections.
type serveConfig struct {
	ConfigFile string

	DataDir           string
	KafkaAddr         string
	MQTTAddr          string
	HTTPAddr          string
	NodeID            string
	Site              string
	Fsync             string
	FsyncInterval     time.Duration
	DefaultPartitions int32
	AutoCreateTopics  bool
	Retention         time.Duration
	RetentionBytes    int64
	SegmentBytes      int64
	OnFull            string
	MinFreeBytes      int64
	MaxOpenFiles      int
	SharedSegments    bool
	CommitDelay       time.Duration
	LogLevel          string
	LogFormat         string
	ShutdownTimeout   time.Duration

	KafkaAdvertisedAddr string
	KafkaUsers          []string
	KafkaTLSCert        string
	KafkaTLSKey         string
	KafkaMaxFrameBytes  int32

	MQTTRoutes         []string
	MQTTPublish        []string
	MQTTAllowAnonymous bool
	MQTTTLSAddr        string
	MQTTTLSCert        string
	MQTTTLSKey         string
	MQTTTLSClientCA    string
	MQTTWSAddr         string

	UpstreamKafka string
	Forward       []string
	ForwardPrefix string

	sections sections
	// set names every key given explicitly (flag, environment or file).
	set map[string]bool
}

// sections are the structured parts of the YAML file. Raw nodes are decoded
// into each component's own Options type by the wiring in serve.go.
type sections struct {
	MQTT      yaml.Node `yaml:"mqtt"`
	Upstreams yaml.Node `yaml:"upstreams"`
	Routes    yaml.Node `yaml:"routes"`
}

var sectionNames = map[string]bool{"mqtt": true, "upstreams": true, "routes": true}

func newServeFlags(c *serveConfig) *pflag.FlagSet {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SortFlags = false
	// A bad flag gets one line (printed by runServe), not the whole usage;
	// --help prints the usage itself.
	fs.Usage = func() {}
	fs.StringVar(&c.ConfigFile, "config", "", "YAML config file (every flag is also a top-level key)")
	fs.StringVar(&c.DataDir, "data-dir", "./runnel-data", "data directory")
	fs.StringVar(&c.KafkaAddr, "kafka-addr", ":9092", "Kafka wire protocol listener (empty = off)")
	fs.StringVar(&c.MQTTAddr, "mqtt-addr", ":1883", "MQTT listener (empty = off)")
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8080", "HTTP listener: /healthz /readyz /metrics /api (empty = off)")
	fs.StringVar(&c.NodeID, "node-id", "", "node id (default: generated once and kept in the data dir)")
	fs.StringVar(&c.Site, "site", "", "site id, used in upstream topic templates as {site}")
	fs.StringVar(&c.Fsync, "fsync", "always", "default fsync policy: always | interval | never")
	fs.DurationVar(&c.FsyncInterval, "fsync-interval", time.Second, "loss window for --fsync interval")
	fs.Int32Var(&c.DefaultPartitions, "default-partitions", 1, "partitions of auto-created topics")
	fs.BoolVar(&c.AutoCreateTopics, "auto-create-topics", true, "create unknown topics on produce/metadata")
	fs.DurationVar(&c.Retention, "retention", 7*24*time.Hour, "default retention by age (<0 = forever)")
	fs.Int64Var(&c.RetentionBytes, "retention-bytes", -1, "default retention by size per partition (<0 = unlimited)")
	fs.Int64Var(&c.SegmentBytes, "segment-bytes", 64<<20, "default segment roll size")
	fs.StringVar(&c.OnFull, "on-full", "reject", "default disk-full policy: reject | drop-oldest")
	fs.Int64Var(&c.MinFreeBytes, "min-free-bytes", 64<<20, "disk guard: free bytes under which on-full applies (<0 = off)")
	fs.IntVar(&c.MaxOpenFiles, "max-open-files", 256, "bound on open segment files")
	fs.BoolVar(&c.SharedSegments, "shared-segments", true, "store small fsync-always commits once, in node-wide shared segment files (less SD-card wear for many trickling partitions); false: each partition's own files through the journal (see README)")
	fs.DurationVar(&c.CommitDelay, "commit-delay", 10*time.Millisecond, "longest a commit may wait to gather appends of many trickling partitions into fuller pages (never for a writer waiting alone; 0 = never; see README)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug | info | warn | error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text | json")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "time allowed for a clean stop")

	fs.StringVar(&c.KafkaAdvertisedAddr, "kafka-advertised-addr", "", "host:port given to Kafka clients (default: the address they connected to)")
	fs.StringArrayVar(&c.KafkaUsers, "kafka-user", nil, "SASL/PLAIN user as NAME:PASSWORD (repeatable; any = SASL required)")
	fs.StringVar(&c.KafkaTLSCert, "kafka-tls-cert", "", "TLS certificate for the Kafka listener")
	fs.StringVar(&c.KafkaTLSKey, "kafka-tls-key", "", "TLS key for the Kafka listener")
	fs.Int32Var(&c.KafkaMaxFrameBytes, "kafka-max-frame-bytes", 100<<20, "largest Kafka request accepted")

	fs.StringArrayVar(&c.MQTTRoutes, "mqtt-route", nil, "MQTT filter to log topic, FILTER=TOPIC (repeatable; default: all to topic mqtt)")
	fs.StringArrayVar(&c.MQTTPublish, "mqtt-publish", nil, "fan log topic out to MQTT, TOPIC=MQTT_PREFIX (repeatable)")
	fs.BoolVar(&c.MQTTAllowAnonymous, "mqtt-allow-anonymous", true, "allow MQTT clients without credentials (set false in production)")
	fs.StringVar(&c.MQTTTLSAddr, "mqtt-tls-addr", "", "MQTT over TLS listener (needs --mqtt-tls-cert/key)")
	fs.StringVar(&c.MQTTTLSCert, "mqtt-tls-cert", "", "TLS certificate for MQTT")
	fs.StringVar(&c.MQTTTLSKey, "mqtt-tls-key", "", "TLS key for MQTT")
	fs.StringVar(&c.MQTTTLSClientCA, "mqtt-tls-client-ca", "", "CA bundle: require MQTT client certificates signed by it")
	fs.StringVar(&c.MQTTWSAddr, "mqtt-ws-addr", "", "MQTT over websocket listener")

	fs.StringVar(&c.UpstreamKafka, "upstream-kafka", "", "central Kafka brokers (comma-separated): the upstream named default")
	fs.StringArrayVar(&c.Forward, "forward", nil, "forward local topics matching GLOB to upstream default (repeatable)")
	fs.StringVar(&c.ForwardPrefix, "forward-prefix", "", "prefix for upstream topic names of --forward routes")
	return fs
}

// envName is the environment variable for flag name.
func envName(flag string) string {
	return "RUNNEL_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// loadServeConfig parses args, the config file and the environment.
func loadServeConfig(args []string, env func(string) (string, bool), stderr io.Writer) (*serveConfig, *pflag.FlagSet, error) {
	c := &serveConfig{}
	fs := newServeFlags(c)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return nil, fs, err
	}
	if fs.NArg() > 0 {
		return nil, fs, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	onCmdline := map[string]bool{}
	fs.Visit(func(f *pflag.Flag) { onCmdline[f.Name] = true })
	c.set = map[string]bool{}
	for k := range onCmdline {
		c.set[k] = true
	}

	if c.ConfigFile == "" {
		if v, ok := env(envName("config")); ok {
			c.ConfigFile = v
		}
	}
	if c.ConfigFile != "" {
		if err := applyFile(c, fs, onCmdline); err != nil {
			return nil, fs, err
		}
	}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || onCmdline[f.Name] || f.Name == "config" {
			return
		}
		v, ok := env(envName(f.Name))
		if !ok {
			return
		}
		c.set[f.Name] = true
		if sv, isSlice := f.Value.(pflag.SliceValue); isSlice {
			err = sv.Replace(splitList(v))
		} else {
			err = f.Value.Set(v)
		}
		if err != nil {
			err = fmt.Errorf("environment %s=%q: %v", envName(f.Name), v, err)
		}
	})
	if err != nil {
		return nil, fs, err
	}
	return c, fs, c.validate()
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func applyFile(c *serveConfig, fs *pflag.FlagSet, onCmdline map[string]bool) error {
	data, err := os.ReadFile(c.ConfigFile)
	if err != nil {
		return fmt.Errorf("config file: %v", err)
	}
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(data, &top); err != nil {
		return fmt.Errorf("config file %s: %v", c.ConfigFile, err)
	}
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		node := top[k]
		if sectionNames[k] {
			continue
		}
		f := fs.Lookup(k)
		if f == nil || k == "config" {
			return fmt.Errorf("config file %s line %d: unknown key %q", c.ConfigFile, node.Line, k)
		}
		if onCmdline[k] {
			continue
		}
		c.set[k] = true
		if sv, isSlice := f.Value.(pflag.SliceValue); isSlice {
			var list []string
			if node.Kind == yaml.SequenceNode {
				err = node.Decode(&list)
			} else {
				var s string
				err = node.Decode(&s)
				list = []string{s}
			}
			if err == nil {
				err = sv.Replace(list)
			}
		} else {
			var s string
			if err = node.Decode(&s); err == nil {
				err = f.Value.Set(s)
			}
		}
		if err != nil {
			return fmt.Errorf("config file %s line %d: key %q: %v", c.ConfigFile, node.Line, k, err)
		}
	}
	// Sections are decoded strictly by their owners; keep the raw nodes.
	c.sections = sections{MQTT: top["mqtt"], Upstreams: top["upstreams"], Routes: top["routes"]}
	return nil
}

func (c *serveConfig) validate() error {
	switch c.Fsync {
	case "always", "interval", "never":
	default:
		return fmt.Errorf("--fsync %q: want always, interval or never", c.Fsync)
	}
	switch c.OnFull {
	case "reject", "drop-oldest":
	default:
		return fmt.Errorf("--on-full %q: want reject or drop-oldest", c.OnFull)
	}
	if c.DefaultPartitions < 1 {
		return fmt.Errorf("--default-partitions %d: must be at least 1", c.DefaultPartitions)
	}
	if c.DataDir == "" {
		return fmt.Errorf("--data-dir must not be empty")
	}
	for name, a := range map[string]string{"kafka-addr": c.KafkaAddr, "mqtt-addr": c.MQTTAddr, "http-addr": c.HTTPAddr, "mqtt-tls-addr": c.MQTTTLSAddr, "mqtt-ws-addr": c.MQTTWSAddr} {
		if err := checkAddr(a); err != nil {
			return fmt.Errorf("--%s %q: %v", name, a, err)
		}
	}
	if c.KafkaAdvertisedAddr != "" {
		if err := checkAddr(c.KafkaAdvertisedAddr); err != nil {
			return fmt.Errorf("--kafka-advertised-addr %q: %v", c.KafkaAdvertisedAddr, err)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
	}
	if (c.KafkaTLSCert == "") != (c.KafkaTLSKey == "") {
		return fmt.Errorf("--kafka-tls-cert and --kafka-tls-key go together")
	}
	for _, u := range c.KafkaUsers {
		if i := strings.IndexByte(u, ':'); i <= 0 {
			return fmt.Errorf("--kafka-user %q: want NAME:PASSWORD", u)
		}
	}
	if len(c.Forward) > 0 && c.UpstreamKafka == "" && c.sections.Upstreams.Kind == 0 {
		return fmt.Errorf("--forward needs --upstream-kafka (or an upstreams section in the config file)")
	}
	return nil
}

// decodeStrict decodes a config-file section into v, refusing unknown keys.
func decodeStrict(node *yaml.Node, v any) error {
	raw, err := yaml.Marshal(node)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && err != io.EOF {
		return err
	}
	return nil
}
