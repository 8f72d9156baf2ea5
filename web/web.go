// Package web is runnel's HTTP surface: /healthz, /readyz, Prometheus
// /metrics, the JSON API (/api/status, /api/topics, /api/routes,
// /api/peers, ...), produce and read in Confluent REST Proxy v2's
// conventions (/topics/...), an MQTT-style publish, the Server-Sent
// Events live tail and the embedded dashboard (/ui/).
//
// web imports no component: what a component exposes (metrics, status
// sections, routes, peers, the MQTT publish) reaches it through Options,
// wired by cmd/runnel.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/runnel/runnel/ingest/produce"
	rlog "github.com/runnel/runnel/log"
)

// Options configures the HTTP server.
type Options struct {
	// Log is the commit log (required).
	Log rlog.Log
	// Logger; nil = slog.Default().
	Logger *slog.Logger
	// NodeID and Version are shown in /api/status and /metrics.
	NodeID, Version string
	// Ready reports why the node is not ready (nil = ready). Called by
	// /readyz in addition to the log's own checks.
	Ready func() error
	// Collectors add component metrics to /metrics.
	Collectors []func(*Metrics)
	// Status adds sections to /api/status (name → JSON-encodable value).
	Status map[string]func() any
	// Routes is served as /api/routes (nil = empty list).
	Routes func() any
	// Peers is served as /api/peers: the site's members and copies (nil =
	// this node alone, site replication off).
	Peers func() any

	// BrokerID is this node's Kafka broker id, the leader of every
	// partition in the REST v2 topic answers.
	BrokerID int32
	// AutoCreateTopics makes HTTP produce create unknown topics with the
	// log's defaults (the Kafka listener's setting).
	AutoCreateTopics bool
	// MaxBodyBytes caps a request body (default DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// MQTTPublish, when set, serves the MQTT-style publish endpoints: it
	// publishes m as an MQTT client's PUBLISH would be (routes to the
	// log, fan-out to subscribers, retained store) and returns once m is
	// durable (or refused).
	MQTTPublish func(ctx context.Context, m MQTTMessage) error
	// Site is the site id shown by the dashboard.
	Site string
	// Ingest gives each protocol's totals ("kafka", "mqtt"; HTTP's own are
	// added), for the ingest rates of /api/overview.
	Ingest map[string]func() IngestCount
	// DataDir is the data directory (its device's writes and wear are
	// shown); MinFreeBytes and OnFull the disk guard's threshold and the
	// default on-full policy.
	DataDir      string
	MinFreeBytes int64
	OnFull       string
	// Consumers lists the consumer groups (nil: no Kafka listener).
	Consumers func() ([]ConsumerGroup, error)
	// MQTT is the MQTT broker's snapshot, served as /api/mqtt (nil: MQTT off).
	MQTT func() any
	// PauseRoute pauses or resumes a forwarding route (nil: no routes).
	PauseRoute func(name string, paused bool) error
	// LinkBudget is the uplink's data plan in bytes per day (0 = none).
	LinkBudget int64
	// TailHeartbeat is how often an idle live tail sends a comment
	// (default DefaultTailHeartbeat); TailWriteTimeout how long a write to
	// a tail client may block before the client is cut off (default
	// DefaultTailWriteTimeout).
	TailHeartbeat, TailWriteTimeout time.Duration
	// Auth says who may do what (see auth.go); the zero value opens
	// everything to loopback clients only.
	Auth AuthOptions
}

// DefaultMaxBodyBytes is the default cap on a request body.
const DefaultMaxBodyBytes = 4 << 20

// Server is the HTTP server.
type Server struct {
	opts    Options
	srv     *http.Server
	mux     *http.ServeMux
	started time.Time
	produce *produce.Path
	auth    *authenticator
	stats   counters
	closing chan struct{} // closed when Shutdown starts: live tails end

	device         string // /sys/block name of the data dir's disk ("" unknown)
	sampler        sampler
	hoursUntilFull atomic.Uint64 // float64 bits; last computed
}

// New returns a server; Serve starts it.
func New(opts Options) (*Server, error) {
	if opts.Log == nil {
		return nil, errors.New("web: Options.Log is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := opts.Auth.Validate(); err != nil {
		return nil, err
	}
	if opts.TailHeartbeat <= 0 {
		opts.TailHeartbeat = DefaultTailHeartbeat
	}
	if opts.TailWriteTimeout <= 0 {
		opts.TailWriteTimeout = DefaultTailWriteTimeout
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	s := &Server{opts: opts, started: time.Now(), mux: http.NewServeMux(), closing: make(chan struct{})}
	s.auth = newAuthenticator(opts.Auth)
	s.device = deviceOf(opts.DataDir)
	s.hoursUntilFull.Store(math.Float64bits(math.NaN()))
	s.produce = produce.New(produce.Options{Log: opts.Log, Logger: opts.Logger, Protocol: "http"})
	s.routesTable()
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		// A keep-alive connection idle this long is closed: the HTTP
		// listener has few connections (64 by default), and idle ones
		// held them all. A dashboard polls every few seconds.
		IdleTimeout: 30 * time.Second,
		ErrorLog:    slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	s.srv.RegisterOnShutdown(func() { close(s.closing) })
	return s, nil
}

// Handler is the server's handler (every endpoint behind its access
// check), for serving it elsewhere.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Serve serves HTTP on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for in-flight requests; when ctx ends
// first, the connections still open are closed and ctx's error returned.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	return err
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

// notReady lists every reason the node should not receive traffic.
func (s *Server) notReady() []string {
	var why []string
	st := s.opts.Log.Stats()
	for _, p := range st.ReadOnly {
		why = append(why, "partition "+p.Topic+"/"+strconv.Itoa(int(p.Partition))+" read-only: "+p.Err.Error())
	}
	if st.DiskShort {
		why = append(why, "disk short: "+strconv.FormatInt(st.DiskFreeBytes, 10)+" bytes free")
	}
	for _, d := range st.Damaged {
		if d.PartitionRange() && !d.Repaired {
			why = append(why, "damaged: "+d.RangeString()+" ("+d.File+" at byte "+strconv.FormatInt(d.Offset, 10)+": "+d.Reason+"); consumers stop there with CORRUPT_MESSAGE: runnel repair skips the range")
		}
	}
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			why = append(why, err.Error())
		}
	}
	return why
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	why := s.notReady()
	if len(why) == 0 {
		w.Write([]byte("ready\n"))
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	for _, s := range why {
		w.Write([]byte(s + "\n"))
	}
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st := s.opts.Log.Stats()
	why := s.notReady()
	out := map[string]any{
		"node_id":         s.opts.NodeID,
		"version":         s.opts.Version,
		"uptime_seconds":  int64(time.Since(s.started).Seconds()),
		"ready":           len(why) == 0,
		"not_ready":       why,
		"disk_free_bytes": st.DiskFreeBytes,
		"disk_total":      st.DiskTotalBytes,
		"disk_short":      st.DiskShort,
		"partitions":      st.Partitions,
		"goroutines":      runtime.NumGoroutine(),
	}
	if why == nil {
		out["not_ready"] = []string{} // a list, never null
	}
	dmg := []map[string]any{}
	for _, d := range st.Damaged {
		e := map[string]any{"file": d.File, "offset": d.Offset, "reason": d.Reason}
		if d.PartitionRange() {
			e["topic"], e["partition"], e["from_offset"], e["to_offset"], e["repaired"] = d.Topic, d.Partition, d.From, d.To, d.Repaired
		}
		dmg = append(dmg, e)
	}
	out["damaged"] = dmg
	for name, fn := range s.opts.Status {
		out[name] = fn()
	}
	writeJSON(w, out)
}

type partitionJSON struct {
	Partition int32  `json:"partition"`
	Start     int64  `json:"start"`
	End       int64  `json:"end"`
	Bytes     int64  `json:"bytes"`
	Segments  int    `json:"segments"`
	Error     string `json:"error,omitempty"`
	// Compacted topics: the share not cleaned yet, and when the last
	// cleaning pass ended (RFC 3339; absent before the first).
	DirtyRatio *float64 `json:"dirty_ratio,omitempty"`
	LastClean  string   `json:"last_clean,omitempty"`
}

type topicJSON struct {
	Name           string          `json:"name"`
	Fsync          string          `json:"fsync"`
	OnFull         string          `json:"on_full"`
	RetentionMs    int64           `json:"retention_ms"`    // -1 = forever
	RetentionBytes int64           `json:"retention_bytes"` // per partition; -1 = unlimited
	Origin         string          `json:"origin,omitempty"`
	CleanupPolicy  string          `json:"cleanup_policy"`
	Partitions     []partitionJSON `json:"partitions"`
}

func (s *Server) topics(w http.ResponseWriter, r *http.Request) {
	var out []topicJSON
	for _, t := range s.opts.Log.Topics() {
		if !s.visible(r, t.Name) {
			continue
		}
		tj := topicJSON{Name: t.Name, Fsync: string(t.Config.Fsync), OnFull: string(t.Config.OnFull),
			RetentionMs: t.Config.RetentionAge.Milliseconds(), RetentionBytes: t.Config.RetentionBytes, Origin: t.Config.Origin,
			CleanupPolicy: string(t.Config.Cleanup)}
		if tj.CleanupPolicy == "" {
			tj.CleanupPolicy = string(rlog.CleanupDelete)
		}
		if t.Config.RetentionAge < 0 {
			tj.RetentionMs = -1
		}
		if tj.RetentionBytes < 0 {
			tj.RetentionBytes = -1
		}
		for _, p := range t.Partitions {
			pj := partitionJSON{Partition: p.Partition, Start: p.Start, End: p.HWM, Bytes: p.Bytes, Segments: p.Segments}
			if p.Err != nil {
				pj.Error = p.Err.Error()
			}
			if t.Config.Compacted() {
				r := p.DirtyRatio
				pj.DirtyRatio = &r
				if !p.LastClean.IsZero() {
					pj.LastClean = p.LastClean.UTC().Format(time.RFC3339)
				}
			}
			tj.Partitions = append(tj.Partitions, pj)
		}
		out = append(out, tj)
	}
	if out == nil {
		out = []topicJSON{}
	}
	writeJSON(w, out)
}

func (s *Server) routes(w http.ResponseWriter, r *http.Request) {
	if s.opts.Routes == nil {
		writeJSON(w, []any{})
		return
	}
	writeJSON(w, s.opts.Routes())
}

func (s *Server) peers(w http.ResponseWriter, r *http.Request) {
	if s.opts.Peers == nil {
		writeJSON(w, map[string]any{"enabled": false, "peers": []any{}})
		return
	}
	writeJSON(w, s.opts.Peers())
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// writeJSONType answers v as compact JSON of content type ctype.
func writeJSONType(w http.ResponseWriter, ctype string, v any) {
	w.Header().Set("Content-Type", ctype)
	writeJSONBody(w, v)
}

func writeJSONBody(w http.ResponseWriter, v any) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
