package kafka

import (
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/vfs/errorfs"
	"github.com/runnel/runnel/sync/kafka/kafkatest"
)

// epochTarget is a Kafka-protocol endpoint whose partition leader epoch
// changes when it restarts.
type epochTarget interface {
	addr() string
	restart(t *testing.T)
}

// runnelTarget is the ingest server over a real log on a file system
// that models power cuts; a restart is a kill -9 (what the process wrote
// survives, the log is not closed): a new origin incarnation.
type runnelTarget struct {
	dir   string
	mem   *errorfs.MemFS
	ts    *testServer
	l     log.Log
	clean bool // restarts close the log cleanly (its epoch goes on)
}

func newRunnelTarget(t *testing.T) *runnelTarget {
	r := &runnelTarget{dir: t.TempDir(), mem: errorfs.NewMem(1)}
	r.open(t)
	return r
}

func (r *runnelTarget) open(t *testing.T) {
	l, err := log.Open(&log.Options{Dir: r.dir, FS: r.mem, MinFreeBytes: -1,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	r.l = l
	r.ts = startServer(t, l, nil)
}

func (r *runnelTarget) addr() string { return r.ts.addr }

func (r *runnelTarget) restart(t *testing.T) {
	var killed *errorfs.MemFS
	if !r.clean {
		killed = r.mem.Crash(errorfs.CrashKeepAll)
	}
	r.ts.Close()
	r.l.Close() // after a kill, on the old file system: the new one never sees it
	if killed != nil {
		r.mem = killed
	}
	r.open(t)
}

type kafkaTarget struct{ b *kafkatest.Broker }

func (k kafkaTarget) addr() string         { return k.b.Addr() }
func (k kafkaTarget) restart(t *testing.T) { k.b.Restart() }

// epochEnd asks addr for OffsetForLeaderEpoch v4 of one partition (on a
// connection of its own: a client would not send a request for a
// partition without a leader).
func epochEnd(t *testing.T, addr, topic string, part, current, epoch int32) kmsg.OffsetForLeaderEpochResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.Version = 4
	req.ReplicaID = -1
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = part, current, epoch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := dialRaw(t, addr).roundTrip(req, 7).(*kmsg.OffsetForLeaderEpochResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("OffsetForLeaderEpoch answered %+v", resp)
	}
	return resp.Topics[0].Partitions[0]
}

// produceN produces n records to topic/0 with acks=all, retrying through
// a restart's unavailability.
func produceN(t *testing.T, addr, topic string, n int, tag string) {
	t.Helper()
	cl := newClient(t, addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer cl.Close()
	ctx := testCtx(t, 60*time.Second)
	for i := 0; i < n; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("%s-%d", tag, i))}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
}

// batchEpochsOf consumes topic/0 and returns each record's leader epoch.
func batchEpochsOf(t *testing.T, addr, topic string, n int) []int32 {
	t.Helper()
	cl := newClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}}))
	defer cl.Close()
	ctx := testCtx(t, 30*time.Second)
	var out []int32
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(out), n, err)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r.LeaderEpoch) })
	}
	return out
}

type epochAnswer struct {
	Question string
	Code     int16
	Epoch    string // the answered epoch as the name of a batch epoch
	End      int64
}

// epochSequence runs one sequence against target: 3 records, restart, 2
// records, restart, 1 record; then asks OffsetForLeaderEpoch about the
// epochs the batches carry (E0 < E1 < E2), the epochs just below them,
// one past the latest, -1, an unknown partition and an unknown topic.
// Epoch numbers differ between brokers; the answers are named after the
// batch epochs so they compare.
func epochSequence(t *testing.T, target epochTarget) []epochAnswer {
	const topic = "epochs"
	if err := kafkatest.CreateTopic(testCtx(t, 30*time.Second), target.addr(), topic, 1); err != nil {
		t.Fatal(err)
	}
	produceN(t, target.addr(), topic, 3, "a")
	target.restart(t)
	produceN(t, target.addr(), topic, 2, "b")
	target.restart(t)
	produceN(t, target.addr(), topic, 1, "c")
	eps := batchEpochsOf(t, target.addr(), topic, 6)
	e0, e1, e2 := eps[0], eps[3], eps[5]
	if eps[1] != e0 || eps[2] != e0 || eps[4] != e1 || !(e0 < e1 && e1 < e2) {
		t.Fatalf("batch epochs %v: want three increasing epochs", eps)
	}
	t.Logf("batch epochs %v", eps)
	name := func(e int32) string {
		switch e {
		case e0:
			return "E0"
		case e1:
			return "E1"
		case e2:
			return "E2"
		}
		return fmt.Sprint(e)
	}
	var out []epochAnswer
	ask := func(q string, topic string, part, epoch int32) {
		r := epochEnd(t, target.addr(), topic, part, -1, epoch)
		out = append(out, epochAnswer{q, r.ErrorCode, name(r.LeaderEpoch), r.EndOffset})
	}
	for _, q := range []struct {
		q string
		e int32
	}{{"E0", e0}, {"E1-1", e1 - 1}, {"E1", e1}, {"E2-1", e2 - 1}, {"E2", e2}, {"E2+1", e2 + 1}, {"-1", -1}} {
		ask(q.q, topic, 0, q.e)
	}
	ask("unknown partition", topic, 7, e0)
	ask("unknown topic", "no-such-topic", 0, e0)
	return out
}

var wantEpochAnswers = []epochAnswer{
	{"E0", 0, "E0", 3},
	{"E1-1", 0, "E0", 3},
	{"E1", 0, "E1", 5},
	{"E2-1", 0, "E1", 5},
	{"E2", 0, "E2", 6},
	{"E2+1", 0, "-1", -1},
	{"-1", 0, "-1", -1},
	{"unknown partition", codeUnknownTopicOrPartition, "-1", -1},
	{"unknown topic", codeUnknownTopicOrPartition, "-1", -1},
}

func TestOffsetForLeaderEpoch(t *testing.T) {
	r := newRunnelTarget(t)
	got := epochSequence(t, r)
	if !reflect.DeepEqual(got, wantEpochAnswers) {
		t.Fatalf("answers\n got %+v\nwant %+v", got, wantEpochAnswers)
	}
	// Advertised, at Kafka's versions.
	resp := dialRaw(t, r.addr()).roundTrip(kmsg.NewPtrApiVersionsRequest(), 1).(*kmsg.ApiVersionsResponse)
	found := false
	for _, k := range resp.ApiKeys {
		if k.ApiKey == keyOffsetForLeaderEpoch {
			found = k.MinVersion == 0 && k.MaxVersion == 4
		}
	}
	if !found {
		t.Fatalf("OffsetForLeaderEpoch v0-4 not advertised: %+v", resp.ApiKeys)
	}
	// KIP-320 fencing on the partition's latest epoch (3 opens: epoch 3).
	latest := int32(3)
	for _, c := range []struct {
		current int32
		code    int16
	}{{-1, 0}, {latest, 0}, {latest - 1, codeFencedLeaderEpoch}, {latest + 1, codeUnknownLeaderEpoch}} {
		p := epochEnd(t, r.addr(), "epochs", 0, c.current, 1)
		if p.ErrorCode != c.code {
			t.Errorf("CurrentLeaderEpoch %d: error %d, want %d", c.current, p.ErrorCode, c.code)
		}
		if c.code == 0 && (p.LeaderEpoch != 1 || p.EndOffset != 3) {
			t.Errorf("CurrentLeaderEpoch %d: (%d, %d), want (1, 3)", c.current, p.LeaderEpoch, p.EndOffset)
		}
	}
	// A clean restart: the epoch goes on (nothing can have been lost).
	r.clean = true
	r.restart(t)
	produceN(t, r.addr(), "epochs", 1, "d")
	if eps := batchEpochsOf(t, r.addr(), "epochs", 7); eps[6] != latest {
		t.Fatalf("epochs after a clean restart %v, want the last one %d again", eps, latest)
	}
	if p := epochEnd(t, r.addr(), "epochs", 0, -1, latest); p.LeaderEpoch != latest || p.EndOffset != 7 {
		t.Fatalf("after a clean restart: (%d, %d), want (%d, 7)", p.LeaderEpoch, p.EndOffset, latest)
	}
	// v0 has no epoch in the answer; the end offset is the same.
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.Version = 0
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = "epochs"
	rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	rp.LeaderEpoch = 2
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	v0 := dialRaw(t, r.addr()).roundTrip(req, 2).(*kmsg.OffsetForLeaderEpochResponse)
	if p := v0.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.EndOffset != 5 {
		t.Fatalf("v0: %+v", p)
	}
}

// The same sequence against Apache Kafka gives the same answers.
func TestOffsetForLeaderEpochLikeKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Apache Kafka")
	}
	b := kafkatest.Start(t)
	got := epochSequence(t, kafkaTarget{b})
	if !reflect.DeepEqual(got, wantEpochAnswers) {
		t.Fatalf("Apache Kafka answers\n got %+v\nwant %+v", got, wantEpochAnswers)
	}
}
