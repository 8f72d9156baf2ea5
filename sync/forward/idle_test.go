package forward_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/logtest"
	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/sync/forward/forwardtest"
)

// callCounter is the log with the calls a route makes to find work
// counted.
type callCounter struct {
	log.Log
	calls atomic.Int64
}

func (c *callCounter) Topics() []log.TopicInfo { c.calls.Add(1); return c.Log.Topics() }
func (c *callCounter) Read(t string, p int32, off int64, max int) ([]byte, error) {
	c.calls.Add(1)
	return c.Log.Read(t, p, off, max)
}
func (c *callCounter) Offsets(t string, p int32) (int64, int64, error) {
	c.calls.Add(1)
	return c.Log.Offsets(t, p)
}

// An idle route with everything sent and saved sleeps: it polls neither
// the topic list nor its partitions (no timer runs), and wakes for new
// data in its partitions and for a new matching topic.
func TestIdleRouteSleeps(t *testing.T) {
	mem := logtest.New(t)
	mem.CreateTopic("a", log.TopicConfig{Partitions: 2})
	forwardtest.Produce(t, mem, "a", 0, 0, 10, 10, 0)
	lg := &callCounter{Log: mem}
	sink := forwardtest.NewFakeSink()
	o := baseOptions(lg, sink, forward.Route{Name: "r", Topics: []string{"a", "b*"}})
	o.TopicRefreshInterval, o.CursorFlushInterval = 50*time.Millisecond, 50*time.Millisecond
	f := start(t, o)
	waitFor(t, "delivery", 5*time.Second, f, func() bool { return len(sink.Records()) == 10 })
	time.Sleep(500 * time.Millisecond) // ten ticks: saved, rates down to zero, quiet
	before := lg.calls.Load()
	time.Sleep(500 * time.Millisecond)
	if n := lg.calls.Load() - before; n != 0 {
		t.Fatalf("an idle route called the log %d times in 500 ms (ticks every 50 ms)", n)
	}
	forwardtest.Produce(t, mem, "a", 1, 0, 5, 10, 0)
	waitFor(t, "new data", 5*time.Second, f, func() bool { return len(sink.Records()) == 15 })
	mem.CreateTopic("b1", log.TopicConfig{})
	forwardtest.Produce(t, mem, "b1", 0, 0, 5, 10, 0)
	waitFor(t, "a new topic", 5*time.Second, f, func() bool { return len(sink.Records()) == 20 })
}
