package kafka_test

import (
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/logtest"
	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/sync/forward/forwardtest"
	"github.com/runnel/runnel/sync/kafka/kafkatest"
)

// fill creates topic with parts partitions of n records each (batches of
// per, keyed on even partitions) and returns what must arrive.
func fill(t testing.TB, lg log.Log, topic string, parts int32, n int) map[forwardtest.Origin]int64 {
	t.Helper()
	if err := lg.CreateTopic(topic, log.TopicConfig{Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	want := map[forwardtest.Origin]int64{}
	for p := int32(0); p < parts; p++ {
		keys := 0
		if p%2 == 0 {
			keys = 100
		}
		forwardtest.Produce(t, lg, topic, p, 0, n, 500, keys)
		want[forwardtest.Origin{Topic: topic, Partition: p}] = int64(n)
	}
	return want
}

func waitAcked(t testing.TB, f *forward.Forwarder, n uint64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for f.Stats().AckedRecords < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d acked: %s", f.Routes()[0].AckedRecords, routesString(f))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The real-Kafka tests forward to Apache Kafka (KRaft, single node) and
// check upstream that every record arrived, in order per partition, with
// its origin headers. Each starts its own broker (~5-15 s).

// TestRealKafka100k forwards 100,000 records from 4 partitions, and (on
// the same broker, which does not auto-create topics) a route whose target
// topic does not exist: reported and retried until the topic is created.
func TestRealKafka100k(t *testing.T) {
	b := kafkatest.StartOpts(t, kafkatest.Options{Partitions: 4, DisableAutoCreate: true})
	brokers := []string{b.Addr()}
	{
		lg := logtest.New(t)
		want := fill(t, lg, "missing", 1, 100)
		f := startForwarder(t, lg, fwdConfig{brokers: brokers, routes: []forward.Route{{
			Name: "missing", Topics: []string{"missing"}, Target: "central.{topic}",
		}}, up: func(u *forward.Upstream) { u.DeliveryTimeout = 2 * time.Second }})
		deadline := time.Now().Add(20 * time.Second)
		for {
			rs := f.Routes()[0]
			if rs.LastError != "" && rs.State == forward.StateBackingOff {
				t.Logf("missing topic reported: %s", rs.LastError)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("missing topic not reported: %s", routesString(f))
			}
			time.Sleep(20 * time.Millisecond)
		}
		b.CreateTopic("central.missing", 1)
		col := collect(t, brokers, "central.missing")
		col.waitComplete(t, want, 20*time.Second, f)
		col.ch.Verify(t, want)
		f.Close()
	}
	{
		lg := logtest.New(t)
		want := fill(t, lg, "bulk", 4, 25000)
		b.CreateTopic("site-a.bulk", 4)
		col := collect(t, brokers, "site-a.bulk")
		start := time.Now()
		f := startForwarder(t, lg, fwdConfig{brokers: brokers, routes: []forward.Route{{
			Name: "bulk", Topics: []string{"bulk"}, Target: "{site}.{topic}",
		}}})
		waitAcked(t, f, 100000, 40*time.Second)
		el := time.Since(start)
		col.waitComplete(t, want, 20*time.Second, f)
		dups := col.ch.Verify(t, want)
		t.Logf("100,000 records acknowledged in %v (%.0f records/s), %d duplicates", el.Round(time.Millisecond), 100000/el.Seconds(), dups)
		if dups != 0 {
			t.Errorf("%d duplicates without faults", dups)
		}
	}
}

// TestRealKafkaDownAtStart: the upstream is down when forwarding starts
// (the route reports backing-off), then comes up: everything arrives.
func TestRealKafkaDownAtStart(t *testing.T) {
	b := kafkatest.StartOpts(t, kafkatest.Options{Partitions: 4})
	brokers := []string{b.Addr()}
	{
		lg := logtest.New(t)
		want := fill(t, lg, "late", 2, 5000)
		b.Kill()
		t0 := time.Now()
		f := startForwarder(t, lg, fwdConfig{brokers: brokers, routes: []forward.Route{{
			Name: "late", Topics: []string{"late"},
		}}, up: func(u *forward.Upstream) { u.DeliveryTimeout = 2 * time.Second }})
		deadline := time.Now().Add(15 * time.Second)
		for {
			rs := f.Routes()[0]
			if rs.State == forward.StateBackingOff && rs.LastError != "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no backing-off while the upstream is down: %s", routesString(f))
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("down noticed after %v", time.Since(t0).Round(time.Millisecond))
		b.Restart()
		t.Logf("restarted after %v", time.Since(t0).Round(time.Millisecond))
		col := collect(t, brokers, "late")
		waitAcked(t, f, 10000, 30*time.Second)
		t.Logf("all acknowledged after %v", time.Since(t0).Round(time.Millisecond))
		col.waitComplete(t, want, 30*time.Second, f)
		dups := col.ch.Verify(t, want)
		t.Logf("complete after %v; duplicates %d; %s", time.Since(t0).Round(time.Millisecond), dups, routesString(f))
	}
}

// TestRealKafkaKilledMidDrain: the broker is killed (SIGKILL) in the
// middle of a drain and restarted: nothing lost, duplicates bounded.
func TestRealKafkaKilledMidDrain(t *testing.T) {
	b := kafkatest.StartOpts(t, kafkatest.Options{Partitions: 4})
	brokers := []string{b.Addr()}
	{
		lg := logtest.New(t)
		want := fill(t, lg, "drain", 4, 25000)
		b.CreateTopic("drain", 4)
		const window = 20000
		f := startForwarder(t, lg, fwdConfig{brokers: brokers, routes: []forward.Route{{
			Name: "drain", Topics: []string{"drain"}, MaxInFlight: window,
		}}, up: func(u *forward.Upstream) { u.DeliveryTimeout = 2 * time.Second }})
		waitAcked(t, f, 20000, 30*time.Second)
		b.Kill()
		killedAt := f.Routes()[0].AckedRecords
		time.Sleep(200 * time.Millisecond)
		t0 := time.Now()
		b.Restart()
		t.Logf("restarted after %v", time.Since(t0).Round(time.Millisecond))
		col := collect(t, brokers, "drain")
		col.waitComplete(t, want, 40*time.Second, f)
		dups := col.ch.Verify(t, want)
		t.Logf("complete %v after the kill; killed after %d acked; duplicates %d; %s", time.Since(t0).Round(time.Millisecond), killedAt, dups, routesString(f))
		if rs := f.Routes()[0]; rs.Retries == 0 {
			t.Errorf("the kill was not noticed: %+v", rs)
		}
		if tot, _, _ := col.ch.Counts(); tot > 100000+4*window {
			t.Errorf("%d records upstream: more duplicates than the in-flight windows allow", tot)
		}
	}
}

// TestRealKafkaIdleRouteNoticesKill: a route that has sent everything to
// Apache Kafka probes it, so a broker killed (kill -9) while the route is
// idle shows as backing-off within seconds, and the restarted broker as
// connected again, each with a new since-time.
func TestRealKafkaIdleRouteNoticesKill(t *testing.T) {
	b := kafkatest.StartOpts(t, kafkatest.Options{Partitions: 1})
	lg := logtest.New(t)
	fill(t, lg, "idle", 1, 100)
	f := startForwarder(t, lg, fwdConfig{brokers: []string{b.Addr()}, routes: []forward.Route{{Name: "idle", Topics: []string{"idle"}}},
		up: func(u *forward.Upstream) { u.DeliveryTimeout, u.ProbeInterval = 2*time.Second, time.Second }})
	waitRoute(t, f, 60*time.Second, "delivery", func(rs forward.RouteStatus) bool {
		return rs.AckedRecords == 100 && rs.State == forward.StateConnected
	})
	up := f.Routes()[0]
	b.Kill()
	killed := time.Now()
	// ProbeInterval plus the 2 s probe timeout, with room for a loaded
	// machine.
	waitRoute(t, f, 15*time.Second, "backing-off after the kill", func(rs forward.RouteStatus) bool {
		return rs.State == forward.StateBackingOff && rs.StateSince.After(up.StateSince)
	})
	down := f.Routes()[0]
	t.Logf("killed broker noticed %v after kill -9: %s", down.StateSince.Sub(killed).Round(time.Millisecond), down.LastError)
	b.Restart()
	back := time.Now()
	waitRoute(t, f, 30*time.Second, "connected after the restart", func(rs forward.RouteStatus) bool {
		return rs.State == forward.StateConnected && rs.StateSince.After(down.StateSince)
	})
	t.Logf("restarted broker noticed %v after it was ready", f.Routes()[0].StateSince.Sub(back).Round(time.Millisecond))
}
