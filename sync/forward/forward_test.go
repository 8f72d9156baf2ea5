package forward_test

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/logtest"
	"github.com/runnel/runnel/log/logtest/reexec"
	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/sync/forward/forwardtest"
)

func quiet() *slog.Logger {
	lvl := slog.LevelError + 1
	if os.Getenv("RUNNEL_TEST_LOG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

func baseOptions(lg log.Log, sink *forwardtest.FakeSink, routes ...forward.Route) forward.Options {
	return forward.Options{
		Log: lg, Logger: quiet(), NodeID: "n1", Site: "s1",
		Upstreams:  map[string]forward.Upstream{"default": {Kind: "kafka", Brokers: []string{"unused:9092"}}},
		Routes:     routes,
		Sinks:      map[string]forward.NewSinkFunc{"kafka": sink.Factory()},
		BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
	}
}

func start(t *testing.T, o forward.Options) *forward.Forwarder {
	t.Helper()
	f, err := forward.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func waitFor(t *testing.T, what string, timeout time.Duration, f *forward.Forwarder, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timeout waiting for %s: %+v", what, f.Routes())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func check(t *testing.T, recs []forward.Record, want map[forwardtest.Origin]int64) int {
	t.Helper()
	ch := forwardtest.NewChecker()
	for _, r := range recs {
		get := func(k string) ([]byte, bool) {
			for _, h := range r.Headers {
				if h.Key == k {
					return h.Value, true
				}
			}
			return nil, false
		}
		o, off, _, ok := forwardtest.OriginOf(get)
		if !ok || off != r.Offset || o.Partition != r.Partition {
			t.Fatalf("bad origin headers %v", r.Headers)
		}
		ch.Add(r.Topic, o, off)
	}
	return ch.Verify(t, want)
}

func TestValidate(t *testing.T) {
	lg := logtest.New(t)
	ok := forward.Options{Log: lg, NodeID: "n",
		Upstreams: map[string]forward.Upstream{"default": {Brokers: []string{"b:9092"}}, "m": {Kind: "mqtt", URL: "mqtt://h"}},
		Routes:    []forward.Route{{Topics: []string{"a*"}}, {Name: "x", Upstream: "m", Topics: []string{"b"}, Target: "{site}/{key}"}}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid options rejected: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(o *forward.Options)
	}{
		{"no log", func(o *forward.Options) { o.Log = nil }},
		{"no node", func(o *forward.Options) { o.NodeID = "" }},
		{"unknown upstream", func(o *forward.Options) { o.Routes[0].Upstream = "nope" }},
		{"no topics", func(o *forward.Options) { o.Routes[0].Topics = nil }},
		{"bad glob", func(o *forward.Options) { o.Routes[0].Topics = []string{"a["} }},
		{"bad start", func(o *forward.Options) { o.Routes[0].Start = "middle" }},
		{"bad placeholder", func(o *forward.Options) { o.Routes[0].Target = "{nope}" }},
		{"key on kafka", func(o *forward.Options) { o.Routes[0].Target = "{key}" }},
		{"dup name", func(o *forward.Options) { o.Routes[1].Name = o.Routes[0].Name; o.Routes[1].Name = "default:a*" }},
		{"kafka no brokers", func(o *forward.Options) { o.Upstreams["default"] = forward.Upstream{} }},
		{"bad sasl", func(o *forward.Options) {
			o.Upstreams["default"] = forward.Upstream{Brokers: []string{"b"}, SASL: forward.SASL{Mechanism: "GSSAPI"}}
		}},
		{"bad compression", func(o *forward.Options) {
			o.Upstreams["default"] = forward.Upstream{Brokers: []string{"b"}, Compression: "brotli"}
		}},
		{"cert without key", func(o *forward.Options) {
			o.Upstreams["default"] = forward.Upstream{Brokers: []string{"b"}, TLS: forward.TLS{CertFile: "c"}}
		}},
		{"mqtt no url", func(o *forward.Options) { o.Upstreams["m"] = forward.Upstream{Kind: "mqtt"} }},
		{"unknown kind", func(o *forward.Options) { o.Upstreams["m"] = forward.Upstream{Kind: "amqp"} }},
		{"cursor snapshots rarer than retention allows", func(o *forward.Options) { o.CursorSnapshotInterval = forward.CursorRetention }},
		{"no sink for kind", func(o *forward.Options) {
			o.Sinks = map[string]forward.NewSinkFunc{"mqtt": nil}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			o.Upstreams = map[string]forward.Upstream{}
			for k, v := range ok.Upstreams {
				o.Upstreams[k] = v
			}
			o.Routes = append([]forward.Route(nil), ok.Routes...)
			tc.mod(&o)
			if err := o.Validate(); !errors.Is(err, forward.ErrInvalidOptions) {
				t.Fatalf("Validate = %v, want ErrInvalidOptions", err)
			}
		})
	}
}

// TestRandomFailures: the sink fails 2% of records at random; everything
// still arrives, in order per partition, and the target template and
// headers are right.
func TestRandomFailures(t *testing.T) {
	lg := logtest.New(t)
	lg.CreateTopic("a", log.TopicConfig{Partitions: 3})
	want := map[forwardtest.Origin]int64{}
	for p := int32(0); p < 3; p++ {
		forwardtest.Produce(t, lg, "a", p, 0, 5000, 37, 3)
		want[forwardtest.Origin{Topic: "a", Partition: p}] = 5000
	}
	sink := forwardtest.NewFakeSink()
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	sink.Fail = func(*forward.Record) bool { mu.Lock(); defer mu.Unlock(); return rng.IntN(50) == 0 }
	f := start(t, baseOptions(lg, sink, forward.Route{Name: "r", Topics: []string{"a"}, Target: "{site}.{node}.{topic}", MaxInFlight: 300}))
	ch := func() bool { return f.Routes()[0].AckedRecords >= 15000 && f.Routes()[0].LagRecords == 0 }
	waitFor(t, "drain", 20*time.Second, f, ch)
	sink.Fail = nil
	recs := sink.Records()
	for _, r := range recs {
		if r.Topic != "s1.n1.a" {
			t.Fatalf("target %q", r.Topic)
		}
	}
	dups := check(t, recs, want)
	rs := f.Routes()[0]
	t.Logf("%d records, %d duplicates, %d retries", len(recs), dups, rs.Retries)
	if rs.Retries == 0 {
		t.Error("no retries counted")
	}
}

// TestSinkFactoryError: a sink that cannot be built is reported and
// retried; the forwarder keeps running and delivers once it works.
func TestSinkFactoryError(t *testing.T) {
	lg := logtest.New(t)
	lg.CreateTopic("a", log.TopicConfig{})
	forwardtest.Produce(t, lg, "a", 0, 0, 100, 10, 0)
	sink := forwardtest.NewFakeSink()
	var broken atomic.Bool
	broken.Store(true)
	o := baseOptions(lg, sink, forward.Route{Name: "r", Topics: []string{"a"}})
	o.Sinks = map[string]forward.NewSinkFunc{"kafka": func(n string, u forward.Upstream, l *slog.Logger) (forward.Sink, error) {
		if broken.Load() {
			return nil, errors.New("bad credentials file")
		}
		return sink, nil
	}}
	f := start(t, o)
	waitFor(t, "error visible", 5*time.Second, f, func() bool {
		rs := f.Routes()[0]
		return rs.State == forward.StateBackingOff && strings.Contains(rs.LastError, "bad credentials") && rs.LagRecords == 100
	})
	broken.Store(false)
	waitFor(t, "delivery", 5*time.Second, f, func() bool { return f.Routes()[0].AckedRecords == 100 })
}

// TestStartLatest: "latest" skips what existed at the first start, but not
// a partition created later, and the position survives a restart.
func TestStartLatest(t *testing.T) {
	lg := logtest.New(t)
	lg.CreateTopic("a", log.TopicConfig{})
	forwardtest.Produce(t, lg, "a", 0, 0, 50, 10, 0)
	sink := forwardtest.NewFakeSink()
	f := start(t, baseOptions(lg, sink, forward.Route{Name: "r", Topics: []string{"*"}, Start: forward.StartLatest}))
	waitFor(t, "partition", 5*time.Second, f, func() bool { return f.Routes()[0].Partitions == 1 })
	forwardtest.Produce(t, lg, "a", 0, 50, 10, 10, 0)
	lg.CreateTopic("b", log.TopicConfig{})
	forwardtest.Produce(t, lg, "b", 0, 0, 5, 5, 0)
	lg.CreateTopic("__internal", log.TopicConfig{})
	forwardtest.Produce(t, lg, "__internal", 0, 0, 5, 5, 0)
	waitFor(t, "15 records", 5*time.Second, f, func() bool { return f.Routes()[0].AckedRecords == 15 })
	time.Sleep(50 * time.Millisecond)
	for _, r := range sink.Records() {
		if r.Topic == "a" && r.Offset < 50 || r.Topic == "__internal" {
			t.Fatalf("forwarded %s@%d", r.Topic, r.Offset)
		}
	}
	f.Close()
	forwardtest.Produce(t, lg, "a", 0, 60, 10, 10, 0)
	sink2 := forwardtest.NewFakeSink()
	f2 := start(t, baseOptions(lg, sink2, forward.Route{Name: "r", Topics: []string{"*"}, Start: forward.StartLatest}))
	waitFor(t, "10 more", 5*time.Second, f2, func() bool { return f2.Routes()[0].AckedRecords == 10 })
	if r := sink2.Records(); r[0].Offset != 60 {
		t.Fatalf("restart resumed at %d, want 60", r[0].Offset)
	}
}

// TestBandwidthCap: the acknowledged byte rate never exceeds the cap by
// more than 10%, and the limiter does not starve the route (at least half
// the cap: a busy machine may fall short of the cap for reasons of its
// own, so the lower bound is loose; BenchmarkBandwidthCap in sync/kafka
// measures how close to the cap a real upstream gets).
func TestBandwidthCap(t *testing.T) {
	reexec.SkipIfEmulated(t, "the emulated sender cannot reach the capped rate")
	lg := logtest.New(t)
	lg.CreateTopic("a", log.TopicConfig{Partitions: 2})
	for p := int32(0); p < 2; p++ {
		forwardtest.Produce(t, lg, "a", p, 0, 20000, 100, 0)
	}
	sink := forwardtest.NewFakeSink()
	o := baseOptions(lg, sink, forward.Route{Name: "r", Topics: []string{"a"}})
	const bw = 200_000
	o.Upstreams["default"] = forward.Upstream{Kind: "kafka", Brokers: []string{"x:1"}, BandwidthBytesPerSec: bw}
	f := start(t, o)
	time.Sleep(500 * time.Millisecond) // past the initial burst
	b0, t0 := f.Routes()[0].AckedBytes, time.Now()
	time.Sleep(3 * time.Second)
	b1, t1 := f.Routes()[0].AckedBytes, time.Now()
	rate := float64(b1-b0) / t1.Sub(t0).Seconds()
	t.Logf("rate %.0f B/s for a cap of %d B/s (%.1f%%)", rate, bw, 100*rate/bw)
	if rate > 1.1*bw {
		t.Errorf("rate %.0f B/s exceeds the cap of %d by more than 10%%", rate, bw)
	}
	if rate < 0.5*bw {
		t.Errorf("rate %.0f B/s under half the cap of %d", rate, bw)
	}
}

// TestPriority: on a capped upstream, an "alarms" route (priority 10) is
// current within a fraction of a second while a "telemetry" backlog drains.
func TestPriority(t *testing.T) {
	lg := logtest.New(t)
	lg.CreateTopic("telemetry", log.TopicConfig{Partitions: 2})
	lg.CreateTopic("alarms", log.TopicConfig{})
	for p := int32(0); p < 2; p++ {
		forwardtest.Produce(t, lg, "telemetry", p, 0, 20000, 100, 0)
	}
	sink := forwardtest.NewFakeSink()
	o := baseOptions(lg, sink,
		forward.Route{Name: "telemetry", Topics: []string{"telemetry"}},
		forward.Route{Name: "alarms", Topics: []string{"alarms"}, Priority: 10})
	o.Upstreams["default"] = forward.Upstream{Kind: "kafka", Brokers: []string{"x:1"}, BandwidthBytesPerSec: 100_000}
	f := start(t, o)
	time.Sleep(300 * time.Millisecond)
	var worst time.Duration
	for i := 0; i < 10; i++ {
		before := f.Routes()[1].AckedRecords
		t0 := time.Now()
		forwardtest.Produce(t, lg, "alarms", 0, i*5, 5, 5, 0)
		waitFor(t, "alarm", 5*time.Second, f, func() bool { return f.Routes()[1].AckedRecords >= before+5 })
		worst = max(worst, time.Since(t0))
		time.Sleep(50 * time.Millisecond)
	}
	tel := f.Routes()[0]
	t.Logf("worst alarm latency %v; telemetry lag %d records", worst, tel.LagRecords)
	if tel.LagRecords == 0 {
		t.Fatal("telemetry drained: the test did not exercise a short link")
	}
	if worst > time.Second {
		t.Errorf("alarm latency %v behind a telemetry backlog", worst)
	}
}

// TestPauseAndStatus: a paused route holds its data and reports lag and
// the age of the oldest unsent record; resuming delivers everything.
func TestPauseAndStatus(t *testing.T) {
	lg := logtest.New(t)
	lg.CreateTopic("a", log.TopicConfig{Partitions: 2})
	forwardtest.Produce(t, lg, "a", 0, 0, 100, 10, 0)
	forwardtest.Produce(t, lg, "a", 1, 0, 50, 10, 0)
	sink := forwardtest.NewFakeSink()
	f := start(t, baseOptions(lg, sink, forward.Route{Name: "r", Topics: []string{"a"}, Paused: true}))
	waitFor(t, "paused status", 5*time.Second, f, func() bool {
		rs := f.Routes()[0]
		return rs.State == forward.StatePaused && rs.LagRecords == 150 && rs.Partitions == 2
	})
	rs := f.Routes()[0]
	// forwardtest timestamps are from November 2023.
	if age := time.Since(time.UnixMilli(1700000000000)); rs.OldestUnsentAge < age-time.Minute || rs.OldestUnsentAge > age+time.Minute {
		t.Errorf("oldest unsent age %v, want about %v", rs.OldestUnsentAge, age)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(sink.Records()); n != 0 {
		t.Fatalf("paused route sent %d records", n)
	}
	if err := f.SetPaused("nope", false); !errors.Is(err, forward.ErrUnknownRoute) {
		t.Errorf("SetPaused(unknown) = %v", err)
	}
	if err := f.SetPaused("r", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery", 5*time.Second, f, func() bool {
		rs := f.Routes()[0]
		return rs.AckedRecords == 150 && rs.LagRecords == 0 && rs.OldestUnsentAge == 0 && rs.State == forward.StateConnected
	})
	if s := f.Stats(); s.AckedRecords != 150 || s.Routes != 1 {
		t.Errorf("stats %+v", s)
	}
}

// TestReadErrorBackoff: a failing log read is reported and retried with
// backoff (no busy loop while the log keeps changing), then recovers.
func TestReadErrorBackoff(t *testing.T) {
	lg := logtest.New(t)
	lg.CreateTopic("a", log.TopicConfig{})
	lg.SetReadError(errors.New("disk on fire"))
	forwardtest.Produce(t, lg, "a", 0, 0, 10, 10, 0)
	sink := forwardtest.NewFakeSink()
	f := start(t, baseOptions(lg, sink, forward.Route{Name: "r", Topics: []string{"a"}}))
	// Keep the log changing so the route is woken all the time.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		lg.CreateTopic("other", log.TopicConfig{})
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				forwardtest.Produce(t, lg, "other", 0, i, 1, 1, 0)
			}
		}
	}()
	time.Sleep(time.Second)
	close(stop)
	<-done
	rs := f.Routes()[0]
	if !strings.Contains(rs.LastError, "disk on fire") {
		t.Errorf("read error not reported: %+v", rs)
	}
	if rs.Errors == 0 || rs.Errors > 20 {
		t.Errorf("%d read errors in 1 s: want a few (backoff)", rs.Errors)
	}
	lg.SetReadError(nil)
	waitFor(t, "recovery", 5*time.Second, f, func() bool { return f.Routes()[0].AckedRecords == 10 })
}

func TestFlagOptions(t *testing.T) {
	ups, routes := forward.FlagOptions("a:9092, b:9092", []string{"sensors.*", "alarms"}, "{site}.")
	if u := ups["default"]; u.Kind != "kafka" || len(u.Brokers) != 2 || u.Brokers[1] != "b:9092" {
		t.Fatalf("upstreams %+v", ups)
	}
	if len(routes) != 1 || routes[0].Target != "{site}.{topic}" || len(routes[0].Topics) != 2 || routes[0].Upstream != "default" {
		t.Fatalf("routes %+v", routes)
	}
	o := forward.Options{Log: logtest.New(t), NodeID: "n", Upstreams: ups, Routes: routes}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if ups, routes := forward.FlagOptions("", nil, ""); ups != nil || routes != nil {
		t.Fatal("empty flags should give nothing")
	}
}

// TestTopicRecreated: a topic deleted and created again is forwarded from
// its new beginning.
func TestTopicRecreated(t *testing.T) {
	lg := logtest.New(t)
	lg.CreateTopic("a", log.TopicConfig{})
	forwardtest.Produce(t, lg, "a", 0, 0, 100, 10, 0)
	sink := forwardtest.NewFakeSink()
	o := baseOptions(lg, sink, forward.Route{Name: "r", Topics: []string{"a"}})
	o.TopicRefreshInterval = 20 * time.Millisecond
	f := start(t, o)
	waitFor(t, "first 100", 5*time.Second, f, func() bool { return f.Routes()[0].AckedRecords == 100 })
	lg.DeleteTopic("a")
	waitFor(t, "deletion noticed", 5*time.Second, f, func() bool { return f.Routes()[0].Partitions == 0 })
	lg.CreateTopic("a", log.TopicConfig{})
	forwardtest.Produce(t, lg, "a", 0, 0, 30, 10, 0)
	waitFor(t, "30 more", 5*time.Second, f, func() bool { return f.Routes()[0].AckedRecords == 130 })
	if recs := sink.Records(); recs[100].Offset != 0 {
		t.Fatalf("recreated topic forwarded from %d", recs[100].Offset)
	}
}

// TestCursorBeyondLogEndIsClamped: the log lost an unsynced tail (fsync
// interval/never) but the cursor in meta survived beyond the new end. Records
// appended again at those offsets must still be forwarded.
func TestCursorBeyondLogEndIsClamped(t *testing.T) {
	lg := logtest.New(t)
	lg.CreateTopic("a", log.TopicConfig{})
	forwardtest.Produce(t, lg, "a", 0, 0, 20, 10, 0)
	// As if offsets 20..99 had been forwarded and then lost from the log.
	if err := lg.Meta().SetCursor(forward.CursorPrefix+"r", "a", 0, 100); err != nil {
		t.Fatal(err)
	}
	sink := forwardtest.NewFakeSink()
	f := start(t, baseOptions(lg, sink, forward.Route{Name: "r", Topics: []string{"a"}}))
	forwardtest.Produce(t, lg, "a", 0, 20, 100, 10, 0) // offsets 20..119
	waitFor(t, "100 records", 5*time.Second, f, func() bool { return f.Routes()[0].AckedRecords == 100 })
	got := sink.Records()
	if got[0].Offset != 20 {
		t.Fatalf("resumed at offset %d, want 20 (records 20..99 skipped)", got[0].Offset)
	}
}

// TestUndecodableBatchSkipped: a CRC-valid batch whose records cannot be
// decoded (here: a record length that runs past the batch) does not hold
// back the records behind it; it is counted as not forwarded and reported.
func TestUndecodableBatchSkipped(t *testing.T) {
	lg, err := log.Open(&log.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	if err := lg.CreateTopic("a", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	forwardtest.Produce(t, lg, "a", 0, 0, 10, 10, 0) // offsets 0-9
	var b batch.Builder
	for range 5 {
		b.Add(1, nil, []byte("poison"), nil)
	}
	bad := b.Bytes()
	// The first record's length varint (right after the 61-byte header):
	// claim far more bytes than the batch has, then fix the CRC so only
	// record decoding can tell.
	bad[batch.HeaderSize] = 0xfe
	bad[batch.HeaderSize+1] = 0x7f
	binary.BigEndian.PutUint32(bad[batch.OffCRC:], batch.Checksum(bad))
	if _, err := batch.Validate(bad); err != nil {
		t.Fatalf("poison batch must pass validation: %v", err)
	}
	if _, err := batch.Records(bad); !errors.Is(err, batch.ErrRecord) {
		t.Fatalf("poison batch decodes: %v", err)
	}
	if _, err := lg.Append(context.Background(), "a", 0, bad); err != nil { // offsets 10-14
		t.Fatal(err)
	}
	forwardtest.Produce(t, lg, "a", 0, 10, 10, 10, 0) // offsets 15-24
	sink := forwardtest.NewFakeSink()
	// The first three sends of the record right after the poison batch
	// fail: each failure rewinds the route to before the poison batch,
	// which must still be counted once.
	var fails atomic.Int32
	sink.Fail = func(rec *forward.Record) bool { return rec.Offset == 15 && fails.Add(1) <= 3 }
	f := start(t, baseOptions(lg, sink, forward.Route{Name: "r", Topics: []string{"a"}}))
	waitFor(t, "the records after the poison batch", 10*time.Second, f, func() bool { return f.Routes()[0].AckedRecords >= 20 })
	rs := f.Routes()[0]
	if fails.Load() < 3 {
		t.Fatalf("only %d failed sends", fails.Load())
	}
	if rs.Dropped != 5 {
		t.Fatalf("undecodable records counted %d times, want 5 (once)", rs.Dropped)
	}
	// Delivered: 0-9 and 15-24 (a rewind may send some twice); never
	// the poison batch's 10-14.
	seen := map[int64]bool{}
	for _, r := range sink.Records() {
		if r.Offset >= 10 && r.Offset < 15 {
			t.Fatalf("forwarded offset %d of the undecodable batch", r.Offset)
		}
		seen[r.Offset] = true
	}
	if len(seen) != 20 {
		t.Fatalf("forwarded %d distinct offsets, want 20", len(seen))
	}
}

// TestEpochHeader: every forwarded record carries its batch's leader
// epoch, and records written after the log was opened again after a
// power cut (a new node epoch) carry a higher one, so an upstream that drops duplicates by the
// origin headers tells an offset written again after a lost tail from a
// resend of the same record.
func TestEpochHeader(t *testing.T) {
	dir := t.TempDir()
	lg, err := log.Open(&log.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := lg.CreateTopic("a", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	forwardtest.Produce(t, lg, "a", 0, 0, 10, 5, 0)
	// The directory as a power cut leaves it (fsync always: every
	// acknowledged append is in it), opened again.
	cut := t.TempDir()
	if err := os.CopyFS(cut, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := lg.Close(); err != nil {
		t.Fatal(err)
	}
	lg, err = log.Open(&log.Options{Dir: cut})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	forwardtest.Produce(t, lg, "a", 0, 10, 10, 5, 0)
	sink := forwardtest.NewFakeSink()
	f := start(t, baseOptions(lg, sink, forward.Route{Name: "r", Topics: []string{"a"}}))
	waitFor(t, "20 records", 10*time.Second, f, func() bool { return f.Routes()[0].AckedRecords >= 20 })
	epochs := map[int64]int64{}
	for _, r := range sink.Records() {
		e, err := strconv.ParseInt(header(r, forward.HeaderEpoch), 10, 32)
		if err != nil {
			t.Fatalf("offset %d: %s header %q", r.Offset, forward.HeaderEpoch, header(r, forward.HeaderEpoch))
		}
		epochs[r.Offset] = e
	}
	if len(epochs) != 20 || epochs[0] < 0 || epochs[9] != epochs[0] || epochs[10] <= epochs[9] || epochs[19] != epochs[10] {
		t.Fatalf("epochs by offset %v: want one epoch for 0-9 and a higher one for 10-19", epochs)
	}
}
