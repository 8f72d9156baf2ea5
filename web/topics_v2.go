package web

import (
	"net/http"
	"strconv"

	rlog "github.com/runnel/runnel/log"
)

// The topic metadata of Confluent REST Proxy v2: GET /topics,
// /topics/{t}, /topics/{t}/partitions, /topics/{t}/partitions/{p} and
// /topics/{t}/partitions/{p}/offsets. This node leads every partition it
// lists (a site's copies are topics of their own, `<origin>.<topic>`).

type v2Replica struct {
	Broker int32 `json:"broker"`
	Leader bool  `json:"leader"`
	InSync bool  `json:"in_sync"`
}

type v2Partition struct {
	Partition int32       `json:"partition"`
	Leader    int32       `json:"leader"`
	Replicas  []v2Replica `json:"replicas"`
}

type v2Topic struct {
	Name       string            `json:"name"`
	Configs    map[string]string `json:"configs"`
	Partitions []v2Partition     `json:"partitions"`
}

func (s *Server) v2Topics(w http.ResponseWriter, r *http.Request) {
	names := []string{}
	for _, t := range s.opts.Log.Topics() {
		if s.visible(r, t.Name) {
			names = append(names, t.Name)
		}
	}
	writeJSONType(w, v2Type, names)
}

// topicParam returns the topic named in the path.
func (s *Server) topicParam(r *http.Request) (rlog.TopicInfo, error) {
	return s.opts.Log.Topic(r.PathValue("t"))
}

// partitionParam parses {p} and checks it against info.
func partitionParam(r *http.Request, info rlog.TopicInfo) (int32, error) {
	p, err := strconv.ParseInt(r.PathValue("p"), 10, 32)
	if err != nil || p < 0 || int(p) >= len(info.Partitions) {
		return 0, errf(http.StatusNotFound, codePartitionUnknown, "partition not found")
	}
	return int32(p), nil
}

func (s *Server) v2Topic(w http.ResponseWriter, r *http.Request) {
	info, err := s.topicParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSONType(w, v2Type, v2Topic{Name: info.Name, Configs: topicConfigs(info.Config), Partitions: s.v2Partitions(info)})
}

func (s *Server) v2PartitionList(w http.ResponseWriter, r *http.Request) {
	info, err := s.topicParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSONType(w, v2Type, s.v2Partitions(info))
}

func (s *Server) v2Partition(w http.ResponseWriter, r *http.Request) {
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
	writeJSONType(w, v2Type, s.v2Partitions(info)[p])
}

func (s *Server) v2Offsets(w http.ResponseWriter, r *http.Request) {
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
	start, hwm, err := s.opts.Log.Offsets(info.Name, p)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSONType(w, v2Type, map[string]int64{"beginning_offset": start, "end_offset": hwm})
}

func (s *Server) v2Partitions(info rlog.TopicInfo) []v2Partition {
	out := make([]v2Partition, 0, len(info.Partitions))
	for _, p := range info.Partitions {
		out = append(out, v2Partition{Partition: p.Partition, Leader: s.opts.BrokerID,
			Replicas: []v2Replica{{Broker: s.opts.BrokerID, Leader: true, InSync: true}}})
	}
	return out
}

// topicConfigs is a topic's configuration under Kafka's config names (the
// names `runnel topic create --config` takes).
func topicConfigs(c rlog.TopicConfig) map[string]string {
	ms := func(d interface{ Milliseconds() int64 }) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	m := map[string]string{
		"retention.ms":        ms(c.RetentionAge),
		"retention.bytes":     strconv.FormatInt(c.RetentionBytes, 10),
		"segment.bytes":       strconv.FormatInt(c.SegmentBytes, 10),
		"segment.ms":          ms(c.SegmentAge),
		"max.message.bytes":   strconv.FormatInt(int64(c.MaxBatchBytes), 10),
		"runnel.fsync":        string(c.Fsync),
		"runnel.on.full":      string(c.OnFull),
		"replication.factor":  strconv.FormatInt(int64(max(c.ReplicationFactor, 1)), 10),
		"min.insync.replicas": strconv.FormatInt(int64(max(c.MinInsyncReplicas, 1)), 10),
		"cleanup.policy":      string(c.Cleanup),
	}
	if c.Cleanup == "" {
		m["cleanup.policy"] = string(rlog.CleanupDelete)
	}
	if c.Compacted() {
		m["delete.retention.ms"] = ms(c.DeleteRetention)
		m["min.compaction.lag.ms"] = ms(c.MinCompactionLag)
		m["min.cleanable.dirty.ratio"] = strconv.FormatFloat(c.MinCleanableRatio, 'g', -1, 64)
	}
	if c.RetentionAge < 0 {
		m["retention.ms"] = "-1"
	}
	if c.Origin != "" {
		m["runnel.origin"] = c.Origin
	}
	return m
}
