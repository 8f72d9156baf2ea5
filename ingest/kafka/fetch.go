package kafka

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
)

// fetch answers a Fetch: it reads every requested partition and, unless
// MinBytes are there (or an error, the deadline, or Close), waits for
// log.Changed and reads again, until MaxWaitMillis. Batches go out exactly
// as log.Read returned them.
func (c *conn) fetch(sl *slot, req *kmsg.FetchRequest) {
	s := c.s
	defer sl.finish()
	lg := s.log
	if req.ReplicaID >= 0 && s.opts.Cluster != nil {
		// A follower (a site peer mirroring this node): its fetch
		// offset tells how far its copy is durable.
		lg = s.opts.Cluster.FollowerLog()
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				s.opts.Cluster.FollowerFetched(req.ReplicaID, t.Topic, p.Partition, p.FetchOffset)
			}
		}
	}
	wait := time.Duration(max(req.MaxWaitMillis, 0)) * time.Millisecond
	deadline := time.Now().Add(wait)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		changed := lg.Changed() // before reading, so no wakeup is missed
		resp, n, stop := c.readFetch(lg, req)
		if stop || int64(n) >= int64(req.MinBytes) || !time.Now().Before(deadline) {
			sl.resp = resp
			s.stats.fetchBytes.Add(uint64(n))
			return
		}
		if timer == nil {
			timer = time.NewTimer(time.Until(deadline))
		}
		select {
		case <-changed:
			continue
		case <-timer.C:
		case <-s.closing:
		case <-c.ctx.Done():
		}
		// Out of time: answer with a final read.
		resp, n, _ = c.readFetch(lg, req)
		sl.resp = resp
		s.stats.fetchBytes.Add(uint64(n))
		return
	}
}

// readFetch reads every requested partition once. stop is true when an
// error makes waiting pointless.
func (c *conn) readFetch(lg log.Log, req *kmsg.FetchRequest) (resp *kmsg.FetchResponse, total int, stop bool) {
	s := c.s
	resp = req.ResponseKind().(*kmsg.FetchResponse)
	maxBytes := int(req.MaxBytes)
	if req.Version < 3 || maxBytes <= 0 {
		maxBytes = 1<<31 - 1
	}
	resp.Topics = make([]kmsg.FetchResponseTopic, len(req.Topics))
	for ti := range req.Topics {
		t := &req.Topics[ti]
		rt := &resp.Topics[ti]
		*rt = kmsg.NewFetchResponseTopic()
		rt.Topic = t.Topic
		rt.TopicID = t.TopicID
		rt.Partitions = make([]kmsg.FetchResponseTopicPartition, len(t.Partitions))
		for pi := range t.Partitions {
			p := &t.Partitions[pi]
			rp := &rt.Partitions[pi]
			*rp = kmsg.NewFetchResponseTopicPartition()
			rp.Partition = p.Partition
			rp.RecordBatches = noRecords // librdkafka rejects a null record set
			remaining := maxBytes - total
			if p.PartitionMaxBytes > 0 && (total == 0 || remaining > 0) {
				data, err := lg.Read(t.Topic, p.Partition, p.FetchOffset, min(int(p.PartitionMaxBytes), max(remaining, 1)))
				if err != nil {
					rp.ErrorCode = errorCode(err)
					s.stats.errors.Add(1)
					stop = true
				} else if len(data) > 0 {
					rp.RecordBatches = data
					total += len(data)
				}
			}
			start, hwm, err := lg.Offsets(t.Topic, p.Partition)
			if err != nil {
				if rp.ErrorCode == codeNone {
					rp.ErrorCode = errorCode(err)
					s.stats.errors.Add(1)
				}
				stop = true
				rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
				continue
			}
			rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = hwm, hwm, start
		}
	}
	return resp, total, stop
}

var noRecords = []byte{}
