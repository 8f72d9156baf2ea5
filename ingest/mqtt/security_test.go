package mqtt

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

func hashPW(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestAuthentication(t *testing.T) {
	l := newMemLog(t)
	b, addr := startBroker(t, Options{Log: l, Users: []User{{Name: "alice", PasswordHash: hashPW(t, "s3cret")}}})
	cases := []struct {
		name       string
		v          byte
		user, pass string
		want       byte
	}{
		{"v5 good", 5, "alice", "s3cret", 0},
		{"v5 good again (cached)", 5, "alice", "s3cret", 0},
		{"v5 wrong password", 5, "alice", "nope", packets.ErrBadUsernameOrPassword.Code},
		{"v5 unknown user", 5, "mallory", "s3cret", packets.ErrBadUsernameOrPassword.Code},
		{"v5 anonymous", 5, "", "", packets.ErrBadUsernameOrPassword.Code},
		{"v3 wrong password", 4, "alice", "nope", packets.Err3NotAuthorized.Code},
		{"v3 anonymous", 4, "", "", packets.Err3NotAuthorized.Code},
		{"v3 good", 4, "alice", "s3cret", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			ack := rc.connect(c.v, "c-"+c.name, c.user, c.pass)
			if ack.ReasonCode != c.want {
				t.Fatalf("CONNACK rc %#x, want %#x", ack.ReasonCode, c.want)
			}
		})
	}
	if n := b.Stats().AuthFailures; n != 5 {
		t.Fatalf("auth failures %d, want 5", n)
	}
}

func TestACL(t *testing.T) {
	l := newMemLog(t)
	b, addr := startBroker(t, Options{
		Log:            l,
		AllowAnonymous: true,
		Users:          []User{{Name: "alice", PasswordHash: hashPW(t, "pw")}},
		ACL: []ACLRule{
			{User: "alice", Topic: "plant/%u/#", Access: AccessReadWrite},
			{Topic: "public/#", Access: AccessRead},
			{Topic: "devices/%c/up", Access: AccessWrite},
		},
	})
	v5 := dialRaw(t, addr)
	v5.connect(5, "a1", "alice", "pw")
	v5.send(publishPacket("plant/alice/t", 1, 1, []byte("ok")))
	if ack := v5.read(5 * time.Second); ack.ReasonCode != 0 {
		t.Fatalf("allowed publish rc %#x", ack.ReasonCode)
	}
	v5.send(publishPacket("plant/bob/t", 1, 2, []byte("no")))
	if ack := v5.read(5 * time.Second); ack.PacketID != 2 || ack.ReasonCode != packets.ErrNotAuthorized.Code {
		t.Fatalf("denied publish: id %d rc %#x, want 0x87", ack.PacketID, ack.ReasonCode)
	}
	if ack := v5.subscribe("plant/bob/#", 0); ack.ReasonCodes[0] != packets.ErrNotAuthorized.Code {
		t.Fatalf("denied subscribe rc %#x", ack.ReasonCodes[0])
	}
	if ack := v5.subscribe("plant/alice/+", 0); ack.ReasonCodes[0] != 0 {
		t.Fatalf("allowed subscribe rc %#x", ack.ReasonCodes[0])
	}
	if ack := v5.subscribe("public/news", 0); ack.ReasonCodes[0] != 0 {
		t.Fatalf("read rule subscribe rc %#x", ack.ReasonCodes[0])
	}
	v5.send(publishPacket("public/news", 1, 3, []byte("no")))
	if ack := v5.read(5 * time.Second); ack.ReasonCode != packets.ErrNotAuthorized.Code {
		t.Fatalf("write to read-only topic rc %#x", ack.ReasonCode)
	}

	// Anonymous MQTT 3 client: %c rule lets it write its own topic only;
	// a denied QoS 1 publish closes the connection (no negative ack in 3.1.1).
	anon := dialRaw(t, addr)
	anon.connect(4, "dev9", "", "")
	anon.send(publishPacket("devices/dev9/up", 1, 1, []byte("ok")))
	if ack := anon.read(5 * time.Second); ack.FixedHeader.Type != packets.Puback {
		t.Fatalf("type %d", ack.FixedHeader.Type)
	}
	anon.send(publishPacket("devices/dev8/up", 1, 2, []byte("spoof")))
	if pk, err := anon.tryRead(3 * time.Second); err == nil && pk.FixedHeader.Type != packets.Disconnect {
		t.Fatalf("spoofed publish answered with type %d", pk.FixedHeader.Type)
	}

	var vals []string
	for _, r := range records(t, l, DefaultTopic, 0) {
		vals = append(vals, string(r.Value))
	}
	if len(vals) != 2 || vals[0] != "ok" || vals[1] != "ok" {
		t.Fatalf("log holds %v", vals)
	}
	if b.Stats().ACLDenied < 4 {
		t.Fatalf("ACL denials %d", b.Stats().ACLDenied)
	}
}

func TestACLMatching(t *testing.T) {
	a := newAuthorizer(&Options{ACL: []ACLRule{
		{User: "bob", Topic: "secret/#", Access: AccessDeny},
		{Topic: "plant/+/temp", Access: AccessRead},
		{Topic: "users/%u/#", Access: AccessReadWrite},
		{Topic: "#", Access: AccessWrite},
	}})
	cases := []struct {
		user, client, topic string
		write, want         bool
	}{
		{"bob", "c", "secret/x", true, false},
		{"ann", "c", "secret/x", true, true}, // falls to "#" write
		{"ann", "c", "secret/x", false, false},
		{"ann", "c", "plant/l1/temp", false, true},
		{"ann", "c", "plant/+/temp", false, true}, // subscription filter covered
		{"ann", "c", "plant/#", false, false},     // wider than the rule
		{"ann", "c", "users/ann/a/b", false, true},
		{"ann", "c", "users/bob/a", false, false},
		{"", "c", "users//a", false, false}, // anonymous never matches %u
		{"a+b", "c", "users/a+b/x", false, false},
		{"ann", "c", "$SYS/broker/uptime", false, false}, // # does not cover $ topics
	}
	for _, c := range cases {
		if got := a.allowed(c.user, c.client, c.topic, c.write); got != c.want {
			t.Errorf("allowed(%q,%q,%q,write=%v) = %v, want %v", c.user, c.client, c.topic, c.write, got, c.want)
		}
	}
}

func TestTopicMatch(t *testing.T) {
	cases := []struct {
		f, t string
		want bool
	}{
		{"a/#", "a", true}, {"a/#", "a/b/c", true}, {"a/+", "a", false}, {"a/+", "a/b", true},
		{"+/+", "/x", true}, {"#", "$SYS/x", false}, {"$SYS/#", "$SYS/x", true}, {"a/b", "a/b/c", false},
		{"a/+/c", "a/b/c", true}, {"a/+/c", "a/b/d", false}, {"+", "a", true}, {"+", "a/b", false},
	}
	for _, c := range cases {
		if got := topicMatch(c.f, c.t); got != c.want {
			t.Errorf("topicMatch(%q,%q) = %v", c.f, c.t, got)
		}
	}
}

// TestHostileInput: garbage, a non-CONNECT first packet, a huge Remaining
// Length, idle and excess connections; a normal client keeps working.
func TestHostileInput(t *testing.T) {
	l := newMemLog(t)
	// The connect timeout outlasts opening the 515 connections below, also
	// under a user-mode emulator (qemu-arm), so all 500 idle ones are still
	// open when the excess arrives.
	b, addr := startBroker(t, Options{Log: l, AllowAnonymous: true, ConnectTimeout: 2 * time.Second, MaxConnsPerIP: 510})
	good := dialRaw(t, addr)
	good.connect(4, "good", "", "")
	id := uint16(0)
	check := func(what string) {
		t.Helper()
		id++
		good.send(publishPacket("ok", 1, id, []byte(what)))
		if ack := good.read(5 * time.Second); ack.PacketID != id {
			t.Fatalf("%s: normal client ack id %d, want %d", what, ack.PacketID, id)
		}
	}
	expectClosed := func(what string, c net.Conn) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 64)
		for {
			_, err := c.Read(buf)
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("%s: connection still open", what)
				}
				return
			}
		}
	}
	raw := func(b []byte) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.Write(b)
		return c
	}

	expectClosed("garbage", raw([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")))
	check("after garbage")
	expectClosed("publish first", raw([]byte{0x30, 0x05, 0x00, 0x01, 'a', 'h', 'i'}))
	check("after publish-first")
	expectClosed("huge remaining length", raw([]byte{0x10, 0xff, 0xff, 0xff, 0x7f}))
	check("after huge length")
	// A bad packet after a valid CONNECT.
	c := dialRaw(t, addr)
	c.connect(4, "bad", "", "")
	c.c.Write([]byte{0x30, 0xff, 0xff, 0xff, 0x7f})
	expectClosed("huge publish", c.c)
	c2 := dialRaw(t, addr)
	c2.connect(4, "bad2", "", "")
	c2.c.Write([]byte{0x32, 0x03, 0x00, 0x09, 'x'}) // truncated topic
	expectClosed("malformed publish", c2.c)
	check("after malformed")

	// Idle connections that never send CONNECT are closed after the timeout.
	var idle []net.Conn
	for i := 0; i < 500; i++ {
		idle = append(idle, raw(nil))
	}
	// Over the per-IP cap (510, with 500 idle + good): refused at once.
	for i := 0; i < 15; i++ {
		raw(nil)
	}
	waitFor(t, 20*time.Second, "per-IP refusals", func() bool { return b.Stats().ConnsRefusedIP >= 5 })
	check("while idle connections wait")
	for _, c := range idle {
		expectClosed("idle", c)
	}
	waitFor(t, 20*time.Second, "connect timeouts counted", func() bool { return b.Stats().ConnectTimeouts >= 500 })
	check("after idle connections")
}

func TestOptionsValidate(t *testing.T) {
	bad := []Options{
		{},
		{Log: newMemLog(t), Routes: []Route{{Filter: "a/#/b", Topic: "x"}}},
		{Log: newMemLog(t), Routes: []Route{{Filter: "a", Topic: "bad topic"}}},
		{Log: newMemLog(t), Users: []User{{Name: "u", PasswordHash: "plain"}}},
		{Log: newMemLog(t), ACL: []ACLRule{{Topic: "a", Access: "all"}}},
		{Log: newMemLog(t), TLS: TLSOptions{CertFile: "x"}},
		{Log: newMemLog(t), Publish: []PublishRoute{{Topic: "t", Prefix: "a/#"}}},
	}
	for i, o := range bad {
		if err := o.Validate(); err == nil {
			t.Errorf("case %d: no error", i)
		}
	}
	r, err := ParseRoute("factory/+/temp=temps,key=client")
	if err != nil || r.Filter != "factory/+/temp" || r.Topic != "temps" || r.Key != KeyClient {
		t.Fatalf("ParseRoute: %+v %v", r, err)
	}
	if _, err := ParseRoute("nofilter"); err == nil {
		t.Fatal("ParseRoute accepted garbage")
	}
	p, err := ParsePublishRoute("sensors=kafka/sensors,qos=1")
	if err != nil || p.Topic != "sensors" || p.Prefix != "kafka/sensors" || p.QoS != 1 {
		t.Fatalf("ParsePublishRoute: %+v %v", p, err)
	}
}

func TestOptionsFromYAML(t *testing.T) {
	src := `
addr: ":1883"
allow-anonymous: true
connect-timeout: 5s
max-conns-per-ip: 50
routes:
  - {filter: "plant/+/temp", topic: temps, key: client}
publish:
  - {topic: sensors, prefix: kafka/sensors, qos: 1}
users:
  - {name: op, password-hash: "$2a$10$abcdefghijklmnopqrstuu"}
acl:
  - {user: op, topic: "site/#", access: readwrite}
tls:
  cert-file: /etc/runnel/mqtt.pem
  key-file: /etc/runnel/mqtt.key
  require-client-cert: false
`
	var o Options
	if err := yaml.Unmarshal([]byte(src), &o); err != nil {
		t.Fatal(err)
	}
	if o.Addr != ":1883" || !o.AllowAnonymous || o.ConnectTimeout != 5*time.Second || o.MaxConnsPerIP != 50 ||
		len(o.Routes) != 1 || o.Routes[0].Key != KeyClient || o.Publish[0].QoS != 1 || o.Users[0].Name != "op" ||
		o.ACL[0].Access != AccessReadWrite || o.TLS.KeyFile != "/etc/runnel/mqtt.key" {
		t.Fatalf("decoded %+v", o)
	}
}

// TestMaxConns: connections beyond Options.MaxConns, CONNECTed or not,
// are closed at accept and counted; one that ends makes room.
func TestMaxConns(t *testing.T) {
	l := newMemLog(t)
	b, addr := startBroker(t, Options{Log: l, AllowAnonymous: true, MaxConns: 3})
	a := dialRaw(t, addr)
	a.connect(4, "a", "", "")
	var idle []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		idle = append(idle, c)
	}
	over, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	over.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := over.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("fourth connection: read %v, want EOF (closed at the cap)", err)
	}
	if n := b.Stats().ConnsRefused; n != 1 {
		t.Fatalf("ConnsRefused = %d, want 1", n)
	}
	idle[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for b.conns.Load() > 2 {
		if time.Now().After(deadline) {
			t.Fatal("a closed connection was not released")
		}
		time.Sleep(10 * time.Millisecond)
	}
	dialRaw(t, addr).connect(4, "d", "", "")
}

// TestMalformedPacketsCounted: garbage before CONNECT, a truncated
// PUBLISH, a packet type that does not exist and an oversized packet each
// close their connection and are counted; a client that just leaves is
// not.
func TestMalformedPacketsCounted(t *testing.T) {
	b, addr := startBroker(t, Options{Log: newMemLog(t), AllowAnonymous: true, MaxPacketSize: 1 << 10})
	send := func(connect bool, raw []byte) {
		t.Helper()
		c := dialRaw(t, addr)
		if connect {
			c.connect(4, fmt.Sprintf("m%d", len(raw)), "", "")
		}
		c.c.Write(raw)
		c.c.SetReadDeadline(time.Now().Add(3 * time.Second))
		io.Copy(io.Discard, c.c) // until the broker closes it
	}
	send(false, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	send(true, []byte{0x32, 0x03, 0x00, 0x09, 'x'})                     // PUBLISH with a truncated topic
	send(true, []byte{0xf0, 0x00})                                      // type 15 (AUTH) flags/length that MQTT 3.1.1 does not have
	send(true, append([]byte{0x30, 0x80, 0x10}, make([]byte, 2048)...)) // 2 KiB PUBLISH, max 1 KiB
	c := dialRaw(t, addr)
	c.connect(4, "leaves", "", "")
	c.c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for b.Stats().Malformed < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if n := b.Stats().Malformed; n != 4 {
		t.Fatalf("Malformed = %d, want 4", n)
	}
}
