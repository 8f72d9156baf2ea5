package member

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"
)

// freePort returns a port free for TCP on 127.0.0.1 (gossip also binds it
// for UDP).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// TestJoinByName: a peer given by DNS name (--join localhost:PORT) is
// joined. memberlist (replicate/third_party/memberlist) resolves join names
// with the Go resolver.
func TestJoinByName(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func(id, port string, join ...string) *Membership {
		m, err := Start(context.Background(), Options{
			NodeID: id, BindAddr: "127.0.0.1:" + port, KafkaAddr: "127.0.0.1:9092",
			Join: join, ClashCheck: -1, Logger: quiet,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	pa := freePort(t)
	a := start("a", pa)
	b := start("b", freePort(t), "localhost:"+pa)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var seen []string
		for _, m := range a.Members() {
			if m.State == Alive {
				seen = append(seen, m.NodeID)
			}
		}
		if len(seen) == 2 && len(b.Members()) == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a sees %v alive, b sees %d members, 10 s after b joined localhost:%s", seen, len(b.Members()), pa)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
