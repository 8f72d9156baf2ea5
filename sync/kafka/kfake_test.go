package kafka_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/logtest"
	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/sync/forward/forwardtest"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func newKfake(t testing.TB) *kfake.Cluster {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestKfakeForward forwards several partitions (keyed and unkeyed) and a
// topic created after start, and checks content, origin headers, order,
// lag and the saved cursors.
func TestKfakeForward(t *testing.T) {
	c := newKfake(t)
	lg := logtest.New(t)
	want := map[forwardtest.Origin]int64{}
	if err := lg.CreateTopic("sensors", log.TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	lg.CreateTopic("ignored", log.TopicConfig{Partitions: 1})
	forwardtest.Produce(t, lg, "ignored", 0, 0, 10, 10, 0)
	for p := int32(0); p < 4; p++ {
		keys := 0
		if p%2 == 0 {
			keys = 7
		}
		forwardtest.Produce(t, lg, "sensors", p, 0, 3000, 100, keys)
		want[forwardtest.Origin{Topic: "sensors", Partition: p}] = 3000
	}
	col := collect(t, c.ListenAddrs(), "site-a.sensors", "site-a.sensors-late")
	f := startForwarder(t, lg, fwdConfig{brokers: c.ListenAddrs(), routes: []forward.Route{{
		Name: "main", Topics: []string{"sensors*"}, Target: "{site}.{topic}", MaxInFlight: 1000,
	}}})
	if !lg.Held(forward.CursorPrefix + "main") {
		t.Error("HoldRetention not called for the route cursor")
	}
	// A topic created while running is picked up.
	lg.CreateTopic("sensors-late", log.TopicConfig{Partitions: 1})
	forwardtest.Produce(t, lg, "sensors-late", 0, 0, 500, 50, 0)
	want[forwardtest.Origin{Topic: "sensors-late", Partition: 0}] = 500
	col.waitComplete(t, want, 20*time.Second, f)
	dups := col.ch.Verify(t, want)
	t.Logf("duplicates: %d; %s", dups, routesString(f))
	if dups != 0 {
		t.Errorf("%d duplicates without any fault", dups)
	}
	// Lag drains to zero and the state is connected.
	deadline := time.Now().Add(5 * time.Second)
	for {
		rs := f.Routes()
		if rs[0].LagRecords == 0 && rs[0].State == forward.StateConnected && rs[0].InFlight == 0 {
			if rs[0].Partitions != 5 || rs[0].AckedRecords != 12500 {
				t.Errorf("status %+v", rs[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("route never caught up: %s", routesString(f))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close() // idempotent
	cur, err := lg.Meta().Cursors(forward.CursorPrefix + "main")
	if err != nil {
		t.Fatal(err)
	}
	for o, n := range want {
		if got := cur[metaTP(o)]; got != n {
			t.Errorf("cursor %s/%d = %d, want %d", o.Topic, o.Partition, got, n)
		}
	}
	if _, ok := cur[metaTP(forwardtest.Origin{Topic: "ignored"})]; ok {
		t.Error("route has a cursor for a topic it does not match")
	}
}

// TestKfakeProduceErrors injects produce errors (non-retriable error codes
// and dropped connections): the route backs off, rewinds and everything
// still arrives in order.
func TestKfakeProduceErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(req *kmsg.ProduceRequest) (kmsg.Response, error)
	}{
		{"error-code", func(req *kmsg.ProduceRequest) (kmsg.Response, error) {
			resp := req.ResponseKind().(*kmsg.ProduceResponse)
			for _, rt := range req.Topics {
				st := kmsg.NewProduceResponseTopic()
				st.Topic, st.TopicID = rt.Topic, rt.TopicID
				for _, rp := range rt.Partitions {
					sp := kmsg.NewProduceResponseTopicPartition()
					sp.Partition = rp.Partition
					sp.ErrorCode = kerr.InvalidRecord.Code
					st.Partitions = append(st.Partitions, sp)
				}
				resp.Topics = append(resp.Topics, st)
			}
			return resp, nil
		}},
		{"connection-drop", func(*kmsg.ProduceRequest) (kmsg.Response, error) {
			return nil, errors.New("injected connection drop")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newKfake(t)
			var calls, failed atomic.Int32
			c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				n := calls.Add(1)
				// Fail the 3rd..5th produce requests.
				if n < 3 || n > 5 {
					return nil, nil, false
				}
				failed.Add(1)
				resp, err := tc.fail(kreq.(*kmsg.ProduceRequest))
				return resp, err, true
			})
			lg := logtest.New(t)
			lg.CreateTopic("t", log.TopicConfig{Partitions: 3})
			want := map[forwardtest.Origin]int64{}
			for p := int32(0); p < 3; p++ {
				forwardtest.Produce(t, lg, "t", p, 0, 2000, 50, 0)
				want[forwardtest.Origin{Topic: "t", Partition: p}] = 2000
			}
			col := collect(t, c.ListenAddrs(), "t")
			f := startForwarder(t, lg, fwdConfig{brokers: c.ListenAddrs(), routes: []forward.Route{{
				Name: "r", Topics: []string{"t"}, MaxInFlight: 500,
			}}, up: func(u *forward.Upstream) { u.Compression, u.DeliveryTimeout = "none", time.Second }})
			col.waitComplete(t, want, 30*time.Second, f)
			dups := col.ch.Verify(t, want)
			rs := f.Routes()[0]
			t.Logf("failed requests %d, duplicates %d; %s", failed.Load(), dups, routesString(f))
			if failed.Load() == 0 {
				t.Fatal("no fault was injected")
			}
			if tc.name == "error-code" && (rs.Errors == 0 || rs.Retries == 0 || rs.LastError == "") {
				t.Errorf("errors not visible in status: %+v", rs)
			}
			if dups > 3*500 {
				t.Errorf("%d duplicates, more than the in-flight windows", dups)
			}
		})
	}
}

// TestKfakeUnreachable starts with an upstream that refuses connections:
// Start succeeds, the route reports backing-off with an error (and,
// while it retries, a down_since that stays put), and once the upstream
// exists at that address the data flows.
func TestKfakeUnreachable(t *testing.T) {
	lg := logtest.New(t)
	lg.CreateTopic("t", log.TopicConfig{Partitions: 2})
	want := map[forwardtest.Origin]int64{}
	for p := int32(0); p < 2; p++ {
		forwardtest.Produce(t, lg, "t", p, 0, 1000, 100, 3)
		want[forwardtest.Origin{Topic: "t", Partition: p}] = 1000
	}
	port := freePort(t)
	addr := "127.0.0.1:" + port
	f := startForwarder(t, lg, fwdConfig{brokers: []string{addr}, routes: []forward.Route{{
		Name: "r", Topics: []string{"t"},
	}}, up: func(u *forward.Upstream) { u.DeliveryTimeout = time.Second }})
	deadline := time.Now().Add(10 * time.Second)
	for {
		rs := f.Routes()[0]
		if rs.State == forward.StateBackingOff && rs.LastError != "" && rs.LagRecords == 2000 {
			t.Logf("while down: %s", routesString(f))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("route did not report the unreachable upstream: %s", routesString(f))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Retrying the backlog, the route goes between backing-off and
	// starting; down_since stays at the start of the spell.
	down := f.Routes()[0].DownSince
	if down.IsZero() {
		t.Fatalf("down_since not set while backing-off: %+v", f.Routes()[0])
	}
	changes, last := 0, f.Routes()[0].StateSince
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		rs := f.Routes()[0]
		if !rs.DownSince.Equal(down) {
			t.Fatalf("down_since moved from %v while down: %+v", down, rs)
		}
		if !rs.StateSince.Equal(last) {
			changes, last = changes+1, rs.StateSince
		}
	}
	t.Logf("%d state changes in 3 s while down; down_since kept", changes)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(2), kfake.Ports(atoi(t, port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	col := collect(t, c.ListenAddrs(), "t")
	col.waitComplete(t, want, 20*time.Second, f)
	col.ch.Verify(t, want)
	if rs := f.Routes()[0]; rs.State != forward.StateConnected || !rs.DownSince.IsZero() {
		t.Errorf("after the drain: state %s, down_since %v (want connected, none)", rs.State, rs.DownSince)
	}
}

// TestKfakeLogStartJump: records dropped from the log before they were
// forwarded are counted, logged and skipped; upstream then holds exactly
// the records that were still in the log when the route reached them.
func TestKfakeLogStartJump(t *testing.T) {
	c := newKfake(t)
	lg := logtest.New(t)
	lg.CreateTopic("t", log.TopicConfig{Partitions: 1})
	forwardtest.Produce(t, lg, "t", 0, 0, 1000, 100, 0)
	lg.DropBefore("t", 0, 400) // batches [0,100)…[300,400) are gone
	col := collect(t, c.ListenAddrs(), "t")
	f := startForwarder(t, lg, fwdConfig{brokers: c.ListenAddrs(), routes: []forward.Route{{Name: "r", Topics: []string{"t"}}}})
	// Starting "earliest" begins at the log start: nothing is lost yet.
	waitRoute(t, f, 10*time.Second, "600 records acknowledged from the log start", func(rs forward.RouteStatus) bool {
		return rs.AckedRecords >= 600
	})
	if rs := f.Routes()[0]; rs.Dropped != 0 || rs.AckedRecords != 600 {
		t.Errorf("fresh start from the log start: dropped %d, acked %d (want 0, 600)", rs.Dropped, rs.AckedRecords)
	}
	f.Close()
	// Now the log moves past the saved cursor (1000) while we are away.
	forwardtest.Produce(t, lg, "t", 0, 1000, 1000, 100, 0)
	lg.DropBefore("t", 0, 1500)
	f2 := startForwarder(t, lg, fwdConfig{brokers: c.ListenAddrs(), routes: []forward.Route{{Name: "r", Topics: []string{"t"}}}})
	waitRoute(t, f2, 20*time.Second, "the 500 records after the jump acknowledged", func(rs forward.RouteStatus) bool {
		return rs.AckedRecords >= 500
	})
	rs := f2.Routes()[0]
	if rs.Dropped != 500 || rs.LastError == "" || rs.AckedRecords != 500 {
		t.Errorf("after the jump: dropped %d (want 500), acked %d (want 500), last error %q", rs.Dropped, rs.AckedRecords, rs.LastError)
	}
	// Upstream: [400,1000) and [1500,2000), each offset at least once, in
	// order, nothing of what was dropped.
	var want []int64
	for off := int64(400); off < 2000; off++ {
		if off < 1000 || off >= 1500 {
			want = append(want, off)
		}
	}
	o := forwardtest.Origin{Topic: "t"}
	deadline := time.Now().Add(10 * time.Second)
	for len(col.ch.Offsets(o)) < len(want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := col.ch.Offsets(o); !slices.Equal(got, want) {
		t.Errorf("upstream holds %d distinct offsets %s, want %d: [400,1000) and [1500,2000)", len(got), spans(got), len(want))
	}
	col.ch.Verify(t, nil) // order and content of what arrived
}

// waitRoute waits until cond holds for f's first route, failing t after
// timeout.
func waitRoute(t *testing.T, f *forward.Forwarder, timeout time.Duration, what string, cond func(forward.RouteStatus) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond(f.Routes()[0]) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, timeout, routesString(f))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// spans renders sorted offsets as ranges, e.g. "[400,1000) [1500,2000)".
func spans(offs []int64) string {
	var b strings.Builder
	for i := 0; i < len(offs); {
		j := i + 1
		for j < len(offs) && offs[j] == offs[j-1]+1 {
			j++
		}
		fmt.Fprintf(&b, "[%d,%d) ", offs[i], offs[j-1]+1)
		i = j
	}
	return strings.TrimSpace(b.String())
}

// TestIdleRouteState: a route with nothing to send still reports whether
// its upstream is reachable.
func TestIdleRouteState(t *testing.T) {
	c := newKfake(t)
	lg := logtest.New(t)
	lg.CreateTopic("idle", log.TopicConfig{})
	up := startForwarder(t, lg, fwdConfig{brokers: c.ListenAddrs(), routes: []forward.Route{{Name: "up", Topics: []string{"idle"}}}})
	down := startForwarder(t, lg, fwdConfig{brokers: []string{"127.0.0.1:" + freePort(t)}, routes: []forward.Route{{Name: "down", Topics: []string{"idle"}}},
		up: func(u *forward.Upstream) { u.DeliveryTimeout = time.Second }})
	deadline := time.Now().Add(10 * time.Second)
	for {
		u, d := up.Routes()[0], down.Routes()[0]
		if u.State == forward.StateConnected && d.State == forward.StateBackingOff && d.LastError != "" {
			t.Logf("down: %s", d.LastError)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle states: up %s, down %s", routesString(up), routesString(down))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIdleRouteNoticesLostCluster: a route that has sent everything
// probes its upstream, so the cluster going away shows as backing-off
// within seconds (not at the next record), and its return as connected,
// each with a new since-time.
func TestIdleRouteNoticesLostCluster(t *testing.T) {
	port := freePort(t)
	newCluster := func() *kfake.Cluster {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1), kfake.Ports(atoi(t, port)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := newCluster()
	lg := logtest.New(t)
	lg.CreateTopic("idle", log.TopicConfig{})
	forwardtest.Produce(t, lg, "idle", 0, 0, 100, 10, 0)
	f := startForwarder(t, lg, fwdConfig{brokers: c.ListenAddrs(), routes: []forward.Route{{Name: "idle", Topics: []string{"idle"}}},
		up: func(u *forward.Upstream) { u.DeliveryTimeout, u.ProbeInterval = time.Second, 500*time.Millisecond }})
	waitRoute(t, f, 20*time.Second, "delivery", func(rs forward.RouteStatus) bool {
		return rs.AckedRecords == 100 && rs.State == forward.StateConnected
	})
	up := f.Routes()[0]

	// Within 10 s: ProbeInterval plus the 1 s probe timeout, with room
	// for a loaded machine; without probes the loss shows at the next
	// record only.
	const bound = 10 * time.Second
	c.Close()
	closed := time.Now()
	waitRoute(t, f, bound, "backing-off after the cluster closed", func(rs forward.RouteStatus) bool {
		return rs.State == forward.StateBackingOff && rs.StateSince.After(up.StateSince)
	})
	down := f.Routes()[0]
	if !down.DownSince.Equal(down.StateSince) {
		t.Errorf("down_since %v, want the time the route left connected (%v)", down.DownSince, down.StateSince)
	}
	t.Logf("closed cluster noticed %v after Close: %s", down.StateSince.Sub(closed).Round(time.Millisecond), down.LastError)
	c = newCluster()
	defer c.Close()
	back := time.Now()
	waitRoute(t, f, bound, "connected after the cluster returned", func(rs forward.RouteStatus) bool {
		return rs.State == forward.StateConnected && rs.StateSince.After(down.StateSince)
	})
	t.Logf("returned cluster noticed %v after it listened", f.Routes()[0].StateSince.Sub(back).Round(time.Millisecond))
	if rs := f.Routes()[0]; !rs.DownSince.IsZero() {
		t.Errorf("down_since %v while connected", rs.DownSince)
	}
}
