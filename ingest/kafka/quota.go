package kafka

import (
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Produce quotas per user (Kafka's producer_byte_rate): each principal
// with a rate has a bucket that fills at rate bytes/s up to one second's
// worth. A produce that overdraws it is served, answered with
// throttle_time_ms (the time until the bucket is back to zero), and the
// connection is muted for that time (KIP-219: the client waits as well),
// so one chatty device slows itself down, not the others.

// quotas are the buckets of the principals that have a rate.
type quotas struct {
	mu      sync.Mutex
	buckets map[string]*bucket // guarded by mu
}

type bucket struct {
	tokens float64
	last   time.Time
}

// charge takes n bytes from user's bucket at rate bytes/s and returns the
// throttle time.
func (q *quotas) charge(user string, rate int64, n int) time.Duration {
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.buckets == nil {
		q.buckets = map[string]*bucket{}
	}
	b := q.buckets[user]
	if b == nil {
		b = &bucket{tokens: float64(rate), last: now}
		q.buckets[user] = b
	}
	b.tokens = min(float64(rate), b.tokens+now.Sub(b.last).Seconds()*float64(rate))
	b.last = now
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / float64(rate) * float64(time.Second))
}

// throttleProduce charges req to the principal's quota: the response
// carries the throttle time and the connection reads nothing more until
// it has passed.
func (c *conn) throttleProduce(sl *slot, req *kmsg.ProduceRequest) {
	if c.s.opts.ProducerByteRate == nil {
		return
	}
	rate := c.s.opts.ProducerByteRate(c.principal)
	if rate <= 0 {
		return
	}
	n := 0
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			n += len(p.Records)
		}
	}
	d := c.s.quotas.charge(c.principal, rate, n)
	if d <= 0 {
		return
	}
	c.s.stats.throttled.Add(1)
	c.mutedUntil = time.Now().Add(d)
	ms := int32(min(d.Milliseconds()+1, 1<<31-1))
	prev := sl.fix
	sl.fix = func(resp kmsg.Response) {
		if prev != nil {
			prev(resp)
		}
		resp.(*kmsg.ProduceResponse).ThrottleMillis = ms
	}
}

// waitMuted holds the reader while a throttle runs.
func (c *conn) waitMuted() {
	d := time.Until(c.mutedUntil)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.ctx.Done():
	case <-c.killed:
	case <-c.s.closing:
	}
}
