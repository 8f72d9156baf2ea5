// Package mqtt is the MQTT upstream of the forwarder: a forward.Sink that
// publishes every record with QoS 1 to an MQTT 5 broker (Mosquitto,
// HiveMQ, EMQX, AWS IoT Core), over TCP or TLS, with username/password or
// a client certificate.
//
// It speaks MQTT 5 itself on top of the packet codec of the MQTT broker
// (mochi-mqtt's packets, ingest/mqtt/third_party/mochi) rather than through
// a client library, because the forwarder needs pipelined QoS 1
// publishes that stay in order on the wire and report each PUBACK through
// a callback: one writer (serialized by a mutex) assigns packet ids and
// writes PUBLISH packets in Send order, one reader per connection resolves
// PUBACKs. At most the broker's Receive Maximum publishes are in flight.
// Ping, the forwarder's probe of an idle link, is a PINGREQ answered by a
// PINGRESP on that connection (dialled if there is none).
//
// Mapping: topic = the route's target ({key} is the record key), payload =
// value, MQTT 5 user properties = the record's headers then the origin
// headers, plus runnel-key (when the key is not null) and runnel-timestamp
// (ms). Header values that are not UTF-8 are sent as "base64:<data>".
//
// Caveats: clean start, no session: on connection loss every in-flight
// publish fails and the forwarder resends from its cursor (at-least-once;
// the origin headers let the central side drop duplicates). MQTT 3.1.1
// brokers are not supported.
package mqtt

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/runnel/runnel/sync/forward"
)

// Errors.
var (
	ErrClosed       = errors.New("mqtt: sink closed")
	ErrNotConnected = errors.New("mqtt: connection lost before PUBACK")
	ErrRejected     = errors.New("mqtt: publish rejected by the broker")
	ErrConnect      = errors.New("mqtt: connect refused by the broker")
	// ErrEarlierFailed fails records behind a failed one of the same
	// origin partition (forward.StreamGate).
	ErrEarlierFailed = errors.New("mqtt: an earlier record of this partition failed")
)

// Header keys added by the MQTT sink. Never change.
const (
	PropKey       = "runnel-key"
	PropTimestamp = "runnel-timestamp"
)

// redialWait is the minimum time between two dial attempts; sends in
// between fail at once with the last dial error.
var redialWait = 500 * time.Millisecond

// Sink publishes records to one MQTT broker.
type Sink struct {
	u      forward.Upstream
	addr   string
	tlsc   *tls.Config
	logger *slog.Logger
	gate   forward.StreamGate

	wmu sync.Mutex // serializes dial and writes; guards wbuf, conn, lastDial, dialErr, closed
	// (lock order: wmu before mu)
	wbuf     bytes.Buffer // the packet being written
	conn     *conn
	lastDial time.Time
	dialErr  error
	closed   bool

	// live is conn, readable without wmu: Close kills it when a write
	// blocked on a broker that does not read holds wmu.
	live atomic.Pointer[conn]
}

// conn is one connection and its in-flight publishes.
type conn struct {
	nc    net.Conn
	br    *bufio.Reader // nc's reader (the dial, then the reader goroutine)
	slots chan struct{} // one token per allowed in-flight publish
	done  chan struct{} // closed when the connection is dead
	busy  chan struct{} // one slot: a publish went out with none in flight (wakes the pinger)

	mu       sync.Mutex // guards the fields below
	inflight map[uint16]inflight
	nextID   uint16
	err      error
	pong     chan struct{} // closed by the next PINGRESP (Ping waits on it); nil when none waits
}

type inflight struct {
	done func(error)
	sent time.Time
}

var _ forward.Sink = (*Sink)(nil)

// NewSink is a forward.NewSinkFunc; it does not touch the network.
func NewSink(name string, u forward.Upstream, logger *slog.Logger) (forward.Sink, error) {
	return New(u, logger)
}

// New builds a Sink.
func New(u forward.Upstream, logger *slog.Logger) (*Sink, error) {
	if logger == nil {
		logger = slog.Default()
	}
	u = u.WithDefaults("")
	if u.Kind != "mqtt" {
		return nil, fmt.Errorf("mqtt: upstream kind is %q", u.Kind)
	}
	if err := u.Validate(); err != nil {
		return nil, err
	}
	pu, err := url.Parse(u.URL)
	if err != nil {
		return nil, fmt.Errorf("mqtt: url %q: %w", u.URL, err)
	}
	useTLS := u.TLS.On()
	port := "1883"
	switch pu.Scheme {
	case "mqtt", "tcp":
	case "mqtts", "ssl", "tls":
		useTLS, port = true, "8883"
	default:
		return nil, fmt.Errorf("mqtt: url %q: scheme must be mqtt, tcp, mqtts, ssl or tls", u.URL)
	}
	if pu.Port() != "" {
		port = pu.Port()
	}
	s := &Sink{u: u, addr: net.JoinHostPort(pu.Hostname(), port), logger: logger}
	if useTLS {
		t := u.TLS
		t.Enabled = true
		if s.tlsc, err = t.Config(pu.Hostname()); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Send publishes rec with QoS 1; done runs from the connection's reader.
func (s *Sink) Send(ctx context.Context, rec *forward.Record, done0 func(error)) {
	if s.gate.Blocked(rec) {
		done0(ErrEarlierFailed)
		return
	}
	done := func(err error) {
		if err != nil {
			s.gate.Failed(rec)
		}
		done0(err)
	}
	c, err := s.connect(ctx)
	if err != nil {
		done(err)
		return
	}
	select {
	case <-c.slots:
	case <-c.done:
		done(c.deadErr())
		return
	case <-ctx.Done():
		done(ctx.Err())
		return
	}
	pub := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5,
		TopicName: rec.Topic, Payload: rec.Value, Properties: properties(rec)}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		done(c.err)
		return
	}
	id := c.nextIDLocked()
	pub.PacketID = id
	first := len(c.inflight) == 0
	c.inflight[id] = inflight{done: done, sent: time.Now()}
	c.mu.Unlock()
	if first {
		select {
		case c.busy <- struct{}{}:
		default:
		}
	}
	c.nc.SetWriteDeadline(time.Now().Add(s.u.DeliveryTimeout))
	if err := s.writeLocked(c.nc, pub.PublishEncode); err != nil {
		c.kill(fmt.Errorf("mqtt: write: %w", err))
	}
}

// writeLocked encodes one packet into wbuf and writes it to nc (wmu held).
func (s *Sink) writeLocked(nc net.Conn, encode func(*bytes.Buffer) error) error {
	s.wbuf.Reset()
	if err := encode(&s.wbuf); err != nil {
		return err
	}
	_, err := nc.Write(s.wbuf.Bytes())
	if s.wbuf.Cap() > 1<<20 {
		s.wbuf = bytes.Buffer{} // a large record's buffer is not kept
	}
	return err
}

// maxReadPacket bounds what the sink reads in one packet: brokers send it
// CONNACK, PUBACK, PINGRESP and DISCONNECT, a few bytes plus properties.
const maxReadPacket = 1 << 20

// readPacket reads one MQTT 5 packet and decodes CONNACK, PUBACK and
// DISCONNECT; other kinds come back with their fixed header only.
func readPacket(br *bufio.Reader) (*packets.Packet, error) {
	pk := &packets.Packet{ProtocolVersion: 5}
	hb, err := br.ReadByte()
	if err != nil {
		return nil, err
	}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return nil, err
	}
	n, _, err := packets.DecodeLength(br)
	if err != nil {
		return nil, err
	}
	if n > maxReadPacket {
		return nil, fmt.Errorf("%s of %d bytes (at most %d)", packets.PacketNames[pk.FixedHeader.Type], n, maxReadPacket)
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", packets.PacketNames[pk.FixedHeader.Type], err)
	}
	return pk, nil
}

// pubackReason names a PUBACK reason code of MQTT 5 (3.4.2.1), with the
// broker's reason string when it sent one.
func pubackReason(pk *packets.Packet) string {
	var r string
	switch pk.ReasonCode {
	case 0x80:
		r = "unspecified error"
	case 0x83:
		r = "implementation specific error"
	case 0x87:
		r = "not authorized"
	case 0x90:
		r = "topic name invalid"
	case 0x91:
		r = "packet identifier in use"
	case 0x97:
		r = "quota exceeded"
	case 0x99:
		r = "payload format invalid"
	default:
		r = "reason unknown"
	}
	if pk.Properties.ReasonString != "" {
		r += ": " + pk.Properties.ReasonString
	}
	return r
}

func (c *conn) nextIDLocked() uint16 {
	for {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if _, used := c.inflight[c.nextID]; !used {
			return c.nextID
		}
	}
}

func (c *conn) deadErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// kill closes the connection and fails every in-flight publish.
func (c *conn) kill(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	fl := c.inflight
	c.inflight = map[uint16]inflight{}
	close(c.done)
	c.mu.Unlock()
	c.nc.Close()
	for _, f := range fl {
		f.done(fmt.Errorf("%w: %v", ErrNotConnected, err))
	}
}

func properties(rec *forward.Record) packets.Properties {
	p := packets.Properties{User: make([]packets.UserProperty, 0, len(rec.Headers)+2)}
	for _, h := range rec.Headers {
		p.User = append(p.User, packets.UserProperty{Key: h.Key, Val: utf8Value(h.Value)})
	}
	if rec.Key != nil {
		p.User = append(p.User, packets.UserProperty{Key: PropKey, Val: utf8Value(rec.Key)})
	}
	p.User = append(p.User, packets.UserProperty{Key: PropTimestamp, Val: strconv.FormatInt(rec.Timestamp, 10)})
	return p
}

func utf8Value(v []byte) string {
	if utf8.Valid(v) {
		return string(v)
	}
	return "base64:" + base64.StdEncoding.EncodeToString(v)
}

// Ping connects if needed, then sends a PINGREQ and waits for a PINGRESP
// (until ctx ends, at most DeliveryTimeout): a connection whose broker
// went away without closing it fails here, not at the next publish. A
// ping not answered in time kills the connection and the next Send or
// Ping dials again. While publishes are in flight (another route of the
// upstream is sending) Ping sends nothing and reports the connection
// alive: their PUBACK deadline watches it, and a PINGREQ queued behind
// them on a slow link could time out on a link that works.
func (s *Sink) Ping(ctx context.Context) error {
	c, err := s.connect(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.u.DeliveryTimeout)
	defer cancel()
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	if len(c.inflight) > 0 {
		c.mu.Unlock()
		return nil
	}
	if c.pong == nil {
		c.pong = make(chan struct{})
	}
	pong := c.pong
	c.mu.Unlock()
	s.wmu.Lock()
	dl, _ := ctx.Deadline()
	c.nc.SetWriteDeadline(dl)
	err = s.writeLocked(c.nc, (&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}}).PingreqEncode)
	s.wmu.Unlock()
	if err != nil {
		err = fmt.Errorf("mqtt: ping: %w", err)
		c.kill(err)
		return err
	}
	select {
	case <-pong:
		return nil
	case <-c.done:
		return c.deadErr()
	case <-ctx.Done():
		err := fmt.Errorf("mqtt: ping %s: no PINGRESP: %w", s.addr, ctx.Err())
		c.kill(err)
		return err
	}
}

var _ forward.Pinger = (*Sink)(nil)

// connect returns the live connection, dialing if there is none (at most
// once per redialWait).
func (s *Sink) connect(ctx context.Context) (*conn, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if c := s.conn; c != nil {
		select {
		case <-c.done:
		default:
			return c, nil
		}
		s.conn = nil
	}
	if s.dialErr != nil && time.Since(s.lastDial) < redialWait {
		return nil, s.dialErr
	}
	s.lastDial = time.Now()
	c, err := s.dial(ctx)
	s.dialErr = err
	if err != nil {
		return nil, err
	}
	s.conn = c
	s.live.Store(c)
	return c, nil
}

func (s *Sink) dial(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var nc net.Conn
	var err error
	d := &net.Dialer{KeepAlive: 15 * time.Second}
	if s.tlsc != nil {
		nc, err = (&tls.Dialer{NetDialer: d, Config: s.tlsc}).DialContext(ctx, "tcp", s.addr)
	} else {
		nc, err = d.DialContext(ctx, "tcp", s.addr)
	}
	if err != nil {
		return nil, fmt.Errorf("mqtt: dial %s: %w", s.addr, err)
	}
	dl, _ := ctx.Deadline()
	nc.SetDeadline(dl)
	// ctx ending (the forwarder stopping) ends the handshake too.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	ka := uint16(min(s.u.KeepAlive/time.Second, 65535))
	cp := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: s.u.ClientID, Keepalive: ka, Clean: true}}
	if s.u.Username != "" {
		cp.Connect.UsernameFlag, cp.Connect.Username = true, []byte(s.u.Username)
	}
	if s.u.Password != "" {
		cp.Connect.PasswordFlag, cp.Connect.Password = true, []byte(s.u.Password)
	}
	if err := s.writeLocked(nc, cp.ConnectEncode); err != nil {
		nc.Close()
		return nil, fmt.Errorf("mqtt: connect %s: %w", s.addr, err)
	}
	br := bufio.NewReader(nc)
	ack, err := readPacket(br)
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			err = ctx.Err() // the deadline set above, or the AfterFunc
		}
		return nil, fmt.Errorf("mqtt: connect %s: %w", s.addr, err)
	}
	if ack.FixedHeader.Type != packets.Connack {
		nc.Close()
		return nil, fmt.Errorf("mqtt: connect %s: got %s instead of CONNACK", s.addr, packets.PacketNames[ack.FixedHeader.Type])
	}
	if ack.ReasonCode != 0 {
		nc.Close()
		return nil, fmt.Errorf("%w: %s: reason 0x%02x", ErrConnect, s.addr, ack.ReasonCode)
	}
	if !stop() { // ctx ended as the CONNACK arrived
		nc.Close()
		return nil, fmt.Errorf("mqtt: connect %s: %w", s.addr, ctx.Err())
	}
	nc.SetDeadline(time.Time{})
	window := 65535 // Receive Maximum absent: 65535 (MQTT 5, 3.2.2.3.3)
	if ack.Properties.ReceiveMaximum > 0 {
		window = int(ack.Properties.ReceiveMaximum)
	}
	window = max(min(window, 1024), 1)
	c := &conn{nc: nc, br: br, slots: make(chan struct{}, window), done: make(chan struct{}), busy: make(chan struct{}, 1), inflight: map[uint16]inflight{}}
	for range window {
		c.slots <- struct{}{}
	}
	go s.reader(c)
	go s.pinger(c)
	s.logger.Info("mqtt: connected", "peer", s.addr, "receive_maximum", window)
	return c, nil
}

// reader resolves PUBACKs until the connection dies. The read deadline
// (1.5 keep-alives; the pinger writes a PINGREQ every half keep-alive)
// detects a silent link.
func (s *Sink) reader(c *conn) {
	for {
		c.nc.SetReadDeadline(time.Now().Add(s.u.KeepAlive * 3 / 2))
		p, err := readPacket(c.br)
		if err != nil {
			c.kill(fmt.Errorf("mqtt: read: %w", err))
			return
		}
		switch p.FixedHeader.Type {
		case packets.Puback:
			c.mu.Lock()
			f, ok := c.inflight[p.PacketID]
			delete(c.inflight, p.PacketID)
			c.mu.Unlock()
			if !ok {
				continue
			}
			c.slots <- struct{}{}
			if p.ReasonCode >= 0x80 {
				f.done(fmt.Errorf("%w: %s (0x%02x)", ErrRejected, pubackReason(p), p.ReasonCode))
			} else {
				f.done(nil)
			}
		case packets.Disconnect:
			c.kill(fmt.Errorf("mqtt: broker disconnected: reason 0x%02x", p.ReasonCode))
			return
		case packets.Pingresp:
			c.mu.Lock()
			if c.pong != nil {
				close(c.pong)
				c.pong = nil
			}
			c.mu.Unlock()
		default:
			// Nothing else is expected (no subscriptions); ignore.
		}
	}
}

// pinger keeps the connection alive and fails it when a PUBACK is overdue:
// it looks every second (or KeepAlive/2 if shorter) while publishes are in
// flight, and sleeps until the next ping while none are (a publish wakes
// it through busy).
func (s *Sink) pinger(c *conn) {
	check := min(s.u.KeepAlive/2, time.Second)
	t := time.NewTimer(check)
	defer t.Stop()
	lastPing := time.Now()
	for {
		select {
		case <-c.done:
			return
		case <-c.busy:
			t.Reset(check)
			continue
		case <-t.C:
		}
		now := time.Now()
		c.mu.Lock()
		var oldest time.Time
		for _, f := range c.inflight {
			if oldest.IsZero() || f.sent.Before(oldest) {
				oldest = f.sent
			}
		}
		c.mu.Unlock()
		if !oldest.IsZero() && now.Sub(oldest) > s.u.DeliveryTimeout {
			c.kill(fmt.Errorf("mqtt: no PUBACK within %v", s.u.DeliveryTimeout))
			return
		}
		if now.Sub(lastPing) >= s.u.KeepAlive/2 {
			lastPing = now
			s.wmu.Lock()
			c.nc.SetWriteDeadline(now.Add(s.u.KeepAlive))
			err := s.writeLocked(c.nc, (&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}}).PingreqEncode)
			s.wmu.Unlock()
			if err != nil {
				c.kill(fmt.Errorf("mqtt: ping: %w", err))
				return
			}
		}
		if oldest.IsZero() {
			t.Reset(max(s.u.KeepAlive/2-time.Since(lastPing), time.Millisecond))
		} else {
			t.Reset(check)
		}
	}
}

// Close disconnects; in-flight publishes fail. Idempotent. It does not
// wait for a write the broker does not read: it closes that connection.
func (s *Sink) Close() error {
	if !s.wmu.TryLock() {
		if c := s.live.Load(); c != nil {
			c.kill(ErrClosed) // the blocked write returns and lets wmu go
		}
		s.wmu.Lock()
	}
	if s.closed {
		s.wmu.Unlock()
		return nil
	}
	s.closed = true
	c := s.conn
	s.conn = nil
	s.live.Store(nil)
	if c != nil {
		c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		s.writeLocked(c.nc, (&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: 5}).DisconnectEncode)
	}
	s.wmu.Unlock()
	if c != nil {
		c.kill(ErrClosed)
	}
	return nil
}
