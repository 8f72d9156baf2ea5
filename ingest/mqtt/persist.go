package mqtt

import (
	"strconv"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/runnel/runnel/log/meta"
)

// KV buckets in the log's metadata store (never rename). Values are mochi's
// storage JSON encodings.
//
//	mqtt-clients   client id                   → storage.Client
//	mqtt-subs      client id \x00 filter       → storage.Subscription
//	mqtt-retained  MQTT topic                  → storage.Message
//	mqtt-inflight  client id \x00 packet id    → storage.Message (outbound QoS 1/2 not yet acked)
const (
	bucketClients  = "mqtt-clients"
	bucketSubs     = "mqtt-subs"
	bucketRetained = "mqtt-retained"
	bucketInflight = "mqtt-inflight"
)

const (
	// persistInterval is how long a buffered session change waits to be
	// written with the ones after it: one bbolt transaction per bucket per
	// interval, never one per message, and no wakeup while nothing changes.
	persistInterval = 200 * time.Millisecond
	// persistMaxBuffered forces an early write.
	persistMaxBuffered = 4096
)

// persistEvents are the hook events the persister handles.
var persistEvents = []byte{
	mqtt.OnSubscribed, mqtt.OnUnsubscribed,
	mqtt.OnRetainMessage, mqtt.OnRetainedExpired, mqtt.OnClientExpired,
	mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped,
	mqtt.StoredClients, mqtt.StoredSubscriptions, mqtt.StoredRetainedMessages, mqtt.StoredInflightMessages,
}

// persister keeps sessions (clients, subscriptions, unacknowledged
// outbound messages) and retained messages in the log's metadata store so
// they survive a restart. Changes are buffered (last write per key wins)
// and written in batches by one goroutine. Sessions of clean-session
// clients (MQTT 3 clean, MQTT 5 expiry 0) are never written.
type persister struct {
	b     *Broker
	store *meta.Store

	mu      sync.Mutex
	pending map[string]map[string][]byte // guarded by mu: bucket → key → value (nil = delete)
	count   int                          // guarded by mu

	kick  chan struct{} // one slot: the buffer is full, write now
	dirty chan struct{} // one slot: the buffer got its first change
	stop  chan struct{}
	done  chan struct{}
}

func newPersister(b *Broker) (*persister, error) {
	p := &persister{
		b:       b,
		store:   b.opts.Log.Meta(),
		pending: map[string]map[string][]byte{},
		kick:    make(chan struct{}, 1),
		dirty:   make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if p.store == nil {
		return nil, nil
	}
	go p.run()
	return p, nil
}

func (p *persister) run() {
	defer close(p.done)
	t := time.NewTimer(persistInterval)
	t.Stop()
	for {
		// Asleep until the first change (put signals dirty)...
		kicked := false
		select {
		case <-p.dirty:
		case <-p.kick:
			kicked = true
		case <-p.stop:
			p.flush()
			return
		}
		// ...then the interval, for the changes after it.
		if !kicked {
			t.Reset(persistInterval)
			select {
			case <-t.C:
			case <-p.kick:
				t.Stop()
			case <-p.stop:
				t.Stop()
				p.flush()
				return
			}
		}
		p.flush()
	}
}

// close writes what is buffered and stops the goroutine.
func (p *persister) close() error {
	close(p.stop)
	<-p.done
	return nil
}

func (p *persister) put(bucket, key string, v []byte) {
	p.mu.Lock()
	m := p.pending[bucket]
	if m == nil {
		m = map[string][]byte{}
		p.pending[bucket] = m
	}
	m[key] = v
	p.count++
	first, full := p.count == 1, p.count >= persistMaxBuffered
	p.mu.Unlock()
	if first {
		select {
		case p.dirty <- struct{}{}:
		default:
		}
	}
	if full {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

func (p *persister) del(bucket, key string) { p.put(bucket, key, nil) }

func (p *persister) flush() {
	p.mu.Lock()
	pend := p.pending
	p.pending = map[string]map[string][]byte{}
	p.count = 0
	p.mu.Unlock()
	for bucket, m := range pend {
		ws := make([]meta.KVWrite, 0, len(m))
		for k, v := range m {
			ws = append(ws, meta.KVWrite{Key: k, Value: v})
		}
		if err := p.store.KVApply(bucket, ws); err != nil {
			p.b.stats.persistErrors.Add(1)
			p.b.log.Error("mqtt: persist sessions", "bucket", bucket, "error", err)
			continue
		}
		p.b.stats.persistWrites.Add(uint64(len(ws)))
	}
}

// persistent reports whether the client's session outlives its connection.
func persistent(cl *mqtt.Client) bool {
	if cl.Net.Inline {
		return false
	}
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

func subKey(client, filter string) string { return client + "\x00" + filter }

func inflightKey(client string, id uint16) string {
	return client + "\x00" + strconv.Itoa(int(id))
}

func (p *persister) provides(e byte) bool {
	for _, x := range persistEvents {
		if x == e {
			return true
		}
	}
	return false
}

func (p *persister) onSession(cl *mqtt.Client) {
	if !persistent(cl) {
		p.del(bucketClients, cl.ID) // a clean start replaces an old session
		return
	}
	props := cl.Properties.Props
	v, err := storage.Client{
		ID:              cl.ID,
		T:               storage.ClientKey,
		Remote:          cl.Net.Remote,
		Listener:        cl.Net.Listener,
		Username:        cl.Properties.Username,
		Clean:           cl.Properties.Clean,
		ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval:     props.SessionExpiryInterval,
			SessionExpiryIntervalFlag: props.SessionExpiryIntervalFlag,
			AuthenticationMethod:      props.AuthenticationMethod,
			AuthenticationData:        props.AuthenticationData,
			RequestProblemInfo:        props.RequestProblemInfo,
			RequestProblemInfoFlag:    props.RequestProblemInfoFlag,
			RequestResponseInfo:       props.RequestResponseInfo,
			ReceiveMaximum:            props.ReceiveMaximum,
			TopicAliasMaximum:         props.TopicAliasMaximum,
			User:                      props.User,
			MaximumPacketSize:         props.MaximumPacketSize,
		},
	}.MarshalBinary()
	if err == nil {
		p.put(bucketClients, cl.ID, v)
	}
}

func (p *persister) onDisconnect(cl *mqtt.Client, expire bool) {
	if !expire || cl.StopCause() == packets.ErrSessionTakenOver {
		return
	}
	p.forget(cl)
}

// forget deletes a client's session and subscriptions.
func (p *persister) forget(cl *mqtt.Client) {
	p.del(bucketClients, cl.ID)
	for f := range cl.State.Subscriptions.GetAll() {
		p.del(bucketSubs, subKey(cl.ID, f))
	}
}

func (p *persister) onSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if !persistent(cl) {
		return
	}
	for i, f := range pk.Filters {
		if i >= len(codes) || codes[i] >= 0x80 {
			continue
		}
		v, err := storage.Subscription{
			ID: subKey(cl.ID, f.Filter), T: storage.SubscriptionKey, Client: cl.ID,
			Qos: codes[i], Filter: f.Filter, Identifier: f.Identifier, NoLocal: f.NoLocal,
			RetainHandling: f.RetainHandling, RetainAsPublished: f.RetainAsPublished,
		}.MarshalBinary()
		if err == nil {
			p.put(bucketSubs, subKey(cl.ID, f.Filter), v)
		}
	}
}

func (p *persister) onUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	for _, f := range pk.Filters {
		p.del(bucketSubs, subKey(cl.ID, f.Filter))
	}
}

func messageOf(id, typ, client string, pk *packets.Packet) storage.Message {
	return storage.Message{
		ID: id, T: typ, Client: client, Origin: pk.Origin,
		FixedHeader: pk.FixedHeader, TopicName: pk.TopicName, Payload: pk.Payload,
		Created: pk.Created, PacketID: pk.PacketID,
		Properties: storage.MessageProperties{
			PayloadFormat:          pk.Properties.PayloadFormat,
			PayloadFormatFlag:      pk.Properties.PayloadFormatFlag,
			MessageExpiryInterval:  pk.Properties.MessageExpiryInterval,
			ContentType:            pk.Properties.ContentType,
			ResponseTopic:          pk.Properties.ResponseTopic,
			CorrelationData:        pk.Properties.CorrelationData,
			SubscriptionIdentifier: pk.Properties.SubscriptionIdentifier,
			User:                   pk.Properties.User,
		},
	}
}

func (p *persister) onRetain(pk packets.Packet, r int64) {
	if r == -1 || len(pk.Payload) == 0 {
		p.del(bucketRetained, pk.TopicName)
		return
	}
	if v, err := messageOf(pk.TopicName, storage.RetainedKey, pk.Origin, &pk).MarshalBinary(); err == nil {
		p.put(bucketRetained, pk.TopicName, v)
	}
}

func (p *persister) onQosPublish(cl *mqtt.Client, pk packets.Packet) {
	if !persistent(cl) || pk.FixedHeader.Type != packets.Publish {
		return
	}
	if v, err := messageOf(inflightKey(cl.ID, pk.PacketID), storage.InflightKey, cl.ID, &pk).MarshalBinary(); err == nil {
		p.put(bucketInflight, inflightKey(cl.ID, pk.PacketID), v)
	}
}

// onQosDone forgets a stored outbound message whose flow ended. mochi calls
// OnQosComplete/OnQosDropped for inbound flows too (with the client's
// packet id, a separate space from the server's): an outbound flow still
// in flight under the same id keeps its stored message.
func (p *persister) onQosDone(cl *mqtt.Client, pk packets.Packet) {
	if !persistent(cl) {
		return
	}
	if _, live := cl.State.Inflight.GetOutbound(pk.PacketID); live {
		return
	}
	p.del(bucketInflight, inflightKey(cl.ID, pk.PacketID))
}

// load reads one bucket, decoding each value with dec.
func (p *persister) load(bucket string, dec func(k string, v []byte) error) {
	n := 0
	err := p.store.KVForEach(bucket, func(k string, v []byte) error {
		if err := dec(k, v); err != nil {
			p.b.log.Warn("mqtt: skipping undecodable stored entry", "bucket", bucket, "key", k, "error", err)
			return nil
		}
		n++
		return nil
	})
	if err != nil {
		p.b.log.Error("mqtt: load stored sessions", "bucket", bucket, "error", err)
	}
	if n > 0 {
		p.b.log.Info("mqtt: restored", "bucket", bucket, "entries", n)
	}
}

// Hook methods delegating to the persister (nil-safe: Provides gates them).

func (h *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	h.b.persist.onSubscribed(cl, pk, codes)
}

func (h *hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	h.b.persist.onUnsubscribed(cl, pk)
}

func (h *hook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	h.b.persist.onRetain(pk, r)
}

func (h *hook) OnRetainedExpired(topic string) { h.b.persist.del(bucketRetained, topic) }

func (h *hook) OnClientExpired(cl *mqtt.Client) { h.b.persist.forget(cl) }

func (h *hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	h.b.persist.onQosPublish(cl, pk)
}

func (h *hook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) { h.b.persist.onQosDone(cl, pk) }
func (h *hook) OnQosDropped(cl *mqtt.Client, pk packets.Packet)  { h.b.persist.onQosDone(cl, pk) }

func (h *hook) StoredClients() ([]storage.Client, error) {
	var out []storage.Client
	h.b.persist.load(bucketClients, func(_ string, v []byte) error {
		var c storage.Client
		if err := c.UnmarshalBinary(v); err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	return out, nil
}

func (h *hook) StoredSubscriptions() ([]storage.Subscription, error) {
	var out []storage.Subscription
	h.b.persist.load(bucketSubs, func(_ string, v []byte) error {
		var s storage.Subscription
		if err := s.UnmarshalBinary(v); err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	return out, nil
}

func (h *hook) StoredRetainedMessages() ([]storage.Message, error) {
	return h.storedMessages(bucketRetained)
}

func (h *hook) StoredInflightMessages() ([]storage.Message, error) {
	return h.storedMessages(bucketInflight)
}

func (h *hook) storedMessages(bucket string) ([]storage.Message, error) {
	var out []storage.Message
	h.b.persist.load(bucket, func(_ string, v []byte) error {
		var m storage.Message
		if err := m.UnmarshalBinary(v); err != nil {
			return err
		}
		out = append(out, m)
		return nil
	})
	return out, nil
}
