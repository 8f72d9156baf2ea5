package web

import (
	"net/http"
	"sync/atomic"
)

// routesTable registers every endpoint with the role it needs (see
// auth.go): public (health probes), read (status, metrics, reads, the
// tail, the dashboard) or write (produce, publish, pause/resume).
func (s *Server) routesTable() {
	s.handle("GET /healthz", rolePublic, s.healthz)
	s.handle("GET /readyz", rolePublic, s.readyz)
	s.handle("GET /metrics", roleRead, s.metrics)
	s.handle("GET /api/status", roleRead, s.status)
	s.handle("GET /api/topics", roleRead, s.topics)
	s.handle("GET /api/routes", roleRead, s.routes)
	s.handle("GET /api/peers", roleRead, s.peers)
	s.handle("GET /api/overview", roleRead, s.overview)
	s.handle("GET /api/consumers", roleRead, s.consumers)
	s.handle("GET /api/mqtt", roleRead, s.mqttStatus)
	s.handle("GET /api/uplink", roleRead, s.uplink)
	s.handle("GET /api/topics/{t}/offsets", roleRead, s.offsetsForTime)
	s.handle("POST /api/routes/{name}/pause", roleWrite, s.pauseRoute(true))
	s.handle("POST /api/routes/{name}/resume", roleWrite, s.pauseRoute(false))
	s.handle("GET /{$}", roleRead, s.index)
	s.handle("GET /ui/", roleRead, s.ui)

	// Confluent REST Proxy v2.
	s.handle("GET /topics", roleRead, s.v2Topics)
	s.handle("GET /topics/{t}", roleRead, s.v2Topic)
	s.handle("GET /topics/{t}/partitions", roleRead, s.v2PartitionList)
	s.handle("GET /topics/{t}/partitions/{p}", roleRead, s.v2Partition)
	s.handle("GET /topics/{t}/partitions/{p}/offsets", roleRead, s.v2Offsets)
	s.handle("GET /topics/{t}/partitions/{p}/records", roleRead, s.readRecords)
	s.handle("GET /topics/{t}/tail", roleRead, s.tail)
	s.handle("POST /topics/{t}", roleWrite, s.produceTopic)
	s.handle("POST /topics/{t}/partitions/{p}", roleWrite, s.producePartition)

	// MQTT-style publish: EMQX's paths and a short one.
	s.handle("POST /mqtt/publish", roleWrite, s.mqttPublish)
	s.handle("POST /api/v5/publish", roleWrite, s.mqttPublish)
	s.handle("POST /api/v5/publish/bulk", roleWrite, s.mqttPublishBulk)
}

// handle registers h for pattern behind the role check.
func (s *Server) handle(pattern string, role role, h http.HandlerFunc) {
	s.mux.Handle(pattern, s.authorize(role, h))
}

// serveHTTP dispatches r. A request no endpoint takes (unknown path,
// wrong method) is answered by the mux itself: its 404 and 405 become the
// JSON error body every other answer has, the 405's Allow header kept.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern == "" {
		w = &muxErrorWriter{ResponseWriter: w}
	}
	s.mux.ServeHTTP(w, r) // (Handler does not set r's path values)
}

// muxErrorWriter turns the mux's plain-text 404 and 405 into JSON errors
// and passes anything else (its redirects) through.
type muxErrorWriter struct {
	http.ResponseWriter
	replaced bool
}

func (w *muxErrorWriter) WriteHeader(code int) {
	var msg string
	switch code {
	case http.StatusNotFound:
		msg = "no such endpoint"
	case http.StatusMethodNotAllowed:
		msg = "method not allowed; allowed: " + w.Header().Get("Allow")
	default:
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.replaced = true
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.ResponseWriter.WriteHeader(code)
	writeJSONBody(w.ResponseWriter, map[string]any{"error_code": code, "message": msg})
}

func (w *muxErrorWriter) Write(b []byte) (int, error) {
	if w.replaced {
		return len(b), nil // the mux's text body
	}
	return w.ResponseWriter.Write(b)
}

// counters are the HTTP surface's own figures (/metrics, /api/overview).
type counters struct {
	producedRecords atomic.Uint64 // records appended through HTTP produce
	producedBytes   atomic.Uint64 // batch bytes appended through HTTP produce
	produceFailed   atomic.Uint64 // records the log refused or failed
	produceRefused  atomic.Uint64 // produce requests refused before storing (4xx)
	mqttPublished   atomic.Uint64 // MQTT-style publishes durable (or fanned out)
	mqttFailed      atomic.Uint64 // MQTT-style publishes refused or failed
	tailClients     atomic.Int64  // open live tails
	tailEvents      atomic.Uint64 // records sent on live tails
	tailCut         atomic.Uint64 // live tails closed because the client did not read
	authFailures    atomic.Uint64 // requests refused for missing or wrong credentials
}
