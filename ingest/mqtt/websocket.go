package mqtt

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// ServeWebsocket serves MQTT over websocket (subprotocol "mqtt", binary
// frames) on ln at Options.WebsocketPath (and "/"), until Close. For wss,
// pass a listener wrapped with tls.NewListener. Limits (per-IP cap, CONNECT
// deadline, maximum packet size) apply as on TCP.
func (b *Broker) ServeWebsocket(ln net.Listener) error {
	select {
	case <-b.closing:
		ln.Close()
		return ErrClosed
	default:
	}
	l := &wsListener{
		b:     b,
		id:    "ws-" + strconv.FormatInt(b.lnSeq.Add(1), 10),
		ln:    ln,
		conns: map[net.Conn]struct{}{},
		up: websocket.Upgrader{
			Subprotocols:     []string{"mqtt"},
			HandshakeTimeout: b.opts.ConnectTimeout,
			CheckOrigin:      func(*http.Request) bool { return true },
		},
	}
	if err := b.server.AddListener(l); err != nil {
		return err
	}
	b.log.Info("mqtt: listening", "addr", ln.Addr().String(), "protocol", "ws", "path", b.opts.WebsocketPath)
	l.Serve(b.server.EstablishConnection)
	select {
	case <-b.closing:
		return ErrClosed
	default:
	}
	return errors.New("mqtt: websocket listener stopped")
}

type wsListener struct {
	b         *Broker
	id        string
	ln        net.Listener
	up        websocket.Upgrader
	srv       *http.Server
	establish listeners.EstablishFn
	end       atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]struct{} // guarded by mu: upgraded connections
}

func (l *wsListener) ID() string                  { return l.id }
func (l *wsListener) Address() string             { return l.ln.Addr().String() }
func (l *wsListener) Protocol() string            { return "ws" }
func (l *wsListener) Init(log *slog.Logger) error { return nil }

func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.establish = establish
	mux := http.NewServeMux()
	mux.HandleFunc(l.b.opts.WebsocketPath, l.handle)
	if l.b.opts.WebsocketPath != "/" {
		mux.HandleFunc("/", l.handle)
	}
	l.mu.Lock()
	l.srv = &http.Server{Handler: mux, ReadHeaderTimeout: l.b.opts.ConnectTimeout, ErrorLog: nil}
	srv := l.srv
	l.mu.Unlock()
	if l.end.Load() {
		return
	}
	_ = srv.Serve(l.ln)
}

func (l *wsListener) handle(w http.ResponseWriter, r *http.Request) {
	if !l.b.connAcquire(r.RemoteAddr) {
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return
	}
	defer l.b.connRelease()
	ip := remoteIPString(r.RemoteAddr)
	if !l.b.ipAcquire(ip) {
		l.b.stats.connsRefusedIP.Add(1)
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return
	}
	defer l.b.ipRelease(ip)
	c, err := l.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c.SetReadLimit(int64(l.b.opts.MaxPacketSize) + 16)
	conn := &wsConn{Conn: c.NetConn(), c: c}
	l.mu.Lock()
	if l.end.Load() {
		l.mu.Unlock()
		conn.Close()
		return
	}
	l.conns[conn] = struct{}{}
	l.mu.Unlock()
	_ = conn.SetDeadline(time.Now().Add(l.b.opts.ConnectTimeout))
	l.b.wg.Add(1)
	defer l.b.wg.Done()
	if err := l.establish(l.id, conn); err != nil {
		l.b.connEnded(r.RemoteAddr, err)
	}
	conn.Close()
	l.mu.Lock()
	delete(l.conns, conn)
	l.mu.Unlock()
}

func (l *wsListener) Close(closeClients listeners.CloseFn) {
	if !l.end.CompareAndSwap(false, true) {
		return
	}
	l.mu.Lock()
	srv := l.srv
	l.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	} else {
		_ = l.ln.Close()
	}
	closeClients(l.id)
	l.mu.Lock()
	for c := range l.conns {
		_ = c.Close()
	}
	l.mu.Unlock()
}

func remoteIPString(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// wsConn adapts a websocket connection to net.Conn: each Write is one
// binary message; Read concatenates binary messages. (After mochi's.)
type wsConn struct {
	net.Conn
	c *websocket.Conn
	r io.Reader // current message, nil between messages
}

var errWSText = errors.New("mqtt: websocket text frame (MQTT needs binary)")

func (ws *wsConn) Read(p []byte) (int, error) {
	if ws.r == nil {
		op, r, err := ws.c.NextReader()
		if err != nil {
			return 0, err
		}
		if op != websocket.BinaryMessage {
			return 0, errWSText
		}
		ws.r = r
	}
	n := 0
	for n < len(p) {
		k, err := ws.r.Read(p[n:])
		n += k
		if err != nil {
			ws.r = nil
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return n, err
		}
	}
	return n, nil
}

func (ws *wsConn) Write(p []byte) (int, error) {
	if err := ws.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (ws *wsConn) Close() error { return ws.Conn.Close() }
