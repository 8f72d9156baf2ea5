package log

import "errors"

// EnsureTopic returns the info of topic name, creating it first with the
// log's default config when it does not exist: the auto-create of every
// ingest path (Kafka produce and metadata, MQTT; HTTP produce when it
// comes). created reports
// whether this call created it; a topic another caller created meanwhile
// is simply returned. An invalid name is ErrInvalidTopic.
func EnsureTopic(l Log, name string) (info TopicInfo, created bool, err error) {
	info, err = l.Topic(name)
	if !errors.Is(err, ErrUnknownTopic) {
		return info, false, err
	}
	err = l.CreateTopic(name, TopicConfig{})
	created = err == nil
	if err != nil && !errors.Is(err, ErrTopicExists) {
		return TopicInfo{}, false, err
	}
	info, err = l.Topic(name)
	return info, created, err
}
