package kafka

import (
	"crypto/sha256"
	"errors"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
)

// metadata answers Metadata with this broker as the leader of every
// partition it holds. Unknown topics are created when the client allows
// it (v4+: AllowAutoTopicCreation; before: always) and AutoCreateTopics.
//
// On a site (Cluster set), a partition of another node's data that this
// node holds no copy of is led by a box that holds it: a request that
// names copies only (topics with an origin) gets that box as the leader,
// and its broker entry, so an unmodified client reads the partition
// there. Any other request (all topics, or one naming this node's own
// topics) never names another box: each box's unprefixed topics are its
// own, and a client that learned of a peer would ask it about them; there
// such a partition answers LEADER_NOT_AVAILABLE, as it does when no alive
// box holds it.
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
			resp.Topics = append(resp.Topics, s.metadataTopic(info, nil))
		}
		return resp
	}
	create := s.opts.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
	var byID map[[16]byte]string
	var infos []log.TopicInfo
	copiesOnly := true
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
				copiesOnly = false
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
			copiesOnly = false
			continue
		}
		copiesOnly = copiesOnly && info.Config.Origin != ""
		infos = append(infos, info)
	}
	var peers map[int32]string
	if copiesOnly && s.opts.Cluster != nil {
		peers = map[int32]string{}
	}
	for _, info := range infos {
		resp.Topics = append(resp.Topics, s.metadataTopic(info, peers))
	}
	ids := make([]int32, 0, len(peers))
	for id := range peers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if host, port, err := splitHostPort(peers[id]); err == nil {
			pb := kmsg.NewMetadataResponseBroker()
			pb.NodeID, pb.Host, pb.Port = id, host, port
			resp.Brokers = append(resp.Brokers, pb)
		}
	}
	return resp
}

// metadataTopic describes info's partitions. A partition of a copy this
// node does not hold is led by the box Cluster.Leader names when peers is
// non-nil (that box is added to peers: id → Kafka host:port), else it
// answers LEADER_NOT_AVAILABLE (retriable), its replicas and in-sync set
// listed all the same.
func (s *Server) metadataTopic(info log.TopicInfo, peers map[int32]string) kmsg.MetadataResponseTopic {
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
			// The replica set names the origin first.
			if reps, isr, off, ok := s.opts.Cluster.Replicas(name, p.Partition); ok {
				rp.Replicas, rp.ISR, rp.OfflineReplicas = reps, isr, off
			}
			if here, id, addr := s.opts.Cluster.Leader(name, p.Partition); !here {
				_, _, err := splitHostPort(addr)
				if id >= 0 && err == nil && peers != nil {
					rp.Leader = id
					peers[id] = addr
				} else {
					rp.Leader = -1
					rp.ErrorCode = codeLeaderNotAvailable
				}
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
