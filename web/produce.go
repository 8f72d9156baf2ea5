package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/runnel/runnel/ingest/produce"
	"github.com/runnel/runnel/log/batch"
)

// Content types of Confluent REST Proxy v2.
const (
	v2Type    = "application/vnd.kafka.v2+json"        // answers without embedded records
	v2JSON    = "application/vnd.kafka.json.v2+json"   // key and value are JSON documents
	v2Binary  = "application/vnd.kafka.binary.v2+json" // key and value are base64
	plainJSON = "application/json"                     // JSON documents, a JSON string stored as its text
)

// HeaderIngestTime is the record header that carries the time (ms since
// the epoch, decimal) a record was ingested, on HTTP records that bring a
// timestamp of their own (the record timestamp is the ingest time
// otherwise). Never change: consumers depend on it.
const HeaderIngestTime = "runnel-ingest-time"

// embedded is how keys and values are written in a request or answer.
type embedded int

const (
	embedText   embedded = iota // application/json: a JSON string is its text, other JSON as written
	embedJSON                   // vnd.kafka.json: a JSON document
	embedBinary                 // vnd.kafka.binary: base64
)

type produceRequest struct {
	Records []produceRecord `json:"records"`
}

type produceRecord struct {
	Key       json.RawMessage `json:"key"`
	Value     json.RawMessage `json:"value"`
	Partition *int32          `json:"partition"`
	Headers   []produceHeader `json:"headers"`
	Timestamp *int64          `json:"timestamp"`
}

// produceHeader is a header as the Strimzi bridge writes it: the value in
// base64.
type produceHeader struct {
	Key   string  `json:"key"`
	Value *string `json:"value"`
}

type produceOffset struct {
	Partition *int32  `json:"partition"`
	Offset    *int64  `json:"offset"`
	ErrorCode *int    `json:"error_code"`
	Error     *string `json:"error"`
}

type produceResponse struct {
	KeySchemaID   *int            `json:"key_schema_id"`
	ValueSchemaID *int            `json:"value_schema_id"`
	Offsets       []produceOffset `json:"offsets"`
	// On a failure (status >= 400) also the v2 error body.
	ErrorCode *int    `json:"error_code,omitempty"`
	Message   *string `json:"message,omitempty"`
}

// requestFormat returns the embedded format of the request's Content-Type,
// and the content type of the answer.
func requestFormat(r *http.Request) (embedded, string, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil {
		return 0, "", errf(http.StatusUnsupportedMediaType, codeUnsupportedType, "Content-Type must be "+v2JSON+", "+v2Binary+" or "+plainJSON)
	}
	switch mt {
	case v2JSON:
		return embedJSON, v2Type, nil
	case v2Binary:
		return embedBinary, v2Type, nil
	case plainJSON:
		return embedText, plainJSON, nil
	}
	return 0, "", errf(http.StatusUnsupportedMediaType, codeUnsupportedType, "unsupported Content-Type "+strconv.Quote(mt)+": use "+v2JSON+", "+v2Binary+" or "+plainJSON)
}

// readBody reads the request body, refusing one over the cap before
// reading it when Content-Length says so, and as soon as it passes the
// cap otherwise.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	max := s.opts.MaxBodyBytes
	if r.ContentLength > max {
		return nil, errf(http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("body of %d bytes over the limit of %d (http.max-body-bytes)", r.ContentLength, max))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errf(http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("body over the limit of %d bytes (http.max-body-bytes)", max))
		}
		return nil, errf(http.StatusBadRequest, codeBadRequest, "reading the body: "+err.Error())
	}
	return body, nil
}

// decodeJSON decodes body into v strictly (unknown fields refused, one
// document only).
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			return errf(http.StatusBadRequest, codeBadRequest, "malformed JSON: "+err.Error())
		case errors.As(err, &te):
			return errf(http.StatusUnprocessableEntity, codeBadRecord, fmt.Sprintf("field %s: %s where %s is expected", te.Field, te.Value, te.Type))
		}
		return errf(http.StatusUnprocessableEntity, codeBadRecord, err.Error())
	}
	if dec.More() {
		return errf(http.StatusBadRequest, codeBadRequest, "malformed JSON: more than one document in the body")
	}
	return nil
}

// embeddedBytes decodes a key or value of format f; a missing or null one
// is nil.
func embeddedBytes(raw json.RawMessage, f embedded) ([]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	switch f {
	case embedBinary:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, errors.New("must be a base64 string or null")
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("bad base64: %v", err)
		}
		return b, nil
	case embedText:
		if raw[0] == '"' {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, err
			}
			return []byte(s), nil
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// record is one validated record of a produce request.
type record struct {
	partition int32
	ts        int64
	key       []byte
	value     []byte
	headers   []batch.RecordHeader
}

func (rc *record) size() int { return len(rc.key) + len(rc.value) + 32 + headerBytes(rc.headers) }

func headerBytes(hs []batch.RecordHeader) int {
	n := 0
	for _, h := range hs {
		n += len(h.Key) + len(h.Value) + 8
	}
	return n
}

// produceTopic serves POST /topics/{t}: records go to their partition
// field's partition, else murmur2 of the key, else round-robin.
func (s *Server) produceTopic(w http.ResponseWriter, r *http.Request) {
	s.produceRecords(w, r, -1)
}

// producePartition serves POST /topics/{t}/partitions/{p}.
func (s *Server) producePartition(w http.ResponseWriter, r *http.Request) {
	p, err := strconv.ParseInt(r.PathValue("p"), 10, 32)
	if err != nil || p < 0 {
		writeError(w, errf(http.StatusNotFound, codePartitionUnknown, "partition not found"))
		return
	}
	s.produceRecords(w, r, int32(p))
}

func (s *Server) produceRecords(w http.ResponseWriter, r *http.Request, pathPartition int32) {
	acks, err := acksParam(r)
	if err != nil {
		s.stats.produceRefused.Add(1)
		writeError(w, err)
		return
	}
	f, answerType, err := requestFormat(r)
	if err != nil {
		s.stats.produceRefused.Add(1)
		writeError(w, err)
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		s.stats.produceRefused.Add(1)
		writeError(w, err)
		return
	}
	var req produceRequest
	if err := decodeJSON(body, &req); err != nil {
		s.stats.produceRefused.Add(1)
		writeError(w, err)
		return
	}
	topic := r.PathValue("t")
	recs, limit, err := s.validateRecords(topic, req.Records, f, pathPartition)
	if err != nil {
		s.stats.produceRefused.Add(1)
		writeError(w, err)
		return
	}
	resp, status := s.appendRecords(topic, recs, limit, acks)
	w.Header().Set("Content-Type", answerType)
	w.WriteHeader(status)
	writeJSONBody(w, resp)
}

// acksParam reads ?acks=: 1 (the default: durable here per the topic's
// fsync policy) or all / -1 (also on the site's in-sync copies).
func acksParam(r *http.Request) (produce.Acks, error) {
	switch r.URL.Query().Get("acks") {
	case "", "1":
		return produce.AcksLeader, nil
	case "all", "-1":
		return produce.AcksAll, nil
	}
	return 0, errf(http.StatusBadRequest, codeBadRequest, "acks must be 1, all or -1")
}

// validateRecords checks and decodes every record before anything is
// stored: a request is refused whole or appended whole.
func (s *Server) validateRecords(topic string, in []produceRecord, f embedded, pathPartition int32) ([]record, int, error) {
	if len(in) == 0 {
		return nil, 0, errf(http.StatusUnprocessableEntity, codeBadRecord, "no records")
	}
	n, err := s.produce.Topic(topic, s.opts.AutoCreateTopics)
	if err != nil {
		return nil, 0, err
	}
	info, err := s.opts.Log.Topic(topic)
	if err != nil {
		return nil, 0, err
	}
	if info.Config.Origin != "" {
		return nil, 0, errf(http.StatusForbidden, codeForbidden, "topic "+topic+" is a read-only copy of node "+info.Config.Origin+"'s")
	}
	if pathPartition >= n {
		return nil, 0, errf(http.StatusNotFound, codePartitionUnknown, "partition not found")
	}
	limit := int(info.Config.MaxBatchBytes)
	now := time.Now().UnixMilli()
	out := make([]record, len(in))
	for i := range in {
		pr := &in[i]
		rc := &out[i]
		bad := func(field string, err error) error {
			return errf(http.StatusUnprocessableEntity, codeBadRecord, fmt.Sprintf("records[%d].%s: %v", i, field, err))
		}
		if rc.key, err = embeddedBytes(pr.Key, f); err != nil {
			return nil, 0, bad("key", err)
		}
		if rc.value, err = embeddedBytes(pr.Value, f); err != nil {
			return nil, 0, bad("value", err)
		}
		for j, h := range pr.Headers {
			if h.Key == "" {
				return nil, 0, bad(fmt.Sprintf("headers[%d].key", j), errors.New("empty"))
			}
			var v []byte
			if h.Value != nil {
				if v, err = base64.StdEncoding.DecodeString(*h.Value); err != nil {
					return nil, 0, bad(fmt.Sprintf("headers[%d].value", j), fmt.Errorf("bad base64: %v", err))
				}
			}
			rc.headers = append(rc.headers, batch.RecordHeader{Key: h.Key, Value: v})
		}
		rc.ts = now
		if pr.Timestamp != nil {
			if *pr.Timestamp < 0 {
				return nil, 0, bad("timestamp", errors.New("negative"))
			}
			rc.ts = *pr.Timestamp
			rc.headers = append(rc.headers, batch.RecordHeader{Key: HeaderIngestTime, Value: strconv.AppendInt(nil, now, 10)})
		}
		switch {
		case pathPartition >= 0:
			if pr.Partition != nil && *pr.Partition != pathPartition {
				return nil, 0, errf(http.StatusUnprocessableEntity, codeBadOffset, fmt.Sprintf("records[%d].partition %d differs from the partition %d of the path", i, *pr.Partition, pathPartition))
			}
			rc.partition = pathPartition
		case pr.Partition != nil:
			if *pr.Partition < 0 || *pr.Partition >= n {
				return nil, 0, errf(http.StatusUnprocessableEntity, codeBadOffset, fmt.Sprintf("records[%d].partition %d: topic %s has partitions 0-%d", i, *pr.Partition, topic, n-1))
			}
			rc.partition = *pr.Partition
		default:
			rc.partition = s.produce.Partition(rc.key, n)
		}
		if sz := rc.size() + batch.HeaderSize; sz > limit {
			return nil, 0, errf(http.StatusRequestEntityTooLarge, codeRecordTooLarge, fmt.Sprintf("records[%d]: %d bytes over the topic's max.message.bytes %d", i, sz, limit))
		}
	}
	return out, limit, nil
}

// appendRecords appends each partition's records as one append (one or
// more batches, each under limit: all stored or none) and answers every
// record's partition and offset, or its error.
func (s *Server) appendRecords(topic string, recs []record, limit int, acks produce.Acks) (produceResponse, int) {
	type part struct {
		idx  []int // indexes into recs, in order
		data []byte
		base int64
		err  error
	}
	parts := map[int32]*part{}
	var order []int32
	for i := range recs {
		p := parts[recs[i].partition]
		if p == nil {
			p = &part{}
			parts[recs[i].partition] = p
			order = append(order, recs[i].partition)
		}
		p.idx = append(p.idx, i)
	}
	var bld batch.Builder
	for _, pn := range order {
		p := parts[pn]
		size := 0
		for _, i := range p.idx {
			rc := &recs[i]
			if bld.Len() > 0 && size+rc.size()+batch.HeaderSize > limit {
				p.data = append(p.data, bld.Bytes()...)
				bld.Reset()
				size = 0
			}
			bld.Add(rc.ts, rc.key, rc.value, rc.headers)
			size += rc.size()
		}
		p.data = append(p.data, bld.Bytes()...)
		bld.Reset()
	}
	var wg sync.WaitGroup
	for _, pn := range order {
		p := parts[pn]
		wg.Add(1)
		s.produce.AppendAsync(topic, pn, p.data, acks, func(base int64, err error) {
			p.base, p.err = base, err
			wg.Done()
		})
	}
	wg.Wait()

	resp := produceResponse{Offsets: make([]produceOffset, len(recs))}
	status := http.StatusOK
	var firstErr error
	for _, pn := range order {
		p := parts[pn]
		pn := pn
		for k, i := range p.idx {
			o := &resp.Offsets[i]
			o.Partition = &pn
			if p.err != nil {
				code, msg := recordErrFatal, p.err.Error()
				if retriable(p.err) {
					code = recordErrRetriable
				}
				o.ErrorCode, o.Error = &code, &msg
				continue
			}
			off := p.base + int64(k)
			o.Offset = &off
		}
		if p.err != nil {
			s.stats.produceFailed.Add(uint64(len(p.idx)))
			if firstErr == nil {
				firstErr = p.err
			}
		} else {
			s.stats.producedRecords.Add(uint64(len(p.idx)))
			s.stats.producedBytes.Add(uint64(len(p.data)))
		}
	}
	if firstErr != nil {
		ae := logError(firstErr)
		status = ae.status
		resp.ErrorCode, resp.Message = &ae.code, &ae.msg
	}
	return resp, status
}
