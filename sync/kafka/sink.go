// Package kafka is the Apache Kafka upstream of the forwarder: a
// forward.Sink on a franz-go kgo producer (idempotent, acks=all and zstd by
// default; TLS, mTLS, SASL PLAIN and SCRAM-SHA-256/512).
//
// Records of one local partition go to the upstream in order: kgo keeps
// per-partition order (idempotent writes, or one request in flight per
// broker with acks=leader), and the partitioner is deterministic (murmur2
// of the key as Kafka's own producer; records without a key, or every
// record with partitioning "origin", use the local partition number modulo
// the upstream partition count). Connection loss and broker errors are
// retried inside kgo until Upstream.DeliveryTimeout, then the record fails
// and the forwarder backs off and resends from its cursor.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/sync/forward"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// ErrClosed is returned for records sent after Close.
var ErrClosed = errors.New("kafka: sink closed")

// errEarlierFailed fails records behind a failed one (forward.StreamGate).
var errEarlierFailed = errors.New("kafka: an earlier record of this partition failed")

// Sink forwards records to a Kafka cluster.
type Sink struct {
	cl     *kgo.Client
	logger *slog.Logger

	timeout time.Duration
	gate    forward.StreamGate
	kl      *kgoLogger

	mu     sync.RWMutex // guards closed against Send
	closed bool

	// Records handed to kgo and not yet resolved (at least kgo's buffered
	// count), against kgo's MaxBufferedRecords: Send knows when Produce
	// cannot block.
	pending     atomic.Int64
	maxBuffered int64

	// The delivery-deadline context shared by the records of about 100 ms
	// (so no timer and no clock read per record): dl is replaced when
	// stale, which a timer sets 100 ms after each replacement.
	dl     atomic.Pointer[deadline]
	stale  atomic.Bool
	ctxMu  sync.Mutex  // guards replacing dl, staleT
	staleT *time.Timer // nil until the first record
}

type deadline struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// deadlineCtx returns a context that ends about DeliveryTimeout from now
// (DeliveryTimeout minus at most 100 ms).
func (s *Sink) deadlineCtx() context.Context {
	if d := s.dl.Load(); d != nil && !s.stale.Load() {
		return d.ctx
	}
	s.ctxMu.Lock()
	defer s.ctxMu.Unlock()
	if d := s.dl.Load(); d != nil && !s.stale.Load() {
		return d.ctx
	}
	// Older contexts are not cancelled (their records are in flight);
	// they end at their deadline.
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	s.dl.Store(&deadline{ctx: ctx, cancel: cancel})
	s.stale.Store(false)
	if s.staleT == nil {
		s.staleT = time.AfterFunc(deadlineShare, func() { s.stale.Store(true) })
	} else {
		s.staleT.Reset(deadlineShare)
	}
	return ctx
}

// deadlineShare is how long records share one delivery-deadline context.
const deadlineShare = 100 * time.Millisecond

var _ forward.Sink = (*Sink)(nil)
var _ forward.Pinger = (*Sink)(nil)

// NewSink is a forward.NewSinkFunc: it builds the client without touching
// the network.
func NewSink(name string, u forward.Upstream, logger *slog.Logger) (forward.Sink, error) {
	s, err := New(u, logger)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// maxBufferedRecords is kgo's MaxBufferedRecords for a sink (Opts).
const maxBufferedRecords = 1 << 22

// New builds a Sink from an upstream (defaults are applied here too).
func New(u forward.Upstream, logger *slog.Logger, extra ...kgo.Opt) (*Sink, error) {
	return newSink(u, logger, maxBufferedRecords, extra...)
}

// newSink is New with kgo's MaxBufferedRecords at maxBuffered (set in
// extra when it is not maxBufferedRecords). The value is passed along,
// not read back with kgo's OptValue: that one function is 15 KB of the
// binary.
func newSink(u forward.Upstream, logger *slog.Logger, maxBuffered int64, extra ...kgo.Opt) (*Sink, error) {
	if logger == nil {
		logger = slog.Default()
	}
	u = u.WithDefaults("")
	if u.Kind != "kafka" {
		return nil, fmt.Errorf("kafka: upstream kind is %q", u.Kind)
	}
	if err := u.Validate(); err != nil {
		return nil, err
	}
	opts, err := Opts(u)
	if err != nil {
		return nil, err
	}
	kl := &kgoLogger{l: logger}
	opts = append(opts, kgo.WithLogger(kl))
	opts = append(opts, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	s := &Sink{cl: cl, logger: logger, kl: kl, timeout: u.DeliveryTimeout}
	s.maxBuffered = maxBuffered
	return s, nil
}

// Opts turns an upstream into kgo options (exported for benchmarks that
// want a plain producer configured the same way).
func Opts(u forward.Upstream) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(u.Brokers...),
		kgo.ClientID(u.ClientID),
		kgo.AllowAutoTopicCreation(),
		// Delivery timeouts come from the record contexts (see Send):
		// kgo's RecordDeliveryTimeout counts from Record.Timestamp, which
		// for a backlog is the original (old) time.
		kgo.AllowIdempotentProduceCancellation(),
		kgo.ProduceRequestTimeout(min(u.DeliveryTimeout, 10*time.Second)),
		kgo.MaxBufferedRecords(maxBufferedRecords),
		kgo.RecordPartitioner(partitioner{origin: u.Partitioning == "origin"}),
		kgo.DialTimeout(5 * time.Second),
		// Re-read metadata soon when it is wanted (a topic being created
		// after an outage); kgo's default waits 5 s between updates.
		kgo.MetadataMinAge(time.Second),
		kgo.RetryBackoffFn(func(tries int) time.Duration {
			d := 100 * time.Millisecond << min(tries, 5)
			return min(d, 2*time.Second)
		}),
	}
	if u.Linger > 0 {
		opts = append(opts, kgo.ProducerLinger(u.Linger))
	}
	switch strings.ToLower(u.Compression) {
	case "zstd":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "snappy":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case "gzip":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case "none":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	}
	if u.Acks == "leader" {
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
			kgo.MaxProduceRequestsInflightPerBroker(1))
	}
	host := ""
	if len(u.Brokers) > 0 {
		if h, _, err := net.SplitHostPort(u.Brokers[0]); err == nil {
			host = h
		}
	}
	tc, err := u.TLS.Config(host)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if m := mechanism(u.SASL); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func mechanism(s forward.SASL) sasl.Mechanism {
	switch strings.ToUpper(s.Mechanism) {
	case "PLAIN":
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()
	case "SCRAM-SHA-256":
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()
	}
	return nil
}

// Send produces rec asynchronously; done runs from a kgo goroutine. Send
// blocks while the producer's buffer is full, until there is room or ctx
// ends (then done gets ctx's error); the delivery itself is bounded by
// Upstream.DeliveryTimeout, not by ctx.
func (s *Sink) Send(ctx context.Context, rec *forward.Record, done func(error)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		done(ErrClosed)
		return
	}
	if s.gate.Blocked(rec) {
		done(errEarlierFailed)
		return
	}
	if err := ctx.Err(); err != nil {
		s.gate.Failed(rec) // later records of the partition must not overtake it
		done(err)
		return
	}
	// One allocation for the kgo record, (usually) its headers and what
	// the promise needs.
	st := &sent{s: s, rec: rec, done: done}
	kr := &st.r
	*kr = kgo.Record{
		Context:   s.deadlineCtx(),
		Topic:     rec.Topic,
		Key:       rec.Key,
		Value:     rec.Value,
		Timestamp: time.UnixMilli(rec.Timestamp),
		Partition: rec.Partition, // read by the partitioner
	}
	if len(rec.Headers) <= len(st.h) {
		kr.Headers = st.h[:len(rec.Headers)]
	} else {
		kr.Headers = make([]kgo.RecordHeader, len(rec.Headers))
	}
	for i, h := range rec.Headers {
		kr.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
	}
	// ctx bounds only the wait for buffer space (the promise then gets
	// ctx's error). Once buffered, the record's lifetime is bounded by its
	// delivery deadline (kr.Context), not by ctx: Close drains or fails
	// it. kgo would also cancel a buffered record when the ctx given to
	// Produce ends, so ctx is not handed over as it is: while the buffer
	// has room (sendSlack covers the Sends of other routes racing this
	// one) nothing can block; near a full buffer a context of its own,
	// cancelled by ctx only until Produce returns, bounds the wait.
	if s.pending.Add(1)+sendSlack <= s.maxBuffered || ctx.Done() == nil {
		s.cl.Produce(context.Background(), kr, promise)
		return
	}
	wait, cancel := context.WithCancel(context.Background())
	st.waitCtx = ctx
	stop := context.AfterFunc(ctx, cancel)
	s.cl.Produce(wait, kr, promise)
	stop()
}

// sendSlack bounds the Sends that may race for the last buffer places
// (one per route of the upstream at a time).
const sendSlack = 1024

// sent is a record handed to kgo with what its promise needs; r is the
// first field, so the *kgo.Record kgo gives back to promise is the *sent.
type sent struct {
	r    kgo.Record
	h    [4]kgo.RecordHeader // the origin headers; a record with headers of its own gets a slice
	s    *Sink
	rec  *forward.Record
	done func(error)
	// waitCtx is Send's ctx when it bounded a wait for buffer space (its
	// error, not the wait's, goes to done).
	waitCtx context.Context
}

// promise is the kgo promise of every record (a shared func: no closure
// per record).
func promise(kr *kgo.Record, err error) {
	st := (*sent)(unsafe.Pointer(kr))
	s := st.s
	s.pending.Add(-1)
	if err != nil && st.waitCtx != nil && errors.Is(err, context.Canceled) && st.waitCtx.Err() != nil {
		err = st.waitCtx.Err()
	}
	if err != nil {
		s.gate.Failed(st.rec)
		// A delivery deadline, not the Send ctx that ended while the
		// record waited for buffer space.
		if errors.Is(err, context.DeadlineExceeded) && st.r.Context.Err() != nil {
			if why := s.kl.recent(2 * s.timeout); why != "" {
				err = fmt.Errorf("kafka: not acknowledged within %v (last broker error: %s): %w", s.timeout, why, err)
			} else {
				err = fmt.Errorf("kafka: not acknowledged within %v: %w", s.timeout, err)
			}
		}
	}
	st.done(err)
}

// Ping checks that a broker answers.
func (s *Sink) Ping(ctx context.Context) error { return s.cl.Ping(ctx) }

// Flush waits for every buffered record (benchmarks, tests).
func (s *Sink) Flush(ctx context.Context) error { return s.cl.Flush(ctx) }

// Client exposes the kgo client (tests).
func (s *Sink) Client() *kgo.Client { return s.cl }

// Close fails records not yet acknowledged and closes connections.
// Idempotent.
func (s *Sink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cl.Close()
	s.ctxMu.Lock()
	if s.staleT != nil {
		s.staleT.Stop()
	}
	if d := s.dl.Load(); d != nil {
		d.cancel()
	}
	s.ctxMu.Unlock()
	return nil
}

// partitioner is deterministic so records of one local partition keep
// their order upstream.
type partitioner struct{ origin bool }

func (p partitioner) ForTopic(string) kgo.TopicPartitioner { return p }

func (p partitioner) RequiresConsistency(*kgo.Record) bool { return true }

func (p partitioner) Partition(r *kgo.Record, n int) int {
	if !p.origin && r.Key != nil {
		return int(batch.Partition(r.Key, int32(n)))
	}
	return int(r.Partition) % n
}
