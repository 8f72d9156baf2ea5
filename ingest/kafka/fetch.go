package kafka

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
)

// DebugReplicaID is Kafka's debugging consumer id (FetchRequest
// DEBUGGING_REPLICA_ID): a Fetch with it reads up to the durable end, as
// a follower does, past the acknowledged end consumers see, and is no
// copy's progress. It needs ClusterAction, as a follower's. A mirror
// compares its copy with the origin's batches with it.
const DebugReplicaID = -2

// fetch answers a Fetch: it reads every requested partition and, unless
// MinBytes are there (or an error, the deadline, or Close), watches each
// partition past what it saw (log.Watch: an advance of a partition the
// request does not name never wakes it) and reads again, until
// MaxWaitMillis. Batches go out exactly as log.Read returned them.
func (c *conn) fetch(sl *slot, req *kmsg.FetchRequest) {
	s := c.s
	defer sl.finish()
	lg := s.log
	switch {
	case req.ReplicaID >= 0 && s.opts.Cluster != nil:
		// A follower (a site peer mirroring this node): its fetch
		// offset tells how far its copy is durable.
		lg = s.opts.Cluster.FollowerLog()
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				s.opts.Cluster.FollowerFetched(req.ReplicaID, t.Topic, p.Partition, p.FetchOffset)
			}
		}
	case req.ReplicaID == DebugReplicaID && s.opts.Cluster != nil:
		// Reads what a follower reads, and moves no copy's progress.
		lg = s.opts.Cluster.FollowerLog()
	}
	// A wait over MaxFetchWait is cut to it: the client gets an empty
	// answer and fetches again, as after any wait. max_wait_ms 2^31-1
	// parked a Fetch (and, with maxConnFetches, its connection's reader)
	// for 24 days.
	wait := min(time.Duration(max(req.MaxWaitMillis, 0))*time.Millisecond, s.opts.MaxFetchWait)
	deadline := time.Now().Add(wait)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var w *log.Waiter
	var seen []int64
	for {
		resp, n, stop := c.readFetch(lg, req, &seen)
		if stop || int64(n) >= int64(req.MinBytes) || !time.Now().Before(deadline) {
			sl.resp = resp
			s.stats.fetchBytes.Add(uint64(n))
			return
		}
		if w == nil {
			w = log.NewWaiter()
		}
		w.Reset()
		if !c.watchFetch(lg, w, req, seen) {
			sl.resp = resp
			s.stats.fetchBytes.Add(uint64(n))
			return
		}
		if timer == nil {
			timer = time.NewTimer(time.Until(deadline))
		}
		select {
		case <-w.C():
			continue
		case <-timer.C:
		case <-s.closing:
		case <-c.ctx.Done():
		}
		// Out of time: answer with a final read.
		resp, n, _ = c.readFetch(lg, req, nil)
		sl.resp = resp
		s.stats.fetchBytes.Add(uint64(n))
		return
	}
}

// watchFetch registers w on every requested partition of lg (the log the
// fetch reads: a follower's waits on the durable end it reads, not on the
// acknowledged end consumers see, which only its next fetch can move),
// past the offset its last read saw; false when a partition can no longer
// be watched (deleted meanwhile): the caller answers at once.
func (c *conn) watchFetch(lg log.Log, w *log.Waiter, req *kmsg.FetchRequest, seen []int64) bool {
	i := 0
	for ti := range req.Topics {
		t := &req.Topics[ti]
		for pi := range t.Partitions {
			if err := lg.Watch(w, t.Topic, t.Partitions[pi].Partition, seen[i]); err != nil {
				return false
			}
			i++
		}
	}
	return true
}

// readFetch reads every requested partition once. stop is true when an
// error makes waiting pointless. When seen is not nil it is filled, per
// requested partition in request order, with the offset a wait must see
// the HWM pass: the fetch offset when the read found nothing there, else
// the HWM reported.
func (c *conn) readFetch(lg log.Log, req *kmsg.FetchRequest, seen *[]int64) (resp *kmsg.FetchResponse, total int, stop bool) {
	s := c.s
	resp = req.ResponseKind().(*kmsg.FetchResponse)
	maxBytes := int(req.MaxBytes)
	if req.Version < 3 || maxBytes <= 0 {
		maxBytes = 1<<31 - 1
	}
	if seen != nil {
		*seen = (*seen)[:0]
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
			read, empty := false, false
			if p.PartitionMaxBytes > 0 && (total == 0 || remaining > 0) {
				read = true
				data, err := lg.Read(t.Topic, p.Partition, p.FetchOffset, min(int(p.PartitionMaxBytes), max(remaining, 1)))
				if err != nil {
					rp.ErrorCode = errorCode(err)
					if rp.ErrorCode == codeUnknownServerError {
						rp.ErrorCode = codeKafkaStorageError // the stored data could not be read
					}
					s.stats.errors.Add(1)
					stop = true
				} else if len(data) > 0 {
					rp.RecordBatches = data
					total += len(data)
				} else {
					empty = true
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
			} else {
				rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = hwm, hwm, start
				if req.IsolationLevel == isolationReadCommitted && rp.ErrorCode == codeNone {
					// After Offsets: a marker written since the read
					// moved the HWM past what a wait watches.
					total -= len(rp.RecordBatches)
					if err = c.readCommitted(lg, t.Topic, p, rp); err != nil {
						stop = true
					}
					total += len(rp.RecordBatches)
				}
			}
			if seen != nil {
				// An empty read saw the HWM at the fetch offset: data
				// that came before Offsets ran must still wake the wait.
				after := hwm
				if read && empty {
					after = p.FetchOffset
				}
				*seen = append(*seen, after)
			}
		}
	}
	return resp, total, stop
}

var noRecords = []byte{}
