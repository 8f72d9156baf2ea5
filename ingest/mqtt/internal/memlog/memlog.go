// Package memlog is an in-memory log.Log for the MQTT tests: appends are
// group-committed by one goroutine after an optional simulated fsync delay,
// and failures can be injected.
package memlog

import (
	"context"
	"sync"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/meta"
)

// Log is an in-memory log.Log.
type Log struct {
	meta *meta.Store

	mu        sync.Mutex
	topics    map[string][][]stored // topic → partition → batches
	changed   chan struct{}
	failWith  error
	syncDelay time.Duration
	queue     []job
	closed    bool
	stats     log.Stats
	wake      chan struct{}
	done      chan struct{}
}

type stored struct {
	base int64
	data []byte
}

type job struct {
	topic string
	part  int32
	data  []byte
	done  func(int64, error)
}

// New returns a log whose meta store lives in dir.
func New(dir string) (*Log, error) {
	m, err := meta.Open(dir)
	if err != nil {
		return nil, err
	}
	l := &Log{meta: m, topics: map[string][][]stored{}, changed: make(chan struct{}), wake: make(chan struct{}, 1), done: make(chan struct{})}
	go l.run()
	return l, nil
}

// SetSyncDelay sets the simulated fsync time of each group commit.
func (l *Log) SetSyncDelay(d time.Duration) { l.mu.Lock(); l.syncDelay = d; l.mu.Unlock() }

// FailWith makes every later append fail with err (nil = heal).
func (l *Log) FailWith(err error) { l.mu.Lock(); l.failWith = err; l.mu.Unlock() }

func (l *Log) run() {
	defer close(l.done)
	for {
		l.mu.Lock()
		for len(l.queue) == 0 && !l.closed {
			l.mu.Unlock()
			<-l.wake
			l.mu.Lock()
		}
		if len(l.queue) == 0 && l.closed {
			l.mu.Unlock()
			return
		}
		q := l.queue
		l.queue = nil
		d := l.syncDelay
		type res struct {
			base int64
			err  error
		}
		out := make([]res, len(q))
		for i, j := range q {
			out[i].base, out[i].err = l.appendLocked(j.topic, j.part, j.data)
		}
		l.mu.Unlock()
		if d > 0 {
			time.Sleep(d)
		}
		l.mu.Lock()
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
		for i, j := range q {
			if j.done != nil {
				j.done(out[i].base, out[i].err)
			}
		}
	}
}

func (l *Log) appendLocked(topic string, part int32, data []byte) (int64, error) {
	if l.failWith != nil {
		if l.failWith == log.ErrDiskFull {
			l.stats.Rejected++
		}
		return 0, l.failWith
	}
	ps, ok := l.topics[topic]
	if !ok {
		return 0, log.ErrUnknownTopic
	}
	if part < 0 || int(part) >= len(ps) {
		return 0, log.ErrUnknownPartition
	}
	hs, err := batch.ValidateAll(data)
	if err != nil {
		return 0, log.ErrCorruptBatch
	}
	next := int64(0)
	if n := len(ps[part]); n > 0 {
		last := ps[part][n-1]
		h, _ := batch.ParseHeader(last.data)
		next = h.LastOffset() + 1
	}
	first := next
	off := 0
	for _, h := range hs {
		b := append([]byte(nil), data[off:off+h.Size()]...)
		batch.SetBaseOffset(b, next)
		ps[part] = append(ps[part], stored{base: next, data: b})
		next += int64(h.LastOffsetDelta) + 1
		off += h.Size()
		l.stats.AppendedRecords += uint64(h.RecordCount)
		l.stats.AppendedBatches++
	}
	l.stats.AppendedBytes += uint64(len(data))
	return first, nil
}

func (l *Log) CreateTopic(name string, cfg log.TopicConfig) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.topics[name]; ok {
		return log.ErrTopicExists
	}
	n := cfg.Partitions
	if n <= 0 {
		n = 1
	}
	l.topics[name] = make([][]stored, n)
	return nil
}

func (l *Log) DeleteTopic(name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.topics[name]; !ok {
		return log.ErrUnknownTopic
	}
	delete(l.topics, name)
	return nil
}

func (l *Log) AddPartitions(name string, total int32) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ps, ok := l.topics[name]
	if !ok {
		return log.ErrUnknownTopic
	}
	if int(total) <= len(ps) {
		return log.ErrInvalidPartitions
	}
	for len(ps) < int(total) {
		ps = append(ps, nil)
	}
	l.topics[name] = ps
	return nil
}

func (l *Log) SetTopicConfig(string, log.TopicConfig) error { return nil }

func (l *Log) Topic(name string) (log.TopicInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ps, ok := l.topics[name]
	if !ok {
		return log.TopicInfo{}, log.ErrUnknownTopic
	}
	ti := log.TopicInfo{Name: name, Config: log.TopicConfig{Partitions: int32(len(ps))}}
	for i := range ps {
		_, hwm := l.offsetsLocked(ps[i])
		ti.Partitions = append(ti.Partitions, log.PartitionInfo{Partition: int32(i), HWM: hwm})
	}
	return ti, nil
}

func (l *Log) Topics() []log.TopicInfo {
	l.mu.Lock()
	var names []string
	for n := range l.topics {
		names = append(names, n)
	}
	l.mu.Unlock()
	var out []log.TopicInfo
	for _, n := range names {
		if ti, err := l.Topic(n); err == nil {
			out = append(out, ti)
		}
	}
	return out
}

func (l *Log) Append(ctx context.Context, topic string, partition int32, batches []byte) (int64, error) {
	type r struct {
		b int64
		e error
	}
	ch := make(chan r, 1)
	l.AppendAsync(topic, partition, batches, func(b int64, e error) { ch <- r{b, e} })
	select {
	case x := <-ch:
		return x.b, x.e
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (l *Log) AppendAsync(topic string, partition int32, batches []byte, done func(int64, error)) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		if done != nil {
			go done(0, log.ErrClosed)
		}
		return
	}
	l.queue = append(l.queue, job{topic, partition, batches, done})
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *Log) AppendAt(context.Context, string, int32, []byte) error { return log.ErrNotNextOffset }

func (l *Log) offsetsLocked(bs []stored) (int64, int64) {
	if len(bs) == 0 {
		return 0, 0
	}
	h, _ := batch.ParseHeader(bs[len(bs)-1].data)
	return bs[0].base, h.LastOffset() + 1
}

func (l *Log) Read(topic string, partition int32, offset int64, maxBytes int) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ps, ok := l.topics[topic]
	if !ok {
		return nil, log.ErrUnknownTopic
	}
	if partition < 0 || int(partition) >= len(ps) {
		return nil, log.ErrUnknownPartition
	}
	bs := ps[partition]
	start, hwm := l.offsetsLocked(bs)
	if offset == hwm {
		return nil, nil
	}
	if offset < start || offset > hwm {
		return nil, log.ErrOffsetOutOfRange
	}
	var out []byte
	for _, s := range bs {
		h, _ := batch.ParseHeader(s.data)
		if h.LastOffset() < offset {
			continue
		}
		if len(out) > 0 && len(out)+len(s.data) > maxBytes {
			break
		}
		out = append(out, s.data...)
	}
	return out, nil
}

func (l *Log) Offsets(topic string, partition int32) (int64, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ps, ok := l.topics[topic]
	if !ok {
		return 0, 0, log.ErrUnknownTopic
	}
	if partition < 0 || int(partition) >= len(ps) {
		return 0, 0, log.ErrUnknownPartition
	}
	s, h := l.offsetsLocked(ps[partition])
	return s, h, nil
}

func (l *Log) OffsetForTime(string, int32, int64) (int64, error) { return 0, nil }

func (l *Log) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

func (l *Log) HoldRetention(string) {}
func (l *Log) Meta() *meta.Store    { return l.meta }
func (l *Log) Stats() log.Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}
func (l *Log) Check() []log.Damage { return nil }

func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	<-l.done
	return l.meta.Close()
}

// Records returns every record of a partition (for assertions).
func (l *Log) Records(topic string, partition int32) ([]batch.Record, error) {
	l.mu.Lock()
	var bs []stored
	if ps, ok := l.topics[topic]; ok && int(partition) < len(ps) {
		bs = append(bs, ps[partition]...)
	}
	l.mu.Unlock()
	var out []batch.Record
	for _, s := range bs {
		rs, err := batch.Records(s.data)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

var _ log.Log = (*Log)(nil)
