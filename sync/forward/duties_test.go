package forward_test

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/logtest"
	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/sync/forward/forwardtest"
)

func header(r forward.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// byOrigin groups arrived records by runnel-node and returns their
// offsets per node.
func byOrigin(recs []forward.Record) map[string][]int64 {
	out := map[string][]int64{}
	for _, r := range recs {
		n := header(r, forward.HeaderNode)
		out[n] = append(out[n], r.Offset)
	}
	return out
}

// cursorView reads lg's cursor log.
func cursorView(t *testing.T, lg log.Log) *forward.CursorView {
	t.Helper()
	v := forward.NewCursorView()
	if _, err := forward.ReadCursorLog(lg, forward.CursorTopic, 0, v); err != nil {
		t.Fatal(err)
	}
	return v
}

func dutyOptions(lg log.Log, sink *forwardtest.FakeSink, d *forwardtest.Duties, routes ...forward.Route) forward.Options {
	o := baseOptions(lg, sink, routes...)
	o.Duties = d
	o.CursorTopic = forward.CursorTopic
	o.CursorFlushInterval = 10 * time.Millisecond
	o.TopicRefreshInterval = 20 * time.Millisecond
	return o
}

// TestDutyForeignOrigin: a mirror of node n2's partition, handed over as a
// duty, goes upstream as n2 would have sent it (runnel-node n2, the
// origin's topic name, {node} and {topic} of the origin, the origin's
// offsets), from the cursor the duty gives; local topics that a route
// matches but that are no duty are not forwarded; the cursor log records
// the progress under the origin's name and the duty's epoch.
func TestDutyForeignOrigin(t *testing.T) {
	lg := logtest.New(t)
	for _, n := range []string{"sensors", "n2.sensors", "sensors-x"} {
		lg.CreateTopic(n, log.TopicConfig{})
	}
	forwardtest.Produce(t, lg, "sensors", 0, 0, 200, 10, 0)
	forwardtest.Produce(t, lg, "n2.sensors", 0, 0, 500, 10, 0)
	forwardtest.Produce(t, lg, "sensors-x", 0, 0, 50, 10, 0)
	duties := forwardtest.NewDuties(
		forward.Duty{Origin: "n1", Topic: "sensors", Epoch: 1, Why: "own"},
		forward.Duty{Origin: "n2", Topic: "sensors", Local: "n2.sensors", Epoch: 5, From: map[string]int64{"r": 100}, Why: "takeover"},
	)
	sink := forwardtest.NewFakeSink()
	f := start(t, dutyOptions(lg, sink, duties, forward.Route{Name: "r", Topics: []string{"sensors*"}, Target: "{site}.{node}.{topic}"}))
	waitFor(t, "drain", 10*time.Second, f, func() bool { return f.Routes()[0].AckedRecords == 600 })
	recs := sink.Records()
	for _, r := range recs {
		node := header(r, forward.HeaderNode)
		if header(r, forward.HeaderTopic) != "sensors" || r.Topic != "s1."+node+".sensors" || header(r, forward.HeaderOffset) != strconv.FormatInt(r.Offset, 10) {
			t.Fatalf("record %s: headers %v", r.Topic, r.Headers)
		}
	}
	got := byOrigin(recs)
	if len(got["n1"]) != 200 || len(got["n2"]) != 400 || got["n2"][0] != 100 || len(got) != 2 {
		t.Fatalf("arrived: n1 %d, n2 %d from %v, %d origins", len(got["n1"]), len(got["n2"]), got["n2"][:1], len(got))
	}
	ps := f.Partitions()
	if len(ps) != 2 || ps[0].Origin != "n1" || ps[1].Origin != "n2" || ps[1].Local != "n2.sensors" || ps[1].Epoch != 5 || ps[1].Why != "takeover" {
		t.Fatalf("partitions %+v", ps)
	}
	waitFor(t, "cursor log", 5*time.Second, f, func() bool {
		c, ok := cursorView(t, lg).Cursor(forward.DutyKey{Origin: "n2", Topic: "sensors"}, "r")
		return ok && c.Offset == 500 && c.Epoch == 5 && c.Node == "n1"
	})
}

// TestDutyStopDrains: a duty that leaves stops sending at once, waits for
// its records in flight, saves its final cursor (a mirror's leaves meta,
// living on in the cursor log) and is reported Stopped once, with each
// route's final position.
func TestDutyStopDrains(t *testing.T) {
	lg := logtest.New(t)
	lg.CreateTopic("n2.sensors", log.TopicConfig{})
	forwardtest.Produce(t, lg, "n2.sensors", 0, 0, 100, 10, 0)
	d := forward.Duty{Origin: "n2", Topic: "sensors", Local: "n2.sensors", Epoch: 2}
	duties := forwardtest.NewDuties(d)
	sink := forwardtest.NewFakeSink()
	gate := make(chan struct{})
	var openGate sync.Once
	var held atomic.Int64
	sink.Fail = func(*forward.Record) bool {
		held.Add(1)
		<-gate
		return false
	}
	f := start(t, dutyOptions(lg, sink, duties,
		forward.Route{Name: "a", Topics: []string{"sensors"}}, forward.Route{Name: "b", Topics: []string{"sens*"}}))
	t.Cleanup(func() { openGate.Do(func() { close(gate) }) }) // runs before the forwarder closes
	waitFor(t, "records in flight", 5*time.Second, f, func() bool { return held.Load() > 0 })
	duties.Set()
	time.Sleep(100 * time.Millisecond)
	if s := duties.StoppedDuties(); len(s) != 0 {
		t.Fatalf("stopped with records in flight: %+v", s)
	}
	sentBefore := f.Stats().SentRecords
	openGate.Do(func() { close(gate) })
	waitFor(t, "stopped", 5*time.Second, f, func() bool { return len(duties.StoppedDuties()) == 1 })
	s := duties.StoppedDuties()[0]
	if s.Duty.Epoch != 2 || s.Duty.Origin != "n2" {
		t.Fatalf("stopped %+v", s.Duty)
	}
	st := f.Stats()
	if st.SentRecords != sentBefore {
		t.Fatalf("sent %d more records after the duty ended", st.SentRecords-sentBefore)
	}
	var total int64
	for _, r := range []string{"a", "b"} {
		off, ok := s.Cursors[r]
		if !ok {
			t.Fatalf("no final cursor of route %s: %v", r, s.Cursors)
		}
		if c, _ := cursorView(t, lg).Cursor(forward.DutyKey{Origin: "n2", Topic: "sensors"}, r); c.Offset != off {
			t.Fatalf("cursor log says %d for route %s, Stopped says %d", c.Offset, r, off)
		}
		if _, ok, _ := lg.Meta().Cursor(forward.CursorPrefix+r, "n2.sensors", 0); ok {
			t.Fatalf("a mirror's cursor stays in meta after its duty ended (route %s)", r)
		}
		total += off
	}
	if total != int64(st.AckedRecords) {
		t.Fatalf("final cursors %v do not cover the %d records acknowledged", s.Cursors, st.AckedRecords)
	}
	if ps := f.Partitions(); len(ps) != 0 {
		t.Fatalf("still forwarding %+v", ps)
	}
	if len(duties.StoppedDuties()) != 1 {
		t.Fatal("Stopped called twice")
	}
}

// TestDutyEpochChange: a duty of the same partition under a new epoch
// (hand-back and takeover again) stops the old one (reported Stopped) and
// continues from the furthest of its own cursor and the new duty's From.
func TestDutyEpochChange(t *testing.T) {
	lg := logtest.New(t)
	lg.CreateTopic("sensors", log.TopicConfig{})
	forwardtest.Produce(t, lg, "sensors", 0, 0, 100, 10, 0)
	d := forward.Duty{Origin: "n1", Topic: "sensors", Epoch: 1}
	duties := forwardtest.NewDuties(d)
	sink := forwardtest.NewFakeSink()
	f := start(t, dutyOptions(lg, sink, duties, forward.Route{Name: "r", Topics: []string{"sensors"}}))
	waitFor(t, "first", 5*time.Second, f, func() bool { return f.Routes()[0].AckedRecords == 100 })
	// Another node forwarded up to 300 meanwhile (its cursor is From);
	// the route is paused so the old duty sends none of it.
	f.SetPaused("r", true)
	// The route sees the pause at its next turn; records produced before
	// that could still go out under the old duty.
	waitFor(t, "paused", 5*time.Second, f, func() bool { return f.Routes()[0].State == forward.StatePaused })
	forwardtest.Produce(t, lg, "sensors", 0, 100, 300, 10, 0)
	d2 := d
	d2.Epoch, d2.From = 3, map[string]int64{"r": 300}
	duties.Set(d2)
	waitFor(t, "new epoch", 5*time.Second, f, func() bool {
		ps := f.Partitions()
		return len(ps) == 1 && ps[0].Epoch == 3
	})
	f.SetPaused("r", false)
	waitFor(t, "second", 5*time.Second, f, func() bool { return f.Routes()[0].AckedRecords == 200 })
	if s := duties.StoppedDuties(); len(s) != 1 || s[0].Duty.Epoch != 1 || s[0].Cursors["r"] != 100 {
		t.Fatalf("stopped %+v", s)
	}
	offs := byOrigin(sink.Records())["n1"]
	if offs[100] != 300 || offs[len(offs)-1] != 399 {
		t.Fatalf("second duty sent from %d to %d, want 300..399", offs[100], offs[len(offs)-1])
	}
	waitFor(t, "cursor log", 5*time.Second, f, func() bool {
		c, ok := cursorView(t, lg).Cursor(forward.DutyKey{Origin: "n1", Topic: "sensors"}, "r")
		return ok && c.Offset == 400 && c.Epoch == 3
	})
	waitFor(t, "meta", 5*time.Second, f, func() bool {
		s, _, _ := lg.Meta().Cursor(forward.CursorPrefix+"r", "sensors", 0)
		return s == 400
	})
}

// TestDutyForeignCursorAheadOfCopy: a mirror behind the cursor its origin
// reached is waited for, never re-sent from its end.
func TestDutyForeignCursorAheadOfCopy(t *testing.T) {
	lg := logtest.New(t)
	lg.CreateTopic("n2.sensors", log.TopicConfig{})
	forwardtest.Produce(t, lg, "n2.sensors", 0, 0, 100, 10, 0)
	duties := forwardtest.NewDuties(forward.Duty{Origin: "n2", Topic: "sensors", Local: "n2.sensors", Epoch: 2, From: map[string]int64{"r": 150}})
	sink := forwardtest.NewFakeSink()
	f := start(t, dutyOptions(lg, sink, duties, forward.Route{Name: "r", Topics: []string{"sensors"}}))
	time.Sleep(200 * time.Millisecond)
	if n := len(sink.Records()); n != 0 {
		t.Fatalf("%d records sent from behind the origin's cursor", n)
	}
	forwardtest.Produce(t, lg, "n2.sensors", 0, 100, 100, 10, 0)
	waitFor(t, "records past the cursor", 5*time.Second, f, func() bool { return f.Routes()[0].AckedRecords == 50 })
	if offs := byOrigin(sink.Records())["n2"]; offs[0] != 150 {
		t.Fatalf("sent from %d, want 150", offs[0])
	}
}

// TestDutyNoRoute: a duty no route matches is reported stopped as soon
// as it leaves; a duty whose local copy does not exist yet starts when it
// appears.
func TestDutyNoRoute(t *testing.T) {
	lg := logtest.New(t)
	lg.CreateTopic("other", log.TopicConfig{})
	odd := forward.Duty{Origin: "n2", Topic: "other", Local: "other", Epoch: 1}
	later := forward.Duty{Origin: "n3", Topic: "sensors", Local: "n3.sensors", Epoch: 1}
	duties := forwardtest.NewDuties(odd, later)
	sink := forwardtest.NewFakeSink()
	f := start(t, dutyOptions(lg, sink, duties, forward.Route{Name: "r", Topics: []string{"sensors"}}))
	duties.Set(later)
	waitFor(t, "stopped", 5*time.Second, f, func() bool { return len(duties.StoppedDuties()) == 1 })
	if s := duties.StoppedDuties()[0]; s.Duty.Origin != "n2" || s.Cursors != nil {
		t.Fatalf("stopped %+v", s)
	}
	lg.CreateTopic("n3.sensors", log.TopicConfig{})
	forwardtest.Produce(t, lg, "n3.sensors", 0, 0, 10, 10, 0)
	waitFor(t, "copy forwarded", 5*time.Second, f, func() bool { return f.Routes()[0].AckedRecords == 10 })
}

// TestRoutesHash: the hash ignores order, credentials and tuning, and
// changes with anything that decides where records go.
func TestRoutesHash(t *testing.T) {
	base := func() forward.Options {
		return forward.Options{NodeID: "n1",
			Upstreams: map[string]forward.Upstream{"default": {Brokers: []string{"a:9092", "b:9092"}}},
			Routes:    []forward.Route{{Name: "x", Topics: []string{"s*"}}, {Name: "y", Topics: []string{"t"}, Target: "site.{topic}"}}}
	}
	h := forward.RoutesHash(base())
	same := []func(o *forward.Options){
		func(o *forward.Options) { o.NodeID = "n2" },
		func(o *forward.Options) { o.Routes[0], o.Routes[1] = o.Routes[1], o.Routes[0] },
		func(o *forward.Options) {
			o.Upstreams["default"] = forward.Upstream{Brokers: []string{"b:9092", "a:9092"}}
		},
		func(o *forward.Options) {
			o.Upstreams["default"] = forward.Upstream{Brokers: []string{"a:9092", "b:9092"}, SASL: forward.SASL{Mechanism: "PLAIN", Username: "u", Password: "p"}}
		},
		func(o *forward.Options) { o.Routes[0].MaxInFlight = 5 },
		func(o *forward.Options) { o.Upstreams["unused"] = forward.Upstream{Brokers: []string{"c:9092"}} },
	}
	for i, mod := range same {
		o := base()
		mod(&o)
		if got := forward.RoutesHash(o); got != h {
			t.Errorf("change %d altered the hash", i)
		}
	}
	differ := []func(o *forward.Options){
		func(o *forward.Options) { o.Routes[1].Target = "{topic}" },
		func(o *forward.Options) { o.Routes[0].Topics = []string{"s*", "u"} },
		func(o *forward.Options) { o.Routes[0].Name = "z" },
		func(o *forward.Options) { o.Routes[0].Priority = 1 },
		func(o *forward.Options) { o.Routes = o.Routes[:1] },
		func(o *forward.Options) { o.Upstreams["default"] = forward.Upstream{Brokers: []string{"a:9092"}} },
		func(o *forward.Options) {
			o.Upstreams["default"] = forward.Upstream{Brokers: []string{"a:9092", "b:9092"}, BandwidthBytesPerSec: 1000}
		},
		func(o *forward.Options) {
			o.Upstreams["default"] = forward.Upstream{Brokers: []string{"a:9092", "b:9092"}, Partitioning: "origin"}
		},
	}
	for i, mod := range differ {
		o := base()
		mod(&o)
		if got := forward.RoutesHash(o); got == h {
			t.Errorf("change %d kept the hash", i)
		}
	}
}

// TestForwards: a duty provider can ask whether any route sends a topic
// (globs skip internal topics, exact names do not).
func TestForwards(t *testing.T) {
	lg := logtest.New(t)
	f, err := forward.New(baseOptions(lg, forwardtest.NewFakeSink(),
		forward.Route{Name: "a", Topics: []string{"sensors*"}}, forward.Route{Name: "b", Topics: []string{"__audit"}}))
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]bool{"sensors": true, "sensors.x": true, "other": false, "__sensors": false, "__audit": true, forward.CursorTopic: false} {
		if got := f.Forwards(topic); got != want {
			t.Errorf("Forwards(%q) = %v, want %v", topic, got, want)
		}
	}
}
