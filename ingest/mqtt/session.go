package mqtt

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/runnel/runnel/log"
)

// session is the ack pipeline of one connection: a FIFO of publishes in
// arrival order. A publish is finished (durable or failed) by the log in
// any order across partitions; the drainer acknowledges the finished
// prefix of the FIFO, so PUBACK/PUBREC leave in arrival order while many
// messages are in flight.
type session struct {
	b  *Broker
	cl *mqtt.Client
	v5 bool

	mu sync.Mutex
	// guarded by mu:
	q        []*pending // FIFO; q[0] is the oldest
	bytes    int        // payload bytes in q
	draining bool       // a drainer goroutine is running
	dead     bool       // connection failed or closed: acks are dropped

	space chan struct{} // one slot: signalled when the FIFO shrinks

	// lastAck is when acks were last written (unix nanos; 0: never).
	lastAck atomic.Int64

	fmu      sync.Mutex
	deferred []*appender // guarded by fmu: feeds to register once the client's buffered packets are read
}

// deferFeed notes an appender whose feed registration waits until the
// client's packets already received are read (flushDeferred).
func (s *session) deferFeed(a *appender) {
	s.fmu.Lock()
	for _, d := range s.deferred {
		if d == a {
			s.fmu.Unlock()
			return
		}
	}
	s.deferred = append(s.deferred, a)
	s.fmu.Unlock()
}

// flushDeferred registers the deferred feeds.
func (s *session) flushDeferred() {
	s.fmu.Lock()
	ds := s.deferred
	s.deferred = nil
	s.fmu.Unlock()
	for _, a := range ds {
		a.kick()
	}
}

// pending is one publish waiting for the log.
type pending struct {
	s        *session
	pk       packets.Packet
	size     int
	unrouted bool // matches no route: not stored, acked in order

	// set under s.mu:
	done bool
	err  error
}

func (p *pending) finish(err error) { p.s.finish(p, err) }

func newSession(b *Broker, cl *mqtt.Client) *session {
	return &session{b: b, cl: cl, v5: cl.Properties.ProtocolVersion == 5, space: make(chan struct{}, 1)}
}

// enqueue adds a publish to the FIFO, waiting while the client is at its
// pending cap (this stops the client's read loop: TCP backpressure). It
// returns false when the broker is closing; alone: nothing else of the
// client was pending.
func (s *session) enqueue(p *pending) (ok, alone bool) {
	for {
		s.mu.Lock()
		if len(s.q) == 0 || (len(s.q) < s.b.opts.MaxPendingPerClient && s.bytes+p.size <= s.b.opts.MaxPendingBytesPerClient) {
			alone = len(s.q) == 0
			s.q = append(s.q, p)
			s.bytes += p.size
			n, size := len(s.q), s.bytes
			s.mu.Unlock()
			s.b.stats.pendingPeak.note(int64(n))
			s.b.stats.pendingBytesPeak.note(int64(size))
			s.b.stats.pending.Add(1)
			return true, alone
		}
		s.mu.Unlock()
		s.b.stats.throttled.Add(1)
		select {
		case <-s.space:
		case <-s.b.closing:
			return false, false
		}
	}
}

// finish records the outcome of p and starts a drainer when the head of
// the FIFO is ready.
func (s *session) finish(p *pending, err error) {
	s.mu.Lock()
	p.done, p.err = true, err
	start := !s.draining && len(s.q) > 0 && s.q[0].done
	if start {
		s.draining = true
	}
	s.mu.Unlock()
	if start {
		s.b.wg.Add(1)
		go s.drain()
	}
}

// drain acknowledges and fans out the finished prefix of the FIFO until
// the head is not finished. At most one drainer runs per session.
func (s *session) drain() {
	defer s.b.wg.Done()
	var ready []*pending
	var buf bytes.Buffer
	for {
		s.mu.Lock()
		i := 0
		for i < len(s.q) && s.q[i].done {
			i++
		}
		if i == 0 {
			s.draining = false
			s.mu.Unlock()
			return
		}
		ready = append(ready[:0], s.q[:i]...)
		for _, p := range ready {
			s.bytes -= p.size
		}
		n := copy(s.q, s.q[i:])
		for j := n; j < len(s.q); j++ {
			s.q[j] = nil
		}
		s.q = s.q[:n]
		dead := s.dead
		s.mu.Unlock()
		s.b.stats.pending.Add(-int64(len(ready)))
		select {
		case s.space <- struct{}{}:
		default:
		}

		// Each message is fanned out before its ack, as Mosquitto does:
		// once a publisher has its PUBACK, every subscriber's session
		// holds the message (a persistent subscriber that reconnects
		// right after would otherwise race the fan-out and could miss
		// it), and a client that subscribes once it has its ack finds a
		// retained message stored.
		buf.Reset()
		for _, p := range ready {
			s.settle(p, &buf, &dead)
		}
		if buf.Len() > 0 && !dead {
			if err := s.writeAcks(buf.Bytes()); err != nil {
				dead = true
			}
			s.lastAck.Store(time.Now().UnixNano())
		}
		if dead {
			s.mu.Lock()
			s.dead = true
			s.mu.Unlock()
		}
	}
}

// settle handles one finished publish: fan-out on success, ack encoding
// (success or reason code), disconnect of MQTT 3 clients on failure.
func (s *session) settle(p *pending, buf *bytes.Buffer, dead *bool) {
	st := &s.b.stats
	qos := p.pk.FixedHeader.Qos
	if p.err == nil {
		if p.unrouted {
			st.unrouted.Add(1)
		} else {
			st.ingested.Add(1)
		}
		s.b.fanout(p.pk)
	} else {
		st.failed.Add(1)
		if errors.Is(p.err, log.ErrDiskFull) {
			st.rejectedDiskFull.Add(1)
		}
		if s.b.warnLimit() {
			s.b.log.Warn("mqtt: publish not stored (logged at most once a second)", "client", s.cl.ID, "mqtt_topic", p.pk.TopicName, "qos", qos, "error", p.err, "failed_total", st.failed.Load())
		}
	}
	if qos == 0 || *dead {
		return
	}
	if p.err != nil && !s.v5 {
		// MQTT 3.1.1 has no negative ack: close the connection rather
		// than drop silently. The client resends what was not acked.
		s.b.log.Warn("mqtt: disconnecting MQTT 3 client after a failed append", "client", s.cl.ID, "error", p.err)
		st.failDisconnects.Add(1)
		if buf.Len() > 0 {
			_ = s.writeAcks(buf.Bytes()) // acks of earlier, durable messages
			buf.Reset()
		}
		s.cl.Stop(p.err)
		*dead = true
		return
	}
	ack := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Puback},
		PacketID:        p.pk.PacketID,
		ProtocolVersion: s.cl.Properties.ProtocolVersion,
	}
	if qos == 2 {
		ack.FixedHeader.Type = packets.Pubrec
	}
	if p.err != nil {
		code := packets.ErrUnspecifiedError
		if errors.Is(p.err, log.ErrDiskFull) || errors.Is(p.err, log.ErrNotEnoughReplicas) {
			code = packets.ErrQuotaExceeded
		}
		ack.ReasonCode = code.Code
		ack.Properties.ReasonString = p.err.Error()
	} else if qos == 2 {
		// Let mochi finish the flow: PUBREL finds this and sends PUBCOMP.
		rec := ack
		rec.Created = p.pk.Created
		s.cl.State.Inflight.DecreaseReceiveQuota()
		if s.cl.State.Inflight.Set(rec) {
			atomic.AddInt64(&s.b.server.Info.Inflight, 1)
		}
	}
	if s.cl.Properties.Props.RequestProblemInfoFlag && s.cl.Properties.Props.RequestProblemInfo == 0 {
		ack.Mods.DisallowProblemInfo = true
	}
	ack.Mods.MaxSize = s.cl.Properties.Props.MaximumPacketSize
	if err := encodeAck(&ack, buf); err != nil {
		s.b.log.Warn("mqtt: encode ack", "client", s.cl.ID, "error", err)
		return
	}
	atomic.AddInt64(&s.b.server.Info.PacketsSent, 1)
	if p.err == nil && !p.unrouted {
		st.acked.Add(1)
	} else {
		st.nacked.Add(1)
	}
}

func encodeAck(pk *packets.Packet, buf *bytes.Buffer) error {
	if pk.FixedHeader.Type == packets.Pubrec {
		return pk.PubrecEncode(buf)
	}
	return pk.PubackEncode(buf)
}

// writeAcks writes encoded acks in one write, under the client's write lock
// (the one mochi's WritePacket takes), so packets never interleave.
func (s *session) writeAcks(b []byte) error {
	cl := s.cl
	if cl.Closed() || cl.Net.Conn == nil {
		return mqtt.ErrConnectionClosed
	}
	cl.Lock()
	n, err := cl.Net.Conn.Write(b)
	cl.Unlock()
	atomic.AddInt64(&s.b.server.Info.BytesSent, int64(n))
	if err != nil {
		s.b.log.Debug("mqtt: write acks", "client", cl.ID, "error", err)
		return err
	}
	return nil
}
