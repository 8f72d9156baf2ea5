package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// printSite renders the site part of /api/status (replicate's status
// document, as served) as tables, not JSON.
func TestStatusSiteTables(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal([]byte(`{"node_id":"line1","replication":{"node_id":"line1","broker_id":17,"restoring":false,
"peers":[{"node_id":"line1","broker_id":17,"state":"alive","gossip_addr":"10.0.0.11:7946","kafka_addr":"10.0.0.11:9092","self":true,"last_contact":"2026-01-01T00:00:00Z"},
{"node_id":"line2","broker_id":18,"state":"failed","gossip_addr":"10.0.0.12:7946","kafka_addr":"10.0.0.12:9092","last_contact":"2026-01-01T00:00:00Z"}],
"partitions":[{"topic":"telemetry","partition":0,"end":120,"acked_end":118,"replication_factor":2,"min_insync_replicas":2,"in_sync":["line1"],
"mirrors":[{"node_id":"line3","end":100,"lag_records":20,"lag_seconds":4.5,"in_sync":false,"stalled":true}]}],
"copies":[{"origin":"line3","topic":"line3.telemetry","partition":1,"end":50,"origin_start":0,"origin_end":50,"lag_records":0,"lag_seconds":0,"stalled":false}],
"not_enough_replicas":3,"mirrored_bytes":1000,"divergences":0,"truncations":1,"truncated_records":7,"restored_records":0}}`), &doc); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if !printSite(&buf, doc["replication"], time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)) {
		t.Fatal("printSite did not print the site")
	}
	out := buf.String()
	for _, want := range []string{
		"Site (this box: line1, broker id 17)",
		"line1 (this box)", "line2", "failed", "10.0.0.12:9092",
		"telemetry/0", "118", "line3", "STALLED",
		"line3.telemetry/1", "ok",
		"acks=all refused (not enough replicas): 3", "copies cut back to their origin: 1 (7 records)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	if !regexpMatch(`PEER\s+STATE\s+KAFKA`, out) || !regexpMatch(`telemetry/0\s+120\s+118\s+2\s+2\s+line1\s+line3\s+100\s+20\s+4\.5\s+STALLED`, out) {
		t.Errorf("status tables not aligned as expected:\n%s", out)
	}
	if strings.Contains(out, `{"`) || strings.Contains(out, "mirrored_bytes") {
		t.Errorf("status shows the site as raw JSON:\n%s", out)
	}
}
