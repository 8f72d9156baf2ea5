package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestSoakHostileClients: well-behaved Kafka and MQTT producers and
// consumers beside hostile clients (connection floods, slowloris, oversize
// and maximal frames, subscription storms, reconnect storms, garbage)
// against runnel under RLIMIT_NOFILE 1024. Well-behaved clients never lose
// an acknowledged record, no partition goes read-only, RSS stays under
// soakRSSCeiling, and the producers' p99 latency is reported against a
// quiet run of the same clients (RUNNEL_SOAK=1 also requires it within 3x).
//
// `make soak` (RUNNEL_SOAK=1) runs the hostile phase for 30 minutes
// (RUNNEL_SOAK_MINUTES overrides); `make test` runs a 20-second version.
func TestSoakHostileClients(t *testing.T) {
	prl := needTool(t, "prlimit")
	quiet, hostile := 5*time.Second, 20*time.Second
	long := os.Getenv("RUNNEL_SOAK") == "1"
	if long {
		quiet, hostile = 2*time.Minute, time.Duration(envInt("RUNNEL_SOAK_MINUTES", 30))*time.Minute
	}
	s := startRunnelUnder(t, []string{prl, "--nofile=1024:1024", "--"}, 4)
	pid := s.PID()
	ctx, cancel := context.WithTimeout(context.Background(), quiet+hostile+5*time.Minute)
	defer cancel()

	// Well-behaved clients, for the quiet run and then beside the hostile ones.
	good := newGoodClients(t, s)
	good.run(ctx, quiet)
	quietKafka, quietMQTT := good.kafkaLat.p99(), good.mqttLat.p99()
	good.kafkaLat.reset()
	good.mqttLat.reset()

	var peakRSS atomic.Int64
	var notReady atomic.Value
	hctx, hcancel := context.WithTimeout(ctx, hostile)
	defer hcancel()
	var wg sync.WaitGroup
	for _, h := range []func(context.Context){
		func(c context.Context) { kafkaFlood(c, s.Addr(), 600) },
		func(c context.Context) { slowloris(c, s.Addr(), 40) },
		func(c context.Context) { bigFrames(c, s.Addr()) },
		func(c context.Context) { subscriptionStorm(c, s.mqtt) },
		func(c context.Context) { reconnectStorm(c, s.mqtt, 40) },
		func(c context.Context) { garbage(c, s.mqtt, s.Addr()) },
		func(c context.Context) { // watchdog: RSS and readiness every second
			for c.Err() == nil {
				if v, err := procStatusBytes(pid, "VmRSS"); err == nil && v > peakRSS.Load() {
					peakRSS.Store(v)
				}
				if code, body := getHTTP(t, s.HTTPAddr(), "/readyz"); code != 200 && code != 0 && strings.Contains(body, "read-only") {
					notReady.Store(body)
				}
				sleepCtx(c, time.Second)
			}
		},
	} {
		wg.Add(1)
		go func() { defer wg.Done(); h(hctx) }()
	}
	good.run(hctx, hostile)
	wg.Wait()
	hostileKafka, hostileMQTT := good.kafkaLat.p99(), good.mqttLat.p99()

	m := scrapeMetrics(t, s.HTTPAddr())
	t.Logf("quiet %v, hostile %v: %d Kafka and %d MQTT records acknowledged; Kafka produce p99 %v quiet, %v hostile (%.1fx); MQTT QoS 1 p99 %v quiet, %v hostile (%.1fx); peak RSS %.0f MiB",
		quiet, hostile, len(good.kafkaAcked), len(good.mqttAcked), quietKafka, hostileKafka, ratio(hostileKafka, quietKafka),
		quietMQTT, hostileMQTT, ratio(hostileMQTT, quietMQTT), float64(peakRSS.Load())/(1<<20))
	t.Logf("refused: Kafka connections %v, MQTT connections %v, subscriptions %v; Kafka connect timeouts %v, bad frames %v; MQTT malformed %v; request budget waits %v; log out-of-files %v",
		m["runnel_kafka_connections_refused_total"], m["runnel_mqtt_conns_refused_total"], m["runnel_mqtt_subscriptions_refused_total"],
		m["runnel_kafka_connect_timeouts_total"], m["runnel_kafka_bad_frames_total"], m["runnel_mqtt_malformed_packets_total"],
		m["runnel_kafka_request_budget_waits_total"], m["runnel_log_out_of_files_total"])

	if v := notReady.Load(); v != nil {
		t.Errorf("/readyz named a read-only partition: %v", v)
	}
	logb, _ := os.ReadFile(s.logPath)
	if strings.Contains(string(logb), "partition is read-only") {
		t.Errorf("a partition went read-only:\n%s", s.LogTail())
	}
	if peak := peakRSS.Load(); peak > soakRSSCeiling {
		t.Errorf("peak RSS %d MiB, ceiling %d MiB", peak>>20, soakRSSCeiling>>20)
	}
	if len(good.kafkaAcked) == 0 || len(good.mqttAcked) == 0 {
		t.Fatalf("the well-behaved clients were not served: %d Kafka, %d MQTT records acknowledged", len(good.kafkaAcked), len(good.mqttAcked))
	}
	// Every acknowledged record is in the log.
	if missing := missingValues(t, s.Addr(), "good", 4, good.kafkaAcked); len(missing) > 0 {
		t.Errorf("%d acknowledged Kafka records missing, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	if missing := missingValues(t, s.Addr(), "mqtt", 4, good.mqttAcked); len(missing) > 0 {
		t.Errorf("%d acknowledged MQTT records missing, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	if got := good.consumed.Load(); got == 0 {
		t.Errorf("the well-behaved consumer read nothing")
	}
	if long {
		for _, r := range []struct {
			what string
			q, h time.Duration
		}{{"Kafka produce", quietKafka, hostileKafka}, {"MQTT QoS 1", quietMQTT, hostileMQTT}} {
			if ratio(r.h, r.q) > 3 {
				t.Errorf("%s p99 %v under hostile clients, %v quiet: more than 3x", r.what, r.h, r.q)
			}
		}
	}
}

// soakRSSCeiling: the request budget (64 MiB, at most twice that with
// garbage), idle and flooding connections, subscriptions, the log's
// caches.
const soakRSSCeiling = 320 << 20

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// latencies collects durations for a p99.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) { l.mu.Lock(); l.d = append(l.d, d); l.mu.Unlock() }
func (l *latencies) reset()              { l.mu.Lock(); l.d = nil; l.mu.Unlock() }
func (l *latencies) p99() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	return s[len(s)*99/100]
}

// goodClients are the well-behaved clients: a Kafka producer (acks=all,
// one record at a time, keyed over 4 partitions), a Kafka consumer, an
// MQTT QoS 1 publisher. They keep what was acknowledged.
type goodClients struct {
	t        *testing.T
	s        *runnelServer
	prod     *kgo.Client
	cons     *kgo.Client
	pub      *mqttRaw
	seq      int
	kafkaLat latencies
	mqttLat  latencies
	mu       sync.Mutex // guards the two acked lists
	// acknowledged values
	kafkaAcked, mqttAcked []string
	consumed              atomic.Int64
}

func newGoodClients(t *testing.T, s *runnelServer) *goodClients {
	g := &goodClients{t: t, s: s}
	g.prod = manualClient(t, s.Addr(), kgo.RequiredAcks(kgo.AllISRAcks()))
	cons, err := kgo.NewClient(kgo.SeedBrokers(s.Addr()), kgo.ConsumeTopics("good"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cons.Close)
	g.cons = cons
	g.pub = dialMQTT(t, s.mqtt, 4, "good-publisher")
	return g
}

// run drives the well-behaved clients for d (or until ctx ends).
func (g *goodClients) run(ctx context.Context, d time.Duration) {
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // Kafka producer
		defer wg.Done()
		for i := 0; rctx.Err() == nil; i++ {
			v := fmt.Sprintf("k-%d-%d", g.seq, i)
			t0 := time.Now()
			pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
			err := g.prod.ProduceSync(pctx, &kgo.Record{Topic: "good", Partition: int32(i % 4), Value: []byte(v)}).FirstErr()
			pcancel()
			if err == nil {
				g.kafkaLat.add(time.Since(t0))
				g.mu.Lock()
				g.kafkaAcked = append(g.kafkaAcked, v)
				g.mu.Unlock()
			}
			sleepCtx(rctx, 5*time.Millisecond)
		}
	}()
	go func() { // Kafka consumer
		defer wg.Done()
		for rctx.Err() == nil {
			fs := g.cons.PollFetches(rctx)
			g.consumed.Add(int64(fs.NumRecords()))
		}
	}()
	go func() { // MQTT QoS 1 publisher
		defer wg.Done()
		for i := 0; rctx.Err() == nil; i++ {
			v := fmt.Sprintf("m-%d-%d", g.seq, i)
			id := uint16(i%60000 + 1)
			t0 := time.Now()
			g.pub.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: id, TopicName: fmt.Sprintf("plant/good/%d", i%8), Payload: []byte(v)})
			if ack := g.pub.read(); ack.FixedHeader.Type == packets.Puback && ack.PacketID == id && ack.ReasonCode < 0x80 {
				g.mqttLat.add(time.Since(t0))
				g.mu.Lock()
				g.mqttAcked = append(g.mqttAcked, v)
				g.mu.Unlock()
			}
			sleepCtx(rctx, 5*time.Millisecond)
		}
	}()
	wg.Wait()
	g.seq++
}

// missingValues reads topic from the start and returns the wanted values
// it does not hold.
func missingValues(t *testing.T, addr, topic string, partitions int, want []string) []string {
	t.Helper()
	have := map[string]bool{}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tm := topicMeta{name: topic}
	for p := range partitions {
		tm.partitions = append(tm.partitions, int32(p))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	offs, err := listOffsets(ctx, cl, []topicMeta{tm})
	if err != nil {
		t.Fatal(err)
	}
	pos := map[int32]int64{}
	for {
		done := true
		for p, o := range offs[topic] {
			if o.err == nil && pos[p] < o.end {
				done = false
			}
		}
		if done || ctx.Err() != nil {
			break
		}
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			have[string(r.Value)] = true
			pos[r.Partition] = r.Offset + 1
		})
	}
	var missing []string
	for _, v := range want {
		if !have[v] {
			missing = append(missing, v)
		}
	}
	return missing
}

// kafkaFlood opens up to n idle connections, holds them a few seconds,
// closes them, and again.
func kafkaFlood(ctx context.Context, addr string, n int) {
	for ctx.Err() == nil {
		var cs []net.Conn
		for range n {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				cs = append(cs, c)
			}
		}
		sleepCtx(ctx, 4*time.Second)
		for _, c := range cs {
			c.Close()
		}
		sleepCtx(ctx, time.Second)
	}
}

// slowloris keeps n connections that announce a 1 MiB request and then
// send one byte a second, half of them after a first request (so the
// connect timeout does not end them), renewed every 40 seconds.
func slowloris(ctx context.Context, addr string, n int) {
	apiVersions := []byte{0, 0, 0, 11, 0, 18, 0, 0, 0, 0, 0, 1, 0, 1, 'x'}
	for ctx.Err() == nil {
		var cs []net.Conn
		for i := range n {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				continue
			}
			c.SetDeadline(time.Now().Add(time.Second))
			if i%2 == 0 {
				c.Write(apiVersions)
				c.Read(make([]byte, 512))
			}
			var h [4]byte
			binary.BigEndian.PutUint32(h[:], 1<<20)
			c.Write(h[:])
			cs = append(cs, c)
		}
		rctx, cancel := context.WithTimeout(ctx, 40*time.Second)
		for rctx.Err() == nil {
			for _, c := range cs {
				c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				c.Write([]byte{0})
			}
			sleepCtx(rctx, time.Second)
		}
		cancel()
		for _, c := range cs {
			c.Close()
		}
	}
}

// bigFrames sends oversize frames (closed at once) and, four at a time,
// frames of the maximal size.
func bigFrames(ctx context.Context, addr string) {
	for ctx.Err() == nil {
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				size := 1 << 30 // oversize
				if i > 0 {
					size = 16 << 20 // the default maximum
				}
				head := []byte{0, 0, 0, 0, 0, 18, 0, 0, 0, 0, 0, 1, 0, 1, 'x'}
				binary.BigEndian.PutUint32(head, uint32(size))
				if _, err := c.Write(head); err != nil || size > 16<<20 {
					return
				}
				chunk := make([]byte, 1<<20)
				for left := size + 4 - len(head); left > 0 && ctx.Err() == nil; left -= len(chunk) {
					if _, err := c.Write(chunk[:min(left, len(chunk))]); err != nil {
						return
					}
				}
				c.Read(make([]byte, 64))
			}()
		}
		wg.Wait()
		sleepCtx(ctx, 2*time.Second)
	}
}

// subscriptionStorm subscribes 5,000 filters, disconnects, and again.
func subscriptionStorm(ctx context.Context, addr string) {
	for i := 0; ctx.Err() == nil; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		m := &mqttRaw{c: c, v: 5}
		if nil != m.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
			Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: fmt.Sprintf("storm-%d", i), Clean: true, Keepalive: 60}}) {
			c.Close()
			continue
		}
		for p := range 5 {
			subs := make(packets.Subscriptions, 1000)
			for j := range subs {
				subs[j] = packets.Subscription{Filter: fmt.Sprintf("storm/%d/%d/%d/+", i, p, j), Qos: 1}
			}
			if m.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: uint16(p + 1), Filters: subs}) != nil {
				break
			}
		}
		sleepCtx(ctx, time.Second)
		c.Close()
	}
}

// reconnectStorm connects and disconnects n MQTT clients in a loop.
func reconnectStorm(ctx context.Context, addr string, n int) {
	for i := 0; ctx.Err() == nil; i++ {
		var wg sync.WaitGroup
		for j := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					return
				}
				defer c.Close()
				m := &mqttRaw{c: c, v: 4}
				m.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
					Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: fmt.Sprintf("re-%d-%d", i, j), Clean: true, Keepalive: 60}})
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				c.Read(make([]byte, 4))
			}()
		}
		wg.Wait()
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// garbage sends nonsense to both listeners.
func garbage(ctx context.Context, mqttAddr, kafkaAddr string) {
	for ctx.Err() == nil {
		for _, a := range []string{mqttAddr, kafkaAddr} {
			if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
				c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n\xff\xff\xff\xff"))
				c.SetReadDeadline(time.Now().Add(time.Second))
				c.Read(make([]byte, 64))
				c.Close()
			}
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}
