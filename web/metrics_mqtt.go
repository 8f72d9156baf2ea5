package web

import "github.com/runnel/runnel/ingest/mqtt"

// MQTTMetrics writes the MQTT broker's counters (runnel's and mochi's $SYS).
func MQTTMetrics(m *Metrics, st mqtt.Stats) {
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
	c("fanned_out_total", "Log records published to MQTT subscribers by publish routes.", st.FannedOut)
	c("auth_failures_total", "CONNECTs refused for bad credentials.", st.AuthFailures)
	c("acl_denied_total", "Publishes, subscriptions or deliveries refused by ACL.", st.ACLDenied)
	c("conns_refused_ip_total", "Connections closed at the per-IP cap.", st.ConnsRefusedIP)
	c("conns_refused_total", "Connections closed at the cap of all MQTT connections.", st.ConnsRefused)
	c("malformed_packets_total", "MQTT connections closed for a malformed packet or a protocol violation.", st.Malformed)
	c("subscriptions_refused_total", "Subscription filters refused at a subscription cap (SUBACK 0x97, or 0x80 in MQTT 3.1.1).", st.SubsRefused)
	c("connect_timeouts_total", "Connections that sent no CONNECT in time.", st.ConnectTimeouts)
	c("persist_errors_total", "Failed writes of sessions/retained messages.", st.PersistErrors)
	g("clients_connected", "Connected MQTT clients ($SYS/broker/clients/connected).", st.ClientsConnected)
	g("clients_maximum", "Most clients connected at once.", st.ClientsMaximum)
	ci("bytes_received_total", "Bytes received ($SYS/broker/bytes/received).", st.BytesReceived)
	ci("bytes_sent_total", "Bytes sent ($SYS/broker/bytes/sent).", st.BytesSent)
	ci("messages_received_total", "PUBLISH packets received.", st.MessagesReceived)
	ci("messages_sent_total", "PUBLISH packets sent.", st.MessagesSent)
	ci("messages_dropped_total", "Messages dropped by the broker.", st.MessagesDropped)
	g("retained", "Retained messages.", st.Retained)
	g("inflight", "QoS 1/2 messages in flight to subscribers.", st.Inflight)
	g("subscriptions", "Active subscriptions.", st.Subscriptions)
}
