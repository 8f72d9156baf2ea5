package kafka

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/meta"
)

// configDef maps one Kafka topic config name to a log.TopicConfig field.
// set == nil means read-only: only the fixed value get returns is accepted.
type configDef struct {
	name string
	typ  kmsg.ConfigType
	doc  string
	get  func(c *log.TopicConfig) string
	set  func(c *log.TopicConfig, v string) error
}

// topicConfigs are the topic configs runnel reports, in this order. The
// settable ones are what the log has; the rest are the fixed Kafka
// defaults clients ask about.
var topicConfigs = []configDef{
	{"retention.ms", kmsg.ConfigTypeLong, "Delete segments older than this (ms); -1 keeps forever.",
		func(c *log.TopicConfig) string { return durMs(c.RetentionAge) },
		func(c *log.TopicConfig, v string) error {
			ms, err := parseInt(v, -1, 1<<53)
			if err != nil {
				return err
			}
			switch {
			case ms < 0:
				c.RetentionAge = -1
			case ms == 0:
				c.RetentionAge = time.Millisecond // 0 is "default" in log.TopicConfig
			default:
				c.RetentionAge = time.Duration(ms) * time.Millisecond
			}
			return nil
		}},
	{"retention.bytes", kmsg.ConfigTypeLong, "Per-partition size limit in bytes; -1 is unlimited.",
		func(c *log.TopicConfig) string {
			if c.RetentionBytes < 0 {
				return "-1"
			}
			return strconv.FormatInt(c.RetentionBytes, 10)
		},
		func(c *log.TopicConfig, v string) error {
			n, err := parseInt(v, -1, 1<<62)
			if err != nil {
				return err
			}
			switch {
			case n < 0:
				c.RetentionBytes = -1
			case n == 0:
				c.RetentionBytes = 1
			default:
				c.RetentionBytes = n
			}
			return nil
		}},
	{"segment.bytes", kmsg.ConfigTypeInt, "Segment file size at which a new segment is rolled.",
		func(c *log.TopicConfig) string { return strconv.FormatInt(c.SegmentBytes, 10) },
		func(c *log.TopicConfig, v string) error {
			n, err := parseInt(v, 14, 1<<31-1)
			c.SegmentBytes = n
			return err
		}},
	{"segment.ms", kmsg.ConfigTypeLong, "Segment age (ms) at which a new segment is rolled.",
		func(c *log.TopicConfig) string { return durMs(c.SegmentAge) },
		func(c *log.TopicConfig, v string) error {
			ms, err := parseInt(v, 1, 1<<53)
			c.SegmentAge = time.Duration(ms) * time.Millisecond
			return err
		}},
	{"runnel.fsync", kmsg.ConfigTypeString, "When appends reach stable storage before the ack: always, interval or never.",
		func(c *log.TopicConfig) string { return string(c.Fsync) },
		func(c *log.TopicConfig, v string) error {
			switch p := log.FsyncPolicy(v); p {
			case log.FsyncAlways, log.FsyncInterval, log.FsyncNever:
				c.Fsync = p
				return nil
			}
			return fmt.Errorf("must be always, interval or never")
		}},
	{"runnel.fsync.interval.ms", kmsg.ConfigTypeLong, "Loss window (ms) of runnel.fsync=interval.",
		func(c *log.TopicConfig) string { return durMs(c.FsyncInterval) },
		func(c *log.TopicConfig, v string) error {
			ms, err := parseInt(v, 1, 1<<40)
			c.FsyncInterval = time.Duration(ms) * time.Millisecond
			return err
		}},
	{"runnel.on.full", kmsg.ConfigTypeString, "What appends do when the disk is short: reject or drop-oldest.",
		func(c *log.TopicConfig) string { return string(c.OnFull) },
		func(c *log.TopicConfig, v string) error {
			switch p := log.OnFull(v); p {
			case log.OnFullReject, log.OnFullDropOldest:
				c.OnFull = p
				return nil
			}
			return fmt.Errorf("must be reject or drop-oldest")
		}},
	{"max.message.bytes", kmsg.ConfigTypeInt, "Largest record batch accepted.",
		func(c *log.TopicConfig) string { return strconv.FormatInt(int64(c.MaxBatchBytes), 10) },
		func(c *log.TopicConfig, v string) error {
			n, err := parseInt(v, 1, 1<<31-1)
			c.MaxBatchBytes = int32(n)
			return err
		}},
	{"replication.factor", kmsg.ConfigTypeInt, "Copies of each partition on the site, this node's included (site replication).",
		func(c *log.TopicConfig) string { return strconv.Itoa(int(c.ReplicationFactor)) },
		func(c *log.TopicConfig, v string) error {
			n, err := parseInt(v, 1, 64)
			c.ReplicationFactor = int32(n)
			return err
		}},
	{"min.insync.replicas", kmsg.ConfigTypeInt, "In-sync copies an acks=all produce needs; fewer answer NOT_ENOUGH_REPLICAS.",
		func(c *log.TopicConfig) string { return strconv.Itoa(int(c.MinInsyncReplicas)) },
		func(c *log.TopicConfig, v string) error {
			n, err := parseInt(v, 1, 64)
			c.MinInsyncReplicas = int32(n)
			return err
		}},
	{"cleanup.policy", kmsg.ConfigTypeList, "delete (retention by age and size), compact (the latest record per key), or compact,delete (both).",
		func(c *log.TopicConfig) string {
			if c.Cleanup == "" {
				return string(log.CleanupDelete)
			}
			return string(c.Cleanup)
		},
		func(c *log.TopicConfig, v string) error {
			p, err := parseCleanupPolicy(v)
			c.Cleanup = p
			return err
		}},
	{"delete.retention.ms", kmsg.ConfigTypeLong, "How long a tombstone (null value) of a compacted topic stays readable (ms).",
		func(c *log.TopicConfig) string { return durMs(c.DeleteRetention) },
		func(c *log.TopicConfig, v string) error {
			ms, err := parseInt(v, 0, 1<<53)
			c.DeleteRetention = time.Duration(max(ms, 1)) * time.Millisecond // 0 is "default" in log.TopicConfig
			return err
		}},
	{"min.compaction.lag.ms", kmsg.ConfigTypeLong, "Records younger than this (ms) are never compacted away.",
		func(c *log.TopicConfig) string { return durMs(c.MinCompactionLag) },
		func(c *log.TopicConfig, v string) error {
			ms, err := parseInt(v, 0, 1<<53)
			c.MinCompactionLag = time.Duration(ms) * time.Millisecond
			return err
		}},
	{"min.cleanable.dirty.ratio", kmsg.ConfigTypeDouble, "Share of a partition not yet cleaned at which the cleaner runs a pass.",
		func(c *log.TopicConfig) string { return strconv.FormatFloat(c.MinCleanableRatio, 'g', -1, 64) },
		func(c *log.TopicConfig, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				return fmt.Errorf("%q is not a number in [0, 1]", v)
			}
			c.MinCleanableRatio = max(f, 1e-9) // 0 is "default" in log.TopicConfig
			return nil
		}},
	{"message.timestamp.type", kmsg.ConfigTypeString, "CreateTime (the producer's timestamps) or LogAppendTime (each batch stamped with the time it was appended; the producer's stay in the records).",
		func(c *log.TopicConfig) string {
			if c.TimestampType == "" {
				return string(log.CreateTime)
			}
			return string(c.TimestampType)
		},
		func(c *log.TopicConfig, v string) error {
			switch t := log.TimestampType(v); t {
			case log.CreateTime, log.LogAppendTime:
				c.TimestampType = t
				return nil
			}
			return fmt.Errorf("must be CreateTime or LogAppendTime")
		}},
	fixedConfig("compression.type", kmsg.ConfigTypeString, "producer"),
	fixedConfig("unclean.leader.election.enable", kmsg.ConfigTypeBoolean, "false"),
	fixedConfig("message.downconversion.enable", kmsg.ConfigTypeBoolean, "false"),
}

// parseCleanupPolicy takes Kafka's list forms: "compact", "delete",
// "compact,delete" in either order, with spaces.
func parseCleanupPolicy(v string) (log.CleanupPolicy, error) {
	compact, del := false, false
	for _, p := range strings.Split(v, ",") {
		switch strings.TrimSpace(p) {
		case "compact":
			compact = true
		case "delete":
			del = true
		default:
			return "", fmt.Errorf("%q: want delete, compact or compact,delete", v)
		}
	}
	switch {
	case compact && del:
		return log.CleanupCompactDelete, nil
	case compact:
		return log.CleanupCompact, nil
	}
	return log.CleanupDelete, nil
}

func fixedConfig(name string, typ kmsg.ConfigType, value string) configDef {
	return configDef{name: name, typ: typ, doc: "Fixed in runnel.",
		get: func(*log.TopicConfig) string { return value }}
}

var topicConfigByName = func() map[string]*configDef {
	m := map[string]*configDef{}
	for i := range topicConfigs {
		m[topicConfigs[i].name] = &topicConfigs[i]
	}
	return m
}()

func durMs(d time.Duration) string {
	if d < 0 {
		return "-1"
	}
	return strconv.FormatInt(d.Milliseconds(), 10)
}

func parseInt(v string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", v)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is out of range [%d, %d]", n, lo, hi)
	}
	return n, nil
}

// buildConfig turns explicit settings into a log.TopicConfig (unset fields
// zero = log default). A read-only name is accepted only with its value.
func buildConfig(settings map[string]string) (log.TopicConfig, error) {
	var cfg log.TopicConfig
	for name, v := range settings {
		def, ok := topicConfigByName[name]
		if !ok {
			return cfg, fmt.Errorf("unknown topic config %q", name)
		}
		if def.set == nil {
			if v != def.get(nil) {
				return cfg, fmt.Errorf("%s is fixed at %q in runnel", name, def.get(nil))
			}
			continue
		}
		if err := def.set(&cfg, v); err != nil {
			return cfg, fmt.Errorf("%s: %v", name, err)
		}
	}
	return cfg, nil
}

// frameOverhead is what a Produce request needs around one record batch
// (request header, client id, topic name, partition): a batch of
// max.message.bytes must fit in MaxFrameBytes with it.
const frameOverhead = 1024

// checkFrameFit refuses a max.message.bytes that no request this server
// accepts could carry (a producer would be disconnected at every try).
func (s *Server) checkFrameFit(cfg log.TopicConfig) error {
	if limit := int64(s.opts.MaxFrameBytes) - frameOverhead; int64(cfg.MaxBatchBytes) > limit {
		return fmt.Errorf("max.message.bytes %d does not fit in a request: the server accepts requests up to %d bytes (kafka.max-frame-bytes), so at most %d", cfg.MaxBatchBytes, s.opts.MaxFrameBytes, limit)
	}
	return nil
}

// overrides records, per topic, which configs were set explicitly through
// the Kafka API (meta KV bucket "kafka-topic-configs": topic → JSON object),
// so DescribeConfigs reports their source and IncrementalAlterConfigs can
// revert one to the default. Topics created elsewhere have none.
type overrides struct {
	store *meta.Store
	// mu serializes read-modify-write of one topic's entry.
	mu sync.Mutex
}

const overridesBucket = "kafka-topic-configs"

func newOverrides(store *meta.Store) *overrides { return &overrides{store: store} }

func (o *overrides) get(topic string) map[string]string {
	out := map[string]string{}
	if o.store == nil {
		return out
	}
	o.store.KVForEach(overridesBucket, func(k string, v []byte) error {
		if k == topic {
			json.Unmarshal(v, &out)
		}
		return nil
	})
	return out
}

func (o *overrides) put(topic string, m map[string]string) error {
	if o.store == nil {
		return nil
	}
	var v []byte
	if len(m) > 0 {
		v, _ = json.Marshal(m)
	}
	return o.store.KVApply(overridesBucket, []meta.KVWrite{{Key: topic, Value: v}})
}

func (o *overrides) clear(topic string) {
	if o.store == nil {
		return
	}
	o.store.KVApply(overridesBucket, []meta.KVWrite{{Key: topic}})
}

// describeConfigs answers DescribeConfigs for topics and this broker.
func (c *conn) describeConfigs(req *kmsg.DescribeConfigsRequest) kmsg.Response {
	s := c.s
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, r := range req.Resources {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		want := func(name string) bool {
			if r.ConfigNames == nil {
				return true
			}
			for _, n := range r.ConfigNames {
				if n == name {
					return true
				}
			}
			return false
		}
		add := func(name, value string, typ kmsg.ConfigType, doc string, readOnly bool, src kmsg.ConfigSource) {
			if !want(name) {
				return
			}
			e := kmsg.NewDescribeConfigsResponseResourceConfig()
			e.Name, e.Value, e.ReadOnly = name, strp(value), readOnly
			e.IsDefault = src == kmsg.ConfigSourceDefaultConfig
			e.Source = src
			if req.Version == 0 && src == kmsg.ConfigSourceStaticBrokerConfig {
				e.IsDefault = false
			}
			e.ConfigType = typ
			if req.IncludeDocumentation {
				e.Documentation = strp(doc)
			}
			if req.IncludeSynonyms {
				syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
				syn.Name, syn.Value, syn.Source = name, strp(value), src
				e.ConfigSynonyms = append(e.ConfigSynonyms, syn)
			}
			rr.Configs = append(rr.Configs, e)
		}
		switch r.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			info, err := s.log.Topic(r.ResourceName)
			if err != nil {
				rr.ErrorCode = errorCode(err)
				rr.ErrorMessage = strp(err.Error())
				s.stats.errors.Add(1)
				break
			}
			ov := s.configs.get(r.ResourceName)
			for i := range topicConfigs {
				def := &topicConfigs[i]
				src := kmsg.ConfigSourceDefaultConfig
				if _, ok := ov[def.name]; ok {
					src = kmsg.ConfigSourceDynamicTopicConfig
				}
				add(def.name, def.get(&info.Config), def.typ, def.doc, def.set == nil, src)
			}
		case kmsg.ConfigResourceTypeBroker:
			if r.ResourceName != "" && r.ResourceName != strconv.Itoa(int(s.opts.NodeID)) {
				rr.ErrorCode = codeInvalidRequest
				rr.ErrorMessage = strp("unknown broker " + r.ResourceName)
				s.stats.errors.Add(1)
				break
			}
			static := kmsg.ConfigSourceStaticBrokerConfig
			add("broker.id", strconv.Itoa(int(s.opts.NodeID)), kmsg.ConfigTypeInt, "This node's broker id.", true, static)
			add("auto.create.topics.enable", strconv.FormatBool(s.opts.AutoCreateTopics), kmsg.ConfigTypeBoolean, "Create unknown topics on Metadata and Produce.", true, static)
			add("socket.request.max.bytes", strconv.Itoa(int(s.opts.MaxFrameBytes)), kmsg.ConfigTypeInt, "Largest request accepted.", true, static)
			add("sasl.enabled.mechanisms", saslMechanisms(s), kmsg.ConfigTypeString, "SASL mechanisms.", true, static)
		default:
			rr.ErrorCode = codeInvalidRequest
			rr.ErrorMessage = strp("runnel describes topic and broker configs only")
			s.stats.errors.Add(1)
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

func saslMechanisms(s *Server) string {
	if s.saslOn() {
		return "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
	}
	return ""
}

// alterTopic applies explicit settings to a topic (replacing all of them
// when replace, else merging; a nil value deletes a name) and records them.
func (s *Server) alterTopic(topic string, changes map[string]*string, replace, validateOnly bool) (int16, string) {
	if _, err := s.log.Topic(topic); err != nil {
		return errorCode(err), err.Error()
	}
	s.configs.mu.Lock()
	defer s.configs.mu.Unlock()
	next := map[string]string{}
	if !replace {
		next = s.configs.get(topic)
	}
	for name, v := range changes {
		if _, ok := topicConfigByName[name]; !ok {
			return codeInvalidConfig, fmt.Sprintf("unknown topic config %q", name)
		}
		if v == nil {
			delete(next, name)
		} else {
			next[name] = *v
		}
	}
	cfg, err := buildConfig(next)
	if err == nil {
		err = s.checkFrameFit(cfg)
	}
	if err != nil {
		return codeInvalidConfig, err.Error()
	}
	if validateOnly {
		return codeNone, ""
	}
	if err := s.log.SetTopicConfig(topic, cfg); err != nil {
		return errorCode(err), err.Error()
	}
	if err := s.configs.put(topic, next); err != nil {
		s.logger.Warn("kafka: cannot record topic config overrides", "topic", topic, "err", err)
	}
	return codeNone, ""
}

// alterConfigs answers AlterConfigs: the given set replaces the topic's
// explicit configs (others return to the defaults), as in Kafka.
func (c *conn) alterConfigs(req *kmsg.AlterConfigsRequest) kmsg.Response {
	s := c.s
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, r := range req.Resources {
		rr := kmsg.NewAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		if r.ResourceType != kmsg.ConfigResourceTypeTopic {
			rr.ErrorCode, rr.ErrorMessage = codeInvalidRequest, strp("runnel alters topic configs only")
		} else {
			changes := map[string]*string{}
			for _, e := range r.Configs {
				changes[e.Name] = e.Value
			}
			code, msg := s.alterTopic(r.ResourceName, changes, true, req.ValidateOnly)
			rr.ErrorCode = code
			if msg != "" {
				rr.ErrorMessage = strp(msg)
			}
		}
		if rr.ErrorCode != codeNone {
			s.stats.errors.Add(1)
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

// incrementalAlterConfigs answers IncrementalAlterConfigs: SET and DELETE
// (back to the default); APPEND and SUBTRACT have no list-valued config to
// act on and answer INVALID_CONFIG.
func (c *conn) incrementalAlterConfigs(req *kmsg.IncrementalAlterConfigsRequest) kmsg.Response {
	s := c.s
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, r := range req.Resources {
		rr := kmsg.NewIncrementalAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		if r.ResourceType != kmsg.ConfigResourceTypeTopic {
			rr.ErrorCode, rr.ErrorMessage = codeInvalidRequest, strp("runnel alters topic configs only")
		} else {
			changes := map[string]*string{}
			var bad string
			for _, e := range r.Configs {
				switch e.Op {
				case kmsg.IncrementalAlterConfigOpSet:
					if e.Value == nil {
						bad = e.Name + ": SET needs a value"
					}
					changes[e.Name] = e.Value
				case kmsg.IncrementalAlterConfigOpDelete:
					changes[e.Name] = nil
				default:
					bad = fmt.Sprintf("%s: operation %d is not supported (no list-valued configs)", e.Name, e.Op)
				}
			}
			if bad != "" {
				rr.ErrorCode, rr.ErrorMessage = codeInvalidConfig, strp(bad)
			} else {
				code, msg := s.alterTopic(r.ResourceName, changes, false, req.ValidateOnly)
				rr.ErrorCode = code
				if msg != "" {
					rr.ErrorMessage = strp(msg)
				}
			}
		}
		if rr.ErrorCode != codeNone {
			s.stats.errors.Add(1)
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

// responseConfigs lists a topic's configs for CreateTopics v5+.
func (s *Server) responseConfigs(cfg log.TopicConfig, explicit map[string]string) []kmsg.CreateTopicsResponseTopicConfig {
	names := make([]string, 0, len(topicConfigs))
	for i := range topicConfigs {
		names = append(names, topicConfigs[i].name)
	}
	sort.Strings(names)
	out := make([]kmsg.CreateTopicsResponseTopicConfig, 0, len(names))
	for _, n := range names {
		def := topicConfigByName[n]
		e := kmsg.NewCreateTopicsResponseTopicConfig()
		e.Name, e.Value, e.ReadOnly = n, strp(def.get(&cfg)), def.set == nil
		e.Source = int8(kmsg.ConfigSourceDefaultConfig)
		if _, ok := explicit[n]; ok {
			e.Source = int8(kmsg.ConfigSourceDynamicTopicConfig)
		}
		out = append(out, e)
	}
	return out
}
