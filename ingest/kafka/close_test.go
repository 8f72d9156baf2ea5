package kafka

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/logtest"
)

// TestCloseGraceful: Close answers an in-flight long poll at once, writes
// it, closes connections, and Serve returns; Close is idempotent.
func TestCloseGraceful(t *testing.T) {
	l := openLog(t, "")
	if err := l.CreateTopic("c", log.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Log: l})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	r := dialRaw(t, ln.Addr().String())
	f := kmsg.NewPtrFetchRequest()
	f.Version = 11
	f.MaxWaitMillis = 30000
	f.MinBytes = 1
	f.MaxBytes = 1 << 20
	f.Topics = []kmsg.FetchRequestTopic{{Topic: "c", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, PartitionMaxBytes: 1 << 20}}}}
	r.write(frame(f, 9))
	time.Sleep(100 * time.Millisecond) // the fetch is waiting
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close took %v with a long poll in flight", d)
	}
	body, err := r.readFrame()
	if err != nil {
		t.Fatalf("long poll not answered before close: %v", err)
	}
	if len(body) < 4 || body[3] != 9 {
		t.Fatalf("answer % x", body[:4])
	}
	r.expectClosed()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("still accepting after Close")
	}
	if st := s.Stats(); st.Conns != 0 {
		t.Fatalf("%d connections after Close", st.Conns)
	}
}

func TestOptionsValidate(t *testing.T) {
	l := logtest.New(t)
	for _, o := range []Options{
		{},
		{Log: l, NodeID: -1},
		{Log: l, MaxFrameBytes: -1},
		{Log: l, AdvertisedAddr: "nohost"},
		{Log: l, AdvertisedAddr: "h:99999"},
		{Log: l, SASLPlain: map[string]string{"": "x"}},
	} {
		if _, err := New(o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: err %v, want ErrInvalidOptions", o, err)
		}
	}
	s, err := New(Options{Log: l, AdvertisedAddr: "edge.local:9092"})
	if err != nil {
		t.Fatal(err)
	}
	if s.advHost != "edge.local" || s.advPort != 9092 {
		t.Fatalf("advertised %s:%d", s.advHost, s.advPort)
	}
}
