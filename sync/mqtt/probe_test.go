package mqtt_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/logtest"
	"github.com/runnel/runnel/sync/forward"
)

// An idle route probes its MQTT upstream: a broker that stops answering
// on an open connection (the process frozen with SIGSTOP, so no TCP reset
// and no PINGRESP) and a broker that goes away (stopped) both show as
// backing-off within seconds, and the broker's return as connected again,
// each with a new since-time.
func TestIdleRouteNoticesLostBroker(t *testing.T) {
	m := startMosquitto(t)
	lg := logtest.New(t)
	lg.CreateTopic("idle", log.TopicConfig{})
	f := startForwarder(t, lg, forward.Upstream{Kind: "mqtt", URL: "mqtt://" + m.addr(),
		DeliveryTimeout: time.Second, ProbeInterval: 500 * time.Millisecond},
		forward.Route{Name: "idle", Upstream: "central", Topics: []string{"idle"}})
	defer f.Close()

	// Within 10 s: ProbeInterval plus the 1 s probe timeout, with room
	// for a loaded machine; the keep-alive alone (30 s) would take 45 s.
	const bound = 10 * time.Second
	state := func(want string, after time.Time) forward.RouteStatus {
		t.Helper()
		start := time.Now()
		waitFor(t, "state "+want, bound, f, func() bool {
			rs := f.Routes()[0]
			return rs.State == want && rs.StateSince.After(after)
		})
		rs := f.Routes()[0]
		t.Logf("%s after %v (since %s, last error %q)", want, time.Since(start).Round(time.Millisecond), rs.StateSince.Format("15:04:05.000"), rs.LastError)
		return rs
	}
	up := state(forward.StateConnected, time.Time{})

	if err := m.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	down := state(forward.StateBackingOff, up.StateSince)
	t.Logf("frozen broker noticed %v after SIGSTOP", down.StateSince.Sub(stopped).Round(time.Millisecond))
	if err := m.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	up = state(forward.StateConnected, down.StateSince)

	m.stop()
	stopped = time.Now()
	down = state(forward.StateBackingOff, up.StateSince)
	t.Logf("stopped broker noticed %v after it exited", down.StateSince.Sub(stopped).Round(time.Millisecond))
	m.start()
	state(forward.StateConnected, down.StateSince)
}
