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
	var err error
	var created bool
	if create {
		_, created, err = log.EnsureTopic(s.log, name)
	} else {
		_, err = s.log.Topic(name)
	}
	if err != nil {
		if create && !errors.Is(err, log.ErrInvalidTopic) {
			s.logger.Warn("kafka: auto-create topic failed", "topic", name, "err", err)
		}
		return errorCode(err)
	}
	if created {
		s.configs.clear(name)
		s.logger.Info("kafka: topic auto-created", "topic", name)
	}
	s.topics.add(name)
	return codeNone
}
