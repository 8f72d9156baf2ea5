package web

import (
	"github.com/runnel/runnel/sync/forward"
)

var routeStates = []string{forward.StateStarting, forward.StateConnected, forward.StateBackingOff, forward.StatePaused, forward.StateClosed}

// ForwardMetrics writes one set of samples per forwarding route.
func ForwardMetrics(m *Metrics, routes []forward.RouteStatus) {
	for _, r := range routes {
		l := Labels{"route": r.Name, "upstream": r.Upstream}
		for _, s := range routeStates {
			v := 0.0
			if r.State == s {
				v = 1
			}
			m.Gauge("runnel_route_state", "1 for the route's current state.", v, Labels{"route": r.Name, "upstream": r.Upstream, "state": s})
		}
		m.Gauge("runnel_route_lag_records", "Records not yet acknowledged by the upstream.", float64(r.LagRecords), l)
		m.Gauge("runnel_route_lag_bytes", "Estimated bytes not yet acknowledged by the upstream.", float64(r.LagBytes), l)
		m.Gauge("runnel_route_oldest_unsent_age_seconds", "Age of the oldest record not yet acknowledged upstream.", r.OldestUnsentAge.Seconds(), l)
		m.Gauge("runnel_route_in_flight_records", "Records sent and awaiting acknowledgement.", float64(r.InFlight), l)
		m.Gauge("runnel_route_records_per_second", "Acknowledged records per second (recent).", r.RecordsPerSec, l)
		m.Counter("runnel_route_acked_records_total", "Records acknowledged by the upstream.", float64(r.AckedRecords), l)
		m.Counter("runnel_route_acked_bytes_total", "Bytes acknowledged by the upstream.", float64(r.AckedBytes), l)
		m.Counter("runnel_route_errors_total", "Upstream or read errors.", float64(r.Errors), l)
		m.Counter("runnel_route_dropped_unforwarded_total", "Records dropped under disk pressure before being forwarded.", float64(r.Dropped), l)
	}
}
