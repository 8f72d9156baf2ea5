package web

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strings"
)

// MQTTMessage is a publish made over HTTP (see Options.MQTTPublish).
type MQTTMessage struct {
	Topic           string
	Payload         []byte
	QoS             byte
	Retain          bool
	ClientID        string
	UserProperties  [][2]string // key, value
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
}

// ErrInvalidMessage is what Options.MQTTPublish wraps when it refuses a
// message before storing anything (answered 400).
var ErrInvalidMessage = errors.New("web: invalid MQTT message")

// ErrNotStored is what Options.MQTTPublish returns (as its error, wrapped
// or not) for a message no MQTT route matched: it was fanned out to
// subscribers and not stored, as a client's PUBLISH would be.
var ErrNotStored = errors.New("web: no MQTT route matched; fanned out, not stored")

// ErrForbidden is what Options.MQTTPublish wraps when the request's
// Principal may not write the log topic the message would be stored in
// (answered 403).
var ErrForbidden = errors.New("web: forbidden")

// publishRequest is EMQX's publish API body.
type publishRequest struct {
	Topic           string             `json:"topic"`
	Payload         *string            `json:"payload"`
	PayloadEncoding string             `json:"payload_encoding"` // plain (default) or base64
	QoS             *int               `json:"qos"`
	Retain          bool               `json:"retain"`
	ClientID        string             `json:"clientid"`
	Properties      *publishProperties `json:"properties"`
}

type publishProperties struct {
	UserProperties         map[string]string `json:"user_properties"`
	ContentType            string            `json:"content_type"`
	ResponseTopic          string            `json:"response_topic"`
	CorrelationData        string            `json:"correlation_data"`
	PayloadFormatIndicator *int              `json:"payload_format_indicator"`
	MessageExpiryInterval  *int64            `json:"message_expiry_interval"`
}

type publishResult struct {
	Topic  string `json:"topic"`
	Stored bool   `json:"stored"` // a route put it in the log (durable when answered)
	// On a failure (bulk answers): the error.
	ErrorCode *int    `json:"error_code,omitempty"`
	Message   *string `json:"message,omitempty"`
}

// mqttPublish serves POST /mqtt/publish and EMQX's POST /api/v5/publish:
// one message, answered once durable (200) or refused.
func (s *Server) mqttPublish(w http.ResponseWriter, r *http.Request) {
	var req publishRequest
	if err := s.decodePublish(w, r, &req); err != nil {
		s.stats.mqttFailed.Add(1)
		writeError(w, err)
		return
	}
	res, err := s.publishOne(r.Context(), &req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSONType(w, plainJSON, res)
}

// mqttPublishBulk serves EMQX's POST /api/v5/publish/bulk: a list of
// messages, each published in order; the answer lists each one's result.
// The status is 200 when every message was published, else the first
// failure's.
func (s *Server) mqttPublishBulk(w http.ResponseWriter, r *http.Request) {
	var reqs []publishRequest
	if err := s.decodePublish(w, r, &reqs); err != nil {
		s.stats.mqttFailed.Add(1)
		writeError(w, err)
		return
	}
	if len(reqs) == 0 {
		writeError(w, errf(http.StatusBadRequest, codeBadRequest, "no messages"))
		return
	}
	// Validate all first: a malformed message refuses the request whole.
	for i := range reqs {
		if _, err := publishMessage(&reqs[i]); err != nil {
			s.stats.mqttFailed.Add(1)
			var ae *apiError
			errors.As(err, &ae)
			writeError(w, errf(ae.status, ae.code, fmt.Sprintf("[%d]: %s", i, ae.msg)))
			return
		}
	}
	out := make([]publishResult, len(reqs))
	status := http.StatusOK
	for i := range reqs {
		res, err := s.publishOne(r.Context(), &reqs[i])
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				ae = logError(err)
			}
			res = publishResult{Topic: reqs[i].Topic, ErrorCode: &ae.code, Message: &ae.msg}
			if status == http.StatusOK {
				status = ae.status
			}
		}
		out[i] = res
	}
	w.Header().Set("Content-Type", plainJSON)
	w.WriteHeader(status)
	writeJSONBody(w, out)
}

func (s *Server) decodePublish(w http.ResponseWriter, r *http.Request, v any) error {
	if s.opts.MQTTPublish == nil {
		return errf(http.StatusNotFound, 404, "MQTT is off on this node")
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != plainJSON {
		return errf(http.StatusUnsupportedMediaType, codeUnsupportedType, "Content-Type must be "+plainJSON)
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	return decodeJSON(body, v)
}

// publishMessage checks and converts one request.
func publishMessage(req *publishRequest) (MQTTMessage, error) {
	m := MQTTMessage{Topic: req.Topic, Retain: req.Retain, ClientID: req.ClientID}
	bad := func(msg string) error { return errf(http.StatusBadRequest, codeBadRequest, msg) }
	if req.Topic == "" {
		return m, bad("topic is required")
	}
	if req.QoS != nil {
		if *req.QoS < 0 || *req.QoS > 2 {
			return m, bad("qos must be 0, 1 or 2")
		}
		m.QoS = byte(*req.QoS)
	}
	if req.Payload != nil {
		switch req.PayloadEncoding {
		case "", "plain":
			m.Payload = []byte(*req.Payload)
		case "base64":
			p, err := base64.StdEncoding.DecodeString(*req.Payload)
			if err != nil {
				return m, bad("payload: bad base64: " + err.Error())
			}
			m.Payload = p
		default:
			return m, bad("payload_encoding must be plain or base64")
		}
	}
	if p := req.Properties; p != nil {
		keys := make([]string, 0, len(p.UserProperties))
		for k := range p.UserProperties {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			m.UserProperties = append(m.UserProperties, [2]string{k, p.UserProperties[k]})
		}
		m.ContentType, m.ResponseTopic = p.ContentType, p.ResponseTopic
		if p.CorrelationData != "" {
			m.CorrelationData = []byte(p.CorrelationData)
		}
	}
	return m, nil
}

func (s *Server) publishOne(ctx context.Context, req *publishRequest) (publishResult, error) {
	m, err := publishMessage(req)
	if err != nil {
		s.stats.mqttFailed.Add(1)
		return publishResult{}, err
	}
	err = s.opts.MQTTPublish(ctx, m)
	switch {
	case errors.Is(err, ErrNotStored):
		s.stats.mqttPublished.Add(1)
		return publishResult{Topic: m.Topic, Stored: false}, nil
	case errors.Is(err, ErrInvalidMessage):
		s.stats.mqttFailed.Add(1)
		return publishResult{}, errf(http.StatusBadRequest, codeBadRequest, "invalid MQTT message: "+reason(err, ErrInvalidMessage))
	case errors.Is(err, ErrForbidden):
		s.stats.mqttFailed.Add(1)
		return publishResult{}, errf(http.StatusForbidden, codeForbidden, "forbidden: "+reason(err, ErrForbidden))
	case err != nil:
		s.stats.mqttFailed.Add(1)
		return publishResult{}, err
	}
	s.stats.mqttPublished.Add(1)
	return publishResult{Topic: m.Topic, Stored: true}, nil
}

// reason is what err, which wraps sentinel, says after the sentinel's own
// text (the client is told the reason without the package prefix).
func reason(err, sentinel error) string {
	return strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
}
