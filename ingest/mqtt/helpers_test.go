package mqtt

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/runnel/runnel/log/logtest/reexec"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/runnel/runnel/log/batch"
	"github.com/runnel/runnel/log/logtest"
)

// testLogger logs warnings and worse to the test output when -v.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newMemLog returns an in-memory log, closed at cleanup, whose appends
// complete later on its committer goroutine, as the real log's do.
func newMemLog(t testing.TB) *logtest.Mem {
	t.Helper()
	return logtest.New(t, logtest.AsyncCommit())
}

// startBroker serves a broker on 127.0.0.1:0 and returns it and its
// address. Broker and listener are closed at cleanup (before the log).
func startBroker(t testing.TB, opts Options) (*Broker, string) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(ln) }()
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		select {
		case err := <-served:
			if err != ErrClosed {
				t.Errorf("Serve returned %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return b, ln.Addr().String()
}

// rawClient is a minimal MQTT client speaking packets directly, so tests
// control pipelining and can send garbage.
type rawClient struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
	v byte
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c, r: bufio.NewReader(c), v: 4}
}

// connect sends CONNECT and returns the CONNACK.
func (c *rawClient) connect(v byte, id, user, pass string) packets.Packet {
	c.t.Helper()
	return c.connectSession(v, id, user, pass, true)
}

// connectSession is connect with a choice of clean session / clean start
// (MQTT 5 non-clean sessions get a one-hour expiry).
func (c *rawClient) connectSession(v byte, id, user, pass string, clean bool) packets.Packet {
	c.t.Helper()
	c.v = v
	name := "MQTT"
	if v == 3 {
		name = "MQIsdp"
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: v,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte(name),
			ClientIdentifier: id,
			Clean:            clean,
			Keepalive:        30,
		},
	}
	if v == 5 && !clean {
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = 3600, true
	}
	if user != "" {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(user)
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(pass)
	}
	c.send(pk)
	ack := c.read(5 * time.Second)
	if ack.FixedHeader.Type != packets.Connack {
		c.t.Fatalf("got packet type %d, want CONNACK", ack.FixedHeader.Type)
	}
	return ack
}

func (c *rawClient) encode(pk packets.Packet) []byte {
	c.t.Helper()
	pk.ProtocolVersion = c.v
	pk.Mods.AllowResponseInfo = true
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(&buf)
	case packets.Pubrec:
		err = pk.PubrecEncode(&buf)
	case packets.Pubcomp:
		err = pk.PubcompEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	default:
		c.t.Fatalf("encode: unsupported type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return buf.Bytes()
}

func (c *rawClient) send(pk packets.Packet) {
	c.t.Helper()
	if _, err := c.c.Write(c.encode(pk)); err != nil {
		c.t.Fatal(err)
	}
}

func publishPacket(topic string, qos byte, id uint16, payload []byte) packets.Packet {
	return packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic,
		PacketID:    id,
		Payload:     payload,
	}
}

// tryRead reads one packet or returns the error.
func (c *rawClient) tryRead(timeout time.Duration) (packets.Packet, error) {
	c.c.SetReadDeadline(time.Now().Add(timeout))
	var pk packets.Packet
	hb, err := c.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = c.v
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	case packets.Pubrel:
		err = pk.PubrelDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Pingresp:
	default:
		err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	return pk, err
}

func (c *rawClient) read(timeout time.Duration) packets.Packet {
	c.t.Helper()
	pk, err := c.tryRead(timeout)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return pk
}

// records returns every record of an in-memory partition or fails.
func records(t testing.TB, l *logtest.Mem, topic string, p int32) []batch.Record {
	t.Helper()
	rs, err := l.Records(topic, p)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func header(r batch.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return "<none>"
}

// needTool returns the path of an external tool, skipping the test when it
// is absent (failing under CI=true).
func needTool(t testing.TB, name string) string {
	t.Helper()
	reexec.SkipNativeChildIfEmulated(t, name)
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not in PATH (install Debian mosquitto-clients)", name)
		}
		t.Skipf("%s not in PATH; install Debian mosquitto-clients to run this test", name)
	}
	return p
}

// waitFor polls cond for up to d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
