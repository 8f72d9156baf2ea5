package mqtt

import (
	"crypto/tls"
	"net"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/runnel/runnel/log"
)

// hook connects mochi to the log. Hooks must never panic (a panic kills the
// process) and must not block except where documented (OnPublish waits at
// the per-client pending cap: that is the backpressure).
type hook struct {
	mqtt.HookBase
	b      *Broker
	events [64]bool // events provided (Provides is called on every event)
}

func (h *hook) ID() string { return "runnel" }

func (h *hook) Provides(e byte) bool { return int(e) < len(h.events) && h.events[e] }

func newHook(b *Broker) *hook {
	h := &hook{b: b}
	for _, e := range []byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnPacketProcessed, mqtt.OnWillSent, mqtt.OnDisconnect, mqtt.OnSessionEstablished,
		mqtt.OnSubscribe, mqtt.OnPacketEncode} {
		h.events[e] = true
	}
	if b.persist != nil {
		for _, e := range persistEvents {
			h.events[e] = true
		}
	}
	return h
}

// OnConnectAuthenticate checks credentials (or the client certificate).
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	ok := h.b.auth.login(pk.Connect.Username, pk.Connect.Password, h.b.certUser(cl), cl.Net.Remote)
	host, _, _ := net.SplitHostPort(cl.Net.Remote)
	if ok {
		h.b.backoff.Succeeded(host)
	} else {
		// The CONNACK refusal waits, longer for each failure in a row
		// from the address (password guessing).
		time.Sleep(h.b.backoff.Failed(host))
		h.b.stats.authFailures.Add(1)
		if len(pk.Connect.Username) == 0 && h.b.auth.anonymous {
			h.b.log.Warn("mqtt: anonymous client refused: anonymous clients are allowed from the loopback interface only (log in with mqtt.users, or set allow-remote-anonymous on a trusted, isolated network)",
				"peer", cl.Net.Remote, "client", cl.ID)
		} else {
			h.b.log.Info("mqtt: login refused", "peer", cl.Net.Remote, "user", string(pk.Connect.Username), "client", cl.ID)
		}
	}
	return ok
}

// OnACLCheck applies the ACL to publishes, subscriptions and deliveries.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	user := string(cl.Properties.Username)
	if cu := h.b.certUser(cl); cu != "" {
		user = cu
	}
	ok := h.b.auth.allowed(user, cl.ID, topic, write) && h.b.logAccess(user, cl.ID, topic, write)
	if !ok {
		h.b.stats.aclDenied.Add(1)
		h.b.log.Debug("mqtt: ACL denied", "client", cl.ID, "user", user, "mqtt_topic", topic, "write", write)
	}
	return ok
}

// certUser returns the verified client certificate's common name when
// certificates act as user names.
func (b *Broker) certUser(cl *mqtt.Client) string {
	if !b.opts.TLS.CertAsUsername || cl.Net.Conn == nil {
		return ""
	}
	tc, ok := cl.Net.Conn.(*tls.Conn)
	if !ok {
		return ""
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return ""
	}
	return st.PeerCertificates[0].Subject.CommonName
}

// OnPublish takes a client's publish away from mochi: it is queued in the
// client's FIFO and appended to the log, and ErrRejectPacket tells mochi to
// neither ack nor fan out. The session's drainer acks (in arrival order)
// and fans out once the record is durable. Publishes from the inline
// fan-out client pass through untouched.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	b := h.b
	b.throttle(cl, len(pk.Payload)+len(pk.TopicName))
	tgt, routed := b.router.resolve(pk.TopicName, cl.ID)
	s := b.sessionFor(cl)
	p := &pending{s: s, pk: pk, size: len(pk.Payload) + len(pk.TopicName) + 64, unrouted: !routed}
	ok, alone := s.enqueue(p)
	s.notePublish(pk.FixedHeader.Qos, alone)
	if !ok {
		// Broker closing: drop without ack; the client resends.
		return pk, packets.ErrRejectPacket
	}
	if !routed {
		// Not stored, but acked in arrival order with the others.
		p.finish(nil)
		return pk, packets.ErrRejectPacket
	}
	value := recordValue(&pk)
	// Independent (for the log's commit delay): a QoS 0 sender never
	// waits; another one waits for nothing when it has nothing pending
	// and its last ack is older than a client takes to answer one.
	now := time.Now()
	independent := pk.FixedHeader.Qos == 0 || alone && now.UnixNano()-s.lastAck.Load() >= int64(log.IndependentAfter)
	hold := s.arrived(now.UnixNano(), pk.FixedHeader.Qos)
	b.ingest(tgt, now.UnixMilli(), value, b.recordHeaders(&pk, cl.ID, false), p, independent, s, hold || cl.Buffered() > 0)
	return pk, packets.ErrRejectPacket
}

// OnWillSent ingests a will message (mochi already fanned it out). No one
// waits for it.
func (h *hook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	b := h.b
	tgt, ok := b.router.resolve(pk.TopicName, cl.ID)
	if !ok {
		b.stats.unrouted.Add(1)
		return
	}
	b.stats.willsIngested.Add(1)
	b.ingest(tgt, time.Now().UnixMilli(), recordValue(&pk), b.recordHeaders(&pk, cl.ID, true), nil, true, nil, false)
}

// OnPacketProcessed registers the feeds OnPublish deferred once every
// packet the client sent so far is read, unless a reply hold applies
// (session.release).
func (h *hook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, err error) {
	if cl.Net.Inline || cl.Buffered() > 0 {
		return
	}
	if v, ok := h.b.sessions.Load(cl); ok {
		v.(*session).release()
	}
}

// OnDisconnect forgets the connection's ack pipeline (pending messages still
// reach the log and subscribers; their acks are dropped with the
// connection) and records the session for persistence.
func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if v, ok := h.b.sessions.Load(cl); ok {
		v.(*session).flushDeferred()
	}
	h.b.sessions.Delete(cl)
	h.b.subQuota.Delete(cl)
	if h.b.persist != nil {
		h.b.persist.onDisconnect(cl, expire)
	}
}

// OnSessionEstablished records the session for persistence.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if h.b.persist != nil {
		h.b.persist.onSession(cl)
	}
}

// sessionFor returns the ack pipeline of a connection.
func (b *Broker) sessionFor(cl *mqtt.Client) *session {
	if v, ok := b.sessions.Load(cl); ok {
		return v.(*session)
	}
	v, _ := b.sessions.LoadOrStore(cl, newSession(b, cl))
	return v.(*session)
}

// fanout delivers a durable publish to subscribers (and the retained
// store) through the inline client, as mochi would have done. The inline
// client takes the origin's id so NoLocal subscriptions still work.
func (b *Broker) fanout(pk packets.Packet) {
	pk.Properties.TopicAlias = 0
	pk.Properties.TopicAliasFlag = false
	b.fanMu.Lock()
	b.fan.ID = pk.Origin
	err := b.server.InjectPacket(b.fan, pk)
	b.fan.ID = fanClientID
	b.fanMu.Unlock()
	if err != nil {
		b.log.Debug("mqtt: fan-out", "mqtt_topic", pk.TopicName, "error", err)
		return
	}
	// InjectPacket counts the packet as received again; mochi already did.
	b.uncountInject()
}
