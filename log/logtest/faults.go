package logtest

import (
	"time"

	"github.com/runnel/runnel/log/batch"
)

// SetAppendFault makes f decide, before anything is written, whether an
// append to (topic, partition) fails and with what error; f returning nil,
// or f nil, lets appends through.
func (m *Mem) SetAppendFault(f func(topic string, partition int32) error) {
	m.mu.Lock()
	m.appendFault = f
	m.mu.Unlock()
}

// SetAppendError makes every later append fail with err (nil heals).
func (m *Mem) SetAppendError(err error) {
	var f func(string, int32) error
	if err != nil {
		f = func(string, int32) error { return err }
	}
	m.SetAppendFault(f)
}

// SetReadError makes every Read fail with err (nil heals).
func (m *Mem) SetReadError(err error) {
	m.mu.Lock()
	m.readErr = err
	m.mu.Unlock()
}

// SetSyncDelay sets how long each commit takes before it completes and
// its batches become readable, as a slow fsync would (under AsyncCommit, one delay per
// group of queued appends).
func (m *Mem) SetSyncDelay(d time.Duration) {
	m.mu.Lock()
	m.syncDelay = d
	m.mu.Unlock()
}

// DropBefore deletes a partition's whole batches that end below offset, as
// drop-oldest retention deletes segments; the log-start offset moves up.
func (m *Mem) DropBefore(topic string, partition int32, offset int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.partLocked(topic, partition)
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
}
