package kafka

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel/runnel/ingest/produce"
	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/meta"
)

// The transaction coordinator (Kafka's TransactionCoordinator, KIP-98):
// one per server, for every transactional id. Its state is kept in meta
// (bucket "kafka-txn", one JSON entry per transactional id, written and
// synced before each answer), so a kill -9 loses nothing a client was told:
// at open every transaction is back in its state, one that was being
// committed or aborted (Prepare*) is completed, and an open one goes on
// until its producer ends it or its timeout aborts it.
//
// A transaction's end writes a marker (a control batch) into each of its
// partitions, with the producer's id and epoch, then (commit) stores the
// offsets TxnOffsetCommit staged for its groups. Fencing bumps the epoch:
// the abort markers then carry the new epoch, and the log refuses any
// batch of an older one in those partitions.

// Transaction states, named as Kafka names them (kafka-transactions shows
// them).
const (
	txnEmpty          = "Empty"
	txnOngoing        = "Ongoing"
	txnPrepareCommit  = "PrepareCommit"
	txnPrepareAbort   = "PrepareAbort"
	txnCompleteCommit = "CompleteCommit"
	txnCompleteAbort  = "CompleteAbort"
)

// Kafka error codes of the transaction APIs. Never change.
const (
	codeInvalidTxnState           int16 = 48
	codeInvalidProducerIDMapping  int16 = 49
	codeInvalidTransactionTimeout int16 = 50
	codeConcurrentTransactions    int16 = 51
	codeProducerFenced            int16 = 90
	codeTransactionalIDNotFound   int16 = 105
)

const (
	txnBucket = "kafka-txn"
	// maxTxnTimeout is Kafka's transaction.max.timeout.ms default.
	maxTxnTimeout = 15 * time.Minute
	// txnTick is how soon an unfinished end is retried (and an id busy
	// during a sweep looked at again).
	txnTick = time.Second
	// txnIDExpiry: a transactional id without a transaction and unused
	// this long is forgotten (Kafka's transactional.id.expiration.ms
	// default), so ids that come and go do not pile up in meta.
	txnIDExpiry = 7 * 24 * time.Hour
)

// txnTP names a partition of a transaction.
type txnTP struct {
	Topic     string `json:"t"`
	Partition int32  `json:"p"`
}

// txnOffset is an offset staged by TxnOffsetCommit.
type txnOffset struct {
	txnTP
	Offset   int64  `json:"o"`
	Metadata string `json:"m,omitempty"`
}

// txnRecord is a transactional id's stored state (the JSON value in meta).
type txnRecord struct {
	PID        int64                  `json:"pid"`
	Epoch      int16                  `json:"epoch"`
	TimeoutMs  int32                  `json:"timeout_ms"`
	State      string                 `json:"state"`
	StartMs    int64                  `json:"start_ms"`             // when it turned Ongoing
	UpdatedMs  int64                  `json:"updated_ms,omitempty"` // last stored change
	Partitions []txnTP                `json:"partitions,omitempty"`
	Groups     []string               `json:"groups,omitempty"`
	Offsets    map[string][]txnOffset `json:"offsets,omitempty"` // group → staged offsets
}

// txnState is one transactional id.
type txnState struct {
	id string
	// mu serializes the operations on this id (held through an end's
	// marker writes) and guards rec.
	mu  sync.Mutex
	rec txnRecord
	// pmu guards inflight and idle: appends of the transaction in flight
	// (checkProduce to their completion) and a channel closed when they
	// drop to 0. Apart from mu: the completions run on the log's
	// goroutine, which must never wait for mu.
	pmu      sync.Mutex
	inflight int
	idle     chan struct{}
}

// TxnStats are the transaction coordinator's counters.
type TxnStats struct {
	Open      int    // transactions open now
	Commits   uint64 // transactions committed (markers written)
	Aborts    uint64 // transactions aborted, timeouts and fencing included
	TimedOut  uint64 // transactions aborted by their timeout
	EndErrors uint64 // ends whose markers or state could not be written (retried)
}

// txnCoordinator holds every transactional id.
type txnCoordinator struct {
	s     *Server
	store *meta.Store

	commits, aborts, timedOut, endErrors atomic.Uint64

	// mu guards ids (the map, not the states).
	mu  sync.Mutex
	ids map[string]*txnState

	// kick wakes run early; armed is the unix ms run sleeps until
	// (MaxInt64: no timer, MinInt64: sweeping); changed is set by every
	// stored change (see run and noteDue).
	kick    chan struct{}
	armed   atomic.Int64
	changed atomic.Bool
}

func openTxnCoordinator(s *Server, store *meta.Store) (*txnCoordinator, error) {
	t := &txnCoordinator{s: s, store: store, ids: map[string]*txnState{}, kick: make(chan struct{}, 1)}
	if store == nil {
		return t, nil
	}
	err := store.KVForEach(txnBucket, func(k string, v []byte) error {
		st := &txnState{id: k}
		if err := json.Unmarshal(v, &st.rec); err != nil {
			return fmt.Errorf("transactional id %q: %w", k, err)
		}
		t.ids[k] = st
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kafka: read transaction state: %w", err)
	}
	return t, nil
}

// run completes unfinished ends and aborts timed-out transactions until
// the server closes. It sleeps until the earliest of those is due (a
// transaction's timeout, an end to retry, an id's expiry) and sleeps
// without a timer while no transactional id exists, so an idle server
// takes no wakeup for it; a stored change due earlier than the armed
// time wakes it (noteDue).
func (t *txnCoordinator) run(closing <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		t.armed.Store(math.MinInt64) // sweeping: changes are seen by changed
		t.changed.Store(false)
		next := t.sweep()
		t.armed.Store(next)
		if t.changed.Load() {
			// A change during the sweep, after the sweep may have
			// looked at its id: look again a tick later.
			if soon := time.Now().UnixMilli() + txnTick.Milliseconds(); soon < next {
				next = soon
				t.armed.Store(next)
			}
		}
		var fire <-chan time.Time
		if next != math.MaxInt64 {
			timer.Reset(time.Duration(next-time.Now().UnixMilli()) * time.Millisecond)
			fire = timer.C
		}
		select {
		case <-closing:
			return
		case <-fire:
		case <-t.kick:
			timer.Stop()
		}
	}
}

// noteDue wakes run when st's stored state is due before the time run
// sleeps until. Called after every stored change (persistLocked).
func (t *txnCoordinator) noteDue(st *txnState) {
	t.changed.Store(true)
	due := txnDueMs(&st.rec, time.Now().UnixMilli())
	if due != math.MaxInt64 && due < t.armed.Load() {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
}

// txnDueMs is when the sweep must next look at r (unix ms; MaxInt64:
// never): an end to complete a tick from now, an open transaction at its
// timeout, an id without a transaction at its expiry.
func txnDueMs(r *txnRecord, now int64) int64 {
	switch {
	case r.State == txnPrepareCommit || r.State == txnPrepareAbort:
		return now + txnTick.Milliseconds()
	case r.State == txnOngoing:
		return r.StartMs + int64(r.TimeoutMs) + 1
	case r.UpdatedMs > 0:
		return r.UpdatedMs + txnIDExpiry.Milliseconds() + 1
	}
	return math.MaxInt64
}

// sweep drives every transaction that needs the coordinator: ends that
// did not complete (a failed marker write, a restart) and open ones past
// their timeout (aborted with the epoch bumped, which fences the
// producer). It returns when the next of them is due (unix ms; MaxInt64:
// none); one it could not finish (an I/O error) or an id busy with an
// operation is due again a tick later.
func (t *txnCoordinator) sweep() int64 {
	t.mu.Lock()
	all := make([]*txnState, 0, len(t.ids))
	for _, st := range t.ids {
		all = append(all, st)
	}
	t.mu.Unlock()
	now := time.Now().UnixMilli()
	retry := now + txnTick.Milliseconds()
	next := int64(math.MaxInt64)
	for _, st := range all {
		if !st.mu.TryLock() {
			next = min(next, retry) // busy: its operation completes it
			continue
		}
		r := &st.rec
		switch {
		case r.State == txnPrepareCommit || r.State == txnPrepareAbort:
			if err := t.completeLocked(st, produce.AcksLeader); err != nil {
				t.s.logger.Warn("kafka: transaction end not complete; retrying", "transactional_id", st.id, "err", err)
			}
		case r.State != txnOngoing && r.UpdatedMs > 0 && now-r.UpdatedMs > txnIDExpiry.Milliseconds():
			t.expireLocked(st)
		case r.State == txnOngoing && now-r.StartMs > int64(r.TimeoutMs):
			t.s.logger.Info("kafka: transaction timed out; aborting", "transactional_id", st.id, "producer_id", r.PID, "timeout_ms", r.TimeoutMs)
			t.timedOut.Add(1)
			if err := t.fenceAbortLocked(st, produce.AcksLeader); err != nil {
				t.s.logger.Warn("kafka: abort of timed-out transaction not complete; retrying", "transactional_id", st.id, "err", err)
			}
		}
		due := txnDueMs(r, now)
		if due <= now {
			due = retry // a timed-out transaction whose abort failed
		}
		next = min(next, due)
		st.mu.Unlock()
	}
	return next
}

// expireLocked forgets an idle transactional id (its producer id is not
// reused: a later init gets a new one).
func (t *txnCoordinator) expireLocked(st *txnState) {
	if t.store != nil {
		if err := t.store.KVApply(txnBucket, []meta.KVWrite{{Key: st.id}}); err != nil {
			t.s.logger.Warn("kafka: cannot forget an expired transactional id", "transactional_id", st.id, "err", err)
			return
		}
	}
	t.mu.Lock()
	if t.ids[st.id] == st {
		delete(t.ids, st.id)
	}
	t.mu.Unlock()
	st.rec = txnRecord{PID: -1, Epoch: -1, State: txnEmpty} // a holder of st sees a fresh id
}

// lock returns the state of id locked (its mu), creating it when create
// is set (nil when it does not exist and create is not set); never one
// the sweep expired meanwhile.
func (t *txnCoordinator) lock(id string, create bool) *txnState {
	for {
		st := t.get(id, create)
		if st == nil {
			return nil
		}
		st.mu.Lock()
		t.mu.Lock()
		live := t.ids[id] == st
		t.mu.Unlock()
		if live {
			return st
		}
		st.mu.Unlock()
	}
}

// get returns the state of id, creating it when create is set (nil when
// it does not exist and create is not set).
func (t *txnCoordinator) get(id string, create bool) *txnState {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.ids[id]
	if st == nil && create {
		st = &txnState{id: id, rec: txnRecord{PID: -1, Epoch: -1, State: txnEmpty}}
		t.ids[id] = st
	}
	return st
}

// persistLocked writes st durably (bbolt syncs its commit).
// The sweep is told of the change (noteDue), stored or not.
func (t *txnCoordinator) persistLocked(st *txnState) error {
	defer t.noteDue(st)
	if t.store == nil {
		return nil
	}
	st.rec.UpdatedMs = time.Now().UnixMilli()
	v, err := json.Marshal(&st.rec)
	if err != nil {
		return err
	}
	return t.store.KVApply(txnBucket, []meta.KVWrite{{Key: st.id, Value: v}})
}

// errFenced is an old epoch: Kafka answers PRODUCER_FENCED from the
// versions that know it and INVALID_PRODUCER_EPOCH before.
func fencedCode(version, fromVersion int16) int16 {
	if version >= fromVersion {
		return codeProducerFenced
	}
	return codeInvalidProducerEpoch
}

// checkProducerLocked checks the producer id and epoch a request names.
func checkProducerLocked(st *txnState, pid int64, epoch int16, version, fencedFrom int16) int16 {
	switch {
	case st.rec.PID != pid:
		return codeInvalidProducerIDMapping
	case epoch < st.rec.Epoch:
		return fencedCode(version, fencedFrom)
	case epoch > st.rec.Epoch:
		return codeInvalidProducerEpoch
	}
	return codeNone
}

// initProducer serves InitProducerId for a transactional id: the id keeps
// its producer id across producers; each init bumps the epoch (fencing the
// previous producer) after aborting its open transaction.
func (t *txnCoordinator) initProducer(id string, timeoutMs int32, pid int64, epoch int16, version int16) (int64, int16, int16) {
	if timeoutMs <= 0 || time.Duration(timeoutMs)*time.Millisecond > maxTxnTimeout {
		return -1, -1, codeInvalidTransactionTimeout
	}
	st := t.lock(id, true)
	defer st.mu.Unlock()
	r := &st.rec
	// KIP-360: a producer that names its id and epoch may only bump
	// its own (current) epoch. An id this coordinator does not know
	// (never seen, or expired) starts afresh.
	if pid >= 0 && r.PID >= 0 && (pid != r.PID || epoch != r.Epoch) {
		if pid == r.PID && epoch < r.Epoch {
			return -1, -1, fencedCode(version, 4)
		}
		return -1, -1, codeInvalidProducerIDMapping
	}
	switch r.State {
	case txnPrepareCommit, txnPrepareAbort:
		if err := t.completeLocked(st, produce.AcksAll); err != nil {
			t.s.logger.Warn("kafka: transaction end not complete", "transactional_id", id, "err", err)
			return -1, -1, codeConcurrentTransactions
		}
	case txnOngoing:
		if err := t.fenceAbortLocked(st, produce.AcksAll); err != nil {
			t.s.logger.Warn("kafka: abort of the fenced producer's transaction not complete", "transactional_id", id, "err", err)
			return -1, -1, codeConcurrentTransactions
		}
	}
	old := *r
	if r.PID < 0 || r.Epoch >= 1<<15-2 {
		np, err := t.s.pids.next()
		if errors.Is(err, errProducerIDsNotReady) {
			*r = old
			return -1, -1, codeCoordinatorLoadInProgress
		}
		if err != nil {
			t.s.logger.Error("kafka: cannot allocate a producer id", "err", err)
			return -1, -1, codeKafkaStorageError
		}
		r.PID, r.Epoch = np, 0
	} else {
		r.Epoch++
	}
	r.TimeoutMs = timeoutMs
	if r.State == txnEmpty || r.State == txnCompleteCommit || r.State == txnCompleteAbort {
		r.State = txnEmpty
	}
	if err := t.persistLocked(st); err != nil {
		*r = old
		t.s.logger.Error("kafka: cannot store transaction state", "transactional_id", id, "err", err)
		return -1, -1, codeKafkaStorageError
	}
	return r.PID, r.Epoch, codeNone
}

// beginLocked moves an Empty or completed transaction to Ongoing.
func beginLocked(r *txnRecord) {
	if r.State != txnOngoing {
		r.State = txnOngoing
		r.StartMs = time.Now().UnixMilli()
		r.Partitions, r.Groups, r.Offsets = nil, nil, nil
	}
}

// stateForAdd checks that a transaction may take partitions or groups.
func stateForAdd(r *txnRecord) int16 {
	switch r.State {
	case txnPrepareCommit, txnPrepareAbort:
		return codeConcurrentTransactions
	}
	return codeNone
}

// addPartitions serves AddPartitionsToTxn (v0-v3): code per partition.
func (t *txnCoordinator) addPartitions(id string, pid int64, epoch int16, version int16, tps []txnTP) []int16 {
	codes := make([]int16, len(tps))
	fill := func(c int16) []int16 {
		for i := range codes {
			codes[i] = c
		}
		return codes
	}
	st := t.lock(id, false)
	if st == nil {
		return fill(codeInvalidProducerIDMapping)
	}
	defer st.mu.Unlock()
	r := &st.rec
	if c := checkProducerLocked(st, pid, epoch, version, 2); c != codeNone {
		return fill(c)
	}
	if c := stateForAdd(r); c != codeNone {
		return fill(c)
	}
	// Unknown partitions fail the whole request, as in Kafka.
	bad := false
	for i, tp := range tps {
		ti, err := t.s.log.Topic(tp.Topic)
		if err != nil || tp.Partition < 0 || int(tp.Partition) >= len(ti.Partitions) {
			codes[i] = codeUnknownTopicOrPartition
			bad = true
		}
	}
	if bad {
		for i := range codes {
			if codes[i] == codeNone {
				codes[i] = codeOperationNotAttempted
			}
		}
		return codes
	}
	old := cloneRecord(r)
	beginLocked(r)
	for _, tp := range tps {
		if !containsTP(r.Partitions, tp) {
			r.Partitions = append(r.Partitions, tp)
		}
	}
	if err := t.persistLocked(st); err != nil {
		st.rec = old
		t.s.logger.Error("kafka: cannot store transaction state", "transactional_id", id, "err", err)
		return fill(codeKafkaStorageError)
	}
	return codes
}

const codeOperationNotAttempted int16 = 55

func containsTP(l []txnTP, tp txnTP) bool {
	for _, x := range l {
		if x == tp {
			return true
		}
	}
	return false
}

func cloneRecord(r *txnRecord) txnRecord {
	c := *r
	c.Partitions = append([]txnTP(nil), r.Partitions...)
	c.Groups = append([]string(nil), r.Groups...)
	if r.Offsets != nil {
		c.Offsets = make(map[string][]txnOffset, len(r.Offsets))
		for g, o := range r.Offsets {
			c.Offsets[g] = append([]txnOffset(nil), o...)
		}
	}
	return c
}

// addOffsets serves AddOffsetsToTxn: the group's offsets join the
// transaction.
func (t *txnCoordinator) addOffsets(id string, pid int64, epoch int16, version int16, group string) int16 {
	st := t.lock(id, false)
	if st == nil {
		return codeInvalidProducerIDMapping
	}
	defer st.mu.Unlock()
	r := &st.rec
	if c := checkProducerLocked(st, pid, epoch, version, 2); c != codeNone {
		return c
	}
	if c := stateForAdd(r); c != codeNone {
		return c
	}
	old := cloneRecord(r)
	beginLocked(r)
	if !containsString(r.Groups, group) {
		r.Groups = append(r.Groups, group)
	}
	if err := t.persistLocked(st); err != nil {
		st.rec = old
		t.s.logger.Error("kafka: cannot store transaction state", "transactional_id", id, "err", err)
		return codeKafkaStorageError
	}
	return codeNone
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// commitOffsets serves TxnOffsetCommit: the offsets are staged, and
// become the group's committed offsets when the transaction commits.
func (t *txnCoordinator) commitOffsets(id string, pid int64, epoch int16, version int16, group string, offs []txnOffset) int16 {
	st := t.lock(id, false)
	if st == nil {
		return codeInvalidProducerIDMapping
	}
	defer st.mu.Unlock()
	r := &st.rec
	if c := checkProducerLocked(st, pid, epoch, version, 3); c != codeNone {
		return c
	}
	if r.State != txnOngoing || !containsString(r.Groups, group) {
		return codeInvalidTxnState
	}
	old := cloneRecord(r)
	if r.Offsets == nil {
		r.Offsets = map[string][]txnOffset{}
	}
	staged := r.Offsets[group]
	for _, o := range offs {
		replaced := false
		for i := range staged {
			if staged[i].txnTP == o.txnTP {
				staged[i], replaced = o, true
			}
		}
		if !replaced {
			staged = append(staged, o)
		}
	}
	r.Offsets[group] = staged
	if err := t.persistLocked(st); err != nil {
		st.rec = old
		t.s.logger.Error("kafka: cannot store transaction state", "transactional_id", id, "err", err)
		return codeKafkaStorageError
	}
	return codeNone
}

// endTxn serves EndTxn.
func (t *txnCoordinator) endTxn(id string, pid int64, epoch int16, version int16, commit bool) int16 {
	st := t.lock(id, false)
	if st == nil {
		return codeInvalidProducerIDMapping
	}
	defer st.mu.Unlock()
	r := &st.rec
	if c := checkProducerLocked(st, pid, epoch, version, 2); c != codeNone {
		return c
	}
	switch r.State {
	case txnOngoing:
	case txnCompleteCommit:
		if commit {
			return codeNone // a retry of an end that completed
		}
		return codeInvalidTxnState
	case txnCompleteAbort:
		if !commit {
			return codeNone
		}
		return codeInvalidTxnState
	case txnPrepareCommit, txnPrepareAbort:
		if (r.State == txnPrepareCommit) != commit {
			return codeInvalidTxnState
		}
		if err := t.completeLocked(st, produce.AcksAll); err != nil {
			return codeConcurrentTransactions
		}
		return codeNone
	default: // Empty
		if !commit {
			return codeNone // nothing to abort
		}
		return codeInvalidTxnState
	}
	r.State = txnPrepareAbort
	if commit {
		r.State = txnPrepareCommit
	}
	if err := t.persistLocked(st); err != nil {
		r.State = txnOngoing
		t.s.logger.Error("kafka: cannot store transaction state", "transactional_id", id, "err", err)
		return codeKafkaStorageError
	}
	if err := t.completeLocked(st, produce.AcksAll); err != nil {
		// Decided and stored: the sweep completes it; the client's
		// retry waits for that.
		t.s.logger.Warn("kafka: transaction end not complete; retrying", "transactional_id", id, "err", err)
		return codeConcurrentTransactions
	}
	return codeNone
}

// fenceAbortLocked aborts an open transaction with the epoch bumped, so
// its producer (a zombie, or one that let the timeout pass) is fenced.
func (t *txnCoordinator) fenceAbortLocked(st *txnState, acks produce.Acks) error {
	r := &st.rec
	old := cloneRecord(r)
	if r.Epoch < 1<<15-2 {
		r.Epoch++
	}
	r.State = txnPrepareAbort
	if err := t.persistLocked(st); err != nil {
		st.rec = old
		return err
	}
	return t.completeLocked(st, acks)
}

// completeLocked finishes a Prepare* transaction: markers into every
// partition (durable at level acks), the staged offsets stored on commit,
// then the Complete* state stored. A client's EndTxn or InitProducerId
// writes them acks=all (on every in-sync copy of the site before the
// answer, as the transaction's records were); the sweep (timeouts, ends
// retried or completed at start, when the site's copies may not be
// back) writes them durable here, and the copies fetch them.
func (t *txnCoordinator) completeLocked(st *txnState, acks produce.Acks) error {
	r := &st.rec
	commit := r.State == txnPrepareCommit
	st.waitProducedLocked()
	var wg sync.WaitGroup
	errs := make([]error, len(r.Partitions))
	for i, tp := range r.Partitions {
		marker := batch.Marker(r.PID, r.Epoch, commit, time.Now().UnixMilli())
		wg.Add(1)
		t.s.produce.AppendAsync(tp.Topic, tp.Partition, marker, acks, func(_ int64, err error) {
			if errors.Is(err, log.ErrUnknownTopic) || errors.Is(err, log.ErrUnknownPartition) {
				err = nil // deleted meanwhile: nothing left to mark
			}
			errs[i] = err
			wg.Done()
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.endErrors.Add(1)
		return fmt.Errorf("write transaction markers: %w", err)
	}
	if commit && t.store != nil {
		for g, offs := range r.Offsets {
			m := make(map[meta.TopicPartition]meta.GroupOffset, len(offs))
			for _, o := range offs {
				m[meta.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = meta.GroupOffset{Offset: o.Offset, Metadata: o.Metadata}
			}
			if err := t.store.CommitOffsetsBatched(g, m); err != nil {
				return fmt.Errorf("store offsets of group %s: %w", g, err)
			}
		}
	}
	old := cloneRecord(r)
	r.State = txnCompleteAbort
	if commit {
		r.State = txnCompleteCommit
	}
	r.Partitions, r.Groups, r.Offsets = nil, nil, nil
	if err := t.persistLocked(st); err != nil {
		st.rec = old
		t.endErrors.Add(1)
		return err
	}
	if commit {
		t.commits.Add(1)
	} else {
		t.aborts.Add(1)
	}
	return nil
}

// stats returns the counters and the open transactions.
func (t *txnCoordinator) stats() TxnStats {
	return TxnStats{
		Open:      len(t.list([]string{txnOngoing, txnPrepareCommit, txnPrepareAbort}, nil, 0)),
		Commits:   t.commits.Load(),
		Aborts:    t.aborts.Load(),
		TimedOut:  t.timedOut.Load(),
		EndErrors: t.endErrors.Load(),
	}
}

// list serves ListTransactions.
func (t *txnCoordinator) list(states []string, pids []int64, minDurationMs int64) []txnRecordWithID {
	t.mu.Lock()
	all := make([]*txnState, 0, len(t.ids))
	for _, st := range t.ids {
		all = append(all, st)
	}
	t.mu.Unlock()
	now := time.Now().UnixMilli()
	var out []txnRecordWithID
	for _, st := range all {
		st.mu.Lock()
		r := cloneRecord(&st.rec)
		st.mu.Unlock()
		if r.PID < 0 {
			continue
		}
		if len(states) > 0 && !containsString(states, r.State) {
			continue
		}
		if len(pids) > 0 && !containsInt64(pids, r.PID) {
			continue
		}
		if minDurationMs > 0 && (r.State != txnOngoing || now-r.StartMs < minDurationMs) {
			continue
		}
		out = append(out, txnRecordWithID{id: st.id, rec: r})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

type txnRecordWithID struct {
	id  string
	rec txnRecord
}

func containsInt64(l []int64, v int64) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

// pendingOffsets returns the partitions of group whose offsets an
// unfinished transaction has staged (nil when none).
func (t *txnCoordinator) pendingOffsets(group string) map[txnTP]bool {
	t.mu.Lock()
	all := make([]*txnState, 0, len(t.ids))
	for _, st := range t.ids {
		all = append(all, st)
	}
	t.mu.Unlock()
	var out map[txnTP]bool
	for _, st := range all {
		st.mu.Lock()
		for _, o := range st.rec.Offsets[group] {
			if out == nil {
				out = map[txnTP]bool{}
			}
			out[o.txnTP] = true
		}
		st.mu.Unlock()
	}
	return out
}

// describe returns a copy of id's state (ok false: unknown).
func (t *txnCoordinator) describe(id string) (txnRecord, bool) {
	st := t.lock(id, false)
	if st == nil {
		return txnRecord{}, false
	}
	defer st.mu.Unlock()
	if st.rec.PID < 0 {
		return txnRecord{}, false
	}
	return cloneRecord(&st.rec), true
}

// checkProduce checks a transactional produce of records (the first
// batch's producer id and epoch) to a partition against the coordinator:
// the producer's current epoch, an open transaction holding the partition.
// When it passes, the append is counted in flight until release is
// called (once it completed): the transaction's end writes its markers
// only after its appends, so no batch of it lands after its marker.
func (t *txnCoordinator) checkProduce(id, topic string, partition int32, records []byte) (code int16, msg string, release func()) {
	h, err := batch.ParseHeader(records)
	if err != nil {
		return codeCorruptMessage, "runnel: " + err.Error(), nil
	}
	st := t.lock(id, false)
	if st == nil {
		return codeInvalidProducerIDMapping, "runnel: unknown transactional id " + id, nil
	}
	defer st.mu.Unlock()
	r := &st.rec
	switch {
	case h.ProducerID != r.PID:
		return codeInvalidProducerIDMapping, "runnel: producer id does not match the transactional id", nil
	case h.ProducerEpoch < r.Epoch:
		return codeInvalidProducerEpoch, "runnel: producer fenced by a newer epoch", nil
	case h.ProducerEpoch > r.Epoch:
		return codeInvalidProducerEpoch, "runnel: producer epoch unknown to the coordinator", nil
	case r.State != txnOngoing || !containsTP(r.Partitions, txnTP{topic, partition}):
		return codeInvalidTxnState, "runnel: partition " + topic + "/" + fmt.Sprint(partition) + " is not part of the open transaction (AddPartitionsToTxn first)", nil
	}
	st.pmu.Lock()
	st.inflight++
	st.pmu.Unlock()
	return codeNone, "", st.produced
}

// checkTxnAttrs refuses, in a client's produce, control batches (only the
// coordinator writes markers), transactional batches without a
// transactional id (no coordinator would ever end them: read_committed
// readers would stop there for good) and, with one, batches that are not
// transactional or more than one batch per partition (as Kafka: the
// coordinator checks the first batch's producer id and epoch, so a second
// batch could carry another producer's and open a transaction nothing
// ends). It returns the reason, or "".
func checkTxnAttrs(records []byte, transactional bool) string {
	n := 0
	for len(records) >= batch.HeaderSize {
		h, err := batch.ParseHeader(records)
		if err != nil || h.Size() > len(records) {
			return "" // the log's validation answers it
		}
		switch {
		case h.Control():
			return "runnel: a client may not produce control batches"
		case h.Transactional() && !transactional:
			return "runnel: a transactional batch needs the produce request's transactional id"
		case !h.Transactional() && transactional:
			return "runnel: a transactional produce holds a batch without the transactional attribute"
		}
		if n++; transactional && n > 1 {
			return "runnel: a transactional produce holds one batch per partition"
		}
		records = records[h.Size():]
	}
	return ""
}

// produced ends an append counted by checkProduce.
func (st *txnState) produced() {
	st.pmu.Lock()
	defer st.pmu.Unlock()
	if st.inflight--; st.inflight == 0 && st.idle != nil {
		close(st.idle)
		st.idle = nil
	}
}

// waitProducedLocked waits until no append checked by checkProduce is in
// flight (st.mu held: no new one can start).
func (st *txnState) waitProducedLocked() {
	for {
		st.pmu.Lock()
		if st.inflight == 0 {
			st.pmu.Unlock()
			return
		}
		if st.idle == nil {
			st.idle = make(chan struct{})
		}
		idle := st.idle
		st.pmu.Unlock()
		<-idle
	}
}
