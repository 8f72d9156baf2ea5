package kafka

import (
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// memBudget bounds the bytes of request frames all connections together
// hold from the moment a frame's length is read until its response is
// ready (Kafka's queued.max.request.bytes). A connection whose next frame
// does not fit stops reading (its peer is held back by TCP) until earlier
// requests complete; waiters are served in arrival order, and a frame
// larger than the whole budget is let through when nothing else is held.
//
// After a burst of at least freeAfterBytes, once nothing is held for
// freeDelay, the memory is given back to the OS (debug.FreeOSMemory):
// large frames are not pooled (pool.go), so a burst leaves garbage the
// runtime would otherwise return only slowly.
type memBudget struct {
	max int64

	mu     sync.Mutex // guards used, peak, queue, freeT, closed
	used   int64
	peak   int64 // the most held since memory was last given back
	queue  []*budgetWaiter
	freeT  *time.Timer
	closed bool

	waits atomic.Uint64 // frames that waited for room
	frees atomic.Uint64 // times memory was given back to the OS
	held  atomic.Int64  // mirrors used, for Stats
}

type budgetWaiter struct {
	n     int64
	ready chan struct{}
}

const (
	freeAfterBytes = 16 << 20
	freeDelay      = time.Second
)

func newMemBudget(max int64) *memBudget { return &memBudget{max: max} }

// acquire takes n bytes, waiting for room until one of cancel is closed
// (false: nothing taken).
func (b *memBudget) acquire(n int64, cancel1, cancel2 <-chan struct{}) bool {
	if b.max <= 0 {
		return true
	}
	b.mu.Lock()
	if len(b.queue) == 0 && b.fitsLocked(n) {
		b.takeLocked(n)
		b.mu.Unlock()
		return true
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.queue = append(b.queue, w)
	b.mu.Unlock()
	b.waits.Add(1)
	select {
	case <-w.ready:
		return true
	case <-cancel1:
	case <-cancel2:
	}
	b.mu.Lock()
	select {
	case <-w.ready: // granted meanwhile
		b.mu.Unlock()
		b.release(n)
		return false
	default:
	}
	for i, q := range b.queue {
		if q == w {
			b.queue = append(b.queue[:i], b.queue[i+1:]...)
			break
		}
	}
	b.grantLocked() // the head may have been the one that did not fit
	b.mu.Unlock()
	return false
}

func (b *memBudget) fitsLocked(n int64) bool { return b.used+n <= b.max || b.used == 0 }

func (b *memBudget) takeLocked(n int64) {
	b.used += n
	b.peak = max(b.peak, b.used)
	b.held.Store(b.used)
}

func (b *memBudget) grantLocked() {
	for len(b.queue) > 0 && b.fitsLocked(b.queue[0].n) {
		w := b.queue[0]
		b.queue[0] = nil
		b.queue = b.queue[1:]
		b.takeLocked(w.n)
		close(w.ready)
	}
	if len(b.queue) == 0 {
		b.queue = nil
	}
}

// release returns n bytes taken by acquire.
func (b *memBudget) release(n int64) {
	if b.max <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	b.held.Store(b.used)
	b.grantLocked()
	if b.used == 0 && b.peak >= freeAfterBytes && b.freeT == nil && !b.closed {
		b.freeT = time.AfterFunc(freeDelay, b.giveBack)
	}
}

// giveBack returns freed memory to the OS if nothing is held.
func (b *memBudget) giveBack() {
	b.mu.Lock()
	b.freeT = nil
	idle := b.used == 0 && !b.closed
	if idle {
		b.peak = 0
	}
	b.mu.Unlock()
	if idle {
		debug.FreeOSMemory()
		b.frees.Add(1)
	}
}

// close stops a pending give-back (Shutdown).
func (b *memBudget) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.freeT != nil {
		b.freeT.Stop()
		b.freeT = nil
	}
}
