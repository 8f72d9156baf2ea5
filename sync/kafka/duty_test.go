package kafka_test

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/logtest"
	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/sync/forward/forwardtest"
	"github.com/runnel/runnel/sync/kafka/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestRealKafkaDuty: a node forwards its own partition and, as a duty,
// another node's partition held here as a mirror. Apache Kafka receives
// the mirror's records exactly as the origin would have sent them: under
// the origin's {node}, with runnel-node, runnel-topic and runnel-offset
// naming the origin, its topic and its offsets, from the duty's cursor.
func TestRealKafkaDuty(t *testing.T) {
	b := kafkatest.StartOpts(t, kafkatest.Options{Partitions: 1})
	lg := logtest.New(t)
	lg.CreateTopic("sensors", log.TopicConfig{})
	lg.CreateTopic("node-2.sensors", log.TopicConfig{})
	forwardtest.Produce(t, lg, "sensors", 0, 0, 300, 50, 0)
	forwardtest.Produce(t, lg, "node-2.sensors", 0, 0, 1000, 50, 0)
	b.CreateTopic("node-1.sensors", 1)
	duties := forwardtest.NewDuties(
		forward.Duty{Origin: "node-1", Topic: "sensors", Epoch: 1},
		forward.Duty{Origin: "node-2", Topic: "sensors", Local: "node-2.sensors", Epoch: 4, From: map[string]int64{"r": 200}},
	)
	f := startForwarder(t, lg, fwdConfig{brokers: []string{b.Addr()},
		routes: []forward.Route{{Name: "r", Topics: []string{"sensors"}, Target: "{node}.{topic}"}},
		opts: func(o *forward.Options) {
			o.Duties = duties
			o.CursorTopic = forward.CursorTopic
		}})
	// node-2's records go to node-2.sensors; read it back with its headers.
	waitAcked(t, f, 300+800, 30*time.Second)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics("node-1.sensors", "node-2.sensors"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	next := map[string]int64{"node-1": 0, "node-2": 200}
	n := 0
	for n < 1100 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			node := h[forward.HeaderNode]
			off, _ := strconv.ParseInt(h[forward.HeaderOffset], 10, 64)
			local := "sensors"
			if node == "node-2" {
				local = "node-2.sensors"
			}
			switch {
			case r.Topic != node+".sensors" || h[forward.HeaderTopic] != "sensors" || h[forward.HeaderPartition] != "0":
				t.Errorf("%s: headers %v", r.Topic, h)
			case off != next[node]:
				t.Errorf("%s: offset %d, want %d", node, off, next[node])
			case !bytes.Equal(r.Value, forwardtest.Value(local, 0, int(off))):
				t.Errorf("%s@%d: value %q", node, off, r.Value)
			}
			next[node] = off + 1
			n++
		})
	}
	if next["node-1"] != 300 || next["node-2"] != 1000 {
		t.Fatalf("upstream holds node-1 up to %d, node-2 up to %d; want 300 and 1000", next["node-1"], next["node-2"])
	}
}
