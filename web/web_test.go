package web

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	rlog "github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

func startWeb(t *testing.T, ready func() error) (string, rlog.Log) {
	t.Helper()
	l, err := rlog.Open(&rlog.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s, err := New(Options{Log: l, NodeID: "n1", Version: "test", Ready: ready,
		Collectors: []func(*Metrics){func(m *Metrics) { m.Gauge("x_custom", "A custom gauge.", 7, Labels{"a": `q"b`}) }}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return "http://" + ln.Addr().String(), l
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMetricsAndTopics(t *testing.T) {
	base, l := startWeb(t, nil)
	if err := l.CreateTopic("t", rlog.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	var b batch.Builder
	b.Add(1, []byte("k"), []byte("v"), nil)
	b.Add(2, []byte("k"), []byte("w"), nil)
	if _, err := l.Append(context.Background(), "t", 1, b.Bytes()); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics %d", code)
	}
	for _, want := range []string{
		"# TYPE runnel_log_appended_records_total counter\nrunnel_log_appended_records_total 2\n",
		`runnel_partition_end_offset{partition="1",topic="t"} 2`,
		`runnel_partition_end_offset{partition="0",topic="t"} 0`,
		`x_custom{a="q\"b"} 7`,
		`runnel_info{node="n1",version="test"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// Each family has exactly one TYPE line.
	if n := strings.Count(body, "# TYPE runnel_partition_end_offset "); n != 1 {
		t.Errorf("TYPE line for runnel_partition_end_offset appears %d times", n)
	}
	code, body = get(t, base+"/api/topics")
	if code != 200 || !strings.Contains(body, `"name": "t"`) || !strings.Contains(body, `"end": 2`) {
		t.Fatalf("/api/topics %d %s", code, body)
	}
}

func TestReadyz(t *testing.T) {
	var notReady error
	base, _ := startWeb(t, func() error { return notReady })
	if code, body := get(t, base+"/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz %d %q", code, body)
	}
	notReady = errors.New("kafka listener down")
	code, body := get(t, base+"/readyz")
	if code != 503 || !strings.Contains(body, "kafka listener down") {
		t.Fatalf("/readyz %d %q", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
}

func TestLabelEscaping(t *testing.T) {
	var buf bytes.Buffer
	m := NewMetrics(&buf)
	m.Counter("c_total", "help", 1.5, Labels{"b": "x\ny", "a": `back\slash`})
	want := "# HELP c_total help\n# TYPE c_total counter\nc_total{a=\"back\\\\slash\",b=\"x\\ny\"} 1.5\n"
	if buf.String() != want {
		t.Fatalf("got %q want %q", buf.String(), want)
	}
}

// TestStatusListsNotNull: a healthy node's damaged and not_ready are empty
// lists in /api/status, not JSON nulls.
func TestStatusListsNotNull(t *testing.T) {
	base, _ := startWeb(t, nil)
	code, body := get(t, base+"/api/status")
	if code != 200 {
		t.Fatalf("/api/status %d %q", code, body)
	}
	for _, want := range []string{`"damaged": []`, `"not_ready": []`} {
		if !strings.Contains(body, want) {
			t.Errorf("/api/status lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "null") {
		t.Errorf("/api/status holds a null:\n%s", body)
	}
}

// TestShutdownClosesAtDeadline: a client stuck in the middle of a request
// keeps its connection only until Shutdown's ctx ends; then the connection
// is closed and Shutdown returns the ctx's error.
func TestShutdownClosesAtDeadline(t *testing.T) {
	l, err := rlog.Open(&rlog.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := New(Options{Log: l, NodeID: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\n")) // headers never end
	time.Sleep(100 * time.Millisecond)                      // the server is reading them
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the deadline", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open after Shutdown's deadline: %v", err)
	}
}
