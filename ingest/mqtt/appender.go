package mqtt

import (
	"fmt"
	"sync"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

const (
	// maxAppendsInFlight: with a log that cannot feed its commits, how
	// many batches one partition may have handed to the log and not yet
	// seen complete. Messages arriving meanwhile are coalesced into the
	// next batch, so a busy partition writes few large batches and a
	// quiet one writes each message at once.
	maxAppendsInFlight = 2
	// targetBatchBytes closes a batch early so no batch nears the log's
	// MaxBatchBytes (default 1 MiB); a larger single message goes alone.
	targetBatchBytes = 256 << 10
)

// waiter is told when the record it added is durable or failed.
type waiter interface {
	finish(err error)
}

// tp names one partition (and how its appends are acknowledged: all, see
// acks.go).
type tp struct {
	topic     string
	partition int32
	all       bool
}

// appender coalesces records for one partition into RecordBatches and hands
// them to log.AppendAsync in order. With a log that can feed its commits
// (log.CommitFeeder, the real log) the open batch is handed over when the
// log's next commit starts: it holds every record that arrived until then
// (an idle log starts that commit at once), and a busy partition writes
// one batch per commit. Other logs get it at once while fewer than
// maxAppendsInFlight batches are in flight.
type appender struct {
	b  *Broker
	tp tp

	mu sync.Mutex
	// guarded by mu:
	bld      batch.Builder
	size     int      // approximate encoded bytes in bld
	waiters  []waiter // one per record in bld (nil for no-ack records)
	feeding  bool     // a FeedNextCommit of a.feed is pending
	inflight int      // batches handed to the log, not yet completed
}

// limitEvery is how often the broker reads a topic's largest batch again
// (an operator may change max.message.bytes).
const limitEvery = 10 * time.Second

// topicLimit is a topic's largest batch as last read.
type topicLimit struct {
	bytes int   // max.message.bytes (0: the topic could not be read)
	at    int64 // when it was read (unix nanos)
}

// topicLimit returns topic's largest accepted batch, read from the log at
// most every limitEvery for all the topic's partitions together.
func (b *Broker) topicLimit(topic string, now int64) int {
	if v, ok := b.limits.Load(topic); ok && now-v.(topicLimit).at < int64(limitEvery) {
		return v.(topicLimit).bytes
	}
	tl := topicLimit{at: now}
	if ti, err := b.produce.Log().Topic(topic); err == nil {
		tl.bytes = int(ti.Config.MaxBatchBytes)
	}
	b.limits.Store(topic, tl)
	return tl.bytes
}

// add appends one record; w (may be nil) is finished when it is durable.
// independent: the record's sender is not waiting for an acknowledgement
// (see log.CommitFeeder.Gathering).
//
// A record that would not fit the topic's largest batch
// (max.message.bytes) even alone fails at once with log.ErrBatchTooLarge,
// and one that would not fit beside the open batch closes it first: the
// records of other clients coalesced with it would otherwise fail with it.
func (a *appender) add(ts int64, key, value []byte, headers []batch.RecordHeader, w waiter, independent, more bool) (deferred bool) {
	sz := len(key) + len(value) + headersSize(headers) + 24
	f := a.b.feeder
	a.mu.Lock()
	if lim := a.b.topicLimit(a.tp.topic, time.Now().UnixNano()); lim > 0 {
		if bound := batch.RecordBound(key, value, headers); a.bld.Size()+bound > lim {
			if alone := batch.HeaderSize + bound; alone > lim && tooLarge(ts, key, value, headers, lim) {
				a.mu.Unlock()
				if w != nil {
					w.finish(fmt.Errorf("%w: a message of %d bytes in topic %s (max.message.bytes %d)", log.ErrBatchTooLarge, len(value), a.tp.topic, lim))
				}
				return false
			}
			if a.bld.Len() > 0 {
				a.flushLocked() // it goes in a batch of its own
			}
		}
	}
	if a.bld.Len() > 0 && a.size+sz > targetBatchBytes {
		a.flushLocked() // close the full batch before the commit starts
	}
	a.bld.Add(ts, key, value, headers)
	a.size += sz
	a.waiters = append(a.waiters, w)
	switch {
	case a.feeding:
	case f != nil && more:
		deferred = true
	case f != nil && f.FeedNextCommit(a.tp.topic, a.tp.partition, a.feed):
		a.feeding = true
	default:
		f = nil
		if a.inflight < maxAppendsInFlight || a.size >= targetBatchBytes {
			a.flushLocked()
		}
	}
	a.mu.Unlock()
	if f != nil {
		f.Gathering(sz, independent)
	}
	return deferred
}

// tooLarge reports whether one record, alone in a batch, is larger than
// lim bytes (encoded exactly: RecordBound only bounds it).
func tooLarge(ts int64, key, value []byte, headers []batch.RecordHeader, lim int) bool {
	var b batch.Builder
	b.Add(ts, key, value, headers)
	return b.Size() > lim
}

// kick registers the feed of an open batch whose registration add
// deferred.
func (a *appender) kick() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.feeding || a.bld.Len() == 0 {
		return
	}
	if a.b.feeder.FeedNextCommit(a.tp.topic, a.tp.partition, a.feed) {
		a.feeding = true
	} else {
		a.flushLocked()
	}
}

// feed hands the open batch to the log's commit that is about to start.
func (a *appender) feed() {
	a.mu.Lock()
	a.feeding = false
	a.flushLocked()
	a.mu.Unlock()
}

// flushLocked hands the open batch to the log. Called with mu held, so the
// order of AppendAsync calls is the order of records.
func (a *appender) flushLocked() {
	if a.bld.Len() == 0 {
		return
	}
	data := a.bld.Bytes()
	ws := a.waiters
	a.bld.Reset()
	a.size = 0
	a.waiters = nil
	a.inflight++
	a.b.stats.batches.Add(1)
	a.b.appendsInFlight.Add(1)
	a.countInLog(ws, 1)
	start := time.Now()
	a.hand(data, func(_ int64, err error) {
		// Never work here: the log's goroutine must not block, and the
		// log may even call done synchronously.
		a.b.completions.push(completion{app: a, waiters: ws, err: err, start: start})
	})
}

// completed runs on the completion goroutine after a batch finished.
func (a *appender) completed(ws []waiter, err error, start time.Time) {
	if !a.tp.all {
		a.b.noteCommit(time.Since(start))
	}
	a.countInLog(ws, -1)
	for _, w := range ws {
		if w != nil {
			w.finish(err)
		}
	}
	a.mu.Lock()
	a.inflight--
	if !a.feeding && a.inflight < maxAppendsInFlight {
		a.flushLocked() // a log that cannot feed its commits
	}
	a.mu.Unlock()
	a.b.appendsInFlight.Add(-1)
}

// countInLog adds d to the in-log count of the senders of the QoS 1/2
// records among ws (session.inLog, for the reply hold). Routes with acks
// "all" are left out: their completion waits for the site's copies, not
// for one commit.
func (a *appender) countInLog(ws []waiter, d int64) {
	if a.tp.all {
		return
	}
	for _, w := range ws {
		if p, ok := w.(*pending); ok && p.pk.FixedHeader.Qos > 0 {
			p.s.inLog.Add(d)
		}
	}
}

// completion is one finished AppendAsync.
type completion struct {
	app     *appender
	waiters []waiter
	err     error
	start   time.Time // when the batch was handed to the log
}

// completionQueue is an unbounded queue from log goroutines (which must
// never block) to the broker's completion goroutine.
type completionQueue struct {
	mu    sync.Mutex
	items []completion // guarded by mu
	wake  chan struct{}
}

func newCompletionQueue() *completionQueue {
	return &completionQueue{wake: make(chan struct{}, 1)}
}

func (q *completionQueue) push(c completion) {
	q.mu.Lock()
	q.items = append(q.items, c)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run processes completions until stop is closed and the queue is empty
// with nothing in flight.
func (q *completionQueue) run(stop <-chan struct{}, inflight func() int64) {
	var batch []completion
	for {
		q.mu.Lock()
		batch, q.items = q.items, batch[:0]
		q.mu.Unlock()
		for i := range batch {
			c := &batch[i]
			c.app.completed(c.waiters, c.err, c.start)
			*c = completion{}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-q.wake:
		case <-stop:
			if inflight() == 0 {
				q.mu.Lock()
				n := len(q.items)
				q.mu.Unlock()
				if n == 0 {
					return
				}
			}
			// Keep draining: the log still owes completions.
			select {
			case <-q.wake:
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// partitions returns the partition count of topic, creating the topic with
// the log's defaults when it does not exist (the produce path shared with
// Kafka and HTTP).
func (b *Broker) partitions(topic string) (int32, error) {
	return b.produce.Topic(topic, true)
}

// appenderFor returns the appender of one partition.
func (b *Broker) appenderFor(t tp) *appender {
	b.appMu.RLock()
	a := b.apps[t]
	b.appMu.RUnlock()
	if a != nil {
		return a
	}
	b.appMu.Lock()
	defer b.appMu.Unlock()
	if a = b.apps[t]; a == nil {
		a = &appender{b: b, tp: t}
		b.apps[t] = a
	}
	return a
}

// ingest routes one publish into the log. w is finished when the record is
// durable or failed; independent: its sender is not waiting for an
// acknowledgement (see appender.add).
func (b *Broker) ingest(tgt target, ts int64, value []byte, headers []batch.RecordHeader, w waiter, independent bool, s *session, more bool) {
	n, err := b.partitions(tgt.topic)
	if err != nil {
		if w != nil {
			w.finish(err)
		}
		return
	}
	p := b.produce.Partition(tgt.partKey, n)
	a := b.appenderFor(tp{tgt.topic, p, tgt.all})
	if a.add(ts, tgt.key, value, headers, w, independent, more && s != nil) {
		s.deferFeed(a)
	}
}

// maxReplyWait caps the reply hold (replyWait).
const maxReplyWait = 2 * time.Millisecond

// noteCommit folds the time from handing a batch to the log until it
// finished into the broker's average (completion goroutine only).
func (b *Broker) noteCommit(d time.Duration) {
	old := b.commitNanos.Load()
	if old == 0 {
		b.commitNanos.Store(int64(d))
		return
	}
	b.commitNanos.Store(old + (int64(d)-old)/8)
}

// replyWait bounds a reply hold: the average time a batch takes from the
// log's hand-over to its completion (about one commit), at most
// maxReplyWait. Holding longer than one commit would cost more than it
// saves (the held records would have gone in the next commit); zero
// before the first commit.
func (b *Broker) replyWait() time.Duration {
	return min(time.Duration(b.commitNanos.Load()), maxReplyWait)
}
