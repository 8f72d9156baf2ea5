package kafka

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
)

// createTopics answers CreateTopics. Partitions and replication factor -1
// take the log's defaults; the replication factor is the topic's
// replication.factor (copies on the site, this node's included).
// ValidateOnly checks everything and creates nothing.
func (c *conn) createTopics(req *kmsg.CreateTopicsRequest) kmsg.Response {
	s := c.s
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	seen := map[string]int{}
	for _, t := range req.Topics {
		seen[t.Topic]++
	}
	for _, t := range req.Topics {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		code, msg, cfg, explicit := s.createTopic(t, seen[t.Topic] > 1, req.ValidateOnly)
		rt.ErrorCode = code
		if msg != "" {
			rt.ErrorMessage = strp(msg)
		}
		if code == codeNone {
			rt.TopicID = topicID(t.Topic)
			rt.NumPartitions = cfg.Partitions
			rt.ReplicationFactor = int16(max(cfg.ReplicationFactor, 1))
			if req.Version >= 5 {
				rt.Configs = s.responseConfigs(cfg, explicit)
			}
		} else {
			s.stats.errors.Add(1)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (s *Server) createTopic(t kmsg.CreateTopicsRequestTopic, dup, validateOnly bool) (int16, string, log.TopicConfig, map[string]string) {
	var cfg log.TopicConfig
	if dup {
		return codeInvalidRequest, "topic appears more than once in the request", cfg, nil
	}
	if !log.ValidTopicName(t.Topic) {
		return codeInvalidTopic, fmt.Sprintf("invalid topic name %q: 1-249 characters of [a-zA-Z0-9._-], not . or ..", t.Topic), cfg, nil
	}
	explicit := map[string]string{}
	for _, e := range t.Configs {
		if e.Value == nil {
			continue
		}
		explicit[e.Name] = *e.Value
	}
	cfg, err := buildConfig(explicit)
	if err == nil {
		err = s.checkFrameFit(cfg)
	}
	if err != nil {
		return codeInvalidConfig, err.Error(), cfg, nil
	}
	switch {
	case len(t.ReplicaAssignment) > 0:
		for i, a := range t.ReplicaAssignment {
			if a.Partition != int32(i) {
				return codeInvalidReplicaAssignment, "partitions must be consecutive from 0", cfg, nil
			}
			for _, r := range a.Replicas {
				if r != s.opts.NodeID {
					return codeInvalidReplicaAssignment, fmt.Sprintf("unknown broker %d", r), cfg, nil
				}
			}
		}
		cfg.Partitions = int32(len(t.ReplicaAssignment))
	case t.NumPartitions == -1:
		// log default
	case t.NumPartitions <= 0:
		return codeInvalidPartitions, fmt.Sprintf("invalid partition count %d", t.NumPartitions), cfg, nil
	default:
		cfg.Partitions = t.NumPartitions
	}
	if t.ReplicationFactor == 0 || t.ReplicationFactor < -1 || t.ReplicationFactor > 64 {
		return codeInvalidReplicationFactor, fmt.Sprintf("invalid replication factor %d", t.ReplicationFactor), cfg, nil
	}
	if t.ReplicationFactor > 0 && len(t.ReplicaAssignment) == 0 {
		if v, ok := explicit["replication.factor"]; ok && v != fmt.Sprint(t.ReplicationFactor) {
			return codeInvalidReplicationFactor, fmt.Sprintf("replication factor %d and replication.factor=%s disagree", t.ReplicationFactor, v), cfg, nil
		}
		cfg.ReplicationFactor = int32(t.ReplicationFactor)
		explicit["replication.factor"] = fmt.Sprint(t.ReplicationFactor)
	}
	if _, err := s.log.Topic(t.Topic); err == nil {
		return codeTopicAlreadyExists, fmt.Sprintf("topic %q already exists", t.Topic), cfg, nil
	}
	if validateOnly {
		if cfg.Partitions == 0 {
			cfg.Partitions = -1 // unknown default; CreateTopics reports -1
		}
		return codeNone, "", cfg, explicit
	}
	if err := s.log.CreateTopic(t.Topic, cfg); err != nil {
		return errorCode(err), err.Error(), cfg, nil
	}
	if err := s.configs.put(t.Topic, explicit); err != nil {
		s.logger.Warn("kafka: cannot record topic config overrides", "topic", t.Topic, "err", err)
	}
	if info, err := s.log.Topic(t.Topic); err == nil {
		s.produce.Known(t.Topic, int32(len(info.Partitions)))
		cfg = info.Config
		cfg.Partitions = int32(len(info.Partitions))
	}
	s.logger.Info("kafka: topic created", "topic", t.Topic, "partitions", cfg.Partitions)
	return codeNone, "", cfg, explicit
}

// deleteTopics answers DeleteTopics (by name; v6 topic IDs are resolved
// through the derived IDs Metadata announces).
func (c *conn) deleteTopics(req *kmsg.DeleteTopicsRequest) kmsg.Response {
	s := c.s
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	if req.Version < 6 {
		for _, n := range req.TopicNames {
			targets = append(targets, target{name: strp(n)})
		}
	} else {
		for _, t := range req.Topics {
			targets = append(targets, target{name: t.Topic, id: t.TopicID})
		}
	}
	for _, t := range targets {
		rt := kmsg.NewDeleteTopicsResponseTopic()
		rt.TopicID = t.id
		name := ""
		if t.name != nil {
			name = *t.name
		} else {
			for _, info := range s.log.Topics() {
				if topicID(info.Name) == t.id {
					name = info.Name
					break
				}
			}
			if name == "" {
				rt.ErrorCode = codeUnknownTopicID
				s.stats.errors.Add(1)
				resp.Topics = append(resp.Topics, rt)
				continue
			}
		}
		rt.Topic = strp(name)
		err := s.log.DeleteTopic(name)
		s.produce.Forget(name)
		if err != nil {
			rt.ErrorCode = errorCode(err)
			rt.ErrorMessage = strp(err.Error())
			s.stats.errors.Add(1)
		} else {
			rt.TopicID = topicID(name)
			s.configs.clear(name)
			s.logger.Info("kafka: topic deleted", "topic", name)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// createPartitions answers CreatePartitions (grow only).
func (c *conn) createPartitions(req *kmsg.CreatePartitionsRequest) kmsg.Response {
	s := c.s
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewCreatePartitionsResponseTopic()
		rt.Topic = t.Topic
		code, msg := s.createPartitions(t, req.ValidateOnly)
		rt.ErrorCode = code
		if msg != "" {
			rt.ErrorMessage = strp(msg)
		}
		if code != codeNone {
			s.stats.errors.Add(1)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (s *Server) createPartitions(t kmsg.CreatePartitionsRequestTopic, validateOnly bool) (int16, string) {
	info, err := s.log.Topic(t.Topic)
	if err != nil {
		return errorCode(err), err.Error()
	}
	cur := int32(len(info.Partitions))
	if t.Count <= cur {
		return codeInvalidPartitions, fmt.Sprintf("topic has %d partitions; the new count %d must be larger", cur, t.Count)
	}
	if t.Assignment != nil {
		if int32(len(t.Assignment)) != t.Count-cur {
			return codeInvalidReplicaAssignment, "one assignment per new partition is required"
		}
		for _, a := range t.Assignment {
			for _, r := range a.Replicas {
				if r != s.opts.NodeID {
					return codeInvalidReplicaAssignment, fmt.Sprintf("unknown broker %d", r)
				}
			}
		}
	}
	if validateOnly {
		return codeNone, ""
	}
	if err := s.log.AddPartitions(t.Topic, t.Count); err != nil {
		if errors.Is(err, log.ErrInvalidPartitions) {
			return codeInvalidPartitions, err.Error()
		}
		return errorCode(err), err.Error()
	}
	s.logger.Info("kafka: partitions added", "topic", t.Topic, "partitions", t.Count)
	return codeNone, ""
}
