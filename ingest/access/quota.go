package access

import (
	"sync"
	"time"
)

// Quotas are produce quotas per principal (Kafka's producer_byte_rate):
// each principal with a rate has a bucket that fills at rate bytes/s up
// to one second's worth; Charge takes what a produce writes and returns
// how long its sender must be held to stay at its rate. One Quotas shared
// by the protocols makes one budget per user across them. Safe for
// concurrent use.
type Quotas struct {
	rate func(principal string) int64

	mu      sync.Mutex
	buckets map[string]*bucket // guarded by mu
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewQuotas returns quotas with rate giving each principal's bytes/s
// (<= 0: none).
func NewQuotas(rate func(principal string) int64) *Quotas {
	return &Quotas{rate: rate, buckets: map[string]*bucket{}}
}

// Charge takes n bytes from principal's budget and returns the throttle
// time (0 within the rate or without a quota). A nil Quotas has none.
func (q *Quotas) Charge(principal string, n int) time.Duration {
	if q == nil {
		return 0
	}
	rate := q.rate(principal)
	if rate <= 0 {
		return 0
	}
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	b := q.buckets[principal]
	if b == nil {
		b = &bucket{tokens: float64(rate), last: now}
		q.buckets[principal] = b
	}
	b.tokens = min(float64(rate), b.tokens+now.Sub(b.last).Seconds()*float64(rate))
	b.last = now
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / float64(rate) * float64(time.Second))
}
