package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
)

// offsetForLeaderEpoch answers OffsetForLeaderEpoch (API 23) from the
// log's leader-epoch history (log.LeaderEpochs): per partition the
// largest epoch <= LeaderEpoch and where it ends, with Kafka's semantics
// (see log.LeaderEpochs.EpochEnd). A partition's current leader epoch is
// the latest in its history: a CurrentLeaderEpoch (KIP-320 fencing) below
// it answers FENCED_LEADER_EPOCH, above it UNKNOWN_LEADER_EPOCH; -1 skips
// the check. Served only when the log implements log.LeaderEpochs.
func (c *conn) offsetForLeaderEpoch(req *kmsg.OffsetForLeaderEpochRequest) kmsg.Response {
	s := c.s
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	le, _ := s.log.(log.LeaderEpochs)
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			rp.Partition = p.Partition
			rp.LeaderEpoch, rp.EndOffset = -1, -1
			if code := s.epochEnd(le, t.Topic, p, &rp); code != codeNone {
				rp.ErrorCode = code
				s.stats.errors.Add(1)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// epochEnd fills one partition's answer and returns its error code.
func (s *Server) epochEnd(le log.LeaderEpochs, topic string, p kmsg.OffsetForLeaderEpochRequestTopicPartition, rp *kmsg.OffsetForLeaderEpochResponseTopicPartition) int16 {
	if le == nil {
		return codeUnsupportedVersion
	}
	if p.CurrentLeaderEpoch >= 0 {
		hist, err := le.EpochHistory(topic, p.Partition)
		if err != nil {
			return errorCode(err)
		}
		current := int32(-1)
		if len(hist) > 0 {
			current = hist[len(hist)-1].Epoch
		}
		switch {
		case p.CurrentLeaderEpoch < current:
			return codeFencedLeaderEpoch
		case p.CurrentLeaderEpoch > current:
			return codeUnknownLeaderEpoch
		}
	}
	e, end, err := le.EpochEnd(topic, p.Partition, p.LeaderEpoch)
	if err != nil {
		return errorCode(err)
	}
	rp.LeaderEpoch, rp.EndOffset = e, end
	return codeNone
}

func isLeaderEpochs(l log.Log) bool {
	_, ok := l.(log.LeaderEpochs)
	return ok
}
