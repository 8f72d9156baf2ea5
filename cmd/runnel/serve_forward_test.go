package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel/runnel/sync/kafka/kafkatest"
)

// TestServeForwardsToApacheKafka: the binary started with --upstream-kafka
// and --forward sends records produced over MQTT and Kafka to a real Apache
// Kafka under the prefixed name, with origin headers, and reports the route.
func TestServeForwardsToApacheKafka(t *testing.T) {
	up := kafkatest.Start(t)
	s := startRunnel(t, 2, "--upstream-kafka", up.Addr(), "--forward", "fw*", "--forward-prefix", "site1.")
	const n = 500
	var in strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&in, "k%d:v%d\n", i%7, i)
	}
	runTool(t, 30*time.Second, in.String(), runnelBinary(t), "produce", "fw-data", "--brokers", s.Addr(), "--acks", "-1", "--key-separator", ":")

	cl, err := kgo.NewClient(kgo.SeedBrokers(up.Addr()), kgo.ConsumeTopics("site1.fw-data"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seen := map[string]bool{}
	lastByKey := map[string]int{}
	for len(seen) < n && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			var v int
			fmt.Sscanf(string(r.Value), "v%d", &v)
			if prev, ok := lastByKey[string(r.Key)]; ok && v < prev && !seen[string(r.Value)] {
				t.Errorf("key %s: v%d after v%d (order broken)", r.Key, v, prev)
			}
			lastByKey[string(r.Key)] = v
			seen[string(r.Value)] = true
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			if h["runnel-topic"] != "fw-data" || h["runnel-node"] == "" || h["runnel-offset"] == "" || h["runnel-partition"] == "" || h["runnel-epoch"] == "" {
				t.Errorf("record %s lacks origin headers: %v", r.Value, h)
			}
		})
	}
	if len(seen) != n {
		t.Fatalf("upstream got %d distinct records, want %d", len(seen), n)
	}
	resp, err := http.Get("http://" + s.HTTPAddr() + "/api/routes")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var routes []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&routes); err != nil || len(routes) != 1 {
		t.Fatalf("/api/routes: %v %v", routes, err)
	}
	if routes[0]["state"] != "connected" {
		t.Errorf("route state %v, want connected", routes[0]["state"])
	}
}
