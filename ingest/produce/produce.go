// Package produce is the produce path every ingest protocol shares: Kafka
// Produce (ingest/kafka), MQTT publishes (ingest/mqtt) and HTTP produce
// (web). It is the one place that
//
//   - resolves a log topic: the name is validated (log.ValidTopicName,
//     through log.EnsureTopic), an unknown topic is created with the log's
//     defaults when the caller's protocol auto-creates, and the partition
//     count is cached for a short time (a topic can grow);
//   - picks a partition like Kafka's default partitioner: murmur2 of the
//     key (log/batch.Partition), so Kafka clients, MQTT routes and HTTP
//     agree on where a key goes; records without a key go round-robin;
//   - appends at the asked acknowledgement level: AcksLeader is durable
//     here per the topic's fsync policy, AcksAll also waits for the site's
//     in-sync copies when the log offers log.AllAppender.
//
// The protocols differ in how they build batches (a Kafka producer sends
// them ready and they are stored as sent; MQTT coalesces publishes per
// partition; HTTP builds one batch per partition of a request), not in
// these steps.
package produce

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// DefaultTopicTTL is how long a topic's partition count is trusted before
// the log is asked again (partitions may be added meanwhile).
const DefaultTopicTTL = time.Second

// Acks is the acknowledgement level of an append, with Kafka's values.
type Acks int8

const (
	// AcksLeader: durable on this node per the topic's fsync policy (Kafka
	// acks=1; acks=0 is the same append without an answer).
	AcksLeader Acks = 1
	// AcksAll: durable here and on every in-sync copy of the site (Kafka
	// acks=-1) when the log offers log.AllAppender; AcksLeader otherwise.
	AcksAll Acks = -1
)

// Options configures a Path.
type Options struct {
	// Log is the commit log (required).
	Log log.Log
	// Logger; nil = slog.Default().
	Logger *slog.Logger
	// Protocol names the caller in log lines ("kafka", "mqtt", "http").
	Protocol string
	// OnCreate, when set, is called after this path created a topic.
	OnCreate func(topic string)
	// TopicTTL: how long a partition count is cached (0 = DefaultTopicTTL).
	TopicTTL time.Duration
}

// Path is one protocol's produce path. Safe for concurrent use.
type Path struct {
	opts Options
	all  log.AllAppender // nil when the log has no acks=all

	mu     sync.Mutex
	topics map[string]topicEntry // guarded by mu

	rr atomic.Uint32 // round-robin counter for records without a key

	warnAt   atomic.Int64 // when "auto-create topic failed" was last logged (unix nanos)
	warnHeld atomic.Int64 // such lines left out since
}

type topicEntry struct {
	partitions int32
	checked    time.Time
}

// New returns a Path over opts.Log.
func New(opts Options) *Path {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.TopicTTL <= 0 {
		opts.TopicTTL = DefaultTopicTTL
	}
	p := &Path{opts: opts, topics: map[string]topicEntry{}}
	p.all, _ = opts.Log.(log.AllAppender)
	return p
}

// Log is the log the path appends to.
func (p *Path) Log() log.Log { return p.opts.Log }

// Topic returns the partition count of topic name, creating the topic with
// the log's defaults first when it does not exist and create is set.
// Errors: log.ErrInvalidTopic (a name Kafka would refuse), log.ErrUnknownTopic
// (not created), log.ErrUnknownPartition (a topic without partitions), and
// the log's errors.
func (p *Path) Topic(name string, create bool) (int32, error) {
	now := time.Now()
	p.mu.Lock()
	e, ok := p.topics[name]
	p.mu.Unlock()
	if ok && now.Sub(e.checked) < p.opts.TopicTTL {
		return e.partitions, nil
	}
	var info log.TopicInfo
	var err error
	if create {
		var created bool
		info, created, err = log.EnsureTopic(p.opts.Log, name)
		if created {
			p.opts.Logger.Info("topic auto-created", "topic", name, "protocol", p.opts.Protocol)
			if p.opts.OnCreate != nil {
				p.opts.OnCreate(name)
			}
		}
		if err != nil && !errors.Is(err, log.ErrInvalidTopic) {
			// A flood of made-up names past the auto-create cap: at most
			// one line every 10 s, with how many were left out.
			if last := p.warnAt.Load(); now.UnixNano()-last >= int64(10*time.Second) && p.warnAt.CompareAndSwap(last, now.UnixNano()) {
				p.opts.Logger.Warn("auto-create topic failed (logged at most every 10s)", "topic", name, "protocol", p.opts.Protocol, "err", err, "suppressed", p.warnHeld.Swap(0))
			} else {
				p.warnHeld.Add(1)
			}
		}
	} else {
		info, err = p.opts.Log.Topic(name)
	}
	if err != nil {
		return 0, err
	}
	n := int32(len(info.Partitions))
	if n <= 0 {
		return 0, log.ErrUnknownPartition
	}
	p.mu.Lock()
	p.topics[name] = topicEntry{partitions: n, checked: now}
	p.mu.Unlock()
	return n, nil
}

// Known records that topic exists with n partitions (it was just created
// or described), so the next Topic call does not ask the log.
func (p *Path) Known(name string, n int32) {
	if n <= 0 {
		return
	}
	p.mu.Lock()
	p.topics[name] = topicEntry{partitions: n, checked: time.Now()}
	p.mu.Unlock()
}

// Forget drops what is cached of topic name (it was deleted, or an append
// found it unknown).
func (p *Path) Forget(name string) {
	p.mu.Lock()
	delete(p.topics, name)
	p.mu.Unlock()
}

// Partition picks the partition of a record among n (n > 0): murmur2 of
// key as Kafka's default partitioner, or round-robin when key is nil.
func (p *Path) Partition(key []byte, n int32) int32 {
	if key == nil {
		return int32(p.rr.Add(1)-1) % n
	}
	return batch.Partition(key, n)
}

// AppendAsync appends batches (see log.Log.AppendAsync) at level acks and
// calls done once they are acknowledged or failed. An append that finds
// the topic unknown forgets it, so the next Topic call asks the log.
func (p *Path) AppendAsync(topic string, partition int32, batches []byte, acks Acks, done func(base int64, err error)) {
	fn := p.opts.Log.AppendAsync
	if acks == AcksAll && p.all != nil {
		fn = p.all.AppendAsyncAll
	}
	fn(topic, partition, batches, func(base int64, err error) {
		if err != nil && errors.Is(err, log.ErrUnknownTopic) {
			p.Forget(topic)
		}
		if done != nil {
			done(base, err)
		}
	})
}

// Append is AppendAsync that waits: it returns the base offset once the
// batches are acknowledged at level acks, or ctx.Err() when ctx ends first
// (the append may still complete).
func (p *Path) Append(ctx context.Context, topic string, partition int32, batches []byte, acks Acks) (int64, error) {
	type result struct {
		base int64
		err  error
	}
	ch := make(chan result, 1)
	p.AppendAsync(topic, partition, batches, acks, func(base int64, err error) { ch <- result{base, err} })
	select {
	case r := <-ch:
		return r.base, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
