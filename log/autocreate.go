package log

import (
	"errors"
	"fmt"
)

// MaxAutoCreatedTopics is how many topics the log may hold for a missing
// one to be created on first use (EnsureTopic).
const MaxAutoCreatedTopics = 5000

// EnsureTopic returns the info of topic name, creating it first with the
// log's default config when it does not exist: the auto-create of every
// ingest path (Kafka produce and metadata, MQTT; HTTP produce when it
// comes). created reports
// whether this call created it; a topic another caller created meanwhile
// is simply returned. An invalid name is ErrInvalidTopic.
//
// Once the log holds MaxAutoCreatedTopics topics, a missing one is not
// created: the error wraps ErrUnknownTopic (a Kafka client's metadata
// request for 30,000 made-up names created them all, 476 MB of files).
// CreateTopic still creates topics beyond it.
func EnsureTopic(l Log, name string) (info TopicInfo, created bool, err error) {
	info, err = l.Topic(name)
	if !errors.Is(err, ErrUnknownTopic) {
		return info, false, err
	}
	if n := len(l.Topics()); n >= MaxAutoCreatedTopics {
		return TopicInfo{}, false, fmt.Errorf("%w: %q is not created: %d topics exist, and auto-creation stops at %d (create it explicitly)", ErrUnknownTopic, name, n, MaxAutoCreatedTopics)
	}
	err = l.CreateTopic(name, TopicConfig{})
	created = err == nil
	if err != nil && !errors.Is(err, ErrTopicExists) {
		return TopicInfo{}, false, err
	}
	info, err = l.Topic(name)
	return info, created, err
}
