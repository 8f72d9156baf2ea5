package main

// The Prometheus samples each component exposes, written from its Stats()
// snapshot: web serves them (Options.Collectors) without importing the
// components.

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/ingest/kafka"
	"github.com/runnel/runnel/ingest/kafka/group"
	"github.com/runnel/runnel/ingest/mqtt"
	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/web"
)

// kafkaMetrics writes the Kafka listener's and the group coordinator's counters.
func kafkaMetrics(m *web.Metrics, st kafka.Stats, gs group.Stats) {
	m.Gauge("runnel_kafka_connections", "Open Kafka client connections.", float64(st.Conns), nil)
	m.Counter("runnel_kafka_connections_total", "Kafka connections accepted.", float64(st.ConnsTotal), nil)
	m.Counter("runnel_kafka_connections_refused_total", "Kafka connections closed at accept: the connection cap was reached.", float64(st.ConnsRefused), nil)
	m.Counter("runnel_kafka_connect_timeouts_total", "Kafka connections closed without a first request (or SASL authentication) in time.", float64(st.ConnectTimeouts), nil)
	m.Gauge("runnel_kafka_queued_request_bytes", "Request bytes Kafka connections hold now (kafka.max-queued-request-bytes).", float64(st.QueuedRequestBytes), nil)
	m.Counter("runnel_kafka_request_budget_waits_total", "Kafka requests that waited for room in kafka.max-queued-request-bytes.", float64(st.RequestBudgetWaits), nil)
	m.Counter("runnel_kafka_idle_timeouts_total", "Kafka connections closed after the idle timeout.", float64(st.IdleTimeouts), nil)
	for key, n := range st.Requests {
		name := kmsg.NameForKey(key)
		if name == "" {
			name = strconv.Itoa(int(key))
		}
		m.Counter("runnel_kafka_requests_total", "Kafka requests by API.", float64(n), web.Labels{"api": name})
	}
	m.Counter("runnel_kafka_produce_records_total", "Records acknowledged through Kafka Produce.", float64(st.ProduceRecords), nil)
	m.Counter("runnel_kafka_produce_bytes_total", "Record-batch bytes appended through Kafka Produce.", float64(st.ProduceBytes), nil)
	m.Counter("runnel_kafka_produce_errors_total", "Produce partitions answered with an error.", float64(st.ProduceErrors), nil)
	m.Counter("runnel_kafka_fetch_bytes_total", "Record-batch bytes sent in Fetch responses.", float64(st.FetchBytes), nil)
	m.Counter("runnel_kafka_errors_total", "Kafka responses or partitions carrying an error code.", float64(st.Errors), nil)
	m.Counter("runnel_kafka_unsupported_total", "Requests answered UNSUPPORTED_VERSION.", float64(st.Unsupported), nil)
	m.Counter("runnel_kafka_bad_frames_total", "Connections closed for malformed or oversized frames.", float64(st.BadFrames), nil)
	m.Counter("runnel_kafka_auth_failures_total", "Failed SASL authentications.", float64(st.AuthFailures), nil)
	m.Gauge("runnel_kafka_transactions_open", "Kafka transactions open (ongoing or ending).", float64(st.Txn.Open), nil)
	m.Counter("runnel_kafka_transactions_committed_total", "Kafka transactions committed.", float64(st.Txn.Commits), nil)
	m.Counter("runnel_kafka_transactions_aborted_total", "Kafka transactions aborted (timeouts and fencing included).", float64(st.Txn.Aborts), nil)
	m.Counter("runnel_kafka_transactions_timed_out_total", "Kafka transactions aborted by their timeout.", float64(st.Txn.TimedOut), nil)
	m.Counter("runnel_kafka_transaction_end_errors_total", "Kafka transaction ends whose markers or state could not be written (retried).", float64(st.Txn.EndErrors), nil)
	m.Counter("runnel_kafka_throttled_total", "Produce requests answered with a quota's throttle time (access.quotas).", float64(st.Throttled), nil)
	m.Counter("runnel_kafka_anonymous_refused_total", "Connections of anonymous clients off the loopback interface (given no rights).", float64(st.AnonymousRefused), nil)
	m.Gauge("runnel_kafka_groups", "Consumer groups with members.", float64(gs.Groups), nil)
	m.Gauge("runnel_kafka_group_members", "Members of consumer groups.", float64(gs.Members), nil)
	m.Counter("runnel_kafka_group_rebalances_total", "Consumer-group rebalances completed.", float64(gs.Rebalances), nil)
	m.Counter("runnel_kafka_group_expired_members_total", "Group members removed by timeout.", float64(gs.ExpiredMembers), nil)
	m.Counter("runnel_kafka_offset_commits_total", "OffsetCommit requests that stored offsets.", float64(gs.Commits), nil)
}

// mqttMetrics writes the MQTT broker's counters (runnel's and mochi's $SYS).
func mqttMetrics(m *web.Metrics, st mqtt.Stats) {
	c := func(name, help string, v uint64) { m.Counter("runnel_mqtt_"+name, help, float64(v), nil) }
	g := func(name, help string, v int64) { m.Gauge("runnel_mqtt_"+name, help, float64(v), nil) }
	ci := func(name, help string, v int64) { m.Counter("runnel_mqtt_"+name, help, float64(v), nil) }
	c("ingested_total", "MQTT publishes (and wills) durable in the log.", st.Ingested)
	c("acked_total", "PUBACK/PUBREC sent after the message was durable.", st.Acked)
	c("nacked_total", "MQTT 5 PUBACK/PUBREC with an error reason code.", st.Nacked)
	c("failed_total", "Publishes the log refused or failed.", st.Failed)
	c("rejected_disk_full_total", "Publishes refused because the disk was short (reason 0x97).", st.RejectedDiskFull)
	c("fail_disconnects_total", "MQTT 3.1.1 clients disconnected after a failed append.", st.FailDisconnects)
	c("unrouted_total", "Publishes matching no route (not stored).", st.Unrouted)
	c("wills_ingested_total", "Will messages handed to the log.", st.WillsIngested)
	g("pending", "Publishes waiting for the log.", st.Pending)
	c("throttled_total", "Times a client waited at its pending cap.", st.Throttled)
	c("reply_holds_total", "Times a pipelining client's records waited for the publishes answering its last acks, so its in-flight window shares one commit (bounded by about one commit's time).", st.ReplyHolds)
	c("reply_hold_timeouts_total", "Reply holds ended by their bound before every owed publish arrived.", st.ReplyHoldTimeouts)
	m.Counter("runnel_mqtt_reply_hold_seconds_total", "Time records were held by reply holds.", float64(st.ReplyHoldNanos)/1e9, nil)
	c("reserved_properties_dropped_total", "MQTT 5 user properties named in the mqtt. space of runnel's own headers (mqtt.topic, mqtt.client, ...), dropped at ingest.", st.ReservedPropertiesDropped)
	c("fanned_out_total", "Log records published to MQTT subscribers by publish routes.", st.FannedOut)
	c("auth_failures_total", "CONNECTs refused for bad credentials.", st.AuthFailures)
	c("quota_throttled_total", "Publishes held for a produce quota (access.quotas).", st.QuotaThrottled)
	c("acl_denied_total", "Publishes, subscriptions or deliveries refused by ACL.", st.ACLDenied)
	c("conns_refused_ip_total", "Connections closed at the per-IP cap.", st.ConnsRefusedIP)
	c("conns_refused_total", "Connections closed at the cap of all MQTT connections.", st.ConnsRefused)
	c("malformed_packets_total", "MQTT connections closed for a malformed packet or a protocol violation.", st.Malformed)
	c("subscriptions_refused_total", "Subscription filters refused at a subscription cap (SUBACK 0x97, or 0x80 in MQTT 3.1.1).", st.SubsRefused)
	c("connect_timeouts_total", "Connections that sent no CONNECT in time.", st.ConnectTimeouts)
	c("persist_errors_total", "Failed writes of sessions/retained messages.", st.PersistErrors)
	g("clients_connected", "Connected MQTT clients ($SYS/broker/clients/connected).", st.ClientsConnected)
	g("clients_maximum", "Most clients connected at once.", st.ClientsMaximum)
	g("sessions", "MQTT sessions held: connected clients and persistent sessions whose client is away.", st.ClientsTotal)
	ci("sessions_evicted_total", "Persistent sessions dropped, the one disconnected longest ago first, to stay within mqtt.max-sessions.", st.SessionsEvicted)
	ci("bytes_received_total", "Bytes received ($SYS/broker/bytes/received).", st.BytesReceived)
	ci("bytes_sent_total", "Bytes sent ($SYS/broker/bytes/sent).", st.BytesSent)
	ci("messages_received_total", "PUBLISH packets received.", st.MessagesReceived)
	ci("messages_sent_total", "PUBLISH packets sent.", st.MessagesSent)
	ci("messages_dropped_total", "Messages dropped by the broker.", st.MessagesDropped)
	ci("session_queue_dropped_total", "QoS 1/2 deliveries dropped because the session held its most unacknowledged messages (1,000; queued while its client is away included) or bytes (mqtt.max-session-queue-bytes, mqtt.max-queue-bytes).", st.InflightDropped)
	g("session_queue_bytes", "Topic and payload bytes of all sessions' unacknowledged QoS 1/2 messages, each session's copy counted.", st.QueuedBytes)
	g("retained", "Retained messages.", st.Retained)
	g("inflight", "QoS 1/2 messages in flight to subscribers.", st.Inflight)
	g("subscriptions", "Active subscriptions.", st.Subscriptions)
}

// forwardMetrics writes one set of samples per forwarding route.
func forwardMetrics(m *web.Metrics, routes []forward.RouteStatus) {
	for _, r := range routes {
		l := web.Labels{"route": r.Name, "upstream": r.Upstream}
		for _, s := range routeStates {
			v := 0.0
			if r.State == s {
				v = 1
			}
			m.Gauge("runnel_route_state", "1 for the route's current state.", v, web.Labels{"route": r.Name, "upstream": r.Upstream, "state": s})
		}
		if !r.StateSince.IsZero() {
			m.Gauge("runnel_route_state_since_timestamp_seconds", "Unix time the route entered its current state.", float64(r.StateSince.UnixMilli())/1e3, l)
		}
		if !r.DownSince.IsZero() {
			m.Gauge("runnel_route_down_since_timestamp_seconds", "Unix time the route's current spell of starting/backing-off began (absent while connected or paused).", float64(r.DownSince.UnixMilli())/1e3, l)
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

var routeStates = []string{forward.StateStarting, forward.StateConnected, forward.StateBackingOff, forward.StatePaused, forward.StateClosed}
