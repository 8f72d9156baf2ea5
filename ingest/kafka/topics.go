package kafka

import (
	"errors"
	"sync"

	"github.com/runnel/runnel/log"
)

// topicCache remembers topics known to exist so Produce does not ask the
// log for every request. Entries are dropped when an append reports the
// topic unknown, or when the topic is deleted here.
type topicCache struct {
	m sync.Map // name → struct{}
}

func (tc *topicCache) known(name string) bool {
	_, ok := tc.m.Load(name)
	return ok
}
func (tc *topicCache) add(name string)    { tc.m.Store(name, struct{}{}) }
func (tc *topicCache) forget(name string) { tc.m.Delete(name) }

// ensureTopic returns codeNone when topic exists (creating it with the
// log's defaults when create is set), or the error code to answer.
func (s *Server) ensureTopic(name string, create bool) int16 {
	if s.topics.known(name) {
		return codeNone
	}
	_, err := s.log.Topic(name)
	if err == nil {
		s.topics.add(name)
		return codeNone
	}
	if !errors.Is(err, log.ErrUnknownTopic) || !create {
		return errorCode(err)
	}
	if code := validTopicName(name); code != codeNone {
		return code
	}
	err = s.log.CreateTopic(name, log.TopicConfig{})
	if err != nil && !errors.Is(err, log.ErrTopicExists) {
		s.logger.Warn("kafka: auto-create topic failed", "topic", name, "err", err)
		return errorCode(err)
	}
	if err == nil {
		s.configs.clear(name)
		s.logger.Info("kafka: topic auto-created", "topic", name)
	}
	s.topics.add(name)
	return codeNone
}

// validTopicName applies Kafka's rules: 1..249 characters of [a-zA-Z0-9._-],
// not "." or "..".
func validTopicName(name string) int16 {
	if name == "" || name == "." || name == ".." || len(name) > 249 {
		return codeInvalidTopic
	}
	for i := 0; i < len(name); i++ {
		ch := name[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == '-') {
			return codeInvalidTopic
		}
	}
	return codeNone
}
