package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	rlog "github.com/runnel/runnel/log"
	"github.com/runnel/runnel/log/batch"
)

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	name, id, data string
	comment        bool
}

// sseClient reads a tail the way EventSource does.
type sseClient struct {
	t    *testing.T
	resp *http.Response
	sc   *bufio.Scanner
	evs  chan sseEvent
}

func openTail(t *testing.T, url, lastID string) *sseClient {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("tail %s: %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	c := &sseClient{t: t, resp: resp, sc: bufio.NewScanner(resp.Body), evs: make(chan sseEvent, 1024)}
	go func() {
		defer close(c.evs)
		var ev sseEvent
		for c.sc.Scan() {
			line := c.sc.Text()
			switch {
			case line == "":
				if ev.data != "" || ev.name != "" || ev.comment {
					c.evs <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ev.comment = true
			case strings.HasPrefix(line, "event: "):
				ev.name = line[7:]
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "data: "):
				ev.data += line[6:]
			}
		}
	}()
	t.Cleanup(func() { resp.Body.Close() })
	return c
}

// next returns the next event that is not a heartbeat.
func (c *sseClient) next(d time.Duration) sseEvent {
	c.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev, ok := <-c.evs:
			if !ok {
				c.t.Fatal("tail ended")
			}
			if ev.comment && ev.data == "" {
				continue
			}
			return ev
		case <-deadline:
			c.t.Fatal("no event in time")
		}
	}
}

func appendN(t *testing.T, l rlog.Log, topic string, p int32, from, n int) {
	t.Helper()
	var b batch.Builder
	for i := from; i < from+n; i++ {
		b.Add(time.Now().UnixMilli(), nil, []byte(fmt.Sprintf("p%d-%d", p, i)), nil)
	}
	if _, err := l.Append(context.Background(), topic, p, b.Bytes()); err != nil {
		t.Fatal(err)
	}
}

func recordOf(t *testing.T, ev sseEvent) recordJSON {
	t.Helper()
	var r recordJSON
	if ev.name != "" || json.Unmarshal([]byte(ev.data), &r) != nil {
		t.Fatalf("not a record event: %+v", ev)
	}
	return r
}

// TestTailResume: an EventSource that reconnects with the last id it saw
// gets exactly the records after it, on every partition: none twice, none
// missing.
func TestTailResume(t *testing.T) {
	a := newAPI(t, nil, nil)
	if err := a.log.CreateTopic("t", rlog.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 3; p++ {
		appendN(t, a.log, "t", p, 0, 5)
	}
	c := openTail(t, a.url+"/topics/t/tail?from=earliest", "")
	seen := map[string]bool{}
	var last string
	for range 8 {
		ev := c.next(5 * time.Second)
		r := recordOf(t, ev)
		seen[r.Value.(string)] = true
		last = ev.id
	}
	c.resp.Body.Close()
	for p := int32(0); p < 3; p++ {
		appendN(t, a.log, "t", p, 5, 3)
	}
	c2 := openTail(t, a.url+"/topics/t/tail?from=latest", last)
	for len(seen) < 24 {
		r := recordOf(t, c2.next(5*time.Second))
		v := r.Value.(string)
		if seen[v] {
			t.Fatalf("record %s sent again after resume from %q", v, last)
		}
		seen[v] = true
	}
	for p := 0; p < 3; p++ {
		for i := 0; i < 8; i++ {
			if !seen[fmt.Sprintf("p%d-%d", p, i)] {
				t.Fatalf("p%d-%d missing", p, i)
			}
		}
	}
	// Live: a record appended now arrives with a cursor naming it.
	appendN(t, a.log, "t", 1, 8, 1)
	ev := c2.next(5 * time.Second)
	if r := recordOf(t, ev); r.Value != "p1-8" || r.Partition != 1 || r.Offset != 8 || !strings.Contains(ev.id, "1:9") {
		t.Fatalf("live event %+v", ev)
	}
}

func TestTailFrom(t *testing.T) {
	a := newAPI(t, nil, nil)
	if err := a.log.CreateTopic("t", rlog.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	appendN(t, a.log, "t", 0, 0, 3)
	mid := time.Now().UnixMilli()
	time.Sleep(5 * time.Millisecond)
	appendN(t, a.log, "t", 0, 3, 3)
	for _, c := range []struct{ from, want string }{
		{"earliest", "p0-0"},
		{"4", "p0-4"},
		{fmt.Sprintf("time:%d", mid+1), "p0-3"},
		{time.UnixMilli(mid + 1).UTC().Format(time.RFC3339Nano), ""},
	} {
		if c.want == "" {
			code, body, _ := a.do("GET", "/topics/t/tail?from="+c.from, "", "")
			wantError(t, "from without time:", code, body, 400, codeBadRequest)
			continue
		}
		s := openTail(t, a.url+"/topics/t/tail?from="+c.from, "")
		if r := recordOf(t, s.next(5*time.Second)); r.Value != c.want {
			t.Errorf("from=%s: first record %v, want %s", c.from, r.Value, c.want)
		}
		s.resp.Body.Close()
	}
	s := openTail(t, a.url+"/topics/t/tail?from=time:"+time.UnixMilli(mid+1).UTC().Format(time.RFC3339Nano), "")
	if r := recordOf(t, s.next(5*time.Second)); r.Value != "p0-3" {
		t.Errorf("from=time:RFC3339: %v", r.Value)
	}
	l := openTail(t, a.url+"/topics/t/tail", "") // latest
	appendN(t, a.log, "t", 0, 6, 1)
	if r := recordOf(t, l.next(5*time.Second)); r.Value != "p0-6" {
		t.Errorf("from latest: %v", r.Value)
	}
	for _, bad := range []struct {
		q            string
		status, code int
	}{
		{"from=soon", 400, codeBadRequest},
		{"from=-3", 400, codeBadRequest},
		{"format=xml", 400, codeBadRequest},
		{"partition=1", 404, codePartitionUnknown},
	} {
		code, body, _ := a.do("GET", "/topics/t/tail?"+bad.q, "", "")
		wantError(t, bad.q, code, body, bad.status, bad.code)
	}
	code, body, _ := a.do("GET", "/topics/t/tail", "", "", "Last-Event-ID", "garbage")
	wantError(t, "bad Last-Event-ID", code, body, 400, codeBadRequest)
	code, body, _ = a.do("GET", "/topics/none/tail", "", "")
	wantError(t, "unknown topic", code, body, 404, codeTopicNotFound)
}

// TestTailGapAndHeartbeat: a cursor behind the log start (retention
// deleted those records) gets a gap event naming what is gone, then the
// records from the start; an idle tail gets heartbeats.
func TestTailGapAndHeartbeat(t *testing.T) {
	a := newAPI(t, func(o *Options) { o.TailHeartbeat = 50 * time.Millisecond }, &rlog.Options{RetentionCheckInterval: 20 * time.Millisecond})
	if err := a.log.CreateTopic("t", rlog.TopicConfig{SegmentBytes: 200, RetentionBytes: 300}); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		appendN(t, a.log, "t", 0, i, 1)
	}
	start, _, _ := a.log.Offsets("t", 0)
	deadline := time.Now().Add(10 * time.Second)
	for start == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // retention runs in the background
		appendN(t, a.log, "t", 0, 40, 1)
		start, _, _ = a.log.Offsets("t", 0)
	}
	if start == 0 {
		t.Fatal("retention did not delete a segment in time")
	}
	c := openTail(t, a.url+"/topics/t/tail", "0:2")
	ev := c.next(5 * time.Second)
	var gap map[string]int64
	if ev.name != "gap" || json.Unmarshal([]byte(ev.data), &gap) != nil || gap["from"] != 2 || gap["to"] < start || gap["partition"] != 0 {
		t.Fatalf("want a gap from 2 to >= %d, got %+v", start, ev)
	}
	// Retention keeps running: on a slow machine it may delete more
	// before the tail reads there, which is one more gap that starts
	// where the previous one ended.
	ev = c.next(5 * time.Second)
	for ev.name == "gap" {
		var more map[string]int64
		if json.Unmarshal([]byte(ev.data), &more) != nil || more["from"] != gap["to"] || more["to"] <= more["from"] {
			t.Fatalf("a second gap must continue the first (to %d): %+v", gap["to"], ev)
		}
		gap = more
		ev = c.next(5 * time.Second)
	}
	if r := recordOf(t, ev); r.Offset != gap["to"] {
		t.Fatalf("after the gap: offset %d, want %d", r.Offset, gap["to"])
	}
	// Drain, then wait for a heartbeat.
	hb := time.After(5 * time.Second)
	for {
		select {
		case ev := <-c.evs:
			if ev.comment {
				return
			}
		case <-hb:
			t.Fatal("no heartbeat")
		}
	}
}

// TestTailSlowClientCut: a client that stops reading is disconnected once
// a write blocks longer than TailWriteTimeout; the server does not buffer
// for it.
func TestTailSlowClientCut(t *testing.T) {
	a := newAPI(t, func(o *Options) { o.TailWriteTimeout = 300 * time.Millisecond }, nil)
	if err := a.log.CreateTopic("t", rlog.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(a.url, "http://")
	d := net.Dialer{Control: nil}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /topics/t/tail?from=earliest HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	// Never read. Append far more than the socket buffers hold.
	big := strings.Repeat("x", 64<<10)
	var b batch.Builder
	for range 12 {
		b.Add(1, nil, []byte(big), nil)
	}
	data := b.Bytes()
	deadline := time.Now().Add(30 * time.Second)
	for a.s.stats.tailCut.Load() == 0 && time.Now().Before(deadline) {
		d := append([]byte(nil), data...)
		if _, err := a.log.Append(context.Background(), "t", 0, d); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a.s.stats.tailCut.Load() != 1 {
		t.Fatalf("slow client not cut off (tail clients %d)", a.s.stats.tailClients.Load())
	}
	waitUntil(t, func() bool { return a.s.stats.tailClients.Load() == 0 })
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
