package forward

import (
	"context"
	"sync"
	"time"
)

// limiter is a token bucket of bytes per second shared by the routes of
// one upstream. A waiter never takes tokens while a waiter of higher
// priority is waiting, so when bandwidth is short the highest-priority
// route with data goes first. A nil *limiter allows everything.
type limiter struct {
	rate  float64 // bytes per second
	burst float64

	mu      sync.Mutex // guards the fields below
	tokens  float64
	last    time.Time
	waiting map[int]int // priority → number of waiters
}

func newLimiter(bytesPerSec int64) *limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	r := float64(bytesPerSec)
	return &limiter{rate: r, burst: max(r/10, 1), last: time.Now(), waiting: map[int]int{}}
}

// chunk is the largest group of bytes worth asking for at once.
func (l *limiter) chunk() int {
	if l == nil {
		return 1 << 30
	}
	return int(l.burst)
}

// wait blocks until n bytes may be sent by a route of priority prio.
// Requests larger than the burst go into debt (later callers wait), so the
// long-run rate stays exact.
func (l *limiter) wait(ctx context.Context, prio, n int) error {
	if l == nil || n <= 0 {
		return nil
	}
	l.mu.Lock()
	l.waiting[prio]++
	defer func() {
		l.mu.Lock()
		if l.waiting[prio]--; l.waiting[prio] == 0 {
			delete(l.waiting, prio)
		}
		l.mu.Unlock()
	}()
	var t *time.Timer
	for {
		now := time.Now()
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
		l.last = now
		higher := false
		for p := range l.waiting {
			if p > prio {
				higher = true
				break
			}
		}
		need := min(float64(n), l.burst)
		var d time.Duration
		switch {
		case higher:
			d = 5 * time.Millisecond
		case l.tokens >= need:
			l.tokens -= float64(n)
			l.mu.Unlock()
			return nil
		default:
			d = time.Duration((need - l.tokens) / l.rate * float64(time.Second))
			d = max(d, time.Millisecond)
		}
		l.mu.Unlock()
		if t == nil {
			t = time.NewTimer(d)
			defer t.Stop()
		} else {
			t.Reset(d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		l.mu.Lock()
	}
}
