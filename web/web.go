// Package web is runnel's HTTP surface: /healthz, /readyz, Prometheus
// /metrics and the JSON API (/api/status, /api/topics, /api/routes,
// /api/peers).
package web

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"time"

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
}

// Server is the HTTP server.
type Server struct {
	opts    Options
	srv     *http.Server
	started time.Time
}

// New returns a server; Serve starts it.
func New(opts Options) (*Server, error) {
	if opts.Log == nil {
		return nil, errors.New("web: Options.Log is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{opts: opts, started: time.Now()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("GET /api/status", s.status)
	mux.HandleFunc("GET /api/topics", s.topics)
	mux.HandleFunc("GET /api/routes", s.routes)
	mux.HandleFunc("GET /api/peers", s.peers)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

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
}

type topicJSON struct {
	Name       string          `json:"name"`
	Fsync      string          `json:"fsync"`
	OnFull     string          `json:"on_full"`
	Partitions []partitionJSON `json:"partitions"`
}

func (s *Server) topics(w http.ResponseWriter, r *http.Request) {
	var out []topicJSON
	for _, t := range s.opts.Log.Topics() {
		tj := topicJSON{Name: t.Name, Fsync: string(t.Config.Fsync), OnFull: string(t.Config.OnFull)}
		for _, p := range t.Partitions {
			pj := partitionJSON{Partition: p.Partition, Start: p.Start, End: p.HWM, Bytes: p.Bytes, Segments: p.Segments}
			if p.Err != nil {
				pj.Error = p.Err.Error()
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
