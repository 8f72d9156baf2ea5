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

	// inLog counts the client's QoS 1/2 records handed to the log and
	// not yet finished.
	inLog atomic.Int64

	fmu      sync.Mutex
	deferred []*appender // guarded by fmu: feeds to register once the client's buffered packets are read and no hold applies
	// The reply hold (doc.go, "Reply holds"), guarded by fmu:
	owed     int         // PUBACK/PUBREC written whose answering publishes have not arrived
	owedAt   int64       // when the last of them were written (unix nanos)
	answered int         // publishes that answered them
	quiet    bool        // the client left its last acks unanswered: its records are not held
	holdAt   int64       // when the current hold began to wait for owed publishes (0: none)
	holdGen  uint64      // counts holds: a timer of an earlier one does nothing
	holdT    *time.Timer // ends the current hold

	// Touched by the client's read loop only (notePublish):
	acker    delayedAcker // the connection's quick-ACK switch (nil: none)
	alones   int          // QoS 1/2 publishes in a row that arrived alone
	lazyAcks bool         // quick ACKs are off
}

// deferFeed notes an appender whose feed registration waits until the
// client's packets already received are read and no hold applies
// (release).
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

// arrived notes a publish of the client (QoS qos) and reports whether the
// feed of its record is held (holdsLocked).
func (s *session) arrived(now int64, qos byte) bool {
	bound := int64(s.b.replyWait())
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.owed > 0 {
		if now-s.owedAt < int64(log.IndependentAfter) {
			s.owed--
			s.answered++
			if s.owed == 0 {
				s.quiet = false // answered every ack
			}
		} else {
			s.owed = 0 // not an answer: the client came back later
		}
	}
	return qos > 0 && s.holdsLocked(now, bound)
}

// holdsLocked reports whether the client's deferred feeds wait: it has
// QoS 1/2 records in a commit (their acks will bring the rest of its
// window back), or it has not yet answered every ack written less than
// log.IndependentAfter ago and the hold waiting for those answers is
// younger than bound. A client with nothing in the log and no acks owed
// (one that waits alone, or sends one message at a time) is never held;
// nor is a quiet one.
func (s *session) holdsLocked(now, bound int64) bool {
	if s.quiet || bound <= 0 {
		return false
	}
	if s.inLog.Load() > 0 {
		return true
	}
	return s.owed > 0 && now-s.owedAt < int64(log.IndependentAfter) && (s.holdAt == 0 || now-s.holdAt < bound)
}

// owe notes n PUBACK/PUBREC about to be written: the client answers them
// with up to n publishes. Called before the write, so that no answer is
// read before it is owed.
func (s *session) owe(n int) {
	if n == 0 {
		return // nothing the client answers (QoS 0)
	}
	now := time.Now().UnixNano()
	s.fmu.Lock()
	if s.owed > 0 && now-s.owedAt < int64(log.IndependentAfter) {
		s.owed += n
	} else {
		s.owed, s.answered = n, 0
	}
	s.owedAt = now
	s.fmu.Unlock()
}

// release registers the deferred feeds unless a hold applies. A hold
// waiting for a commit ends when the client's records in it finish; one
// waiting for owed publishes when they arrived, or at the latest bound
// after it began (holdExpired).
func (s *session) release() {
	now := time.Now().UnixNano()
	bound := s.b.replyWait()
	s.fmu.Lock()
	if len(s.deferred) == 0 {
		s.fmu.Unlock()
		return
	}
	if s.holdsLocked(now, int64(bound)) {
		if s.holdAt == 0 && s.inLog.Load() == 0 {
			s.holdAt = now
			s.holdGen++
			gen := s.holdGen
			s.holdT = time.AfterFunc(bound, func() { s.holdExpired(gen) })
			s.b.stats.replyHolds.Add(1)
		}
		s.fmu.Unlock()
		return
	}
	ds := s.deferred
	s.deferred = nil
	s.endHoldLocked(now)
	s.fmu.Unlock()
	for _, a := range ds {
		a.kick()
	}
}

// endHoldLocked ends the current hold, if any.
func (s *session) endHoldLocked(now int64) {
	if s.holdAt == 0 {
		return
	}
	s.b.stats.replyHoldNanos.Add(uint64(now - s.holdAt))
	s.holdAt = 0
	s.holdGen++
	s.holdT.Stop()
}

// holdExpired ends hold gen, whose owed publishes did not all arrive in
// time. A client that answered none of its acks is quiet: its records are
// not held again until it answers every ack of a group.
func (s *session) holdExpired(gen uint64) {
	s.fmu.Lock()
	if gen != s.holdGen || s.holdAt == 0 {
		s.fmu.Unlock()
		return
	}
	if s.owed > 0 && len(s.deferred) > 0 {
		s.b.stats.replyHoldTimeouts.Add(1)
		if s.answered == 0 {
			s.quiet = true
		}
	}
	s.owed = 0
	s.fmu.Unlock()
	s.release()
}

// flushDeferred registers the deferred feeds at once (the connection
// ended).
func (s *session) flushDeferred() {
	s.fmu.Lock()
	ds := s.deferred
	s.deferred = nil
	s.endHoldLocked(time.Now().UnixNano())
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
	return &session{b: b, cl: cl, v5: cl.Properties.ProtocolVersion == 5, space: make(chan struct{}, 1), acker: delayedAckerOf(cl.Net.Conn)}
}

// lazyAckAfter is how many QoS 1/2 publishes in a row that arrive with
// nothing else of the client pending turn quick TCP ACKs off for a
// client without subscriptions (notePublish).
const lazyAckAfter = 16

// notePublish turns the connection's quick TCP ACKs (quickack_linux.go)
// off while the client publishes one message at a time (each one alone:
// its previous was acknowledged before it sent it) and on again at the
// first publish that finds another pending, a QoS 0 publish, or once the
// client subscribes (a subscriber's PUBACKs of deliveries, held by
// Nagle's algorithm, would otherwise wait for the broker's delayed ACK).
// Called from the client's read loop (OnPublish) only.
func (s *session) notePublish(qos byte, alone bool) {
	if s.acker == nil {
		return
	}
	if qos == 0 || !alone {
		s.alones = 0
		if s.lazyAcks {
			s.lazyAcks = false
			s.acker.delayAcks(false)
		}
		return
	}
	s.alones++
	switch subs := s.cl.State.Subscriptions.Len() > 0; {
	case s.lazyAcks && subs:
		s.lazyAcks = false
		s.acker.delayAcks(false)
	case !s.lazyAcks && !subs && s.alones >= lazyAckAfter:
		s.lazyAcks = true
		s.acker.delayAcks(true)
	}
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
		s.b.startDrain(s)
	} else if s.inLog.Load() == 0 {
		s.release() // a hold waiting for this client's commit ends
	}
}

// startDrain runs s.drain on a drainer goroutine: one that waits idle
// (drainer) if there is one, else a new one.
func (b *Broker) startDrain(s *session) {
	select {
	case b.drainq <- s:
	default:
		b.wg.Add(1)
		go b.drainer(s)
	}
}

// maxIdleDrainers is how many drainer goroutines wait for the next
// session to drain once their own is done. A goroutine started for each
// drain grew its stack each time (the socket write's call chain is deeper
// than a new goroutine's first stack): 5-7% of the broker's CPU time with
// 100 clients at window 1. A commit finishes the publishes of up to a few
// dozen sessions at once; the idle ones cost their stacks (a few KiB
// each) and no wakeups.
const maxIdleDrainers = 32

// drainer drains s, then the sessions handed to it while it waits idle,
// until more than maxIdleDrainers wait or the broker closes.
func (b *Broker) drainer(s *session) {
	defer b.wg.Done()
	for {
		s.drain()
		if b.idleDrainers.Add(1) <= maxIdleDrainers {
			select {
			case s = <-b.drainq:
			case <-b.closing:
				s = nil
			}
		} else {
			s = nil
		}
		b.idleDrainers.Add(-1)
		if s == nil {
			return
		}
	}
}

// drain acknowledges and fans out the finished prefix of the FIFO until
// the head is not finished. At most one drainer runs per session.
func (s *session) drain() {
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
		acks := 0
		for _, p := range ready {
			if s.settle(p, &buf, &dead) {
				acks++
			}
		}
		if buf.Len() > 0 && !dead {
			s.owe(acks)
			if err := s.writeAcks(buf.Bytes()); err != nil {
				dead = true
			}
			s.lastAck.Store(time.Now().UnixNano())
		}
		s.release() // the client's commit ended: its held records may go
		if dead {
			s.mu.Lock()
			s.dead = true
			s.mu.Unlock()
		}
	}
}

// settle handles one finished publish: fan-out on success, ack encoding
// (success or reason code), disconnect of MQTT 3 clients on failure; true
// when it encoded an ack into buf.
func (s *session) settle(p *pending, buf *bytes.Buffer, dead *bool) (acked bool) {
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
		return false
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
		return false
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
		switch {
		case errors.Is(p.err, log.ErrDiskFull) || errors.Is(p.err, log.ErrNotEnoughReplicas):
			code = packets.ErrQuotaExceeded
		case errors.Is(p.err, log.ErrBatchTooLarge):
			code = packets.ErrPacketTooLarge
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
		return false
	}
	atomic.AddInt64(&s.b.server.Info.PacketsSent, 1)
	if p.err == nil && !p.unrouted {
		st.acked.Add(1)
	} else {
		st.nacked.Add(1)
	}
	return true
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
