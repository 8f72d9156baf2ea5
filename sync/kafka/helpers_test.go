package kafka_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/meta"
	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/sync/forward/forwardtest"
	"github.com/runnel/runnel/sync/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
	"net"
)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("RUNNEL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(&tlogWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// tlogWriter sends slog output to t.Log (only shown on failure / -v).
type tlogWriter struct {
	t  testing.TB
	mu sync.Mutex
	n  int
}

func (w *tlogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n < 200 {
		w.n++
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

type fwdConfig struct {
	brokers []string
	routes  []forward.Route
	up      func(*forward.Upstream)
	opts    func(*forward.Options)
}

func startForwarder(t testing.TB, lg log.Log, c fwdConfig) *forward.Forwarder {
	t.Helper()
	up := forward.Upstream{Kind: "kafka", Brokers: c.brokers, DeliveryTimeout: 5 * time.Second}
	if c.up != nil {
		c.up(&up)
	}

	opts := forward.Options{
		Log:        lg,
		Logger:     testLogger(t),
		NodeID:     "node-1",
		Site:       "site-a",
		Upstreams:  map[string]forward.Upstream{forward.DefaultUpstream: up},
		Routes:     c.routes,
		Sinks:      map[string]forward.NewSinkFunc{"kafka": kafka.NewSink},
		BackoffMin: 50 * time.Millisecond,
		BackoffMax: time.Second,
	}
	if lvl := os.Getenv("RUNNEL_KGO_LOG"); lvl != "" {
		opts.Sinks["kafka"] = func(_ string, u forward.Upstream, l *slog.Logger) (forward.Sink, error) {
			return kafka.New(u, l, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, nil)))
		}
	}
	if c.opts != nil {
		c.opts(&opts)
	}
	f, err := forward.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// collector consumes upstream topics into a Checker, verifying content.
type collector struct {
	cl     *kgo.Client
	ch     *forwardtest.Checker
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

func collect(t testing.TB, brokers []string, topics ...string) *collector {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond),
		kgo.MetadataMinAge(100*time.Millisecond), kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{cl: cl, ch: forwardtest.NewChecker(), cancel: cancel}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(c.add)
		}
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *collector) stop() {
	c.cancel()
	c.wg.Wait()
	c.cl.Close()
}

func (c *collector) add(r *kgo.Record) {
	get := func(k string) ([]byte, bool) {
		for _, h := range r.Headers {
			if h.Key == k {
				return h.Value, true
			}
		}
		return nil, false
	}
	o, off, node, ok := forwardtest.OriginOf(get)
	if !ok {
		c.ch.Fail("%s/%d@%d: origin headers missing: %v", r.Topic, r.Partition, r.Offset, r.Headers)
		return
	}
	if node != "node-1" {
		c.ch.Fail("runnel-node = %q", node)
	}
	// forwardtest.Produce wrote value "<topic>/<p>/<i>" with i = offset
	// (single producer from 0), header h=v and timestamp base+i.
	if want := forwardtest.Value(o.Topic, o.Partition, int(off)); !bytes.Equal(r.Value, want) {
		c.ch.Fail("%s/%d@%d: value %q, want %q", o.Topic, o.Partition, off, r.Value, want)
	}
	if v, ok := get("h"); !ok || string(v) != "v" || r.Headers[0].Key != "h" {
		c.ch.Fail("%s/%d@%d: original header lost: %v", o.Topic, o.Partition, off, r.Headers)
	}
	if r.Timestamp.UnixMilli() != 1700000000000+off {
		c.ch.Fail("%s/%d@%d: timestamp %d", o.Topic, o.Partition, off, r.Timestamp.UnixMilli())
	}
	c.ch.Add(r.Topic+"/"+strconv.Itoa(int(r.Partition)), o, off)
}

// waitComplete waits until want arrived or the timeout passes.
func (c *collector) waitComplete(t testing.TB, want map[forwardtest.Origin]int64, timeout time.Duration, f *forward.Forwarder) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !c.ch.Complete(want) {
		if time.Now().After(deadline) {
			tot, uniq, _ := c.ch.Counts()
			t.Errorf("timeout: received %d records (%d unique); routes: %s", tot, uniq, routesString(f))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func routesString(f *forward.Forwarder) string {
	if f == nil {
		return ""
	}
	var b strings.Builder
	for _, r := range f.Routes() {
		fmt.Fprintf(&b, "[%s state=%s lag=%d inflight=%d sent=%d acked=%d errs=%d retries=%d dropped=%d err=%q] ",
			r.Name, r.State, r.LagRecords, r.InFlight, r.SentRecords, r.AckedRecords, r.Errors, r.Retries, r.Dropped, r.LastError)
	}
	return b.String()
}

func metaTP(o forwardtest.Origin) meta.TopicPartition {
	return meta.TopicPartition{Topic: o.Topic, Partition: o.Partition}
}

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

func atoi(t testing.TB, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
