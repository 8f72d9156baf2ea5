package mqtt

import (
	"sync"

	"github.com/mochi-mqtt/server/v2/packets"
)

// runnel: outQueue replaces the buffered channel of
// MaximumClientWritesPending packet pointers that v2.7.9 allocates for every
// client up front (8 KiB per idle connection at 1,024). It holds the same
// bound, but its memory follows what is queued: an idle client holds an
// empty slice and a one-slot channel.
type outQueue struct {
	mu    sync.Mutex
	buf   []*packets.Packet
	head  int           // buf[head:] are queued
	max   int           // most packets queued at once
	ready chan struct{} // capacity 1: something may have been queued
}

func newOutQueue(max int32) *outQueue {
	return &outQueue{max: int(max), ready: make(chan struct{}, 1)}
}

// push queues pk, or reports false when max packets are already queued.
func (q *outQueue) push(pk *packets.Packet) bool {
	q.mu.Lock()
	if len(q.buf)-q.head >= q.max {
		q.mu.Unlock()
		return false
	}
	if q.head > 0 && len(q.buf) == cap(q.buf) {
		// Full slice with a consumed prefix: slide down instead of growing.
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	q.buf = append(q.buf, pk)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// pushForce queues pk even past max (for packets already held elsewhere).
func (q *outQueue) pushForce(pk *packets.Packet) {
	q.mu.Lock()
	q.buf = append(q.buf, pk)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop returns the oldest queued packet, or nil.
func (q *outQueue) pop() *packets.Packet {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.buf) {
		return nil
	}
	pk := q.buf[q.head]
	q.buf[q.head] = nil
	q.head++
	if q.head == len(q.buf) {
		// Drained: keep a small slice for reuse, give a large one back.
		if cap(q.buf) > 64 {
			q.buf = nil
		} else {
			q.buf = q.buf[:0]
		}
		q.head = 0
	}
	return pk
}

// len is the number of packets queued.
func (q *outQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.buf) - q.head
}
