// Package logtest is an in-memory log.Log for the tests of the packages that
// consume the log (ingest, sync): topics and partitions held as whole
// batches, a real meta store in a temporary directory, and hooks that
// inject faults.
//
// # Basics
//
//	l := logtest.New(t)                        // appends complete before they return
//	l := logtest.New(t, logtest.AsyncCommit()) // one committer goroutine group-commits
//
// Where a test can observe it, Mem keeps the log.Log contract: the suite in
// log/logtest/conformance runs against Mem and against the log on disk
// (topics and their configs with the log's defaults, offsets, Read,
// idempotent producers, Watch, Close). Readers see a batch, and Watch
// waiters are signalled, only once its commit (with the simulated sync
// delay) has completed.
//
// Faults and retention:
//
//	SetAppendFault, SetAppendError  appends fail (ErrDiskFull counts in Stats().Rejected)
//	SetReadError                    reads fail
//	SetSyncDelay                    every commit takes this long (a slow fsync)
//	DropBefore                      drop-oldest retention of whole batches
//	Held                            whether HoldRetention was called
//
// # Caveats
//
// No segments, fsync, retention (but DropBefore), disk guard, recovery or
// Check; the topic names the data directory reserves for its own files
// are accepted.
package logtest

import (
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/meta"
)

// Option configures a Mem.
type Option func(*options)

type options struct {
	async         bool
	maxPartitions int32
}

// AsyncCommit makes AppendAsync return at once and complete from one
// committer goroutine, as the log does: each round applies every queued
// append in call order, waits the sync delay, moves the HWMs (signalling
// Watch waiters), then calls the done funcs in call order. done is never called inline. Append and AppendAt
// go through the same queue. Without AsyncCommit, AppendAsync calls done
// before it returns.
func AsyncCommit() Option { return func(o *options) { o.async = true } }

// MaxPartitions makes CreateTopic and AddPartitions refuse more than n
// partitions a topic with ErrInvalidPartitions (fuzzers would otherwise
// exhaust memory). 0, the default, is no limit.
func MaxPartitions(n int32) Option { return func(o *options) { o.maxPartitions = n } }

// Mem is an in-memory log.Log. All methods are safe for concurrent use.
type Mem struct {
	meta *meta.Store
	opts options
	wake chan struct{} // one slot: work for the committer (AsyncCommit)
	done chan struct{} // closed when the committer has stopped

	mu          sync.Mutex // guards the fields below
	topics      map[string]*topic
	topicWatch  log.WatchList // WatchTopics registrations; values are topicVer
	topicVer    int64         // bumped by every change of the topic set
	holds       map[string]bool
	appendFault func(topic string, partition int32) error
	readErr     error
	syncDelay   time.Duration
	queue       []job // appends waiting for the committer
	stats       log.Stats
	closing     bool // Close has begun: no new appends are queued
	closed      bool // Close has drained the queue: everything fails
}

type topic struct {
	cfg   log.TopicConfig
	parts []*part
}

type part struct {
	start     int64
	next      int64 // offset of the next append
	hwm       int64 // end of what a commit completed: what readers see
	watch     log.WatchList
	batches   [][]byte // copies, with their base offsets set
	bases     []int64
	producers log.Producers // idempotence state by producer id, as the log keeps it
}

func newPart() *part {
	return &part{}
}

var _ log.Log = (*Mem)(nil)

// New returns an empty Mem whose meta store lives in t.TempDir(); it is
// closed at cleanup.
func New(t testing.TB, opts ...Option) *Mem {
	t.Helper()
	st, err := meta.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := &Mem{meta: st, topics: map[string]*topic{}, holds: map[string]bool{}}
	for _, o := range opts {
		o(&m.opts)
	}
	if m.opts.async {
		m.wake = make(chan struct{}, 1)
		m.done = make(chan struct{})
		go m.commit()
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// topicsChangedLocked signals the WatchTopics waiters.
func (m *Mem) topicsChangedLocked() {
	m.topicVer++
	m.topicWatch.Notify(m.topicVer)
}

// maxPartitions is the log's limit of partitions per topic.
const maxPartitions = 100000

func (m *Mem) partitionsOK(n int32) bool {
	return n > 0 && n <= maxPartitions && (m.opts.maxPartitions == 0 || n <= m.opts.maxPartitions)
}

// withDefaults fills cfg's zero fields with the log's defaults.
func withDefaults(cfg log.TopicConfig) log.TopicConfig {
	return cfg.WithDefaults(log.DefaultTopicConfig())
}

// CreateTopic implements log.Log.
func (m *Mem) CreateTopic(name string, cfg log.TopicConfig) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return log.ErrClosed
	}
	if !log.ValidTopicName(name) {
		return log.ErrInvalidTopic
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if _, ok := m.topics[name]; ok {
		return log.ErrTopicExists
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = 1
	}
	if !m.partitionsOK(cfg.Partitions) {
		return log.ErrInvalidPartitions
	}
	t := &topic{cfg: withDefaults(cfg)}
	for range cfg.Partitions {
		t.parts = append(t.parts, newPart())
	}
	m.topics[name] = t
	m.topicsChangedLocked()
	return nil
}

// DeleteTopic implements log.Log; like the log it also deletes the topic's
// entries in meta.
func (m *Mem) DeleteTopic(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return log.ErrClosed
	}
	if _, ok := m.topics[name]; !ok {
		return log.ErrUnknownTopic
	}
	for _, p := range m.topics[name].parts {
		p.watch.Close()
	}
	delete(m.topics, name)
	m.topicsChangedLocked()
	return m.meta.DeleteTopic(name)
}

// AddPartitions implements log.Log.
func (m *Mem) AddPartitions(name string, total int32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return log.ErrClosed
	}
	t, ok := m.topics[name]
	if !ok {
		return log.ErrUnknownTopic
	}
	if total <= int32(len(t.parts)) || !m.partitionsOK(total) {
		return log.ErrInvalidPartitions
	}
	for int32(len(t.parts)) < total {
		t.parts = append(t.parts, newPart())
	}
	t.cfg.Partitions = total
	m.topicsChangedLocked()
	return nil
}

// SetTopicConfig implements log.Log.
func (m *Mem) SetTopicConfig(name string, cfg log.TopicConfig) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return log.ErrClosed
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	t, ok := m.topics[name]
	if !ok {
		return log.ErrUnknownTopic
	}
	cfg.Partitions = t.cfg.Partitions
	t.cfg = withDefaults(cfg)
	return nil
}

func (t *topic) info(name string) log.TopicInfo {
	ti := log.TopicInfo{Name: name, Config: t.cfg}
	for i, p := range t.parts {
		ti.Partitions = append(ti.Partitions, log.PartitionInfo{Partition: int32(i), Start: p.start, HWM: p.hwm})
	}
	return ti
}

// Topic implements log.Log.
func (m *Mem) Topic(name string) (log.TopicInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.topics[name]
	if !ok {
		return log.TopicInfo{}, log.ErrUnknownTopic
	}
	return t.info(name), nil
}

// Topics implements log.Log.
func (m *Mem) Topics() []log.TopicInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []log.TopicInfo
	for n, t := range m.topics {
		out = append(out, t.info(n))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (m *Mem) partLocked(topic string, partition int32) (*part, error) {
	if m.closed {
		return nil, log.ErrClosed
	}
	t, ok := m.topics[topic]
	if !ok {
		return nil, log.ErrUnknownTopic
	}
	if partition < 0 || int(partition) >= len(t.parts) {
		return nil, log.ErrUnknownPartition
	}
	return t.parts[partition], nil
}

// HoldRetention implements log.Log by remembering name (see Held).
func (m *Mem) HoldRetention(name string) {
	m.mu.Lock()
	m.holds[name] = true
	m.mu.Unlock()
}

// Held reports whether HoldRetention(name) was called.
func (m *Mem) Held(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.holds[name]
}

// Meta implements log.Log.
func (m *Mem) Meta() *meta.Store { return m.meta }

// Stats implements log.Log: appended records, batches and bytes, and
// appends rejected with ErrDiskFull.
func (m *Mem) Stats() log.Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Check implements log.Log: there is nothing to damage.
func (m *Mem) Check() []log.Damage { return nil }

// Close implements log.Log: queued appends complete, then every call fails
// with ErrClosed. Idempotent.
func (m *Mem) Close() error {
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return nil
	}
	m.closing = true
	m.mu.Unlock()
	if m.opts.async {
		m.kick()
		<-m.done
	}
	m.mu.Lock()
	m.closed = true
	for _, t := range m.topics {
		for _, p := range t.parts {
			p.watch.Close()
		}
	}
	m.topicWatch.Close()
	m.mu.Unlock()
	return m.meta.Close()
}
