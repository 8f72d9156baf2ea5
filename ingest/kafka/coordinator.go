package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log/meta"
)

// findCoordinator answers that this server coordinates every group and
// every transactional id. With no GroupHandler, group keys are answered
// COORDINATOR_NOT_AVAILABLE.
func (c *conn) findCoordinator(req *kmsg.FindCoordinatorRequest) kmsg.Response {
	s := c.s
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	code := codeNone
	var msg *string
	switch {
	case req.CoordinatorType == 1: // transaction
	case req.CoordinatorType != 0:
		code, msg = codeInvalidRequest, strp("runnel: unknown coordinator type")
	case s.opts.Groups == nil:
		code, msg = codeCoordinatorNotAvailable, strp("consumer groups are not enabled")
	}
	if code != codeNone {
		s.stats.errors.Add(1)
	}
	if req.Version < 4 {
		resp.ErrorCode, resp.ErrorMessage = code, msg
		if code == codeNone {
			resp.NodeID, resp.Host, resp.Port = s.opts.NodeID, c.advHost, c.advPort
		} else {
			resp.NodeID = -1
		}
		return resp
	}
	for _, k := range req.CoordinatorKeys {
		rc := kmsg.NewFindCoordinatorResponseCoordinator()
		rc.Key = k
		rc.ErrorCode, rc.ErrorMessage = code, msg
		if code == codeNone {
			rc.NodeID, rc.Host, rc.Port = s.opts.NodeID, c.advHost, c.advPort
		} else {
			rc.NodeID = -1
		}
		resp.Coordinators = append(resp.Coordinators, rc)
	}
	return resp
}

// initProducerID hands out a new, never reused producer id with epoch 0;
// a transactional id keeps its producer id and gets the next epoch
// (txn.go).
func (c *conn) initProducerID(req *kmsg.InitProducerIDRequest) kmsg.Response {
	s := c.s
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	if req.TransactionalID != nil {
		c.initTransactionalProducer(req, resp)
		return resp
	}
	id, err := s.pids.next()
	if errors.Is(err, errProducerIDsNotReady) {
		resp.ErrorCode = codeCoordinatorLoadInProgress
		return resp
	}
	if err != nil {
		s.logger.Error("kafka: cannot allocate a producer id", "err", err)
		resp.ErrorCode = codeKafkaStorageError
		s.stats.errors.Add(1)
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}

// Producer ids are reserved in blocks: meta KV bucket "kafka", key
// "producer-id-next" holds the first id not yet reserved (be64). After a
// restart allocation starts there, so an id is never handed out twice.
const (
	pidBucket = "kafka"
	pidKey    = "producer-id-next"
	pidBlock  = 1000
)

// producerIDs allocates producer ids.
type producerIDs struct {
	store *meta.Store
	// floor, when set, is the log's lowest safe id (log.ProducerIDFloor):
	// ids are never handed out below it.
	floor func() (int64, error)
	// mu guards next and limit.
	mu     sync.Mutex
	nextID int64 // next id to hand out
	limit  int64 // first id not reserved in meta
}

func openProducerIDs(store *meta.Store) (*producerIDs, error) {
	p := &producerIDs{store: store, nextID: 1, limit: 1}
	if store == nil {
		return p, nil
	}
	err := store.KVForEach(pidBucket, func(k string, v []byte) error {
		if k == pidKey && len(v) == 8 {
			p.nextID = int64(binary.BigEndian.Uint64(v))
			p.limit = p.nextID
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kafka: read producer id counter: %w", err)
	}
	return p, nil
}

// errProducerIDsNotReady: the log cannot say yet which ids are safe (a
// restore runs); answered with the retriable COORDINATOR_LOAD_IN_PROGRESS.
var errProducerIDsNotReady = errors.New("kafka: producer ids not ready")

func (p *producerIDs) next() (int64, error) {
	var floor int64
	if p.floor != nil {
		f, err := p.floor()
		if err != nil {
			return 0, fmt.Errorf("%w: %v", errProducerIDsNotReady, err)
		}
		floor = f
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nextID < floor {
		p.nextID = floor
	}
	if p.nextID >= p.limit {
		limit := p.nextID + pidBlock
		if p.store != nil {
			v := binary.BigEndian.AppendUint64(nil, uint64(limit))
			if err := p.store.KVApply(pidBucket, []meta.KVWrite{{Key: pidKey, Value: v}}); err != nil {
				return 0, err
			}
		}
		p.limit = limit
	}
	id := p.nextID
	p.nextID++
	return id, nil
}
