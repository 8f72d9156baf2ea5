package group_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel/runnel/ingest/kafka"
	"github.com/runnel/runnel/ingest/kafka/group"
	"github.com/runnel/runnel/log"
)

// node is a runnel Kafka endpoint for tests: a log in dir, the group
// Coordinator and ingest/kafka's Server on 127.0.0.1:0.
type node struct {
	t     *testing.T
	dir   string
	log   log.Log
	coord *group.Coordinator
	srv   *kafka.Server
	addr  string
	done  chan error
}

func startNode(t *testing.T, dir string) *node {
	t.Helper()
	return startNodeAt(t, dir, "127.0.0.1:0")
}

// startNodeAt is startNode listening on addr (a restarted node keeps its
// address so clients find it again).
func startNodeAt(t *testing.T, dir, addr string) *node {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	l, err := log.Open(&log.Options{Dir: dir, Logger: logger, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	coord, err := group.New(group.Options{
		Meta:                  l.Meta(),
		Log:                   l,
		Logger:                logger,
		InitialRebalanceDelay: 50 * time.Millisecond,
		// Consumer-protocol members learn of a new assignment on
		// their next heartbeat.
		ConsumerHeartbeatInterval: 200 * time.Millisecond,
	})
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	srv, err := kafka.New(kafka.Options{Log: l, Groups: coord, Logger: logger, AutoCreateTopics: true})
	if err != nil {
		coord.Close()
		l.Close()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, dir: dir, log: l, coord: coord, srv: srv, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { n.done <- srv.Serve(ln) }()
	t.Cleanup(n.stop)
	return n
}

// stop shuts the node down; idempotent.
func (n *node) stop() {
	if n.srv == nil {
		return
	}
	n.coord.Close()
	n.srv.Close()
	<-n.done
	n.log.Close()
	n.srv = nil
}

// produce writes count records "prefix-i" to topic (acks=all) and waits.
func produce(t *testing.T, addr, topic, prefix string, count int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for i := range count {
		recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "%s-%d", prefix, i)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func createTopic(t *testing.T, l log.Log, name string, partitions int32) {
	t.Helper()
	if err := l.CreateTopic(name, log.TopicConfig{Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
}

// seen counts deliveries of each record value across consumers, and
// which were committed.
type seen struct {
	mu          sync.Mutex
	counts      map[string]int
	by          map[string]map[string]bool // consumer → values
	committed   map[string]bool
	afterCommit []string // delivered again after their commit succeeded
}

func newSeen() *seen {
	return &seen{counts: map[string]int{}, by: map[string]map[string]bool{}, committed: map[string]bool{}}
}

func (s *seen) add(who string, v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[v]++
	if s.committed[v] {
		s.afterCommit = append(s.afterCommit, v)
	}
	if s.by[who] == nil {
		s.by[who] = map[string]bool{}
	}
	s.by[who][v] = true
}

func (s *seen) commit(vs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range vs {
		s.committed[v] = true
	}
}

func (s *seen) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.counts)
}

func (s *seen) has(who string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.by[who])
}

// check fails t when records were lost, delivered again after their
// commit, or (when exact) delivered twice at all.
func (s *seen) check(t *testing.T, want int, exact bool) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	dups := 0
	for v, k := range s.counts {
		if k > 1 {
			dups++
			if exact && dups < 5 {
				t.Errorf("record %s consumed %d times", v, k)
			}
		}
	}
	if len(s.afterCommit) > 0 {
		t.Errorf("%d records delivered again after their offsets were committed, e.g. %v", len(s.afterCommit), s.afterCommit[:min(5, len(s.afterCommit))])
	}
	if len(s.counts) != want || exact && dups > 0 {
		t.Fatalf("consumed %d distinct of %d, %d duplicated", len(s.counts), want, dups)
	}
	t.Logf("%d records, %d delivered twice (uncommitted when a member or the server went away)", want, dups)
}

// consumer is a franz-go group member that commits what it polled before
// it allows a rebalance, so no record may be delivered twice.
type consumer struct {
	name   string
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
}

func startConsumer(t *testing.T, addr, grp, topic, name string, balancer kgo.GroupBalancer, s *seen, extra ...kgo.Opt) *consumer {
	t.Helper()
	opts := []kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.ConsumerGroup(grp),
		kgo.ConsumeTopics(topic),
		kgo.Balancers(balancer),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.SessionTimeout(6 * time.Second),
		kgo.RebalanceTimeout(10 * time.Second),
		kgo.FetchMaxWait(100 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.ClientID(name),
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{name: name, cl: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			fs := cl.PollRecords(ctx, 50)
			if ctx.Err() != nil {
				// Records of this poll are not processed (nor
				// committed): another member gets them.
				cl.AllowRebalance()
				return
			}
			var vs []string
			fs.EachRecord(func(r *kgo.Record) {
				s.add(name, string(r.Value))
				vs = append(vs, string(r.Value))
			})
			// The commit does not end with the poll context: a member
			// told to stop after this poll still commits what it
			// processed (else the next owner gets those records again).
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := cl.CommitUncommittedOffsets(cctx)
			ccancel()
			if err == nil {
				s.commit(vs)
			}
			cl.AllowRebalance()
		}
	}()
	return c
}

// stop leaves the group (a static member just goes away).
func (c *consumer) stop() {
	c.cancel()
	<-c.done
	c.cl.Close()
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFranzGoGroupRebalance: two franz-go members (range, then
// cooperative-sticky) share a topic while members join and leave and
// records keep coming; every record is consumed exactly once.
func TestFranzGoGroupRebalance(t *testing.T) {
	for _, tc := range []struct {
		name     string
		balancer func() kgo.GroupBalancer
	}{
		{"range", kgo.RangeBalancer},
		{"cooperative-sticky", kgo.CooperativeStickyBalancer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := startNode(t, t.TempDir())
			const topic, grp = "events", "workers"
			createTopic(t, n.log, topic, 4)
			s := newSeen()

			produce(t, n.addr, topic, "a", 300)
			c1 := startConsumer(t, n.addr, grp, topic, "c1", tc.balancer(), s)
			waitFor(t, "c1 to consume the first batch", 15*time.Second, func() bool { return s.total() >= 300 })

			c2 := startConsumer(t, n.addr, grp, topic, "c2", tc.balancer(), s)
			// Wait until both members own partitions: c2 receives
			// records of the second batch.
			deadline := time.Now().Add(20 * time.Second)
			batch := 0
			for {
				batch++
				produce(t, n.addr, topic, fmt.Sprintf("b%d", batch), 40)
				time.Sleep(100 * time.Millisecond)
				if s.has("c2") > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("c2 never got a partition")
				}
			}
			produce(t, n.addr, topic, "c", 200)
			want := 300 + batch*40 + 200
			waitFor(t, "both members to consume", 15*time.Second, func() bool { return s.total() >= want })

			// c1 leaves: c2 takes over every partition.
			c1.stop()
			produce(t, n.addr, topic, "d", 200)
			want += 200
			waitFor(t, "c2 to consume after c1 left", 20*time.Second, func() bool { return s.total() >= want })
			c2.stop()
			s.check(t, want, true)
			st := n.coord.Stats()
			t.Logf("c1 %d, c2 %d, coordinator %+v", s.has("c1"), s.has("c2"), st)
			if st.Rebalances < 3 || st.Commits == 0 {
				t.Fatalf("coordinator stats %+v: want >= 3 rebalances and commits", st)
			}
		})
	}
}

// TestFranzGoStaticMembers: a static member (group.instance.id) that
// restarts gets its partitions back without a rebalance and resumes from
// its commits.
func TestFranzGoStaticMembers(t *testing.T) {
	n := startNode(t, t.TempDir())
	const topic, grp = "static", "static-workers"
	createTopic(t, n.log, topic, 4)
	s := newSeen()
	produce(t, n.addr, topic, "a", 200)
	s1 := startConsumer(t, n.addr, grp, topic, "s1", kgo.RangeBalancer(), s, kgo.InstanceID("i1"))
	waitFor(t, "s1 to consume", 15*time.Second, func() bool { return s.total() >= 200 })
	s2 := startConsumer(t, n.addr, grp, topic, "s2", kgo.RangeBalancer(), s, kgo.InstanceID("i2"))
	want := 200
	for batch := 0; s.has("s2") == 0; batch++ {
		if batch > 100 {
			t.Fatal("s2 never got a partition")
		}
		produce(t, n.addr, topic, fmt.Sprintf("b%d", batch), 20)
		want += 20
		time.Sleep(100 * time.Millisecond)
	}
	waitFor(t, "both to consume", 15*time.Second, func() bool { return s.total() >= want })
	before := n.coord.Stats().Rebalances

	// s1 goes away (a static member does not leave) and comes back.
	s1.stop()
	produce(t, n.addr, topic, "c", 100)
	want += 100
	s1 = startConsumer(t, n.addr, grp, topic, "s1b", kgo.RangeBalancer(), s, kgo.InstanceID("i1"))
	waitFor(t, "the restarted member to consume", 15*time.Second, func() bool { return s.total() >= want })
	if got := n.coord.Stats().Rebalances; got != before {
		t.Fatalf("a static member's restart caused %d rebalances", got-before)
	}
	if s.has("s1b") == 0 {
		t.Fatal("the restarted static member consumed nothing")
	}
	s1.stop()
	s2.stop()
	s.check(t, want, true)
}

// TestFranzGoServerRestart: the server restarts under two live members
// (cooperative-sticky). They rejoin the fresh coordinator and resume from
// their committed offsets: nothing is lost, nothing committed is read again.
func TestFranzGoServerRestart(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	const topic, grp = "restart", "restart-workers"
	createTopic(t, n.log, topic, 4)
	s := newSeen()
	produce(t, n.addr, topic, "a", 300)
	c1 := startConsumer(t, n.addr, grp, topic, "c1", kgo.CooperativeStickyBalancer(), s)
	c2 := startConsumer(t, n.addr, grp, topic, "c2", kgo.CooperativeStickyBalancer(), s)
	waitFor(t, "the first batch to be committed", 15*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.committed) >= 300
	})

	addr := n.addr
	n.stop()
	n = startNodeAt(t, dir, addr)
	produce(t, n.addr, topic, "b", 300)
	// Fetching goes on without the group; commits need the members to
	// rejoin the new coordinator (they then re-read what they could not
	// commit).
	waitFor(t, "every record committed after the restart", 30*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.committed) >= 600
	})
	if st := n.coord.Stats(); st.Rebalances == 0 || st.Commits == 0 {
		t.Fatalf("members did not rejoin the restarted coordinator: %+v", st)
	}
	c1.stop()
	c2.stop()
	s.check(t, 600, false)
}
