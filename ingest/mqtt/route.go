package mqtt

import (
	"strconv"
	"strings"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/runnel/runnel/log/batch"
)

// Record header names (never change: consumers and the Publish fan-out
// depend on them).
const (
	HeaderTopic           = "mqtt.topic"
	HeaderQoS             = "mqtt.qos"
	HeaderRetain          = "mqtt.retain"
	HeaderClient          = "mqtt.client"
	HeaderContentType     = "mqtt.content-type"
	HeaderCorrelationData = "mqtt.correlation-data"
	HeaderResponseTopic   = "mqtt.response-topic"
	HeaderWill            = "mqtt.will"
	// HeaderRetainCleared ("true") marks the record of an empty retained
	// publish: it clears the MQTT topic's retained message, and its value
	// is null (a tombstone for the key, as Kafka's compaction reads it).
	HeaderRetainCleared = "mqtt.retain-cleared"
	// MQTT 5 user properties become headers under their own names, except
	// names in the "mqtt." space (reservedPrefix).
)

// reservedPrefix starts the names of the headers runnel writes for a
// publish. A user property in that space is dropped (counted in
// Stats.ReservedPropertiesDropped): a device could otherwise add a second
// mqtt.client or mqtt.topic that a consumer reading the last (Java's
// lastHeader) or first header takes for runnel's.
const reservedPrefix = "mqtt."

// router resolves an MQTT topic to a log topic and key. Immutable after
// construction.
type router struct {
	routes []Route // empty = default route
}

// target is where one publish goes.
type target struct {
	topic string
	key   []byte
	// partKey picks the partition (the key, or the client id for KeyNone).
	partKey []byte
	// all: acknowledged once every in-sync copy on the site holds it.
	all bool
}

// resolve returns the target of a publish to mqttTopic by client, or ok
// false when no route matches.
func (r *router) resolve(mqttTopic, client string) (t target, ok bool) {
	if len(r.routes) == 0 {
		k := []byte(mqttTopic)
		return target{topic: DefaultTopic, key: k, partKey: k}, true
	}
	for i := range r.routes {
		rt := &r.routes[i]
		if !topicMatch(rt.Filter, mqttTopic) {
			continue
		}
		t.topic = rt.Topic
		t.all = rt.Acks == AcksAll
		switch rt.Key {
		case KeyClient:
			t.key = []byte(client)
			t.partKey = t.key
		case KeyNone:
			t.partKey = []byte(client)
		default:
			t.key = []byte(mqttTopic)
			t.partKey = t.key
		}
		return t, true
	}
	return t, false
}

// topicMatch reports whether the topic name matches the MQTT filter. Topics
// starting with '$' do not match filters starting with a wildcard.
func topicMatch(filter, topic string) bool {
	if len(topic) > 0 && topic[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore || !tmore {
			// "a/#" matches "a" (the parent level).
			return fmore == tmore || (fmore && frest == "#")
		}
		filter, topic = frest, trest
	}
}

// filterCovers reports whether every topic matched by filter f is also
// matched by pattern p (for ACL checks of subscriptions; for a plain topic
// it is topicMatch).
func filterCovers(p, f string) bool {
	if len(f) > 0 && f[0] != '$' && len(p) > 0 && p[0] == '$' {
		return false
	}
	if len(f) > 0 && f[0] == '$' && len(p) > 0 && (p[0] == '+' || p[0] == '#') {
		return false
	}
	for {
		pl, prest, pmore := strings.Cut(p, "/")
		if pl == "#" {
			return true
		}
		fl, frest, fmore := strings.Cut(f, "/")
		switch {
		case fl == "#":
			return false // f reaches deeper than p allows
		case pl == "+":
		case fl == "+":
			return false
		case pl != fl:
			return false
		}
		if !pmore || !fmore {
			return pmore == fmore || (pmore && prest == "#")
		}
		p, f = prest, frest
	}
}

// clearsRetained reports whether pk is an empty retained publish, which
// clears its topic's retained message (MQTT 3.3.1.3).
func clearsRetained(pk *packets.Packet) bool {
	return pk.FixedHeader.Retain && len(pk.Payload) == 0
}

// recordValue is the record value of a publish: its payload (empty, not
// null, when it has none), except that an empty retained publish is a null
// value (see HeaderRetainCleared).
func recordValue(pk *packets.Packet) []byte {
	switch {
	case clearsRetained(pk):
		return nil
	case pk.Payload == nil:
		return []byte{}
	}
	return pk.Payload
}

// recordHeaders builds the record headers of a publish.
func (b *Broker) recordHeaders(pk *packets.Packet, client string, will bool) []batch.RecordHeader {
	h := make([]batch.RecordHeader, 0, 4+len(pk.Properties.User))
	h = append(h,
		batch.RecordHeader{Key: HeaderTopic, Value: []byte(pk.TopicName)},
		batch.RecordHeader{Key: HeaderQoS, Value: []byte{'0' + pk.FixedHeader.Qos}},
		batch.RecordHeader{Key: HeaderRetain, Value: []byte(strconv.FormatBool(pk.FixedHeader.Retain))},
		batch.RecordHeader{Key: HeaderClient, Value: []byte(client)},
	)
	if will {
		h = append(h, batch.RecordHeader{Key: HeaderWill, Value: []byte("true")})
	}
	if clearsRetained(pk) {
		h = append(h, batch.RecordHeader{Key: HeaderRetainCleared, Value: []byte("true")})
	}
	if pk.Properties.ContentType != "" {
		h = append(h, batch.RecordHeader{Key: HeaderContentType, Value: []byte(pk.Properties.ContentType)})
	}
	if pk.Properties.CorrelationData != nil {
		h = append(h, batch.RecordHeader{Key: HeaderCorrelationData, Value: pk.Properties.CorrelationData})
	}
	if pk.Properties.ResponseTopic != "" {
		h = append(h, batch.RecordHeader{Key: HeaderResponseTopic, Value: []byte(pk.Properties.ResponseTopic)})
	}
	for _, u := range pk.Properties.User {
		if strings.HasPrefix(u.Key, reservedPrefix) {
			b.stats.reservedDropped.Add(1)
			continue
		}
		h = append(h, batch.RecordHeader{Key: u.Key, Value: []byte(u.Val)})
	}
	return h
}

// headersSize approximates the encoded size of headers.
func headersSize(h []batch.RecordHeader) int {
	n := 0
	for _, x := range h {
		n += len(x.Key) + len(x.Value) + 4
	}
	return n
}
