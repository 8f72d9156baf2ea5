package web

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/ingest/kafka"
	"github.com/runnel/runnel/ingest/kafka/group"
)

// KafkaMetrics writes the Kafka listener's and the group coordinator's counters.
func KafkaMetrics(m *Metrics, st kafka.Stats, gs group.Stats) {
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
		m.Counter("runnel_kafka_requests_total", "Kafka requests by API.", float64(n), Labels{"api": name})
	}
	m.Counter("runnel_kafka_produce_records_total", "Records acknowledged through Kafka Produce.", float64(st.ProduceRecords), nil)
	m.Counter("runnel_kafka_produce_bytes_total", "Record-batch bytes appended through Kafka Produce.", float64(st.ProduceBytes), nil)
	m.Counter("runnel_kafka_produce_errors_total", "Produce partitions answered with an error.", float64(st.ProduceErrors), nil)
	m.Counter("runnel_kafka_fetch_bytes_total", "Record-batch bytes sent in Fetch responses.", float64(st.FetchBytes), nil)
	m.Counter("runnel_kafka_errors_total", "Kafka responses or partitions carrying an error code.", float64(st.Errors), nil)
	m.Counter("runnel_kafka_unsupported_total", "Requests answered UNSUPPORTED_VERSION.", float64(st.Unsupported), nil)
	m.Counter("runnel_kafka_bad_frames_total", "Connections closed for malformed or oversized frames.", float64(st.BadFrames), nil)
	m.Counter("runnel_kafka_auth_failures_total", "Failed SASL authentications.", float64(st.AuthFailures), nil)
	m.Gauge("runnel_kafka_groups", "Consumer groups with members.", float64(gs.Groups), nil)
	m.Gauge("runnel_kafka_group_members", "Members of consumer groups.", float64(gs.Members), nil)
	m.Counter("runnel_kafka_group_rebalances_total", "Consumer-group rebalances completed.", float64(gs.Rebalances), nil)
	m.Counter("runnel_kafka_group_expired_members_total", "Group members removed by timeout.", float64(gs.ExpiredMembers), nil)
	m.Counter("runnel_kafka_offset_commits_total", "OffsetCommit requests that stored offsets.", float64(gs.Commits), nil)
}
