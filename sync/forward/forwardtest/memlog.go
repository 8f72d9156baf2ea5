// Package forwardtest holds test helpers for the forwarder: an in-memory
// log.Log (with a real meta store) and record fixtures.
package forwardtest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/meta"
)

// MemLog is an in-memory log.Log: enough for the forwarder (topics, append,
// read, offsets, changed, meta). Segments are modelled as whole batches;
// DropBefore simulates drop-oldest retention.
type MemLog struct {
	meta *meta.Store

	mu      sync.Mutex // guards everything below
	topics  map[string][]*memPart
	changed chan struct{}
	holds   map[string]bool
	closed  bool
	// ReadErr, when set, is returned by Read (fault injection).
	readErr error
}

type memPart struct {
	start   int64
	next    int64
	batches [][]byte // each batch with its base offset set
	bases   []int64
}

var _ log.Log = (*MemLog)(nil)

// NewMemLog opens a MemLog whose meta store lives in dir.
func NewMemLog(dir string) (*MemLog, error) {
	m, err := meta.Open(dir)
	if err != nil {
		return nil, err
	}
	return &MemLog{meta: m, topics: map[string][]*memPart{}, changed: make(chan struct{}), holds: map[string]bool{}}, nil
}

// New is NewMemLog in t.TempDir(), closed in Cleanup.
func New(t testing.TB) *MemLog {
	l, err := NewMemLog(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func (l *MemLog) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *MemLog) CreateTopic(name string, cfg log.TopicConfig) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.topics[name]; ok {
		return log.ErrTopicExists
	}
	n := max(cfg.Partitions, 1)
	ps := make([]*memPart, n)
	for i := range ps {
		ps[i] = &memPart{}
	}
	l.topics[name] = ps
	l.notifyLocked()
	return nil
}

func (l *MemLog) DeleteTopic(name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.topics[name]; !ok {
		return log.ErrUnknownTopic
	}
	delete(l.topics, name)
	l.notifyLocked()
	return l.meta.DeleteTopic(name)
}

func (l *MemLog) AddPartitions(name string, total int32) error {
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
		ps = append(ps, &memPart{})
	}
	l.topics[name] = ps
	l.notifyLocked()
	return nil
}

func (l *MemLog) SetTopicConfig(string, log.TopicConfig) error { return nil }

func (l *MemLog) Topic(name string) (log.TopicInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ps, ok := l.topics[name]
	if !ok {
		return log.TopicInfo{}, log.ErrUnknownTopic
	}
	return infoLocked(name, ps), nil
}

func infoLocked(name string, ps []*memPart) log.TopicInfo {
	ti := log.TopicInfo{Name: name, Config: log.TopicConfig{Partitions: int32(len(ps))}}
	for i, p := range ps {
		ti.Partitions = append(ti.Partitions, log.PartitionInfo{Partition: int32(i), Start: p.start, HWM: p.next})
	}
	return ti
}

func (l *MemLog) Topics() []log.TopicInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []log.TopicInfo
	for n, ps := range l.topics {
		out = append(out, infoLocked(n, ps))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (l *MemLog) partLocked(topic string, partition int32) (*memPart, error) {
	if l.closed {
		return nil, log.ErrClosed
	}
	ps, ok := l.topics[topic]
	if !ok {
		return nil, log.ErrUnknownTopic
	}
	if partition < 0 || int(partition) >= len(ps) {
		return nil, log.ErrUnknownPartition
	}
	return ps[partition], nil
}

func (l *MemLog) Append(_ context.Context, topic string, partition int32, batches []byte) (int64, error) {
	hs, err := batch.ValidateAll(batches)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", log.ErrCorruptBatch, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := l.partLocked(topic, partition)
	if err != nil {
		return 0, err
	}
	base := p.next
	rest := batches
	for _, h := range hs {
		b := append([]byte(nil), rest[:h.Size()]...)
		rest = rest[h.Size():]
		batch.SetBaseOffset(b, p.next)
		p.batches = append(p.batches, b)
		p.bases = append(p.bases, p.next)
		p.next += int64(h.LastOffsetDelta) + 1
	}
	l.notifyLocked()
	return base, nil
}

func (l *MemLog) AppendAsync(topic string, partition int32, batches []byte, done func(int64, error)) {
	b, err := l.Append(context.Background(), topic, partition, batches)
	if done != nil {
		done(b, err)
	}
}

func (l *MemLog) AppendAt(ctx context.Context, topic string, partition int32, batches []byte) error {
	_, err := l.Append(ctx, topic, partition, batches)
	return err
}

// SetReadError makes every Read fail with err (nil clears it).
func (l *MemLog) SetReadError(err error) {
	l.mu.Lock()
	l.readErr = err
	l.mu.Unlock()
}

func (l *MemLog) Read(topic string, partition int32, offset int64, maxBytes int) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.readErr != nil {
		return nil, l.readErr
	}
	p, err := l.partLocked(topic, partition)
	if err != nil {
		return nil, err
	}
	if offset < p.start || offset > p.next {
		return nil, log.ErrOffsetOutOfRange
	}
	if offset == p.next {
		return nil, nil
	}
	i := sort.Search(len(p.bases), func(i int) bool { return p.bases[i] > offset }) - 1
	var out []byte
	for ; i < len(p.batches); i++ {
		if len(out) > 0 && len(out)+len(p.batches[i]) > maxBytes {
			break
		}
		out = append(out, p.batches[i]...)
	}
	return out, nil
}

func (l *MemLog) Offsets(topic string, partition int32) (int64, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := l.partLocked(topic, partition)
	if err != nil {
		return 0, 0, err
	}
	return p.start, p.next, nil
}

func (l *MemLog) OffsetForTime(string, int32, int64) (int64, error) {
	return 0, errors.New("forwardtest: OffsetForTime not implemented")
}

func (l *MemLog) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

func (l *MemLog) HoldRetention(name string) {
	l.mu.Lock()
	l.holds[name] = true
	l.mu.Unlock()
}

// Held reports whether HoldRetention(name) was called.
func (l *MemLog) Held(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holds[name]
}

// DropBefore deletes whole batches below offset (drop-oldest retention).
func (l *MemLog) DropBefore(topic string, partition int32, offset int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := l.partLocked(topic, partition)
	if err != nil {
		return
	}
	for len(p.batches) > 0 {
		h, _ := batch.ParseHeader(p.batches[0])
		if h.LastOffset() >= offset {
			break
		}
		p.start = h.LastOffset() + 1
		p.batches, p.bases = p.batches[1:], p.bases[1:]
	}
	if len(p.batches) == 0 {
		p.start = p.next
	}
}

func (l *MemLog) Meta() *meta.Store { return l.meta }
func (l *MemLog) Stats() log.Stats  { return log.Stats{} }
func (l *MemLog) Check() []log.Damage {
	return nil
}

func (l *MemLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return l.meta.Close()
}

// Produce appends n records to topic/partition in batches of per records,
// with key "k<i%keys>" (nil when keys == 0), value "<topic>/<partition>/<i>"
// and one header; i counts from first.
func Produce(t testing.TB, l log.Log, topic string, partition int32, first, n, per, keys int) {
	t.Helper()
	var b batch.Builder
	flush := func() {
		if b.Len() == 0 {
			return
		}
		if _, err := l.Append(context.Background(), topic, partition, b.Bytes()); err != nil {
			t.Fatalf("append: %v", err)
		}
		b.Reset()
	}
	for i := first; i < first+n; i++ {
		var key []byte
		if keys > 0 {
			key = fmt.Appendf(nil, "k%d", i%keys)
		}
		b.Add(1700000000000+int64(i), key, Value(topic, partition, i), []batch.RecordHeader{{Key: "h", Value: []byte("v")}})
		if b.Len() >= per {
			flush()
		}
	}
	flush()
}

// Value is the value Produce writes for record i.
func Value(topic string, partition int32, i int) []byte {
	return fmt.Appendf(nil, "%s/%d/%d", topic, partition, i)
}
