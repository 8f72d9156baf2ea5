package mqtt

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/runnel/runnel/ingest/access"
	"github.com/runnel/runnel/ingest/produce"
	"github.com/runnel/runnel/log"
)

// fanClientID is the inline client's id between fan-outs.
const fanClientID = "runnel-fanout"

// Broker is the embedded MQTT broker. Create with New, serve listeners with
// Serve/ServeTLS/ServeWebsocket (or Start), stop with Close.
type Broker struct {
	opts    Options
	log     *slog.Logger
	server  *mqtt.Server
	router  router
	auth    *authorizer
	backoff *access.Backoff // failed logins per address
	tlsCfg  *tls.Config     // nil without TLS options
	stats   counters

	completions     *completionQueue
	appendsInFlight atomic.Int64
	commitNanos     atomic.Int64     // average time from handing a batch to the log to its completion (noteCommit)
	feeder          log.CommitFeeder // the log, when it can feed its commits (nil otherwise)

	appMu sync.RWMutex
	apps  map[tp]*appender // guarded by appMu

	produce *produce.Path // the produce path shared with Kafka and HTTP

	sessions sync.Map // *mqtt.Client → *session
	limits   sync.Map // log topic → topicLimit (appender.go)
	subQuota sync.Map // *mqtt.Client → quotaMark: refused filters of the SUBSCRIBE being answered

	fanMu sync.Mutex   // serializes use of fan
	fan   *mqtt.Client // inline client that fans out durable publishes

	ipMu    sync.Mutex
	ipConns map[string]int // guarded by ipMu: open connections per IP

	conns atomic.Int64 // connections open on all listeners (MaxConns)

	persist *persister // nil with NoPersist

	lnSeq atomic.Int64

	lastWarn atomic.Int64 // unix nanos of the last rate-limited warning

	addrMu sync.Mutex
	addrs  []net.Addr // guarded by addrMu: addresses bound by Start

	closing   chan struct{} // closed first by Close
	compStop  chan struct{} // closed by Close once no new appends can start
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup // drainers, connection goroutines, publishers

	drainq       chan *session // unbuffered: a session handed to an idle drainer
	idleDrainers atomic.Int64
	bg           sync.WaitGroup // completion goroutine
}

// New builds a broker (no listener yet). It loads persisted sessions and
// retained messages and starts the broker's goroutines; Close stops them.
// topicAliasMaximum is the Topic Alias Maximum announced to MQTT 5 clients.
const topicAliasMaximum = 10

// maxQueuedPerSession caps the QoS 1/2 messages a session holds
// unacknowledged (mochi's MaximumInflight).
const maxQueuedPerSession = 1000

func New(opts Options) (*Broker, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	b := &Broker{
		opts:        o,
		log:         o.Logger,
		router:      router{routes: o.Routes},
		auth:        newAuthorizer(&o),
		completions: newCompletionQueue(),
		apps:        map[tp]*appender{},
		produce:     produce.New(produce.Options{Log: o.Log, Logger: o.Logger, Protocol: "mqtt"}),
		ipConns:     map[string]int{},
		closing:     make(chan struct{}),
		compStop:    make(chan struct{}),
		drainq:      make(chan *session),
	}
	b.feeder, _ = o.Log.(log.CommitFeeder)
	b.backoff = access.DefaultBackoff()
	if o.TLS.CertFile != "" {
		cfg, err := loadTLS(&o.TLS)
		if err != nil {
			return nil, err
		}
		b.tlsCfg = cfg
	}
	if !o.AllowAnonymous && len(o.Users) == 0 && !o.TLS.CertAsUsername {
		b.log.Warn("mqtt: anonymous access is off and no users are configured: every client will be refused")
	}

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(o.MaxPacketSize)
	// mochi allocates this outbound queue eagerly per client (8 bytes a
	// slot): its default 8192 costs 64 KiB per idle connection.
	caps.MaximumClientWritesPending = int32(o.MaxQueuedPerClient)
	// mochi drops retained and queued messages after 24 h by default; a
	// site's retained status must survive until replaced. Messages still
	// expire by their own MQTT 5 expiry interval.
	caps.MaximumMessageExpiryInterval = 0
	// An MQTT 5 client may name up to this many topics by alias
	// (Mosquitto's max_topic_alias default); mochi's 65,535, each alias
	// holding a topic of up to 64 KiB, let one connection pin gigabytes.
	caps.TopicAliasMaximum = topicAliasMaximum
	// QoS 1/2 messages one session holds unacknowledged, queued while its
	// client is away included; one more is dropped (counted in $SYS
	// messages/dropped). Mosquitto's max_queued_messages default: mochi's
	// 8,192 let 20 offline sessions hold 2 GB of 16 KiB messages.
	caps.MaximumInflight = maxQueuedPerSession
	caps.MaximumSessions = max(int64(o.MaxSessions), 0) // <0: no cap (mochi's 0)
	caps.MaximumSessionQueueBytes = max(int64(o.MaxSessionQueueBytes), 0)
	caps.MaximumQueueBytes = max(int64(o.MaxQueueBytes), 0)
	if o.MaxClients > 0 {
		caps.MaximumClients = int64(o.MaxClients)
	} else {
		caps.MaximumClients = math.MaxInt64
	}
	b.server = mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		Logger:                 slog.New(newRateHandler(o.Logger.Handler())).With("component", "mochi"),
		SysTopicResendInterval: max(int64(o.SysInterval/time.Second), 1),
	})
	b.fan = b.server.NewClient(nil, mqtt.LocalListener, fanClientID, true)

	if !o.NoPersist {
		p, err := newPersister(b)
		if err != nil {
			return nil, err
		}
		b.persist = p
	}
	if err := b.server.AddHook(newHook(b), nil); err != nil {
		return nil, fmt.Errorf("mqtt: add hook: %w", err)
	}
	b.bg.Add(1)
	go func() {
		defer b.bg.Done()
		b.completions.run(b.compStop, func() int64 { return b.appendsInFlight.Load() })
	}()
	if err := b.server.Serve(); err != nil { // no listeners yet: loads the store, starts $SYS
		b.Close()
		return nil, fmt.Errorf("mqtt: start: %w", err)
	}
	if err := b.startPublishers(); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Serve serves plain MQTT on ln (which the caller made, e.g. 127.0.0.1:0)
// until Close; it returns ErrClosed then, or the listener's error.
func (b *Broker) Serve(ln net.Listener) error {
	return b.serve(ln, "tcp")
}

// ServeTLS serves MQTT over TLS on ln (a plain TCP listener; the broker
// adds TLS with Options.TLS). Blocks like Serve.
func (b *Broker) ServeTLS(ln net.Listener) error {
	if b.tlsCfg == nil {
		return fmt.Errorf("%w: ServeTLS without tls cert-file/key-file", ErrTLS)
	}
	return b.serve(tls.NewListener(quickAckListener{ln}, b.tlsCfg), "tls")
}

func (b *Broker) serve(ln net.Listener, proto string) error {
	select {
	case <-b.closing:
		ln.Close()
		return ErrClosed
	default:
	}
	id := proto + "-" + strconv.FormatInt(b.lnSeq.Add(1), 10)
	l := newNetListener(b, id, proto, ln)
	if err := b.server.AddListener(l); err != nil {
		return fmt.Errorf("mqtt: add listener: %w", err)
	}
	b.log.Info("mqtt: listening", "addr", ln.Addr().String(), "protocol", proto)
	l.Serve(b.server.EstablishConnection)
	select {
	case <-b.closing:
		return ErrClosed
	default:
	}
	l.Close(func(string) {})
	return fmt.Errorf("mqtt: listener %s stopped", ln.Addr())
}

// Start listens on Options.Addr, Options.TLS.Addr and
// Options.WebsocketAddr (each when non-empty) and serves them in the
// background until Close. Errors binding an address are returned at once.
func (b *Broker) Start() error {
	type srv struct {
		addr string
		run  func(net.Listener) error
	}
	var all []srv
	if b.opts.Addr != "" {
		all = append(all, srv{b.opts.Addr, b.Serve})
	}
	if b.opts.TLS.Addr != "" {
		all = append(all, srv{b.opts.TLS.Addr, b.ServeTLS})
	}
	if b.opts.WebsocketAddr != "" {
		ws := b.ServeWebsocket
		if b.opts.WebsocketTLS {
			ws = func(ln net.Listener) error { return b.ServeWebsocket(tls.NewListener(ln, b.tlsCfg)) }
		}
		all = append(all, srv{b.opts.WebsocketAddr, ws})
	}
	var lns []net.Listener
	for _, s := range all {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return fmt.Errorf("mqtt: listen %s: %w", s.addr, err)
		}
		lns = append(lns, ln)
	}
	b.addrMu.Lock()
	for _, ln := range lns {
		b.addrs = append(b.addrs, ln.Addr())
	}
	b.addrMu.Unlock()
	for i, s := range all {
		ln, run := lns[i], s.run
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			if err := run(ln); err != nil && err != ErrClosed {
				b.log.Error("mqtt: listener stopped", "addr", ln.Addr().String(), "error", err)
			}
		}()
	}
	return nil
}

// Shutdown stops the listeners, disconnects every client (a DISCONNECT
// first), waits for the messages already handed to the log to complete,
// saves sessions and retained messages and stops every goroutine. When ctx
// ends first, the connections still open are closed at once (a client that
// does not read its socket blocks the broker's writes to it, that
// DISCONNECT included), appends still in the log are left to it (it makes
// them durable before it closes; their acknowledgements can no longer be
// sent) and Shutdown returns an error saying so. It does not close the
// log. Idempotent: later calls return the first one's result.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.closeOnce.Do(func() { b.closeErr = b.shutdown(ctx) })
	return b.closeErr
}

// Close is Shutdown without a deadline.
func (b *Broker) Close() error { return b.Shutdown(context.Background()) }

func (b *Broker) shutdown(ctx context.Context) error {
	close(b.closing)
	stopped := make(chan struct{})
	go func() {
		_ = b.server.Close() // listeners, clients (waits for their read loops), $SYS loop
		close(stopped)
	}()
	var err error
	select {
	case <-stopped:
	case <-ctx.Done():
		n := b.dropClients()
		err = fmt.Errorf("mqtt: stop: %d connections closed at the deadline", n)
		<-stopped // no write can block now
	}
	b.flushAppenders()
	close(b.compStop)
	done := make(chan struct{})
	go func() {
		b.bg.Wait() // every append completed and its waiters finished
		b.wg.Wait() // drainers, connections, publishers
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		if n := b.appendsInFlight.Load(); n > 0 || err == nil {
			err = fmt.Errorf("mqtt: stop: %d appends still pending in the log at the deadline", n)
		}
	}
	if b.persist != nil {
		if perr := b.persist.close(); perr != nil && err == nil {
			err = perr
		}
	}
	return err
}

// dropClients closes the connection of every network client (Shutdown at
// its deadline): a write blocked on a client that does not read returns,
// and its read loop ends. It returns how many it closed.
func (b *Broker) dropClients() int {
	n := 0
	for _, cl := range b.server.Clients.GetAll() {
		if cl.Net.Conn != nil && !cl.Closed() {
			cl.Stop(packets.ErrServerShuttingDown)
			n++
		}
	}
	return n
}

// flushAppenders hands every open batch to the log (none stays behind
// waiting for a completion that would have flushed it).
func (b *Broker) flushAppenders() {
	b.appMu.RLock()
	defer b.appMu.RUnlock()
	for _, a := range b.apps {
		a.mu.Lock()
		a.flushLocked()
		a.mu.Unlock()
	}
}

// Addrs returns the addresses Start bound, in the order Addr, TLS.Addr,
// WebsocketAddr (those configured), e.g. to learn the port of ":0".
func (b *Broker) Addrs() []net.Addr {
	b.addrMu.Lock()
	defer b.addrMu.Unlock()
	return append([]net.Addr(nil), b.addrs...)
}

// TLSConfig is the server TLS configuration built from Options.TLS (nil
// without a certificate), e.g. to serve wss with ServeWebsocket.
func (b *Broker) TLSConfig() *tls.Config { return b.tlsCfg }

// warnLimit reports whether a rate-limited warning may be logged now (at
// most one a second across the broker).
func (b *Broker) warnLimit() bool {
	now := time.Now().UnixNano()
	last := b.lastWarn.Load()
	return now-last >= int64(time.Second) && b.lastWarn.CompareAndSwap(last, now)
}

// Server exposes the mochi server (for tests and advanced embedding).
func (b *Broker) Server() *mqtt.Server { return b.server }

// uncountInject undoes the $SYS receive counters InjectPacket adds.
func (b *Broker) uncountInject() {
	atomic.AddInt64(&b.server.Info.PacketsReceived, -1)
	atomic.AddInt64(&b.server.Info.MessagesReceived, -1)
}
