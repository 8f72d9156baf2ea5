package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel/runnel/ingest/access"
	"github.com/runnel/runnel/ingest/produce"
	"github.com/runnel/runnel/ingest/users"
	"github.com/runnel/runnel/log"
)

// Server serves the Kafka wire protocol on top of a log.Log.
type Server struct {
	opts     Options
	users    *users.Store // Options.Users with SASLPlain's accounts; nil = no SASL
	backoff  *access.Backoff
	acls     acls
	log      log.Log
	logger   *slog.Logger
	versions *versionTable
	advHost  string // from Options.AdvertisedAddr; "" = per connection
	advPort  int32
	stats    stats
	pids     *producerIDs
	txns     *txnCoordinator
	txnsDone chan struct{} // closed when the coordinator's sweep stopped
	produce  *produce.Path // the produce path shared with MQTT and HTTP
	configs  *overrides
	budget   *memBudget // request bytes held by all connections
	unauth   *memBudget // the part of budget frames before SASL authentication may hold (unauthBudget)

	closing chan struct{} // closed by Close: long polls return, readers stop

	// mu guards the fields below.
	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	perIP     map[string]int // open connections per remote IP (MaxConnsPerIP), guarded by mu

	connWG sync.WaitGroup // one per live connection

	warnLimit rateLimit // log lines about refused and timed-out connections
	closeWarn rateLimit // log lines about connections closed for an error (bad frames)
	closeHeld atomic.Int64
}

// rateLimit lets one event through per rateLimitEvery (log lines a flood
// would otherwise repeat thousands of times).
type rateLimit struct{ last atomic.Int64 }

const rateLimitEvery = 10 * time.Second

func (r *rateLimit) allow() bool {
	now := time.Now().UnixNano()
	last := r.last.Load()
	return now-last >= int64(rateLimitEvery) && r.last.CompareAndSwap(last, now)
}

// New validates opts and returns a Server ready to Serve.
func New(opts Options) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.fill()
	s := &Server{
		opts:      opts,
		log:       opts.Log,
		logger:    opts.Logger,
		versions:  newVersionTable(opts.Groups, isLeaderEpochs(opts.Log), opts.Access != nil),
		closing:   make(chan struct{}),
		listeners: map[net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
		perIP:     map[string]int{},
		budget:    newMemBudget(opts.MaxQueuedRequestBytes),
		unauth:    newMemBudget(unauthBudget(opts.MaxQueuedRequestBytes)),
	}
	if opts.AdvertisedAddr != "" {
		s.advHost, s.advPort, _ = splitHostPort(opts.AdvertisedAddr)
	}
	s.backoff = access.DefaultBackoff()
	s.acls.store, s.acls.policy = opts.Log.Meta(), opts.Access
	if err := s.acls.load(); err != nil {
		return nil, err
	}
	if err := s.initUsers(); err != nil {
		return nil, err
	}
	pids, err := openProducerIDs(opts.Log.Meta())
	if err != nil {
		return nil, err
	}
	if f, ok := opts.Log.(log.ProducerIDFloor); ok {
		pids.floor = f.ProducerIDFloor
	}
	s.pids = pids
	s.configs = newOverrides(opts.Log.Meta())
	s.produce = s.newProducePath()
	if s.txns, err = openTxnCoordinator(s, opts.Log.Meta()); err != nil {
		return nil, err
	}
	// Ends decided before a crash complete before the first request:
	// an OffsetFetch must not see a group's offsets from before a
	// commit that was answered.
	s.txns.sweep()
	s.txnsDone = make(chan struct{})
	go func() {
		defer close(s.txnsDone)
		s.txns.run(s.closing)
	}()
	return s, nil
}

// Serve accepts connections on ln until ln fails or Close is called; it
// returns nil after Close and the accept error otherwise. With Options.TLS
// every connection is wrapped in TLS. Serve may be called for several
// listeners.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || retriableAccept(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger.Warn("kafka: accept failed; retrying", "err", err, "backoff", backoff)
				select {
				case <-time.After(backoff):
				case <-s.closing:
					return nil
				}
				continue
			}
			return err
		}
		backoff = 0
		if s.opts.TLS != nil {
			nc = tls.Server(nc, s.opts.TLS)
		}
		s.startConn(nc)
	}
}

func (s *Server) startConn(nc net.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	// refuse closes nc (called with s.mu held, which it releases).
	refuse := func(why, key string, max int) {
		s.mu.Unlock()
		// Counted before the close: a client that sees its connection
		// closed finds it in the stats already.
		n := s.stats.connsRefused.Add(1)
		nc.Close()
		if s.warnLimit.allow() {
			s.logger.Warn("kafka: connection refused: "+why+" (logged at most every 10s)",
				"peer", nc.RemoteAddr().String(), key, max, "refused_total", n)
		}
	}
	if max := s.opts.MaxConns; max > 0 && len(s.conns) >= max {
		refuse("the connection cap is reached", "max_conns", max)
		return
	}
	ip := remoteHost(nc)
	if max := s.opts.MaxConnsPerIP; max > 0 && s.perIP[ip] >= max {
		refuse("the address has the most connections one address may hold", "max_conns_per_ip", max)
		return
	}
	c := newConn(s, nc)
	c.ip = ip
	s.conns[c] = struct{}{}
	s.perIP[ip]++
	s.connWG.Add(1)
	s.mu.Unlock()
	s.stats.conns.Add(1)
	s.stats.connsTotal.Add(1)
	go c.serve()
}

func (s *Server) connDone(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if s.perIP[c.ip]--; s.perIP[c.ip] <= 0 {
		delete(s.perIP, c.ip)
	}
	s.mu.Unlock()
	s.stats.conns.Add(-1)
	s.connWG.Done()
}

func (s *Server) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// Shutdown stops accepting, lets every connection finish the requests it
// has read (long polls return at once with what they have), writes their
// responses and closes the connections. Connections still busy when ctx
// ends (a client that does not read its responses, a request still
// waiting for the log) are closed at once, and Shutdown returns ctx's
// error. Idempotent (a later call waits for the connections to be gone);
// it does not close the log.
func (s *Server) Shutdown(ctx context.Context) error {
	defer func() { <-s.txnsDone }() // the sweep's last marker writes end before the log may close
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.connWG.Wait()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.budget.close()
	s.unauth.close()
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	for _, c := range conns {
		c.stopReading()
	}
	done := make(chan struct{})
	go func() { s.connWG.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		n := len(s.conns)
		for c := range s.conns {
			c.kill()
		}
		s.mu.Unlock()
		<-done
		return fmt.Errorf("kafka: stop: %d connections closed at the deadline: %w", n, ctx.Err())
	}
}

// Close is Shutdown without a deadline: a connection whose client does not
// read is closed once a write of its responses has waited
// Options.WriteTimeout.
func (s *Server) Close() error { return s.Shutdown(context.Background()) }
