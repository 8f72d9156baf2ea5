package web

import (
	"errors"
	"net/http"

	rlog "github.com/runnel/runnel/log"
)

// Error codes of the JSON error body, Confluent REST Proxy v2's
// convention: the HTTP status times 100 plus a subcode, or the bare status.
const (
	codeBadRequest       = 400   // malformed JSON, bad query parameter
	codeUnauthorized     = 401   // credentials missing or wrong
	codeForbidden        = 403   // the role may not do this
	codeTopicNotFound    = 40401 // unknown topic (auto-create off, or a read)
	codePartitionUnknown = 40402 // unknown partition
	codeRouteNotFound    = 40410 // unknown forwarding route (runnel's own)
	codeNotAcceptable    = 406   // Accept names a format runnel does not serve
	codeTooLarge         = 413   // body over http.max-body-bytes
	codeUnsupportedType  = 415   // Content-Type not served
	codeRecordTooLarge   = 42201 // a record (or a partition's records) over the topic's batch limit
	codeBadOffset        = 42202 // invalid offset or partition
	codeBadRecord        = 42205 // invalid record: bad base64, unknown field, wrong type
	codeBadTopicName     = 42210 // a topic name Kafka would refuse (runnel's own subcode)
	codeInternal         = 50001 // the log failed (read-only partition, closed)
	codeUnavailable      = 50301 // retriable: disk full, not enough in-sync copies, shutting down
	codeTimeout          = 50401 // the append was not acknowledged in time (it may still be)
)

// Per-record error codes of a produce answer's offsets list (v2).
const (
	recordErrFatal     = 1 // non-retriable
	recordErrRetriable = 2 // retriable
)

// apiError is an error answered with a status and a v2 error body.
type apiError struct {
	status int
	code   int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errf(status, code int, msg string) *apiError {
	return &apiError{status: status, code: code, msg: msg}
}

// writeError answers err as a JSON error body {error_code, message}.
func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = logError(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(ae.status)
	writeJSONBody(w, map[string]any{"error_code": ae.code, "message": ae.msg})
}

// logError maps a log error to its HTTP answer.
func logError(err error) *apiError {
	switch {
	case errors.Is(err, rlog.ErrUnknownTopic):
		return errf(http.StatusNotFound, codeTopicNotFound, "topic not found")
	case errors.Is(err, rlog.ErrUnknownPartition):
		return errf(http.StatusNotFound, codePartitionUnknown, "partition not found")
	case errors.Is(err, rlog.ErrInvalidTopic):
		return errf(http.StatusUnprocessableEntity, codeBadTopicName, "invalid topic name: 1-249 characters of [a-zA-Z0-9._-], not . or ..")
	case errors.Is(err, rlog.ErrOffsetOutOfRange):
		return errf(http.StatusUnprocessableEntity, codeBadOffset, err.Error())
	case errors.Is(err, rlog.ErrBatchTooLarge):
		return errf(http.StatusRequestEntityTooLarge, codeRecordTooLarge, err.Error())
	case retriable(err):
		return errf(http.StatusServiceUnavailable, codeUnavailable, err.Error())
	case errors.Is(err, rlog.ErrNotLeader):
		return errf(http.StatusForbidden, codeForbidden, err.Error())
	}
	return errf(http.StatusInternalServerError, codeInternal, err.Error())
}

// retriable reports whether a produce that failed with err may succeed
// when sent again unchanged.
func retriable(err error) bool {
	return errors.Is(err, rlog.ErrDiskFull) || errors.Is(err, rlog.ErrNotEnoughReplicas) || errors.Is(err, rlog.ErrClosed)
}
