package kafka

import (
	"crypto/sha256"
	"errors"
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
)

// metadata answers Metadata with this one broker as every partition's
// leader and only replica. Unknown topics are created when the client allows
// it (v4+: AllowAutoTopicCreation; before: always) and AutoCreateTopics.
func (c *conn) metadata(req *kmsg.MetadataRequest) kmsg.Response {
	s := c.s
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = s.opts.NodeID, c.advHost, c.advPort
	resp.Brokers = []kmsg.MetadataResponseBroker{b}
	resp.ClusterID = &s.opts.ClusterID
	resp.ControllerID = s.opts.NodeID

	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		for _, info := range s.log.Topics() {
			resp.Topics = append(resp.Topics, s.metadataTopic(info))
		}
		return resp
	}
	create := s.opts.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
	var byID map[[16]byte]string
	for _, t := range req.Topics {
		var name string
		if t.Topic != nil {
			name = *t.Topic
		} else {
			if byID == nil {
				byID = map[[16]byte]string{}
				for _, info := range s.log.Topics() {
					byID[topicID(info.Name)] = info.Name
				}
			}
			var ok bool
			if name, ok = byID[t.TopicID]; !ok {
				rt := kmsg.NewMetadataResponseTopic()
				rt.TopicID = t.TopicID
				rt.ErrorCode = codeUnknownTopicID
				resp.Topics = append(resp.Topics, rt)
				continue
			}
		}
		info, err := s.log.Topic(name)
		if errors.Is(err, log.ErrUnknownTopic) && create && c.mayCreate(name) {
			if code := s.ensureTopic(name, true); code != codeNone {
				err = errCode(code)
			} else {
				info, err = s.log.Topic(name)
			}
		}
		if err != nil {
			rt := kmsg.NewMetadataResponseTopic()
			rt.Topic = &name
			rt.ErrorCode = codeOf(err)
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		resp.Topics = append(resp.Topics, s.metadataTopic(info))
	}
	return resp
}

func (s *Server) metadataTopic(info log.TopicInfo) kmsg.MetadataResponseTopic {
	rt := kmsg.NewMetadataResponseTopic()
	name := info.Name
	rt.Topic = &name
	rt.TopicID = topicID(name)
	rt.Partitions = make([]kmsg.MetadataResponseTopicPartition, len(info.Partitions))
	for i, p := range info.Partitions {
		rp := kmsg.NewMetadataResponseTopicPartition()
		rp.Partition = p.Partition
		rp.Leader = s.opts.NodeID
		rp.LeaderEpoch = -1 // no epochs: clients skip leader-epoch validation
		rp.Replicas = []int32{s.opts.NodeID}
		rp.ISR = []int32{s.opts.NodeID}
		rp.OfflineReplicas = []int32{}
		if s.opts.Cluster != nil {
			// The leader is this node: it serves reads of every
			// partition it lists (a mirror's too); the replica set
			// names the origin first.
			if reps, isr, off, ok := s.opts.Cluster.Replicas(name, p.Partition); ok {
				rp.Replicas, rp.ISR, rp.OfflineReplicas = reps, isr, off
			}
		}
		rt.Partitions[i] = rp
	}
	return rt
}

// topicID derives a stable, non-zero Kafka topic ID from the name. The log
// keeps an incarnation id per topic (config.json), but log.Log does not
// expose it, so a topic deleted and created again under the same name gets
// the same ID here. Requests that name topics by ID (Metadata,
// DeleteTopics) are resolved through this function; the request versions
// that name topics only by ID (Fetch 13+, OffsetCommit/OffsetFetch 10+) are
// not served.
func topicID(name string) [16]byte {
	sum := sha256.Sum256([]byte("runnel-topic\x00" + name))
	var id [16]byte
	copy(id[:], sum[:16])
	return id
}

// errCode carries a Kafka code as an error inside this package.
type errCode int16

func (e errCode) Error() string { return "kafka: error code " + strconv.Itoa(int(e)) }

// codeOf maps err (a log error or an errCode) to a Kafka code.
func codeOf(err error) int16 {
	var ec errCode
	if errors.As(err, &ec) {
		return int16(ec)
	}
	return errorCode(err)
}

// describeCluster answers DescribeCluster (Java admin describeCluster).
func (c *conn) describeCluster(req *kmsg.DescribeClusterRequest) kmsg.Response {
	s := c.s
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.ErrorCode = codeUnsupportedVersion
		resp.ErrorMessage = strp("runnel has no controller endpoints")
		return resp
	}
	resp.ClusterID = s.opts.ClusterID
	resp.ControllerID = s.opts.NodeID
	b := kmsg.NewDescribeClusterResponseBroker()
	b.NodeID, b.Host, b.Port = s.opts.NodeID, c.advHost, c.advPort
	resp.Brokers = []kmsg.DescribeClusterResponseBroker{b}
	if s.opts.Cluster != nil {
		for id, addr := range s.opts.Cluster.Brokers() {
			if id == s.opts.NodeID {
				continue
			}
			if host, port, err := splitHostPort(addr); err == nil {
				pb := kmsg.NewDescribeClusterResponseBroker()
				pb.NodeID, pb.Host, pb.Port = id, host, port
				resp.Brokers = append(resp.Brokers, pb)
			}
		}
	}
	return resp
}
