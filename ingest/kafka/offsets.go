package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log/batch"
)

// Special ListOffsets timestamps.
const (
	tsLatest        = -1
	tsEarliest      = -2
	tsMaxTimestamp  = -3
	tsEarliestLocal = -4
)

func (c *conn) listOffsets(req *kmsg.ListOffsetsRequest) kmsg.Response {
	s := c.s
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition = p.Partition
			rp.LeaderEpoch = -1
			rp.Timestamp = -1
			off, ts, err := s.offsetFor(t.Topic, p.Partition, p.Timestamp)
			if err == nil && p.Timestamp == tsLatest && req.IsolationLevel == isolationReadCommitted {
				off, err = stableOffset(s.log, t.Topic, p.Partition, off) // read_committed ends at the LSO
			}
			if err != nil {
				rp.ErrorCode = errorCode(err)
				rp.Offset = -1
				s.stats.errors.Add(1)
			} else {
				rp.Offset, rp.Timestamp = off, ts
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// offsetFor resolves one ListOffsets timestamp to (offset, timestamp).
// A timestamp after every record answers offset -1, as Kafka does.
func (s *Server) offsetFor(topic string, partition int32, ts int64) (int64, int64, error) {
	start, hwm, err := s.log.Offsets(topic, partition)
	if err != nil {
		return 0, 0, err
	}
	switch ts {
	case tsLatest:
		return hwm, -1, nil
	case tsEarliest, tsEarliestLocal:
		return start, -1, nil
	case tsMaxTimestamp:
		if hwm == start {
			return -1, -1, nil
		}
		return hwm - 1, -1, nil
	}
	if ts < 0 {
		return start, -1, nil
	}
	off, err := s.log.OffsetForTime(topic, partition, ts)
	if err != nil {
		return 0, 0, err
	}
	if off >= hwm {
		return -1, -1, nil
	}
	// The log answers at batch granularity; find the exact record.
	for i := 0; i < 64 && off < hwm; i++ {
		data, err := s.log.Read(topic, partition, off, 1)
		if err != nil || len(data) == 0 {
			break
		}
		h, err := batch.ParseHeader(data)
		if err != nil {
			break
		}
		recs, err := batch.Records(data)
		if err != nil {
			break
		}
		for _, r := range recs {
			if r.Offset >= off && r.Timestamp >= ts {
				return r.Offset, r.Timestamp, nil
			}
		}
		off = h.LastOffset() + 1
	}
	if off >= hwm {
		return -1, -1, nil
	}
	return off, -1, nil
}
