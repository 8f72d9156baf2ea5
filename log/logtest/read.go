package logtest

import (
	"sort"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// Read implements log.Log.
func (m *Mem) Read(topic string, partition int32, offset int64, maxBytes int) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.readErr != nil {
		return nil, m.readErr
	}
	p, err := m.partLocked(topic, partition)
	if err != nil {
		return nil, err
	}
	if offset < p.start || offset > p.hwm {
		return nil, log.ErrOffsetOutOfRange
	}
	if offset == p.hwm {
		return nil, nil
	}
	i := sort.Search(len(p.bases), func(i int) bool { return p.bases[i] > offset }) - 1
	var out []byte
	for ; i < len(p.batches) && p.bases[i] < p.hwm; i++ {
		if len(out) > 0 && len(out)+len(p.batches[i]) > maxBytes {
			break
		}
		out = append(out, p.batches[i]...)
	}
	return out, nil
}

// Offsets implements log.Log.
func (m *Mem) Offsets(topic string, partition int32) (int64, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.partLocked(topic, partition)
	if err != nil {
		return 0, 0, err
	}
	return p.start, p.hwm, nil
}

// OffsetForTime implements log.Log.
func (m *Mem) OffsetForTime(topic string, partition int32, ts int64) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.partLocked(topic, partition)
	if err != nil {
		return 0, err
	}
	for i, b := range p.batches {
		if p.bases[i] >= p.hwm {
			break
		}
		if h, _ := batch.ParseHeader(b); h.MaxTimestamp >= ts {
			return p.bases[i], nil
		}
	}
	return p.hwm, nil
}

// Watch implements log.Log.
func (m *Mem) Watch(w *log.Waiter, topic string, partition int32, after int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.partLocked(topic, partition)
	if err != nil {
		return err
	}
	p.watch.Add(w, after, p.hwm)
	return nil
}

// WatchTopics implements log.Log.
func (m *Mem) WatchTopics(w *log.Waiter) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.topicWatch.Add(w, m.topicVer, m.topicVer)
}

// Records returns every record a partition holds, for assertions; none for
// an unknown topic or partition.
func (m *Mem) Records(topic string, partition int32) ([]batch.Record, error) {
	m.mu.Lock()
	var bs [][]byte
	if t, ok := m.topics[topic]; ok && partition >= 0 && int(partition) < len(t.parts) {
		bs = append(bs, t.parts[partition].batches...)
	}
	m.mu.Unlock()
	var out []batch.Record
	for _, b := range bs {
		rs, err := batch.Records(b)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}
