package mqtt

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// netListener is a mochi listener over a net.Listener the caller made. It
// enforces the per-IP connection cap and the CONNECT deadline, and closes
// every connection it accepted (even ones still before CONNECT) on Close.
type netListener struct {
	b        *Broker
	id       string
	protocol string
	ln       net.Listener
	log      *slog.Logger
	end      atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]struct{} // guarded by mu: open connections
}

var _ listeners.Listener = (*netListener)(nil)

func newNetListener(b *Broker, id, protocol string, ln net.Listener) *netListener {
	return &netListener{b: b, id: id, protocol: protocol, ln: ln, conns: map[net.Conn]struct{}{}}
}

func (l *netListener) ID() string       { return l.id }
func (l *netListener) Address() string  { return l.ln.Addr().String() }
func (l *netListener) Protocol() string { return l.protocol }

func (l *netListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

// Serve accepts connections until Close.
func (l *netListener) Serve(establish listeners.EstablishFn) {
	var delay time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if l.end.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// EMFILE and friends: back off instead of spinning.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				l.b.log.Warn("mqtt: accept", "error", err, "retry_in", delay)
				select {
				case <-time.After(delay):
					continue
				case <-l.b.closing:
					return
				}
			}
			l.b.log.Error("mqtt: accept failed; listener stops", "addr", l.Address(), "error", err)
			return
		}
		delay = 0
		l.handle(conn, establish)
	}
}

// connEnded notes why a connection ended: a malformed packet or a
// protocol violation is counted (MalformedPackets) and logged at most once
// a second; anything else is a debug line.
func (b *Broker) connEnded(peer string, err error) {
	if !isMalformed(err) {
		b.log.Debug("mqtt: connection ended", "peer", peer, "error", err)
		return
	}
	n := b.stats.malformed.Add(1)
	if b.warnLimit() {
		b.log.Warn("mqtt: connection closed: malformed packet or protocol violation (logged at most once a second)", "peer", peer, "error", err, "malformed_total", n)
	}
}

// isMalformed reports an error of mochi's packet decoding or protocol
// checks: malformed packet (0x81), protocol error (0x82), packet too
// large (0x95), or a packet type that does not exist.
func isMalformed(err error) bool {
	var code packets.Code
	if errors.As(err, &code) {
		return code.Code == packets.ErrMalformedPacket.Code || code.Code == packets.ErrProtocolViolation.Code || code.Code == packets.ErrPacketTooLarge.Code
	}
	return strings.Contains(err.Error(), "invalid packet type")
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

// delayedAcker is a connection that can leave its TCP ACKs to the
// kernel's delayed ACK instead of acknowledging each read at once
// (quickack_linux.go).
type delayedAcker interface {
	delayAcks(on bool)
	acksDelayed() bool
}

// delayedAckerOf returns c's delayedAcker (under TLS, the TCP connection
// beneath), or nil (c nil too).
func delayedAckerOf(c net.Conn) delayedAcker {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	d, _ := c.(delayedAcker)
	return d
}

// quickAckListener hands out its connections as quickAck makes them
// (under TLS, whose records then carry the PUBLISH packets).
type quickAckListener struct{ net.Listener }

func (l quickAckListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return quickAck(c), nil
}

func (l *netListener) handle(conn net.Conn, establish listeners.EstablishFn) {
	conn = quickAck(conn) // a plain TCP connection (TLS ones come quickAck'd from quickAckListener)
	if !l.b.connAcquire(conn.RemoteAddr().String()) {
		_ = conn.Close()
		return
	}
	ip := remoteIP(conn)
	if !l.b.ipAcquire(ip) {
		l.b.connRelease()
		l.b.stats.connsRefusedIP.Add(1)
		l.b.log.Debug("mqtt: connection refused, per-IP cap reached", "peer", conn.RemoteAddr().String())
		_ = conn.Close()
		return
	}
	l.mu.Lock()
	if l.end.Load() {
		l.mu.Unlock()
		l.b.ipRelease(ip)
		l.b.connRelease()
		_ = conn.Close()
		return
	}
	l.conns[conn] = struct{}{}
	l.mu.Unlock()
	// The CONNECT (and the TLS handshake) must arrive within the timeout;
	// mochi replaces the deadline with the keepalive once connected.
	_ = conn.SetDeadline(time.Now().Add(l.b.opts.ConnectTimeout))
	l.b.wg.Add(1)
	go func() {
		defer l.b.wg.Done()
		start := time.Now()
		err := establish(l.id, conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && time.Since(start) < l.b.opts.ConnectTimeout+time.Second {
			l.b.stats.connectTimeouts.Add(1)
		}
		if err != nil {
			l.b.connEnded(conn.RemoteAddr().String(), err)
		}
		_ = conn.Close()
		l.mu.Lock()
		delete(l.conns, conn)
		l.mu.Unlock()
		l.b.ipRelease(ip)
		l.b.connRelease()
	}()
}

// Close stops accepting, disconnects this listener's clients and closes
// every remaining connection.
func (l *netListener) Close(closeClients listeners.CloseFn) {
	if !l.end.CompareAndSwap(false, true) {
		return
	}
	_ = l.ln.Close()
	closeClients(l.id)
	l.mu.Lock()
	for c := range l.conns {
		_ = c.Close()
	}
	l.mu.Unlock()
}

func remoteIP(c net.Conn) string {
	a := c.RemoteAddr()
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// connAcquire counts a connection on any listener; false (counted, and
// logged at most once a second) when MaxConns are open.
func (b *Broker) connAcquire(peer string) bool {
	if b.opts.MaxConns < 0 {
		return true
	}
	if b.conns.Add(1) > int64(b.opts.MaxConns) {
		b.conns.Add(-1)
		n := b.stats.connsRefused.Add(1)
		if b.warnLimit() {
			b.log.Warn("mqtt: connection refused: the connection cap is reached (logged at most once a second)", "peer", peer, "max_conns", b.opts.MaxConns, "refused_total", n)
		}
		return false
	}
	return true
}

func (b *Broker) connRelease() {
	if b.opts.MaxConns >= 0 {
		b.conns.Add(-1)
	}
}

// ipAcquire counts a connection from ip; false when at the cap.
func (b *Broker) ipAcquire(ip string) bool {
	if b.opts.MaxConnsPerIP < 0 {
		return true
	}
	b.ipMu.Lock()
	defer b.ipMu.Unlock()
	if b.ipConns[ip] >= b.opts.MaxConnsPerIP {
		return false
	}
	b.ipConns[ip]++
	return true
}

func (b *Broker) ipRelease(ip string) {
	if b.opts.MaxConnsPerIP < 0 {
		return
	}
	b.ipMu.Lock()
	defer b.ipMu.Unlock()
	if b.ipConns[ip] <= 1 {
		delete(b.ipConns, ip)
	} else {
		b.ipConns[ip]--
	}
}
