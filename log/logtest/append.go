package logtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// job is one append waiting for the committer.
type job struct {
	topic     string
	partition int32
	data      []byte
	at        bool // AppendAt: the base offset must be the next offset
	done      func(int64, error)
}

type result struct {
	base int64
	err  error
}

// Append implements log.Log.
func (m *Mem) Append(ctx context.Context, topic string, partition int32, batches []byte) (int64, error) {
	return m.appendWait(ctx, job{topic: topic, partition: partition, data: batches})
}

// AppendAt implements log.Log. Idempotence checks are skipped.
func (m *Mem) AppendAt(ctx context.Context, topic string, partition int32, batches []byte) error {
	_, err := m.appendWait(ctx, job{topic: topic, partition: partition, data: batches, at: true})
	return err
}

// AppendAsync implements log.Log. done is called before AppendAsync returns
// unless the Mem was made with AsyncCommit.
func (m *Mem) AppendAsync(topic string, partition int32, batches []byte, done func(int64, error)) {
	if done == nil {
		done = func(int64, error) {}
	}
	j := job{topic: topic, partition: partition, data: batches, done: done}
	if m.opts.async {
		m.enqueue(j)
		return
	}
	done(m.appendWait(context.Background(), j))
}

func (m *Mem) appendWait(ctx context.Context, j job) (int64, error) {
	if m.opts.async {
		ch := make(chan result, 1)
		j.done = func(base int64, err error) { ch <- result{base, err} }
		m.enqueue(j)
		select {
		case r := <-ch:
			return r.base, r.err
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	}
	m.mu.Lock()
	base, end, err := m.appendLocked(j)
	d := m.syncDelay
	m.mu.Unlock()
	m.synced(d, []written{end})
	return base, err
}

// enqueue hands j to the committer, or fails it from a goroutine of its own
// once Close has begun.
func (m *Mem) enqueue(j job) {
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		go j.done(-1, log.ErrClosed)
		return
	}
	m.queue = append(m.queue, j)
	m.mu.Unlock()
	m.kick()
}

func (m *Mem) kick() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// commit is the committer goroutine (AsyncCommit), owned by the Mem and
// stopped by Close once the queue is empty.
func (m *Mem) commit() {
	defer close(m.done)
	for {
		m.mu.Lock()
		for len(m.queue) == 0 && !m.closing {
			m.mu.Unlock()
			<-m.wake
			m.mu.Lock()
		}
		if len(m.queue) == 0 {
			m.mu.Unlock()
			return
		}
		q := m.queue
		m.queue = nil
		res := make([]result, len(q))
		ends := make([]written, len(q))
		for i, j := range q {
			res[i].base, ends[i], res[i].err = m.appendLocked(j)
		}
		d := m.syncDelay
		m.mu.Unlock()
		m.synced(d, ends)
		for i, j := range q {
			j.done(res[i].base, res[i].err)
		}
	}
}

// written is where an append ended (p nil: nothing written).
type written struct {
	p   *part
	end int64
}

// synced ends a commit: the simulated sync, then the HWMs move past what
// it wrote and their watchers are signalled.
func (m *Mem) synced(d time.Duration, ends []written) {
	if d > 0 {
		time.Sleep(d)
	}
	m.mu.Lock()
	for _, e := range ends {
		if e.p != nil && e.end > e.p.hwm {
			e.p.hwm = e.end
			e.p.watch.Notify(e.end)
		}
	}
	m.mu.Unlock()
}

func (m *Mem) appendLocked(j job) (int64, written, error) {
	base, err := m.writeLocked(j)
	if err != nil && !errors.Is(err, log.ErrDuplicateSequence) {
		return base, written{}, err
	}
	p, _ := m.partLocked(j.topic, j.partition)
	return base, written{p, p.next}, err
}

func (m *Mem) writeLocked(j job) (int64, error) {
	if m.appendFault != nil {
		if err := m.appendFault(j.topic, j.partition); err != nil {
			if errors.Is(err, log.ErrDiskFull) {
				m.stats.Rejected++
			}
			return -1, err
		}
	}
	p, err := m.partLocked(j.topic, j.partition)
	if err != nil {
		return -1, err
	}
	hs, err := batch.ValidateAll(j.data)
	if err != nil {
		return -1, fmt.Errorf("%w: %v", log.ErrCorruptBatch, err)
	}
	for i := range hs {
		if max := m.topics[j.topic].cfg.MaxBatchBytes; hs[i].Size() > int(max) {
			return -1, fmt.Errorf("%w: %d bytes (max %d)", log.ErrBatchTooLarge, hs[i].Size(), max)
		}
	}
	if j.at {
		n := p.next
		for _, h := range hs {
			if h.BaseOffset != n {
				return -1, log.ErrNotNextOffset
			}
			n += int64(h.LastOffsetDelta) + 1
		}
	} else if dup, err := p.producers.Check(hs); err != nil {
		return dup, err
	}
	base := p.next
	rest := j.data
	for i := range hs {
		h := &hs[i]
		raw := rest[:h.Size()]
		rest = rest[h.Size():]
		batch.SetBaseOffset(raw, p.next)
		binary.BigEndian.PutUint32(raw[batch.OffLeaderEpoch:], 0) // as the log stamps it
		if !j.at {
			p.producers.Record(h, p.next)
		}
		p.batches = append(p.batches, append([]byte(nil), raw...))
		p.bases = append(p.bases, p.next)
		p.next += int64(h.LastOffsetDelta) + 1
		m.stats.AppendedBatches++
		m.stats.AppendedRecords += uint64(h.RecordCount)
	}
	m.stats.AppendedBytes += uint64(len(j.data))
	return base, nil
}
