package mqtt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mochi-mqtt/server/v2/packets"
)

// DefaultAPIClientID is the client id of a Publish that names none.
const DefaultAPIClientID = "runnel-api"

// ErrInvalidMessage: a Publish refused before anything was stored (bad
// topic name, QoS, size).
var ErrInvalidMessage = errors.New("mqtt: invalid message")

// Message is a publish made through Broker.Publish instead of a client
// connection (the HTTP publish API).
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retain   bool
	ClientID string // the mqtt.client header and the fan-out's origin; "" = DefaultAPIClientID
	// MQTT 5 properties carried to the record headers and subscribers.
	UserProperties  []packets.UserProperty
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
}

type apiWaiter chan error

func (w apiWaiter) finish(err error) { w <- err }

// Publish handles m as the broker handles a client's PUBLISH: the MQTT
// routes pick its log topic and key, the record (with the same headers, the
// ingest time as its timestamp) is appended through the shared produce
// path, and once it is durable it is fanned out to subscribers and, when
// retained, stored as the topic's retained message (an empty retained
// payload clears it). A publish no route matches is fanned out without
// being stored (stored false). It returns when the record is durable or
// failed, whatever ctx does after the append started (a stored record is
// always fanned out). Errors: ErrInvalidMessage, ErrClosed, the log's.
func (b *Broker) Publish(ctx context.Context, m Message) (stored bool, err error) {
	if err := b.validMessage(&m); err != nil {
		return false, err
	}
	select {
	case <-b.closing:
		return false, ErrClosed
	case <-ctx.Done():
		return false, ctx.Err()
	default:
	}
	if m.ClientID == "" {
		m.ClientID = DefaultAPIClientID
	}
	now := time.Now()
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: m.QoS, Retain: m.Retain},
		TopicName:   m.Topic,
		Payload:     m.Payload,
		Origin:      m.ClientID,
		Created:     now.Unix(),
		Properties: packets.Properties{User: m.UserProperties, ContentType: m.ContentType,
			ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData},
	}
	if m.QoS > 0 {
		pk.PacketID = 1 // required by validation; the inline client never acks
	}
	tgt, routed := b.router.resolve(m.Topic, m.ClientID)
	if routed {
		w := make(apiWaiter, 1)
		b.ingest(tgt, now.UnixMilli(), recordValue(&pk), b.recordHeaders(&pk, m.ClientID, false), w, false, nil, false)
		if err := <-w; err != nil {
			b.stats.failed.Add(1)
			return false, err
		}
		b.stats.ingested.Add(1)
	} else {
		b.stats.unrouted.Add(1)
	}
	b.fanout(pk)
	return routed, nil
}

// validMessage checks what a client's PUBLISH would be refused for.
func (b *Broker) validMessage(m *Message) error {
	switch {
	case m.Topic == "":
		return fmt.Errorf("%w: empty topic", ErrInvalidMessage)
	case strings.ContainsAny(m.Topic, "+#\x00"):
		return fmt.Errorf("%w: topic %q holds a wildcard or NUL", ErrInvalidMessage, m.Topic)
	case strings.HasPrefix(m.Topic, "$"):
		return fmt.Errorf("%w: topic %q: topics starting with $ are the broker's", ErrInvalidMessage, m.Topic)
	case len(m.Topic) > 65535 || !utf8.ValidString(m.Topic):
		return fmt.Errorf("%w: topic is not UTF-8 of at most 65535 bytes", ErrInvalidMessage)
	case m.QoS > 2:
		return fmt.Errorf("%w: qos %d (0, 1 or 2)", ErrInvalidMessage, m.QoS)
	case b.opts.MaxPacketSize > 0 && len(m.Payload)+len(m.Topic) > b.opts.MaxPacketSize:
		return fmt.Errorf("%w: payload of %d bytes over mqtt.max-packet-size %d", ErrInvalidMessage, len(m.Payload), b.opts.MaxPacketSize)
	}
	return nil
}
