package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	rlog "github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// Limits of a stateless read.
const (
	defaultReadBytes   = 1 << 20
	maxReadBytes       = 16 << 20
	defaultReadTimeout = time.Second
	maxReadTimeout     = 30 * time.Second
)

// recordJSON is one record in an answer (a read, the live tail, the
// message browser).
type recordJSON struct {
	Topic     string       `json:"topic"`
	Partition int32        `json:"partition"`
	Offset    int64        `json:"offset"`
	Timestamp int64        `json:"timestamp"`
	Key       any          `json:"key"`
	Value     any          `json:"value"`
	Headers   []headerJSON `json:"headers"`
	// KeyEncoding, ValueEncoding: "base64" when the text form could not
	// show the bytes as UTF-8 text (the default form only).
	KeyEncoding   string `json:"key_encoding,omitempty"`
	ValueEncoding string `json:"value_encoding,omitempty"`
}

type headerJSON struct {
	Key      string  `json:"key"`
	Value    *string `json:"value"`
	Encoding string  `json:"encoding,omitempty"`
}

// encodeRecord writes rec in format f: embedBinary (key, value and header
// values base64, as v2's binary format), embedJSON (key and value as JSON
// documents; bytes that are not JSON become a JSON string of their text),
// embedText (text when UTF-8, else base64 with an encoding field).
func encodeRecord(topic string, partition int32, rec *batch.Record, f embedded) recordJSON {
	out := recordJSON{Topic: topic, Partition: partition, Offset: rec.Offset, Timestamp: rec.Timestamp, Headers: []headerJSON{}}
	var enc string
	out.Key, enc = embeddedValue(rec.Key, f)
	out.KeyEncoding = enc
	out.Value, enc = embeddedValue(rec.Value, f)
	out.ValueEncoding = enc
	for _, h := range rec.Headers {
		hj := headerJSON{Key: h.Key}
		if h.Value != nil {
			var v string
			if f == embedText && utf8.Valid(h.Value) {
				v = string(h.Value)
			} else {
				v = base64.StdEncoding.EncodeToString(h.Value)
				if f == embedText {
					hj.Encoding = "base64"
				}
			}
			hj.Value = &v
		}
		out.Headers = append(out.Headers, hj)
	}
	return out
}

func embeddedValue(b []byte, f embedded) (any, string) {
	if b == nil {
		return nil, ""
	}
	switch f {
	case embedBinary:
		return base64.StdEncoding.EncodeToString(b), ""
	case embedJSON:
		if json.Valid(b) {
			return json.RawMessage(b), ""
		}
		if utf8.Valid(b) {
			return string(b), ""
		}
		return base64.StdEncoding.EncodeToString(b), "base64"
	}
	if utf8.Valid(b) {
		return string(b), ""
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}

// acceptFormat picks the answer format from Accept: v2's binary or JSON
// embedded format when asked for, the text form otherwise.
func acceptFormat(r *http.Request) (embedded, string, error) {
	accept := r.Header.Get("Accept")
	if accept == "" {
		return embedText, plainJSON, nil
	}
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case v2Binary:
			return embedBinary, v2Binary, nil
		case v2JSON:
			return embedJSON, v2JSON, nil
		case plainJSON, "application/*", "*/*", v2Type:
			return embedText, plainJSON, nil
		}
	}
	return 0, "", errf(http.StatusNotAcceptable, codeNotAcceptable, "Accept must allow "+v2Binary+", "+v2JSON+" or "+plainJSON)
}

// intParam parses query parameter name; def when absent.
func intParam(r *http.Request, name string, def int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, errf(http.StatusBadRequest, codeBadRequest, name+" must be an integer, not "+strconv.Quote(v))
	}
	return n, nil
}

// readRecords serves GET /topics/{t}/partitions/{p}/records?offset=&
// max_bytes=&timeout= (Redpanda HTTP proxy's stateless read): the
// records from offset on, at most max_bytes of stored batches (at least
// one record when there is one), waiting up to timeout (ms) for one when
// offset is the end.
func (s *Server) readRecords(w http.ResponseWriter, r *http.Request) {
	f, ctype, err := acceptFormat(r)
	if err != nil {
		writeError(w, err)
		return
	}
	info, err := s.topicParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	p, err := partitionParam(r, info)
	if err != nil {
		writeError(w, err)
		return
	}
	q := r.URL.Query()
	if q.Get("offset") == "" {
		writeError(w, errf(http.StatusBadRequest, codeBadRequest, "offset is required"))
		return
	}
	offset, err := intParam(r, "offset", 0)
	if err != nil {
		writeError(w, err)
		return
	}
	maxBytes, err := intParam(r, "max_bytes", defaultReadBytes)
	if err != nil {
		writeError(w, err)
		return
	}
	if maxBytes <= 0 || maxBytes > maxReadBytes {
		writeError(w, errf(http.StatusBadRequest, codeBadRequest, "max_bytes must be 1-"+strconv.Itoa(maxReadBytes)))
		return
	}
	timeoutMs, err := intParam(r, "timeout", defaultReadTimeout.Milliseconds())
	if err != nil {
		writeError(w, err)
		return
	}
	if timeoutMs < 0 || timeoutMs > maxReadTimeout.Milliseconds() {
		writeError(w, errf(http.StatusBadRequest, codeBadRequest, "timeout must be 0-"+strconv.FormatInt(maxReadTimeout.Milliseconds(), 10)+" ms"))
		return
	}
	start, hwm, err := s.opts.Log.Offsets(info.Name, p)
	if err != nil {
		writeError(w, err)
		return
	}
	if offset < start || offset > hwm {
		writeError(w, errf(http.StatusUnprocessableEntity, codeBadOffset, "offset "+strconv.FormatInt(offset, 10)+" out of range: the partition holds "+strconv.FormatInt(start, 10)+" to "+strconv.FormatInt(hwm, 10)))
		return
	}
	if offset == hwm && timeoutMs > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), time.Duration(timeoutMs)*time.Millisecond)
		_, err := rlog.NewWaiter().WaitHWM(ctx, s.opts.Log, info.Name, p, offset)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			writeError(w, err)
			return
		}
	}
	recs, err := s.readFrom(info.Name, p, offset, int(maxBytes))
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]recordJSON, 0, len(recs))
	for i := range recs {
		out = append(out, encodeRecord(info.Name, p, &recs[i], f))
	}
	writeJSONType(w, ctype, out)
}

// readFrom returns the records at or after offset in one read of at most
// maxBytes of stored batches.
func (s *Server) readFrom(topic string, p int32, offset int64, maxBytes int) ([]batch.Record, error) {
	data, err := s.opts.Log.Read(topic, p, offset, maxBytes)
	if err != nil {
		return nil, err
	}
	return decodeBatches(data, offset)
}

// decodeBatches decodes the records at or after offset of whole batches.
func decodeBatches(data []byte, offset int64) ([]batch.Record, error) {
	var out []batch.Record
	for len(data) >= batch.HeaderSize {
		h, err := batch.ParseHeader(data)
		if err != nil || h.Size() > len(data) {
			break
		}
		recs, err := batch.Records(data[:h.Size()])
		if err != nil {
			return out, err
		}
		for _, rc := range recs {
			if rc.Offset >= offset {
				out = append(out, rc)
			}
		}
		data = data[h.Size():]
	}
	return out, nil
}

// lastOffset is the last offset of the last whole batch in data.
func lastOffset(data []byte) (int64, bool) {
	last, ok := int64(0), false
	for len(data) >= batch.HeaderSize {
		h, err := batch.ParseHeader(data)
		if err != nil || h.Size() > len(data) {
			break
		}
		last, ok = h.LastOffset(), true
		data = data[h.Size():]
	}
	return last, ok
}
