package kafka

import (
	"github.com/runnel/runnel/ingest/produce"
)

// newProducePath is the Kafka listener's use of the produce path shared
// with MQTT and HTTP (ingest/produce): topic validation, auto-create and
// the partition-count cache, the acks=all append.
func (s *Server) newProducePath() *produce.Path {
	return produce.New(produce.Options{
		Log:      s.log,
		Logger:   s.logger,
		Protocol: "kafka",
		OnCreate: func(name string) { s.configs.clear(name) },
	})
}

// ensureTopic returns codeNone when topic exists (creating it with the
// log's defaults when create is set), or the error code to answer.
func (s *Server) ensureTopic(name string, create bool) int16 {
	if _, err := s.produce.Topic(name, create); err != nil {
		return errorCode(err)
	}
	return codeNone
}
