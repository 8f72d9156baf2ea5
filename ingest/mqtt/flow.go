package mqtt

import (
	mqtt "github.com/mochi-mqtt/server/v2"
)

// disableSendQuota turns off mochi's outbound send quota for a client.
//
// mochi v2.7.9 enforces an MQTT 5 client's Receive Maximum by parking QoS
// 1/2 deliveries in the inflight map and sending one per packet the client
// sends (processPacket → Inflight.NextImmediate). That path is unsafe:
//
//   - NextImmediate read-locks the inflight map and calls GetAll, which
//     read-locks it again; a concurrent Set (any publisher delivering to
//     that client) queued between the two deadlocks the client's read loop
//     and the publisher for good (Go's RWMutex forbids recursive RLock);
//   - a parked message is deleted from the map when sent, so its PUBACK
//     never returns the quota: the subscriber stalls after Receive Maximum
//     parked messages (QoS 2 ones get PUBREL 0x92);
//   - parked messages go out sorted by uint16(Created), a time in seconds,
//     so those parked in the same second are reordered.
//
// With the quota at zero and its maximum at zero, mochi never parks and
// never calls NextImmediate: every delivery is written at once, in order,
// bounded by MaximumInflight (8192) per client. Deviation from MQTT 5: a
// subscriber can receive more unacknowledged QoS 1/2 messages than its
// Receive Maximum. Clients that enforce it (libmosquitto does for QoS 2)
// may disconnect during large QoS 2 bursts; QoS 0/1 subscriptions are
// unaffected in practice (clients ack QoS 1 at once).
func disableSendQuota(cl *mqtt.Client) {
	cl.State.Inflight.ResetSendQuota(0)
}
