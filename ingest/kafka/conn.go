package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/ingest/users"
)

// slot is one request's place in the connection's response order. The
// reader queues it when the request is read; whoever produces the response
// fills it and calls finish; the writer waits for it in order.
type slot struct {
	corr       int32
	resp       kmsg.Response
	raw        []byte // with rawSet: the frame body as is (no correlation id)
	rawSet     bool
	noResp     bool // acks=0 produce: nothing is written
	closeAfter bool // close the connection once written (failed SASL)
	// fix, when set, completes resp before it is written: authorize's
	// answers for the parts of the request it took out (authz.go).
	fix  func(kmsg.Response)
	done chan struct{}

	// The request's frame bytes held in the server's memBudget, given
	// back when the response is ready (or the handler panicked).
	budget   *memBudget
	charge   int64
	released atomic.Bool
}

func (sl *slot) finish() {
	if sl.fix != nil && sl.resp != nil {
		sl.fix(sl.resp)
	}
	sl.releaseCharge()
	close(sl.done)
}

func (sl *slot) releaseCharge() {
	if sl.charge > 0 && sl.released.CompareAndSwap(false, true) {
		sl.budget.release(sl.charge)
	}
}

// newSlot starts the response slot of the frame being handled; it takes
// over the frame's budget charge.
func (c *conn) newSlot(corr int32) *slot {
	sl := &slot{corr: corr, done: make(chan struct{}), budget: c.frameBudget, charge: c.frameCharge}
	c.frameCharge = 0
	return sl
}

// conn is one client connection: a reader (the goroutine running serve) and
// a writer goroutine, plus one goroutine per in-flight Fetch or group
// request.
type conn struct {
	s  *Server
	nc net.Conn
	// clientID is the first client id the connection sent (read loop only
	// writes it, before dispatching the request that carried it).
	clientID string
	peer     string
	ip       string          // the remote IP (Server.perIP)
	ctx      context.Context // cancelled when reading stops
	cancel   context.CancelFunc
	slots    chan *slot
	killed   chan struct{} // closed when Close gives up waiting
	kill     func()

	writerDone chan struct{}
	handlers   sync.WaitGroup // Fetch and group goroutines
	fetches    chan struct{}  // a token per Fetch in flight (maxConnFetches)

	// advertise is this connection's host:port for Metadata.
	advHost string
	advPort int32

	// connectBy is when a connection that has not sent its first request
	// (or, with SASL, not authenticated) is closed (zero: no deadline).
	connectBy time.Time

	// Reader-goroutine state.
	frameCharge   int64      // budget bytes of the frame being handled, until a slot takes them
	frameBudget   *memBudget // the budget frameCharge is of (server's budget or unauth)
	established   bool       // a request was read and the connection is authenticated
	authed        bool
	principal     string    // access.Anonymous until SASL names a user
	noRights      bool      // an anonymous client off loopback (authz.go)
	saslDone      bool      // a SASL exchange succeeded
	certChecked   bool      // the TLS client certificate was looked at
	mutedUntil    time.Time // a produce quota's throttle ends (quota.go)
	saslRawNext   bool      // a v0 SaslHandshake chose PLAIN: next frame is a raw token
	saslMechanism string    // what a SaslHandshake chose ("" before)
	scram         *users.ScramServer
	groupTail     chan struct{} // closed when the last group request queued is done

	// mu guards stopping and the read deadline.
	mu       sync.Mutex
	stopping bool
}

func newConn(s *Server, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		s:          s,
		nc:         nc,
		peer:       nc.RemoteAddr().String(),
		ctx:        ctx,
		cancel:     cancel,
		slots:      make(chan *slot, s.opts.MaxInFlight),
		fetches:    make(chan struct{}, maxConnFetches),
		killed:     make(chan struct{}),
		writerDone: make(chan struct{}),
		authed:     !s.saslRequired(),
		advHost:    s.advHost,
		advPort:    s.advPort,
	}
	c.initPrincipal()
	if d := s.opts.ConnectTimeout; d > 0 {
		c.connectBy = time.Now().Add(d)
	}
	var once sync.Once
	c.kill = func() { once.Do(func() { close(c.killed); nc.Close() }) }
	if c.advHost == "" {
		if h, p, err := splitHostPort(nc.LocalAddr().String()); err == nil {
			c.advHost, c.advPort = h, p
		}
	}
	return c
}

// stopReading makes the reader stop after the request it is reading (Close).
func (c *conn) stopReading() {
	c.mu.Lock()
	c.stopping = true
	c.nc.SetReadDeadline(time.Now())
	c.mu.Unlock()
}

// armRead sets the idle deadline before a frame; false when stopping.
func (c *conn) armRead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return false
	}
	var dl time.Time
	if d := c.s.opts.IdleTimeout; d > 0 {
		dl = time.Now().Add(d)
	}
	if !c.established && !c.connectBy.IsZero() && (dl.IsZero() || c.connectBy.Before(dl)) {
		dl = c.connectBy
	}
	c.nc.SetReadDeadline(dl)
	return true
}

// A frame's body must arrive at frameMinRate at least, after a grace of
// frameMinTime: its k-th byte by frameMinTime + k/frameMinRate after the
// body's read began, checked every bodyStep bytes (readBody). A client
// that announces a large request holds budget (MaxQueuedRequestBytes)
// only while it keeps sending: one that sends nothing is closed after
// frameMinTime plus a step's time, whatever size it announced.
const (
	frameMinRate = 8 << 10 // bytes a second: 64 kbit/s, a poor cellular uplink
	frameMinTime = 30 * time.Second
	bodyStep     = 64 << 10
)

// readBody fills buf from br at frameMinRate at least; a read error (a
// deadline among them) ends it, and errClosing when stopping.
func (c *conn) readBody(br *bufio.Reader, buf []byte) error {
	start := time.Now()
	for got := 0; got < len(buf); {
		next := min(len(buf), got+bodyStep)
		by := start.Add(frameMinTime + time.Duration(int64(next)*int64(time.Second)/frameMinRate))
		if !c.armBodyBy(by) {
			return errClosing
		}
		n, err := br.Read(buf[got:next])
		got += n
		if err != nil && got < len(buf) {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

var errClosing = errors.New("kafka: connection stopping")

// armBodyBy sets the read deadline for a frame body's next bytes to dl
// (earlier with IdleTimeout, or before the connection is established);
// false when stopping.
func (c *conn) armBodyBy(dl time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return false
	}
	if d := c.s.opts.IdleTimeout; d > 0 && time.Now().Add(d).Before(dl) {
		dl = time.Now().Add(d)
	}
	if !c.established && !c.connectBy.IsZero() && c.connectBy.Before(dl) {
		dl = c.connectBy
	}
	c.nc.SetReadDeadline(dl)
	return true
}

func (c *conn) serve() {
	defer c.s.connDone(c)
	go c.writeLoop()
	err := c.readLoop()
	c.cancel() // long polls and group waits return now
	close(c.slots)
	if err != nil {
		// Bad frames come in floods from a hostile peer: at most one line
		// every 10 s, with how many were left out since.
		if c.s.closeWarn.allow() {
			c.s.logger.Warn("kafka: closing connection (logged at most every 10s)", "peer", c.peer, "err", err, "suppressed", c.s.closeHeld.Swap(0))
		} else {
			c.s.closeHeld.Add(1)
		}
	}
	select {
	case <-c.writerDone:
	case <-c.killed:
	}
	c.nc.Close()
	// Handlers finish on their own (ctx is cancelled); wait unless killed.
	done := make(chan struct{})
	go func() { c.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-c.killed:
	}
}

// readLoop reads and dispatches frames until EOF, an error, or Close. It
// returns a non-nil error only for a reason worth a log line.
func (c *conn) readLoop() error {
	br := bufio.NewReaderSize(c.nc, 32<<10)
	var hdr [4]byte
	for {
		if !c.armRead() {
			return nil
		}
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return quietReadErr(c, err)
		}
		n := int32(binary.BigEndian.Uint32(hdr[:]))
		limit := c.s.opts.MaxFrameBytes
		if !c.authed {
			limit = min(limit, maxUnauthFrame)
		}
		if n < 0 || n > limit {
			c.s.stats.badFrames.Add(1)
			return fmt.Errorf("%w: length prefix %d, limit %d", ErrFrameTooLarge, uint32(n), limit)
		}
		// Room in the server's budget first: memory is taken only for
		// frames that fit (the peer waits, held back by TCP).
		c.frameBudget = c.s.budget
		switch {
		case c.authed:
		case n <= unauthFree:
			c.frameBudget = noBudget
		default:
			c.frameBudget = c.s.unauth
		}
		if !c.frameBudget.acquire(int64(n), c.s.closing, c.killed) {
			return nil
		}
		c.frameCharge = int64(n)
		buf := getBuf(int(n))
		// The wait may have been long: the body's deadlines start now.
		if err := c.readBody(br, buf); err != nil {
			putBuf(buf)
			c.releaseFrame()
			if errors.Is(err, errClosing) {
				return nil
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				c.s.stats.badFrames.Add(1)
				return fmt.Errorf("%w: truncated frame (%d bytes announced)", ErrMalformed, n)
			}
			return quietReadErr(c, err)
		}
		err := c.handleFrame(buf)
		c.releaseFrame() // a frame that got no slot (refused, malformed)
		if err != nil {
			return err
		}
		c.waitMuted() // a produce quota's throttle (quota.go)
		if !c.established && c.authed {
			c.established = true
		}
	}
}

// releaseFrame gives back the budget of the frame being handled unless a
// slot took it.
func (c *conn) releaseFrame() {
	if c.frameCharge > 0 {
		c.frameBudget.release(c.frameCharge)
		c.frameCharge = 0
	}
}

// maxUnauthFrame caps frames before SASL authentication (Kafka's
// sasl.server.max.receive.size), so an unauthenticated peer cannot make the
// server allocate much.
const maxUnauthFrame = 512 << 10

// unauthBudget is what frames read before SASL authentication may hold
// together: an eighth of the request budget (at least one such frame),
// taken from a budget of their own, so that peers without credentials
// (130 connections announcing 512 KiB each filled 64 MiB) cannot hold
// back the requests of logged-in clients. Frames of at most unauthFree
// bytes (ApiVersions and SASL exchanges of PLAIN and SCRAM are far
// smaller) take no budget at all, so a client can always log in: before
// authentication a connection has one frame at a time, so they hold at
// most unauthFree per connection.
const unauthFree = 4 << 10

// noBudget bounds nothing (frames of at most unauthFree before
// authentication).
var noBudget = newMemBudget(-1)

func unauthBudget(total int64) int64 {
	if total <= 0 {
		return total
	}
	return max(total/8, maxUnauthFrame)
}

// quietReadErr turns the expected ends of a connection into nil.
func quietReadErr(c *conn, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.mu.Lock()
		stopping := c.stopping
		c.mu.Unlock()
		if stopping {
			return nil
		}
		if !c.established && !c.connectBy.IsZero() && !time.Now().Before(c.connectBy) {
			// Flood-prone: counted, logged at most every 10s.
			n := c.s.stats.connectTimeouts.Add(1)
			if c.s.warnLimit.allow() {
				c.s.logger.Warn("kafka: closing connection: no request (or no SASL authentication) in time (logged at most every 10s)",
					"peer", c.peer, "connect_timeout", c.s.opts.ConnectTimeout, "timeouts_total", n)
			}
			return nil
		}
		c.s.stats.idleTimeouts.Add(1)
		return fmt.Errorf("no request for %v, or a request body slower than %d bytes/s", c.s.opts.IdleTimeout, frameMinRate)
	}
	return err
}

// push queues sl in response order; false when the connection was killed.
func (c *conn) push(sl *slot) bool {
	select {
	case c.slots <- sl:
		return true
	case <-c.killed:
		return false
	}
}

// handleFrame decodes one request frame and dispatches it. buf is owned by
// the call (recycled when no longer referenced). A returned error closes the
// connection.
func (c *conn) handleFrame(buf []byte) (err error) {
	var sl *slot
	defer func() {
		if r := recover(); r != nil {
			// A slot may be queued and never finished: end the
			// connection at once rather than wait for it.
			if sl != nil {
				sl.releaseCharge()
			}
			c.s.stats.badFrames.Add(1)
			c.kill()
			err = fmt.Errorf("%w: panic while handling a request: %v", ErrMalformed, r)
		}
	}()
	if !c.certChecked {
		c.certChecked = true
		c.certPrincipal() // authz.go: a verified client certificate names the user
	}
	if c.saslRawNext {
		return c.saslRawToken(buf)
	}
	if len(buf) < 10 {
		c.s.stats.badFrames.Add(1)
		putBuf(buf)
		return fmt.Errorf("%w: %d-byte frame is shorter than a request header", ErrMalformed, len(buf))
	}
	key := int16(binary.BigEndian.Uint16(buf[0:]))
	version := int16(binary.BigEndian.Uint16(buf[2:]))
	corr := int32(binary.BigEndian.Uint32(buf[4:]))
	if key >= 0 && key < maxKey {
		c.s.stats.requests[key].Add(1)
	}
	if !c.authed && key != keyApiVersions && key != keySASLHandshake && key != keySASLAuthenticate {
		c.s.stats.authFailures.Add(1)
		putBuf(buf)
		return fmt.Errorf("%w: request key %d before SASL authentication", ErrAuth, key)
	}
	sl = c.newSlot(corr)
	if !c.s.versions.serves(key, version) {
		putBuf(buf)
		c.s.stats.unsupported.Add(1)
		if key == keyApiVersions {
			resp := kmsg.NewPtrApiVersionsResponse() // v0, as Kafka answers
			resp.ErrorCode = codeUnsupportedVersion
			resp.ApiKeys = c.s.versions.keys
			sl.resp = resp
		} else {
			unsupportedResponse(sl, key, version)
		}
		sl.finish()
		if !c.push(sl) {
			return errKilled
		}
		return nil
	}

	r := kbin.Reader{Src: buf[8:]}
	if l := r.Int16(); l > 0 { // client id: nullable string, -1 = null
		id := r.Span(int(l))
		if c.clientID == "" && r.Ok() {
			c.clientID = string(id)
		}
	}
	req := newRequest(key) // non-nil: served keys only reach here
	req.SetVersion(version)
	if req.IsFlexible() {
		kmsg.SkipTags(&r)
	}
	if !r.Ok() {
		c.s.stats.badFrames.Add(1)
		putBuf(buf)
		return fmt.Errorf("%w: request header (key %d v%d)", ErrMalformed, key, version)
	}
	if err := req.ReadFrom(r.Src); err != nil {
		c.s.stats.badFrames.Add(1)
		putBuf(buf)
		return fmt.Errorf("%w: %s v%d: %v", ErrMalformed, kmsg.NameForKey(key), version, err)
	}
	// Only Produce (records), group requests (member metadata) and SASL
	// (auth bytes) keep references into buf; everything else copied, so
	// its frame's bytes leave the budget now: a Fetch parked for its
	// max_wait (up to 24 days) held them until its answer, and four
	// 16 MiB ones stopped every other request.
	switch {
	case key == keyProduce, c.s.versions.group[key], key == keySASLAuthenticate:
	default:
		putBuf(buf)
		sl.releaseCharge()
	}
	if !c.push(sl) {
		return errKilled
	}
	return c.dispatch(sl, req)
}

var errKilled = errors.New("kafka: connection killed by Close")

// dispatch answers one decoded request, inline or on a goroutine.
func (c *conn) dispatch(sl *slot, req kmsg.Request) error {
	s := c.s
	key := req.Key()
	if c.authorize(sl, req) {
		sl.finish()
		return nil
	}
	if s.versions.group[key] {
		if s.opts.Groups == nil {
			sl.resp = groupUnavailable(req)
			sl.finish()
			return nil
		}
		// Group requests are handled one at a time in arrival order,
		// as Kafka does on a connection (a commit sent before a leave
		// is applied before it), but off the reader: JoinGroup blocks.
		prev, mine := c.groupTail, make(chan struct{})
		c.groupTail = mine
		c.goHandle(func() {
			defer close(mine)
			if prev != nil {
				<-prev
			}
			ctx := c.ctx
			if cc, ok := s.opts.Groups.(ClientContexter); ok {
				ctx = cc.WithClient(ctx, c.clientID, remoteHost(c.nc))
			}
			resp, ok := s.opts.Groups.Handle(ctx, req)
			if !ok || resp == nil {
				unsupportedResponse(sl, key, req.GetVersion())
			} else {
				c.markUnstable(req, resp)
				sl.resp = resp
			}
			sl.finish()
		})
		return nil
	}
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		c.throttleProduce(sl, r)
		c.produce(sl, r)
		return nil
	case *kmsg.FetchRequest:
		turn := c.fetchTurn()
		c.goHandle(func() {
			if turn {
				defer func() { <-c.fetches }()
			}
			c.fetch(sl, r)
		})
		return nil
	case *kmsg.ApiVersionsRequest:
		resp := r.ResponseKind().(*kmsg.ApiVersionsResponse)
		resp.ApiKeys = s.versions.keys
		sl.resp = resp
	case *kmsg.MetadataRequest:
		sl.resp = c.metadata(r)
	case *kmsg.ListOffsetsRequest:
		sl.resp = c.listOffsets(r)
	case *kmsg.FindCoordinatorRequest:
		sl.resp = c.findCoordinator(r)
	case *kmsg.InitProducerIDRequest:
		sl.resp = c.initProducerID(r)
	case *kmsg.OffsetForLeaderEpochRequest:
		sl.resp = c.offsetForLeaderEpoch(r)
	case *kmsg.CreateTopicsRequest:
		sl.resp = c.createTopics(r)
	case *kmsg.DeleteTopicsRequest:
		sl.resp = c.deleteTopics(r)
	case *kmsg.CreatePartitionsRequest:
		sl.resp = c.createPartitions(r)
	case *kmsg.DescribeConfigsRequest:
		sl.resp = c.describeConfigs(r)
	case *kmsg.AlterConfigsRequest:
		sl.resp = c.alterConfigs(r)
	case *kmsg.IncrementalAlterConfigsRequest:
		sl.resp = c.incrementalAlterConfigs(r)
	case *kmsg.DescribeClusterRequest:
		sl.resp = c.describeCluster(r)
	case *kmsg.DescribeACLsRequest:
		sl.resp = c.describeACLs(r)
	case *kmsg.CreateACLsRequest:
		sl.resp = c.createACLs(r)
	case *kmsg.DeleteACLsRequest:
		sl.resp = c.deleteACLs(r)
	case *kmsg.SASLHandshakeRequest:
		sl.resp = c.saslHandshake(r)
	case *kmsg.SASLAuthenticateRequest:
		resp, ok := c.saslAuthenticate(r)
		sl.resp = resp
		if !ok {
			sl.closeAfter = true
			sl.finish()
			return fmt.Errorf("%w: SASL credentials rejected", ErrAuth)
		}
	default:
		if resp, ok := c.handleTxn(req); ok {
			sl.resp = resp
		} else {
			unsupportedResponse(sl, key, req.GetVersion())
		}
	}
	sl.finish()
	return nil
}

// maxConnFetches bounds the Fetches in flight on one connection; the
// reader waits for one to be answered before it dispatches another. Kafka
// serves one request per connection at a time, and its clients (Java,
// librdkafka, franz-go, runnel's own mirrors) keep one Fetch per
// connection, so this costs them nothing; a client that pipelined 64
// Fetches that never end held 64 goroutines and their requests
// (about 6.6 KiB each) per connection.
const maxConnFetches = 4

// fetchTurn waits until the connection may have one more Fetch in flight
// and reports whether it took a turn (given back with <-c.fetches). A
// server or connection that is closing lets the Fetch through without
// one (it answers at once).
func (c *conn) fetchTurn() bool {
	select {
	case c.fetches <- struct{}{}:
		return true
	case <-c.killed:
	case <-c.s.closing:
	}
	return false
}

// goHandle runs fn on a goroutine owned by the connection.
func (c *conn) goHandle(fn func()) {
	c.handlers.Add(1)
	go func() {
		defer c.handlers.Done()
		defer func() {
			if r := recover(); r != nil {
				c.s.logger.Error("kafka: panic in request handler; closing connection", "peer", c.peer, "panic", r)
				c.kill()
			}
		}()
		fn()
	}()
}

// writeLoop writes responses in request order, batching those that are
// ready into one write.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	var out []byte
	broken := false
	flush := func() {
		if len(out) == 0 {
			return
		}
		if !broken {
			c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.WriteTimeout))
			if _, err := c.nc.Write(out); err != nil {
				broken = true
				c.nc.Close() // the reader stops too
			}
		}
		if cap(out) > 4<<20 {
			out = nil
		} else {
			out = out[:0]
		}
	}
	for {
		var sl *slot
		var ok bool
		select {
		case sl, ok = <-c.slots:
		default:
			flush()
			select {
			case sl, ok = <-c.slots:
			case <-c.killed:
				return
			}
		}
		if !ok {
			flush()
			return
		}
		select {
		case <-sl.done:
		default:
			flush()
			select {
			case <-sl.done:
			case <-c.killed:
				return
			}
		}
		if !sl.noResp && !broken {
			out = appendResponse(out, sl)
		}
		if sl.closeAfter {
			flush()
			broken = true
			c.nc.Close()
			continue
		}
		if len(out) >= 1<<20 {
			flush()
		}
	}
}

// appendResponse appends sl's response frame (size, header, body) to out.
func appendResponse(out []byte, sl *slot) []byte {
	start := len(out)
	out = append(out, 0, 0, 0, 0)
	if sl.rawSet {
		out = append(out, sl.raw...)
	} else {
		out = binary.BigEndian.AppendUint32(out, uint32(sl.corr))
		// Response header v1 (tagged fields) for flexible versions,
		// except ApiVersions, whose response header is always v0.
		if sl.resp.IsFlexible() && sl.resp.Key() != keyApiVersions {
			out = append(out, 0)
		}
		out = sl.resp.AppendTo(out)
	}
	binary.BigEndian.PutUint32(out[start:], uint32(len(out)-start-4))
	return out
}

// ClientContexter is an optional interface of a GroupHandler: it attaches
// the connection's client id and host to the context given to Handle, so
// member ids and DescribeGroups show who the members are.
type ClientContexter interface {
	WithClient(ctx context.Context, clientID, host string) context.Context
}

func remoteHost(nc net.Conn) string {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return nc.RemoteAddr().String()
}
