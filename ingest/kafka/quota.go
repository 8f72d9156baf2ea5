package kafka

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Produce quotas per user (Options.Quotas, Kafka's producer_byte_rate). A
// produce that overdraws its user's budget is served, answered with
// throttle_time_ms (the time until the budget is back to zero), and the
// connection is muted for that time (KIP-219: the client waits as well),
// so one chatty device slows itself down, not the others.

// throttleProduce charges req to the principal's quota: the response
// carries the throttle time and the connection reads nothing more until
// it has passed.
func (c *conn) throttleProduce(sl *slot, req *kmsg.ProduceRequest) {
	if c.s.opts.Quotas == nil {
		return
	}
	n := 0
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			n += len(p.Records)
		}
	}
	d := c.s.opts.Quotas.Charge(c.principal, n)
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
