package kafka

import (
	"context"
	"sort"
	"sync"
	"testing"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/meta"
)

// memMaxPartitions keeps fuzzed CreatePartitions from exhausting memory.
const memMaxPartitions = 64

// memLog is an in-memory log.Log for tests that need to inject errors
// (fail) or run without the storage engine.
type memLog struct {
	store *meta.Store

	mu      sync.Mutex
	topics  map[string]*memTopic
	changed chan struct{}
	// fail, when set, decides an append's error before it is applied.
	fail func(topic string, partition int32) error
}

type memTopic struct {
	cfg   log.TopicConfig
	parts []*memPart
}

type memPart struct {
	batches [][]byte
	bases   []int64
	next    int64
	seqs    map[int64]int32 // producer → next expected sequence
	lastDup map[int64]int64 // producer → base of its last batch
}

func newMemLog(t testing.TB) *memLog {
	st, err := meta.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &memLog{store: st, topics: map[string]*memTopic{}, changed: make(chan struct{})}
}

func (m *memLog) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *memLog) CreateTopic(name string, cfg log.TopicConfig) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.topics[name]; ok {
		return log.ErrTopicExists
	}
	if validTopicName(name) != codeNone {
		return log.ErrInvalidTopic
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = 1
	}
	if cfg.Partitions < 0 || cfg.Partitions > memMaxPartitions {
		return log.ErrInvalidPartitions
	}
	if cfg.Fsync == "" {
		cfg.Fsync = log.FsyncAlways
	}
	if cfg.OnFull == "" {
		cfg.OnFull = log.OnFullReject
	}
	t := &memTopic{cfg: cfg}
	for i := int32(0); i < cfg.Partitions; i++ {
		t.parts = append(t.parts, &memPart{seqs: map[int64]int32{}, lastDup: map[int64]int64{}})
	}
	m.topics[name] = t
	m.notifyLocked()
	return nil
}

func (m *memLog) DeleteTopic(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.topics[name]; !ok {
		return log.ErrUnknownTopic
	}
	delete(m.topics, name)
	m.notifyLocked()
	return nil
}

func (m *memLog) AddPartitions(name string, total int32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.topics[name]
	if !ok {
		return log.ErrUnknownTopic
	}
	if total <= int32(len(t.parts)) || total > memMaxPartitions {
		return log.ErrInvalidPartitions
	}
	for int32(len(t.parts)) < total {
		t.parts = append(t.parts, &memPart{seqs: map[int64]int32{}, lastDup: map[int64]int64{}})
	}
	t.cfg.Partitions = total
	return nil
}

func (m *memLog) SetTopicConfig(name string, cfg log.TopicConfig) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.topics[name]
	if !ok {
		return log.ErrUnknownTopic
	}
	cfg.Partitions = t.cfg.Partitions
	if cfg.Fsync == "" {
		cfg.Fsync = log.FsyncAlways
	}
	if cfg.OnFull == "" {
		cfg.OnFull = log.OnFullReject
	}
	t.cfg = cfg
	return nil
}

func (m *memLog) infoLocked(name string, t *memTopic) log.TopicInfo {
	info := log.TopicInfo{Name: name, Config: t.cfg}
	for i, p := range t.parts {
		info.Partitions = append(info.Partitions, log.PartitionInfo{Partition: int32(i), HWM: p.next})
	}
	return info
}

func (m *memLog) Topic(name string) (log.TopicInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.topics[name]
	if !ok {
		return log.TopicInfo{}, log.ErrUnknownTopic
	}
	return m.infoLocked(name, t), nil
}

func (m *memLog) Topics() []log.TopicInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []log.TopicInfo
	for n, t := range m.topics {
		out = append(out, m.infoLocked(n, t))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (m *memLog) part(topic string, p int32) (*memPart, error) {
	t, ok := m.topics[topic]
	if !ok {
		return nil, log.ErrUnknownTopic
	}
	if p < 0 || int(p) >= len(t.parts) {
		return nil, log.ErrUnknownPartition
	}
	return t.parts[p], nil
}

func (m *memLog) Append(_ context.Context, topic string, partition int32, b []byte) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		if err := m.fail(topic, partition); err != nil {
			return -1, err
		}
	}
	p, err := m.part(topic, partition)
	if err != nil {
		return -1, err
	}
	hs, err := batch.ValidateAll(b)
	if err != nil {
		return -1, log.ErrCorruptBatch
	}
	first := int64(-1)
	off := 0
	for _, h := range hs {
		raw := b[off : off+h.Size()]
		off += h.Size()
		if h.ProducerID >= 0 {
			exp, seen := p.seqs[h.ProducerID]
			if seen && h.BaseSequence < exp {
				return p.lastDup[h.ProducerID], log.ErrDuplicateSequence
			}
			if seen && h.BaseSequence != exp || !seen && h.BaseSequence != 0 {
				return -1, log.ErrOutOfOrderSequence
			}
			p.seqs[h.ProducerID] = h.BaseSequence + h.LastOffsetDelta + 1
			p.lastDup[h.ProducerID] = p.next
		}
		cp := append([]byte(nil), raw...)
		batch.SetBaseOffset(cp, p.next)
		batch.SetBaseOffset(raw, p.next)
		if first < 0 {
			first = p.next
		}
		p.batches = append(p.batches, cp)
		p.bases = append(p.bases, p.next)
		p.next += int64(h.LastOffsetDelta) + 1
	}
	m.notifyLocked()
	return first, nil
}

func (m *memLog) AppendAsync(topic string, partition int32, b []byte, done func(int64, error)) {
	base, err := m.Append(context.Background(), topic, partition, b)
	if done != nil {
		done(base, err)
	}
}

func (m *memLog) AppendAt(ctx context.Context, topic string, partition int32, b []byte) error {
	_, err := m.Append(ctx, topic, partition, b)
	return err
}

func (m *memLog) Read(topic string, partition int32, offset int64, maxBytes int) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.part(topic, partition)
	if err != nil {
		return nil, err
	}
	if offset < 0 || offset > p.next {
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

func (m *memLog) Offsets(topic string, partition int32) (int64, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.part(topic, partition)
	if err != nil {
		return 0, 0, err
	}
	return 0, p.next, nil
}

func (m *memLog) OffsetForTime(topic string, partition int32, ts int64) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.part(topic, partition)
	if err != nil {
		return 0, err
	}
	for i, b := range p.batches {
		h, _ := batch.ParseHeader(b)
		if h.MaxTimestamp >= ts {
			return p.bases[i], nil
		}
	}
	return p.next, nil
}

func (m *memLog) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

func (m *memLog) HoldRetention(string) {}
func (m *memLog) Meta() *meta.Store    { return m.store }
func (m *memLog) Stats() log.Stats     { return log.Stats{} }
func (m *memLog) Check() []log.Damage  { return nil }
func (m *memLog) Close() error         { return nil }
func (m *memLog) setFail(f func(string, int32) error) {
	m.mu.Lock()
	m.fail = f
	m.mu.Unlock()
}

var _ log.Log = (*memLog)(nil)
