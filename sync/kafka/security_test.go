package kafka_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/logtest"
	"github.com/runnel/runnel/sync/forward"
	"github.com/runnel/runnel/sync/forward/forwardtest"
	"github.com/runnel/runnel/sync/kafka/kafkatest"
)

// TestRealKafkaSecurity forwards through SASL PLAIN, SCRAM-SHA-256,
// SCRAM-SHA-512 and mutual TLS to a real Kafka, and checks that a wrong
// password is reported on the route (and never delivers).
func TestRealKafkaSecurity(t *testing.T) {
	b := kafkatest.StartOpts(t, kafkatest.Options{Security: true})
	files := b.TLSFiles()
	cases := []struct {
		name string
		up   forward.Upstream
		fail bool
	}{
		{"plain", forward.Upstream{Brokers: []string{b.SASLAddr()}, SASL: forward.SASL{Mechanism: "PLAIN", Username: kafkatest.User, Password: kafkatest.Password}}, false},
		{"scram-256", forward.Upstream{Brokers: []string{b.SASLAddr()}, SASL: forward.SASL{Mechanism: "SCRAM-SHA-256", Username: kafkatest.User, Password: kafkatest.Password}}, false},
		{"scram-512", forward.Upstream{Brokers: []string{b.SASLAddr()}, SASL: forward.SASL{Mechanism: "SCRAM-SHA-512", Username: kafkatest.User, Password: kafkatest.Password}}, false},
		{"mtls", forward.Upstream{Brokers: []string{b.TLSAddr()}, TLS: forward.TLS{CAFile: files.CA, CertFile: files.Cert, KeyFile: files.Key}}, false},
		{"bad-password", forward.Upstream{Brokers: []string{b.SASLAddr()}, SASL: forward.SASL{Mechanism: "SCRAM-SHA-256", Username: kafkatest.User, Password: "wrong"}}, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lg := logtest.New(t)
			topic := fmt.Sprintf("sec-%d", i)
			lg.CreateTopic(topic, log.TopicConfig{Partitions: 2})
			want := map[forwardtest.Origin]int64{}
			for p := int32(0); p < 2; p++ {
				forwardtest.Produce(t, lg, topic, p, 0, 500, 50, 0)
				want[forwardtest.Origin{Topic: topic, Partition: p}] = 500
			}
			col := collect(t, []string{b.Addr()}, topic)
			f := startForwarder(t, lg, fwdConfig{routes: []forward.Route{{Name: "r", Topics: []string{topic}}},
				up: func(u *forward.Upstream) {
					tc.up.Kind, tc.up.DeliveryTimeout = "kafka", 3*time.Second
					*u = tc.up
				}})
			if tc.fail {
				deadline := time.Now().Add(20 * time.Second)
				for {
					rs := f.Routes()[0]
					if rs.State == forward.StateBackingOff && rs.LastError != "" {
						t.Logf("reported: %s", rs.LastError)
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("bad credentials not reported: %s", routesString(f))
					}
					time.Sleep(50 * time.Millisecond)
				}
				if _, u, _ := col.ch.Counts(); u != 0 || f.Stats().AckedRecords != 0 {
					t.Fatalf("records delivered with a wrong password")
				}
				return
			}
			col.waitComplete(t, want, 30*time.Second, f)
			col.ch.Verify(t, want)
		})
	}
}
