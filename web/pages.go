package web

import (
	"net/http"
	"time"
)

// ConsumerGroup is a consumer group as Options.Consumers reports it.
type ConsumerGroup struct {
	Name    string
	State   string
	Members []ConsumerMember
	Offsets []CommittedOffset
}

// ConsumerMember is one member of a group.
type ConsumerMember struct{ ID, ClientID, ClientHost string }

// CommittedOffset is a group's committed offset of one partition.
type CommittedOffset struct {
	Topic     string
	Partition int32
	Offset    int64
}

type lagJSON struct {
	Topic      string   `json:"topic"`
	Partition  int32    `json:"partition"`
	Committed  int64    `json:"committed"` // -1: no commit
	End        int64    `json:"end"`
	LagRecords int64    `json:"lag_records"`
	LagSeconds *float64 `json:"lag_seconds"` // age of the oldest record not consumed; null when caught up or unknown
}

type groupJSON struct {
	Name       string           `json:"name"`
	State      string           `json:"state"`
	Members    []map[string]any `json:"members"`
	LagRecords int64            `json:"lag_records"`
	Partitions []lagJSON        `json:"partitions"`
}

// consumers serves GET /api/consumers: each group's members and lag per
// partition, in records and in seconds (the age of the first record the
// group has not consumed).
func (s *Server) consumers(w http.ResponseWriter, r *http.Request) {
	out := []groupJSON{}
	if s.opts.Consumers == nil {
		writeJSON(w, out)
		return
	}
	groups, err := s.opts.Consumers()
	if err != nil {
		writeError(w, err)
		return
	}
	now := time.Now()
	for _, g := range groups {
		gj := groupJSON{Name: g.Name, State: g.State, Members: []map[string]any{}, Partitions: []lagJSON{}}
		for _, m := range g.Members {
			gj.Members = append(gj.Members, map[string]any{"id": m.ID, "client_id": m.ClientID, "client_host": m.ClientHost})
		}
		// Every partition of a topic the group committed to: one without
		// a commit of its own lags by all it holds.
		committed := map[string]map[int32]int64{}
		var topics []string
		for _, o := range g.Offsets {
			if committed[o.Topic] == nil {
				committed[o.Topic] = map[int32]int64{}
				topics = append(topics, o.Topic)
			}
			committed[o.Topic][o.Partition] = o.Offset
		}
		for _, topic := range topics {
			info, err := s.opts.Log.Topic(topic)
			if err != nil {
				continue // deleted since
			}
			for _, pi := range info.Partitions {
				c, ok := committed[topic][pi.Partition]
				if !ok {
					c = -1
				}
				lj := lagJSON{Topic: topic, Partition: pi.Partition, Committed: c, End: pi.HWM}
				from := max(c, pi.Start)
				lj.LagRecords = max(pi.HWM-from, 0)
				gj.LagRecords += lj.LagRecords
				if lj.LagRecords > 0 {
					if recs, err := s.readFrom(topic, pi.Partition, from, 1); err == nil && len(recs) > 0 {
						age := now.Sub(time.UnixMilli(recs[0].Timestamp)).Seconds()
						lj.LagSeconds = &age
					}
				}
				gj.Partitions = append(gj.Partitions, lj)
			}
		}
		out = append(out, gj)
	}
	writeJSON(w, out)
}

// mqttStatus serves GET /api/mqtt: connected clients, subscriptions,
// retained messages.
func (s *Server) mqttStatus(w http.ResponseWriter, r *http.Request) {
	if s.opts.MQTT == nil {
		writeJSON(w, map[string]any{"enabled": false})
		return
	}
	writeJSON(w, map[string]any{"enabled": true, "broker": s.opts.MQTT()})
}

// uplink serves GET /api/uplink: the routes, the link budget and the
// box's clock (now), so how long a route has been in its state does not
// depend on the viewer's clock.
func (s *Server) uplink(w http.ResponseWriter, r *http.Request) {
	var routes any = []any{}
	if s.opts.Routes != nil {
		routes = s.opts.Routes()
	}
	writeJSON(w, map[string]any{"budget_bytes_per_day": s.opts.LinkBudget, "routes": routes, "now": time.Now()})
}

// pauseRoute serves POST /api/routes/{name}/pause and /resume.
func (s *Server) pauseRoute(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.PauseRoute == nil {
			writeError(w, errf(http.StatusNotFound, codeRouteNotFound, "no forwarding routes on this node"))
			return
		}
		if err := s.opts.PauseRoute(r.PathValue("name"), paused); err != nil {
			writeError(w, errf(http.StatusNotFound, codeRouteNotFound, err.Error()))
			return
		}
		writeJSON(w, map[string]any{"route": r.PathValue("name"), "paused": paused})
	}
}

// offsetsForTime serves GET /api/topics/{t}/offsets?time=MS: each
// partition's first offset whose batch ends at or after the time, and its
// start and end (the message browser's "from a time" and "newest").
func (s *Server) offsetsForTime(w http.ResponseWriter, r *http.Request) {
	info, err := s.topicParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ts, err := intParam(r, "time", -1)
	if err != nil {
		writeError(w, err)
		return
	}
	out := []map[string]any{}
	for _, p := range info.Partitions {
		m := map[string]any{"partition": p.Partition, "start": p.Start, "end": p.HWM}
		if ts >= 0 {
			off, err := s.opts.Log.OffsetForTime(info.Name, p.Partition, ts)
			if err != nil {
				writeError(w, err)
				return
			}
			m["offset"] = off
		}
		out = append(out, m)
	}
	writeJSON(w, out)
}
