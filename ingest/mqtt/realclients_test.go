package mqtt

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// newRealLog opens the real commit log in a temp dir (fsync always).
func newRealLog(t testing.TB) log.Log {
	t.Helper()
	l, err := log.Open(&log.Options{Dir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// readAll returns every record of a real-log partition.
func readAll(t testing.TB, l log.Log, topic string, p int32) []batch.Record {
	t.Helper()
	var out []batch.Record
	next := int64(0)
	for {
		data, err := l.Read(topic, p, next, 1<<20)
		if err != nil {
			t.Fatalf("read %s/%d@%d: %v", topic, p, next, err)
		}
		if len(data) == 0 {
			return out
		}
		for len(data) > 0 {
			h, err := batch.ParseHeader(data)
			if err != nil {
				t.Fatal(err)
			}
			rs, err := batch.Records(data[:h.Size()])
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				if r.Offset >= next {
					out = append(out, r)
				}
			}
			next = h.LastOffset() + 1
			data = data[h.Size():]
		}
	}
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// mosq runs a mosquitto client with stdin and returns combined output and error.
func mosq(t testing.TB, ctx context.Context, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, needTool(t, name), args...)
	// Wait returns at most this long after the client exits or ctx ends,
	// even if something else still holds its output pipe.
	cmd.WaitDelay = 5 * time.Second
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestMosquittoClients: mosquitto_pub -l pipelines QoS 0/1/2 over MQTT
// 3.1.1 and 5 into the real log while mosquitto_sub receives everything.
func TestMosquittoClients(t *testing.T) {
	needTool(t, "mosquitto_pub")
	l := newRealLog(t)
	b, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
	p := port(addr)
	const n = 500
	total := 0
	for _, v := range []string{"mqttv311", "mqttv5"} {
		for q := 0; q <= 2; q++ {
			name := fmt.Sprintf("%s-qos%d", v, q)
			t.Run(name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				topic := "mosq/" + name
				subQoS := q
				sub := exec.CommandContext(ctx, needTool(t, "mosquitto_sub"), "-h", "127.0.0.1", "-p", p, "-V", v,
					"-t", topic, "-q", strconv.Itoa(subQoS), "-C", strconv.Itoa(n), "-i", "sub-"+name)
				var subOut bytes.Buffer
				sub.Stdout = &subOut
				if err := sub.Start(); err != nil {
					t.Fatal(err)
				}
				waitSubscribed(t, b, "sub-"+name)
				var lines strings.Builder
				for i := 0; i < n; i++ {
					fmt.Fprintf(&lines, "%s-%04d\n", name, i)
				}
				out, err := mosq(t, ctx, lines.String(), "mosquitto_pub", "-h", "127.0.0.1", "-p", p, "-V", v,
					"-t", topic, "-q", strconv.Itoa(q), "-l", "-i", "pub-"+name)
				if err != nil {
					t.Fatalf("mosquitto_pub: %v: %s", err, out)
				}
				if err := sub.Wait(); err != nil {
					t.Fatalf("mosquitto_sub: %v (got %d lines)", err, strings.Count(subOut.String(), "\n"))
				}
				got := strings.Split(strings.TrimSpace(subOut.String()), "\n")
				if len(got) != n {
					t.Fatalf("subscriber got %d lines, want %d", len(got), n)
				}
				for i, line := range got {
					if want := fmt.Sprintf("%s-%04d", name, i); line != want {
						t.Fatalf("subscriber line %d = %q, want %q (order lost)", i, line, want)
					}
				}
				total += n
			})
		}
	}
	// Every message is in the log, in per-client order.
	rs := readAll(t, l, DefaultTopic, 0)
	if len(rs) != total {
		t.Fatalf("%d records in the log, want %d", len(rs), total)
	}
	last := map[string]string{}
	for _, r := range rs {
		c := header(r, HeaderClient)
		if string(r.Value) <= last[c] {
			t.Fatalf("client %s: %q after %q", c, r.Value, last[c])
		}
		last[c] = string(r.Value)
	}
}

func TestMosquittoRetainedWillAuthACL(t *testing.T) {
	needTool(t, "mosquitto_pub")
	l := newRealLog(t)
	b, addr := startBroker(t, Options{
		Log:   l,
		Users: []User{{Name: "op", PasswordHash: hashPW(t, "pw")}},
		ACL:   []ACLRule{{User: "op", Topic: "site/#", Access: AccessReadWrite}},
	})
	p := port(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	auth := []string{"-h", "127.0.0.1", "-p", p, "-u", "op", "-P", "pw"}

	// Retained.
	if out, err := mosq(t, ctx, "", "mosquitto_pub", append(auth, "-t", "site/valve", "-m", "open", "-r", "-q", "1")...); err != nil {
		t.Fatalf("pub retained: %v %s", err, out)
	}
	out, err := mosq(t, ctx, "", "mosquitto_sub", append(auth, "-t", "site/#", "-C", "1", "-v", "-W", "5")...)
	if err != nil || strings.TrimSpace(out) != "site/valve open" {
		t.Fatalf("retained: %v %q", err, out)
	}

	// Auth failures (both protocol versions).
	for _, v := range []string{"mqttv311", "mqttv5"} {
		out, err := mosq(t, ctx, "", "mosquitto_pub", "-h", "127.0.0.1", "-p", p, "-V", v, "-u", "op", "-P", "wrong", "-t", "site/x", "-m", "x")
		if err == nil || !strings.Contains(strings.ToLower(out), "not authori") && !strings.Contains(strings.ToLower(out), "bad user") {
			t.Fatalf("%s wrong password: err %v out %q", v, err, out)
		}
		out, err = mosq(t, ctx, "", "mosquitto_pub", "-h", "127.0.0.1", "-p", p, "-V", v, "-t", "site/x", "-m", "x")
		if err == nil {
			t.Fatalf("%s anonymous accepted: %q", v, out)
		}
	}

	// ACL denial: MQTT 5 QoS 1 publish outside site/# is refused with 0x87.
	out, _ = mosq(t, ctx, "", "mosquitto_pub", append(auth, "-V", "mqttv5", "-q", "1", "-t", "elsewhere/x", "-m", "denied")...)
	if !strings.Contains(strings.ToLower(out), "not authori") {
		t.Errorf("denied MQTT 5 publish: output %q (want a not-authorized warning)", out)
	}

	// Will: a subscriber that dies sends its will, which is also stored.
	will := exec.CommandContext(ctx, needTool(t, "mosquitto_sub"), append(auth, "-t", "site/none", "-i", "dying",
		"--will-topic", "site/dying/status", "--will-payload", "lost", "--will-qos", "1")...)
	if err := will.Start(); err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, b, "dying")
	will.Process.Kill()
	will.Wait()

	waitFor(t, 10*time.Second, "will record", func() bool {
		for _, r := range readAll(t, l, DefaultTopic, 0) {
			if header(r, HeaderWill) == "true" && string(r.Value) == "lost" && header(r, HeaderClient) == "dying" {
				return true
			}
		}
		return false
	})
	for _, r := range readAll(t, l, DefaultTopic, 0) {
		if string(r.Value) == "denied" {
			t.Fatal("ACL-denied message reached the log")
		}
	}
}

// waitSubscribed waits until client id has a subscription.
func waitSubscribed(t testing.TB, b *Broker, id string) {
	t.Helper()
	waitFor(t, 10*time.Second, id+" subscribed", func() bool {
		cl, ok := b.Server().Clients.Get(id)
		return ok && !cl.Closed() && cl.State.Subscriptions.Len() > 0
	})
}

// pahoConnect connects a paho (MQTT 5) client.
func pahoConnect(t testing.TB, addr, id string, onMsg func(paho.PublishReceived) (bool, error)) *paho.Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := paho.ClientConfig{Conn: conn, ClientID: id}
	if onMsg != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){onMsg}
	}
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("paho connect: %v %+v", err, ca)
	}
	t.Cleanup(func() { c.Disconnect(&paho.Disconnect{}) })
	return c
}

func TestPaho(t *testing.T) {
	l := newRealLog(t)
	_, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
	got := make(chan *paho.Publish, 100)
	sub := pahoConnect(t, addr, "paho-sub", func(pr paho.PublishReceived) (bool, error) {
		got <- pr.Packet
		return true, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "paho/#", QoS: 2}}}); err != nil {
		t.Fatal(err)
	}
	pub := pahoConnect(t, addr, "paho-pub", nil)
	for q := byte(0); q <= 2; q++ {
		pr, err := pub.Publish(ctx, &paho.Publish{
			Topic: "paho/q" + strconv.Itoa(int(q)), QoS: q, Payload: []byte{'p', '0' + q},
			Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: "line", Value: "3"}}, ContentType: "text/plain"},
		})
		if err != nil || pr.ReasonCode != 0 {
			t.Fatalf("qos %d publish: %v %+v", q, err, pr)
		}
		select {
		case m := <-got:
			if m.Topic != "paho/q"+strconv.Itoa(int(q)) || m.QoS != q || m.Properties.User.Get("line") != "3" {
				t.Fatalf("delivered %s qos %d props %+v", m.Topic, m.QoS, m.Properties)
			}
		case <-ctx.Done():
			t.Fatalf("qos %d: no delivery", q)
		}
	}
	rs := readAll(t, l, DefaultTopic, 0)
	if len(rs) != 3 {
		t.Fatalf("%d records", len(rs))
	}
	for i, r := range rs {
		if header(r, HeaderQoS) != strconv.Itoa(i) || header(r, "line") != "3" || header(r, HeaderContentType) != "text/plain" {
			t.Fatalf("record %d headers %+v", i, r.Headers)
		}
	}
}

// TestPahoPipelinedQoS1 keeps hundreds of QoS 1 publishes in flight from one
// client; every PUBACK arrives and the log holds all of them.
func TestPahoPipelinedQoS1(t *testing.T) {
	l := newRealLog(t)
	b, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
	c := pahoConnect(t, addr, "pipeline", nil)
	const workers, per = 200, 25
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, workers)
	start := time.Now()
	for w := 0; w < workers; w++ {
		go func() {
			for i := 0; i < per; i++ {
				_, err := c.Publish(ctx, &paho.Publish{Topic: "pipe/" + strconv.Itoa(w), QoS: 1, Payload: []byte(strconv.Itoa(i))})
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	el := time.Since(start)
	if got := len(readAll(t, l, DefaultTopic, 0)); got != workers*per {
		t.Fatalf("%d records, want %d", got, workers*per)
	}
	st := b.Stats()
	t.Logf("%d QoS 1 messages in %v (%.0f msg/s), %d batches, log fsyncs %d", workers*per, el, float64(workers*per)/el.Seconds(), st.Batches, l.Stats().Fsyncs)
	if st.Batches >= workers*per/2 {
		t.Errorf("%d batches for %d messages: publishes were not pipelined", st.Batches, workers*per)
	}
}

// TestRealLogDiskFull: with the real log's disk guard reporting a full disk
// (topic policy reject), an MQTT 5 publisher gets PUBACK 0x97, nothing
// acknowledged earlier is lost, and publishing resumes when space returns.
func TestRealLogDiskFull(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 40)
	l, err := log.Open(&log.Options{
		Dir:               t.TempDir(),
		Logger:            testLogger(t),
		DiskCheckInterval: 5 * time.Millisecond,
		DiskUsage:         func(string) (uint64, uint64, error) { return free.Load(), 1 << 41, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	_, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
	c := dialRaw(t, addr)
	c.connect(5, "full", "", "")
	id := uint16(0)
	pub := func(v string) byte {
		id++
		c.send(publishPacket("disk/t", 1, id, []byte(v)))
		ack := c.read(5 * time.Second)
		if ack.PacketID != id {
			t.Fatalf("ack id %d, want %d", ack.PacketID, id)
		}
		return ack.ReasonCode
	}
	if rc := pub("before"); rc != 0 {
		t.Fatalf("rc %#x", rc)
	}
	free.Store(1 << 20) // under the 64 MiB guard
	waitFor(t, 5*time.Second, "log to see the full disk", func() bool { return l.Stats().DiskShort })
	if rc := pub("while full"); rc != packets.ErrQuotaExceeded.Code {
		t.Fatalf("disk full: rc %#x, want 0x97", rc)
	}
	free.Store(1 << 40)
	waitFor(t, 5*time.Second, "space back", func() bool { return !l.Stats().DiskShort })
	if rc := pub("after"); rc != 0 {
		t.Fatalf("after space returned: rc %#x", rc)
	}
	var vals []string
	for _, r := range readAll(t, l, DefaultTopic, 0) {
		vals = append(vals, string(r.Value))
	}
	if fmt.Sprint(vals) != "[before after]" {
		t.Fatalf("log holds %v", vals)
	}
}

// TestMosquittoPersistentResubscribe: a persistent subscriber (clean
// session off) that comes back gets the message queued while it was away
// and its SUBSCRIBE granted. The queued delivery goes out at reconnect with
// the server's packet id 1, and mosquitto_sub's SUBSCRIBE uses id 1 too:
// the two are separate id spaces (the server's and the client's), so the
// SUBSCRIBE is not "packet identifier in use" (0x91; 0x80 for 3.1.1).
func TestMosquittoPersistentResubscribe(t *testing.T) {
	needTool(t, "mosquitto_sub")
	_, addr := startBroker(t, Options{Log: newRealLog(t), AllowAnonymous: true})
	p := port(addr)
	for _, v := range []string{"mqttv311", "mqttv5"} {
		t.Run(v, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			id, topic := "persist-"+v, "pers/"+v
			sub := func(args ...string) string {
				out, err := mosq(t, ctx, "", "mosquitto_sub", append([]string{"-h", "127.0.0.1", "-p", p, "-V", v,
					"-c", "-i", id, "-q", "1", "-t", topic + "/#", "-d"}, args...)...)
				_ = err // -W ends it with a non-zero status
				return out
			}
			sub("-W", "1") // creates the session and its subscription
			if out, err := mosq(t, ctx, "", "mosquitto_pub", "-h", "127.0.0.1", "-p", p, "-V", v,
				"-t", topic+"/a", "-q", "1", "-m", "while-away"); err != nil {
				t.Fatalf("mosquitto_pub: %v: %s", err, out)
			}
			out := sub("-W", "2")
			if !strings.Contains(out, "while-away") {
				t.Fatalf("the queued message did not arrive:\n%s", out)
			}
			if strings.Contains(out, "denied") || !strings.Contains(out, "Subscribed (mid: 1): 1") {
				t.Fatalf("the SUBSCRIBE after reconnecting was not granted QoS 1:\n%s", out)
			}
		})
	}
}

// TestMosquittoReservedUserProperties: MQTT 5 user properties become
// headers under their own names, except those in the "mqtt." space of
// runnel's own headers: a device cannot add a second mqtt.topic or
// mqtt.client to its record (counted). runnel-* properties (origin headers
// of a record another box forwarded over MQTT) are kept.
func TestMosquittoReservedUserProperties(t *testing.T) {
	needTool(t, "mosquitto_pub")
	l := newRealLog(t)
	b, addr := startBroker(t, Options{Log: l, AllowAnonymous: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := mosq(t, ctx, "", "mosquitto_pub", "-h", "127.0.0.1", "-p", port(addr), "-V", "mqttv5",
		"-i", "dev1", "-t", "plant/line1", "-q", "1", "-m", "21.5",
		"-D", "publish", "user-property", "mqtt.topic", "spoofed/topic",
		"-D", "publish", "user-property", "mqtt.client", "someone-else",
		"-D", "publish", "user-property", "site", "north",
		"-D", "publish", "user-property", "runnel-node", "box-a")
	if err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	rs := readAll(t, l, DefaultTopic, 0)
	if len(rs) != 1 {
		t.Fatalf("%d records, want 1", len(rs))
	}
	count := map[string]int{}
	for _, h := range rs[0].Headers {
		count[h.Key]++
	}
	if count[HeaderTopic] != 1 || count[HeaderClient] != 1 || header(rs[0], HeaderTopic) != "plant/line1" || header(rs[0], HeaderClient) != "dev1" {
		t.Fatalf("headers %v: want one mqtt.topic plant/line1 and one mqtt.client dev1", rs[0].Headers)
	}
	if header(rs[0], "site") != "north" || header(rs[0], "runnel-node") != "box-a" {
		t.Fatalf("headers %v: the other user properties are missing", rs[0].Headers)
	}
	if got := b.Stats().ReservedPropertiesDropped; got != 2 {
		t.Fatalf("ReservedPropertiesDropped = %d, want 2", got)
	}
}

// TestMessageOverTopicLimit: a publish larger than its log topic's
// max.message.bytes gets PUBACK 0x95 (packet too large) and fails alone;
// another client's publishes to the same partition, arriving meanwhile,
// are all stored (they were coalesced into the failing batch and failed
// with it, one of 3,000 in a run). An MQTT 5 client also learns the
// broker's own largest packet from its CONNACK, and a packet over it gets
// DISCONNECT 0x95 before the connection closes.
func TestMessageOverTopicLimit(t *testing.T) {
	needTool(t, "mosquitto_pub")
	l := newRealLog(t)
	if err := l.CreateTopic("small", log.TopicConfig{MaxBatchBytes: 1000}); err != nil {
		t.Fatal(err)
	}
	routes := []Route{{Filter: "s/#", Topic: "small", Key: KeyNone}}
	_, addr := startBroker(t, Options{Log: l, AllowAnonymous: true, Routes: routes, MaxPacketSize: 64 << 10})
	p := port(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 3000
	var lines strings.Builder
	for i := range n {
		fmt.Fprintf(&lines, "b-%04d\n", i)
	}
	done := make(chan error, 1)
	var bOut string
	go func() {
		var err error
		bOut, err = mosq(t, ctx, lines.String(), "mosquitto_pub", "-h", "127.0.0.1", "-p", p, "-V", "mqttv5", "-q", "1", "-l", "-t", "s/b", "-i", "B")
		done <- err
	}()
	big := strings.Repeat("x", 2000)
	for i := range 5 {
		out, _ := mosq(t, ctx, "", "mosquitto_pub", "-h", "127.0.0.1", "-p", p, "-V", "mqttv5", "-q", "1", "-t", "s/a", "-i", fmt.Sprintf("A%d", i), "-m", big, "-d")
		if !strings.Contains(out, "RC:149") {
			t.Fatalf("publish over max.message.bytes: want PUBACK 0x95 (149):\n%s", out)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("the other client: %v: %s", err, bOut)
	}
	var got int
	for _, r := range readAll(t, l, "small", 0) {
		if strings.HasPrefix(string(r.Value), "b-") {
			got++
		} else {
			t.Fatalf("a record of %d bytes was stored", len(r.Value))
		}
	}
	if got != n {
		t.Fatalf("%d of the other client's %d messages stored", got, n)
	}

	// The broker's own limit (MaxPacketSize) in the CONNACK, and the
	// DISCONNECT reason for a packet over it.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: "sized"})
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: "sized", CleanStart: true, KeepAlive: 30})
	if err != nil {
		t.Fatal(err)
	}
	c.Disconnect(&paho.Disconnect{})
	if ca.Properties == nil || ca.Properties.MaximumPacketSize == nil || *ca.Properties.MaximumPacketSize != 64<<10 {
		t.Fatalf("CONNACK properties %+v: want Maximum Packet Size %d", ca.Properties, 64<<10)
	}
	if ca.Properties.TopicAliasMaximum == nil || *ca.Properties.TopicAliasMaximum != topicAliasMaximum {
		t.Fatalf("CONNACK Topic Alias Maximum %v, want %d", ca.Properties.TopicAliasMaximum, topicAliasMaximum)
	}
	// mosquitto_pub honours it (it does not send a larger publish); a
	// client that does not is told why before the connection closes.
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	connect := []byte{0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 0, 0, 3, 'r', 'a', 'w'}
	if _, err := raw.Write(connect); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(raw, hdr); err != nil || hdr[0] != 0x20 {
		t.Fatalf("CONNACK: %x %v", hdr, err)
	}
	io.ReadFull(raw, make([]byte, hdr[1]))
	// PUBLISH QoS 0 announcing 200,000 bytes (over 64 KiB), then a few.
	publish := []byte{0x30, 0xc0, 0x9a, 0x0c, 0, 1, 'x', 0}
	if _, err := raw.Write(publish); err != nil {
		t.Fatal(err)
	}
	reply, _ := io.ReadAll(raw)
	if len(reply) < 3 || reply[0] != 0xe0 || reply[2] != 0x95 {
		t.Fatalf("after a packet over the largest: %x, want DISCONNECT 0x95", reply)
	}
}

// TestOfflineQueueCap: a persistent session holds at most
// maxQueuedPerSession messages while its client is away; the rest are
// dropped, the oldest kept.
func TestOfflineQueueCap(t *testing.T) {
	needTool(t, "mosquitto_sub")
	b, addr := startBroker(t, Options{Log: newRealLog(t), AllowAnonymous: true})
	p := port(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sub := func(wait string) string {
		out, _ := mosq(t, ctx, "", "mosquitto_sub", "-h", "127.0.0.1", "-p", p, "-c", "-i", "away", "-q", "1", "-t", "q/#", "-W", wait)
		return out
	}
	sub("1")
	var lines strings.Builder
	for i := range maxQueuedPerSession + 200 {
		fmt.Fprintf(&lines, "m%05d\n", i)
	}
	if out, err := mosq(t, ctx, lines.String(), "mosquitto_pub", "-h", "127.0.0.1", "-p", p, "-q", "1", "-l", "-t", "q/x"); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	var got []string
	for _, f := range strings.Fields(sub("3")) {
		if strings.HasPrefix(f, "m") {
			got = append(got, f) // not -W's "Timed out"
		}
	}
	if len(got) != maxQueuedPerSession || got[0] != "m00000" {
		t.Fatalf("the session got %d messages from %v, want the first %d", len(got), got[:min(1, len(got))], maxQueuedPerSession)
	}
	if n := b.Stats().InflightDropped; n != 200 {
		t.Fatalf("InflightDropped = %d, want 200", n)
	}
}
